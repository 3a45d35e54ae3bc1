"""
072: a needed kernel object filtered out of a makedumpfile dump
--------------------------------------------------------------

makedumpfile's dump level drops pages it takes for zero, cache, user or
free pages: the 2nd page bitmap of a kdump-compressed file lacks them while
the 1st (what the capture kernel's /proc/vmcore described) has them
(kernel-notes §12). A live kernel object in such a page is gone from the
dump although the crashed kernel had it. Seen on Linux 7.3, whose
VMCOREINFO names ``page.compound_info`` (6.12: ``compound_head``):
makedumpfile 1.7.8 with ``-d 31`` then takes the tail pages of multi-page
slabs for user pages and drops them, ``struct kimage`` (kmalloc-1k) among
them; ``-d 23`` (user pages kept) keeps them.

This says which object, which page, the dump level from the kdump header,
and what to change, instead of only "cannot be read" (CHP002) or an
unknown field (CHP090). Seen on the lab's own 7.3 capture (makedumpfile
1.7.2 ``-d 31``): 279 slab tail pages filtered, one of them holding a
``radix_tree_node`` of the ``memory_blocks`` xarray.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from drgn_crashhp.analysis import Analysis
from drgn_crashhp.checks._common import page_size
from drgn_crashhp.facts import Facts, ImageProblemKind, UnreadKind
from drgn_crashhp.findings import Finding, finding

__all__ = ("check_filtered",)

#: ``makedumpfile -d`` bit for user process data pages (DL_EXCLUDE_USER_DATA).
DL_EXCLUDE_USER_DATA = 8


def _has(ranges: Tuple[Tuple[int, int], ...], address: int) -> bool:
    return any(start <= address <= end for start, end in ranges)


def _physical(facts: Facts, address: int) -> Optional[int]:
    """The physical address of a direct-map *address*, else None. An object
    elsewhere (kernel image, vmalloc) gives an address that no bitmap range
    holds, so the caller's range test leaves it out."""
    page_offset = facts.state.page_offset
    if page_offset is None or address < page_offset:
        return None
    return address - page_offset


def suggested_level(level: int) -> int:
    """The dump level to use instead: *level* without the user-page bit
    (the pages makedumpfile mistakes for user pages), or only zero pages
    (1) when that bit is not set."""
    return level & ~DL_EXCLUDE_USER_DATA if level & DL_EXCLUDE_USER_DATA else 1


#: What the fields of MachineState that can fault on are, for the message.
_OBJECTS = {
    "memory_blocks": "the memory block list (memory_blocks xarray)",
    "cpu_notes": "the per-CPU crash_notes pointers",
    "system_ram": "an iomem tree node (struct resource; the System RAM walk "
    "stops there)",
}


def _needed(facts: Facts) -> List[Tuple[str, int, int]]:
    """(object, virtual address, size) of each needed object that could not
    be read: the crash image, and machine-state fields whose read faulted
    (size 1 when only the faulting address is known)."""
    out: List[Tuple[str, int, int]] = []
    problem = facts.image_problem
    if (
        problem is not None
        and problem.kind == ImageProblemKind.UNREADABLE
        and problem.address is not None
    ):
        out.append((f"struct kimage of {facts.symbol}", problem.address, 1))
    for u in facts.state.unknown:
        if u.kind == UnreadKind.NOT_IN_TARGET and u.address is not None:
            out.append((_OBJECTS.get(u.what, u.what), u.address, u.size or 1))
    return out


def _filtered_page(facts: Facts, address: int, size: int, page: int) -> Optional[int]:
    """The physical start of the first page of [address, address + size)
    that the dump's 1st bitmap has and its 2nd lacks, else None."""
    dump = facts.dump
    assert dump is not None and dump.described is not None
    assert dump.dumped is not None
    phys = _physical(facts, address)
    if phys is None:
        return None
    start = phys // page * page
    while start < phys + size:
        if _has(dump.described, start) and not _has(dump.dumped, start):
            return start
        start += page
    return None


def check_filtered(facts: Facts, analysis: Analysis) -> List[Finding]:
    """
    Emits CHP072 when a needed object (the crash image, ``struct kimage``
    of ``kexec_crash_image``; or a machine-state object whose read faulted,
    such as a node of the ``memory_blocks`` xarray) is in a direct-map page
    that the dump's 1st bitmap has but not its 2nd. The pages judged are
    those of the object when its size is known (an iomem node), else the
    page of the address that faulted (a kimage is a kmalloc-1k object,
    1024-byte aligned, so it never spans two pages).
    """
    dump = facts.dump
    # Any kdump-compressed file: makedumpfile keeps the notes of its input,
    # so a QEMU dump it filtered has producer "qemu" but is filtered all
    # the same. QEMU's own kdump-* files have equal bitmaps.
    if dump is None or dump.described is None or dump.dumped is None:
        return []
    page = page_size(facts)
    lost: List[Dict[str, Any]] = []
    for obj, address, size in _needed(facts):
        start = _filtered_page(facts, address, size, page)
        if start is None:
            continue
        lost.append(
            {
                "object": obj,
                "address": address,
                "physical": start,
                "pfn": start // page,
            }
        )
    if not lost:
        return []
    level = dump.dump_level
    better = suggested_level(level) if level is not None and level >= 0 else 1
    setting = f'MAKEDUMP_ARGS="-c -d {better}"'
    what = "; ".join(
        f"{o['object']} at {o['address']:#x} (pfn {o['pfn']:#x})" for o in lost
    )
    return [
        finding(
            "CHP072",
            f"{len(lost)} kernel object(s) the check needs are in pages the "
            "dump's 1st bitmap has and its 2nd bitmap lacks, filtered out by "
            f"makedumpfile's dump level {level}: {what}. Use dump level "
            f"{better} (on Debian, {setting} in /etc/default/kdump-tools) so "
            "the next dump keeps them",
            objects=lost,
            dump_level=level,
            suggested_dump_level=better,
            config="/etc/default/kdump-tools",
            setting=setting,
        )
    ]
