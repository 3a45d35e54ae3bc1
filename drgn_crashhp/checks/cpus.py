"""
04x: CPUs
---------

Whether the elfcorehdr has a PT_NOTE at each CPU's ``crash_notes`` for
every CPU the kernel writes notes for (:mod:`drgn_crashhp.kernel.notes`),
judged from the CPU rows of :func:`drgn_crashhp.analysis.cpu_rows`, and one
for the vmcoreinfo note (kernel/vmcore_info.c).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from drgn_crashhp.analysis import Analysis, CpuStatus
from drgn_crashhp.checks._common import header, unknown
from drgn_crashhp.facts import ElfCoreHdr, Facts, MachineState
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.fmt import cpulist, hex_or_dash

__all__ = ("check_cpus", "check_vmcoreinfo")


def _cpus(analysis: Analysis, state: MachineState) -> List[Finding]:
    if state.possible_cpus is None or state.present_cpus is None:
        return unknown(state, "CPU notes", ["possible_cpus", "present_cpus"])
    out: List[Finding] = []
    rows, rule = analysis.cpu_rows, analysis.rule
    untranslated = [r.cpu for r in rows if r.status == CpuStatus.UNKNOWN]
    if untranslated:
        out += unknown(state, f"notes of CPUs {untranslated[:8]}", ["cpu_notes"])
    wrong: List[Dict[str, Optional[int]]] = [
        {
            "cpu": r.cpu,
            "header": r.note.paddr if r.note else None,
            "crash_notes": r.crash_notes,
        }
        for r in rows
        if r.status == CpuStatus.WRONG_ADDRESS
    ]
    wrong += [
        {"cpu": None, "header": a, "crash_notes": None} for a in analysis.stray_notes
    ]
    if state.note_size is not None:
        wrong += [
            {"cpu": r.cpu, "header_size": r.note.size, "note_size": state.note_size}
            for r in rows
            if r.status in (CpuStatus.NOTED, CpuStatus.STALE)
            and r.note is not None
            and r.note.size != state.note_size
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

    def cpus(status: CpuStatus) -> List[int]:
        return [r.cpu for r in rows if r.status == status]

    missing = cpus(CpuStatus.MISSING)
    if missing:
        out.append(
            finding(
                "CHP040",
                f"{len(missing)} present CPU(s) have no note in the "
                f"elfcorehdr: {cpulist(missing)}",
                cpus=missing,
                rule=str(rule.kind),
            )
        )
    absent = cpus(CpuStatus.NOT_YET)
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
    gone = cpus(CpuStatus.STALE)
    if gone:
        out.append(
            finding(
                "CHP041",
                f"notes for CPUs {cpulist(gone)} that are no longer present",
                cpus=gone,
                rule=str(rule.kind),
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


def check_cpus(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP040, CHP041, CHP042, CHP044 and CHP090."""
    if header(facts) is None:
        return []
    return _cpus(analysis, facts.state)


def check_vmcoreinfo(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP043 and CHP090."""
    hdr = header(facts)
    return [] if hdr is None else _vmcoreinfo(hdr, facts.state)
