"""What several checks share: the decoded header and the "not checked" finding."""

from __future__ import annotations

from typing import List, Optional, Sequence

from drgn_crashhp.arch import Arch, arch_named
from drgn_crashhp.facts import ElfCoreHdr, Facts, MachineState
from drgn_crashhp.findings import Finding, finding

__all__ = ("arch", "header", "page_size", "unknown")


def header(facts: Facts) -> Optional[ElfCoreHdr]:
    """The decoded elfcorehdr of a loaded image, if any."""
    if facts.image is None or facts.elfcorehdr is None:
        return None
    return facts.elfcorehdr.header


def arch(facts: Facts) -> Arch:
    """The target's architecture."""
    return arch_named(facts.state.arch)


def page_size(facts: Facts) -> int:
    """The target kernel's PAGE_SIZE (Debian's ppc64el kernels use 4 KiB
    pages, others 64 KiB: the kernel says, not the architecture)."""
    return facts.state.page_size or arch(facts).page_size


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
