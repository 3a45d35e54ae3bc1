"""
Live over QMP on ppc64le (pseries) and arm64 (virt): Debian's own 6.12
kernels under QEMU TCG, booted from the kernel and initramfs that
vmcores/ppc64le and vmcores/arm64 ship (built by vmcores/lab/arch/setup.sh;
the guest driver and the hotplug steps are lab/arch/scenario.py's), a crash
kernel loaded with kexec-tools' kexec_load, and drgn-crashhp run from the
host with --qemu after each step:

- ppc64le: pseries has no -device vmcoreinfo, so drgn finds no VMCOREINFO
  in the guest's memory; the report needs --vmcoreinfo with what the
  guest's /sys/kernel/vmcoreinfo prints, and without it is a one-line
  error. Steps, kexec -p without --hotplug: baseline; a core added
  (PROBLEM, CHP080 on exactly the CPUs the guest made present); reloaded
  (consistent); a 1 GiB DIMM (PROBLEM, CHP050 on exactly the RAM the guest
  added). Then kexec -p --hotplug: the header kexec-tools built (CHP050 on
  the DIMM when kexec -d's PT_LOADs leave it out, as kexec-tools 2.0.29
  does on pseries); a second DIMM (the kernel rewrites the header from its
  own memory map: consistent, both DIMMs in it).
- arm64: QEMU's -device vmcoreinfo, which the guest fills through
  qemu_fw_cfg, so no option is needed (and --vmcoreinfo gives the same
  answer). Steps: baseline; a 512 MiB virtio-mem growth (PROBLEM, CHP050 on
  that range: nothing on arm64 rewrites the header); reloaded (the header
  kexec-tools built: CHP050 on the growth when kexec -d's PT_LOADs leave it
  out, as kexec-tools 2.0.29 does with virtio-mem's "System RAM
  (virtio_mem)").

Expected ranges and CPUs come from the guest (/proc/iomem, sysfs) and QMP,
never from the code under test. Each report is made twice, with Debian's
-dbg vmlinux (DWARF; when lab/arch/setup.sh has put it in the lab cache)
and with no debug info at all (BTF and kallsyms from the guest's memory):
same verdict, codes, memory and CPU rows.

A consistent image is OK, its sha256 matching (CHP021), with nothing
unverified.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tests.conftest import ROOT, unpack

pytestmark = pytest.mark.slow

GENS = {"ppc64le": "ppc64le-6.12", "arm64": "arm64-6.12"}
QEMU = {"ppc64le": "qemu-system-ppc64", "arm64": "qemu-system-aarch64"}
GiB = 1 << 30
Range = Tuple[int, int]
#: kexec -d, kexec-tools' crashdump-elf.c: one line per program header
PT_LOAD_LINE = re.compile(
    r"Elf header: p_type = 1, .* p_paddr = (0x[0-9a-f]+) .* p_memsz = (0x[0-9a-f]+)"
)


def _scenario_module() -> Any:
    """vmcores/lab/arch/scenario.py (not vmcores/lab/scenario.py, hence by
    path): its ARCHES machine flags, Run (boot, kexec, hotplug over QMP)
    and /proc/iomem helpers."""
    path = ROOT / "vmcores" / "lab" / "arch" / "scenario.py"
    spec = importlib.util.spec_from_file_location("lab_arch_scenario", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _qemu_major(binary: str) -> int:
    exe = shutil.which(binary)
    if exe is None:
        return 0
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+)", out)
    return int(m.group(1)) if m else 0


class Live:
    """One guest of *arch* and the reports made on it."""

    def __init__(self, arch: str, tmp_path: Path) -> None:
        gen = GENS[arch]
        if _qemu_major(QEMU[arch]) < 10:
            pytest.skip(
                f"QEMU 10 is not installed ({QEMU[arch]}; vmcores/lab/setup.sh --live)"
            )
        if gen not in unpack.generations():
            pytest.skip(f"no {gen} fixtures in this checkout")
        self.S = _scenario_module()
        self.arch = arch
        fixtures = unpack.unpack(gen)
        unpack.kernel_path(gen)  # /kernel of the initramfs, taken out once
        try:
            self.vmlinux: Optional[Path] = unpack.vmlinux_path(gen)
        except FileNotFoundError:
            self.vmlinux = None  # Debian's -dbg vmlinux: BTF mode only
        self.sock = str(tmp_path / "drgn.sock")
        self.run = self.S.Run(arch, "live", str(tmp_path), str(tmp_path), str(tmp_path))
        self.run.b = str(fixtures)  # kernel and initramfs.cpio of the fixtures
        self.vmcoreinfo: Optional[str] = None
        self.times: Dict[str, float] = {}
        self.notes: List[str] = []

    def boot(self) -> None:
        t = time.monotonic()
        self.run.boot(extra=["-qmp", f"unix:{self.sock},server=on,wait=off"])
        self.times["boot"] = time.monotonic() - t

    @property
    def g(self) -> Any:
        return self.run.g

    def system_ram(self) -> List[Range]:
        ram = self.S.merge(self.S.system_ram(self.g.read("/proc/iomem")))
        return [(s, e) for s, e in ram]

    def added(self, before: List[Range], after: List[Range]) -> List[Range]:
        """The RAM ranges of *after* that *before* lacks, merged."""
        diff = self.S.range_diff([list(r) for r in after], [list(r) for r in before])
        return [(s, e) for s, e in self.S.merge(diff)]

    def present(self) -> List[int]:
        return list(
            self.S.parse_cpulist(self.g.read("/sys/devices/system/cpu/present"))
        )

    def load(self, hotplug: bool) -> List[Range]:
        """kexec -p (-d) [--hotplug] after unloading what was loaded; the
        RAM of the elfcorehdr kexec-tools built, from kexec -d's lines."""
        self.g.check("kexec -p -u")
        self.run.load(hotplug)
        command, _status, out = self.g.transcript[-1]
        assert self.g.read("/sys/kernel/kexec_crash_loaded").strip() == "1"
        assert command.startswith("kexec -p -d"), command
        loads = [
            [int(m.group(1), 16), int(m.group(1), 16) + int(m.group(2), 16) - 1]
            for m in PT_LOAD_LINE.finditer(out)
        ]
        assert loads, "no PT_LOAD in kexec -d's output"
        return [(s, e) for s, e in self.S.merge(loads)]

    def report(self, dwarf: bool, vmcoreinfo: Optional[str] = None) -> Dict[str, Any]:
        args = ["--qemu", self.sock, "--no-default-symbols", "--json"]
        if vmcoreinfo:
            args += ["--vmcoreinfo", vmcoreinfo]
        if dwarf:
            assert self.vmlinux is not None
            args += ["-s", str(self.vmlinux)]
        t = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "drgn_crashhp", *args],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=ROOT,
        )
        key = "dwarf" if dwarf else "btf"
        self.times[key] = self.times.get(key, 0.0) + time.monotonic() - t
        self.times[key + " runs"] = self.times.get(key + " runs", 0) + 1
        assert "Traceback" not in proc.stderr, proc.stderr
        if not dwarf:
            # no debug info at all: the guest's own BTF and kallsyms, said once
            [line] = proc.stderr.strip().splitlines()
            assert "no kernel debug info found; btf+kallsyms: BTF from memory" in line
        doc: Dict[str, Any] = json.loads(proc.stdout)
        assert proc.returncode == doc["exit_status"]
        assert doc["debuginfo"] == ("dwarf" if dwarf else "btf+kallsyms")
        assert doc["target"] == f"QEMU guest {self.sock}"
        return doc

    def reports(self) -> Dict[str, Any]:
        """The report without debug info and, when Debian's -dbg vmlinux is
        there, with it: the same answers; the BTF one is returned."""
        btf = self.report(False, self.vmcoreinfo)
        if self.vmlinux is not None:
            dwarf = self.report(True, self.vmcoreinfo)
            assert (btf["verdict"], _codes(btf)) == (dwarf["verdict"], _codes(dwarf))
            for key in ("memory_rows", "cpu_rows", "header_ram"):
                assert btf["analysis"][key] == dwarf["analysis"][key], key
        return btf


def _codes(doc: Dict[str, Any], severity: Optional[str] = None) -> List[str]:
    return sorted(
        f["code"]
        for f in doc["findings"]
        if severity is None or f["severity"] == severity
    )


def _header_ram(doc: Dict[str, Any]) -> List[Range]:
    return [(s, e) for s, e in doc["analysis"]["header_ram"]]


def _covers(ranges: List[Range], rng: Range) -> bool:
    return any(s <= rng[0] and rng[1] <= e for s, e in ranges)


def assert_consistent(doc: Dict[str, Any]) -> None:
    """OK: no error, nothing unverified, and the digest matches."""
    assert _codes(doc, "error") == [], doc["findings"]
    assert _codes(doc, "unverified") == [], doc["findings"]
    assert doc["verdict"] == "OK", doc["findings"]
    assert "CHP021" in _codes(doc), doc["findings"]  # sha256 matches


def assert_missing_ram(doc: Dict[str, Any], added: List[Range]) -> None:
    assert doc["verdict"] == "PROBLEM", doc["findings"]
    assert _codes(doc, "error") == ["CHP050"], doc["findings"]
    [chp050] = [f for f in doc["findings"] if f["code"] == "CHP050"]
    assert [tuple(r) for r in chp050["details"]["ranges"]] == added


def _reload_and_judge(
    live: Live, added: List[Range], hotplug: bool
) -> Tuple[Dict[str, Any], List[Range]]:
    """Reload the crash kernel after RAM was *added*: the header is what
    kexec-tools built (kexec -d's PT_LOADs), so RAM it left out is still
    missing, and the image is consistent otherwise. The report and what
    was left out."""
    loads = live.load(hotplug=hotplug)
    left_out = [r for r in added if not _covers(loads, r)]
    doc = live.reports()
    if left_out:
        how = "kexec -p --hotplug" if hotplug else "kexec -p"
        live.notes.append(f"{how} left out {left_out} (kexec -d)")
        assert_missing_ram(doc, left_out)
    else:
        assert_consistent(doc)
    return doc, left_out


def test_ppc64le_pseries(tmp_path: Path) -> None:
    live = Live("ppc64le", tmp_path)
    try:
        live.boot()
        _ppc64le_steps(live)
    finally:
        live.run.close()
        print(f"ppc64le times: {live.times}; {live.notes}")


def _ppc64le_steps(live: Live) -> None:
    g = live.g
    live.load(hotplug=False)
    # pseries: QEMU's memory holds no VMCOREINFO for drgn; one line says what to pass
    proc = subprocess.run(
        [sys.executable, "-m", "drgn_crashhp", "--qemu", live.sock, "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "drgn found no VMCOREINFO" in proc.stderr
    assert '--vmcoreinfo "$(cat /sys/kernel/vmcoreinfo)"' in proc.stderr
    live.vmcoreinfo = g.read("/sys/kernel/vmcoreinfo").strip()
    # a wrong address (one page off) is one line too
    addr, size = live.vmcoreinfo.split()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn_crashhp",
            "--qemu",
            live.sock,
            "--vmcoreinfo",
            f"{int(addr, 16) + 0x1000:#x} {size}",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "no VMCOREINFO note at physical" in proc.stderr

    base = live.reports()
    assert_consistent(base)
    assert base["image"]["file_mode"] is False  # kexec_load
    assert base["state"]["vmcoreinfo"][0] == int(live.vmcoreinfo.split()[0], 16)
    # --vmcoreinfo scan finds the same note in the guest's RAM
    scanned = live.report(False, "scan")
    assert (scanned["verdict"], _codes(scanned)) == (base["verdict"], _codes(base))
    assert scanned["state"]["vmcoreinfo"] == base["state"]["vmcoreinfo"]
    assert scanned["analysis"]["memory_rows"] == base["analysis"]["memory_rows"]

    # a core, kexec -p without --hotplug: its CPUs are not in the loaded FDT
    present0 = live.present()
    live.run.add_core(1)
    new_cpus = sorted(set(live.present()) - set(present0))
    assert new_cpus, "the core did not come up in the guest"
    doc = live.reports()
    assert doc["verdict"] == "PROBLEM", doc["findings"]
    assert _codes(doc, "error") == ["CHP080"] * len(new_cpus), doc["findings"]
    cpus = [f["details"]["cpu"] for f in doc["findings"] if f["code"] == "CHP080"]
    assert cpus == new_cpus

    # reloaded: kexec-tools' FDT has the core
    live.load(hotplug=False)
    assert_consistent(live.reports())

    # a 1 GiB DIMM, kexec -p without --hotplug: the header misses exactly it
    ram0 = live.system_ram()
    dimm = live.run.add_dimm(1, GiB)
    added = live.added(ram0, live.system_ram())
    assert added == [(dimm[0], dimm[1])], (added, dimm)  # /proc/iomem == QMP
    assert_missing_ram(live.reports(), added)

    # reloaded with --hotplug
    _reload_and_judge(live, added, hotplug=True)

    # a second DIMM: with --hotplug the kernel rewrites the header from its
    # own memory map, both DIMMs included
    ram1 = live.system_ram()
    dimm2 = live.run.add_dimm(2, GiB)
    added2 = live.added(ram1, live.system_ram())
    assert added2 == [(dimm2[0], dimm2[1])], (added2, dimm2)
    after = live.reports()
    assert_consistent(after)
    for rng in added + added2:
        assert _covers(_header_ram(after), rng), after["analysis"]["header_ram"]
    assert after["image"]["hotplug"]["elfcorehdr_updated"] is True


def test_arm64_virt(tmp_path: Path) -> None:
    live = Live("arm64", tmp_path)
    try:
        live.boot()
        _arm64_steps(live)
    finally:
        live.run.close()
        print(f"arm64 times: {live.times}; {live.notes}")


def _arm64_steps(live: Live) -> None:
    g = live.g
    live.load(hotplug=False)
    # virt: -device vmcoreinfo, filled by the guest's qemu_fw_cfg: no option needed
    base = live.reports()
    assert_consistent(base)
    sysfs = g.read("/sys/kernel/vmcoreinfo").strip()
    assert base["state"]["vmcoreinfo"] == [int(w, 16) for w in sysfs.split()], sysfs
    # and --vmcoreinfo with what the guest prints gives the same answer
    given = live.report(False, sysfs)
    assert (given["verdict"], _codes(given)) == (base["verdict"], _codes(base))
    assert given["analysis"]["memory_rows"] == base["analysis"]["memory_rows"]
    # an address that is not RAM (virt's GIC at 0x8000000) is refused from
    # QEMU's memory map before anything reads it: reading device memory over
    # QMP segfaults QEMU 10 here
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn_crashhp",
            "--qemu",
            live.sock,
            "--vmcoreinfo",
            "0x8000000 1024",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "is not RAM of QEMU guest" in proc.stderr
    assert g.check("echo alive").strip() == "alive"

    # virtio-mem grows by 512 MiB: nothing on arm64 rewrites the header
    ram0 = live.system_ram()
    grown = live.run.grow_virtio_mem(512 << 20)
    added = live.added(ram0, live.system_ram())
    assert added == [(grown[0], grown[1])], (added, grown)  # /proc/iomem == QMP
    assert_missing_ram(live.reports(), added)

    # reloaded
    doc, left_out = _reload_and_judge(live, added, hotplug=False)
    if not left_out:
        assert _covers(_header_ram(doc), added[0])
