"""
05x: memory
-----------

Whether the elfcorehdr's PT_LOADs describe all RAM now and only RAM, range
by range (:func:`memory_rows` cuts the address space at every boundary),
whether its kernel text PT_LOAD maps the running kernel, and whether the
whole header equals the one the kernel would write now
(:func:`drgn_crashhp.kernel.elfcorehdr.rebuild_elfcorehdr`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from drgn_crashhp.arch.x86_64 import LOW_RESERVED
from drgn_crashhp.checks._common import expectations, header, split_loads, unknown
from drgn_crashhp.facts import ElfCoreHdr, Facts, KImage, MachineState, MemoryBlock
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.fmt import mib
from drgn_crashhp.fmt import ranges as fmt_ranges
from drgn_crashhp.kernel.elfcorehdr import EHDR_SIZE, PHDR_SIZE
from drgn_crashhp.kernel.exclusions import excluded_ranges
from drgn_crashhp.kernel.notes import NoteRule
from drgn_crashhp.kernel.ranges import Range, covered, normalize, size, subtract

__all__ = (
    "CONTENT_ERRORS",
    "MemoryRow",
    "check_memory",
    "check_rebuild",
    "check_text",
    "memory_rows",
)


@dataclass(frozen=True)
class MemoryRow:
    """A piece of the address space: in the header, RAM now, excluded, status."""

    start: int
    end: int
    in_header: bool
    ram_now: bool
    #: Which exclusion covers it ("crashk_res", "low 1 MiB", ...), if any.
    excluded: Optional[str]
    #: State of the memory block covering it, when blocks are known.
    block: Optional[str]
    status: str


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
        ("hdr", header_ram),
        ("ram", ram_now),
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
        if (
            rows
            and rows[-1].end + 1 == s
            and (
                rows[-1].in_header,
                rows[-1].ram_now,
                rows[-1].excluded,
                rows[-1].block,
                rows[-1].status,
            )
            == (in_hdr, is_ram, excluded, block or None, status)
        ):
            rows[-1] = MemoryRow(
                rows[-1].start, e, in_hdr, is_ram, excluded, block or None, status
            )
        else:
            rows.append(
                MemoryRow(s, e, in_hdr, is_ram, excluded, block or None, status)
            )
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


def _text(hdr: ElfCoreHdr, state: MachineState, rule: NoteRule) -> List[Finding]:
    t = state.kernel_text
    if t is None:
        return unknown(state, "kernel text PT_LOAD", ["kernel_text"])
    text, _ = split_loads(hdr)
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


def _memory(
    image: KImage, hdr: ElfCoreHdr, state: MachineState, rule: NoteRule
) -> List[Finding]:
    if state.system_ram is None or state.iomem_problem:
        return unknown(state, "RAM ranges", ["system_ram"])
    _, loads = split_loads(hdr)
    # A load that wraps past 2**64 is CHP014's; it describes no RAM.
    header_ram = [(ld.paddr, ld.end) for ld in loads if ld.size and not ld.wraps]
    rows = memory_rows(header_ram, state)
    out: List[Finding] = []
    missing = [(r.start, r.end) for r in rows if r.status == "MISSING"]
    offline = [
        (r.start, r.end) for r in rows if r.status == "offline, not described yet"
    ]
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
    for s, e in header_ram:
        if not rule.kernel_format and e <= LOW_RESERVED[1]:
            continue  # kexec-tools' backup-region range (kernel-notes §2.8)
        if not rule.kernel_format and s <= LOW_RESERVED[1]:
            s = LOW_RESERVED[1] + 1
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


def check_text(facts: Facts) -> List[Finding]:
    """Emits CHP054 and CHP090."""
    hdr = header(facts)
    if hdr is None:
        return []
    return _text(hdr, facts.state, expectations(facts).rule)


def check_memory(facts: Facts) -> List[Finding]:
    """Emits CHP050, CHP051, CHP052, CHP053 and CHP090."""
    hdr = header(facts)
    if hdr is None or facts.image is None:
        return []
    return _memory(facts.image, hdr, facts.state, expectations(facts).rule)


def check_rebuild(facts: Facts, found: Sequence[Finding]) -> List[Finding]:
    """
    Emits CHP055 (byte-identical to a rebuild) and CHP056 (describes every
    CPU and all RAM), judged from the header and the content findings
    *found* by the content checks (:func:`check_cpus
    <drgn_crashhp.checks.cpus.check_cpus>`, vmcoreinfo, text, memory).
    """
    hdr = header(facts)
    if hdr is None or facts.elfcorehdr is None:
        return []
    hdr_bytes = facts.elfcorehdr.data or None
    exp = expectations(facts)
    rule, expected = exp.rule, exp.rebuild
    out: List[Finding] = []
    content = [f for f in found if f.code in CONTENT_ERRORS]
    unknowns = [f for f in found if f.code == "CHP090"]
    identical = bool(expected.data) and hdr_bytes == expected.data
    if identical:
        out.append(
            finding(
                "CHP055",
                f"the elfcorehdr is byte-identical to a rebuild from the "
                f"state now ({len(expected.data)} bytes, "
                f"{(len(expected.data) - EHDR_SIZE) // PHDR_SIZE} program headers)",
                bytes=len(expected.data),
                rule=rule.kind,
            )
        )
    if not content and not unknowns:
        detail = ""
        if not identical and rule.kernel_format and expected.data and hdr_bytes:
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
                rule=rule.kind,
                rule_reason=rule.reason,
            )
        )
    return out
