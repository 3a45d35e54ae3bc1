"""
The Debian 13 lab guest for the tests of issue 18 (vmcores/lab/debian-guest.sh,
vmcores/lab/debian_guest.py): build or find the cached image, make the
payload disk, boot a kernel, and read drgn-crashhp's JSON inside and outside.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.conftest import ROOT

LAB = ROOT / "vmcores" / "lab"
if str(LAB) not in sys.path:
    sys.path.insert(0, str(LAB))

from debian_guest import DebianGuest, image_dir, payload  # type: ignore  # noqa: E402
from guest import GuestError  # type: ignore  # noqa: E402

__all__ = (
    "DebianGuest",
    "GuestError",
    "boot",
    "guest_report",
    "host_report",
    "image_or_skip",
    "payload_disk",
    "summary",
)

_images: Dict[str, Dict[str, Any]] = {}


def image_or_skip(suite: str = "trixie") -> str:
    """The cached image's folder (Debian 13 "trixie", or Debian 12
    "bookworm"); skip (with the reason) only when it cannot be built: not
    root, no QEMU 10, or the build failed."""
    _image = _images.setdefault(suite, {})
    if "dir" in _image:
        return str(_image["dir"])
    if "skip" in _image:
        pytest.skip(_image["skip"])
    reason = None
    if not os.environ.get("CRASHHP_DEBIAN_GUEST"):
        # About an hour with a 20-minute first build: opt-in, so that CI (the
        # README's test command) stays short; see README "A real Debian system".
        reason = "the Debian guest set is opt-in: set CRASHHP_DEBIAN_GUEST=1"
    elif os.geteuid() != 0:
        reason = "building the Debian guest image needs root (mmdebstrap)"
    elif shutil.which("qemu-system-x86_64") is None:
        reason = "QEMU is not installed (vmcores/lab/setup.sh --live)"
    if reason is None:
        log = Path(os.environ.get("TMPDIR", "/tmp")) / (
            f"drgn-crashhp-debian-image-{suite}.log"
        )
        try:
            with open(log, "w") as f:
                _image["dir"] = image_dir(log=f, suite=suite)
            return str(_image["dir"])
        except (subprocess.CalledProcessError, OSError) as e:
            tail = log.read_text().strip().splitlines()[-3:] if log.exists() else []
            reason = f"the Debian guest image cannot be built ({e}): {' | '.join(tail)}"
    _image["skip"] = reason
    pytest.skip(reason)


def payload_disk(where: Path) -> str:
    return str(payload(where / "payload.img"))


@contextlib.contextmanager
def boot(
    where: Path, gen: str, append: str = "", install: bool = True, name: str = "debian"
) -> Iterator[DebianGuest]:
    """A booted guest with the package installed in its venv; QEMU is shut
    down on exit."""
    img = image_or_skip()
    g = DebianGuest(
        where, img, gen, payload=payload_disk(where), append=append, name=name
    )
    with g:
        g.wait_ready()
        if install:
            g.install_package()
        yield g


def ram_loads(doc: Dict[str, Any]) -> List[List[int]]:
    loads = doc["elfcorehdr"]["header"]["loads"] if doc.get("elfcorehdr") else []
    # The first PT_LOAD is the kernel text; the others are RAM.
    return [[ld["paddr"], ld["paddr"] + ld["size"] - 1] for ld in loads[1:]]


def summary(doc: Dict[str, Any]) -> Dict[str, Any]:
    """What the live and the QMP reads must agree on."""
    return {
        "verdict": doc["verdict"],
        "exit_status": doc["exit_status"],
        "codes": [f["code"] for f in doc["findings"]],
        "system_ram": doc["state"]["system_ram"],
        "cpu_notes": doc["state"]["cpu_notes"],
        "elfcorehdr_ram": ram_loads(doc),
    }


def guest_report(
    g: DebianGuest, args: str = "", hide_debug: bool = False, timeout: int = 1800
) -> Tuple[Dict[str, Any], str, float]:
    """(JSON report, stderr, seconds) of drgn-crashhp run as root inside the
    guest on /proc/kcore. *hide_debug*: as if the -dbg package were not
    installed (an empty tmpfs over /usr/lib/debug for this run)."""
    cmd = f"drgn-crashhp --json {args} >/tmp/r.json 2>/tmp/r.err; echo rc=$?"
    if hide_debug:
        cmd = (
            "mount -t tmpfs none /usr/lib/debug && { "
            + cmd
            + "; umount /usr/lib/debug; }"
        )
    t = time.time()
    out = g.check(cmd, timeout)
    took = time.time() - t
    rc = int(out.strip().rsplit("rc=", 1)[1])
    err = g.check("cat /tmp/r.err")
    assert "Traceback" not in err, err
    doc = json.loads(g.check("cat /tmp/r.json"))
    assert doc["exit_status"] == rc, (rc, err)
    return doc, err, took


def host_report(
    g: DebianGuest, btf: bool = False, timeout: int = 1800
) -> Tuple[Dict[str, Any], str, float]:
    """drgn-crashhp --qemu on the host, with the -dbg vmlinux or in BTF mode."""
    symbols = ["--btf"] if btf else ["-s", g.vmlinux, "--no-default-symbols"]
    t = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn_crashhp",
            "--qemu",
            g.qmp_drgn,
            *symbols,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    took = time.time() - t
    assert "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)
    assert proc.returncode == doc["exit_status"], proc.stderr
    return doc, proc.stderr, took


def wait_memory_settled(g: DebianGuest, timeout: int = 120) -> str:
    """Wait until no memory block is going on or off line; return the states."""
    end = time.time() + timeout
    while True:
        out = g.check("cat /sys/devices/system/memory/memory*/state | sort | uniq -c")
        if "going" not in out or time.time() > end:
            return out
        time.sleep(2)


def optional(value: Optional[str]) -> str:
    return value or ""
