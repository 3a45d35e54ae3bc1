"""
04x: CPUs
---------

Whether the elfcorehdr has a PT_NOTE at each CPU's ``crash_notes`` for
every CPU the kernel writes notes for (:mod:`drgn_crashhp.kernel.notes`),
and one for the vmcoreinfo note (kernel/vmcore_info.c).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from drgn_crashhp.checks._common import expectations, header, unknown
from drgn_crashhp.facts import ElfCoreHdr, Facts, MachineState, Note
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.fmt import cpulist, hex_or_dash
from drgn_crashhp.kernel.notes import NoteRule

__all__ = ("check_cpus", "check_vmcoreinfo")


def _cpus(hdr: ElfCoreHdr, state: MachineState, rule: NoteRule) -> List[Finding]:
    if state.possible_cpus is None or state.present_cpus is None:
        return unknown(state, "CPU notes", ["possible_cpus", "present_cpus"])
    out: List[Finding] = []
    vmci = state.vmcoreinfo[0] if state.vmcoreinfo else None
    cpu_notes = [n for n in hdr.notes if n.paddr != vmci]
    if vmci is None and hdr.notes:
        cpu_notes = list(hdr.notes[:-1])  # the kernel writes vmcoreinfo last
    by_addr = {n.paddr: n.cpu for n in state.cpu_notes if n.paddr is not None}
    untranslated = [n.cpu for n in state.cpu_notes if n.paddr is None]
    if untranslated:
        out += unknown(state, f"notes of CPUs {untranslated[:8]}", ["cpu_notes"])
    matched: Dict[int, Note] = {}
    unmatched: List[Tuple[int, Note]] = []
    for pos, n in enumerate(cpu_notes):
        cpu = by_addr.get(n.paddr)
        if cpu is None or cpu in matched:
            unmatched.append((pos, n))
        else:
            matched[cpu] = n
    present = set(state.present_cpus)
    rule_cpus = list(
        state.possible_cpus if rule.kind == "possible" else state.present_cpus
    )
    # A note at the wrong address: pair by position when the header has one
    # note per CPU of the rule (the kernel writes them in ascending order).
    wrong: List[Dict[str, Optional[int]]] = []
    paired = set()
    if len(cpu_notes) == len(rule_cpus):
        for pos, n in unmatched:
            cpu = rule_cpus[pos]
            if cpu not in matched and cpu not in untranslated:
                note = state.note_of(cpu)
                wrong.append(
                    {
                        "cpu": cpu,
                        "header": n.paddr,
                        "crash_notes": note.paddr if note else None,
                    }
                )
                paired.add(cpu)
    else:
        wrong += [
            {"cpu": None, "header": n.paddr, "crash_notes": None} for _, n in unmatched
        ]
    if state.note_size is not None:
        wrong += [
            {"cpu": c, "header_size": n.size, "note_size": state.note_size}
            for c, n in sorted(matched.items())
            if n.size != state.note_size
        ]
    if wrong:
        out.append(
            finding(
                "CHP042",
                f"{len(wrong)} CPU note(s) do not point at the CPU's "
                f"crash_notes: {_fmt_wrong(wrong)}",
                notes=wrong,
            )
        )
    missing = [
        c
        for c in sorted(present)
        if c not in matched and c not in paired and c not in untranslated
    ]
    if missing:
        out.append(
            finding(
                "CHP040",
                f"{len(missing)} present CPU(s) have no note in the "
                f"elfcorehdr: {cpulist(missing)}",
                cpus=missing,
                rule=rule.kind,
            )
        )
    if rule.kind == "possible":
        absent = [
            c
            for c in state.possible_cpus
            if c not in present
            and c not in matched
            and c not in paired
            and c not in untranslated
        ]
        if absent:
            out.append(
                finding(
                    "CHP044",
                    f"no notes for possible CPUs {cpulist(absent)} (not "
                    "present now): a later hot-add will not be described, x86 does "
                    "not rewrite a kernel-built header for CPU events",
                    cpus=absent,
                )
            )
    else:
        gone = [c for c in sorted(matched) if c not in present]
        if gone:
            out.append(
                finding(
                    "CHP041",
                    f"notes for CPUs {cpulist(gone)} that are no longer present",
                    cpus=gone,
                    rule=rule.kind,
                )
            )
    return out


def _fmt_wrong(wrong: List[Dict[str, Optional[int]]]) -> str:
    parts = []
    for w in wrong[:4]:
        if "header_size" in w:
            parts.append(
                f"CPU {w['cpu']} note size {w['header_size']} != {w['note_size']}"
            )
        elif w["cpu"] is None:
            parts.append(f"{hex_or_dash(w['header'], 'unknown')} matches no CPU")
        else:
            parts.append(
                f"CPU {w['cpu']} at {hex_or_dash(w['header'], 'unknown')}, crash_notes "
                f"{hex_or_dash(w['crash_notes'], 'unknown')}"
            )
    if len(wrong) > 4:
        parts.append(f"{len(wrong) - 4} more")
    return "; ".join(parts)


def _vmcoreinfo(hdr: ElfCoreHdr, state: MachineState) -> List[Finding]:
    if state.vmcoreinfo is None:
        return unknown(state, "vmcoreinfo note", ["vmcoreinfo"])
    paddr, size = state.vmcoreinfo
    found = [n for n in hdr.notes if n.paddr == paddr]
    if not found:
        return [
            finding(
                "CHP043",
                f"no PT_NOTE for the vmcoreinfo note at {paddr:#x}",
                paddr=paddr,
                size=size,
            )
        ]
    if found[0].size != size:
        return [
            finding(
                "CHP043",
                f"the vmcoreinfo PT_NOTE has size "
                f"{found[0].size}, VMCOREINFO_NOTE_SIZE is {size}",
                paddr=paddr,
                size=size,
                header_size=found[0].size,
            )
        ]
    return []


def check_cpus(facts: Facts) -> List[Finding]:
    """Emits CHP040, CHP041, CHP042, CHP044 and CHP090."""
    hdr = header(facts)
    if hdr is None:
        return []
    return _cpus(hdr, facts.state, expectations(facts).rule)


def check_vmcoreinfo(facts: Facts) -> List[Finding]:
    """Emits CHP043 and CHP090."""
    hdr = header(facts)
    return [] if hdr is None else _vmcoreinfo(hdr, facts.state)
