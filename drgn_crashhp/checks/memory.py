"""
05x: memory
-----------

Whether the elfcorehdr's PT_LOADs describe all RAM now and only RAM, range
by range (from the memory rows of :func:`drgn_crashhp.analysis.memory_rows`),
whether its kernel text PT_LOAD maps the running kernel, and whether the
whole header equals the one the kernel would write now
(:func:`drgn_crashhp.kernel.elfcorehdr.rebuild_elfcorehdr`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from drgn_crashhp.analysis import Analysis, RowStatus, split_loads
from drgn_crashhp.checks._common import arch, header, unknown
from drgn_crashhp.facts import ElfCoreHdr, Facts, KImage, MachineState
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.fmt import mib
from drgn_crashhp.fmt import ranges as fmt_ranges
from drgn_crashhp.kernel.elfcorehdr import EHDR_SIZE, PHDR_SIZE
from drgn_crashhp.kernel.notes import NoteRule
from drgn_crashhp.kernel.ranges import Range, covered, normalize, size, subtract

__all__ = ("CONTENT_ERRORS", "check_memory", "check_rebuild", "check_text")


def _text(hdr: ElfCoreHdr, state: MachineState, rule: NoteRule) -> List[Finding]:
    t = state.kernel_text
    if t is None:
        return unknown(state, "kernel text PT_LOAD", ["kernel_text"])
    text, _ = split_loads(hdr, hdr.machine)
    want = f"[{t.vaddr:#x}, +{t.size:#x}) at physical {t.paddr:#x}"
    if not text:
        return [
            finding(
                "CHP054",
                f"no PT_LOAD for the kernel text {want}",
                vaddr=t.vaddr,
                paddr=t.paddr,
                size=t.size,
            )
        ]
    ld = text[0]
    if rule.kernel_format:
        ok = (ld.vaddr, ld.paddr, ld.size) == (t.vaddr, t.paddr, t.size)
    else:
        # kexec-tools aligns the kcore text segment: it must cover _text.._end
        # with the same virtual-to-physical offset.
        ok = (
            ld.vaddr <= t.vaddr
            and ld.vaddr + ld.size >= t.vaddr + t.size
            and ld.vaddr - ld.paddr == t.vaddr - t.paddr
        )
    if ok:
        return []
    return [
        finding(
            "CHP054",
            f"kernel text PT_LOAD is [{ld.vaddr:#x}, +{ld.size:#x}) at "
            f"physical {ld.paddr:#x}; the running kernel is {want} "
            f"(size from {t.size_source})",
            header={"vaddr": ld.vaddr, "paddr": ld.paddr, "size": ld.size},
            kernel={"vaddr": t.vaddr, "paddr": t.paddr, "size": t.size},
        )
    ]


def _memory(image: KImage, facts: Facts, analysis: Analysis) -> List[Finding]:
    state, rule = facts.state, analysis.rule
    if state.system_ram is None or state.iomem_problem:
        return unknown(state, "RAM ranges", ["system_ram"])
    rows = analysis.memory_rows
    out: List[Finding] = []
    missing = [(r.start, r.end) for r in rows if r.status == RowStatus.MISSING]
    offline = [(r.start, r.end) for r in rows if r.status == RowStatus.OFFLINE]
    if missing:
        merged = normalize(missing)
        out.append(
            finding(
                "CHP050",
                f"{mib(size(merged))} of RAM in {len(merged)} range(s) "
                f"not in the elfcorehdr: {fmt_ranges(merged)}",
                ranges=[list(r) for r in merged],
                bytes=size(merged),
            )
        )
    if offline:
        merged = normalize(offline)
        out.append(
            finding(
                "CHP053",
                f"{mib(size(merged))} of added but offline memory not "
                f"described yet: {fmt_ranges(merged)}",
                ranges=[list(r) for r in merged],
                bytes=size(merged),
            )
        )
    ram_now = normalize(state.system_ram)
    starts = [s for s, _ in ram_now]
    gone: List[Range] = []
    partial: List[Dict[str, Any]] = []
    # kexec-tools' backup-region range (kernel-notes §2.8) is not RAM's.
    low = arch(facts).low_reserved if not rule.kernel_format else None
    for s, e in analysis.header_ram:
        if low is not None and e <= low[1]:
            continue
        if low is not None and s <= low[1]:
            s = low[1] + 1
        inside = covered((s, e), ram_now, starts)
        if inside == 0:
            gone.append((s, e))
        elif inside != e - s + 1:
            partial.append(
                {
                    "range": [s, e],
                    "not_ram": [list(r) for r in subtract([(s, e)], ram_now)],
                }
            )
    if gone:
        why = ""
        if image.hotplug.support:
            why = (
                " (x86 rebuilds the header at MEM_OFFLINE while the range is "
                "still System RAM; nothing rebuilds it after removal)"
            )
        out.append(
            finding(
                "CHP051",
                f"{len(gone)} elfcorehdr range(s), {mib(size(gone))}, are "
                f"no longer RAM: {fmt_ranges(gone)}{why}",
                ranges=[list(r) for r in gone],
                bytes=size(gone),
            )
        )
    if partial:
        out.append(
            finding(
                "CHP052",
                f"{len(partial)} elfcorehdr range(s) are only partly RAM: "
                + fmt_ranges([tuple(p["range"]) for p in partial]),
                ranges=partial,
            )
        )
    return out


def _first_difference(a: bytes, b: bytes) -> str:
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    if i < EHDR_SIZE:
        return f"ELF header byte {i:#x}"
    if i == n and len(a) != len(b):
        return f"length {len(a)} vs {len(b)} bytes"
    return f"program header {(i - EHDR_SIZE) // PHDR_SIZE}"


#: Findings that mean the header's content is wrong for the machine now.
CONTENT_ERRORS = frozenset(
    {"CHP040", "CHP042", "CHP043", "CHP050", "CHP051", "CHP052", "CHP054"}
)


def check_text(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP054 and CHP090."""
    hdr = header(facts)
    if hdr is None:
        return []
    return _text(hdr, facts.state, analysis.rule)


def check_memory(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP050, CHP051, CHP052, CHP053 and CHP090."""
    if header(facts) is None or facts.image is None:
        return []
    return _memory(facts.image, facts, analysis)


def check_rebuild(
    facts: Facts, analysis: Analysis, found: Sequence[Finding]
) -> List[Finding]:
    """
    Emits CHP055 (byte-identical to a rebuild) and CHP056 (describes every
    CPU and all RAM), judged from the header and the content findings
    *found* by the content checks (:func:`check_cpus
    <drgn_crashhp.checks.cpus.check_cpus>`, vmcoreinfo, text, memory).
    """
    hdr = header(facts)
    rule, expected = analysis.rule, analysis.rebuild
    if hdr is None or facts.elfcorehdr is None:
        return []
    if expected is None and rule.kernel_format:
        # A kernel-written header on an architecture whose rebuild this
        # package does not replay: nothing to judge it by.
        return []
    hdr_bytes = facts.elfcorehdr.data or None
    out: List[Finding] = []
    content = [f for f in found if f.code in CONTENT_ERRORS]
    unknowns = [f for f in found if f.code == "CHP090"]
    identical = (
        expected is not None and bool(expected.data) and hdr_bytes == expected.data
    )
    if identical:
        assert expected is not None
        out.append(
            finding(
                "CHP055",
                f"the elfcorehdr is byte-identical to a rebuild from the "
                f"state now ({len(expected.data)} bytes, "
                f"{(len(expected.data) - EHDR_SIZE) // PHDR_SIZE} program headers)",
                bytes=len(expected.data),
                rule=str(rule.kind),
            )
        )
    if not content and not unknowns:
        detail = ""
        if (
            not identical
            and rule.kernel_format
            and expected is not None
            and expected.data
            and hdr_bytes
        ):
            where = _first_difference(hdr_bytes, expected.data)
            detail = f"; differs from a rebuild: {where}"
        elif not rule.kernel_format:
            detail = " (kexec-tools format: judged by content, not bytes)"
        out.append(
            finding(
                "CHP056",
                f"the elfcorehdr describes every CPU and all RAM of the "
                f"machine now{detail}",
                byte_identical=identical,
                rule=str(rule.kind),
                rule_reason=rule.reason,
            )
        )
    return out
