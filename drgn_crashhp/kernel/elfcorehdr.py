"""
The elfcorehdr format
---------------------

Decode the ELF core header the capture kernel reads to build /proc/vmcore
(fs/proc/vmcore.c reads only the Ehdr and the Phdrs), write one exactly as
``crash_prepare_elf64_headers()`` does (kernel/crash_core.c, v6.6+;
kernel/kexec_file.c before), and rebuild the one x86
``prepare_elf_headers()`` would write now (arch/x86/kernel/crash.c).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Sequence, Tuple

from drgn_crashhp.arch import arch_named
from drgn_crashhp.facts import ElfCoreHdr, Load, MachineState, Note
from drgn_crashhp.kernel.exclusions import (
    crash_exclude_mem_range,
    excluded_ranges,
    memblock_crash_ranges,
)
from drgn_crashhp.kernel.notes import NoteCpus
from drgn_crashhp.kernel.ranges import Range, align

__all__ = (
    "EHDR_SIZE",
    "ELF_CORE_HEADER_ALIGN",
    "ET_CORE",
    "MAX_ELFCOREHDR",
    "PHDR_SIZE",
    "RebuiltHeader",
    "Malformed",
    "build_elfcorehdr",
    "decode_elfcorehdr",
    "is_elf_core",
    "rebuild_elfcorehdr",
)


EHDR_SIZE = 64


PHDR_SIZE = 56


ET_CORE = 4


PT_LOAD, PT_NOTE = 1, 4


#: include/uapi/linux/elf.h: e_phnum escape value; the kernel never writes more.
PN_XNUM = 0xFFFF


PF_RWX = 7


#: The largest header the kernel can write: Ehdr + (PN_XNUM - 1) Phdrs. Reads
#: of a segment are capped here, whatever memsz claims.
MAX_ELFCOREHDR = EHDR_SIZE + (PN_XNUM - 1) * PHDR_SIZE


#: include/linux/crash_core.h
ELF_CORE_HEADER_ALIGN = 4096


#: include/uapi/linux/elf.h: e_ident[EI_CLASS], e_ident[EI_DATA], e_type.
ELFCLASS64 = 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
_ELF_CLASSES = {1: 32, 2: 64}
_ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}


class Malformed(Exception):
    """The bytes are not an ELF core header the capture kernel would accept."""


_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")


_PHDR = struct.Struct("<IIQQQQQQ")


def decode_elfcorehdr(
    data: bytes, capacity: Optional[int] = None, machine: Optional[int] = None
) -> ElfCoreHdr:
    """
    Decode an elfcorehdr with the layouts :func:`build_elfcorehdr` writes.
    Only the Ehdr and the Phdrs are read, as the capture kernel reads them
    (fs/proc/vmcore.c); section fields are ignored (0 in every header the
    kernel or kexec-tools writes).

    :param data: The segment's bytes (at most its memsz).
    :param capacity: The segment's memsz; defaults to ``len(data)``.
    :param machine: The ``e_machine`` the capture kernel expects, if known.
    :raises Malformed: with a one-line reason.
    """
    capacity = len(data) if capacity is None else capacity
    if len(data) < EHDR_SIZE:
        raise Malformed(f"{len(data)} bytes is shorter than an ELF header")
    if data[:4] != b"\x7fELF":
        raise Malformed(f"bad ELF magic {data[:4].hex()}")
    ident = data[:16]
    if ident[4] != ELFCLASS64:
        elf_class = _ELF_CLASSES.get(ident[4], ident[4])
        raise Malformed(f"ELF class {elf_class}, expected 64")
    if ident[5] != ELFDATA2LSB:
        raise Malformed(
            "big-endian ELF, expected little-endian"
            if ident[5] == ELFDATA2MSB
            else f"ELF data encoding {ident[5]}, expected little-endian"
        )
    (
        _,
        e_type,
        e_machine,
        _version,
        _entry,
        phoff,
        _shoff,
        _flags,
        _ehsize,
        phentsize,
        phnum,
        _shentsize,
        _shnum,
        _shstrndx,
    ) = _EHDR.unpack_from(data)
    if e_type != ET_CORE:
        raise Malformed(f"e_type {_ET_NAMES.get(e_type, e_type)}, expected ET_CORE")
    if machine is not None and e_machine != machine:
        raise Malformed(f"e_machine {e_machine}, expected {machine}")
    if phentsize != PHDR_SIZE:
        raise Malformed(f"e_phentsize {phentsize}, expected {PHDR_SIZE}")
    if phnum == 0:
        raise Malformed("e_phnum is 0")
    if phnum >= PN_XNUM:
        raise Malformed(f"e_phnum {phnum:#x} is the PN_XNUM escape")
    used = phoff + phnum * PHDR_SIZE
    if phoff < EHDR_SIZE or used > min(capacity, len(data)):
        raise Malformed(
            f"program headers [{phoff:#x}, {used:#x}) run past the segment "
            f"({min(capacity, len(data)):#x} bytes)"
        )
    notes: List[Note] = []
    loads: List[Load] = []
    other: List[int] = []
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _ = _PHDR.unpack_from(
            data, phoff + i * PHDR_SIZE
        )
        if p_type == PT_NOTE:
            notes.append(Note(i, p_paddr, p_filesz, p_offset))
        elif p_type == PT_LOAD:
            loads.append(Load(i, p_paddr, p_vaddr, p_memsz, p_offset, p_filesz))
        else:
            other.append(p_type)
    return ElfCoreHdr(
        machine=e_machine,
        phnum=phnum,
        notes=tuple(notes),
        loads=tuple(loads),
        used=used,
        capacity=capacity,
        other=tuple(other),
    )


def build_elfcorehdr(
    notes: Sequence[Tuple[int, int]],
    kernel_text: Optional[Tuple[int, int, int]],
    ram: Sequence[Tuple[int, int]],
    page_offset: int,
    machine: int,
    offsets: Optional[Mapping[int, int]] = None,
) -> bytes:
    """
    Write an elfcorehdr exactly as crash_prepare_elf64_headers() does
    (kernel/crash_core.c, v6.6+; kernel/kexec_file.c before): one PT_NOTE per
    ``(paddr, size)`` in *notes* (CPU notes then vmcoreinfo), the kernel text
    PT_LOAD ``(paddr, vaddr, size)`` when given, then one PT_LOAD per inclusive
    RAM range ``(start, end)``, with ``p_vaddr = page_offset + start``.

    *offsets* maps a RAM range's start to the ``p_offset`` an architecture
    sets afterwards (powerpc's backup region).

    Only the used bytes are returned (the kernel copies ``elfsz`` bytes).
    """
    offsets = offsets or {}
    phnum = len(notes) + (1 if kernel_text else 0) + len(ram)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    out = bytearray(
        _EHDR.pack(
            ident,
            ET_CORE,
            machine,
            1,
            0,
            EHDR_SIZE,
            0,
            0,
            EHDR_SIZE,
            PHDR_SIZE,
            phnum,
            0,
            0,
            0,
        )
    )
    for paddr, size in notes:
        out += _PHDR.pack(PT_NOTE, 0, paddr, 0, paddr, size, size, 0)
    if kernel_text:
        paddr, vaddr, size = kernel_text
        out += _PHDR.pack(PT_LOAD, PF_RWX, paddr, vaddr, paddr, size, size, 0)
    for start, end in ram:
        size = end - start + 1
        out += _PHDR.pack(
            PT_LOAD,
            PF_RWX,
            offsets.get(start, start),
            page_offset + start,
            start,
            size,
            size,
            0,
        )
    return bytes(out)


@dataclass(frozen=True)
class RebuiltHeader:
    """The elfcorehdr the kernel would write now (or why it cannot)."""

    note_cpus: Tuple[int, ...]
    #: ``(paddr, size)``: CPU notes, then the vmcoreinfo note.
    notes: Tuple[Tuple[int, int], ...]
    #: ``(paddr, vaddr, size)`` of the kernel text PT_LOAD.
    kernel_text: Optional[Tuple[int, int, int]]
    #: RAM ranges after the exclusions, in the kernel's order.
    ram: Tuple[Range, ...]
    max_nr_ranges: int
    #: crash_prepare_elf64_headers()'s count: CPUs + 1 + ranges + 1.
    nr_phdr: int
    #: ``ALIGN(Ehdr + nr_phdr * Phdr, 4096)``: what must fit in memsz.
    elfsz: int
    #: Why the kernel would fail to build it now ("-ENOMEM ..."), if so.
    error: Optional[str] = None
    #: State fields the rebuild lacked (no bytes then).
    missing: Tuple[str, ...] = ()
    #: The used bytes (Ehdr + Phdrs), as build_elfcorehdr() writes them.
    data: bytes = field(default=b"", repr=False, metadata={"json": False})


def rebuild_elfcorehdr(
    state: MachineState,
    cpus: NoteCpus = NoteCpus.POSSIBLE,
    backup_offset: Optional[int] = None,
) -> RebuiltHeader:
    """
    Rebuild the elfcorehdr as the kernel would now: x86
    ``prepare_elf_headers()``, or powerpc ``update_crash_elfcorehdr()``
    (its memblock ranges, no kernel map, the backup region's ``p_offset``
    set to *backup_offset* by ``sync_backup_region_phdr()``).

    :param cpus: :attr:`NoteCpus.POSSIBLE` (v6.6+ ``for_each_possible_cpu``)
        or :attr:`NoteCpus.PRESENT` (before v6.6).
    :param backup_offset: ``image->arch.backup_start`` (powerpc): the backup
        segment, which machine_kexec_post_load() read from the loaded header.
    """
    arch = arch_named(state.arch)
    from_memblock = arch.crash_ranges == "memblock"
    # prepare_elf_headers(): need_kernel_map = IS_ENABLED(CONFIG_X86_64);
    # update_crash_elfcorehdr(): false.
    need_kernel_map = not from_memblock and arch.start_kernel_map is not None
    possible = cpus == NoteCpus.POSSIBLE
    note_cpus = tuple((state.possible_cpus if possible else state.present_cpus) or ())
    source = (
        ("memblock", state.memblock)
        if from_memblock
        else ("system_ram", state.system_ram)
    )
    missing = [
        name
        for name, value in (
            source,
            ("page_offset", state.page_offset),
            ("vmcoreinfo", state.vmcoreinfo),
            ("note_size", state.note_size),
            ("crashk_res", state.crashk_res),
            (
                f"{cpus}_cpus",
                state.possible_cpus if possible else state.present_cpus,
            ),
        )
        if value is None
    ]
    if not from_memblock and state.iomem_problem:
        missing.append("system_ram")
    if from_memblock and arch.backup_region is None:
        missing.append("backup_region")
    if need_kernel_map and state.kernel_text is None:
        missing.append("kernel_text")
    notes_by_cpu = {n.cpu: n.paddr for n in state.cpu_notes}
    if any(notes_by_cpu.get(c) is None for c in note_cpus):
        missing.append("cpu_notes")
    if from_memblock:
        ram, max_nr, error = _memblock_ranges(state)
    else:
        ram, max_nr, error = _resource_ranges(state)
    # crash_prepare_elf64_headers(): CPUs + vmcoreinfo + ranges, and the
    # kernel map where x86 asks for it.
    nr_phdr = len(note_cpus) + 1 + len(ram) + (not from_memblock)
    elfsz = align(EHDR_SIZE + nr_phdr * PHDR_SIZE, ELF_CORE_HEADER_ALIGN)
    text = None
    if not from_memblock and state.kernel_text is not None:
        t = state.kernel_text
        text = (t.paddr, t.vaddr, t.size)
    notes: Tuple[Tuple[int, int], ...] = ()
    data = b""
    if not missing and error is None:
        assert state.note_size is not None and state.vmcoreinfo is not None
        notes = tuple((notes_by_cpu[c] or 0, state.note_size) for c in note_cpus)
        notes += (state.vmcoreinfo,)
        data = build_elfcorehdr(
            notes,
            text if need_kernel_map else None,
            ram,
            state.page_offset or 0,
            arch.elf_machine,
            {arch.backup_region[0]: backup_offset}
            if from_memblock
            and arch.backup_region is not None
            and backup_offset is not None
            else None,
        )
    return RebuiltHeader(
        note_cpus=note_cpus,
        notes=notes,
        kernel_text=text,
        ram=tuple(ram),
        max_nr_ranges=max_nr,
        nr_phdr=nr_phdr,
        elfsz=elfsz,
        error=error,
        missing=tuple(dict.fromkeys(missing)),
        data=data,
    )


def _resource_ranges(
    state: MachineState,
) -> Tuple[Tuple[Range, ...], int, Optional[str]]:
    """x86: the System RAM walk less elf_header_exclude_ranges(), in a list
    of fill_up_crash_elf_data()'s size; with the error of a split that
    finds no free slot."""
    walked = tuple(state.system_ram or ())
    # fill_up_crash_elf_data(): room for the walk plus 2 splits; v6.17 adds
    # one more and one per CMA range.
    extra = 2 if state.crashk_cma is None else 3 + len(state.crashk_cma)
    max_nr = len(walked) + extra
    ram, err = walked, 0
    for _, (s, e) in excluded_ranges(state):
        ram, err = crash_exclude_mem_range(ram, max_nr, s, e)
        if err:
            return (
                ram,
                max_nr,
                f"-ENOMEM: crash_exclude_mem_range() needs a free slot to split "
                f"a range (max_nr_ranges = {max_nr})",
            )
    return ram, max_nr, None


def _memblock_ranges(
    state: MachineState,
) -> Tuple[Tuple[Range, ...], int, Optional[str]]:
    """powerpc: get_crash_memory_ranges(), whose list grows as needed."""
    backup = arch_named(state.arch).backup_region
    if state.memblock is None or not state.crashk_res or backup is None:
        return (), 0, None
    ram, err = memblock_crash_ranges(
        state.memblock, state.crashk_res, state.firmware_ranges, backup
    )
    error = "-ENOMEM: crash_exclude_mem_range()" if err else None
    return ram, len(ram), error


def is_elf_core(head: Optional[bytes]) -> bool:
    """Whether *head* starts with an ELF ET_CORE header (what
    crash_handle_hotplug_event() looks for at each segment start)."""
    return (
        head is not None
        and head[:4] == b"\x7fELF"
        and len(head) >= 18
        and int.from_bytes(head[16:18], "little") == ET_CORE
    )
