"""
06x: crash hotplug
------------------

Whether the kernel will keep this image's elfcorehdr current on hotplug
(kernel/crash_core.c ``crash_handle_hotplug_event()``, arch/x86/kernel/
crash.c ``arch_crash_handle_hotplug_event()``), whether an update is in
flight or failed, and whether the next one fits
(:mod:`drgn_crashhp.kernel.capacity`).
"""

from __future__ import annotations

import re
from typing import Dict, List

from drgn_crashhp.analysis import Analysis
from drgn_crashhp.checks._common import arch, header
from drgn_crashhp.facts import Facts, KImage, MachineState
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.fmt import yes_no
from drgn_crashhp.kernel.capacity import elfcorehdr_room

__all__ = ("check_hotplug", "check_room")


_FAILURE_RE = re.compile(
    r"crash hp: (kexec_trylock\(\) failed|unable to|update elfcorehdr elfsz|"
    r"mapping elfcorehdr segment failed|Updated crash elfcorehdr elfsz|Failed)"
    r"|kexec: number of Phdrs .* exceeds max"
)


def _hotplug(image: KImage, state: MachineState) -> List[Finding]:
    hp = image.hotplug
    out = []
    has_sysfs = hp.sysfs_crash_hotplug
    sysfs = str(int(hp.support)) if has_sysfs else "absent"
    # After a panic __crash_kexec() holds the kexec lock (kernel/crash_core.c).
    panicked = state.panic_cpu not in (None, -1)
    busy = state.kexec_lock == 1 and not panicked
    if has_sysfs and busy:
        sysfs += " (reads 0 while __kexec_lock is held)"
    out.append(
        finding(
            "CHP061",
            f"crash hotplug {'supported' if hp.support else 'not supported'} "
            f"({hp.support_source}); hp_action {hp.hp_action_name or 'n/a'}, "
            f"elfcorehdr_updated {yes_no(hp.elfcorehdr_updated)}, "
            f"/sys/devices/system/{{cpu,memory}}/crash_hotplug: {sysfs}",
            support=hp.support,
            support_source=hp.support_source,
            layout=str(hp.layout),
            hp_action=hp.hp_action_name,
            elfcorehdr_updated=hp.elfcorehdr_updated,
            sysfs_crash_hotplug=sysfs,
            kexec_lock=state.kexec_lock,
            panic_cpu=state.panic_cpu,
            kernel_log="read" if state.log is not None else state.why_unknown("log"),
        )
    )
    if not hp.support:
        out.append(
            finding(
                "CHP063",
                f"the kernel will not update this image's elfcorehdr on "
                f"hotplug ({hp.support_source}); any hotplug leaves it stale",
                layout=str(hp.layout),
                file_mode=image.file_mode,
            )
        )
    if hp.hp_action not in (None, 0):
        out.append(
            finding(
                "CHP064",
                f"hp_action is {hp.hp_action_name}: the kernel is rewriting "
                "the elfcorehdr now; check again",
                hp_action=hp.hp_action_name,
            )
        )
    elif busy:
        out.append(
            finding(
                "CHP064",
                "__kexec_lock is held: a load, unload or hotplug update is "
                "running; check again",
                kexec_lock=1,
            )
        )
    # Without the log (no printk ring buffer in the target) the header
    # comparison still decides; the log only explains a stale header.
    if state.log is not None:
        bad = [ln for ln in state.log if _FAILURE_RE.search(ln.text)]
        if bad:
            out.append(
                finding(
                    "CHP062",
                    f"{len(bad)} crash hotplug failure(s) in the kernel log, "
                    f"last: {bad[-1].text.strip()!r}",
                    lines=[
                        {
                            "seq": ln.seq,
                            "timestamp_ns": ln.timestamp_ns,
                            "text": ln.text,
                        }
                        for ln in bad
                    ],
                )
            )
    return out


def check_hotplug(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP061, CHP062, CHP063 and CHP064."""
    if facts.image is None:
        return []
    return _hotplug(facts.image, facts.state)


def check_room(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP060, CHP065 and CHP066."""
    hdr = header(facts)
    expected = analysis.rebuild
    if hdr is None or facts.image is None or expected is None:
        return []
    out: List[Finding] = []
    if expected.error:
        out.append(
            finding(
                "CHP066",
                f"the kernel could not rebuild the elfcorehdr now: {expected.error}",
                error=expected.error,
            )
        )
    room = elfcorehdr_room(
        hdr.capacity,
        len(facts.state.possible_cpus or ()),
        len(expected.ram),
        dict(facts.state.kconfig),
        arch(facts),
    )
    details: Dict[str, object] = {
        "memsz": room.memsz,
        "phdr_slots": room.phdr_slots,
        "needed_now": room.needed_now,
        "free_phdrs": room.free_phdrs,
        "elfsz_now": expected.elfsz,
    }
    sizing = ""
    if room.config_memsz is not None:
        details["config_memsz"] = room.config_memsz
        sizing = (
            f"; Kconfig sizes it {room.config_memsz:#x} "
            f"({'matches' if room.config_memsz == room.memsz else 'differs'})"
        )
    elif room.sized_for is not None:
        cpus_default, max_ranges = room.sized_for
        details["sized_for"] = {
            "CONFIG_NR_CPUS_DEFAULT": cpus_default,
            "CONFIG_CRASH_MAX_MEMORY_RANGES": max_ranges,
        }
        sizing = (
            f"; sized by the kernel for NR_CPUS_DEFAULT={cpus_default}"
            f" + CRASH_MAX_MEMORY_RANGES={max_ranges}"
        )
    free, slots, need = room.free_phdrs, room.phdr_slots, room.needed_now
    if facts.image.hotplug.support and (free < 1 or expected.elfsz > room.memsz):
        out.append(
            finding(
                "CHP060",
                f"elfcorehdr segment memsz {room.memsz:#x} holds {slots} "
                f"program headers; a rebuild now needs {need}: "
                + (
                    "the next update will fail"
                    if free < 0
                    else "no room for one more memory range"
                ),
                **details,
            )
        )
    else:
        out.append(
            finding(
                "CHP065",
                f"elfcorehdr room: {slots} program headers in memsz "
                f"{room.memsz:#x}, {need} needed now, {max(free, 0)} free{sizing}",
                **details,
            )
        )
    return out
