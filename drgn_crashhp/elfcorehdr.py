"""
elfcorehdr
----------

Decode the ELF core header that the capture kernel reads to build
/proc/vmcore (written by crash_prepare_elf64_headers(), kernel/crash_core.c,
or by kexec-tools' kexec/crashdump-elf.c), and rebuild the one the kernel
would write now.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from drgn import Architecture, Program
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.kimage import KImage, Segment
from drgn_crashhp.physmem import Unreadable, read_phys

__all__ = (
    "EHDR_SIZE",
    "PHDR_SIZE",
    "START_KERNEL_MAP",
    "ElfCoreHdr",
    "ElfCoreHdrRead",
    "Load",
    "Malformed",
    "Note",
    "build_elfcorehdr",
    "check_elfcorehdr",
    "decode_elfcorehdr",
    "headroom",
    "read_elfcorehdr",
)

EHDR_SIZE = 64
PHDR_SIZE = 56
EM_X86_64 = 62
ET_CORE = 4
PT_LOAD, PT_NOTE = 1, 4
#: include/uapi/linux/elf.h: e_phnum escape value; the kernel never writes more.
PN_XNUM = 0xFFFF
PF_RWX = 7
_EM = {
    Architecture.X86_64: EM_X86_64,
    Architecture.AARCH64: 183,
    Architecture.PPC64: 21,
    Architecture.S390X: 22,
    Architecture.RISCV64: 243,
}
#: x86_64 __START_KERNEL_map (arch/x86/include/asm/page_64_types.h): the
#: kernel text PT_LOAD's p_vaddr lies above it, RAM PT_LOADs (direct map) below.
START_KERNEL_MAP = 0xFFFFFFFF80000000
#: The largest header the kernel can write: Ehdr + (PN_XNUM - 1) Phdrs. Reads
#: of a segment are capped here, whatever memsz claims.
MAX_ELFCOREHDR = EHDR_SIZE + (PN_XNUM - 1) * PHDR_SIZE


class Malformed(Exception):
    """The bytes are not an ELF core header the capture kernel would accept."""


@dataclass(frozen=True)
class Note:
    #: Index of the program header.
    index: int
    paddr: int
    size: int
    offset: int


@dataclass(frozen=True)
class Load:
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
        return self.paddr + self.size - 1


@dataclass(frozen=True)
class ElfCoreHdr:
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


def decode_elfcorehdr(
    data: bytes, capacity: Optional[int] = None, machine: Optional[int] = None
) -> ElfCoreHdr:
    """
    Decode an elfcorehdr.

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
    # The capture kernel reads only the Ehdr and the Phdrs (fs/proc/vmcore.c);
    # section fields are 0 in every header the kernel or kexec-tools writes.
    # Hide them from pyelftools, which would otherwise follow e_shoff.
    ehdr = bytearray(data[:EHDR_SIZE])
    ehdr[0x28:0x30] = bytes(8)  # e_shoff
    ehdr[0x3A:0x40] = bytes(6)  # e_shentsize, e_shnum, e_shstrndx
    try:
        elf = ELFFile(io.BytesIO(bytes(ehdr)))
        hdr = elf.header
    except ELFError as e:
        raise Malformed(f"not a valid ELF header: {e}") from e
    if elf.elfclass != 64:
        raise Malformed(f"ELF class {elf.elfclass}, expected 64")
    if not elf.little_endian:
        raise Malformed("big-endian ELF, expected little-endian")
    if hdr["e_type"] != "ET_CORE":
        raise Malformed(f"e_type {hdr['e_type']}, expected ET_CORE")
    e_machine = data[18] | data[19] << 8
    if machine is not None and e_machine != machine:
        raise Malformed(f"e_machine {e_machine}, expected {machine}")
    phnum, phoff, phentsize = hdr["e_phnum"], hdr["e_phoff"], hdr["e_phentsize"]
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
    phdr = elf.structs.Elf_Phdr
    try:
        for i in range(phnum):
            at = phoff + i * PHDR_SIZE
            # Parse the Phdr alone, not a pyelftools segment object: those
            # follow section tables (PT_DYNAMIC) that a core header lacks.
            h = phdr.parse(data[at:at + PHDR_SIZE])
            if h["p_type"] == "PT_NOTE":
                notes.append(Note(i, h["p_paddr"], h["p_filesz"], h["p_offset"]))
            elif h["p_type"] == "PT_LOAD":
                loads.append(
                    Load(i, h["p_paddr"], h["p_vaddr"], h["p_memsz"],
                         h["p_offset"], h["p_filesz"])
                )
            else:
                ptype = h["p_type"]
                other.append(ptype if isinstance(ptype, int) else -1)
    except (ELFError, struct.error, ValueError, OverflowError) as e:
        raise Malformed(f"unreadable program header: {e}") from e
    return ElfCoreHdr(
        machine=e_machine,
        phnum=phnum,
        notes=tuple(notes),
        loads=tuple(loads),
        used=used,
        capacity=capacity,
        other=tuple(other),
    )


def headroom(hdr: ElfCoreHdr) -> int:
    """How many more program headers fit in the segment."""
    return max(0, (hdr.capacity - hdr.used) // PHDR_SIZE)


_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")


def build_elfcorehdr(
    notes: Sequence[Tuple[int, int]],
    kernel_text: Optional[Tuple[int, int, int]],
    ram: Sequence[Tuple[int, int]],
    page_offset: int,
    machine: int = EM_X86_64,
) -> bytes:
    """
    Write an elfcorehdr exactly as crash_prepare_elf64_headers() does
    (kernel/crash_core.c, v6.6+; kernel/kexec_file.c before): one PT_NOTE per
    ``(paddr, size)`` in *notes* (CPU notes then vmcoreinfo), the kernel text
    PT_LOAD ``(paddr, vaddr, size)`` when given, then one PT_LOAD per inclusive
    RAM range ``(start, end)``, with ``p_vaddr = page_offset + start``.

    Only the used bytes are returned (the kernel copies ``elfsz`` bytes).
    """
    phnum = len(notes) + (1 if kernel_text else 0) + len(ram)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    out = bytearray(
        _EHDR.pack(ident, ET_CORE, machine, 1, 0, EHDR_SIZE, 0, 0,
                   EHDR_SIZE, PHDR_SIZE, phnum, 0, 0, 0)
    )
    for paddr, size in notes:
        out += _PHDR.pack(PT_NOTE, 0, paddr, 0, paddr, size, size, 0)
    if kernel_text:
        paddr, vaddr, size = kernel_text
        out += _PHDR.pack(PT_LOAD, PF_RWX, paddr, vaddr, paddr, size, size, 0)
    for start, end in ram:
        size = end - start + 1
        out += _PHDR.pack(PT_LOAD, PF_RWX, start, page_offset + start, start,
                          size, size, 0)
    return bytes(out)



@dataclass(frozen=True)
class ElfCoreHdrRead:
    """What reading the elfcorehdr segment gave."""

    segment: Optional[Segment]
    header: Optional[ElfCoreHdr] = None
    #: Why the header is not usable (malformed), if it is not.
    problem: Optional[str] = None
    #: ``(paddr, size)`` of bytes the target does not have.
    unreadable: Optional[Tuple[int, int]] = None
    #: The used bytes (Ehdr + Phdrs), for a byte-for-byte comparison.
    data: bytes = field(default=b"", repr=False, metadata={"json": False})


def read_elfcorehdr(prog: Program, image: KImage) -> ElfCoreHdrRead:
    """Read and decode the elfcorehdr segment of *image* from physical memory."""
    seg = image.elfcorehdr
    if seg is None:
        return ElfCoreHdrRead(None, problem=image.elfcorehdr_source)
    size = min(seg.memsz, MAX_ELFCOREHDR)
    try:
        data = read_phys(prog, seg.mem, size, "elfcorehdr")
    except Unreadable as e:
        return ElfCoreHdrRead(seg, unreadable=(e.address, e.size))
    machine = _EM.get(prog.platform.arch) if prog.platform else None
    try:
        hdr = decode_elfcorehdr(data, seg.memsz, machine)
    except Malformed as e:
        return ElfCoreHdrRead(seg, problem=str(e))
    return ElfCoreHdrRead(seg, header=hdr, data=data[: hdr.used])


def check_elfcorehdr(image: KImage, read: ElfCoreHdrRead) -> List[Finding]:
    """Findings about the elfcorehdr segment itself (not its contents vs now)."""
    if read.segment is None:
        return [finding("CHP010", f"no elfcorehdr segment: {read.problem}",
                        source=image.elfcorehdr_source)]
    seg = read.segment
    if read.unreadable is not None:
        address, size = read.unreadable
        return [finding(
            "CHP011",
            f"elfcorehdr segment {seg.index} at {seg.mem:#x} is not in this target",
            segment=seg.index, address=address, size=size,
        )]
    if read.header is None:
        return [finding("CHP012", f"elfcorehdr segment {seg.index} at {seg.mem:#x}: "
                        f"{read.problem}", segment=seg.index, reason=read.problem)]
    hdr = read.header
    out = []
    ram = sorted(
        (ld for ld in hdr.loads if ld.vaddr < START_KERNEL_MAP), key=lambda ld: ld.index
    )
    for a, b in zip(ram, ram[1:]):
        if b.paddr <= a.end:
            why = "overlaps" if b.end >= a.paddr else "comes before"
            out.append(finding(
                "CHP014", f"PT_LOAD {b.index} [{b.paddr:#x}-{b.end:#x}] {why} "
                f"PT_LOAD {a.index} [{a.paddr:#x}-{a.end:#x}]",
                first=a.index, second=b.index))
            break
    return out + [finding(
        "CHP013",
        f"elfcorehdr at {seg.mem:#x} (segment {seg.index}, found by "
        f"{image.elfcorehdr_source}): {len(hdr.notes)} notes, {len(hdr.loads)} "
        f"loads, {hdr.used} of {hdr.capacity} bytes used",
        segment=seg.index, notes=len(hdr.notes), loads=len(hdr.loads),
        used=hdr.used, capacity=hdr.capacity,
    )]
