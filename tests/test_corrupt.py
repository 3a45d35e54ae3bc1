"""
Corrupt targets: each gives a clear finding or a one-line error with the
documented exit status; never a traceback, never a false "OK".

Real dumps (tests/conftest.py) are truncated or paired with the wrong debug
info and run through the command line; synthetic kernels (tests/support/synth.py,
tests/support/purgblob.py) carry the corrupt crash images, checked through
:func:`~drgn_crashhp.report.build_report`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence

import drgn
import pytest
from elftools.elf.elffile import ELFFile

from drgn_crashhp.findings import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_UNVERIFIED,
    EXIT_USAGE,
)
from drgn_crashhp.render.json import report_json
from drgn_crashhp.render.text import render_text
from drgn_crashhp.report import Report, build_report
from tests.conftest import ROOT, dump_without_btf, dwarf_program, real_fixture, unpack
from tests.support import purgblob as pb
from tests.support.synth import (
    HEAP_PHYS,
    PAGE_OFFSET,
    PT_LOAD,
    Machine,
    Seg,
    SynthKernel,
    default_iomem,
    elf_core_header,
    note,
    ram,
    text,
)

NOT_OK = (EXIT_PROBLEM, EXIT_UNVERIFIED)


# -- helpers ------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drgn_crashhp", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def assert_clean(proc: subprocess.CompletedProcess, statuses: Sequence[int]) -> None:
    """A documented status, no traceback, no "OK" verdict, a one-line error."""
    detail = (
        f"status {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\n"
        f"stderr:\n{proc.stderr[-2000:]}"
    )
    assert proc.returncode in statuses, detail
    assert "Traceback" not in proc.stderr + proc.stdout, detail
    assert "verdict: OK" not in proc.stdout, detail
    if proc.returncode == EXIT_USAGE:
        # drgn may log its own warnings first; ours is the last line.
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("drgn-crashhp: error: "), detail


def report_of(m: Machine) -> Report:
    """build_report on a synthetic kernel, rendered both ways."""
    report = build_report(SynthKernel(m).prog)
    render_text(report)
    json.dumps(report_json(report))
    return report


def codes(report: Report) -> List[str]:
    return [f.code for f in report.findings]


def assert_not_ok(report: Report, *expected: str) -> None:
    assert report.exit_status in NOT_OK, codes(report)
    assert report.verdict != "OK"
    for code in expected:
        assert code in codes(report), (code, codes(report))


def _phdrs(path: Path) -> List[Dict[str, int]]:
    with open(path, "rb") as f:
        return [
            dict(ph.header)
            for ph in ELFFile(f).iter_segments()
            if ph["p_type"] == "PT_LOAD"
        ]


def _file_offset(path: Path, paddr: int) -> int:
    """Where physical *paddr* is stored in an ELF vmcore."""
    for ph in _phdrs(path):
        if ph["p_paddr"] <= paddr < ph["p_paddr"] + ph["p_filesz"]:
            return ph["p_offset"] + paddr - ph["p_paddr"]
    raise LookupError(f"{paddr:#x} is not in {path}")


def _copy_prefix(src: Path, dst: Path, size: int) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        left = size
        while left:
            chunk = fin.read(min(left, 1 << 20))
            if not chunk:
                break
            fout.write(chunk)
            left -= len(chunk)


def _h(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


# -- real dumps through the command line ---------------------------------------


@pytest.mark.parametrize(
    "cut", ["ehdr", "headers", "before-crash-region", "inside-elfcorehdr", "last-byte"]
)
def test_truncated_vmcore(tmp_path: Path, cut: str) -> None:
    _, truth = real_fixture("file_base")
    dump = unpack.dump_path("file_base")
    crash_start = _h(truth["crash_kernel_region"][0])
    elfcorehdr = _h(truth["observed"]["elfcorehdr_paddr"])
    size = {
        "ehdr": 40,
        "headers": 4096,
        "before-crash-region": _file_offset(dump, crash_start),
        "inside-elfcorehdr": _file_offset(dump, elfcorehdr) + 100,
        "last-byte": dump.stat().st_size - 1,
    }[cut]
    short = tmp_path / "vmcore"
    _copy_prefix(dump, short, size)
    proc = run_cli(
        "-c",
        str(short),
        "-s",
        str(unpack.vmlinux_path()),
        "--no-default-symbols",
        "--json",
    )
    if cut in ("ehdr", "headers"):
        # No ELF header, or program headers whose data is gone: drgn cannot
        # open it; a one-line error.
        assert_clean(proc, (EXIT_USAGE,))
    elif cut == "last-byte":
        # Only the last byte of the highest RAM page is gone, which nothing
        # reads: the scenario's own verdict (healthy, digest match).
        assert truth["expected"]["elfcorehdr"] == "current"
        assert truth["expected"]["digest"] == "match"
        assert proc.returncode == EXIT_OK, proc.stderr
        assert json.loads(proc.stdout)["verdict"] == "OK"
    else:
        # Memory the checks need is gone: cannot verify, and says what.
        assert_clean(proc, (EXIT_UNVERIFIED,))
        found = {f["code"] for f in json.loads(proc.stdout)["findings"]}
        assert found & {"CHP002", "CHP011", "CHP022"}, found


def test_no_debug_info(tmp_path: Path) -> None:
    real_fixture("file_base")
    empty = tmp_path / "debug"
    empty.mkdir()
    proc = run_cli(
        "-c",
        str(dump_without_btf("file_base", tmp_path)),
        "--no-default-symbols",
        "--debug-directory",
        str(empty),
    )
    assert_clean(proc, (EXIT_USAGE,))
    assert "no kernel debug info" in proc.stderr


def test_random_elf_as_vmlinux() -> None:
    real_fixture("file_base")
    proc = run_cli(
        "-c",
        str(unpack.dump_path("file_base")),
        "-s",
        os.path.realpath(sys.executable),
        "--no-default-symbols",
    )
    assert_clean(proc, (EXIT_USAGE,))


def test_vmcore_as_vmlinux() -> None:
    real_fixture("file_base")
    dump = str(unpack.dump_path("file_base"))
    proc = run_cli("-c", dump, "-s", dump, "--no-default-symbols")
    assert_clean(proc, (EXIT_USAGE,))


def test_corrupt_dwarf_in_vmlinux(tmp_path: Path) -> None:
    real_fixture("file_base")
    vmlinux = unpack.vmlinux_path()
    with open(vmlinux, "rb") as f:
        abbrev = ELFFile(f).get_section_by_name(".debug_abbrev")
        offset, size = abbrev["sh_offset"], abbrev["sh_size"]
    data = bytearray(vmlinux.read_bytes())
    data[offset : offset + size] = b"\xff" * size
    bad = tmp_path / "vmlinux"
    bad.write_bytes(bytes(data))
    proc = run_cli(
        "-c", str(unpack.dump_path("file_base")), "-s", str(bad), "--no-default-symbols"
    )
    assert_clean(proc, (EXIT_USAGE,))


def test_vmcore_note_name_corrupt(tmp_path: Path) -> None:
    """A note name that is not UTF-8 (drgn ignores the note; the postmortem
    reader of the dump's own headers must too)."""
    _, truth = real_fixture("file_base")
    dump = unpack.dump_path("file_base")
    data = bytearray(dump.read_bytes())
    at = data.find(b"QEMU\0", 0, 0x10000)
    assert at > 0
    data[at : at + 4] = b"\xa2\xa2\xa2\xa2"
    bad = tmp_path / "vmcore"
    bad.write_bytes(bytes(data))
    proc = run_cli(
        "-c",
        str(bad),
        "-s",
        str(unpack.vmlinux_path()),
        "--no-default-symbols",
        "--json",
    )
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    # The scenario was healthy and stays so: the corrupt name is one more
    # name, the producer is still QEMU (its other CPUs' notes).
    assert truth["expected"]["elfcorehdr"] == "current"
    assert proc.returncode == doc["exit_status"] == EXIT_OK
    assert doc["dump"]["producer"] == "qemu"
    assert len(doc["dump"]["note_names"]) == len(set(doc["dump"]["note_names"])) > 3


def test_crash_region_excluded_from_kdump_vmcore() -> None:
    _, truth = real_fixture("kdump_memadd")
    proc = run_cli(
        "-c",
        str(unpack.dump_path("kdump_memadd")),
        "-s",
        str(unpack.vmlinux_path()),
        "--no-default-symbols",
        "--json",
    )
    assert_clean(proc, NOT_OK)
    doc = json.loads(proc.stdout)
    assert doc["exit_status"] == EXIT_UNVERIFIED
    assert "CHP011" in [f["code"] for f in doc["findings"]]


# -- corrupt crash images on synthetic kernels ---------------------------------
#
# Each case corrupts one thing of a healthy kexec_file_load image
# (tests/support/purgblob.py, whose report is OK: test_baseline_is_ok), so a non-OK
# status comes from the corruption. ERROR findings must give status 1.


def healthy(**machine_kw: Any) -> pb.Built:
    return pb.file_image(**machine_kw)


def with_elfcorehdr(data: bytes) -> Machine:
    built = healthy()
    built.machine.segments[0] = Seg(pb.ELF_MEM, 0x71000, data)  # type: ignore[index]
    return built.machine


def test_baseline_is_ok() -> None:
    report = report_of(healthy().machine)
    assert report.exit_status == EXIT_OK, codes(report)
    assert {"CHP013", "CHP021", "CHP056"} <= set(codes(report))
    assert report_of(with_elfcorehdr(pb.elfcorehdr())).exit_status == EXIT_OK


def test_image_pointer_unmapped() -> None:
    built = healthy(image_pointer=0xFFFF8880DEAD0000)
    assert_not_ok(report_of(built.machine), "CHP002")


def test_image_pointer_misaligned_into_page_end() -> None:
    # struct kimage straddles the end of the heap, the last readable byte.
    heap_end = HEAP_PHYS + len(SynthKernel(Machine()).mem.chunks[HEAP_PHYS])
    built = healthy(image_pointer=PAGE_OFFSET + heap_end - 8)
    assert_not_ok(report_of(built.machine), "CHP002")


@pytest.mark.parametrize("seed", range(8))
def test_image_pointer_at_random_bytes(seed: int) -> None:
    rnd = random.Random(seed)
    garbage = bytes(rnd.randrange(256) for _ in range(0x2000))
    built = healthy(image_pointer=PAGE_OFFSET + 0x7000000)
    built.machine.extra_memory[0x7000000] = garbage
    assert_not_ok(report_of(built.machine))


@pytest.mark.parametrize("nr", [0, 17, 200, (1 << 64) - 1])
def test_nr_segments_out_of_range(nr: int) -> None:
    report = report_of(healthy(nr_segments=nr).machine)
    assert_not_ok(report, "CHP003")
    assert report.exit_status == EXIT_PROBLEM
    image = report.facts.image
    assert image is not None and len(image.segments) <= 16


def test_overlapping_segments() -> None:
    built = healthy()
    segs = built.machine.segments
    assert segs is not None
    segs[2] = Seg(pb.PURG_MEM + 0x1000, 0x3000, segs[2].data)
    report = report_of(built.machine)
    [f] = [f for f in report.findings if f.code == "CHP003"]
    assert "overlap" in f.message
    assert report.exit_status == EXIT_PROBLEM


def test_segment_outside_ram() -> None:
    built = healthy()
    segs = built.machine.segments
    assert segs is not None
    segs[4] = Seg(0x100000000000, 0x100000, b"070701", present=False)
    report = report_of(built.machine)
    assert_not_ok(report, "CHP004")
    assert report.exit_status == EXIT_PROBLEM


def test_memsz_below_bufsz() -> None:
    built = healthy()
    segs = built.machine.segments
    assert segs is not None
    segs[4] = Seg(segs[4].mem, 0x1000, b"070701" + bytes(0x3000))
    report = report_of(built.machine)
    assert_not_ok(report, "CHP003")
    assert report.exit_status == EXIT_PROBLEM


def _header(**kw: Any) -> bytes:
    m = Machine()
    return elf_core_header(
        [note(m.crash_notes_phys(c)) for c in (0, 1, 2, 3)]
        + [
            note(0x3020000, 4132),
            text(),
            ram(0x100000, 0x2EFFFFFF),
            ram(0x3F000000, 0x3FFDFFFF),
        ],
        **kw,
    )


@pytest.mark.parametrize(
    "kw,reason",
    [
        (dict(e_phoff=0x71000), "run past the segment"),
        (dict(e_phoff=(1 << 64) - 1), "run past the segment"),
        (dict(e_phnum=65535), "PN_XNUM"),
        (dict(e_phnum=0), "e_phnum is 0"),
        (dict(e_type=1), "expected ET_CORE"),
    ],
)
def test_malformed_elfcorehdr(kw: Dict[str, int], reason: str) -> None:
    data = _header(**{k: v for k, v in kw.items() if k != "e_phoff"})
    if "e_phoff" in kw:
        data = data[:32] + struct.pack("<Q", kw["e_phoff"]) + data[40:]
    report = report_of(with_elfcorehdr(data))
    [f] = [f for f in report.findings if f.code == "CHP012"]
    assert reason in f.message
    assert report.exit_status == EXIT_PROBLEM


def _loads(pairs: Sequence[tuple]) -> List[tuple]:
    m = Machine()
    return (
        [note(m.crash_notes_phys(c)) for c in (0, 1, 2, 3)]
        + [note(0x3020000, 4132), text()]
        + [ram(s, e) for s, e in pairs]
    )


@pytest.mark.parametrize(
    "pairs",
    [
        # Unsorted: the kernel walks iomem in order and never writes this.
        [(0x3F000000, 0x3FFDFFFF), (0x100000, 0x2EFFFFFF)],
        # Overlapping ranges.
        [(0x100000, 0x2EFFFFFF), (0x2E000000, 0x3FFDFFFF)],
        # The same range twice.
        [(0x100000, 0x2EFFFFFF), (0x100000, 0x2EFFFFFF), (0x3F000000, 0x3FFDFFFF)],
    ],
)
def test_unsorted_or_overlapping_pt_loads(pairs: Sequence[tuple]) -> None:
    report = report_of(with_elfcorehdr(elf_core_header(_loads(pairs))))
    assert_not_ok(report, "CHP014")
    assert report.exit_status == EXIT_PROBLEM


def test_pt_load_wrapping_past_the_top() -> None:
    wrap = (PT_LOAD, 0, 0, (1 << 64) - 0x1000, 0x2000, 0x2000)
    loads = _loads([(0x100000, 0x2EFFFFFF), (0x3F000000, 0x3FFDFFFF)])
    hdr = elf_core_header(loads + [wrap])
    report = report_of(with_elfcorehdr(hdr))
    assert_not_ok(report, "CHP014")
    [f] = [f for f in report.findings if f.code == "CHP014"]
    assert "runs past the top" in f.message
    assert (f.details["paddr"], f.details["size"]) == ((1 << 64) - 0x1000, 0x2000)
    # The wrapped load is not taken for RAM, and no address is past 2**64.
    doc = report_json(report)
    assert "CHP051" not in codes(report)
    assert max(_numbers(doc)) < 1 << 64


def _numbers(value: Any) -> Iterator[int]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _numbers(v)


def test_crash_region_excluded_synthetic() -> None:
    built = healthy()
    for seg in built.machine.segments or ():
        seg.present = False
    report = report_of(built.machine)
    assert_not_ok(report, "CHP011")
    assert report.exit_status == EXIT_UNVERIFIED


# -- purgatory ---------------------------------------------------------------


def _purgatory_report(built: pb.Built) -> Report:
    return report_of(built.machine)


def test_purgatory_symbol_missing() -> None:
    built = pb.file_image()
    built.machine.symbols = {}
    built.machine.extra_memory = {}
    report = _purgatory_report(built)
    assert_not_ok(report)
    assert {"CHP090", "CHP026"} & set(codes(report))


def test_purgatory_blob_garbage() -> None:
    report = _purgatory_report(pb.file_image(blob=b"\x7fELF" + bytes(60)))
    assert_not_ok(report, "CHP026")


@pytest.mark.parametrize("offset", [1 << 63, (1 << 64) - 1])
def test_purgatory_blob_section_names_out_of_range(offset: int) -> None:
    # pyelftools seeks to the section name table's sh_offset as given:
    # OverflowError past 2**63.
    blob = bytearray(pb.build_blob())
    (shoff,) = struct.unpack_from("<Q", blob, 40)
    (shstrndx,) = struct.unpack_from("<H", blob, 62)
    struct.pack_into("<Q", blob, shoff + 64 * shstrndx + 24, offset)
    report = _purgatory_report(pb.file_image(blob=bytes(blob)))
    assert_not_ok(report, "CHP026")


@pytest.mark.parametrize(
    "regions",
    [
        [(0x7000000000, 0x100000)],
        [(pb.KERNEL_MEM, (1 << 63))],
        [((1 << 64) - 0x1000, 0x2000)],
    ],
)
def test_regions_outside_memory(regions: List[tuple]) -> None:
    with deadline(60):
        report = _purgatory_report(pb.file_image(regions=regions, digest=bytes(32)))
    assert_not_ok(report, "CHP025")


def test_kexec_load_regions_outside_memory() -> None:
    built = pb.load_image()
    purg = bytearray(built.purgatory)
    purg[pb.KT_REGIONS : pb.KT_REGIONS + 256] = pb.regions_table(
        [(0x7000000000, 0x1000), (pb.KERNEL_MEM, 1 << 63)]
    )
    built.machine.segments[3] = Seg(pb.PURG_MEM, pb.KT_MEMSZ, bytes(purg))  # type: ignore[index]
    with deadline(60):
        report = _purgatory_report(built)
    assert_not_ok(report)


def test_cmdline_pointer_outside_segments() -> None:
    # The digest covers the corrupt boot params, so only the command line
    # check can find this.
    report = _purgatory_report(pb.file_image(cmd_line_ptr=0xFFFFF000))
    assert report.exit_status == EXIT_PROBLEM
    found = codes(report)
    assert "CHP021" in found and "CHP020" not in found
    [f] = [f for f in report.findings if f.code == "CHP031"]
    assert "0xfffff000" in f.message and f.details["address"] == 0xFFFFF000


# -- corrupt machine state: bounded walks ------------------------------------


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs too long."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds}s: unbounded walk")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("how", ["self", "parent", "first", 0xFFFF8880DEAD0000])
def test_iomem_tree_corrupt(how: object) -> None:
    # Between the two System RAM ranges, so the walk must get past it (the
    # kernel's walk skips the children of System RAM; so do we).
    iomem = default_iomem(pb.CRASHK)
    iomem[1].sibling_raw = how
    with deadline(20):
        report = report_of(healthy(iomem=iomem).machine)
    assert_not_ok(report, "CHP090")


def _cyclic_memory_blocks() -> SynthKernel:
    """A memory_blocks xarray whose top node's last slot points at itself."""
    k = SynthKernel(
        pb.file_image(memory_blocks={0: "MEM_ONLINE", 100: "MEM_ONLINE"}).machine
    )
    head = k.prog["memory_blocks"].xa_head.value_()
    slot = head - 2 - PAGE_OFFSET - HEAP_PHYS + 24 + 8 * 63
    k.mem.chunks[HEAP_PHYS][slot : slot + 8] = struct.pack("<Q", head)
    return k


def _why_unknown(report: Report, field: str) -> str:
    return " ".join(u.reason for u in report.facts.state.unknown if u.what == field)


def test_memory_blocks_xarray_cycle() -> None:
    k = _cyclic_memory_blocks()
    with deadline(5):
        report = build_report(k.prog, digest=False)
    render_text(report)
    assert "corrupt" in _why_unknown(report, "memory_blocks")


def _fresh_real(name: str) -> drgn.Program:
    """A new program on a real dump (never the shared, cached one: the
    caller overlays memory on it)."""
    real_fixture(name)
    return dwarf_program(unpack.dump_path(name), unpack.vmlinux_path())


def _overlay(prog: drgn.Program, vaddr: int, data: bytes) -> None:
    """Replace the bytes at kernel-image address *vaddr* (later memory
    segments take precedence over the dump's)."""
    phys_base = int.from_bytes(prog.read(prog.symbol("phys_base").address, 8), "little")
    paddr = (vaddr - 0xFFFFFFFF80000000 + phys_base) % (1 << 64)
    assert prog.read(paddr, len(data), True) == prog.read(vaddr, len(data))
    prog.add_memory_segment(
        paddr, len(data), lambda a, n, off, phys: data[off : off + n], True
    )
    assert prog.read(vaddr, len(data)) == data


def test_printk_ring_tail_after_head() -> None:
    prog = _fresh_real("file_base")
    ring = prog["prb"].desc_ring
    head = ring.head_id.counter.value_()
    _overlay(
        prog, ring.tail_id.counter.address_, struct.pack("<Q", (head + 1) % (1 << 62))
    )
    with deadline(5):
        report = build_report(prog, digest=False)
    render_text(report)
    assert "corrupt" in _why_unknown(report, "log")
