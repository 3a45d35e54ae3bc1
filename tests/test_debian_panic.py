"""
A real panic on the Debian guests (issue 18, deliverables 5 and 6).

vmcores/lab/debian_panic.py boots an image (Debian 13 for 6.12 and 7.3,
Debian 12 for 6.1), lets kdump-tools load the crash kernel, hot-adds a
128 MiB DIMM, panics with sysrq-c, lets kdump-tools-dump.service save
/var/crash/<stamp>/dump.<stamp> and reboot, and copies /var/crash out with
the ground truth (truth.json). The capture kernel itself records the
PT_LOAD ranges of its /proc/vmcore (the RAM its elfcorehdr described) before
kdump-tools saves the dump. This test runs each scenario once (the result
is cached in the image's folder) and checks drgn-crashhp's report on the
dump against what the scenario did and what the guests said:

- the dump level is the one kdump-tools ran makedumpfile with (its log on
  the capture's console);
- RAM is reported missing (CHP070) exactly when the capture's /proc/vmcore
  did not describe the DIMM;
- the crashed kernel's RAM is /proc/iomem's System RAM before the panic;
- on 7.3 at kdump-tools' default level 31, makedumpfile drops live kernel
  objects with slab tail pages: CHP072 names each one the check needed
  (the crash image's struct kimage, the memory block list, an iomem node;
  which ones varies from dump to dump) and says to use level 23; drgn's own
  reading of the dump (libkdumpfile) must fail on exactly those, and on the
  kimage exactly when CHP072 names it. At 23 nothing is dropped and the
  image is read.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tests.conftest import ROOT, dwarf_program
from tests.support.debian import image_or_skip

pytestmark = pytest.mark.slow

FLAT_SIGNATURE = b"makedumpfile\0\0\0\0"  # MAKEDUMPFILE_SIGNATURE, 16 bytes

#: case: (generation, Debian release, MAKEDUMP_ARGS set by the scenario or
#: None for kdump-tools' defaults)
CASES: Dict[str, Tuple[str, str, Optional[str]]] = {
    "6.1": ("6.1", "bookworm", None),
    "6.12": ("6.12", "trixie", None),
    "7.3": ("7.3", "trixie", None),
    "7.3-d23": ("7.3", "trixie", "-c -d 23"),
}

Range = Tuple[int, int]


def _run(case: str) -> Tuple[Dict[str, Any], Path]:
    """The scenario's truth.json and result folder (run once; a result of
    an older scenario, without the capture's /proc/vmcore ranges, is run
    again)."""
    gen, suite, makedump_args = CASES[case]
    img = Path(image_or_skip(suite))
    out = img / f"panic-{case}"
    truth_file = out / "truth.json"
    if truth_file.exists():
        if "capture_vmcore" in json.loads(truth_file.read_text()):
            return json.loads(truth_file.read_text()), out
        shutil.rmtree(out)
    cmd = [sys.executable, str(ROOT / "vmcores" / "lab" / "debian_panic.py"), gen]
    cmd += ["--name", out.name]
    if makedump_args is not None:
        cmd += ["--makedump-args", makedump_args]
    subprocess.run(cmd, check=True, timeout=7200)
    return json.loads(truth_file.read_text()), out


def _iomem_system_ram(text: str) -> List[Range]:
    """Top-level "System RAM" of /proc/iomem (read as root)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) : System RAM$", line)
        if m:
            out.append((int(m.group(1), 16), int(m.group(2), 16)))
    return out


def _covers(ranges: List[Range], r: Range) -> bool:
    return any(a <= r[0] and r[1] <= b for a, b in ranges)


def _makedumpfile_args(serial: str) -> str:
    """What kdump-tools ran makedumpfile with in the capture kernel."""
    runs = re.findall(r"running makedumpfile (.*?) /proc/vmcore", serial)
    [args] = [a for a in runs if "--dump-dmesg" not in a]
    return args


#: the start of CHP072's name for the object a machine-state field is read
#: from (drgn_crashhp/checks/filtered.py)
_OBJECT_PREFIX = {
    "system_ram": "an iomem tree node",
    "memory_blocks": "the memory block list",
    "cpu_notes": "the per-CPU crash_notes pointers",
}


def _drgn_reads(
    dump: Path, vmlinux: Path, addresses: List[int]
) -> Tuple[int, Dict[int, bool]]:
    """drgn's own reading of *dump* (libkdumpfile reads the flattened file
    and its bitmaps): the value of kexec_crash_image, and whether a byte at
    it and at each of *addresses* can be read."""
    import drgn

    prog = dwarf_program(dump, vmlinux)
    kimage = prog["kexec_crash_image"].value_()
    assert kimage, "no crash kernel was loaded when the guest panicked"
    readable = {}
    for address in [kimage] + addresses:
        try:
            prog.read(address, 1)
            readable[address] = True
        except drgn.FaultError:
            readable[address] = False
    return kimage, readable


def _report(dump: Path, vmlinux: Path) -> Tuple[Dict[str, Any], str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn_crashhp",
            "-c",
            str(dump),
            "-s",
            str(vmlinux),
            "--no-default-symbols",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)
    assert proc.returncode == doc["exit_status"], proc.stderr
    return doc, proc.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_kdump_tools_dump_after_a_dimm_hot_add(case: str) -> None:
    gen, suite, makedump_args = CASES[case]
    truth, out = _run(case)
    assert truth["gen"] == gen and truth.get("makedump_args") == makedump_args
    dumps = sorted((out / "var-crash").rglob("dump.*"))
    assert len(dumps) == 1, truth["files"]
    dump = dumps[0]
    with open(dump, "rb") as f:
        assert f.read(16) == FLAT_SIGNATURE  # kdump-tools writes with -F
    assert dump.stat().st_size > 1 << 20

    # The scenario's ground truth.
    dimm = tuple(truth["dimm"]["range"])
    assert dimm[0] >= 1 << 32
    ram_before = _iomem_system_ram(truth["steps"]["iomem"]["output"])
    assert _covers(ram_before, dimm), "the DIMM was not online before the panic"
    vmcore = truth["capture_vmcore"]
    captured = [(p, p + size - 1) for p, size, _ in vmcore["loads"]]
    dimm_captured = _covers(captured, dimm)
    serial = (out / "run" / "panic.serial.log").read_text(errors="replace")
    args = _makedumpfile_args(serial)
    # kdump-tools adds -F (before its default "-c -d 31", after the user's)
    assert "-F" in args.split()
    if makedump_args is not None:
        assert [a for a in args.split() if a != "-F"] == makedump_args.split()
    level = int(re.search(r"-d (\d+)", args).group(1))

    img = Path(image_or_skip(suite))
    vmlinux = img / f"vmlinux-{truth['release']}"
    doc, _ = _report(dump, vmlinux)
    codes = [f["code"] for f in doc["findings"]]
    by_code = {f["code"]: f for f in doc["findings"]}
    print(case, doc["verdict"], codes)
    for f in doc["findings"]:
        if f["code"] in ("CHP070", "CHP071", "CHP072"):
            print(f["code"], f["message"])

    # The dump's kdump header: makedumpfile, at the level kdump-tools used.
    assert by_code["CHP071"]["details"]["dump_level"] == level
    assert doc["dump"]["dump_level"] == level

    # RAM missing from the dump exactly when the capture did not have it.
    if dimm_captured:
        assert "CHP070" not in codes
    else:
        missing = [tuple(r) for r in by_code["CHP070"]["details"]["ranges"]]
        assert _covers(missing, dimm), missing
        # nothing the capture described is called missing
        assert not any(_covers(captured, r) for r in missing), (missing, captured)

    # Which needed objects makedumpfile dropped is not the same from one
    # dump to the next (it depends on where the slab allocator put them), so
    # the ground truth is drgn's own reading of the dump (libkdumpfile, not
    # this package): the struct kimage that the crashed kernel's
    # kexec_crash_image points to, and each object CHP072 names.
    chp072 = by_code.get("CHP072")
    named = chp072["details"]["objects"] if chp072 else []
    kimage, readable = _drgn_reads(dump, vmlinux, [o["address"] for o in named])
    for o in named:
        assert not readable[o["address"]], o  # named: drgn cannot read it either
    names = [o["object"] for o in named]
    assert ("struct kimage of kexec_crash_image" in names) == (not readable[kimage])
    if chp072 is not None:
        # 7.3's page.compound_info: makedumpfile takes slab tail pages for
        # user pages (-d bit 8) and drops live kernel objects with them.
        assert gen == "7.3" and level & 8, chp072["message"]
        assert chp072["details"]["dump_level"] == level
        assert chp072["details"]["suggested_dump_level"] == level & ~8
        assert f"-d {level & ~8}" in chp072["details"]["setting"]
    if not readable[kimage]:
        # No image, nothing more to check: CANNOT VERIFY, unless RAM is
        # missing.
        assert "CHP005" not in codes, codes
        assert doc["exit_status"] == (1 if "CHP070" in codes else 3), codes
        return
    # The image was kept and read (CHP005), at the address drgn reads.
    assert "CHP002" not in codes and "CHP005" in codes, codes
    assert doc["image"]["address"] == kimage, doc["image"]
    # The crashed kernel's RAM and memory blocks, unless CHP072 says the
    # object they are read from was dropped.
    dropped = {u["what"] for u in doc["state"]["unknown"]} & {
        "system_ram",
        "memory_blocks",
        "cpu_notes",
    }
    for what in dropped:
        assert any(n.startswith(_OBJECT_PREFIX[what]) for n in names), (what, names)
    if "system_ram" not in dropped:
        assert doc["state"]["system_ram"] is not None
        assert [tuple(r) for r in doc["state"]["system_ram"]] == ram_before
        assert not doc["state"]["iomem_problem"]
    # The crash region is never in a kdump dump: the elfcorehdr cannot be
    # read back from it (the header the capture used is what
    # capture_vmcore recorded).
    assert "CHP011" in codes
    # CHP070 is a problem (exit 1); otherwise the crash region makes it
    # CANNOT VERIFY (3).
    assert doc["exit_status"] == (1 if "CHP070" in codes else 3), codes
