"""
07x: postmortem
---------------

For a dump written by kdump (the capture kernel's /proc/vmcore,
fs/proc/vmcore.c), compare its own PT_LOADs with the RAM the crashed kernel
had: what the elfcorehdr missed is missing from the dump.
"""

from __future__ import annotations

from typing import List

from drgn_crashhp.arch.x86_64 import is_kernel_text
from drgn_crashhp.facts import Facts
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.fmt import mib
from drgn_crashhp.fmt import ranges as fmt_ranges
from drgn_crashhp.kernel.exclusions import excluded_ranges
from drgn_crashhp.kernel.ranges import normalize, size, subtract

__all__ = ("check_dump",)


def check_dump(facts: Facts) -> List[Finding]:
    """
    Compare a kdump-written dump's own PT_LOADs with the RAM the crashed
    kernel had (its iomem walk, minus what the kernel excludes from the
    elfcorehdr). Nothing for other producers. Emits CHP070, CHP071 and
    CHP090.
    """
    dump, state = facts.dump, facts.state
    if dump is None:
        return []
    if dump.producer == "kdump-compressed":
        return [
            finding(
                "CHP071",
                f"{dump.path}: written by makedumpfile "
                f"({dump.evidence}); its page bitmap is not compared",
                producer=dump.producer,
            )
        ]
    if dump.producer != "kdump":
        return []
    loads = [ld for ld in dump.loads if not is_kernel_text(ld.vaddr)]
    dumped = normalize((ld.paddr, ld.end) for ld in loads if ld.memsz)
    out = [
        finding(
            "CHP071",
            f"{dump.path}: written by kdump ({dump.evidence}); "
            f"{len(loads)} RAM PT_LOADs, {mib(size(dumped))}",
            producer=dump.producer,
            loads=len(loads),
            bytes=size(dumped),
        )
    ]
    if state.system_ram is None or state.iomem_problem:
        out.append(
            finding(
                "CHP090",
                "the crashed kernel's RAM is unknown: "
                f"{state.why_unknown('system_ram')}",
                check="dump RAM",
            )
        )
        return out
    required = subtract(
        normalize(state.system_ram), normalize(r for _, r in excluded_ranges(state))
    )
    missing = subtract(required, dumped)
    offline = normalize(
        (b.start, b.end) for b in state.memory_blocks or () if not b.online
    )
    not_online = subtract(missing, subtract(missing, offline))
    missing = subtract(missing, offline)
    if missing:
        out.append(
            finding(
                "CHP070",
                f"{mib(size(missing))} of the crashed kernel's RAM in "
                f"{len(missing)} range(s) is not in the dump: " + fmt_ranges(missing),
                ranges=[list(r) for r in missing],
                bytes=size(missing),
                offline_not_dumped=[list(r) for r in not_online],
            )
        )
    return out
