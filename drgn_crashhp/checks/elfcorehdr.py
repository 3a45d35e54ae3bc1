"""
01x: the elfcorehdr segment
---------------------------

Whether the header the capture kernel will read exists, is in the target,
decodes, and has sane PT_LOADs (fs/proc/vmcore.c takes them as given).
"""

from __future__ import annotations

from typing import List

from drgn_crashhp.analysis import Analysis, split_loads
from drgn_crashhp.checks._common import arch
from drgn_crashhp.facts import Facts, UnreadKind
from drgn_crashhp.findings import Finding, finding

__all__ = ("check_elfcorehdr",)


def check_elfcorehdr(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP010, CHP011, CHP012, CHP013 and CHP014."""
    image, read = facts.image, facts.elfcorehdr
    if image is None or read is None:
        return []
    if read.segment is None:
        if read.unread is not None and read.unread.kind == UnreadKind.NOT_IN_TARGET:
            # kexec_load images are found by the ELF header a segment starts
            # with; a kdump dump holds no segment (the crash region), so
            # which one it is cannot be told here, not that there is none.
            return [
                finding(
                    "CHP011",
                    "the elfcorehdr is not in this target: no segment of the "
                    f"image is readable here ({read.unread}), so the one that "
                    "holds it cannot be identified",
                    segment=None,
                    source=image.elfcorehdr_source,
                )
            ]
        return [
            finding(
                "CHP010",
                f"no elfcorehdr segment: {read.unread}",
                source=image.elfcorehdr_source,
            )
        ]
    seg = read.segment
    unread = read.unread
    if unread is not None and unread.kind == UnreadKind.NOT_IN_TARGET:
        return [
            finding(
                "CHP011",
                f"elfcorehdr segment {seg.index} at {seg.mem:#x} is not in this target",
                segment=seg.index,
                address=unread.address,
                size=unread.size,
            )
        ]
    if read.header is None:
        return [
            finding(
                "CHP012",
                f"elfcorehdr segment {seg.index} at {seg.mem:#x}: {unread}",
                segment=seg.index,
                reason=str(unread),
            )
        ]
    hdr = read.header
    out = []
    wrapping = [ld for ld in hdr.loads if ld.wraps]
    if wrapping:
        ld = wrapping[0]
        out.append(
            finding(
                "CHP014",
                f"PT_LOAD {ld.index} at {ld.paddr:#x} with size {ld.size:#x} "
                "runs past the top of the 64-bit address space",
                first=ld.index,
                paddr=ld.paddr,
                size=ld.size,
            )
        )
    ram = sorted(
        (ld for ld in split_loads(hdr, hdr.machine)[1] if not ld.wraps),
        key=lambda ld: ld.index,
    )
    # kexec-tools on ppc64 appends the RTAS region last, out of address
    # order, on purpose: there only an overlap is wrong.
    ordered = arch(facts).sorted_header_loads
    for a, b in zip(ram, ram[1:]):
        overlaps = b.paddr <= a.end and b.end >= a.paddr
        if overlaps or (ordered and b.paddr <= a.end):
            why = "overlaps" if overlaps else "comes before"
            out.append(
                finding(
                    "CHP014",
                    f"PT_LOAD {b.index} [{b.paddr:#x}-{b.end:#x}] {why} "
                    f"PT_LOAD {a.index} [{a.paddr:#x}-{a.end:#x}]",
                    first=a.index,
                    second=b.index,
                )
            )
            break
    return out + [
        finding(
            "CHP013",
            f"elfcorehdr at {seg.mem:#x} (segment {seg.index}, found by "
            f"{image.elfcorehdr_source}): {len(hdr.notes)} notes, {len(hdr.loads)} "
            f"loads, {hdr.used} of {hdr.capacity} bytes used",
            segment=seg.index,
            notes=len(hdr.notes),
            loads=len(hdr.loads),
            used=hdr.used,
            capacity=hdr.capacity,
        )
    ]
