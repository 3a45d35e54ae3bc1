"""
elfcorehdr vs. machine state
----------------------------

Pure functions (no drgn): rebuild the elfcorehdr the kernel would write now
from a :class:`~drgn_crashhp.state.MachineState` (arch/x86/kernel/crash.c
``prepare_elf_headers()``, kernel/crash_core.c ``crash_exclude_mem_range()``
and ``crash_prepare_elf64_headers()``), compare the loaded header with the
machine entry by entry, and render both as tables.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from tabulate import tabulate

from drgn_crashhp.elfcorehdr import (
    EHDR_SIZE,
    PHDR_SIZE,
    START_KERNEL_MAP,
    ElfCoreHdr,
    Load,
    Note,
    build_elfcorehdr,
)
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.kimage import KImage, Layout
from drgn_crashhp.state import MachineState, MemoryBlock, cpulist

__all__ = (
    "ENOMEM",
    "SZ_1M",
    "Expected",
    "MemoryRow",
    "NoteRule",
    "check_state",
    "crash_exclude_mem_range",
    "excluded_ranges",
    "memory_rows",
    "note_rule",
    "rebuild_elfcorehdr",
    "render_state",
)

ENOMEM = 12
#: kernel/Kconfig.kexec default of CONFIG_CRASH_MAX_MEMORY_RANGES.
_DEFAULT_MAX_MEMORY_RANGES = 8192
SZ_1M = 1 << 20
PAGE_SIZE = 4096
#: include/linux/crash_core.h
ELF_CORE_HEADER_ALIGN = 4096

Range = Tuple[int, int]


# -- the kernel's rules -------------------------------------------------------


def crash_exclude_mem_range(
    ranges: Sequence[Range], max_nr_ranges: int, mstart: int, mend: int
) -> Tuple[Tuple[Range, ...], int]:
    """
    kernel/crash_core.c ``crash_exclude_mem_range()`` as of commit
    86d80cbb61ca ("crash_core: fix and simplify the logic of
    crash_exclude_mem_range()", early 2024; 6.12, 7.2): remove
    ``[mstart, mend]`` from every range it overlaps; trim, drop, or split.
    A split needs a free slot (``nr_ranges < max_nr_ranges``), else
    ``-ENOMEM``. (Older kernels stopped after the first overlapping range.)

    :param ranges: inclusive ranges in ascending order (``mem->ranges``).
    :return: the new ranges and 0, or the ranges so far and ``-ENOMEM``.
    """
    mem = list(ranges)
    i = 0
    while i < len(mem):
        start, end = mem[i]
        p_start, p_end = mstart, mend
        if p_start > end:
            i += 1
            continue
        # Ranges are ascending: nothing after this one can overlap.
        if p_end < start:
            break
        p_start = max(p_start, start)
        p_end = min(p_end, end)
        if p_start == start and p_end == end:
            del mem[i]
            continue
        if p_start > start and p_end < end:
            if len(mem) >= max_nr_ranges:
                return tuple(mem), -ENOMEM
            mem[i] = (start, p_start - 1)
            mem.insert(i + 1, (p_end + 1, end))
            i += 2
            continue
        if p_start != start:
            mem[i] = (start, p_start - 1)
        else:
            mem[i] = (p_end + 1, end)
        i += 1
    return tuple(mem), 0


def excluded_ranges(state: MachineState) -> Tuple[Tuple[str, Range], ...]:
    """
    What x86 ``elf_header_exclude_ranges()`` removes, in its order: the low
    1 MiB, ``crashk_res``, ``crashk_low_res`` (only if its end is not 0) and,
    since v6.17, each ``crashk_cma_ranges[i]``.
    """
    out: List[Tuple[str, Range]] = [("low 1 MiB", (0, SZ_1M - 1))]
    if state.crashk_res is not None:
        out.append(("crashk_res", state.crashk_res))
    if state.crashk_low_res is not None and state.crashk_low_res[1]:
        out.append(("crashk_low_res", state.crashk_low_res))
    for i, rng in enumerate(state.crashk_cma or ()):
        out.append((f"crashk_cma_ranges[{i}]", rng))
    return tuple(out)


@dataclass(frozen=True)
class NoteRule:
    """Which CPUs the header's PT_NOTEs are for, and why."""

    #: "possible", "present" (kernel before v6.6) or "kexec-tools".
    kind: str
    reason: str

    @property
    def kernel_format(self) -> bool:
        """Written by crash_prepare_elf64_headers() (byte-comparable)."""
        return self.kind != "kexec-tools"


def note_rule(image: Optional[KImage], hdr: Optional[ElfCoreHdr],
              state: MachineState) -> NoteRule:
    """
    Decide which CPUs the loaded header has notes for (kernel-notes §5.2, §6).
    """
    hp = image.hotplug if image is not None else None
    if image is not None and not image.file_mode and not (
        hp is not None and hp.elfcorehdr_updated
    ):
        return NoteRule("kexec-tools", "kexec_load image not rewritten by the "
                        "kernel: kexec-tools wrote notes for CPUs present at load")
    if hp is not None and hp.layout in (Layout.MAINLINE_6_6, Layout.MAINLINE_6_10):
        # v6.6, "crash: change crash_prepare_elf64_headers() to
        # for_each_possible_cpu()".
        return NoteRule("possible", f"struct kimage layout {hp.layout}: the kernel "
                        "writes a note for every possible CPU")
    # No hotplug fields: a kernel before v6.6 (present CPUs) or a newer one
    # with CONFIG_CRASH_HOTPLUG=n (possible CPUs). Decide by the note count.
    possible = len(state.possible_cpus or ())
    present = len(state.present_cpus or ())
    if hdr is not None and state.possible_cpus is not None:
        n = max(0, len(hdr.notes) - 1)
        if n == possible:
            return NoteRule("possible", f"{n} CPU notes = possible CPUs "
                            "(v6.6+ kernel without CONFIG_CRASH_HOTPLUG)")
        return NoteRule("present", f"{n} CPU notes, {possible} possible and "
                        f"{present} present CPUs: a kernel before v6.6 (present "
                        "CPUs at load)")
    return NoteRule("present", "no crash hotplug fields and no header to count: "
                    "assuming a kernel before v6.6 (present CPUs)")


@dataclass(frozen=True)
class Expected:
    """The elfcorehdr the kernel would write now (or why it cannot)."""

    note_cpus: Tuple[int, ...]
    #: ``(paddr, size)``: CPU notes, then the vmcoreinfo note.
    notes: Tuple[Tuple[int, int], ...]
    #: ``(paddr, vaddr, size)`` of the kernel text PT_LOAD.
    kernel_text: Optional[Tuple[int, int, int]]
    #: RAM ranges after the exclusions, in the kernel's order.
    ram: Tuple[Range, ...]
    max_nr_ranges: int
    #: crash_prepare_elf64_headers()'s count: CPUs + 1 + ranges + 1.
    nr_phdr: int
    #: ``ALIGN(Ehdr + nr_phdr * Phdr, 4096)``: what must fit in memsz.
    elfsz: int
    #: Why the kernel would fail to build it now ("-ENOMEM ..."), if so.
    error: Optional[str] = None
    #: State fields the rebuild lacked (no bytes then).
    missing: Tuple[str, ...] = ()
    #: The used bytes (Ehdr + Phdrs), as build_elfcorehdr() writes them.
    data: bytes = field(default=b"", repr=False, metadata={"json": False})


def rebuild_elfcorehdr(
    state: MachineState, cpus: str = "possible", need_kernel_map: bool = True
) -> Expected:
    """
    Rebuild the elfcorehdr as x86 ``prepare_elf_headers()`` would now.

    :param cpus: "possible" (v6.6+ ``for_each_possible_cpu``) or "present"
        (before v6.6).
    :param need_kernel_map: ``IS_ENABLED(CONFIG_X86_64)``.
    """
    note_cpus = tuple(
        (state.possible_cpus if cpus == "possible" else state.present_cpus) or ()
    )
    missing = [name for name, value in (
        ("system_ram", state.system_ram), ("page_offset", state.page_offset),
        ("vmcoreinfo", state.vmcoreinfo), ("note_size", state.note_size),
        ("crashk_res", state.crashk_res),
        (f"{cpus}_cpus", state.possible_cpus if cpus == "possible"
         else state.present_cpus),
    ) if value is None]
    if state.iomem_problem:
        missing.append("system_ram")
    if need_kernel_map and state.kernel_text is None:
        missing.append("kernel_text")
    notes_by_cpu = {n.cpu: n.paddr for n in state.cpu_notes}
    if any(notes_by_cpu.get(c) is None for c in note_cpus):
        missing.append("cpu_notes")
    walked = tuple(state.system_ram or ())
    # fill_up_crash_elf_data(): room for the walk plus 2 splits; v6.17 adds
    # one more and one per CMA range.
    extra = 2 if state.crashk_cma is None else 3 + len(state.crashk_cma)
    max_nr = len(walked) + extra
    ram, err = walked, 0
    for _, (s, e) in excluded_ranges(state):
        ram, err = crash_exclude_mem_range(ram, max_nr, s, e)
        if err:
            break
    nr_phdr = len(note_cpus) + 1 + len(ram) + 1
    elfsz = _align(EHDR_SIZE + nr_phdr * PHDR_SIZE, ELF_CORE_HEADER_ALIGN)
    text = None
    if state.kernel_text is not None:
        t = state.kernel_text
        text = (t.paddr, t.vaddr, t.size)
    notes: Tuple[Tuple[int, int], ...] = ()
    data = b""
    error = None
    if err:
        error = (f"-ENOMEM: crash_exclude_mem_range() needs a free slot to split "
                 f"a range (max_nr_ranges = {max_nr})")
    if not missing and not err:
        assert state.note_size is not None and state.vmcoreinfo is not None
        notes = tuple((notes_by_cpu[c] or 0, state.note_size) for c in note_cpus)
        notes += (state.vmcoreinfo,)
        data = build_elfcorehdr(notes, text if need_kernel_map else None, ram,
                                state.page_offset or 0)
    return Expected(
        note_cpus=note_cpus, notes=notes, kernel_text=text, ram=tuple(ram),
        max_nr_ranges=max_nr, nr_phdr=nr_phdr, elfsz=elfsz, error=error,
        missing=tuple(dict.fromkeys(missing)), data=data,
    )


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


# -- interval arithmetic (inclusive ranges) ------------------------------------


def _normalize(ranges: Iterable[Range]) -> List[Range]:
    out: List[Range] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1] + 1:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _subtract(a: Sequence[Range], b: Sequence[Range]) -> List[Range]:
    """Normalized *a* minus normalized *b*."""
    out: List[Range] = []
    j = 0
    for s, e in a:
        while j < len(b) and b[j][1] < s:
            j += 1
        k = j
        cur = s
        while k < len(b) and b[k][0] <= e:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            k += 1
        if cur <= e:
            out.append((cur, e))
    return out


def _covered(rng: Range, norm: Sequence[Range], starts: Sequence[int]) -> int:
    """Bytes of *rng* inside the normalized ranges *norm*."""
    s, e = rng
    i = max(0, bisect.bisect_right(starts, s) - 1)
    total = 0
    while i < len(norm) and norm[i][0] <= e:
        lo, hi = max(s, norm[i][0]), min(e, norm[i][1])
        if lo <= hi:
            total += hi - lo + 1
        i += 1
    return total


def _size(ranges: Iterable[Range]) -> int:
    return sum(e - s + 1 for s, e in ranges)


def _hex(ranges: Iterable[Range]) -> List[List[str]]:
    return [[f"{s:#x}", f"{e:#x}"] for s, e in ranges]


def _fmt(ranges: Sequence[Range], limit: int = 4) -> str:
    text = ", ".join(f"[{s:#x}-{e:#x}]" for s, e in ranges[:limit])
    if len(ranges) > limit:
        text += f" and {len(ranges) - limit} more"
    return text


def _mib(n: int) -> str:
    return f"{n / SZ_1M:.1f} MiB" if n >= SZ_1M else f"{n:#x} bytes"


# -- header vs. now, range by range -------------------------------------------


@dataclass(frozen=True)
class MemoryRow:
    start: int
    end: int
    in_header: bool
    ram_now: bool
    #: Which exclusion covers it ("crashk_res", "low 1 MiB", ...), if any.
    excluded: Optional[str]
    #: State of the memory block covering it, when blocks are known.
    block: Optional[str]
    status: str


def _split_loads(hdr: ElfCoreHdr) -> Tuple[List[Load], List[Load]]:
    """(kernel text loads, RAM loads): text maps __START_KERNEL_map."""
    text = [ld for ld in hdr.loads if ld.vaddr >= START_KERNEL_MAP]
    ram = [ld for ld in hdr.loads if ld.vaddr < START_KERNEL_MAP]
    return text, ram


def memory_rows(
    header_ram: Sequence[Range], state: MachineState
) -> Tuple[MemoryRow, ...]:
    """
    Cut the address space at every boundary of the header's RAM loads, the
    System RAM walk, the exclusions and the memory blocks, and say for each
    piece whether it is described, RAM now, excluded, and its status.
    """
    ram_now = state.system_ram or ()
    excl = excluded_ranges(state)
    blocks: Sequence[MemoryBlock] = state.memory_blocks or ()
    sets: List[Tuple[str, Sequence[Range]]] = [
        ("hdr", header_ram), ("ram", ram_now),
    ]
    sets += [(f"x:{name}", [rng]) for name, rng in excl]
    points = set()
    for _, rs in sets:
        for s, e in rs:
            points.add(s)
            points.add(e + 1)
    for b in blocks:
        points.add(b.start)
        points.add(b.end + 1)
    pts = sorted(points)
    index = {p: i for i, p in enumerate(pts)}
    counts: Dict[str, List[int]] = {}
    for name, rs in sets:
        diff = [0] * (len(pts) + 1)
        for s, e in rs:
            diff[index[s]] += 1
            diff[index[e + 1]] -= 1
        counts[name] = diff
    block_at: Dict[int, str] = {}
    for b in blocks:
        block_at[index[b.start]] = b.state
        if index[b.end + 1] not in block_at:
            block_at[index[b.end + 1]] = ""
    running = {name: 0 for name, _ in sets}
    block = ""
    rows: List[MemoryRow] = []
    for i in range(len(pts) - 1):
        for name in running:
            running[name] += counts[name][i]
        if i in block_at:
            block = block_at[i]
        in_hdr = running["hdr"] > 0
        is_ram = running["ram"] > 0
        if not in_hdr and not is_ram:
            continue
        excluded = next((n[2:] for n, _ in sets[2:] if running[n] > 0), None)
        status = _status(in_hdr, is_ram, excluded, block)
        s, e = pts[i], pts[i + 1] - 1
        if rows and rows[-1].end + 1 == s and (
            rows[-1].in_header, rows[-1].ram_now, rows[-1].excluded,
            rows[-1].block, rows[-1].status,
        ) == (in_hdr, is_ram, excluded, block or None, status):
            rows[-1] = MemoryRow(rows[-1].start, e, in_hdr, is_ram, excluded,
                                 block or None, status)
        else:
            rows.append(MemoryRow(s, e, in_hdr, is_ram, excluded, block or None,
                                  status))
    return tuple(rows)


def _status(in_hdr: bool, is_ram: bool, excluded: Optional[str], block: str) -> str:
    if in_hdr and is_ram:
        return "described" if excluded is None else "described (excluded by kernel)"
    if in_hdr:
        return "not RAM now"
    if excluded is not None:
        return "excluded"
    if block and block != "MEM_ONLINE":
        return "offline, not described yet"
    return "MISSING"


# -- the check -----------------------------------------------------------------


_FAILURE_RE = re.compile(
    r"crash hp: (kexec_trylock\(\) failed|unable to|update elfcorehdr elfsz|"
    r"mapping elfcorehdr segment failed|Updated crash elfcorehdr elfsz|Failed)"
    r"|kexec: number of Phdrs .* exceeds max"
)


def _unknown(state: MachineState, what: str, fields: Sequence[str]) -> List[Finding]:
    reasons = [(f, state.why_unknown(f) or "not read") for f in fields]
    return [finding("CHP090", f"{what} not checked: " + "; ".join(
        f"{f}: {r}" for f, r in reasons), check=what, fields=list(fields))]


def check_state(
    image: KImage,
    hdr: Optional[ElfCoreHdr],
    hdr_bytes: Optional[bytes],
    state: MachineState,
    expected: Optional[Expected] = None,
) -> List[Finding]:
    """
    Compare the loaded elfcorehdr with the machine now, entry by entry.

    :param hdr: the decoded header, or None when it could not be read (the
        hotplug status findings are still produced).
    :param hdr_bytes: its used bytes, for the byte-for-byte comparison.
    :param expected: a rebuild; computed from *state* when not given.
    """
    out: List[Finding] = []
    rule = note_rule(image, hdr, state)
    if expected is None:
        expected = rebuild_elfcorehdr(
            state, "present" if rule.kind == "present" else "possible"
        )
    out += _check_hotplug(image, state)
    if hdr is None:
        return out
    errors_before = len(out)
    out += _check_cpus(hdr, state, rule)
    out += _check_vmcoreinfo(hdr, state)
    out += _check_text(hdr, state, rule)
    out += _check_memory(image, hdr, state, rule)
    out += _check_room(image, hdr, state, expected)
    content = [f for f in out[errors_before:] if f.code in _CONTENT_ERRORS]
    unknown = [f for f in out[errors_before:] if f.code == "CHP090"]
    identical = bool(expected.data) and hdr_bytes == expected.data
    if identical:
        out.append(finding(
            "CHP055", f"the elfcorehdr is byte-identical to a rebuild from the "
            f"state now ({len(expected.data)} bytes, "
            f"{(len(expected.data) - EHDR_SIZE) // PHDR_SIZE} program headers)",
            bytes=len(expected.data), rule=rule.kind))
    if not content and not unknown:
        detail = ""
        if not identical and rule.kernel_format and expected.data and hdr_bytes:
            where = _first_difference(hdr_bytes, expected.data)
            detail = f"; differs from a rebuild: {where}"
        elif not rule.kernel_format:
            detail = " (kexec-tools format: judged by content, not bytes)"
        out.append(finding(
            "CHP056", f"the elfcorehdr describes every CPU and all RAM of the "
            f"machine now{detail}", byte_identical=identical, rule=rule.kind,
            rule_reason=rule.reason))
    return out


_CONTENT_ERRORS = {"CHP040", "CHP042", "CHP043", "CHP050", "CHP051", "CHP052",
                   "CHP054"}


def _first_difference(a: bytes, b: bytes) -> str:
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    if i < EHDR_SIZE:
        return f"ELF header byte {i:#x}"
    if i == n and len(a) != len(b):
        return f"length {len(a)} vs {len(b)} bytes"
    return f"program header {(i - EHDR_SIZE) // PHDR_SIZE}"


def _check_hotplug(image: KImage, state: MachineState) -> List[Finding]:
    hp = image.hotplug
    out = []
    has_sysfs = hp.layout in (Layout.MAINLINE_6_6, Layout.MAINLINE_6_10)
    sysfs = str(int(hp.support)) if has_sysfs else "absent"
    # After a panic __crash_kexec() holds the kexec lock (kernel/crash_core.c).
    panicked = state.panic_cpu not in (None, -1)
    busy = state.kexec_lock == 1 and not panicked
    if has_sysfs and busy:
        sysfs += " (reads 0 while __kexec_lock is held)"
    out.append(finding(
        "CHP061",
        f"crash hotplug {'supported' if hp.support else 'not supported'} "
        f"({hp.support_source}); hp_action {hp.hp_action_name or 'n/a'}, "
        f"elfcorehdr_updated {_yn(hp.elfcorehdr_updated)}, "
        f"/sys/devices/system/{{cpu,memory}}/crash_hotplug: {sysfs}",
        support=hp.support, support_source=hp.support_source,
        layout=str(hp.layout), hp_action=hp.hp_action_name,
        elfcorehdr_updated=hp.elfcorehdr_updated, sysfs_crash_hotplug=sysfs,
        kexec_lock=state.kexec_lock, panic_cpu=state.panic_cpu,
        kernel_log="read" if state.log is not None else state.why_unknown("log"),
    ))
    if not hp.support:
        out.append(finding(
            "CHP063", f"the kernel will not update this image's elfcorehdr on "
            f"hotplug ({hp.support_source}); any hotplug leaves it stale",
            layout=str(hp.layout), file_mode=image.file_mode))
    if hp.hp_action not in (None, 0):
        out.append(finding(
            "CHP064", f"hp_action is {hp.hp_action_name}: the kernel is rewriting "
            "the elfcorehdr now; check again", hp_action=hp.hp_action_name))
    elif busy:
        out.append(finding(
            "CHP064", "__kexec_lock is held: a load, unload or hotplug update is "
            "running; check again", kexec_lock=1))
    # Without the log (no printk ring buffer in the target) the header
    # comparison still decides; the log only explains a stale header.
    if state.log is not None:
        bad = [ln for ln in state.log if _FAILURE_RE.search(ln.text)]
        if bad:
            out.append(finding(
                "CHP062", f"{len(bad)} crash hotplug failure(s) in the kernel log, "
                f"last: {bad[-1].text.strip()!r}",
                lines=[{"seq": ln.seq, "timestamp_ns": ln.timestamp_ns,
                        "text": ln.text} for ln in bad]))
    return out


def _yn(value: Optional[bool]) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def _check_cpus(hdr: ElfCoreHdr, state: MachineState, rule: NoteRule) -> List[Finding]:
    if state.possible_cpus is None or state.present_cpus is None:
        return _unknown(state, "CPU notes", ["possible_cpus", "present_cpus"])
    out: List[Finding] = []
    vmci = state.vmcoreinfo[0] if state.vmcoreinfo else None
    cpu_notes = [n for n in hdr.notes if n.paddr != vmci]
    if vmci is None and hdr.notes:
        cpu_notes = list(hdr.notes[:-1])  # the kernel writes vmcoreinfo last
    by_addr = {n.paddr: n.cpu for n in state.cpu_notes if n.paddr is not None}
    untranslated = [n.cpu for n in state.cpu_notes if n.paddr is None]
    if untranslated:
        out += _unknown(state, f"notes of CPUs {untranslated[:8]}", ["cpu_notes"])
    matched: Dict[int, Note] = {}
    unmatched: List[Tuple[int, Note]] = []
    for pos, n in enumerate(cpu_notes):
        cpu = by_addr.get(n.paddr)
        if cpu is None or cpu in matched:
            unmatched.append((pos, n))
        else:
            matched[cpu] = n
    present = set(state.present_cpus)
    rule_cpus = list(state.possible_cpus if rule.kind == "possible"
                     else state.present_cpus)
    # A note at the wrong address: pair by position when the header has one
    # note per CPU of the rule (the kernel writes them in ascending order).
    wrong = []
    paired = set()
    if len(cpu_notes) == len(rule_cpus):
        for pos, n in unmatched:
            cpu = rule_cpus[pos]
            if cpu not in matched and cpu not in untranslated:
                note = state.note_of(cpu)
                wrong.append({"cpu": cpu, "header": f"{n.paddr:#x}",
                              "crash_notes": f"{note.paddr:#x}" if note and
                              note.paddr is not None else None})
                paired.add(cpu)
    else:
        wrong += [{"cpu": None, "header": f"{n.paddr:#x}", "crash_notes": None}
                  for _, n in unmatched]
    if state.note_size is not None:
        wrong += [{"cpu": c, "header_size": n.size, "note_size": state.note_size}
                  for c, n in sorted(matched.items()) if n.size != state.note_size]
    if wrong:
        out.append(finding(
            "CHP042", f"{len(wrong)} CPU note(s) do not point at the CPU's "
            f"crash_notes: {_fmt_wrong(wrong)}", notes=wrong))
    missing = [c for c in sorted(present) if c not in matched and c not in paired
               and c not in untranslated]
    if missing:
        out.append(finding(
            "CHP040", f"{len(missing)} present CPU(s) have no note in the "
            f"elfcorehdr: {cpulist(missing)}", cpus=missing, rule=rule.kind))
    if rule.kind == "possible":
        absent = [c for c in state.possible_cpus if c not in present
                  and c not in matched and c not in paired and c not in untranslated]
        if absent:
            out.append(finding(
                "CHP044", f"no notes for possible CPUs {cpulist(absent)} (not "
                "present now): a later hot-add will not be described, x86 does "
                "not rewrite a kernel-built header for CPU events", cpus=absent))
    else:
        gone = [c for c in sorted(matched) if c not in present]
        if gone:
            out.append(finding(
                "CHP041", f"notes for CPUs {cpulist(gone)} that are no longer "
                "present", cpus=gone, rule=rule.kind))
    return out


def _fmt_wrong(wrong: List[Dict[str, object]]) -> str:
    parts = []
    for w in wrong[:4]:
        if "header_size" in w:
            parts.append(f"CPU {w['cpu']} note size {w['header_size']} != "
                         f"{w['note_size']}")
        elif w["cpu"] is None:
            parts.append(f"{w['header']} matches no CPU")
        else:
            parts.append(f"CPU {w['cpu']} at {w['header']}, crash_notes "
                         f"{w['crash_notes']}")
    if len(wrong) > 4:
        parts.append(f"{len(wrong) - 4} more")
    return "; ".join(parts)




def _check_vmcoreinfo(hdr: ElfCoreHdr, state: MachineState) -> List[Finding]:
    if state.vmcoreinfo is None:
        return _unknown(state, "vmcoreinfo note", ["vmcoreinfo"])
    paddr, size = state.vmcoreinfo
    found = [n for n in hdr.notes if n.paddr == paddr]
    if not found:
        return [finding("CHP043", f"no PT_NOTE for the vmcoreinfo note at "
                        f"{paddr:#x}", paddr=f"{paddr:#x}", size=size)]
    if found[0].size != size:
        return [finding("CHP043", f"the vmcoreinfo PT_NOTE has size "
                        f"{found[0].size}, VMCOREINFO_NOTE_SIZE is {size}",
                        paddr=f"{paddr:#x}", size=size, header_size=found[0].size)]
    return []


def _check_text(hdr: ElfCoreHdr, state: MachineState, rule: NoteRule) -> List[Finding]:
    t = state.kernel_text
    if t is None:
        return _unknown(state, "kernel text PT_LOAD", ["kernel_text"])
    text, _ = _split_loads(hdr)
    want = f"[{t.vaddr:#x}, +{t.size:#x}) at physical {t.paddr:#x}"
    if not text:
        return [finding("CHP054", f"no PT_LOAD for the kernel text {want}",
                        vaddr=f"{t.vaddr:#x}", paddr=f"{t.paddr:#x}", size=t.size)]
    ld = text[0]
    if rule.kernel_format:
        ok = (ld.vaddr, ld.paddr, ld.size) == (t.vaddr, t.paddr, t.size)
    else:
        # kexec-tools aligns the kcore text segment: it must cover _text.._end
        # with the same virtual-to-physical offset.
        ok = (ld.vaddr <= t.vaddr and ld.vaddr + ld.size >= t.vaddr + t.size
              and ld.vaddr - ld.paddr == t.vaddr - t.paddr)
    if ok:
        return []
    return [finding(
        "CHP054", f"kernel text PT_LOAD is [{ld.vaddr:#x}, +{ld.size:#x}) at "
        f"physical {ld.paddr:#x}; the running kernel is {want} "
        f"(size from {t.size_source})",
        header={"vaddr": f"{ld.vaddr:#x}", "paddr": f"{ld.paddr:#x}",
                "size": ld.size},
        kernel={"vaddr": f"{t.vaddr:#x}", "paddr": f"{t.paddr:#x}", "size": t.size},
    )]


def _check_memory(image: KImage, hdr: ElfCoreHdr, state: MachineState,
                  rule: NoteRule) -> List[Finding]:
    if state.system_ram is None or state.iomem_problem:
        return _unknown(state, "RAM ranges", ["system_ram"])
    _, loads = _split_loads(hdr)
    header_ram = [(ld.paddr, ld.end) for ld in loads if ld.size]
    rows = memory_rows(header_ram, state)
    out: List[Finding] = []
    missing = [(r.start, r.end) for r in rows if r.status == "MISSING"]
    offline = [(r.start, r.end) for r in rows
               if r.status == "offline, not described yet"]
    if missing:
        merged = _normalize(missing)
        out.append(finding(
            "CHP050", f"{_mib(_size(merged))} of RAM in {len(merged)} range(s) "
            f"not in the elfcorehdr: {_fmt(merged)}",
            ranges=_hex(merged), bytes=_size(merged)))
    if offline:
        merged = _normalize(offline)
        out.append(finding(
            "CHP053", f"{_mib(_size(merged))} of added but offline memory not "
            f"described yet: {_fmt(merged)}", ranges=_hex(merged),
            bytes=_size(merged)))
    ram_now = _normalize(state.system_ram)
    starts = [s for s, _ in ram_now]
    gone: List[Range] = []
    partial: List[Dict[str, Any]] = []
    for s, e in header_ram:
        if not rule.kernel_format and e < SZ_1M:
            continue  # kexec-tools' backup-region range (kernel-notes §2.8)
        if not rule.kernel_format and s < SZ_1M:
            s = SZ_1M
        covered = _covered((s, e), ram_now, starts)
        if covered == 0:
            gone.append((s, e))
        elif covered != e - s + 1:
            partial.append({"range": [f"{s:#x}", f"{e:#x}"],
                            "not_ram": _hex(_subtract([(s, e)], ram_now))})
    if gone:
        why = ""
        if image.hotplug.support:
            why = (" (x86 rebuilds the header at MEM_OFFLINE while the range is "
                   "still System RAM; nothing rebuilds it after removal)")
        out.append(finding(
            "CHP051", f"{len(gone)} elfcorehdr range(s), {_mib(_size(gone))}, are "
            f"no longer RAM: {_fmt(gone)}{why}", ranges=_hex(gone),
            bytes=_size(gone)))
    if partial:
        out.append(finding(
            "CHP052", f"{len(partial)} elfcorehdr range(s) are only partly RAM: "
            + ", ".join(f"[{p['range'][0]}-{p['range'][1]}]" for p in partial[:4]),
            ranges=partial))
    return out


def _check_room(image: KImage, hdr: ElfCoreHdr, state: MachineState,
                expected: Expected) -> List[Finding]:
    out: List[Finding] = []
    if expected.error:
        out.append(finding(
            "CHP066", f"the kernel could not rebuild the elfcorehdr now: "
            f"{expected.error}", error=expected.error))
    capacity = hdr.capacity
    possible = len(state.possible_cpus or ())
    # arch_crash_handle_hotplug_event(): the rebuilt header must fit the
    # segment's memsz; its Phdr count is CPUs + vmcoreinfo + text + ranges.
    slots = (capacity - EHDR_SIZE) // PHDR_SIZE
    need = possible + 2 + len(expected.ram)
    free = slots - need
    details: Dict[str, object] = {
        "memsz": capacity, "phdr_slots": slots, "needed_now": need,
        "free_phdrs": free, "elfsz_now": expected.elfsz,
    }
    config = dict(state.kconfig)
    sizing = ""
    if {"CONFIG_NR_CPUS_DEFAULT", "CONFIG_CRASH_MAX_MEMORY_RANGES"} <= set(config):
        # crash_load_segments() (arch/x86/kernel/crash.c, v6.6+).
        pnum = 2 + int(config["CONFIG_NR_CPUS_DEFAULT"])
        if config.get("CONFIG_MEMORY_HOTPLUG") == "y":
            pnum += int(config["CONFIG_CRASH_MAX_MEMORY_RANGES"])
        reserved = _align(pnum * PHDR_SIZE + EHDR_SIZE, PAGE_SIZE)
        details["config_memsz"] = reserved
        sizing = (f"; Kconfig sizes it {reserved:#x} "
                  f"({'matches' if reserved == capacity else 'differs'})")
    else:
        # No built-in config: recognise crash_load_segments()'s sizing for
        # the default CONFIG_CRASH_MAX_MEMORY_RANGES (8192) and x86_64's
        # CONFIG_NR_CPUS_DEFAULT (64, or 8192 with MAXSMP).
        for cpus_default in (64, 8192):
            pnum = 2 + cpus_default + _DEFAULT_MAX_MEMORY_RANGES
            if _align(pnum * PHDR_SIZE + EHDR_SIZE, PAGE_SIZE) == capacity:
                details["sized_for"] = {
                    "CONFIG_NR_CPUS_DEFAULT": cpus_default,
                    "CONFIG_CRASH_MAX_MEMORY_RANGES": _DEFAULT_MAX_MEMORY_RANGES}
                sizing = (f"; sized by the kernel for NR_CPUS_DEFAULT={cpus_default}"
                          f" + CRASH_MAX_MEMORY_RANGES={_DEFAULT_MAX_MEMORY_RANGES}")
    if image.hotplug.support and (free < 1 or expected.elfsz > capacity):
        out.append(finding(
            "CHP060", f"elfcorehdr segment memsz {capacity:#x} holds {slots} "
            f"program headers; a rebuild now needs {need}: "
            + ("the next update will fail" if free < 0 else "no room for one more "
               "memory range"), **details))
    else:
        out.append(finding(
            "CHP065", f"elfcorehdr room: {slots} program headers in memsz "
            f"{capacity:#x}, {need} needed now, {max(free, 0)} free{sizing}",
            **details))
    return out


# -- rendering -----------------------------------------------------------------


def render_state(state: MachineState, hdr: Optional[ElfCoreHdr] = None) -> str:
    """Two tables: CPUs with their note addresses, and memory header vs now."""
    vmci = state.vmcoreinfo[0] if state.vmcoreinfo else None
    in_hdr = {n.paddr for n in hdr.notes if n.paddr != vmci} if hdr else set()
    cpu_rows = [
        [n.cpu, _yn(n.present), _yn(n.online),
         f"{n.paddr:#x}" if n.paddr is not None else "unknown",
         ("yes" if n.paddr in in_hdr else "no") if hdr else "-"]
        for n in state.cpu_notes
    ]
    parts = [tabulate(cpu_rows, headers=["CPU", "present", "online",
                                         "crash_notes", "in header"])]
    header_ram: List[Range] = []
    if hdr is not None:
        header_ram = [(ld.paddr, ld.end) for ld in _split_loads(hdr)[1] if ld.size]
    mem_rows = [
        [f"{r.start:#x}", f"{r.end:#x}", _mib(r.end - r.start + 1),
         ("yes" if r.in_header else "no") if hdr else "-",
         "yes" if r.ram_now else "no", r.excluded or "", r.block or "",
         r.status if hdr else ""]
        for r in memory_rows(header_ram, state)
    ]
    parts.append(tabulate(mem_rows, headers=["start", "end", "size", "in header",
                                             "RAM now", "excluded", "block",
                                             "status"]))
    if state.unknown:
        parts.append("unknown: " + "; ".join(f"{f}: {r}" for f, r in state.unknown))
    return "\n\n".join(parts)
