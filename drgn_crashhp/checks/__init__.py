"""
Checks
------

Pure functions from :class:`~drgn_crashhp.facts.Facts` and their
:class:`~drgn_crashhp.analysis.Analysis` to findings, one module per code
family: 00x image, 01x elfcorehdr, 02x digest, 03x entry, 04x CPUs, 05x
memory, 06x hotplug, 07x postmortem, 08x the FDT. No check reads the target; each can be
run on facts built by hand.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from drgn_crashhp.analysis import Analysis
from drgn_crashhp.arch import Rule
from drgn_crashhp.checks._common import arch
from drgn_crashhp.checks.cpus import check_cpus, check_vmcoreinfo
from drgn_crashhp.checks.digest import check_purgatory
from drgn_crashhp.checks.elfcorehdr import check_elfcorehdr
from drgn_crashhp.checks.entry import check_entry
from drgn_crashhp.checks.fdt import check_fdt
from drgn_crashhp.checks.filtered import check_filtered
from drgn_crashhp.checks.hotplug import check_hotplug, check_room
from drgn_crashhp.checks.image import check_image
from drgn_crashhp.checks.memory import check_memory, check_rebuild, check_text
from drgn_crashhp.checks.postmortem import check_dump
from drgn_crashhp.facts import Facts
from drgn_crashhp.findings import Finding, finding

__all__ = ("CHECKS", "CONTENT_CHECKS", "run_checks")

Check = Callable[[Facts, Analysis], List[Finding]]

#: Checks whose findings say whether the header's content is right now, with
#: the rule family each needs; :func:`~drgn_crashhp.checks.memory.
#: check_rebuild` sums them up.
CONTENT_CHECKS: Sequence[Tuple[Rule, Check]] = (
    (Rule.NOTES, check_cpus),
    (Rule.NOTES, check_vmcoreinfo),
    (Rule.TEXT, check_text),
    (Rule.MEMORY, check_memory),
)
#: Every other check in report order, with the rule family it needs (None:
#: it holds on every architecture: the dump against the crashed kernel's
#: RAM, the image pointer and segment table, the hotplug fields).
CHECKS: Sequence[Tuple[Optional[Rule], Check]] = (
    (None, check_dump),
    (None, check_filtered),
    (None, check_image),
    (Rule.ELFCOREHDR, check_elfcorehdr),
    (None, check_hotplug),
    (Rule.ROOM, check_room),
    (Rule.PURGATORY, check_purgatory),
    (Rule.ENTRY, check_entry),
    (Rule.FDT, check_fdt),
)


def run_checks(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Every finding about *facts*, unsorted."""
    if facts.changing is not None:
        # The facts may mix two moments of the image: judge none of them.
        return [finding("CHP092", f"not checked: {facts.changing}")]
    target = arch(facts)
    out: List[Finding] = []
    for rule, check in CHECKS:
        if rule is None or rule in target.rules:
            out += check(facts, analysis)
    content: List[Finding] = []
    for rule, check in CONTENT_CHECKS:
        if rule in target.rules:
            content += check(facts, analysis)
    if Rule.REBUILD in target.rules:
        content += check_rebuild(facts, analysis, content)
    # Another architecture's image judged by x86's rules gives false
    # problems (its purgatory, header and entry differ): what is not
    # implemented for it is CANNOT VERIFY, never OK or PROBLEM.
    missing = [r for r in Rule if r not in target.rules | target.not_applicable]
    if missing and facts.image is not None:
        names = ", ".join(str(r) for r in missing)
        content.append(
            finding(
                "CHP091",
                f"{target.name}: not checked: {names} (this architecture's "
                "kexec rules for them are not implemented)",
                arch=target.name,
                rules=[str(r) for r in missing],
            )
        )
    return out + content
