"""What several checks share: the expectations derived from the facts."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from drgn_crashhp.arch.x86_64 import is_kernel_text
from drgn_crashhp.facts import ElfCoreHdr, Facts, Load, MachineState
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.kernel.elfcorehdr import Expected, rebuild_elfcorehdr
from drgn_crashhp.kernel.notes import NoteRule, note_rule

__all__ = ("Expectations", "expectations", "header", "split_loads", "unknown")


@dataclass(frozen=True)
class Expectations:
    """Which CPUs need notes, and the header the kernel would write now."""

    rule: NoteRule
    rebuild: Expected


def header(facts: Facts) -> Optional[ElfCoreHdr]:
    """The decoded elfcorehdr of a loaded image, if any."""
    if facts.image is None or facts.elfcorehdr is None:
        return None
    return facts.elfcorehdr.header


@functools.lru_cache(maxsize=4)
def expectations(facts: Facts) -> Expectations:
    rule = note_rule(facts.image, header(facts), facts.state)
    cpus = "present" if rule.kind == "present" else "possible"
    return Expectations(rule, rebuild_elfcorehdr(facts.state, cpus))


def split_loads(hdr: ElfCoreHdr) -> Tuple[List[Load], List[Load]]:
    """(kernel text loads, RAM loads): text maps __START_KERNEL_map."""
    text = [ld for ld in hdr.loads if is_kernel_text(ld.vaddr)]
    ram = [ld for ld in hdr.loads if not is_kernel_text(ld.vaddr)]
    return text, ram


def unknown(state: MachineState, what: str, fields: Sequence[str]) -> List[Finding]:
    """CHP090 for a check that could not run, naming why each field is unknown."""
    reasons = [(f, state.why_unknown(f) or "not read") for f in fields]
    return [
        finding(
            "CHP090",
            f"{what} not checked: " + "; ".join(f"{f}: {r}" for f, r in reasons),
            check=what,
            fields=list(fields),
        )
    ]
