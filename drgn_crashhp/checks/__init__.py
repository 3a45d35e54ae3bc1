"""
Checks
------

Pure functions from :class:`~drgn_crashhp.facts.Facts` to findings, one
module per code family: 00x image, 01x elfcorehdr, 02x digest, 03x entry,
04x CPUs, 05x memory, 06x hotplug, 07x postmortem. No check reads the
target; each can be run on facts built by hand.
"""

from __future__ import annotations

from typing import Callable, List, Sequence

from drgn_crashhp.checks.cpus import check_cpus, check_vmcoreinfo
from drgn_crashhp.checks.digest import check_purgatory, judge_digest
from drgn_crashhp.checks.elfcorehdr import check_elfcorehdr
from drgn_crashhp.checks.entry import check_entry
from drgn_crashhp.checks.filtered import check_filtered
from drgn_crashhp.checks.hotplug import check_hotplug, check_room
from drgn_crashhp.checks.image import check_image
from drgn_crashhp.checks.memory import check_memory, check_rebuild, check_text
from drgn_crashhp.checks.postmortem import check_dump
from drgn_crashhp.facts import Facts
from drgn_crashhp.findings import Finding

__all__ = ("CHECKS", "CONTENT_CHECKS", "judge_digest", "run_checks")

Check = Callable[[Facts], List[Finding]]

#: Checks whose findings say whether the header's content is right now;
#: :func:`~drgn_crashhp.checks.memory.check_rebuild` sums them up.
CONTENT_CHECKS: Sequence[Check] = (
    check_cpus,
    check_vmcoreinfo,
    check_text,
    check_memory,
)
#: Every other check, in report order.
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


def run_checks(facts: Facts) -> List[Finding]:
    """Every finding about *facts*, unsorted."""
    out: List[Finding] = []
    for check in CHECKS:
        out += check(facts)
    content: List[Finding] = []
    for check in CONTENT_CHECKS:
        content += check(facts)
    return out + content + check_rebuild(facts, content)
