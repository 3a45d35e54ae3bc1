"""
Live target: real 6.12 and 7.3 guests under QEMU, read over QMP with drgn --qemu.

Boots the lab kernel (vmcores/bzImage-6.12) with -device vmcoreinfo, loads a
crash kernel with kexec_file_load, runs drgn-crashhp against the running
guest, hot-adds a 128 MiB DIMM and runs it again: the second report must show
the kernel's update (the DIMM range in the elfcorehdr). Needs QEMU 10 and the
lab initramfs shipped in vmcores/dumps.tar.zst (vmcores/lab/setup.sh --live
installs QEMU).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.conftest import ROOT, have_fixtures, unpack

LAB = ROOT / "vmcores" / "lab"
BZIMAGE = ROOT / "vmcores" / "bzImage-6.12"

pytestmark = pytest.mark.slow


def qemu_major() -> int:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return 0
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+)", out)
    return int(m.group(1)) if m else 0


def report(sock: str, gen: str = "6.12", btf: bool = False) -> Dict[str, Any]:
    symbols = [] if btf else ["-s", str(unpack.vmlinux_path(gen))]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn_crashhp",
            "--qemu",
            sock,
            *symbols,
            "--no-default-symbols",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if btf:
        # No debug info at all: the guest's own BTF and kallsyms, said once.
        [line] = proc.stderr.strip().splitlines()
        assert "no kernel debug info found; btf+kallsyms: BTF from memory" in line
    doc = json.loads(proc.stdout)
    assert proc.returncode == doc["exit_status"]
    return doc


def ram_loads(doc: Dict[str, Any]) -> List[List[int]]:
    loads = doc["elfcorehdr"]["header"]["loads"]
    return [[ld["paddr"], ld["paddr"] + ld["size"] - 1] for ld in loads[1:]]


def boot(tmp_path: Path, gen: str) -> Any:
    if qemu_major() < 10:
        pytest.skip("QEMU 10 is not installed (vmcores/lab/setup.sh --live)")
    if gen == "6.12" and (not BZIMAGE.exists() or not have_fixtures()):
        pytest.skip("lab kernel or its debug info is not in this checkout")
    if gen not in unpack.generations():
        pytest.skip(f"no {gen} fixtures in this checkout")
    bzimage = BZIMAGE if gen == "6.12" else unpack.bzimage_path(gen)
    initramfs = unpack.unpack(gen) / "initramfs.cpio"
    sys.path.insert(0, str(LAB))
    from guest import Guest  # type: ignore[import-not-found]

    sock = tmp_path / "drgn.qmp.sock"
    return Guest(
        str(tmp_path),
        str(bzimage),
        str(initramfs),
        append="console=ttyS0 crashkernel=24M memhp_default_state=online_movable",
        mem="128M,slots=4,maxmem=1G",
        extra_args=["-qmp", f"unix:{sock},server=on,wait=off"],
    ), str(sock)


@pytest.fixture
def guest(tmp_path: Path) -> Any:
    g, sock = boot(tmp_path, "6.12")
    with g:
        g.wait_ready()
        yield g, sock


def test_live_guest_shows_the_kernels_update(guest: Any) -> None:
    g, sock = guest
    g.check(
        "kexec -s -p /bzImage --initrd=/capture.cpio "
        '--append="console=ttyS0 acpi_no_memhotplug irqpoll nr_cpus=1"'
    )
    before = report(sock)
    assert before["verdict"] == "OK", before["findings"]
    assert before["target"] == f"QEMU guest {sock}"
    assert before["image"]["file_mode"] is True
    dimm = g.add_dimm(1)
    start, size = dimm["addr"], dimm["size"]
    g.check("sleep 2; grep -c online /sys/devices/system/memory/memory*/state")
    after = report(sock)
    assert [start, start + size - 1] in ram_loads(after)
    assert [start, start + size - 1] not in ram_loads(before)
    assert after["image"]["hotplug"]["elfcorehdr_updated"] is True
    assert after["verdict"] == "OK", after["findings"]


def test_live_guest_in_btf_mode(tmp_path: Path) -> None:
    """The 7.3 lab kernel (built with BTF) read over QMP with no vmlinux: the
    same answers as with its DWARF, before and after a DIMM hot-add."""
    g, sock = boot(tmp_path, "7.3")
    with g:
        g.wait_ready()
        g.check(
            "kexec -s -p /bzImage --initrd=/capture.cpio "
            '--append="console=ttyS0 acpi_no_memhotplug irqpoll nr_cpus=1"'
        )
        dimm = g.add_dimm(1)
        start, size = dimm["addr"], dimm["size"]
        g.check("sleep 2; grep -c online /sys/devices/system/memory/memory*/state")
        btf = report(sock, "7.3", btf=True)
        dwarf = report(sock, "7.3")
    assert (btf["debuginfo"], dwarf["debuginfo"]) == ("btf+kallsyms", "dwarf")
    assert [start, start + size - 1] in ram_loads(btf)
    assert btf["verdict"] == dwarf["verdict"] == "OK", btf["findings"]
    assert [f["code"] for f in btf["findings"]] == [
        f["code"] for f in dwarf["findings"]
    ]
    assert btf["state"]["system_ram"] == dwarf["state"]["system_ram"]
    assert btf["state"]["cpu_notes"] == dwarf["state"]["cpu_notes"]
