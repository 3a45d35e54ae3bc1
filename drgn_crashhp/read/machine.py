"""
Machine state
-------------

Read the CPU and memory state that the elfcorehdr must describe, as the
kernel sees it now, into plain frozen values: CPU masks and each possible
CPU's ``crash_notes`` (kernel/crash_core.c), the vmcoreinfo note
(kernel/vmcore_info.c), the kernel text, the "System RAM" ranges exactly as
``walk_system_ram_res()`` returns them (kernel/resource.c), the crash kernel
reservations (kernel/crash_reserve.c), memory blocks (drivers/base/memory.c),
the crash hotplug lines of the kernel log and ``__kexec_lock``.

Every value that cannot be read becomes ``None`` plus an entry in
:attr:`~drgn_crashhp.facts.MachineState.unknown` saying why; the reader
never raises for a missing symbol or unreadable memory.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator, List, Optional, Set, Tuple, TypeVar

from drgn import Architecture, FaultError, Object, Program, sizeof
from drgn.helpers.linux.cpumask import (
    cpu_online_mask,
    cpu_possible_mask,
    cpu_present_mask,
    for_each_cpu,
)
from drgn.helpers.linux.mm import decode_memory_block_state_value
from drgn.helpers.linux.percpu import per_cpu_ptr

from drgn_crashhp.arch import x86_64
from drgn_crashhp.facts import CpuNote, KernelText, LogLine, MachineState, MemoryBlock
from drgn_crashhp.fmt import cpulist
from drgn_crashhp.kernel.ranges import Range
from drgn_crashhp.read.symtab import link_time_symbols

__all__ = (
    "IORESOURCE_BUSY",
    "IORESOURCE_SYSTEM_RAM",
    "MAX_IOMEM_NODES",
    "kernel_text_size",
    "read_state",
    "walk_system_ram_res",
)


#: include/linux/ioport.h: IORESOURCE_MEM | IORESOURCE_SYSRAM, and BUSY.
IORESOURCE_SYSTEM_RAM = 0x00000200 | 0x01000000


IORESOURCE_BUSY = 0x80000000


#: Cap on the iomem nodes visited: a real tree has a few thousand at most;
#: a corrupt one (cycles, garbage pointers) must not keep us walking.
MAX_IOMEM_NODES = 1 << 16


#: SECTION_SIZE_BITS per architecture when VMCOREINFO does not say
#: (arch/*/include/asm/sparsemem.h).
_SECTION_SIZE_BITS = {
    Architecture.X86_64: x86_64.SECTION_SIZE_BITS,
    Architecture.PPC64: 24,
    Architecture.AARCH64: 27,
    Architecture.S390X: 28,
}


#: kexec/crash hotplug lines worth showing (kernel-notes §3.4).
_LOG_RE = re.compile(
    rb"^(crash hp: |kexec: |kexec_file: |kexec_core: |kexec-bzImage64: |"
    rb"kexec_file_load|crash_core: |crashkernel)|crash hotplug"
)


_KCONFIG_KEYS = (
    "CONFIG_NR_CPUS_DEFAULT",
    "CONFIG_NR_CPUS",
    "CONFIG_CRASH_MAX_MEMORY_RANGES",
    "CONFIG_MEMORY_HOTPLUG",
    "CONFIG_CRASH_HOTPLUG",
)


T = TypeVar("T")


_READ_ERRORS = (
    LookupError,
    FaultError,
    ValueError,
    OverflowError,
    AttributeError,
    NotImplementedError,
)


class _Reader:
    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.unknown: List[Tuple[str, str]] = []

    def get(self, name: str, fn: Callable[[], T]) -> Optional[T]:
        """Run *fn*; on a drgn lookup or fault, record *name* as unknown."""
        try:
            return fn()
        except _READ_ERRORS as e:
            self.unknown.append((name, f"{type(e).__name__}: {e}"))
            return None


def _page_offset(prog: Program) -> Tuple[int, Optional[str]]:
    try:
        return prog["page_offset_base"].value_(), None
    except FaultError as e:
        return (
            x86_64.DEFAULT_PAGE_OFFSET,
            f"page_offset_base unreadable ({e}): constant",
        )
    except KeyError:
        # Without CONFIG_DYNAMIC_MEMORY_LAYOUT PAGE_OFFSET is a constant
        # (arch/x86/include/asm/page_64_types.h).
        return (
            x86_64.DEFAULT_PAGE_OFFSET,
            "page_offset_base absent: constant PAGE_OFFSET",
        )


def _phys_base(prog: Program) -> int:
    try:
        return prog["phys_base"].value_()
    except KeyError:
        # Defined in arch/x86/kernel/head_64.S: a symbol without DWARF.
        return prog.read_u64(prog.symbol("phys_base").address)


def _pa_symbol(prog: Program, vaddr: int) -> int:
    """x86_64 ``__pa_symbol()``: kernel image address to physical."""
    return x86_64.pa_symbol(vaddr, _phys_base(prog))


def _vmalloc_range(prog: Program) -> Optional[Range]:
    try:
        start = prog["vmalloc_base"].value_()
    except KeyError:
        return None
    return start, start + x86_64.VMALLOC_SIZE_MAX - 1


def _percpu_to_phys(
    prog: Program, vaddr: int, page_offset: int, vmalloc: Optional[Range]
) -> int:
    """mm/percpu.c ``per_cpu_ptr_to_phys()``."""
    in_vmalloc = vmalloc is not None and vmalloc[0] <= vaddr <= vmalloc[1]
    if x86_64.is_kernel_text(vaddr):
        return _pa_symbol(prog, vaddr)
    if not in_vmalloc and vaddr >= page_offset:
        return vaddr - page_offset
    from drgn.helpers.linux.mm import follow_phys

    return follow_phys(prog["init_mm"].address_of_(), vaddr).value_()


def _cpus(mask: Object) -> Tuple[int, ...]:
    return tuple(for_each_cpu(mask))


def _cpu_notes(
    r: _Reader,
    possible: Tuple[int, ...],
    present: Tuple[int, ...],
    online: Tuple[int, ...],
    page_offset: int,
) -> Tuple[Tuple[CpuNote, ...], Optional[int]]:
    prog = r.prog
    crash_notes = r.get("cpu_notes", lambda: prog["crash_notes"].read_())
    note_size = r.get("note_size", lambda: sizeof(prog.type("note_buf_t")))
    vmalloc = r.get("vmalloc_base", lambda: _vmalloc_range(prog))
    pres, onl = set(present), set(online)
    out = []
    failed: List[int] = []
    for cpu in possible:
        paddr = None
        if crash_notes is not None and crash_notes.value_():
            try:
                vaddr = per_cpu_ptr(crash_notes, cpu).value_()
                paddr = _percpu_to_phys(prog, vaddr, page_offset, vmalloc)
            except _READ_ERRORS:
                failed.append(cpu)
        out.append(CpuNote(cpu, paddr, cpu in pres, cpu in onl))
    if crash_notes is not None and not crash_notes.value_():
        r.unknown.append(("cpu_notes", "crash_notes is NULL (allocation failed)"))
    if failed:
        r.unknown.append(
            (
                "cpu_notes",
                f"crash_notes of CPUs {cpulist(failed)} could not be translated",
            )
        )
    return tuple(out), note_size


def _vmcoreinfo(prog: Program, page_offset: int) -> Tuple[int, int]:
    vaddr = prog["vmcoreinfo_note"].value_()
    if not vaddr:
        raise ValueError("vmcoreinfo_note is NULL")
    try:
        page_size = prog["PAGE_SIZE"].value_()
    except KeyError:
        page_size = 4096
    # include/linux/vmcore_info.h: VMCOREINFO_NOTE_SIZE = 2 note headers
    # (12 each) + "VMCOREINFO" name (12) + VMCOREINFO_BYTES (PAGE_SIZE).
    return vaddr - page_offset, 24 + 12 + page_size


class AmbiguousTextSize(ValueError):
    """drgn's symbols cannot tell whether ``_end`` was KASLR-shifted."""


def kernel_text_size(
    text: int,
    end: int,
    module_end: Optional[int],
    kernel_offset: Optional[int],
    link_size: Optional[int] = None,
) -> Tuple[int, str]:
    """
    ``_end - _text`` of the running kernel, and where it came from.

    *text* and *end* are the symbol addresses drgn gives; *module_end* is the
    end of vmlinux's loaded address range (None without a vmlinux, e.g. from
    kallsyms); *kernel_offset* is VMCOREINFO's ``KERNELOFFSET``; *link_size*
    is ``_end - _text`` read from the vmlinux symbol table. drgn shifts
    ``_text`` but, on a minimal vmlinux, not ``_end``, which sits exactly at
    the end of the loaded range (kernel-notes §10); on a distribution
    vmlinux it shifts both, and the range runs past ``_end``.

    :raises AmbiguousTextSize: when both readings fit: read the symbol table
        and pass *link_size*.
    :raises ValueError: if no candidate is a kernel image size.
    """
    if link_size is not None:
        return link_size, "vmlinux symbol table (link-time _end - _text)"
    shifted = end - text
    unshifted = end + kernel_offset - text if kernel_offset is not None else None
    if module_end is None:
        candidates = [(shifted, "runtime symbols _end - _text")]
        if unshifted is not None:
            candidates.append((unshifted, "_end + VMCOREINFO KERNELOFFSET - _text"))
    else:
        is_shifted = text < end <= module_end
        is_unshifted = unshifted is not None and text + unshifted == module_end
        if is_shifted and is_unshifted:
            raise AmbiguousTextSize("_end may or may not be KASLR-shifted")
        candidates = []
        if is_shifted:
            candidates.append((shifted, "runtime symbols _end - _text"))
        if is_unshifted and unshifted is not None:
            candidates.append((unshifted, "_end + VMCOREINFO KERNELOFFSET - _text"))
    for size, source in candidates:
        if 0 < size <= x86_64.KERNEL_IMAGE_SIZE:
            return size, source
    raise ValueError(
        f"_end - _text = {end - text:#x} is not a kernel image size "
        "(_end not KASLR-shifted?) and no KERNELOFFSET or vmlinux to fix it"
    )


def _module_end(prog: Program) -> Optional[int]:
    try:
        address_range = prog.main_module().address_range
    except LookupError:
        return None
    return address_range[1] if address_range else None


def _link_time_size(prog: Program) -> Optional[int]:
    """``_end - _text`` from the vmlinux symbol table, if drgn loaded one."""
    try:
        path = prog.main_module().debug_file_path
    except LookupError:
        return None
    if not path:
        return None
    try:
        syms = link_time_symbols(path, ("_text", "_end"))
    except (OSError, ValueError):
        return None
    if "_text" not in syms or "_end" not in syms:
        return None
    return syms["_end"] - syms["_text"]


def _kernel_offset(prog: Program) -> Optional[int]:
    # drgn's own copy of VMCOREINFO (from the dump's note, or the running
    # kernel): the kernel's vmcoreinfo_data page may not be in a kdump dump.
    info = prog["VMCOREINFO"].string_().decode(errors="replace")
    m = re.search(r"^KERNELOFFSET=([0-9a-f]+)$", info, re.M)
    return int(m.group(1), 16) if m else None


def _kernel_text(prog: Program) -> KernelText:
    # From drgn's own symbol index and module range, and VMCOREINFO; the
    # vmlinux symbol table is read (two sections, not parsed whole) only
    # when those cannot tell.
    text = prog.symbol("_text").address
    end = prog.symbol("_end").address
    module_end = _module_end(prog)
    try:
        offset = _kernel_offset(prog)
    except (LookupError, FaultError):
        offset = None
    try:
        size, source = kernel_text_size(text, end, module_end, offset)
    except AmbiguousTextSize:
        size, source = kernel_text_size(
            text, end, module_end, offset, _link_time_size(prog)
        )
    return KernelText(text, _pa_symbol(prog, text), size, source)


def _res_fields(node: Object) -> Tuple[int, int, int, int, int]:
    res = node.read_()
    return (
        res.start.value_(),
        res.end.value_(),
        res.flags.value_(),
        res.child.value_(),
        res.sibling.value_(),
    )


def walk_system_ram_res(
    prog: Program, root: Object, max_nodes: int = MAX_IOMEM_NODES
) -> Tuple[Tuple[Range, ...], Optional[str]]:
    """
    ``walk_system_ram_res(0, -1, ...)`` (kernel/resource.c
    ``find_next_iomem_res()``): pre-order over the tree under *root*,
    skipping nodes that end before the cursor; a busy System RAM node is
    reported clipped to the cursor, the cursor moves past it and its
    descendants are not visited.

    A visited set and a node cap bound the walk on a corrupt tree.

    :param root: ``struct resource *`` (``&iomem_resource``).
    :return: the ranges, and why the walk stopped early (or None).
    """
    want = IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY
    out: List[Range] = []
    cursor = 0
    visited: Set[int] = set()
    resource_p = root.type_
    try:
        first_child = root.child.value_()
    except FaultError as e:
        return (), f"iomem_resource unreadable at {e.address:#x}"
    # Stack of addresses to visit; pushing sibling before child gives
    # pre-order.
    stack = [first_child] if first_child else []
    while stack:
        addr = stack.pop()
        if addr in visited:
            return tuple(out), f"cycle in the iomem tree at {addr:#x}"
        if len(visited) >= max_nodes:
            return tuple(out), f"more than {max_nodes} iomem nodes"
        visited.add(addr)
        try:
            start, end, flags, child, sibling = _res_fields(
                Object(prog, resource_p, addr)
            )
        except FaultError as e:
            return tuple(out), f"iomem node at {addr:#x} unreadable ({e.address:#x})"
        if sibling:
            stack.append(sibling)
        if end < cursor:
            # find_next_iomem_res() skips the subtree of a node that ends
            # before the cursor (next_resource(p, skip_children=true)).
            continue
        if flags & want == want:
            out.append((max(cursor, start), end))
            if end == (1 << 64) - 1:
                break
            cursor = end + 1
            continue
        if child:
            stack.append(child)
    return tuple(out), None


def _crashk(prog: Program, name: str) -> Range:
    res = prog[name]
    return res.start.value_(), res.end.value_()


def _crashk_cma(prog: Program) -> Optional[Tuple[Range, ...]]:
    # crashkernel=,cma (v6.17): ranges excluded from the elfcorehdr.
    try:
        ranges = prog["crashk_cma_ranges"]
    except KeyError:
        return None
    cnt = prog["crashk_cma_cnt"].value_()
    cnt = max(0, min(cnt, len(ranges)))
    return tuple((ranges[i].start.value_(), ranges[i].end.value_()) for i in range(cnt))


def _section_size_bits(prog: Program) -> int:
    try:
        return prog["SECTION_SIZE_BITS"].value_()
    except KeyError:
        pass
    arch = prog.platform.arch if prog.platform else None
    if arch in _SECTION_SIZE_BITS:
        return _SECTION_SIZE_BITS[arch]
    raise LookupError("SECTION_SIZE_BITS unknown for this architecture")


#: 128 TiB of 128 MiB blocks (x86_64's largest block is 2 GiB).
MAX_MEMORY_BLOCKS = 1 << 20


def _check_printk_ring(prog: Program) -> None:
    """
    drgn's get_printk_records() walks the lockless ring (kernel/printk/
    printk_ringbuffer.c, v5.10+) from tail_id to head_id with no bound of its
    own; refuse a ring whose span exceeds its own descriptor count.
    """
    try:
        ring = prog["prb"].desc_ring
    except KeyError:
        return  # the older log_buf is walked by length
    count = 1 << ring.count_bits.value_()
    # DESC_ID_MASK: the id is the state variable minus its two flag bits.
    id_mask = (1 << (8 * prog.type("unsigned long").size - 2)) - 1
    span = (ring.head_id.counter.value_() - ring.tail_id.counter.value_()) & id_mask
    if span >= count:
        raise ValueError(
            f"printk ring is corrupt: tail..head spans {span:#x} "
            f"descriptors, the ring holds {count:#x}"
        )


def _xa_entries(xa: Object) -> Iterator[Tuple[int, int]]:
    """
    ``(index, entry)`` of every pointer entry of an XArray, ascending, like
    drgn's xa_for_each() (include/linux/xarray.h, lib/xarray.c) but entering
    each node once: a corrupt, cyclic tree is an error, not a hang.
    """
    prog = xa.prog_
    node_type = prog.type("struct xa_node")
    slots_offset = node_type.member("slots").offset
    nr_slots = node_type.member("slots").type.length
    word = prog.type("unsigned long").size
    stack = [(xa.xa_head.value_(), 0)]
    seen: Set[int] = set()
    while stack:
        entry, base = stack.pop()
        if entry & 3 == 2 and entry > 4096:  # xa_is_node()
            node = entry - 2
            if node in seen or len(seen) >= MAX_XA_NODES:
                raise ValueError(
                    f"XArray node {node:#x} is reached twice or the "
                    "tree is too large: the XArray is corrupt"
                )
            seen.add(node)
            shift = prog.read_u8(node + node_type.member("shift").offset)
            raw = prog.read(node + slots_offset, nr_slots * word)
            for i in reversed(range(nr_slots)):
                slot = int.from_bytes(raw[i * word : (i + 1) * word], "little")
                if slot:
                    stack.append((slot, base + (i << shift)))
        elif entry and entry & 3 == 0:  # a pointer, not an internal/value entry
            yield base, entry


#: Nodes an XArray of MAX_MEMORY_BLOCKS entries needs, with room to spare.
MAX_XA_NODES = MAX_MEMORY_BLOCKS // 8


def _memory_blocks(prog: Program) -> Tuple[Tuple[MemoryBlock, ...], int, str]:
    xa = prog["memory_blocks"]
    # drgn's memory_block_size_bytes() needs SECTION_SIZE_BITS as an object,
    # which only DWARF macro info gives; fall back to the arch's constant.
    size = prog["sections_per_block"].value_() << _section_size_bits(prog)
    mb_type = prog.type("struct memory_block *")
    try:
        # enum memory_block_state (upstream v6.19 commit 1a4f70f6851a; also in
        # Debian 6.12.117): drgn decodes both encodings.
        prog.type("enum memory_block_state")
        encoding = "enum memory_block_state"
    except LookupError:
        encoding = "bit flags"
    blocks: List[MemoryBlock] = []
    for block_id, entry in _xa_entries(xa):
        if len(blocks) >= MAX_MEMORY_BLOCKS:
            raise ValueError(
                f"memory_blocks holds more than {MAX_MEMORY_BLOCKS} "
                "blocks; the xarray is corrupt"
            )
        mem = Object(prog, mb_type, value=entry)
        state = mem.state.value_()
        try:
            name = decode_memory_block_state_value(prog, state)
        except KeyError:
            name = ""
        if not name.startswith("MEM_"):
            # drgn formats an enum value without a name as "(enum ...)N".
            name = f"UNKNOWN({state})"
        start = mem.start_section_nr.value_() << _section_size_bits(prog)
        blocks.append(MemoryBlock(block_id, start, start + size - 1, name))
    return tuple(blocks), size, encoding


def _log(prog: Program) -> Tuple[LogLine, ...]:
    from drgn.helpers.linux.printk import get_printk_records

    _check_printk_ring(prog)
    out = []
    for rec in get_printk_records(prog):
        if _LOG_RE.search(rec.text):
            out.append(
                LogLine(
                    rec.seq, rec.timestamp, rec.level, rec.text.decode(errors="replace")
                )
            )
    return tuple(out)


def _kconfig(prog: Program) -> Tuple[Tuple[str, str], ...]:
    from drgn.helpers.linux.kconfig import get_kconfig

    config = get_kconfig(prog)
    return tuple((k, config[k]) for k in _KCONFIG_KEYS if k in config)


def read_state(prog: Program) -> MachineState:
    """
    Read the current CPU and memory state of the target.

    Never raises for missing symbols or unreadable memory: such fields are
    None and listed in :attr:`MachineState.unknown`.
    """
    r = _Reader(prog)
    page_offset, po_note = _page_offset(prog)
    if po_note:
        r.unknown.append(("page_offset", po_note))
    possible = r.get("possible_cpus", lambda: _cpus(cpu_possible_mask(prog)))
    present = r.get("present_cpus", lambda: _cpus(cpu_present_mask(prog)))
    online = r.get("online_cpus", lambda: _cpus(cpu_online_mask(prog)))
    nr_cpu_ids = r.get("nr_cpu_ids", lambda: prog["nr_cpu_ids"].value_())
    notes: Tuple[CpuNote, ...] = ()
    note_size = None
    if possible is not None:
        notes, note_size = _cpu_notes(
            r, possible, present or (), online or (), page_offset
        )
    root = r.get("system_ram", lambda: prog["iomem_resource"].address_of_())
    system_ram: Optional[Tuple[Range, ...]] = None
    iomem_problem = None
    if root is not None:
        system_ram, iomem_problem = walk_system_ram_res(prog, root)
        if iomem_problem:
            r.unknown.append(("system_ram", iomem_problem))
    blocks = r.get("memory_blocks", lambda: _memory_blocks(prog))
    kconfig = r.get("kconfig", lambda: _kconfig(prog))
    lock = r.get("kexec_lock", lambda: prog["__kexec_lock"].counter.value_())
    return MachineState(
        possible_cpus=possible,
        present_cpus=present,
        online_cpus=online,
        nr_cpu_ids=nr_cpu_ids,
        cpu_notes=notes,
        note_size=note_size,
        vmcoreinfo=r.get("vmcoreinfo", lambda: _vmcoreinfo(prog, page_offset)),
        kernel_text=r.get("kernel_text", lambda: _kernel_text(prog)),
        page_offset=page_offset,
        system_ram=system_ram,
        iomem_problem=iomem_problem,
        crashk_res=r.get("crashk_res", lambda: _crashk(prog, "crashk_res")),
        crashk_low_res=r.get("crashk_low_res", lambda: _crashk(prog, "crashk_low_res")),
        crashk_cma=r.get("crashk_cma", lambda: _crashk_cma(prog)),
        memory_blocks=blocks[0] if blocks else None,
        memory_block_size=blocks[1] if blocks else None,
        memory_block_encoding=blocks[2] if blocks else None,
        log=r.get("log", lambda: _log(prog)),
        kexec_lock=lock,
        panic_cpu=r.get("panic_cpu", lambda: prog["panic_cpu"].counter.value_()),
        kconfig=kconfig or (),
        unknown=tuple(r.unknown),
    )
