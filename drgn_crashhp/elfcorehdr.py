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
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

__all__ = (
    "EHDR_SIZE",
    "PHDR_SIZE",
    "ElfCoreHdr",
    "Load",
    "Malformed",
    "Note",
    "build_elfcorehdr",
    "decode_elfcorehdr",
    "headroom",
)

EHDR_SIZE = 64
PHDR_SIZE = 56
EM_X86_64 = 62
#: include/uapi/linux/elf.h: e_phnum escape value; the kernel never writes more.
PN_XNUM = 0xFFFF
PF_RWX = 7


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


def decode_elfcorehdr(data: bytes, capacity: Optional[int] = None) -> ElfCoreHdr:
    """
    Decode an elfcorehdr.

    :param data: The segment's bytes (at most its memsz).
    :param capacity: The segment's memsz; defaults to ``len(data)``.
    :raises Malformed: with a one-line reason.
    """
    capacity = len(data) if capacity is None else capacity
    if len(data) < EHDR_SIZE:
        raise Malformed(f"{len(data)} bytes is shorter than an ELF header")
    if data[:4] != b"\x7fELF":
        raise Malformed(f"bad ELF magic {data[:4].hex()}")
    try:
        elf = ELFFile(io.BytesIO(data))
        hdr = elf.header
    except ELFError as e:
        raise Malformed(f"not a valid ELF header: {e}") from e
    if elf.elfclass != 64:
        raise Malformed(f"ELF class {elf.elfclass}, expected 64")
    if not elf.little_endian:
        raise Malformed("big-endian ELF, expected little-endian")
    if hdr["e_type"] != "ET_CORE":
        raise Malformed(f"e_type {hdr['e_type']}, expected ET_CORE")
    machine = data[18] | data[19] << 8
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
    try:
        for i, ph in enumerate(elf.iter_segments()):
            h = ph.header
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
    except (ELFError, struct.error) as e:
        raise Malformed(f"unreadable program header: {e}") from e
    return ElfCoreHdr(
        machine=machine,
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
PT_LOAD, PT_NOTE = 1, 4


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
        _EHDR.pack(ident, ET_CORE_TYPE, machine, 1, 0, EHDR_SIZE, 0, 0,
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


ET_CORE_TYPE = 4
