"""
CPUs
----

The CPU masks and each possible CPU's ``crash_notes`` (kernel/crash_core.c
``crash_notes_memory_init()``), translated to the physical address the
elfcorehdr's PT_NOTE must hold (mm/percpu.c ``per_cpu_ptr_to_phys()``).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from drgn import Object, Program, sizeof
from drgn.helpers.linux.cpumask import for_each_cpu
from drgn.helpers.linux.percpu import per_cpu_ptr

from drgn_crashhp.arch import Arch
from drgn_crashhp.facts import CpuNote, Range, Unread, UnreadKind
from drgn_crashhp.fmt import cpulist
from drgn_crashhp.read.fields import READ_ERRORS, FieldReader
from drgn_crashhp.read.kernel_text import pa_symbol

__all__ = ("cpus_of", "read_cpu_notes")


def _vmalloc_range(prog: Program, arch: Arch) -> Optional[Range]:
    try:
        start = prog["vmalloc_base"].value_()
    except KeyError:
        return None
    if arch.vmalloc_size_max is None:
        return None
    return start, start + arch.vmalloc_size_max - 1


def _percpu_to_phys(
    prog: Program, arch: Arch, vaddr: int, page_offset: int, vmalloc: Optional[Range]
) -> int:
    """mm/percpu.c ``per_cpu_ptr_to_phys()``."""
    in_vmalloc = vmalloc is not None and vmalloc[0] <= vaddr <= vmalloc[1]
    if arch.is_kernel_text(vaddr):
        return pa_symbol(prog, arch, vaddr)
    if not in_vmalloc and vaddr >= page_offset:
        return vaddr - page_offset
    from drgn.helpers.linux.mm import follow_phys

    return follow_phys(prog["init_mm"].address_of_(), vaddr).value_()


def cpus_of(mask: Object) -> Tuple[int, ...]:
    """The CPUs of a ``struct cpumask``, ascending."""
    return tuple(for_each_cpu(mask))


def read_cpu_notes(
    r: FieldReader,
    arch: Arch,
    possible: Tuple[int, ...],
    present: Tuple[int, ...],
    online: Tuple[int, ...],
    page_offset: int,
) -> Tuple[Tuple[CpuNote, ...], Optional[int]]:
    """
    Each possible CPU's ``crash_notes`` as a physical address (what its
    elfcorehdr PT_NOTE must hold), and ``sizeof(note_buf_t)``.
    """
    prog = r.prog
    crash_notes = r.get("cpu_notes", lambda: prog["crash_notes"].read_())
    note_size = r.get("note_size", lambda: sizeof(prog.type("note_buf_t")))
    vmalloc = r.get("vmalloc_base", lambda: _vmalloc_range(prog, arch))
    pres, onl = set(present), set(online)
    out = []
    failed: List[int] = []
    for cpu in possible:
        paddr = None
        if crash_notes is not None and crash_notes.value_():
            try:
                vaddr = per_cpu_ptr(crash_notes, cpu).value_()
                paddr = _percpu_to_phys(prog, arch, vaddr, page_offset, vmalloc)
            except READ_ERRORS:
                failed.append(cpu)
        out.append(CpuNote(cpu, paddr, cpu in pres, cpu in onl))
    if crash_notes is not None and not crash_notes.value_():
        r.unknown.append(
            Unread(
                "cpu_notes",
                UnreadKind.NOT_FOUND,
                "crash_notes is NULL (allocation failed)",
            )
        )
    if failed:
        r.unknown.append(
            Unread(
                "cpu_notes",
                UnreadKind.NOT_IN_TARGET,
                f"crash_notes of CPUs {cpulist(failed)} could not be translated",
            )
        )
    return tuple(out), note_size
