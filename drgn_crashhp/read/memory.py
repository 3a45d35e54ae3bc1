"""
Memory
------

The memory the elfcorehdr must describe, as the kernel sees it now: the
"System RAM" ranges exactly as ``walk_system_ram_res()`` returns them
(kernel/resource.c), the crash kernel reservations (kernel/crash_reserve.c)
and the memory blocks (drivers/base/memory.c), through a bounded XArray walk.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Set, Tuple

from drgn import FaultError, Object, Program
from drgn.helpers.linux.mm import decode_memory_block_state_value

from drgn_crashhp.arch import U64_MAX, Arch
from drgn_crashhp.facts import MemoryBlock, Range

__all__ = (
    "IORESOURCE_BUSY",
    "IORESOURCE_SYSTEM_RAM",
    "MAX_IOMEM_NODES",
    "read_crashk",
    "read_crashk_cma",
    "read_memory_blocks",
    "walk_system_ram_res",
)


#: include/linux/ioport.h: IORESOURCE_MEM | IORESOURCE_SYSRAM, and BUSY.
IORESOURCE_SYSTEM_RAM = 0x00000200 | 0x01000000


IORESOURCE_BUSY = 0x80000000


#: Cap on the iomem nodes visited: a real tree has a few thousand at most;
#: a corrupt one (cycles, garbage pointers) must not keep us walking.
MAX_IOMEM_NODES = 1 << 16


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
            if end == U64_MAX:
                break
            cursor = end + 1
            continue
        if child:
            stack.append(child)
    return tuple(out), None


def read_crashk(prog: Program, name: str) -> Range:
    """A crash kernel reservation (``crashk_res``, ``crashk_low_res``)."""
    res = prog[name]
    return res.start.value_(), res.end.value_()


def read_crashk_cma(prog: Program) -> Optional[Tuple[Range, ...]]:
    """``crashk_cma_ranges``; None on kernels without them."""
    # crashkernel=,cma (v6.17): ranges excluded from the elfcorehdr.
    try:
        ranges = prog["crashk_cma_ranges"]
    except KeyError:
        return None
    cnt = prog["crashk_cma_cnt"].value_()
    cnt = max(0, min(cnt, len(ranges)))
    return tuple((ranges[i].start.value_(), ranges[i].end.value_()) for i in range(cnt))


#: include/linux/memblock.h: regions for_each_mem_range() (flags
#: MEMBLOCK_NONE) skips: MEMBLOCK_NOMAP and MEMBLOCK_DRIVER_MANAGED.
_MEMBLOCK_SKIP = 0x4 | 0x8
#: memblock.memory has INIT_MEMBLOCK_REGIONS (128) slots and doubles; a count
#: past this is corrupt.
MAX_MEMBLOCK_REGIONS = 1 << 16


def read_memblock(prog: Program) -> Tuple[Range, ...]:
    """``memblock.memory`` as ``for_each_mem_range()`` walks it: each region
    once, inclusive, none merged (mm/memblock.c ``__next_mem_range()`` with
    no ``type_b``)."""
    memory = prog["memblock"].memory
    cnt = memory.cnt.value_()
    if not 0 <= cnt <= MAX_MEMBLOCK_REGIONS:
        raise ValueError(f"memblock.memory.cnt is {cnt}")
    out = []
    for i in range(cnt):
        region = memory.regions[i]
        base, size = region.base.value_(), region.size.value_()
        if size and not region.flags.value_() & _MEMBLOCK_SKIP:
            out.append((base, base + size - 1))
    return tuple(out)


def read_firmware_ranges(prog: Program) -> Tuple[Range, ...]:
    """RTAS and OPAL as powerpc's add_rtas_mem_range() and
    add_opal_mem_range() add them (the device tree's ``linux,rtas-base``
    and ``rtas-size`` are what ``rtas.base`` and ``rtas.size`` hold)."""
    out = []
    for name in ("rtas", "opal"):
        try:
            obj = prog[name]
        except KeyError:
            continue
        base, size = obj.base.value_(), obj.size.value_()
        if size:
            out.append((base, base + size - 1))
    return tuple(out)


def _section_size_bits(prog: Program, arch: Arch) -> int:
    try:
        return prog["SECTION_SIZE_BITS"].value_()
    except KeyError:
        return arch.section_size_bits


#: 128 TiB of 128 MiB blocks (x86_64's largest block is 2 GiB).
MAX_MEMORY_BLOCKS = 1 << 20


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
        if entry & 3 == 2 and entry > 4096:  # xa_is_node(): above the errno range
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


def read_memory_blocks(
    prog: Program, arch: Arch
) -> Tuple[Tuple[MemoryBlock, ...], int, str]:
    """Every memory block, its size and how its state was decoded."""
    xa = prog["memory_blocks"]
    # drgn's memory_block_size_bytes() needs SECTION_SIZE_BITS as an object,
    # which only DWARF macro info gives; fall back to the arch's constant.
    size = prog["sections_per_block"].value_() << _section_size_bits(prog, arch)
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
        start = mem.start_section_nr.value_() << _section_size_bits(prog, arch)
        blocks.append(MemoryBlock(block_id, start, start + size - 1, name))
    return tuple(blocks), size, encoding
