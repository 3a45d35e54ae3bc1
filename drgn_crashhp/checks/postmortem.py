"""
07x: postmortem
---------------

For a dump written by kdump (the capture kernel's /proc/vmcore,
fs/proc/vmcore.c), compare its own PT_LOADs with the RAM the crashed kernel
had: what the elfcorehdr missed is missing from the dump.
"""

from __future__ import annotations

from typing import List

from drgn_crashhp.analysis import Analysis
from drgn_crashhp.checks._common import arch
from drgn_crashhp.facts import Facts
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.fmt import mib
from drgn_crashhp.fmt import ranges as fmt_ranges
from drgn_crashhp.kernel.exclusions import excluded_ranges
from drgn_crashhp.kernel.ranges import normalize, size, subtract

__all__ = ("check_dump",)


def check_dump(facts: Facts, analysis: Analysis) -> List[Finding]:
    """
    Compare what a kdump-written dump holds with the RAM the crashed kernel
    had (its iomem walk, minus what the kernel excludes from the
    elfcorehdr): an ELF copy of /proc/vmcore by its own PT_LOADs, a
    makedumpfile dump by its 1st page bitmap (what /proc/vmcore described;
    pages only its 2nd bitmap lacks were filtered, not missing; kernel-notes
    §12). Nothing for other producers. Emits CHP070, CHP071 and CHP090.
    """
    dump, state = facts.dump, facts.state
    if dump is None:
        return []
    if dump.producer == "kdump":
        loads = [ld for ld in dump.loads if not arch(facts).is_kernel_text(ld.vaddr)]
        described = normalize((ld.paddr, ld.end) for ld in loads if ld.memsz)
        out = [
            finding(
                "CHP071",
                f"{dump.path}: written by kdump ({dump.evidence}); "
                f"{len(loads)} RAM PT_LOADs, {mib(size(described))}",
                producer=dump.producer,
                loads=len(loads),
                bytes=size(described),
            )
        ]
    elif dump.producer == "makedumpfile" and dump.described is not None:
        described = normalize(dump.described)
        kept = normalize(dump.dumped or ())
        filtered = size(subtract(described, kept))
        out = [
            finding(
                "CHP071",
                f"{dump.path}: written by makedumpfile ({dump.evidence}); its "
                f"1st bitmap describes {mib(size(described))} up to pfn "
                f"{dump.max_mapnr:#x}, {mib(filtered)} of it filtered out "
                "(dropped by the dump level, not missing)",
                producer=dump.producer,
                dump_level=dump.dump_level,
                max_mapnr=dump.max_mapnr,
                bytes=size(described),
                filtered_bytes=filtered,
            )
        ]
    else:
        return []
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
    missing = subtract(required, described)
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
