"""
Analysis
--------

What more than one consumer derives from the facts, worked out once by
:func:`analyze`: which CPUs the header's notes are for (the note rule), the
elfcorehdr the kernel would write now, the digest verdict, the memory rows
(RAM now against the header, range by range) and the CPU rows (each
possible CPU against the header's notes). The checks judge it; the
renderers show it, from the ``analysis`` object of the JSON document.
Nothing here reads the target.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from drgn_crashhp.arch import Rule, arch_named, arch_of
from drgn_crashhp.facts import (
    DigestStatus,
    DigestVerdict,
    ElfCoreHdr,
    Facts,
    Load,
    MachineState,
    MemoryBlock,
    Note,
    Purgatory,
    Range,
    RegionsHash,
    Role,
)
from drgn_crashhp.kernel.elfcorehdr import RebuiltHeader, rebuild_elfcorehdr
from drgn_crashhp.kernel.exclusions import excluded_ranges
from drgn_crashhp.kernel.notes import NoteCpus, NoteRule, note_rule

__all__ = (
    "Analysis",
    "CpuRow",
    "CpuStatus",
    "MemoryRow",
    "RowStatus",
    "analyze",
    "cpu_rows",
    "judge_digest",
    "memory_rows",
    "split_loads",
)


class RowStatus(str, enum.Enum):
    """What a piece of the address space is, for the elfcorehdr."""

    DESCRIBED = "described"
    #: In the header and RAM, although the kernel would leave it out now.
    DESCRIBED_EXCLUDED = "described (excluded by kernel)"
    #: In the header, no longer RAM (CHP051, CHP052).
    NOT_RAM = "not RAM now"
    #: RAM the kernel leaves out of every header (crashk_res, low 1 MiB, ...).
    EXCLUDED = "excluded"
    #: RAM of a block that is not online yet (CHP053).
    OFFLINE = "offline, not described yet"
    #: RAM the header does not describe (CHP050).
    MISSING = "MISSING"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class MemoryRow:
    """A piece of the address space: in the header, RAM now, excluded, status."""

    start: int
    #: Inclusive.
    end: int
    in_header: bool
    ram_now: bool
    #: Which exclusion covers it ("crashk_res", "low 1 MiB", ...), if any.
    excluded: Optional[str]
    #: State of the memory block covering it, when blocks are known.
    block: Optional[str]
    #: None when there is no decoded header to compare with.
    status: Optional[RowStatus]


class CpuStatus(str, enum.Enum):
    """What the elfcorehdr has for one possible CPU."""

    #: A note at the CPU's crash_notes.
    NOTED = "noted"
    #: A present CPU without a note (CHP040).
    MISSING = "missing"
    #: The note at this CPU's position points elsewhere (CHP042).
    WRONG_ADDRESS = "wrong address"
    #: A note for a CPU that is no longer present (CHP041).
    STALE = "stale"
    #: Possible, not present and without a note: a later hot-add of it will
    #: not be described (CHP044).
    NOT_YET = "no note if hot-added later"
    #: Not present and, by the note rule, needs no note.
    NOT_NEEDED = "not needed"
    #: Its crash_notes address could not be translated.
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CpuRow:
    """One possible CPU against the elfcorehdr's notes."""

    cpu: int
    present: bool
    online: bool
    #: Physical address of the CPU's ``crash_notes``, when translated.
    crash_notes: Optional[int]
    #: The header note taken for this CPU (at its address, or at its
    #: position when the address is wrong), if any.
    note: Optional[Note]
    #: None when there is no decoded header to compare with.
    status: Optional[CpuStatus]


@dataclass(frozen=True)
class Analysis:
    """What the checks and the renderers share, derived once from the facts."""

    #: Which CPUs the header's PT_NOTEs are for.
    rule: NoteRule
    #: The header's RAM PT_LOADs (not kernel text, not empty, not wrapping).
    header_ram: Tuple[Range, ...]
    memory_rows: Tuple[MemoryRow, ...]
    cpu_rows: Tuple[CpuRow, ...]
    #: Header notes that match no CPU (when they cannot be paired by
    #: position), as their physical addresses.
    stray_notes: Tuple[int, ...] = ()
    #: The header the kernel would write now; None without a decoded header
    #: or where the architecture's rebuild rules are not implemented.
    rebuild: Optional[RebuiltHeader] = None
    #: None when the digest was not recomputed or not located.
    digest: Optional[DigestVerdict] = None


def split_loads(hdr: ElfCoreHdr, machine: int) -> Tuple[List[Load], List[Load]]:
    """(kernel text loads, RAM loads) of a header for ELF machine *machine*."""
    is_text = arch_of(machine).is_kernel_text
    text = [ld for ld in hdr.loads if is_text(ld.vaddr)]
    ram = [ld for ld in hdr.loads if not is_text(ld.vaddr)]
    return text, ram


def _status(
    in_hdr: bool, is_ram: bool, excluded: Optional[str], block: str
) -> RowStatus:
    if in_hdr and is_ram:
        return RowStatus.DESCRIBED if excluded is None else RowStatus.DESCRIBED_EXCLUDED
    if in_hdr:
        return RowStatus.NOT_RAM
    if excluded is not None:
        return RowStatus.EXCLUDED
    if block and block != "MEM_ONLINE":
        return RowStatus.OFFLINE
    return RowStatus.MISSING


def memory_rows(
    header_ram: Sequence[Range], state: MachineState, judged: bool = True
) -> Tuple[MemoryRow, ...]:
    """
    Cut the address space at every boundary of the header's RAM loads, the
    System RAM walk, the exclusions and the memory blocks, and say for each
    piece whether it is described, RAM now, excluded, and its status (none
    unless *judged*: without a header, nothing is missing from it).
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
        row = MemoryRow(
            pts[i],
            pts[i + 1] - 1,
            in_hdr,
            is_ram,
            excluded,
            block or None,
            _status(in_hdr, is_ram, excluded, block) if judged else None,
        )
        last = rows[-1] if rows else None
        if (
            last is not None
            and last.end + 1 == row.start
            and (last.in_header, last.ram_now, last.excluded, last.block, last.status)
            == (row.in_header, row.ram_now, row.excluded, row.block, row.status)
        ):
            rows[-1] = MemoryRow(
                last.start,
                row.end,
                row.in_header,
                row.ram_now,
                row.excluded,
                row.block,
                row.status,
            )
        else:
            rows.append(row)
    return tuple(rows)


def cpu_rows(
    hdr: Optional[ElfCoreHdr], state: MachineState, rule: NoteRule
) -> Tuple[Tuple[CpuRow, ...], Tuple[int, ...]]:
    """
    Pair each possible CPU with the header's note at its ``crash_notes``.
    A note at a wrong address is paired by position when the header has one
    note per CPU of the rule (the kernel writes them in ascending order).

    :return: the rows, and the header notes that match no CPU.
    """
    if hdr is None or state.possible_cpus is None or state.present_cpus is None:
        unjudged = tuple(
            CpuRow(n.cpu, n.present, n.online, n.paddr, None, None)
            for n in state.cpu_notes
        )
        return unjudged, ()
    vmci = state.vmcoreinfo[0] if state.vmcoreinfo else None
    notes = [n for n in hdr.notes if n.paddr != vmci]
    if vmci is None and hdr.notes:
        notes = list(hdr.notes[:-1])  # the kernel writes vmcoreinfo last
    by_addr = {n.paddr: n.cpu for n in state.cpu_notes if n.paddr is not None}
    untranslated = {n.cpu for n in state.cpu_notes if n.paddr is None}
    matched: Dict[int, Note] = {}
    unmatched: List[Tuple[int, Note]] = []
    for pos, hdr_note in enumerate(notes):
        cpu = by_addr.get(hdr_note.paddr)
        if cpu is None or cpu in matched:
            unmatched.append((pos, hdr_note))
        else:
            matched[cpu] = hdr_note
    possible_rule = rule.cpus(arch_named(state.arch)) == NoteCpus.POSSIBLE
    rule_cpus = list(state.possible_cpus if possible_rule else state.present_cpus)
    paired: Dict[int, Note] = {}
    stray: List[int] = []
    if len(notes) == len(rule_cpus):
        for pos, hdr_note in unmatched:
            cpu = rule_cpus[pos]
            if cpu not in matched and cpu not in untranslated:
                paired[cpu] = hdr_note
    else:
        stray = [hdr_note.paddr for _, hdr_note in unmatched]
    present = set(state.present_cpus)
    rows: List[CpuRow] = []
    for n in state.cpu_notes:
        note = matched.get(n.cpu) or paired.get(n.cpu)
        if n.cpu in untranslated:
            status = CpuStatus.UNKNOWN
        elif n.cpu in paired:
            status = CpuStatus.WRONG_ADDRESS
        elif n.cpu in matched:
            stale = n.cpu not in present and not possible_rule
            status = CpuStatus.STALE if stale else CpuStatus.NOTED
        elif n.cpu in present:
            status = CpuStatus.MISSING
        elif possible_rule:
            status = CpuStatus.NOT_YET
        else:
            status = CpuStatus.NOT_NEEDED
        rows.append(CpuRow(n.cpu, n.present, n.online, n.paddr, note, status))
    return tuple(rows), tuple(stray)


def judge_digest(p: Purgatory, hashed: RegionsHash) -> DigestVerdict:
    """
    Whether purgatory's check passes: the recomputed digest against the
    stored one (or, for kexec_load, against the copy found in the segment).
    Missing bytes are never a match.
    """
    if hashed.computed is None:
        return DigestVerdict(
            DigestStatus.UNVERIFIABLE,
            p.stored_digest,
            None,
            hashed.bytes_hashed,
            hashed.missing,
            p.digest_address,
            hashed.reason,
        )
    if hashed.computed == p.stored_digest:
        return DigestVerdict(
            DigestStatus.MATCH,
            p.stored_digest,
            hashed.computed,
            hashed.bytes_hashed,
            digest_address=p.digest_address,
        )
    if hashed.found_at is not None:
        return DigestVerdict(
            DigestStatus.MATCH,
            hashed.computed,
            hashed.computed,
            hashed.bytes_hashed,
            digest_address=hashed.found_at,
            reason="digest found by searching the purgatory segment",
        )
    return DigestVerdict(
        DigestStatus.MISMATCH,
        p.stored_digest,
        hashed.computed,
        hashed.bytes_hashed,
        digest_address=p.digest_address,
    )


def analyze(facts: Facts) -> Analysis:
    """Everything more than one check or renderer needs, derived once."""
    hdr = (
        facts.elfcorehdr.header
        if facts.image is not None and facts.elfcorehdr is not None
        else None
    )
    rule = note_rule(facts.image, hdr, facts.state)
    header_ram: Tuple[Range, ...] = ()
    rebuild = None
    if hdr is not None:
        _, ram = split_loads(hdr, hdr.machine)
        # A load that wraps past 2**64 is CHP014's; it describes no RAM.
        header_ram = tuple((ld.paddr, ld.end) for ld in ram if ld.size and not ld.wraps)
        # Only where the architecture's kernel rebuilds the header and this
        # package knows how (x86's prepare_elf_headers(), powerpc's
        # update_crash_elfcorehdr()).
        target = arch_named(facts.state.arch)
        if target.rules & {Rule.ROOM, Rule.REBUILD} and target.crash_ranges:
            backup = facts.image.by_role(Role.BACKUP) if facts.image else None
            rebuild = rebuild_elfcorehdr(
                facts.state,
                NoteCpus.PRESENT
                if rule.kind == NoteCpus.PRESENT
                else NoteCpus.POSSIBLE,
                backup.mem if backup is not None else None,
            )
    cpus, stray = cpu_rows(hdr, facts.state, rule)
    digest = None
    if facts.purgatory is not None and facts.hashed is not None:
        digest = judge_digest(facts.purgatory, facts.hashed)
    return Analysis(
        rule=rule,
        header_ram=header_ram,
        memory_rows=memory_rows(header_ram, facts.state, judged=hdr is not None),
        cpu_rows=cpus,
        stray_notes=stray,
        rebuild=rebuild,
        digest=digest,
    )
