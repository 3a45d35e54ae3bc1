"""
Exclusions
----------

What the kernel removes from the System RAM ranges before writing the
elfcorehdr: x86 ``elf_header_exclude_ranges()`` (arch/x86/kernel/crash.c)
through ``crash_exclude_mem_range()`` (kernel/crash_core.c); and the
ranges powerpc gathers from memblock instead (arch/powerpc/kexec/ranges.c).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

from drgn_crashhp.arch import arch_named
from drgn_crashhp.facts import MachineState
from drgn_crashhp.kernel.ranges import Range

__all__ = (
    "ENOMEM",
    "add_mem_range",
    "crash_exclude_mem_range",
    "excluded_ranges",
    "memblock_crash_ranges",
)

ENOMEM = 12


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
    low = arch_named(state.arch).low_reserved
    out: List[Tuple[str, Range]] = [("low 1 MiB", low)] if low is not None else []
    if state.crashk_res is not None:
        out.append(("crashk_res", state.crashk_res))
    if state.crashk_low_res is not None and state.crashk_low_res[1]:
        out.append(("crashk_low_res", state.crashk_low_res))
    for i, rng in enumerate(state.crashk_cma or ()):
        out.append((f"crashk_cma_ranges[{i}]", rng))
    return tuple(out)


def add_mem_range(ranges: List[Range], start: int, end: int) -> None:
    """arch/powerpc/kexec/ranges.c ``add_mem_range()``: widen the first
    range it overlaps (strictly), else append."""
    for i, (s, e) in enumerate(ranges):
        if start < e and end > s:
            ranges[i] = (min(s, start), max(e, end))
            return
    ranges.append((start, end))


def memblock_crash_ranges(
    memblock: Sequence[Range],
    crashk: Range,
    firmware: Sequence[Range],
    backup: Range,
) -> Tuple[Tuple[Range, ...], int]:
    """
    arch/powerpc/kexec/ranges.c ``get_crash_memory_ranges()`` (6.12, 7.x):
    each memblock region (the backup region cut from the one that starts
    there), ``crashk_res`` excluded, then RTAS/OPAL and the backup region
    added, sorted by start without merging. The list grows as needed
    (realloc_mem_ranges()), so exclusion never runs out of slots; the
    merge it does when a chunk fills (128 ranges) is not replayed.

    :return: the ranges and crash_exclude_mem_range()'s error (0).
    """
    ranges: List[Range] = []
    bstart, bend = backup
    for start, end in memblock:
        if start == bstart:
            if end > bend:
                start = bend + 1
            else:
                continue
        add_mem_range(ranges, start, end)
    out, err = crash_exclude_mem_range(ranges, len(ranges) + 1, crashk[0], crashk[1])
    if err:
        return out, err
    ranges = list(out)
    for start, end in firmware:
        add_mem_range(ranges, start, end)
    add_mem_range(ranges, bstart, bend)
    return tuple(sorted(ranges, key=lambda r: r[0])), 0
