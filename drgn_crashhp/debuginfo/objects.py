"""
Globals from BTF and kallsyms
-----------------------------

A drgn object finder for a kernel without DWARF. vmlinux BTF describes types
and per-CPU variables (its only VAR entries), not other globals; kallsyms
gives every global's address but no type. So:

* per-CPU variables take their type from their BTF VAR and their address
  from kallsyms (or, without ``CONFIG_KALLSYMS_ALL``, from ``__per_cpu_start``
  plus their offset in BTF's ``.data..percpu`` DATASEC);
* the other globals the checks and drgn's helpers read take their type from
  :data:`GLOBALS`, the one table of C declarations, and their address from
  kallsyms;
* enumerators (``LOG_CONT``, ``desc_committed`` ...) come from BTF enums;
* functions come from BTF FUNC records at their kallsyms address.

A name that is in neither BTF nor the table is not found (``KeyError`` from
``prog[name]``, as with DWARF); a table name whose address or type is missing
raises :class:`MissingGlobal` (a ``KeyError``) naming what is missing.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from drgn import FindObjectFlags, Object, Program, Type

from drgn_crashhp.debuginfo.btf import BTFError, Kind
from drgn_crashhp.debuginfo.types import BtfTypes

__all__ = ("CONSTANTS", "GLOBALS", "BtfObjects", "MissingGlobal", "note_buf_t")

#: Globals without a BTF VAR: name -> (C declaration type, where the kernel
#: defines it). ``NR_CPUS``-sized arrays are declared with ``nr_cpu_ids``
#: elements (every valid CPU index). Each entry is checked against the 6.12
#: DWARF in tests/test_btf.py.
GLOBALS: Dict[str, Tuple[str, str]] = {
    # The crash image and reservations (kernel/kexec_core.c,
    # kernel/crash_reserve.c since v6.9, kernel/kexec_core.c before).
    "kexec_crash_image": ("struct kimage *", "kernel/kexec_core.c"),
    "kexec_image": ("struct kimage *", "kernel/kexec_core.c"),
    # atomic_t in 6.1 and later (kexec_trylock()); older kernels have
    # kexec_mutex instead, which has no counter.
    "__kexec_lock": ("atomic_t", "kernel/kexec_core.c"),
    "crashk_res": ("struct resource", "kernel/crash_reserve.c"),
    "crashk_low_res": ("struct resource", "kernel/crash_reserve.c"),
    # crashkernel=,cma (v6.17): struct range[CRASHKERNEL_CMA_RANGES_MAX].
    "crashk_cma_ranges": ("struct range [4]", "kernel/crash_reserve.c"),
    "crashk_cma_cnt": ("int", "kernel/crash_reserve.c"),
    "crash_notes": ("note_buf_t *", "kernel/crash_core.c"),
    "vmcoreinfo_note": ("u32 *", "kernel/vmcore_info.c"),
    "vmcoreinfo_data": ("unsigned char *", "kernel/vmcore_info.c"),
    "panic_cpu": ("atomic_t", "kernel/panic.c"),
    # CPUs (kernel/cpu.c, kernel/smp.c, arch/x86/kernel/setup_percpu.c).
    "__cpu_possible_mask": ("struct cpumask", "kernel/cpu.c"),
    "__cpu_present_mask": ("struct cpumask", "kernel/cpu.c"),
    "__cpu_online_mask": ("struct cpumask", "kernel/cpu.c"),
    "__cpu_active_mask": ("struct cpumask", "kernel/cpu.c"),
    # A macro, not a symbol, when NR_CPUS == 1 or CONFIG_FORCE_NR_CPUS.
    "nr_cpu_ids": ("unsigned int", "kernel/smp.c"),
    "__per_cpu_offset": (
        "unsigned long [nr_cpu_ids]",
        "arch/x86/kernel/setup_percpu.c",
    ),
    # Memory (kernel/resource.c, mm/init-mm.c, arch/x86/kernel/head64.c,
    # drivers/base/memory.c).
    "iomem_resource": ("struct resource", "kernel/resource.c"),
    "ioport_resource": ("struct resource", "kernel/resource.c"),
    "init_mm": ("struct mm_struct", "mm/init-mm.c"),
    "page_offset_base": ("unsigned long", "arch/x86/kernel/head64.c"),
    "vmalloc_base": ("unsigned long", "arch/x86/kernel/head64.c"),
    "vmemmap_base": ("unsigned long", "arch/x86/kernel/head64.c"),
    "phys_base": ("unsigned long", "arch/x86/kernel/head_64.S"),
    "memory_blocks": ("struct xarray", "drivers/base/memory.c"),
    # What powerpc rebuilds a header from (mm/memblock.c, kept after boot
    # there; arch/powerpc/kernel/rtas.c; arch/powerpc/platforms/powernv/
    # opal.c).
    "memblock": ("struct memblock", "mm/memblock.c"),
    "rtas": ("struct rtas_t", "arch/powerpc/kernel/rtas.c"),
    "opal": ("struct opal", "arch/powerpc/platforms/powernv/opal.c"),
    "sections_per_block": ("int", "drivers/base/memory.c"),
    "memory_subsys": ("struct bus_type", "drivers/base/memory.c"),
    # drgn's bus_for_each_dev() (for_each_memory_block()) since v6.3.
    "bus_kset": ("struct kset *", "drivers/base/bus.c"),
    # The kernel log (kernel/printk/printk.c, v5.10+).
    "prb": ("struct printk_ringbuffer *", "kernel/printk/printk.c"),
    # What drgn's generic helpers start from.
    "init_task": ("struct task_struct", "init/init_task.c"),
    "init_uts_ns": ("struct uts_namespace", "init/version.c"),
}

#: Constants that DWARF gives as variables or array lengths and BTF does not
#: (each compared with the DWARF value in tests/test_btf.py).
CONSTANTS: Dict[str, int] = {
    # include/linux/crash_reserve.h (v6.17).
    "CRASHKERNEL_CMA_RANGES_MAX": 4,
}


class MissingGlobal(KeyError):
    """A global the table declares, but BTF or kallsyms cannot give."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def note_buf_t(types: BtfTypes) -> Type:
    """
    ``note_buf_t`` when BTF lacks it (include/linux/crash_core.h):
    ``u32 [CRASH_CORE_NOTE_BYTES / 4]``, CRASH_CORE_NOTE_BYTES being two
    4-aligned ``struct elf_note`` headers (12 bytes each), the 4-aligned name
    "CORE" (8) and the 4-aligned ``struct elf_prstatus`` (from BTF).
    """
    prog = types.prog
    prstatus = prog.type("struct elf_prstatus")
    size = 12 * 2 + 8 + (prstatus.size + 3) // 4 * 4
    return prog.typedef_type(
        "note_buf_t", prog.array_type(prog.type("unsigned int"), size // 4)
    )


class BtfObjects:
    """Object finder: globals at kallsyms addresses with BTF types."""

    def __init__(self, types: BtfTypes) -> None:
        self.types = types
        self.btf = types.btf
        self._percpu_sec: Optional[Dict[int, int]] = None
        types.fallbacks.setdefault("note_buf_t", lambda: note_buf_t(types))

    def _address(self, prog: Program, name: str) -> Optional[int]:
        try:
            return prog.symbol(name).address
        except LookupError:
            return None

    def _percpu_address(self, prog: Program, var_id: int) -> Optional[int]:
        """``__per_cpu_start`` + the VAR's offset in ``.data..percpu``."""
        if self._percpu_sec is None:
            self._percpu_sec = {}
            for sec in self.btf.find(".data..percpu", (Kind.DATASEC,)):
                for info in self.btf.datasec(sec):
                    self._percpu_sec.setdefault(info.type_id, info.offset)
        offset = self._percpu_sec.get(var_id)
        start = self._address(prog, "__per_cpu_start")
        if offset is None or start is None:
            return None
        return start + offset

    def _declared_type(self, prog: Program, name: str, spelling: str) -> Type:
        if spelling.endswith("[nr_cpu_ids]"):
            elem = prog.type(spelling[: -len("[nr_cpu_ids]")].strip())
            return prog.array_type(elem, prog["nr_cpu_ids"].value_())
        return prog.type(spelling)

    def find(
        self, prog: Program, name: str, flags: FindObjectFlags, filename: Optional[str]
    ) -> Optional[Object]:
        """``register_object_finder()`` callback: ``(prog, name, flags, filename)``."""
        if flags & FindObjectFlags.CONSTANT:
            found = self.btf.enumerator(name)
            if found is not None:
                enum_id, value = found
                return Object(prog, self.types.type(enum_id), value=value)
        if flags & FindObjectFlags.VARIABLE:
            obj = self._variable(prog, name)
            if obj is not None:
                return obj
        if flags & FindObjectFlags.FUNCTION:
            ids = self.btf.find(name, (Kind.FUNC,))
            if ids:
                address = self._address(prog, name)
                if address is not None:
                    return Object(prog, self.types.type(ids[0]), address=address)
        return None

    def _variable(self, prog: Program, name: str) -> Optional[Object]:
        declared = GLOBALS.get(name)
        if declared is not None:
            address = self._address(prog, name)
            if address is None:
                raise MissingGlobal(
                    f"{name}: no address in the kernel's symbols "
                    "(kallsyms without CONFIG_KALLSYMS_ALL?)"
                )
            try:
                type_ = self._declared_type(prog, name, declared[0])
            except (LookupError, BTFError) as e:
                raise MissingGlobal(
                    f"{name}: type {declared[0]} not in BTF ({e})"
                ) from e
            return Object(prog, type_, address=address)
        ids = self.btf.find(name, (Kind.VAR,))
        if not ids:
            return None
        address = self._address(prog, name)
        if address is None:
            address = self._percpu_address(prog, ids[0])
        if address is None:
            raise MissingGlobal(f"{name}: per-CPU variable without an address")
        return Object(prog, self.types.type(ids[0]), address=address)
