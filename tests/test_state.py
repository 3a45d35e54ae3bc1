"""The machine-state reader, the elfcorehdr rebuild and the comparison."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence, Tuple

import pytest

from drgn_crashhp.analysis import memory_rows
from drgn_crashhp.arch.x86_64 import ARCH as X86
from drgn_crashhp.facts import DumpHeaders, DumpLoad, LogLine
from drgn_crashhp.findings import Finding
from drgn_crashhp.kernel.elfcorehdr import rebuild_elfcorehdr
from drgn_crashhp.kernel.exclusions import ENOMEM, crash_exclude_mem_range
from drgn_crashhp.kernel.notes import note_rule
from drgn_crashhp.read.elfcorehdr import read_elfcorehdr
from drgn_crashhp.read.image import read_kimage
from drgn_crashhp.read.state import read_state
from tests.support.helpers import check_dump, check_state, render_state
from tests.support.synth import (
    IORESOURCE_BUSY,
    IORESOURCE_MEM,
    KERNEL_PHYS,
    KERNEL_SIZE,
    PAGE_OFFSET,
    PT_LOAD,
    TEXT,
    Machine,
    Res,
    Seg,
    SynthKernel,
    default_iomem,
    elf_core_header,
    note,
    ram,
    text,
)

ELF_MEM = 0x2F000000
PURG_MEM = 0x3E000000
CRASHK = (0x2F000000, 0x3EFFFFFF)
#: RAM of default_iomem() after the kernel's exclusions (low 1 MiB, crashk).
RAM = [(0x100000, 0x2EFFFFFF), (0x3F000000, 0x3FFDFFFF)]
DIMM = (0x100000000, 0x107FFFFFF)  # 128 MiB, blocks 32 (128 MiB sections)
VMCI = SynthKernel(Machine()).vmcoreinfo_note_phys
NOTE = Machine().crash_notes_phys


def header(
    cpus: Sequence[int] = (0, 1, 2, 3),
    ranges: Sequence[Tuple[int, int]] = RAM,
    vmcoreinfo: Tuple[int, int] = (VMCI, 4132),
    kernel=None,
    notes: Sequence[int] = (),
) -> bytes:
    """A kernel-format header: CPU notes, vmcoreinfo, text, RAM."""
    return elf_core_header(
        [note(NOTE(c)) for c in cpus]
        + [note(a) for a in notes]
        + [note(*vmcoreinfo), kernel or text()]
        + [ram(s, e) for s, e in ranges]
    )


def dimm_iomem(dimm: Tuple[int, int] = DIMM) -> List[Res]:
    return default_iomem(CRASHK) + [Res("System RAM", *dimm)]


def load(hdr: bytes, memsz: int = 0x71000, **kw: object):
    args: Dict[str, object] = dict(
        segments=[Seg(ELF_MEM, memsz, hdr), Seg(PURG_MEM, 0x5000, b"\xcc" * 0x100)],
        start=PURG_MEM + 0x40,
        elfcorehdr_index=0,
        elf_load_addr=ELF_MEM,
    )
    args.update(kw)
    k = SynthKernel(Machine(**args))  # type: ignore[arg-type]
    image = read_kimage(k.prog)
    assert image is not None
    rd = read_elfcorehdr(k.prog, image)
    assert rd.header is not None, rd.unread
    return image, rd.header, rd.data, read_state(k.prog)


def check(hdr: bytes, **kw: object) -> List[Finding]:
    image, h, data, state = load(hdr, **kw)
    return check_state(image, h, data, state)


def codes(findings: List[Finding]) -> Dict[str, Finding]:
    return {f.code: f for f in findings}


ERRORS = {"CHP040", "CHP042", "CHP043", "CHP050", "CHP051", "CHP052", "CHP054"}


# -- the reader -----------------------------------------------------------------------


def test_read_state_matches_machine() -> None:
    m = Machine(possible=(0, 1, 2, 3, 5), present=(0, 1, 5), online=(0, 5))
    k = SynthKernel(m)
    s = read_state(k.prog)
    assert s.possible_cpus == (0, 1, 2, 3, 5)
    assert s.present_cpus == (0, 1, 5)
    assert s.online_cpus == (0, 5)
    assert [(n.cpu, n.paddr) for n in s.cpu_notes] == [
        (c, m.crash_notes_phys(c)) for c in (0, 1, 2, 3, 5)
    ]
    assert [n.present for n in s.cpu_notes] == [True, True, False, False, True]
    assert s.note_size == 368
    assert s.vmcoreinfo == (k.vmcoreinfo_note_phys, 4132)
    assert s.kernel_text is not None
    assert (s.kernel_text.vaddr, s.kernel_text.paddr, s.kernel_text.size) == (
        TEXT,
        KERNEL_PHYS,
        KERNEL_SIZE,
    )
    assert s.page_offset == PAGE_OFFSET
    assert s.system_ram == ((0x1000, 0x9FBFF), (0x100000, 0x3FFDFFFF))
    assert s.crashk_res == CRASHK
    assert s.crashk_low_res == (0, 0)
    assert s.crashk_cma is None
    assert s.kexec_lock == 0
    assert s.iomem_problem is None


def test_missing_symbols_become_unknown() -> None:
    k = SynthKernel(
        Machine(omit=("vmcoreinfo_note", "crash_notes", "crashk_res"), kexec_lock=None)
    )
    s = read_state(k.prog)
    assert s.vmcoreinfo is None and s.crashk_res is None and s.kexec_lock is None
    assert all(n.paddr is None for n in s.cpu_notes)
    unknown = {u.what: u.reason for u in s.unknown}
    for name in ("vmcoreinfo", "cpu_notes", "crashk_res", "kexec_lock"):
        assert name in unknown
    assert rebuild_elfcorehdr(s).data == b""
    assert "vmcoreinfo" in rebuild_elfcorehdr(s).missing


def test_walk_system_ram_res_rules() -> None:
    iomem = [
        Res("Reserved", 0x0, 0xFFF, IORESOURCE_MEM | IORESOURCE_BUSY),
        # A busy RAM node: reported whole; its RAM child is not reported.
        Res(
            "System RAM", 0x1000, 0x9FFFF, children=[Res("System RAM", 0x2000, 0x2FFF)]
        ),
        Res("System RAM", 0x100000, 0x1FFFFF),
        # Overlaps the previous one: clipped to the cursor.
        Res("System RAM", 0x180000, 0x2FFFFF),
        # Not busy: descended into; its RAM children are found.
        Res(
            "PCI Bus",
            0x80000000,
            0x8FFFFFFF,
            IORESOURCE_MEM,
            children=[
                Res("System RAM", 0x80000000, 0x87FFFFFF),
                Res("device", 0x88000000, 0x88FFFFFF, IORESOURCE_MEM),
            ],
        ),
        # RAM but not busy: no match.
        Res("System RAM", 0x90000000, 0x90FFFFFF, IORESOURCE_MEM | 0x01000000),
    ]
    s = read_state(SynthKernel(Machine(iomem=iomem)).prog)
    assert s.system_ram == (
        (0x1000, 0x9FFFF),
        (0x100000, 0x1FFFFF),
        (0x200000, 0x2FFFFF),
        (0x80000000, 0x87FFFFFF),
    )


@pytest.mark.parametrize(
    "node,link,target",
    [
        (3, "sibling_raw", "first"),
        (3, "sibling_raw", "self"),
        # the non-busy "PCI Bus" node is descended into: its child is the root
        (4, "child_raw", "parent"),
    ],
)
def test_iomem_cycle_is_bounded(node: int, link: str, target: str) -> None:
    iomem = default_iomem(CRASHK)
    setattr(iomem[node], link, target)
    image, h, data, state = load(header(), iomem=iomem)
    assert state.iomem_problem is not None and "cycle" in state.iomem_problem
    found = codes(check_state(image, h, data, state))
    assert "CHP090" in found and "CHP056" not in found
    assert rebuild_elfcorehdr(state).data == b""


def test_iomem_garbage_pointer_is_bounded() -> None:
    iomem = default_iomem(CRASHK)
    iomem[1].sibling_raw = 0xFFFF888DEAD00000
    s = read_state(SynthKernel(Machine(iomem=iomem)).prog)
    assert s.iomem_problem is not None and "unreadable" in s.iomem_problem
    assert s.system_ram == ((0x1000, 0x9FBFF),)


@pytest.mark.parametrize("enum", [True, False])
def test_memory_blocks(enum: bool) -> None:
    blocks = {
        0: "MEM_ONLINE",
        1: "MEM_ONLINE",
        32: "MEM_OFFLINE",
        100: "MEM_GOING_OFFLINE",
    }
    m = Machine(memory_blocks=blocks, memory_block_enum=enum)
    s = read_state(SynthKernel(m).prog)
    assert s.memory_block_encoding == (
        "enum memory_block_state" if enum else "bit flags"
    )
    assert s.memory_block_size == 128 << 20
    assert [(b.block_id, b.start, b.end, b.state) for b in s.memory_blocks or ()] == [
        (i, *m.memory_block_range(i), state) for i, state in blocks.items()
    ]


# -- the kernel's exclusion rules -----------------------------------------------------


@pytest.mark.parametrize(
    "ranges,cut,max_nr,want,err",
    [
        # trim the start, trim the end, drop whole
        ([(0, 99)], (0, 9), 1, [(10, 99)], 0),
        ([(0, 99)], (90, 200), 1, [(0, 89)], 0),
        ([(0, 9), (20, 29)], (0, 9), 2, [(20, 29)], 0),
        # one cut across several ranges: drop the middle one, trim both sides
        ([(0, 9), (20, 29), (40, 49)], (5, 44), 3, [(0, 4), (45, 49)], 0),
        # split with a free slot
        ([(0, 99), (200, 299)], (10, 19), 3, [(0, 9), (20, 99), (200, 299)], 0),
        # split without one
        ([(0, 99), (200, 299)], (10, 19), 2, [(0, 99), (200, 299)], -ENOMEM),
        # no overlap
        ([(100, 199)], (0, 99), 1, [(100, 199)], 0),
    ],
)
def test_crash_exclude_mem_range(ranges, cut, max_nr, want, err) -> None:
    got, rc = crash_exclude_mem_range(ranges, max_nr, *cut)
    assert (list(got), rc) == (want, err)


def test_rebuild_excludes_and_sizes_like_the_kernel() -> None:
    m = Machine(
        crashk_low=(0x20000000, 0x20FFFFFF), crashk_cma=[(0x3F800000, 0x3F8FFFFF)]
    )
    s = read_state(SynthKernel(m).prog)
    exp = rebuild_elfcorehdr(s)
    # crashk splits [1M, end), crashk_low and one CMA range split it again.
    assert exp.ram == (
        (0x100000, 0x1FFFFFFF),
        (0x21000000, 0x2EFFFFFF),
        (0x3F000000, 0x3F7FFFFF),
        (0x3F900000, 0x3FFDFFFF),
    )
    assert exp.max_nr_ranges == 2 + 3 + 1  # v6.17: count + 3 + crashk_cma_cnt
    assert exp.error is None
    plain = rebuild_elfcorehdr(read_state(SynthKernel(Machine()).prog))
    assert plain.max_nr_ranges == 2 + 2  # 6.12: count + 2
    assert plain.nr_phdr == 4 + 1 + 2 + 1
    assert plain.data == header()


# -- verdicts -------------------------------------------------------------------------


def test_byte_identical_and_current() -> None:
    found = codes(check(header()))
    assert "CHP055" in found and "CHP056" in found
    assert not ERRORS & set(found)
    assert found["CHP056"].details["byte_identical"] is True


def test_same_content_other_order_is_current_not_identical() -> None:
    found = codes(check(header(ranges=RAM[::-1])))
    assert "CHP055" not in found and "CHP056" in found
    assert "program header 6" in found["CHP056"].message


def test_ram_missing_online_dimm() -> None:
    found = codes(check(header(), iomem=dimm_iomem(), memory_blocks={32: "MEM_ONLINE"}))
    f = found["CHP050"]
    assert f.details["ranges"] == [[DIMM[0], DIMM[1]]]
    assert f.details["bytes"] == DIMM[1] - DIMM[0] + 1
    assert "CHP056" not in found and "CHP055" not in found


def test_added_but_offline_is_info() -> None:
    found = codes(
        check(header(), iomem=dimm_iomem(), memory_blocks={32: "MEM_OFFLINE"})
    )
    assert "CHP050" not in found
    assert found["CHP053"].details["ranges"] == [[DIMM[0], DIMM[1]]]


def test_removed_memory_still_described() -> None:
    found = codes(check(header(ranges=RAM + [DIMM])))
    f = found["CHP051"]
    assert f.details["ranges"] == [[DIMM[0], DIMM[1]]]
    assert "MEM_OFFLINE" in f.message  # x86 hot-remove explanation (supported)
    assert "CHP050" not in found and "CHP056" not in found


def test_partial_overlap() -> None:
    found = codes(check(header(ranges=[RAM[0], (0x3F000000, 0x4FFFFFFF)])))
    f = found["CHP052"]
    assert f.details["ranges"] == [
        {"range": [0x3F000000, 0x4FFFFFFF], "not_ram": [[0x3FFE0000, 0x4FFFFFFF]]}
    ]
    assert "CHP051" not in found


def test_cpu_missing_note() -> None:
    found = codes(check(header(cpus=(0, 2, 3))))
    assert found["CHP040"].details["cpus"] == [1]


def test_cpu_note_wrong_address() -> None:
    hdr = elf_core_header(
        [
            note(NOTE(0)),
            note(NOTE(1) + 0x40),
            note(NOTE(2)),
            note(NOTE(3)),
            note(VMCI, 4132),
            text(),
        ]
        + [ram(s, e) for s, e in RAM]
    )
    found = codes(check(hdr))
    assert found["CHP042"].details["notes"] == [
        {"cpu": 1, "header": NOTE(1) + 0x40, "crash_notes": NOTE(1)}
    ]
    assert "CHP040" not in found


def test_possible_cpus_without_notes_on_kernel_header() -> None:
    found = codes(check(header(cpus=(0, 1))))
    assert found["CHP044"].details["cpus"] == [2, 3]
    assert "CHP040" not in found


def test_vmcoreinfo_wrong() -> None:
    found = codes(check(header(vmcoreinfo=(VMCI + 0x1000, 4132))))
    assert "CHP043" in found
    found = codes(check(header(vmcoreinfo=(VMCI, 4096))))
    assert found["CHP043"].details["header_size"] == 4096


def test_kernel_text_wrong() -> None:
    hdr = header(kernel=(PT_LOAD, KERNEL_PHYS, TEXT, KERNEL_PHYS, 0x1000000, 0x1000000))
    found = codes(check(hdr))
    assert found["CHP054"].details["header"]["size"] == 0x1000000
    assert found["CHP054"].details["kernel"]["size"] == KERNEL_SIZE


# -- kernels before v6.6, kexec-tools -------------------------------------------------


def test_pre_6_6_notes_for_present_cpus() -> None:
    kw = dict(layout="pre-hotplug", elfcorehdr_index=-1)
    image, h, data, state = load(header(cpus=(0, 1)), **kw)
    assert note_rule(image, h, state).kind == "present"
    found = codes(check_state(image, h, data, state))
    assert "CHP055" in found and "CHP056" in found
    assert "CHP044" not in found and "CHP063" in found
    # CPU 2 hot-added since the load: no note for it.
    found = codes(check(header(cpus=(0, 1)), present=(0, 1, 2), **kw))
    assert found["CHP040"].details["cpus"] == [2]
    # CPU 1 hot-removed: its note is for a CPU that no longer exists.
    found = codes(check(header(cpus=(0, 1)), present=(0,), online=(0,), **kw))
    assert found["CHP041"].details["cpus"] == [1]


def test_pre_hotplug_layout_with_possible_notes() -> None:
    # A v6.6+ kernel with CONFIG_CRASH_HOTPLUG=n: notes for all possible CPUs.
    image, h, data, state = load(header(), layout="pre-hotplug", elfcorehdr_index=-1)
    assert note_rule(image, h, state).kind == "possible"
    assert "CHP055" in codes(check_state(image, h, data, state))


def kexec_tools_header(cpus: Sequence[int] = (0, 1)) -> bytes:
    # kexec-tools 2.0.29 (as in vmcores/load_stale_memadd.json): notes for
    # CPUs present at load, vmcoreinfo, the text mapping (here 2 MiB longer,
    # as kexec-tools aligns a kcore segment), the low System RAM range with
    # p_offset at the backup segment, then RAM.
    backup = 0x3D000000
    return elf_core_header(
        [note(NOTE(c)) for c in cpus]
        + [note(VMCI, 4132)]
        + [
            (
                PT_LOAD,
                KERNEL_PHYS,
                TEXT,
                KERNEL_PHYS,
                KERNEL_SIZE + 0x200000,
                KERNEL_SIZE + 0x200000,
            ),
            (PT_LOAD, backup, PAGE_OFFSET + 0x1000, 0x1000, 0x9EC00, 0x9EC00),
        ]
        + [ram(s, e) for s, e in RAM]
    )


def test_kexec_tools_header_judged_by_content() -> None:
    kw = dict(
        file_mode=False,
        hotplug_support=False,
        elfcorehdr_index=-1,
        elf_load_addr=0,
        memsz=0x4000,
    )
    image, h, data, state = load(kexec_tools_header(), **kw)
    assert note_rule(image, h, state).kind == "kexec-tools"
    found = codes(check_state(image, h, data, state))
    assert not ERRORS & set(found), found
    assert "CHP056" in found and "CHP055" not in found and "CHP063" in found
    found = codes(check(kexec_tools_header(), iomem=dimm_iomem(), **kw))
    assert found["CHP050"].details["ranges"] == [[DIMM[0], DIMM[1]]]


# -- hotplug machinery ----------------------------------------------------------------


def many_ranges(n: int) -> List[Tuple[int, int]]:
    return [
        (0x100000 + i * 0x200000, 0x100000 + i * 0x200000 + 0xFFFFF) for i in range(n)
    ]


def test_no_room_left() -> None:
    # memsz 0x1000 holds (4096 - 64) // 56 = 72 phdrs: 4 CPUs + 2 + 66 ranges.
    ranges = many_ranges(66)
    iomem = [Res("System RAM", s, e) for s, e in ranges]
    crashk = (0x2F000000, 0x2FFFFFFF)
    found = codes(
        check(header(ranges=ranges), memsz=0x1000, iomem=iomem, crashk=crashk)
    )
    f = found["CHP060"]
    assert (
        f.details["phdr_slots"],
        f.details["needed_now"],
        f.details["free_phdrs"],
    ) == (72, 72, 0)
    assert "CHP056" in found
    found = codes(
        check(header(ranges=ranges[:60]), memsz=0x1000, iomem=iomem[:60], crashk=crashk)
    )
    assert "CHP060" not in found and found["CHP065"].details["free_phdrs"] == 6
    # 0x71000 is crash_load_segments()'s size for 2 + 64 + 8192 phdrs.
    found = codes(check(header()))
    assert found["CHP065"].details["sized_for"]["CONFIG_NR_CPUS_DEFAULT"] == 64


def test_hotplug_status() -> None:
    found = codes(check(header(), hp_action=3, elfcorehdr_updated=True))
    assert found["CHP064"].details["hp_action"] == "ADD_MEMORY"
    f = found["CHP061"]
    assert f.details["support"] is True and f.details["elfcorehdr_updated"] is True
    assert f.details["sysfs_crash_hotplug"] == "1"
    found = codes(check(header(), hotplug_support=False))
    assert "CHP063" in found and found["CHP061"].details["sysfs_crash_hotplug"] == "0"
    found = codes(check(header(), kexec_lock=1))
    assert found["CHP064"].details["kexec_lock"] == 1


def test_log_failures() -> None:
    image, h, data, state = load(header())
    lines = (
        LogLine(
            7,
            1000,
            6,
            "crash hp: kexec_trylock() failed, kdump image may be inaccurate",
        ),
        LogLine(9, 2000, 6, "kexec: Loaded ELF headers at 0x2f000000"),
    )
    found = codes(check_state(image, h, data, dataclasses.replace(state, log=lines)))
    assert [ln["seq"] for ln in found["CHP062"].details["lines"]] == [7]
    assert "CHP062" not in codes(
        check_state(image, h, data, dataclasses.replace(state, log=lines[1:]))
    )


def test_render_state_rows() -> None:
    image, h, data, state = load(
        header(), iomem=dimm_iomem(), memory_blocks={32: "MEM_ONLINE"}
    )
    rows = memory_rows([(ld.paddr, ld.end) for ld in h.loads[1:]], state)
    assert [(r.start, r.end, r.status) for r in rows] == [
        (0x1000, 0x9FBFF, "excluded"),
        (0x100000, 0x2EFFFFFF, "described"),
        (0x2F000000, 0x3EFFFFFF, "excluded"),
        (0x3F000000, 0x3FFDFFFF, "described"),
        (DIMM[0], DIMM[1], "MISSING"),
    ]
    text = render_state(state, h, image)
    assert "MISSING" in text and f"{NOTE(3):#x}" in text


# -- postmortem -----------------------------------------------------------------------


def kdump(loads: Sequence[Tuple[int, int]]) -> DumpHeaders:
    return DumpHeaders(
        "vmcore",
        "kdump",
        "test",
        ("CORE", "VMCOREINFO"),
        tuple(DumpLoad(s, PAGE_OFFSET + s, e - s + 1, e - s + 1) for s, e in loads),
    )


def test_check_dump() -> None:
    state = read_state(SynthKernel(Machine(iomem=dimm_iomem())).prog)
    found = codes(check_dump(kdump(RAM + [DIMM]), state))
    assert set(found) == {"CHP071"}
    found = codes(check_dump(kdump(RAM), state))
    assert found["CHP070"].details["ranges"] == [[DIMM[0], DIMM[1]]]
    qemu = dataclasses.replace(kdump(RAM), producer="qemu")
    assert check_dump(qemu, state) == []
    # Added but never onlined memory is not expected in the dump.
    offline = read_state(
        SynthKernel(Machine(iomem=dimm_iomem(), memory_blocks={32: "MEM_OFFLINE"})).prog
    )
    assert set(codes(check_dump(kdump(RAM), offline))) == {"CHP071"}


# -- real 6.12 dumps (vmcores/) -------------------------------------------------------

try:
    from tests.conftest import real_fixture, scenario_names
except ImportError:  # conftest without the real-fixture loader
    real_fixture = None  # type: ignore[assignment]

    def scenario_names() -> list:  # type: ignore[misc]
        return []


REAL = scenario_names() or ["file_base"]


def fixture(name: str):
    if real_fixture is None:
        pytest.skip("no real-fixture loader")
    return real_fixture(name)


def hx(v: str) -> int:
    return int(v, 16)


def cpulist(text: str) -> Tuple[int, ...]:
    out: List[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return tuple(out)


def iomem_system_ram(text: str) -> Tuple[Tuple[int, int], ...]:
    """walk_system_ram_res() over the guest's /proc/iomem text (every "System
    RAM" line of this guest is busy RAM; /proc/iomem does not print flags)."""
    out: List[Tuple[int, int]] = []
    cursor, skip = 0, None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        span, _, name = line.strip().partition(" : ")
        start, end = (int(x, 16) for x in span.split("-"))
        if skip is not None and indent > skip:
            continue
        skip = None
        if end >= cursor and name.startswith("System RAM"):
            out.append((max(cursor, start), end))
            cursor, skip = end + 1, indent
    return tuple(out)


@pytest.mark.parametrize("name", REAL)
def test_real_state_is_the_guests_view(name: str) -> None:
    prog, truth = fixture(name)
    g = truth["guest_state"]
    s = read_state(prog)
    assert s.system_ram == iomem_system_ram(g["proc_iomem"])
    assert s.iomem_problem is None
    for key in ("possible", "present", "online"):
        assert getattr(s, f"{key}_cpus") == cpulist(g["cpu"][key])
    for cpu_name, sysfs in g["cpu"]["cpus"].items():
        n = s.note_of(int(cpu_name[3:]))
        assert n is not None and n.paddr == hx(sysfs["crash_notes"])
        assert s.note_size == sysfs["crash_notes_size"]
    addr, size = g["sys_kernel"]["vmcoreinfo"].split()
    assert s.vmcoreinfo == (hx(addr), hx(size))
    assert s.crashk_res == tuple(hx(v) for v in truth["crash_kernel_region"])
    assert s.memory_block_size == hx(g["memory"]["block_size_bytes"])
    blocks = {f"memory{b.block_id}": (b.state, b.start) for b in s.memory_blocks or ()}
    assert blocks == {
        k: ("MEM_" + v["state"].upper(), hx(v["phys_index"]) * s.memory_block_size)
        for k, v in g["memory"]["blocks"].items()
    }
    image = read_kimage(prog)
    if image is not None:
        hp = codes(check_state(image, None, None, s))["CHP061"]
        assert hp.details["sysfs_crash_hotplug"] == g["cpu"]["crash_hotplug"]


def real_check(name: str):
    prog, truth = fixture(name)
    image = read_kimage(prog)
    assert image is not None
    rd = read_elfcorehdr(prog, image)
    assert rd.header is not None
    state = read_state(prog)
    return truth, rd.header, codes(check_state(image, rd.header, rd.data, state)), state


@pytest.mark.parametrize(
    "name", ["file_base", "file_memadd", "file_cpuadd", "load_hotplug_memadd"]
)
def test_real_current(name: str) -> None:
    truth, _, found, _ = real_check(name)
    assert truth["expected"]["elfcorehdr"] == "current"
    assert "CHP056" in found and "CHP055" in found
    assert not ERRORS & set(found)


def test_real_stale_memadd() -> None:
    truth, _, found, _ = real_check("load_stale_memadd")
    assert found["CHP050"].details["ranges"] == [
        [hx(s), hx(e)] for s, e in truth["expected"]["missing_ram"]
    ]
    assert "CHP063" in found and "CHP056" not in found


def test_real_memremove_range_by_range() -> None:
    truth, hdr, found, state = real_check("file_memremove")
    extra = [(hx(s), hx(e)) for s, e in truth["expected"]["extra_ram"]]
    assert found["CHP051"].details["ranges"] == [[s, e] for s, e in extra]
    assert "CHP050" not in found
    rows = memory_rows(
        [(ld.paddr, ld.end) for ld in hdr.loads if ld.vaddr < 0xFFFFFFFF80000000], state
    )
    # Every range of the header as the lab read it, each with its status.
    observed = [(hx(s), hx(e)) for s, e in truth["observed"]["observed_header_ram"]]
    assert [(r.start, r.end, r.status) for r in rows if r.in_header] == [
        (s, e, "not RAM now" if (s, e) in extra else "described") for s, e in observed
    ]


def test_real_kdump_dump() -> None:
    from drgn_crashhp.read.dump import read_dump_headers

    prog, truth = fixture("kdump_memadd")
    state = read_state(prog)
    dump = read_dump_headers(prog, state.page_offset)
    assert dump is not None and dump.producer == "kdump"
    ram_loads = [
        [f"{ld.paddr:#x}", f"{ld.end:#x}"]
        for ld in dump.loads
        if ld.vaddr < 0xFFFFFFFF80000000
    ]
    assert ram_loads == truth["observed"]["vmcore_pt_load_ram"]
    found = codes(check_dump(dump, state))
    assert set(found) == {"CHP071"}
    # The panic holds __kexec_lock: not an update in flight.
    image = read_kimage(prog)
    assert image is not None and state.kexec_lock == 1 and state.panic_cpu != -1
    assert "CHP064" not in codes(check_state(image, None, None, state))
    qprog, _ = fixture("file_memadd")
    qemu = read_dump_headers(qprog, read_state(qprog).page_offset)
    assert qemu is not None and qemu.producer == "qemu"


def test_kernel_text_size_end_shifted_or_not() -> None:
    from drgn_crashhp.read.kernel_text import AmbiguousTextSize, kernel_text_size

    text, size, kaslr = 0xFFFFFFFFB3200000, 0xA30000, 0x32200000
    link_end = text - kaslr + size
    # Minimal vmlinux (kernel-notes §10): drgn leaves _end at its link-time
    # address, the loaded range ends at the shifted _end.
    assert kernel_text_size(X86, text, link_end, text + size, kaslr) == (
        size,
        "_end + VMCOREINFO KERNELOFFSET - _text",
    )
    # Debian's vmlinux: _end shifted, the loaded range runs on to
    # _text + 0x3200000.
    assert kernel_text_size(X86, text, text + 0x2C30000, text + 0x3200000, kaslr) == (
        0x2C30000,
        "runtime symbols _end - _text",
    )
    # kallsyms (no vmlinux): _end shifted like _text.
    assert kernel_text_size(X86, text, text + size, None, kaslr) == (
        size,
        "runtime symbols _end - _text",
    )
    # A small KASLR offset on a minimal vmlinux fits both readings: the
    # symbol table decides.
    small = 0x200000
    with pytest.raises(AmbiguousTextSize):
        kernel_text_size(X86, text, text - small + size, text + size, small)
    assert (
        kernel_text_size(X86, text, text - small + size, text + size, small, size)[0]
        == size
    )
    with pytest.raises(ValueError):
        kernel_text_size(X86, text, link_end, None, None)


def test_link_time_symbols_reads_only_what_it_needs(tmp_path) -> None:
    from drgn_crashhp.read.symtab import link_time_symbols

    _, truth = fixture("file_memadd")
    from tests.conftest import unpack

    syms = link_time_symbols(str(unpack.vmlinux_path()), ("_text", "_end", "nope"))
    assert set(syms) == {"_text", "_end"}
    size = int(truth["observed"]["kernel_text_load"][0][2], 16)
    assert syms["_end"] - syms["_text"] == size
    bad = tmp_path / "x"
    bad.write_bytes(b"\x7fELF" + bytes(60))
    with pytest.raises(ValueError):
        link_time_symbols(str(bad), ("_end",))


def test_real_kernel_text_without_reading_the_symbol_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import drgn_crashhp.read.kernel_text as state_mod

    prog, _ = fixture("file_memadd")
    # drgn leaves _end unshifted on this vmlinux: KERNELOFFSET decides,
    # without reading the symbol table.
    monkeypatch.setattr(state_mod, "_link_time_size", lambda prog: 1 / 0)
    shifted = state_mod.read_kernel_text(prog, X86)
    assert "KERNELOFFSET" in shifted.size_source
    path = str(prog.main_module().debug_file_path)
    syms = state_mod.link_time_symbols(path, ("_text", "_end"))
    linked = dataclasses.replace(shifted, size=syms["_end"] - syms["_text"])
    assert shifted == dataclasses.replace(linked, size_source=shifted.size_source)
    # and both equal the PT_LOAD the kernel wrote for its text
    truth_text = fixture("file_memadd")[1]["observed"]["kernel_text_load"][0]
    assert [
        f"{linked.paddr:#x}",
        f"{linked.vaddr:#x}",
        f"{linked.size:#x}",
    ] == truth_text


def test_bitmap_ranges_against_a_bit_by_bit_walk() -> None:
    import random

    from drgn_crashhp.read.dump import bitmap_ranges

    def walk(bitmap: bytes, nbits: int) -> tuple:
        out, start = [], None
        for i in range(nbits):
            bit = bitmap[i // 8] >> (i % 8) & 1 if i // 8 < len(bitmap) else 0
            if bit and start is None:
                start = i
            if not bit and start is not None:
                out.append((start, i - 1))
                start = None
        if start is not None:
            out.append((start, nbits - 1))
        return tuple(out)

    rng = random.Random(3)
    for _ in range(2000):
        nbits = rng.randint(0, 200)
        bitmap = bytes(
            rng.choice([0, 255, rng.randint(0, 255)]) for _ in range(rng.randint(0, 30))
        )
        assert bitmap_ranges(bitmap, nbits) == walk(bitmap, nbits)
