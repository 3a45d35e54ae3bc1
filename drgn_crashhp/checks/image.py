"""
00x: the crash image
--------------------

Whether an image is loaded and readable, its layout, and the sanity of its
segment table (kernel/kexec_core.c ``sanity_check_segment_list()``).
"""

from __future__ import annotations

from typing import List

from drgn_crashhp.analysis import Analysis
from drgn_crashhp.checks._common import page_size
from drgn_crashhp.facts import Facts, ImageProblemKind
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.kernel.segments import KEXEC_SEGMENT_MAX

__all__ = ("check_image",)


def check_image(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP001, CHP002, CHP003, CHP004, CHP005, CHP006 and CHP090."""
    problem = facts.image_problem
    if problem is not None:
        if problem.kind == ImageProblemKind.MISSING_INFO:
            return [finding("CHP090", problem.message)]
        if problem.kind == ImageProblemKind.UNREADABLE:
            return [finding("CHP002", problem.message, address=problem.address)]
        if facts.symbol == "kexec_crash_image":
            return [
                finding(
                    "CHP001", "kexec_crash_image is NULL: no crash kernel is loaded"
                )
            ]
        return [finding("CHP006", problem.message)]
    image = facts.image
    if image is None:
        return []
    page = page_size(facts)
    out = [
        finding(
            "CHP005",
            f"{image.symbol} at {image.address:#x}: struct kimage layout "
            f"{image.hotplug.layout} "
            f"({'kexec_file_load' if image.file_mode else 'kexec_load'}"
            f", {image.nr_segments} segments)",
            layout=str(image.hotplug.layout),
            file_mode=image.file_mode,
        )
    ]
    problems = []
    if image.nr_segments == 0:
        problems.append("nr_segments is 0")
    elif image.nr_segments > KEXEC_SEGMENT_MAX:
        problems.append(
            f"nr_segments {image.nr_segments} exceeds KEXEC_SEGMENT_MAX "
            f"({KEXEC_SEGMENT_MAX}); only the first {KEXEC_SEGMENT_MAX} were read"
        )
    for seg in image.segments:
        if seg.memsz < seg.bufsz:
            problems.append(
                f"segment {seg.index}: memsz {seg.memsz:#x} < bufsz {seg.bufsz:#x}"
            )
        if seg.mem % page or seg.memsz % page:
            problems.append(
                f"segment {seg.index}: mem {seg.mem:#x} or memsz "
                f"{seg.memsz:#x} not page aligned"
            )
    ordered = sorted(image.segments, key=lambda s: s.mem)
    for a, b in zip(ordered, ordered[1:]):
        if b.mem < a.mem + a.memsz:
            problems.append(f"segments {a.index} and {b.index} overlap")
    if problems:
        out.append(
            finding(
                "CHP003",
                "; ".join(problems[:4])
                + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""),
                problems=problems,
            )
        )
    crashk = facts.state.crashk_res
    if image.type == 1 and crashk is not None and crashk[1]:
        outside = [
            seg.index
            for seg in image.segments
            if seg.memsz and not (crashk[0] <= seg.mem and seg.end <= crashk[1])
        ]
        if outside:
            out.append(
                finding(
                    "CHP004",
                    f"segments {outside} lie outside crashk_res "
                    f"[{crashk[0]:#x}-{crashk[1]:#x}]",
                    segments=outside,
                    crashk=list(crashk),
                )
            )
    return out
