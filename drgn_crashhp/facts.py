"""
Facts
-----

The frozen values readers produce and checks consume: the crash image and
its segments (include/linux/kexec.h ``struct kimage``), the decoded
elfcorehdr, the purgatory, the digest bytes, the machine state now and the
dump's own headers. Nothing here reads the target or decides anything;
:class:`Facts` holds one report's worth of them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional, Tuple

from drgn_crashhp.arch import DEFAULT_ARCH, U64_MAX

__all__ = (
    "DebugInfo",
    "ImageProblemKind",
    "HP_ACTIONS",
    "Range",
    "CmdLine",
    "CpuNote",
    "RegionsHash",
    "DigestVerdict",
    "DigestStatus",
    "DumpHeaders",
    "DumpLoad",
    "ElfCoreHdr",
    "ElfCoreHdrRead",
    "EntryRegs",
    "Facts",
    "Fdt",
    "FdtHeader",
    "FdtNode",
    "FdtRead",
    "HotplugFields",
    "ImageProblem",
    "KImage",
    "KernelText",
    "Layout",
    "Load",
    "LogLine",
    "MachineState",
    "MemoryBlock",
    "Note",
    "Purgatory",
    "PurgatoryVariable",
    "RegionsHash",
    "RegsLayout",
    "RfcSaved",
    "Role",
    "Segment",
    "ShaRegion",
    "Source",
    "Unread",
    "UnreadKind",
)

#: An inclusive ``(start, end)`` physical range, as ``struct range`` keeps it.
Range = Tuple[int, int]


# "Could not read" has one form everywhere: a value the reader could not get
# is None (or partial) and an :class:`Unread` beside it says what and why.
# A value, not an exception, because the report goes on after it and the
# checks decide what it costs (a CHP090, a CHP022 or nothing); not a bare
# string, because the checks decide by its kind, never by parsing text.
# Readers raise only among themselves, inside drgn_crashhp.read.


class UnreadKind(str, enum.Enum):
    """Why a reader could not get a value."""

    #: The kernel or its debug info has no such symbol, type or member.
    MISSING_INFO = "missing-info"
    #: The bytes are not in this target (a dump that left them out).
    NOT_IN_TARGET = "not-in-target"
    #: Read, but not what the kernel or the loader writes.
    MALFORMED = "malformed"
    #: Not found where it must be (in no segment, or not uniquely).
    NOT_FOUND = "not-found"
    #: A live target changed it while it was read, every time it was read.
    CHANGING = "changing"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Unread:
    """What could not be read, why, and where when it is memory."""

    #: The field or object (``system_ram``, ``kexec_purgatory``, ...).
    what: str
    kind: UnreadKind
    #: One line, for messages.
    reason: str
    address: Optional[int] = None
    size: Optional[int] = None

    def __str__(self) -> str:
        return self.reason


#: ``KEXEC_CRASH_HP_*`` are #defines (no DWARF), include/linux/crash_core.h
#: since v6.6.
HP_ACTIONS = {
    0: "NONE",
    1: "ADD_CPU",
    2: "REMOVE_CPU",
    3: "ADD_MEMORY",
    4: "REMOVE_MEMORY",
    0xFFFFFFFF: "INVALID_CPU",
}


class Layout(str, enum.Enum):
    """Which generation of the crash hotplug fields ``struct kimage`` has."""

    #: No crash hotplug (before v6.6, or CONFIG_CRASH_HOTPLUG=n).
    PRE_HOTPLUG = "pre-hotplug"
    #: E. DeVolder's RFC v1 (Nov 2021, never merged): x86 ``image->arch.hp``.
    RFC_V1 = "rfc-v1"
    #: v6.6 to v6.9: ``elfcorehdr_index``, ``elfcorehdr_updated``,
    #: ``hp_action``, ``update_elfcorehdr``.
    MAINLINE_6_6 = "6.6"
    #: v6.10 and later: ``update_elfcorehdr`` renamed ``hotplug_support``.
    MAINLINE_6_10 = "6.10"

    def __str__(self) -> str:
        return self.value


class Role(str, enum.Enum):
    """What a segment holds."""

    ELFCOREHDR = "elfcorehdr"
    PURGATORY = "purgatory"
    BOOT_PARAMS = "boot_params"
    KERNEL = "kernel"
    INITRD = "initrd"
    BACKUP = "backup"
    #: A flattened device tree (kexec-tools' DTB on ppc64 and arm64): the
    #: segment starts with the FDT magic 0xd00dfeed, big-endian.
    FDT = "fdt"
    #: The dm-crypt keys buffer, ``image->dm_crypt_keys_addr`` (after 6.12,
    #: kernel/crash_dump_dm_crypt.c), excluded from the capture kernel's
    #: memory map.
    DM_CRYPT_KEYS = "dm_crypt_keys"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Segment:
    """One ``struct kexec_segment``: physical ``mem``/``memsz`` and ``bufsz``."""

    index: int
    mem: int
    memsz: int
    bufsz: int
    role: Role = Role.UNKNOWN

    @property
    def end(self) -> int:
        """Inclusive last physical address."""
        return self.mem + self.memsz - 1

    def contains(self, address: int) -> bool:
        return self.mem <= address < self.mem + self.memsz


@dataclass(frozen=True)
class RfcSaved:
    """``image->arch.hp`` of the RFC v1 series (x86 ``struct kimage_arch``)."""

    elf_index: int
    purg_index: int
    rbx: int
    rsi: int
    rip: int
    rsp: int


@dataclass(frozen=True)
class HotplugFields:
    """
    The crash hotplug members of ``struct kimage`` and what the kernel that
    has them does. The capability flags are decided where the layout is
    detected (:mod:`drgn_crashhp.read.image`, next to the commit citations),
    so that no check names a layout.
    """

    layout: Layout
    #: Whether the kernel rewrites the elfcorehdr on hotplug for this image.
    support: bool
    #: The member (or rule) the support flag came from.
    support_source: str
    elfcorehdr_index: Optional[int] = None
    elfcorehdr_updated: Optional[bool] = None
    hp_action: Optional[int] = None
    rfc: Optional[RfcSaved] = None
    #: The loader left the elfcorehdr segment out of the purgatory digest.
    digest_excludes_elfcorehdr: bool = False
    #: The kernel writes a PT_NOTE for every possible CPU (True), for
    #: present CPUs (False), or the layout does not say (None: decided by
    #: counting the header's notes).
    notes_for_possible_cpus: Optional[bool] = None
    #: ``/sys/devices/system/{cpu,memory}/crash_hotplug`` exist.
    sysfs_crash_hotplug: bool = False
    #: The kernel rewrites a header that is inside the digest and must store
    #: a new digest with it (RFC v1).
    rewrites_hashed_header: bool = False

    @property
    def hp_action_name(self) -> Optional[str]:
        if self.hp_action is None:
            return None
        return HP_ACTIONS.get(self.hp_action, f"UNKNOWN({self.hp_action})")


@dataclass(frozen=True)
class KImage:
    """A loaded kexec image (``struct kimage``) and its segment table."""

    symbol: str
    address: int
    start: int
    type: int
    file_mode: bool
    nr_segments: int
    #: Segments actually read: at most KEXEC_SEGMENT_MAX, even when
    #: ``nr_segments`` claims more.
    segments: Tuple[Segment, ...]
    elf_load_addr: Optional[int]
    elf_headers_sz: Optional[int]
    hotplug: HotplugFields
    #: Index into ``segments`` of the elfcorehdr, or None.
    elfcorehdr_index: Optional[int]
    #: How the elfcorehdr segment was identified.
    elfcorehdr_source: str
    #: ``dm_crypt_keys_addr`` (kernels after 6.12), or None.
    dm_crypt_keys_addr: Optional[int] = None

    @property
    def elfcorehdr(self) -> Optional[Segment]:
        if self.elfcorehdr_index is None:
            return None
        return self.segments[self.elfcorehdr_index]

    def segment_containing(self, address: int) -> Optional[Segment]:
        for seg in self.segments:
            if seg.contains(address):
                return seg
        return None

    def by_role(self, role: Role) -> Optional[Segment]:
        for seg in self.segments:
            if seg.role == role:
                return seg
        return None


@dataclass(frozen=True)
class Note:
    """A PT_NOTE of the elfcorehdr (a CPU's crash_notes or vmcoreinfo)."""

    #: Index of the program header.
    index: int
    paddr: int
    size: int
    offset: int


@dataclass(frozen=True)
class Load:
    """A PT_LOAD of the elfcorehdr (kernel text or a RAM range)."""

    index: int
    paddr: int
    vaddr: int
    size: int
    #: For the kernel these equal ``paddr``; kexec-tools points the first
    #: (low-memory) range at its backup segment.
    offset: int
    filesz: int

    @property
    def end(self) -> int:
        """Inclusive last address, wrapped to 64 bits like the kernel's u64."""
        return (self.paddr + self.size - 1) & U64_MAX

    @property
    def wraps(self) -> bool:
        """``p_paddr + p_memsz`` runs past the top of the address space."""
        return self.size > 0 and self.paddr + self.size > U64_MAX + 1


@dataclass(frozen=True)
class ElfCoreHdr:
    """A decoded elfcorehdr: its program headers and how full it is."""

    machine: int
    phnum: int
    notes: Tuple[Note, ...]
    loads: Tuple[Load, ...]
    #: Bytes the header uses: Ehdr plus e_phnum program headers.
    used: int
    #: Bytes available (the segment's memsz).
    capacity: int
    #: Types of program headers that are neither PT_NOTE nor PT_LOAD.
    other: Tuple[int, ...] = ()


@dataclass(frozen=True)
class ElfCoreHdrRead:
    """What reading the elfcorehdr segment gave."""

    segment: Optional[Segment]
    header: Optional[ElfCoreHdr] = None
    #: Why there is no header: no segment, bytes not in the target, or
    #: malformed.
    unread: Optional[Unread] = None
    #: The used bytes (Ehdr + Phdrs), for a byte-for-byte comparison.
    data: bytes = field(default=b"", repr=False, metadata={"json": False})


@dataclass(frozen=True)
class FdtHeader:
    """``struct fdt_header`` (scripts/dtc/libfdt/fdt.h), version 16 or later."""

    totalsize: int
    off_dt_struct: int
    off_dt_strings: int
    off_mem_rsvmap: int
    version: int
    last_comp_version: int
    boot_cpuid_phys: int
    size_dt_strings: int
    size_dt_struct: int


@dataclass(frozen=True)
class FdtNode:
    """One node of a flattened device tree, by its full path."""

    #: ``/`` for the root, else ``/cpus/PowerPC,POWER10@0`` and the like.
    path: str
    #: ``(name, value)`` in the order the blob holds them.
    properties: Tuple[Tuple[str, bytes], ...] = field(
        default=(), metadata={"json": False}
    )

    @property
    def name(self) -> str:
        """The last path component (``cpu@1``), empty for the root."""
        return self.path.rsplit("/", 1)[-1]

    def prop(self, name: str) -> Optional[bytes]:
        """The value of property *name*, or None."""
        for key, value in self.properties:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Fdt:
    """A decoded flattened device tree: header, reserve map and nodes."""

    header: FdtHeader
    #: ``/memreserve/`` entries as ``(address, size)``.
    memreserve: Tuple[Tuple[int, int], ...]
    #: Every node, parents before children, in blob order.
    nodes: Tuple[FdtNode, ...]

    def node(self, path: str) -> Optional[FdtNode]:
        for n in self.nodes:
            if n.path == path:
                return n
        return None

    def children(self, path: str) -> Tuple[FdtNode, ...]:
        """The direct children of the node at *path*."""
        prefix = path.rstrip("/") + "/"
        return tuple(
            n
            for n in self.nodes
            if n.path.startswith(prefix)
            and n.path[len(prefix) :]
            and "/" not in n.path[len(prefix) :]
        )


@dataclass(frozen=True)
class FdtRead:
    """What reading the FDT segment of a kexec_load image gave."""

    segment: Optional[Segment]
    fdt: Optional[Fdt] = None
    #: Why there is no decoded tree: no segment, not in the target, or
    #: malformed.
    unread: Optional[Unread] = None
    #: ``(Linux CPU, hardware id)`` of each present CPU, as the kernel
    #: numbers them (ppc64 ``paca_ptrs[cpu]->hw_cpu_id``, arm64
    #: ``__cpu_logical_map[cpu]``): what the FDT's /cpus ``reg`` holds.
    hw_cpu_ids: Tuple[Tuple[int, int], ...] = ()
    #: Where the hardware ids came from, or why they are assumed.
    hw_cpu_ids_source: str = ""


class Source(str, enum.Enum):
    """Where the purgatory layout came from."""

    #: The kernel's own blob (``kexec_purgatory``), replayed: kexec_file_load.
    KERNEL_BLOB = "kexec_purgatory"
    #: No symbols (kexec-tools' purgatory): found by scanning the segment.
    SCAN = "scan"

    def __str__(self) -> str:
        return self.value


class RegsLayout(str, enum.Enum):
    """Which ``entry64_regs`` register order purgatory uses."""

    KERNEL = "kexec_entry64_regs"
    KEXEC_TOOLS = "kexec-tools entry64_regs"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ShaRegion:
    """One non-empty slot of ``purgatory_sha_regions``."""

    slot: int
    start: int
    len: int
    #: Index of the segment the region covers (exactly, else by its start).
    segment: Optional[int]
    role: Optional[Role]
    #: The region is exactly ``(segment.mem, segment.memsz)``.
    exact: bool


@dataclass(frozen=True)
class EntryRegs:
    """Registers purgatory's ``entry64`` loads before jumping to ``rip``."""

    layout: RegsLayout
    address: int
    rax: int
    rbx: int
    rcx: int
    rdx: int
    rsi: int
    rdi: int
    rsp: int
    rbp: int
    r8: int
    r9: int
    r10: int
    r11: int
    r12: int
    r13: int
    r14: int
    r15: int
    rip: int


@dataclass(frozen=True)
class PurgatoryVariable:
    """A variable of kexec-tools' purgatory that says where it jumps (ppc64
    ``kernel``, ``dt_offset``; arm64 ``arm64_kernel_entry``,
    ``arm64_dtb_addr``): what it holds and which segment it must point at."""

    name: str
    address: int
    value: int
    #: The role of the segment whose start it must hold.
    points_at: Role


@dataclass(frozen=True)
class CmdLine:
    """The capture kernel's command line, from its boot params."""

    params_mem: int
    #: ``ext_cmd_line_ptr << 32 | cmd_line_ptr``; None if unreadable.
    address: Optional[int]
    text: Optional[str]
    #: The last ``elfcorehdr=`` argument (the kernel's early_param keeps the
    #: last) and its parsed address.
    elfcorehdr_arg: Optional[str]
    elfcorehdr: Optional[int]
    unread: Optional[Unread] = None


@dataclass(frozen=True)
class Purgatory:
    """What the loader patched into purgatory, and where it was found."""

    source: Source
    #: Why the purgatory could not be fully decoded.
    unread: Optional[Unread]
    #: Index of the purgatory segment (the one holding ``image->start``).
    segment: Optional[int]
    segment_mem: Optional[int] = None
    segment_memsz: Optional[int] = None
    blob_size: Optional[int] = None
    #: Replay of the kernel's section placement (kernel blob only).
    replay_start: Optional[int] = None
    replay_rule: Optional[str] = None
    replay_bufsz: Optional[int] = None
    replay_memsz: Optional[int] = None
    #: Physical addresses of the purgatory symbols that were resolved.
    symbols: Tuple[Tuple[str, int], ...] = ()
    regions_address: Optional[int] = None
    regions: Tuple[ShaRegion, ...] = ()
    digest_address: Optional[int] = None
    #: How ``digest_address`` was found.
    digest_source: Optional[str] = None
    stored_digest: Optional[str] = None
    regs: Optional[EntryRegs] = None
    regs_unread: Optional[Unread] = None
    stack_end: Optional[int] = None
    #: kexec_load scan: whether the table found leaves out what
    #: ``kexec --hotplug`` leaves out (the elfcorehdr; on ppc64 the FDT too).
    elfcorehdr_excluded: Optional[bool] = None
    #: kexec-tools' purgatory variables (architectures without a register
    #: block), read where the build keeps them.
    variables: Tuple[PurgatoryVariable, ...] = ()
    variables_unread: Optional[Unread] = None
    cmdline: Optional[CmdLine] = None

    def symbol(self, name: str) -> Optional[int]:
        for sym, address in self.symbols:
            if sym == name:
                return address
        return None


class DigestStatus(str, enum.Enum):
    """Whether purgatory's check would pass."""

    MATCH = "match"
    MISMATCH = "mismatch"
    #: Some hashed bytes are not in the target, or nothing to compare.
    UNVERIFIABLE = "unverifiable"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class DigestVerdict:
    """The digest verdict: the stored digest against the recomputed one."""

    status: DigestStatus
    stored: Optional[str]
    computed: Optional[str]
    bytes_hashed: int
    #: Inclusive ``(start, end)`` physical ranges the target lacks.
    missing: Tuple[Tuple[int, int], ...] = ()
    #: Where the stored digest was read (kexec_load: may be found by search).
    digest_address: Optional[int] = None
    reason: Optional[str] = None


@dataclass(frozen=True)
class CpuNote:
    """A possible CPU, its ``crash_notes`` address and whether it is up."""

    cpu: int
    #: Physical address of this CPU's ``crash_notes`` (what the elfcorehdr
    #: PT_NOTE must hold), or None when it could not be translated.
    paddr: Optional[int]
    present: bool
    online: bool


@dataclass(frozen=True)
class KernelText:
    """The running kernel's text, as its elfcorehdr PT_LOAD must map it."""

    #: ``_text`` (KASLR-shifted, what the PT_LOAD's p_vaddr holds).
    vaddr: int
    #: ``__pa_symbol(_text)``.
    paddr: int
    #: ``_end - _text`` at link time.
    size: int
    #: Where the size came from.
    size_source: str


@dataclass(frozen=True)
class MemoryBlock:
    """A memory hotplug block (drivers/base/memory.c) and its state."""

    block_id: int
    start: int
    #: Inclusive.
    end: int
    state: str

    @property
    def online(self) -> bool:
        return self.state == "MEM_ONLINE"


@dataclass(frozen=True)
class LogLine:
    """A kexec/crash line of the kernel log."""

    seq: int
    timestamp_ns: int
    level: int
    text: str


@dataclass(frozen=True)
class MachineState:
    """What the elfcorehdr must describe, read from the target."""

    #: The architecture, as :func:`drgn_crashhp.arch.arch_named` knows it
    #: (drgn's ``Architecture`` member name).
    arch: str = DEFAULT_ARCH
    possible_cpus: Optional[Tuple[int, ...]] = None
    present_cpus: Optional[Tuple[int, ...]] = None
    online_cpus: Optional[Tuple[int, ...]] = None
    nr_cpu_ids: Optional[int] = None
    #: One per possible CPU, ascending.
    cpu_notes: Tuple[CpuNote, ...] = ()
    #: ``sizeof(note_buf_t)``.
    note_size: Optional[int] = None
    #: ``(paddr_vmcoreinfo_note(), VMCOREINFO_NOTE_SIZE)``.
    vmcoreinfo: Optional[Tuple[int, int]] = None
    kernel_text: Optional[KernelText] = None
    #: ``PAGE_OFFSET`` (``page_offset_base`` with dynamic memory layout):
    #: the direct map's virtual minus physical address.
    page_offset: Optional[int] = None
    #: The kernel's ``PAGE_SIZE``; None when only the architecture's usual
    #: value is known.
    page_size: Optional[int] = None
    #: walk_system_ram_res(0, -1) result, inclusive ranges in walk order.
    system_ram: Optional[Tuple[Range, ...]] = None
    #: Why the iomem walk stopped early (cycle, node cap, fault), if it did.
    iomem_problem: Optional[str] = None
    #: ``crashk_res`` as an inclusive range; ``(0, 0)`` when not reserved.
    crashk_res: Optional[Range] = None
    crashk_low_res: Optional[Range] = None
    #: ``crashk_cma_ranges[0:crashk_cma_cnt]``; None when the kernel has no
    #: CMA crash reservations (before v6.17).
    crashk_cma: Optional[Tuple[Range, ...]] = None
    #: ``memblock.memory`` regions as ``for_each_mem_range()`` yields them
    #: (inclusive), where the kernel keeps memblock and rebuilds the header
    #: from it (powerpc); None elsewhere.
    memblock: Optional[Tuple[Range, ...]] = None
    #: Firmware regions the kernel adds to a rebuilt header (powerpc: RTAS
    #: ``rtas.base``/``rtas.size``, OPAL ``opal.base``/``opal.size``).
    firmware_ranges: Tuple[Range, ...] = ()
    #: None when the kernel has no ``memory_blocks`` (no memory hotplug).
    memory_blocks: Optional[Tuple[MemoryBlock, ...]] = None
    memory_block_size: Optional[int] = None
    #: How ``memory_block.state`` was decoded ("enum memory_block_state" or
    #: "bit flags").
    memory_block_encoding: Optional[str] = None
    #: kexec/crash lines of the kernel log, oldest first.
    log: Optional[Tuple[LogLine, ...]] = None
    #: ``__kexec_lock.counter`` (1 while a load, unload or update runs).
    kexec_lock: Optional[int] = None
    #: ``panic_cpu`` (-1 unless the kernel panicked; then __crash_kexec()
    #: holds the kexec lock).
    panic_cpu: Optional[int] = None
    #: Kconfig values relevant to sizing, when CONFIG_IKCONFIG is built in.
    kconfig: Tuple[Tuple[str, str], ...] = ()
    #: Every field that could not be read, and why.
    unknown: Tuple[Unread, ...] = ()

    def note_of(self, cpu: int) -> Optional[CpuNote]:
        for n in self.cpu_notes:
            if n.cpu == cpu:
                return n
        return None

    def why_unknown(self, name: str) -> Optional[str]:
        for u in self.unknown:
            if u.what == name:
                return u.reason
        return None


@dataclass(frozen=True)
class DumpLoad:
    """A PT_LOAD of the dump file itself."""

    paddr: int
    vaddr: int
    memsz: int
    filesz: int

    @property
    def end(self) -> int:
        return self.paddr + self.memsz - 1


@dataclass(frozen=True)
class DumpHeaders:
    """The dump file's own headers and who wrote it."""

    path: str
    #: "kdump" (an ELF copy of /proc/vmcore), "makedumpfile", "qemu" or
    #: "unknown".
    producer: str
    #: What decided the producer.
    evidence: str
    note_names: Tuple[str, ...] = ()
    loads: Tuple[DumpLoad, ...] = ()
    #: kdump-compressed (diskdump) files: ``makedumpfile -d`` level, and the
    #: physical ranges of the 1st bitmap (what the capture kernel's
    #: /proc/vmcore described, up to ``max_mapnr``) and of the 2nd (the pages
    #: kept after filtering).
    dump_level: Optional[int] = None
    max_mapnr: Optional[int] = None
    described: Optional[Tuple[Range, ...]] = None
    dumped: Optional[Tuple[Range, ...]] = None
    #: The file is in makedumpfile's flattened format (``makedumpfile -F``,
    #: as kdump-tools saves it); the fields above are those of the dump
    #: it rearranges to.
    flattened: bool = False


@dataclass(frozen=True)
class RegionsHash:
    """The regions' bytes hashed as purgatory will (no verdict)."""

    #: SHA-256 of the regions in slot order; None when bytes were missing
    #: or nothing was hashed.
    computed: Optional[str]
    bytes_hashed: int
    #: Inclusive ``(start, end)`` physical ranges the target lacks.
    missing: Tuple[Range, ...] = ()
    #: kexec_load: where the computed digest was found in the purgatory
    #: segment when it is not at the usual place.
    found_at: Optional[int] = None
    #: Why nothing could be hashed.
    reason: Optional[str] = None


class ImageProblemKind(str, enum.Enum):
    """Why there is no image to check."""

    #: The pointer is NULL: nothing is loaded.
    NULL = "null"
    #: The pointer or the ``struct kimage`` is not in the target.
    UNREADABLE = "unreadable"
    #: The kernel's debug info lacks the symbol or a member.
    MISSING_INFO = "missing-info"

    def __str__(self) -> str:
        return self.value


class DebugInfo(str, enum.Enum):
    """Where a program's types and symbols came from."""

    DWARF = "dwarf"
    #: BTF from the kernel's memory or a file, symbols from kallsyms.
    BTF_KALLSYMS = "btf+kallsyms"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ImageProblem:
    """Why there is no image to check."""

    kind: ImageProblemKind
    message: str
    address: Optional[int] = None


@dataclass(frozen=True)
class Facts:
    """Everything one report needs, read once from the target."""

    target: str
    #: ``kexec_crash_image`` or ``kexec_image``.
    symbol: str
    state: MachineState
    dump: Optional[DumpHeaders] = None
    image: Optional[KImage] = None
    image_problem: Optional[ImageProblem] = None
    elfcorehdr: Optional[ElfCoreHdrRead] = None
    purgatory: Optional[Purgatory] = None
    #: The purgatory regions hashed as purgatory will hash them; None when
    #: the digest was not recomputed (--no-digest).
    hashed: Optional[RegionsHash] = None
    debuginfo: DebugInfo = DebugInfo.DWARF
    #: A live target whose crash image kept changing while it was read: the
    #: other facts may mix two moments.
    changing: Optional[Unread] = None
    #: The FDT segment (kexec_load images on ppc64 and arm64); None when
    #: the image has none or was not read.
    fdt: Optional[FdtRead] = None
