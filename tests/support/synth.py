"""
Synthetic kernels for tests.

Builds a drgn :class:`~drgn.Program` from drgn's own type constructors, an
object finder, a symbol finder and memory segments, the way drgn's
tests/__init__.py ``mock_program`` does, laid out like an x86_64 kernel:
a direct map at ``page_offset_base``, kernel data at ``__START_KERNEL_map``,
per-CPU areas, ``iomem_resource`` tree, CPU masks and a ``struct kimage``
in one of four layouts. Everything placed in memory is recorded, so tests
state their expectations from what they built, not from the code under test.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import drgn
from drgn import (
    Architecture,
    FaultError,
    Object,
    Platform,
    PlatformFlags,
    Program,
    Symbol,
    SymbolBinding,
    SymbolKind,
    TypeKind,
    TypeMember,
)

PAGE = 4096
PAGE_OFFSET = 0xFFFF888000000000
START_KERNEL_MAP = 0xFFFFFFFF80000000
PHYS_BASE = 0
KERNEL_PHYS = 0x1000000
TEXT = START_KERNEL_MAP + KERNEL_PHYS
KERNEL_SIZE = 0x2000000  # _end - _text
DATA_PHYS = 0x2000000
HEAP_PHYS = 0x3000000
PERCPU_PHYS = 0x4000000
PERCPU_STRIDE = 0x8000
CRASH_NOTES_OFFSET = 0x1000
NOTE_BUF_WORDS = 92  # sizeof(note_buf_t) = 368 on x86_64
NR_CPUS = 64
VMCOREINFO_NOTE_SIZE = 4132
#: x86_64 SECTION_SIZE_BITS (arch/x86/include/asm/sparsemem.h): 128 MiB sections.
SECTION_SIZE_BITS = 27
XA_CHUNK_SHIFT = 6

IORESOURCE_MEM = 0x200
IORESOURCE_SYSRAM = 0x01000000
IORESOURCE_BUSY = 0x80000000
SYSTEM_RAM = IORESOURCE_MEM | IORESOURCE_SYSRAM | IORESOURCE_BUSY


@dataclass
class Res:
    """A node of the synthetic iomem tree (inclusive end)."""

    name: str
    start: int
    end: int
    flags: int = SYSTEM_RAM
    children: List[Res] = field(default_factory=list)
    #: Corrupt this node's ``sibling`` pointer: a raw value, or "self",
    #: "parent" or "first" (the parent's first child) to make a cycle.
    sibling_raw: Optional[object] = None
    #: Corrupt this node's ``child`` pointer the same way.
    child_raw: Optional[object] = None


@dataclass
class Seg:
    mem: int
    memsz: int
    data: bytes = b""
    #: False: the segment's bytes are absent from the target (kdump vmcore).
    present: bool = True

    @property
    def bufsz(self) -> int:
        return len(self.data)


LAYOUTS = ("pre-hotplug", "rfc-v1", "6.6", "6.10")


@dataclass
class Machine:
    layout: str = "6.10"
    possible: Sequence[int] = (0, 1, 2, 3)
    present: Sequence[int] = (0, 1)
    online: Sequence[int] = (0, 1)
    #: Top-level iomem resources.
    iomem: List[Res] = field(default_factory=list)
    crashk: Tuple[int, int] = (0x2F000000, 0x3EFFFFFF)
    crashk_low: Tuple[int, int] = (0, 0)
    #: None means kexec_crash_image is NULL.
    segments: Optional[List[Seg]] = None
    start: int = 0
    file_mode: bool = True
    hotplug_support: bool = True
    elfcorehdr_index: int = -1
    elfcorehdr_updated: bool = False
    hp_action: int = 0
    elf_load_addr: int = 0
    nr_segments: Optional[int] = None
    rfc: Optional[Dict[str, int]] = None
    #: Replace the kexec_crash_image pointer with this raw value.
    image_pointer: Optional[int] = None
    symbols: Dict[str, Tuple[int, int]] = field(default_factory=dict)
    #: Extra raw physical memory chunks: {paddr: bytes}.
    extra_memory: Dict[int, bytes] = field(default_factory=dict)
    #: CONFIG_NR_CPUS: size of the CPU masks and of __per_cpu_offset.
    nr_cpus: int = NR_CPUS
    #: memory_blocks xarray: {block_id: state}; state is a name such as
    #: "MEM_ONLINE" (encoded per memory_block_enum). None: no memory_blocks.
    memory_blocks: Optional[Dict[int, str]] = None
    sections_per_block: int = 1
    #: True: ``state`` is ``enum memory_block_state`` (0, 1, 2, ...);
    #: False: ``unsigned long`` bit flags (1 << n), as before the enum.
    memory_block_enum: bool = True
    #: Value of ``__kexec_lock`` (atomic_t); None: no such symbol.
    kexec_lock: Optional[int] = 0
    #: ``crashk_cma_ranges`` (inclusive); None: no such symbol (before 6.17).
    crashk_cma: Optional[Sequence[Tuple[int, int]]] = None
    #: Omit these global objects (and their symbols), e.g. "vmcoreinfo_note".
    omit: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not self.iomem:
            self.iomem = default_iomem(self.crashk)

    # Facts derived from how the machine is built, for test expectations.
    def crash_notes_phys(self, cpu: int) -> int:
        return PERCPU_PHYS + cpu * PERCPU_STRIDE + CRASH_NOTES_OFFSET

    def memory_block_range(self, block_id: int) -> Tuple[int, int]:
        size = self.sections_per_block << SECTION_SIZE_BITS
        return block_id * size, (block_id + 1) * size - 1


def default_iomem(crashk: Tuple[int, int]) -> List[Res]:
    return [
        Res("Reserved", 0x0, 0xFFF, IORESOURCE_MEM | IORESOURCE_BUSY),
        Res("System RAM", 0x1000, 0x9FBFF),
        Res("Reserved", 0xF0000, 0xFFFFF, IORESOURCE_MEM | IORESOURCE_BUSY),
        Res(
            "System RAM",
            0x100000,
            0x3FFDFFFF,
            children=[
                Res(
                    "Kernel code",
                    KERNEL_PHYS,
                    KERNEL_PHYS + 0xFFFFFF,
                    IORESOURCE_MEM | IORESOURCE_BUSY,
                ),
                Res("Crash kernel", crashk[0], crashk[1]),
            ],
        ),
        Res("PCI Bus 0000:00", 0xC0000000, 0xFEBFFFFF, IORESOURCE_MEM),
    ]


class _Memory:
    """Physical chunks, each mapped physically and in the direct map."""

    def __init__(self) -> None:
        self.chunks: Dict[int, bytearray] = {}
        self.zero_regions: List[Tuple[int, int]] = []

    def alloc(self, paddr: int, size: int) -> bytearray:
        buf = bytearray(size)
        self.chunks[paddr] = buf
        return buf

    def write(self, paddr: int, data: bytes) -> None:
        for base, buf in self.chunks.items():
            if base <= paddr and paddr + len(data) <= base + len(buf):
                buf[paddr - base : paddr - base + len(data)] = data
                return
        raise ValueError(f"no chunk holds {paddr:#x}+{len(data):#x}")

    def zeros(self, paddr: int, size: int) -> None:
        """A large read-only region of zeros that is never materialised."""
        self.zero_regions.append((paddr, size))

    def attach(self, prog: Program) -> None:
        for base, size in self.zero_regions:
            prog.add_memory_segment(base, size, _zero_reader, True)
            prog.add_memory_segment(PAGE_OFFSET + base, size, _zero_reader, False)
        for base, buf in self.chunks.items():
            read = _reader(buf)
            prog.add_memory_segment(base, len(buf), read, True)
            prog.add_memory_segment(PAGE_OFFSET + base, len(buf), read, False)
            if DATA_PHYS <= base < DATA_PHYS + KERNEL_SIZE or base == KERNEL_PHYS:
                prog.add_memory_segment(
                    START_KERNEL_MAP + base - PHYS_BASE, len(buf), read, False
                )


def _zero_reader(address: int, count: int, offset: int, physical: bool) -> bytes:
    return bytes(count)


def _reader(buf: bytearray) -> Callable[[int, int, int, bool], bytes]:
    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        return bytes(buf[offset : offset + count])

    return read


class _Types:
    def __init__(
        self,
        prog: Program,
        layout: str,
        nr_cpus: int = NR_CPUS,
        memory_block_enum: bool = True,
    ) -> None:
        self.prog = prog
        p = prog
        self.u8 = p.int_type("unsigned char", 1, False)
        self.u32 = p.int_type("unsigned int", 4, False)
        self.int = p.int_type("int", 4, True)
        self.ulong = p.int_type("unsigned long", 8, False)
        self.bool = p.bool_type("_Bool", 1)
        self.char = p.int_type("char", 1, True)
        self.void_p = p.pointer_type(p.void_type())
        self.size_t = p.typedef_type("size_t", self.ulong)
        self.note_buf_t = p.typedef_type(
            "note_buf_t", p.array_type(self.u32, NOTE_BUF_WORDS)
        )
        self.segment = p.struct_type(
            "kexec_segment",
            32,
            (
                TypeMember(self.void_p, "buf", 0),
                TypeMember(self.size_t, "bufsz", 64),
                TypeMember(self.ulong, "mem", 128),
                TypeMember(self.size_t, "memsz", 192),
            ),
        )
        arch_members = [
            TypeMember(self.void_p, name, 64 * i)
            for i, name in enumerate(("pgd", "p4d", "pud", "pmd", "pte"))
        ]
        arch_size = 40
        if layout == "rfc-v1":
            hp = p.struct_type(
                "crash_hotplug_regs",
                40,
                (
                    TypeMember(self.int, "elf_index", 0),
                    TypeMember(self.int, "purg_index", 32),
                    TypeMember(self.ulong, "rbx", 64),
                    TypeMember(self.ulong, "rsi", 128),
                    TypeMember(self.ulong, "rip", 192),
                    TypeMember(self.ulong, "rsp", 256),
                ),
            )
            arch_members.append(TypeMember(hp, "hp", 320))
            arch_size = 80
        self.arch = p.struct_type("kimage_arch", arch_size, arch_members)
        # struct kimage, packed in our own order; readers use names only.
        m = [
            TypeMember(self.ulong, "start", 0),
            TypeMember(self.ulong, "nr_segments", 64),
            TypeMember(p.array_type(self.segment, 16), "segment", 128),
        ]
        bits = 128 + 16 * 32 * 8  # bit offset 4224 = byte 528
        flag_names = ["type", "preserve_context", "file_mode"]
        if layout == "6.10":
            flag_names.append("hotplug_support")
        elif layout == "6.6":
            flag_names.append("update_elfcorehdr")
        m += [
            TypeMember(Object(p, self.u32, bit_field_size=1), name, bits + i)
            for i, name in enumerate(flag_names)
        ]
        off = 536 * 8
        m.append(TypeMember(self.arch, "arch", off))
        off += arch_size * 8
        m += [
            TypeMember(self.void_p, "elf_headers", off),
            TypeMember(self.ulong, "elf_headers_sz", off + 64),
            TypeMember(self.ulong, "elf_load_addr", off + 128),
        ]
        off += 192
        if layout in ("6.6", "6.10"):
            m += [
                TypeMember(self.u32, "hp_action", off),
                TypeMember(self.int, "elfcorehdr_index", off + 32),
                TypeMember(self.bool, "elfcorehdr_updated", off + 64),
            ]
            off += 128
        self.kimage = p.struct_type("kimage", off // 8, m)
        self.kimage_p = p.pointer_type(self.kimage)

        def res_p() -> drgn.Type:
            return p.pointer_type(self.resource)

        self.resource = p.struct_type(
            "resource",
            64,
            (
                TypeMember(self.ulong, "start", 0),
                TypeMember(self.ulong, "end", 64),
                TypeMember(p.pointer_type(self.char), "name", 128),
                TypeMember(self.ulong, "flags", 192),
                TypeMember(self.ulong, "desc", 256),
                TypeMember(res_p, "parent", 320),
                TypeMember(res_p, "sibling", 384),
                TypeMember(res_p, "child", 448),
            ),
        )
        self.cpumask = p.struct_type(
            "cpumask",
            _mask_bytes(nr_cpus),
            (
                TypeMember(
                    p.array_type(self.ulong, _mask_bytes(nr_cpus) // 8), "bits", 0
                ),
            ),
        )
        self.atomic_t = p.struct_type("atomic_t", 4, (TypeMember(self.int, "counter"),))
        self.range = p.struct_type(
            "range",
            16,
            (TypeMember(self.ulong, "start", 0), TypeMember(self.ulong, "end", 64)),
        )
        if memory_block_enum:
            # enum memory_block_state (v6.19, commit 1a4f70f6851a; Debian 6.12.117).
            self.mb_state = p.enum_type(
                "memory_block_state",
                self.u32,
                [drgn.TypeEnumerator(n, v) for v, n in enumerate(MEM_STATES)],
            )
        else:
            self.mb_state = self.ulong
        self.memory_block = p.struct_type(
            "memory_block",
            24,
            (
                TypeMember(self.ulong, "start_section_nr", 0),
                TypeMember(self.mb_state, "state", 64),
                TypeMember(self.int, "online_type", 128),
                TypeMember(self.int, "nid", 160),
            ),
        )
        self.xarray = p.struct_type(
            "xarray",
            16,
            (
                TypeMember(self.u32, "xa_lock", 0),
                TypeMember(self.u32, "xa_flags", 32),
                TypeMember(self.void_p, "xa_head", 64),
            ),
        )
        self.xa_node = p.struct_type(
            "xa_node",
            24 + 8 * (1 << XA_CHUNK_SHIFT),
            (
                TypeMember(self.u8, "shift", 0),
                TypeMember(self.u8, "offset", 8),
                TypeMember(self.u8, "count", 16),
                TypeMember(self.u8, "nr_values", 24),
                TypeMember(lambda: p.pointer_type(self.xa_node), "parent", 64),
                TypeMember(p.pointer_type(self.xarray), "array", 128),
                TypeMember(
                    p.array_type(self.void_p, 1 << XA_CHUNK_SHIFT), "slots", 192
                ),
            ),
        )
        self.by_name = {
            ("struct", "kimage"): self.kimage,
            ("struct", "kimage_arch"): self.arch,
            ("struct", "kexec_segment"): self.segment,
            ("struct", "resource"): self.resource,
            ("struct", "cpumask"): self.cpumask,
            ("struct", "memory_block"): self.memory_block,
            ("struct", "xarray"): self.xarray,
            ("struct", "xa_node"): self.xa_node,
            ("struct", "range"): self.range,
            ("typedef", "atomic_t"): self.atomic_t,
            ("typedef", "note_buf_t"): self.note_buf_t,
            ("typedef", "size_t"): self.size_t,
            ("base", "unsigned long"): self.ulong,
            ("base", "unsigned int"): self.u32,
            ("base", "int"): self.int,
            ("base", "char"): self.char,
            ("base", "_Bool"): self.bool,
        }


_KIND = {
    TypeKind.STRUCT: "struct",
    TypeKind.ENUM: "enum",
    TypeKind.TYPEDEF: "typedef",
    TypeKind.INT: "base",
    TypeKind.BOOL: "base",
}


class SynthKernel:
    """A built synthetic kernel: ``prog`` plus where things were put."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.prog = Program(
            Platform(
                Architecture.X86_64,
                PlatformFlags.IS_64_BIT | PlatformFlags.IS_LITTLE_ENDIAN,
            )
        )
        self.mem = _Memory()
        self.types = _Types(
            self.prog, machine.layout, machine.nr_cpus, machine.memory_block_enum
        )
        if machine.memory_block_enum:
            self.types.by_name[("enum", "memory_block_state")] = self.types.mb_state
        self.objects: Dict[str, Object] = {}
        self.symbols: Dict[str, Tuple[int, int]] = dict(machine.symbols)
        self._data = self.mem.alloc(
            DATA_PHYS, 0x10000 + machine.nr_cpus * 8 + 3 * _mask_bytes(machine.nr_cpus)
        )
        self._data_next = 0
        self._heap = self.mem.alloc(HEAP_PHYS, _heap_size(machine))
        self._heap_next = 0
        self.mem.alloc(KERNEL_PHYS, PAGE)
        self._build()
        self.mem.attach(self.prog)
        self.prog.register_type_finder("synth", self._find_type, enable_index=0)
        self.prog.register_object_finder("synth", self._find_object, enable_index=0)
        self.prog.register_symbol_finder("synth", self._find_symbol, enable_index=0)

    # -- allocation -------------------------------------------------------
    def _global(self, name: str, type_: drgn.Type, value: bytes) -> int:
        size = drgn.sizeof(type_)
        if name in self.machine.omit:
            return 0
        off = (self._data_next + 7) & ~7
        self._data[off : off + len(value)] = value
        self._data_next = off + max(size, len(value))
        address = START_KERNEL_MAP + DATA_PHYS - PHYS_BASE + off
        self.objects[name] = Object(self.prog, type_, address=address)
        self.symbols[name] = (address, size)
        return address

    def heap(self, data: bytes, align: int = 8) -> int:
        """Place *data* in the direct map; return its virtual address."""
        off = (self._heap_next + align - 1) & ~(align - 1)
        self._heap[off : off + len(data)] = data
        self._heap_next = off + len(data)
        return PAGE_OFFSET + HEAP_PHYS + off

    def _resource(self, res: Res, parent: int) -> int:
        name = self.heap(res.name.encode() + b"\0")
        addr = self.heap(bytes(64))
        self._res_nodes.append((addr, res, parent, name))
        return addr

    # -- building -----------------------------------------------------------
    def _build(self) -> None:
        m, t = self.machine, self.types
        q = struct.Struct("<Q")
        self._global("page_offset_base", t.ulong, q.pack(PAGE_OFFSET))
        self._global("phys_base", t.ulong, q.pack(PHYS_BASE))
        nr_cpu_ids = max(m.possible) + 1
        self._global("nr_cpu_ids", t.u32, struct.pack("<I", nr_cpu_ids))
        nr_cpus = m.nr_cpus
        for name, cpus in (
            ("__cpu_possible_mask", m.possible),
            ("__cpu_present_mask", m.present),
            ("__cpu_online_mask", m.online),
        ):
            bits = 0
            for cpu in cpus:
                bits |= 1 << cpu
            self._global(name, t.cpumask, bits.to_bytes(_mask_bytes(nr_cpus), "little"))
        # Per-CPU areas: crash_notes is a __percpu offset; each CPU's copy
        # sits at PERCPU_PHYS + cpu * PERCPU_STRIDE + CRASH_NOTES_OFFSET.
        if nr_cpus <= NR_CPUS:
            self.mem.alloc(PERCPU_PHYS, PERCPU_STRIDE * nr_cpus)
        else:
            self.mem.zeros(PERCPU_PHYS, PERCPU_STRIDE * nr_cpus)
        offsets = b"".join(
            q.pack(PAGE_OFFSET + PERCPU_PHYS + cpu * PERCPU_STRIDE)
            for cpu in range(nr_cpus)
        )
        self._global(
            "__per_cpu_offset", self.prog.array_type(t.ulong, nr_cpus), offsets
        )
        self._global(
            "crash_notes",
            self.prog.pointer_type(t.note_buf_t),
            q.pack(CRASH_NOTES_OFFSET),
        )
        self.vmcoreinfo_note_phys = HEAP_PHYS + 0x20000
        self._global(
            "vmcoreinfo_note",
            self.prog.pointer_type(t.u32),
            q.pack(PAGE_OFFSET + self.vmcoreinfo_note_phys),
        )
        self.symbols.setdefault("_text", (TEXT, 0))
        self.symbols.setdefault("_end", (TEXT + KERNEL_SIZE, 0))
        # iomem tree
        self._res_nodes: List[Tuple[int, Res, int, int]] = []
        root = self.heap(bytes(64))
        root_name = self.heap(b"PCI mem\0")
        self._res_nodes.append(
            (root, Res("PCI mem", 0, (1 << 64) - 1, IORESOURCE_MEM), 0, root_name)
        )
        self._link_children(root, m.iomem)
        self._write_resources()
        self.objects["iomem_resource"] = Object(self.prog, t.resource, address=root)
        self.crashk_res = self._global(
            "crashk_res",
            t.resource,
            _pack_res(m.crashk[0], m.crashk[1], 0, SYSTEM_RAM, 0, 0, 0),
        )
        self._global(
            "crashk_low_res",
            t.resource,
            _pack_res(m.crashk_low[0], m.crashk_low[1], 0, SYSTEM_RAM, 0, 0, 0),
        )
        # Crash image
        image = 0
        if m.segments is not None:
            image = self.heap(self._kimage_bytes(), align=64)
            for seg in m.segments:
                if seg.present:
                    self.mem.alloc(seg.mem, max(seg.memsz, len(seg.data)))
                    self.mem.write(seg.mem, seg.data)
        if m.image_pointer is not None:
            image = m.image_pointer
        self.image_address = image
        self._global("kexec_crash_image", t.kimage_p, q.pack(image))
        self._global("kexec_image", t.kimage_p, q.pack(0))
        if m.kexec_lock is not None:
            self._global("__kexec_lock", t.atomic_t, struct.pack("<i", m.kexec_lock))
        if m.crashk_cma is not None:
            ranges = list(m.crashk_cma) + [(0, 0)] * (4 - len(m.crashk_cma))
            self._global(
                "crashk_cma_ranges",
                self.prog.array_type(t.range, 4),
                b"".join(struct.pack("<QQ", s, e) for s, e in ranges),
            )
            self._global("crashk_cma_cnt", t.int, struct.pack("<i", len(m.crashk_cma)))
        if m.memory_blocks is not None:
            self._memory_blocks()
        for paddr, data in m.extra_memory.items():
            self.mem.alloc(paddr, len(data))
            self.mem.write(paddr, data)

    def _link_children(self, parent: int, children: List[Res]) -> None:
        prev = None
        for res in children:
            addr = self._resource(res, parent)
            if prev is None:
                self._set_link(parent, "child", addr)
            else:
                self._set_link(prev, "sibling", addr)
            prev = addr
            self._link_children(addr, res.children)

    def _set_link(self, node: int, which: str, target: int) -> None:
        self._links = getattr(self, "_links", {})
        self._links[(node, which)] = target

    def _write_resources(self) -> None:
        links = getattr(self, "_links", {})
        for addr, res, parent, name in self._res_nodes:
            sibling = links.get((addr, "sibling"), 0)
            child = links.get((addr, "child"), 0)
            if res.sibling_raw is not None:
                sibling = self._raw_link(res.sibling_raw, addr, parent, links)
            if res.child_raw is not None:
                child = self._raw_link(res.child_raw, addr, parent, links)
            data = _pack_res(
                res.start, res.end, name, res.flags, parent, sibling, child
            )
            off = addr - PAGE_OFFSET - HEAP_PHYS
            self._heap[off : off + 64] = data

    @staticmethod
    def _raw_link(
        how: object, addr: int, parent: int, links: Dict[Tuple[int, str], int]
    ) -> int:
        if how == "self":
            return addr
        if how == "parent":
            return parent
        if how == "first":
            return links.get((parent, "child"), 0)
        assert isinstance(how, int)
        return how

    def _memory_blocks(self) -> None:
        """``memory_blocks`` (DEFINE_XARRAY, drivers/base/memory.c) and its blocks."""
        m, t = self.machine, self.types
        self._global(
            "sections_per_block", t.int, struct.pack("<i", m.sections_per_block)
        )
        entries: Dict[int, int] = {}
        for block_id, state in sorted((m.memory_blocks or {}).items()):
            value = MEM_STATES.index(state)
            if not m.memory_block_enum:
                value = 1 << value
            entries[block_id] = self.heap(
                struct.pack("<QQii", block_id * m.sections_per_block, value, 0, 0)
            )
        head = self._xa_build(entries)
        self._global("memory_blocks", t.xarray, struct.pack("<IIQ", 0, 0, head))

    def _xa_build(self, entries: Dict[int, int]) -> int:
        """Lay out an XArray holding *entries*; return its ``xa_head``."""
        if not entries:
            return 0
        if list(entries) == [0]:
            return entries[0]
        top = max(entries)
        shift = 0
        while top >> (shift + XA_CHUNK_SHIFT):
            shift += XA_CHUNK_SHIFT
        return self._xa_node(entries, 0, shift)

    def _xa_node(self, entries: Dict[int, int], base: int, shift: int) -> int:
        slots = [0] * (1 << XA_CHUNK_SHIFT)
        span = 1 << shift
        for i in range(len(slots)):
            lo = base + i * span
            inside = {k: v for k, v in entries.items() if lo <= k < lo + span}
            if not inside:
                continue
            slots[i] = (
                self._xa_node(inside, lo, shift - XA_CHUNK_SHIFT)
                if shift
                else inside[lo]
            )
        node = self.heap(
            struct.pack("<BBBB4xQQ", shift, 0, 0, 0, 0, 0)
            + b"".join(struct.pack("<Q", s) for s in slots),
            align=64,
        )
        return node | 2  # xa_mk_node()

    def _kimage_bytes(self) -> bytes:
        m, t = self.machine, self.types
        buf = bytearray(t.kimage.size)

        def put(member: str, value: int, size: int = 8, base: int = 0) -> None:
            off = base + t.kimage.member(member).offset
            buf[off : off + size] = value.to_bytes(size, "little", signed=value < 0)

        segs = m.segments or []
        put("start", m.start)
        put("nr_segments", len(segs) if m.nr_segments is None else m.nr_segments)
        seg0 = t.kimage.member("segment").offset
        for i, seg in enumerate(segs[:16]):
            o = seg0 + 32 * i
            buf[o : o + 32] = struct.pack(
                "<QQQQ", 0xDEAD0000, seg.bufsz, seg.mem, seg.memsz
            )
        flags = 1  # KEXEC_TYPE_CRASH
        if m.file_mode:
            flags |= 1 << 2
        if m.layout in ("6.6", "6.10") and m.hotplug_support:
            flags |= 1 << 3
        put("type", flags, 1)  # type/preserve_context/file_mode/... share a word
        put("elf_load_addr", m.elf_load_addr)
        if m.layout in ("6.6", "6.10"):
            put("hp_action", m.hp_action, 4)
            put("elfcorehdr_index", m.elfcorehdr_index, 4)
            put("elfcorehdr_updated", int(m.elfcorehdr_updated), 1)
        if m.layout == "rfc-v1" and m.rfc is not None:
            arch = t.kimage.member("arch").offset
            hp = arch + t.arch.member("hp").offset
            for i, name in enumerate(("elf_index", "purg_index")):
                buf[hp + 4 * i : hp + 4 * i + 4] = m.rfc[name].to_bytes(
                    4, "little", signed=True
                )
            for i, name in enumerate(("rbx", "rsi", "rip", "rsp")):
                value = m.rfc[name].to_bytes(8, "little")
                buf[hp + 8 + 8 * i : hp + 16 + 8 * i] = value
        return bytes(buf)

    # -- finders ------------------------------------------------------------
    def _find_type(
        self, prog: Program, kinds: object, name: str, filename: Optional[str]
    ) -> Optional[drgn.Type]:
        for kind in kinds:  # type: ignore[attr-defined]
            t = self.types.by_name.get((_KIND.get(kind, ""), name))
            if t is not None:
                return t
        return None

    def _find_object(
        self, prog: Program, name: str, flags: object, filename: Optional[str]
    ) -> Optional[Object]:
        return self.objects.get(name)

    def _find_symbol(
        self, prog: Program, name: Optional[str], address: Optional[int], one: bool
    ) -> List[Symbol]:
        out = []
        for sym, (addr, size) in self.symbols.items():
            if name is not None and sym != name:
                continue
            if address is not None and not (addr <= address < addr + max(size, 1)):
                continue
            out.append(Symbol(sym, addr, size, SymbolBinding.GLOBAL, SymbolKind.OBJECT))
        return out


#: enum memory_block_state order (include/linux/memory.h, Debian 6.12.117).
MEM_STATES = (
    "MEM_ONLINE",
    "MEM_GOING_OFFLINE",
    "MEM_OFFLINE",
    "MEM_GOING_ONLINE",
    "MEM_CANCEL_ONLINE",
    "MEM_CANCEL_OFFLINE",
    "MEM_PREPARE_ONLINE",
    "MEM_FINISH_OFFLINE",
)


def _mask_bytes(nr_cpus: int) -> int:
    return (nr_cpus + 63) // 64 * 8


def _count_res(nodes: Sequence[Res]) -> int:
    return sum(1 + _count_res(r.children) for r in nodes)


def _heap_size(machine: Machine) -> int:
    blocks = len(machine.memory_blocks or ())
    need = 0x40000 + 160 * _count_res(machine.iomem) + 640 * blocks
    return (need + PAGE - 1) & ~(PAGE - 1)


def _pack_res(
    start: int, end: int, name: int, flags: int, parent: int, sibling: int, child: int
) -> bytes:
    return struct.pack("<QQQQQQQQ", start, end, name, flags, 0, parent, sibling, child)


# -- a hand-written elfcorehdr --------------------------------------------
PT_LOAD, PT_NOTE = 1, 4


def elf_core_header(
    phdrs: Sequence[Tuple[int, int, int, int, int, int]],
    e_phnum: Optional[int] = None,
    e_phoff: int = 64,
    e_type: int = 4,
) -> bytes:
    """
    ELF64 core header written by hand for tests. *phdrs* are
    ``(p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz)``.
    """
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    phnum = len(phdrs) if e_phnum is None else e_phnum
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH", e_type, 62, 1, 0, e_phoff, 0, 0, 64, 56, phnum, 0, 0, 0
    )
    body = b"".join(
        struct.pack("<IIQQQQQQ", pt, 0 if pt == PT_NOTE else 7, off, va, pa, fs, ms, 0)
        for pt, off, va, pa, fs, ms in phdrs
    )
    return ehdr + bytes(max(0, e_phoff - 64)) + body


def note(paddr: int, size: int = 368) -> Tuple[int, int, int, int, int, int]:
    return (PT_NOTE, paddr, 0, paddr, size, size)


def ram(start: int, end: int) -> Tuple[int, int, int, int, int, int]:
    size = end - start + 1
    return (PT_LOAD, start, PAGE_OFFSET + start, start, size, size)


def text(paddr: int = KERNEL_PHYS, size: int = KERNEL_SIZE) -> Tuple[int, ...]:
    return (PT_LOAD, paddr, TEXT, paddr, size, size)


__all__ = [
    "MEM_STATES",
    "FaultError",
    "Machine",
    "Res",
    "Seg",
    "SynthKernel",
    "elf_core_header",
    "note",
    "ram",
    "text",
]
