"""
FDT
---

Read the flattened device tree segment of a loaded image (kexec-tools' DTB
on ppc64 and arm64, :attr:`~drgn_crashhp.facts.Role.FDT`) from physical
memory and decode it (:mod:`drgn_crashhp.kernel.fdt`), with the hardware
ids of the present CPUs the checks compare its ``/cpus`` with.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from drgn import FaultError, Program

from drgn_crashhp.facts import FdtRead, KImage, Role, Unread, UnreadKind
from drgn_crashhp.kernel.fdt import MAX_FDT, Malformed, decode_fdt
from drgn_crashhp.read.physmem import Unreadable, read_phys

__all__ = ("read_fdt",)

#: Where each kernel keeps a CPU's hardware id (``get_hard_smp_processor_id``
#: / ``cpu_logical_map``): ``(array, member)``, the first the kernel has wins.
#: arch/powerpc/include/asm/paca.h ``paca_ptrs[cpu]->hw_cpu_id``;
#: arch/arm64/kernel/setup.c ``__cpu_logical_map[cpu]`` (the MPIDR affinity).
_HW_ID_SOURCES = (("paca_ptrs", "hw_cpu_id"), ("__cpu_logical_map", None))


def _hw_cpu_ids(
    prog: Program, cpus: Sequence[int]
) -> Tuple[Tuple[Tuple[int, int], ...], str]:
    """``(cpu, hardware id)`` per CPU in *cpus*, and where they came from."""
    why: List[str] = []
    for array, member in _HW_ID_SOURCES:
        try:
            table = prog[array]
        except (KeyError, LookupError):
            continue
        try:
            out = []
            for cpu in cpus:
                obj = table[cpu]
                if member is not None:
                    obj = obj.member_(member)
                out.append((cpu, obj.value_()))
            name = f"{array}[cpu]" + (f"->{member}" if member else "")
            return tuple(out), name
        except (FaultError, LookupError, ValueError, TypeError) as e:
            why.append(f"{array}: {e}")
    # pseries and QEMU virt number their threads like Linux does with one
    # thread per core; say so rather than guess silently.
    reason = "; ".join(why) or "no paca_ptrs or __cpu_logical_map"
    return tuple((c, c) for c in cpus), f"assumed equal to the CPU number ({reason})"


def read_fdt(
    prog: Program, image: KImage, present_cpus: Optional[Sequence[int]]
) -> Optional[FdtRead]:
    """
    Read and decode *image*'s FDT segment (roles assigned); None when no
    segment has the FDT role (x86, or contents not in the target).
    """
    seg = image.by_role(Role.FDT)
    if seg is None:
        return None
    ids, source = _hw_cpu_ids(prog, present_cpus or ())
    size = min(seg.memsz, MAX_FDT)
    try:
        data = read_phys(prog, seg.mem, size, "fdt")
    except Unreadable as e:
        return FdtRead(seg, unread=e.unread(), hw_cpu_ids=ids, hw_cpu_ids_source=source)
    try:
        fdt = decode_fdt(data)
    except Malformed as e:
        return FdtRead(
            seg,
            unread=Unread("fdt", UnreadKind.MALFORMED, str(e)),
            hw_cpu_ids=ids,
            hw_cpu_ids_source=source,
        )
    return FdtRead(seg, fdt=fdt, hw_cpu_ids=ids, hw_cpu_ids_source=source)
