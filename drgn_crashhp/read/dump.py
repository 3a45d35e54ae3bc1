"""
Dump file
---------

The headers of the dump file behind a program: its PT_LOADs and note
names, and who wrote it (kdump's /proc/vmcore, QEMU ``dump-guest-memory``,
makedumpfile). A kdump-written dump's PT_LOADs are the elfcorehdr's RAM
ranges that were current at the panic (fs/proc/vmcore.c).

How the producer is told apart (from the file alone):

- QEMU ``dump-guest-memory`` (ELF) writes a ``"QEMU"`` note per CPU
  (QEMUCPUState, qemu dump/dump.c); with ``paging=false`` every PT_LOAD has
  ``p_vaddr == 0``. It also contains the crash region, which kdump's never
  does.
- ``/proc/vmcore`` has ``"CORE"`` NT_PRSTATUS notes plus one
  ``"VMCOREINFO"`` note, and RAM PT_LOADs with ``p_vaddr = PAGE_OFFSET +
  p_paddr`` (crash_prepare_elf64_headers() wrote them).
- A kdump-compressed file (``"KDUMP   "`` signature, makedumpfile's
  diskdump.h; QEMU's ``kdump-*`` formats too) has no PT_LOADs: its 1st page
  bitmap is what /proc/vmcore described, its 2nd what was kept after
  filtering (kernel-notes §12). QEMU's carry its ``"QEMU"`` notes.
- makedumpfile's flattened format (``-F``, what kdump-tools saves in
  /var/crash) wraps either of the last two; it is read through
  :mod:`drgn_crashhp.read.flattened`, without rearranging it first, and
  gives the headers of the dump it rearranges to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import struct
from typing import BinaryIO, Iterator, List, Optional, Tuple

from drgn import Program, ProgramFlags

from drgn_crashhp.arch import Arch
from drgn_crashhp.facts import DumpHeaders, DumpLoad
from drgn_crashhp.read.fields import target_arch
from drgn_crashhp.read.flattened import FlattenedError, FlattenedFile, is_flattened

__all__ = ("bitmap_ranges", "read_dump_headers")

#: A bitmap larger than this (8 TiB of 4 KiB pages per bitmap) is not read.
MAX_BITMAP = 1 << 28
#: Bounds on the note section of a kdump-compressed header.
MAX_NOTES = 1 << 24


class _Corrupt(Exception):
    """A kdump-compressed header that cannot be what makedumpfile wrote."""


def bitmap_ranges(bitmap: bytes, nbits: int) -> Tuple[Tuple[int, int], ...]:
    """
    The runs of set bits among the first *nbits* of a page bitmap
    (bit ``i`` is byte ``i // 8``, bit ``i % 8``), as inclusive pfn ranges.
    Whole 0x00 and 0xff bytes are taken in runs, so a bitmap of mostly full
    or empty pages costs little.
    """
    out: List[Tuple[int, int]] = []
    start: Optional[int] = None

    def bit(pfn: int, is_set: bool) -> None:
        nonlocal start
        if is_set and start is None:
            start = pfn
        elif not is_set and start is not None:
            out.append((start, pfn - 1))
            start = None

    nbytes = min(len(bitmap), (nbits + 7) // 8)
    i = 0
    for m in re.finditer(rb"\x00+|\xff+", bitmap[:nbytes]):
        for byte_index in range(i, m.start()):
            for b in range(8):
                bit(byte_index * 8 + b, bool(bitmap[byte_index] >> b & 1))
        bit(m.start() * 8, m.group()[0] == 0xFF)
        i = m.end()
    for byte_index in range(i, nbytes):
        for b in range(8):
            bit(byte_index * 8 + b, bool(bitmap[byte_index] >> b & 1))
    bit(nbytes * 8, False)
    # Bits past nbits do not count.
    return tuple((s, min(e, nbits - 1)) for s, e in out if s < nbits)


def _note_names(raw: bytes, end: str = "<") -> List[str]:
    names: List[str] = []
    at = 0
    while at + 12 <= len(raw):
        namesz, descsz, _ = struct.unpack_from(end + "III", raw, at)
        at += 12
        name = raw[at : at + namesz].rstrip(b"\0").decode("latin-1")
        at += (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
        if namesz and name not in names:
            names.append(name)
    return names


#: include/uapi/linux/elf.h
PT_LOAD, PT_NOTE = 1, 4
PN_XNUM = 0xFFFF


def _read_elf(f: BinaryIO) -> Tuple[List[str], List[DumpLoad]]:
    """
    The note names and PT_LOADs of an ELF core file: its Ehdr and Phdrs and
    the PT_NOTE contents, with ``struct`` as the elfcorehdr decoder reads
    them (pyelftools is left to the purgatory object).

    :raises _Corrupt: for anything that is not a 64-bit ELF core file.
    """
    ehdr = f.read(64)
    if len(ehdr) < 64 or ehdr[:4] != b"\x7fELF":
        raise _Corrupt("not readable as ELF: no ELF header")
    if ehdr[4] != 2 or ehdr[5] not in (1, 2):
        raise _Corrupt(
            f"not readable as ELF: class {ehdr[4]}, data {ehdr[5]} (64-bit expected)"
        )
    end = "<" if ehdr[5] == 1 else ">"
    phoff, shoff = struct.unpack_from(end + "QQ", ehdr, 0x20)
    phentsize, phnum = struct.unpack_from(end + "HH", ehdr, 0x36)
    if phnum == PN_XNUM and shoff:
        # More program headers than e_phnum holds: section 0's sh_info.
        f.seek(shoff + 44)
        (phnum,) = struct.unpack(end + "I", f.read(4))
    if phentsize != 56:
        raise _Corrupt(f"not readable as ELF: e_phentsize {phentsize}")
    f.seek(phoff)
    table = f.read(phnum * 56)
    if len(table) < phnum * 56:
        raise _Corrupt("not readable as ELF: program headers past the end")
    names: List[str] = []
    loads: List[DumpLoad] = []
    note_bytes = 0
    for i in range(phnum):
        p_type, _, offset, vaddr, paddr, filesz, memsz, _ = struct.unpack_from(
            end + "IIQQQQQQ", table, i * 56
        )
        if p_type == PT_LOAD:
            loads.append(DumpLoad(paddr, vaddr, memsz, filesz))
        elif p_type == PT_NOTE:
            note_bytes += filesz
            if note_bytes > MAX_NOTES:
                raise _Corrupt(f"notes larger than {MAX_NOTES:#x} bytes")
            f.seek(offset)
            for name in _note_names(f.read(filesz), end):
                if name not in names:
                    names.append(name)
    return names, loads


def _read_diskdump(f: BinaryIO, path: str) -> DumpHeaders:
    """makedumpfile's diskdump_mod.h ``struct disk_dump_header`` (block 0),
    ``struct kdump_sub_header`` (block 1) and the two page bitmaps."""
    f.seek(0)
    head = f.read(464)
    if len(head) < 464:
        raise _Corrupt("kdump-compressed header is truncated")
    version = struct.unpack_from("<i", head, 8)[0]
    block_size, sub_hdr_size, bitmap_blocks, max_mapnr32 = struct.unpack_from(
        "<iiII", head, 428
    )
    if not 0 < block_size <= 1 << 20 or block_size & (block_size - 1):
        raise _Corrupt(f"kdump-compressed block size {block_size} is not a page size")
    if sub_hdr_size < 0:
        raise _Corrupt(f"kdump-compressed sub-header size {sub_hdr_size}")
    f.seek(block_size)
    sub = f.read(104)
    if len(sub) < 104:
        raise _Corrupt("kdump-compressed sub-header is truncated")
    dump_level = struct.unpack_from("<i", sub, 8)[0]
    offset_note, size_note = struct.unpack_from("<QQ", sub, 48)
    max_mapnr = struct.unpack_from("<Q", sub, 96)[0] if version >= 6 else max_mapnr32
    names: List[str] = []
    if 0 < size_note <= MAX_NOTES:
        f.seek(offset_note)
        names = _note_names(f.read(size_note))
    half = bitmap_blocks * block_size // 2
    if not 0 < half <= MAX_BITMAP or max_mapnr > half * 8:
        raise _Corrupt(
            f"kdump-compressed bitmaps of {bitmap_blocks} blocks cannot "
            f"describe max_mapnr {max_mapnr:#x}"
        )
    f.seek((1 + sub_hdr_size) * block_size)
    first = f.read(half)
    second = f.read(half)
    if len(second) < half:
        raise _Corrupt("kdump-compressed page bitmaps are truncated")

    def phys(pfns: Tuple[Tuple[int, int], ...]) -> Tuple[Tuple[int, int], ...]:
        return tuple((s * block_size, (e + 1) * block_size - 1) for s, e in pfns)

    described = phys(bitmap_ranges(first, max_mapnr))
    dumped = phys(bitmap_ranges(second, max_mapnr))
    if "QEMU" in names:
        producer, evidence = (
            "qemu",
            "kdump-compressed with QEMU notes (dump-guest-memory)",
        )
    else:
        producer, evidence = (
            "makedumpfile",
            (
                f"kdump-compressed (diskdump v{version}) without QEMU notes, "
                f"dump level {dump_level}"
            ),
        )
    return DumpHeaders(
        path,
        producer,
        evidence,
        tuple(names),
        (),
        dump_level,
        max_mapnr,
        described,
        dumped,
    )


def _classify(
    arch: Arch,
    note_names: Tuple[str, ...],
    loads: Tuple[DumpLoad, ...],
    page_offset: Optional[int],
) -> Tuple[str, str]:
    if "QEMU" in note_names:
        return "qemu", "QEMU notes (dump-guest-memory)"
    if loads and all(ld.vaddr in (0, ld.paddr) for ld in loads):
        # QEMU's x86 dumps write 0, its ppc64 dumps the physical address.
        return "qemu", (
            "every PT_LOAD has p_vaddr 0 or its p_paddr "
            "(dump-guest-memory paging=false)"
        )
    ram = [ld for ld in loads if not arch.is_kernel_text(ld.vaddr)]
    if (
        "VMCOREINFO" in note_names
        and ram
        and page_offset is not None
        and all(ld.vaddr - ld.paddr == page_offset for ld in ram)
    ):
        return "kdump", (
            "VMCOREINFO note and RAM PT_LOADs at PAGE_OFFSET + "
            "paddr (/proc/vmcore of a capture kernel)"
        )
    return "unknown", "neither QEMU notes nor /proc/vmcore program headers"


@contextlib.contextmanager
def _open_dump(path: str) -> Iterator[BinaryIO]:
    """The dump file at *path*, or the dump a flattened one rearranges to.

    :raises FlattenedError: for a flattened stream that breaks its bounds.
    """
    with open(path, "rb") as f:
        if is_flattened(f.read(16)):
            yield io.BufferedReader(FlattenedFile(f))
        else:
            f.seek(0)
            yield f


def read_dump_headers(
    prog: Program, page_offset: Optional[int] = None
) -> Optional[DumpHeaders]:
    """
    Read the program headers and note names of the dump file behind *prog*.

    :param page_offset: PAGE_OFFSET of the crashed kernel (from
        :class:`~drgn_crashhp.facts.MachineState`), to recognise kdump's
        RAM PT_LOADs.
    :return: None for a live kernel or a program without a core file.
    """
    headers = _read_dump_headers(prog, page_offset)
    if headers is None:
        return None
    try:
        with open(headers.path, "rb") as f:
            if not is_flattened(f.read(16)):
                return headers
    except OSError:
        return headers
    return dataclasses.replace(
        headers,
        flattened=True,
        evidence=f"makedumpfile flattened format (-F): {headers.evidence}",
    )


def _read_dump_headers(
    prog: Program, page_offset: Optional[int] = None
) -> Optional[DumpHeaders]:
    if prog.flags & ProgramFlags.IS_LIVE:
        return None
    path = prog.core_dump_path
    if not path:
        return None
    try:
        with _open_dump(path) as f:
            magic = f.read(8)
            if magic.startswith(b"KDUMP") or magic.startswith(b"DISKDUMP"):
                return _read_diskdump(f, path)
            f.seek(0)
            names, loads = _read_elf(f)
    except (_Corrupt, FlattenedError) as e:
        return DumpHeaders(path, "unknown", str(e))
    except (OSError, ValueError, struct.error) as e:
        return DumpHeaders(path, "unknown", f"not readable as ELF: {e}")
    producer, evidence = _classify(
        target_arch(prog), tuple(names), tuple(loads), page_offset
    )
    return DumpHeaders(path, producer, evidence, tuple(names), tuple(loads))
