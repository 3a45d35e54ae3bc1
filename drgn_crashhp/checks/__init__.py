"""
Checks
------

Pure functions from :class:`~drgn_crashhp.facts.Facts` and their
:class:`~drgn_crashhp.analysis.Analysis` to findings, one module per code
family: 00x image, 01x elfcorehdr, 02x digest, 03x entry, 04x CPUs, 05x
memory, 06x hotplug, 07x postmortem. No check reads the target; each can be
run on facts built by hand.
"""

from __future__ import annotations

from typing import Callable, List, Sequence

from drgn_crashhp.analysis import Analysis
from drgn_crashhp.checks._common import arch
from drgn_crashhp.checks.cpus import check_cpus, check_vmcoreinfo
from drgn_crashhp.checks.digest import check_purgatory
from drgn_crashhp.checks.elfcorehdr import check_elfcorehdr
from drgn_crashhp.checks.entry import check_entry
from drgn_crashhp.checks.filtered import check_filtered
from drgn_crashhp.checks.hotplug import check_hotplug, check_room
from drgn_crashhp.checks.image import check_image
from drgn_crashhp.checks.memory import check_memory, check_rebuild, check_text
from drgn_crashhp.checks.postmortem import check_dump
from drgn_crashhp.facts import Facts
from drgn_crashhp.findings import Finding, finding

__all__ = ("CHECKS", "COMMON_CHECKS", "CONTENT_CHECKS", "run_checks")

Check = Callable[[Facts, Analysis], List[Finding]]

#: Checks whose findings say whether the header's content is right now;
#: :func:`~drgn_crashhp.checks.memory.check_rebuild` sums them up.
CONTENT_CHECKS: Sequence[Check] = (
    check_cpus,
    check_vmcoreinfo,
    check_text,
    check_memory,
)
#: Checks that hold on every architecture: the dump against the crashed
#: kernel's RAM, the image pointer and segment table, the hotplug fields.
COMMON_CHECKS: Sequence[Check] = (check_dump, check_image, check_hotplug)
#: Every check but the content checks, in report order.
CHECKS: Sequence[Check] = (
    check_dump,
    check_filtered,
    check_image,
    check_elfcorehdr,
    check_hotplug,
    check_room,
    check_purgatory,
    check_entry,
)


def run_checks(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Every finding about *facts*, unsorted."""
    if facts.changing is not None:
        # The facts may mix two moments of the image: judge none of them.
        return [finding("CHP092", f"not checked: {facts.changing}")]
    target_arch = arch(facts)
    if not target_arch.supported:
        # Judging another architecture's image by x86's rules gives false
        # problems (its purgatory, header and entry differ): CANNOT VERIFY.
        out = [f for check in COMMON_CHECKS for f in check(facts, analysis)]
        return out + [
            finding(
                "CHP091",
                f"{target_arch.name}: the crash image's purgatory, elfcorehdr, "
                "CPU notes, memory ranges and entry were not checked "
                "(this architecture's kexec rules are not implemented)",
                arch=target_arch.name,
            )
        ]
    out = []
    for check in CHECKS:
        out += check(facts, analysis)
    content: List[Finding] = []
    for check in CONTENT_CHECKS:
        content += check(facts, analysis)
    return out + content + check_rebuild(facts, analysis, content)
