"""
Capacity
--------

How many program headers the elfcorehdr segment holds and how many a
rebuild needs now. x86 ``crash_load_segments()`` (arch/x86/kernel/crash.c,
v6.6+) sizes the segment for ``2 + CONFIG_NR_CPUS_DEFAULT`` notes plus
``CONFIG_CRASH_MAX_MEMORY_RANGES`` ranges when memory hotplug is built in;
``arch_crash_handle_hotplug_event()`` fails an update that does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from drgn_crashhp.arch import Arch
from drgn_crashhp.kernel.elfcorehdr import EHDR_SIZE, PHDR_SIZE
from drgn_crashhp.kernel.ranges import align

__all__ = ("DEFAULT_MAX_MEMORY_RANGES", "Room", "elfcorehdr_room")

#: kernel/Kconfig.kexec default of CONFIG_CRASH_MAX_MEMORY_RANGES.
DEFAULT_MAX_MEMORY_RANGES = 8192


@dataclass(frozen=True)
class Room:
    """The header segment's room against what a rebuild needs now."""

    memsz: int
    phdr_slots: int
    needed_now: int
    free_phdrs: int
    #: What crash_load_segments() reserves for this Kconfig, if known.
    config_memsz: Optional[int] = None
    #: ``(NR_CPUS_DEFAULT, CRASH_MAX_MEMORY_RANGES)`` that explain memsz
    #: without a built-in Kconfig, if any.
    sized_for: Optional[Tuple[int, int]] = None


def _reserved(nr_cpus_default: int, max_ranges: int, page_size: int) -> int:
    pnum = 2 + nr_cpus_default + max_ranges
    return align(pnum * PHDR_SIZE + EHDR_SIZE, page_size)


def elfcorehdr_room(
    memsz: int,
    possible_cpus: int,
    ram_ranges: int,
    kconfig: Mapping[str, str],
    arch: Arch,
) -> Room:
    """
    The rebuilt header's Phdr count is CPUs + vmcoreinfo + kernel text
    (where mapped) + RAM ranges; the segment holds ``(memsz - Ehdr) / Phdr`` of them.
    crash_load_segments() rounds the reservation up to the page size.
    """
    slots = (memsz - EHDR_SIZE) // PHDR_SIZE
    # The kernel text PT_LOAD where the rebuild maps it (x86; powerpc's
    # update_crash_elfcorehdr() passes need_kernel_map = false).
    need = possible_cpus + 1 + ram_ranges + (arch.start_kernel_map is not None)
    config_memsz = sized_for = None
    if {"CONFIG_NR_CPUS_DEFAULT", "CONFIG_CRASH_MAX_MEMORY_RANGES"} <= set(kconfig):
        ranges = (
            int(kconfig["CONFIG_CRASH_MAX_MEMORY_RANGES"])
            if kconfig.get("CONFIG_MEMORY_HOTPLUG") == "y"
            else 0
        )
        cpus = int(kconfig["CONFIG_NR_CPUS_DEFAULT"])
        config_memsz = _reserved(cpus, ranges, arch.page_size)
    else:
        for cpus_default in arch.nr_cpus_defaults:
            reserved = _reserved(
                cpus_default, DEFAULT_MAX_MEMORY_RANGES, arch.page_size
            )
            if reserved == memsz:
                sized_for = (cpus_default, DEFAULT_MAX_MEMORY_RANGES)
    return Room(memsz, slots, need, slots - need, config_memsz, sized_for)
