"""
Builders of makedumpfile flattened streams (``makedumpfile -F``) for the
tests, and a reference rearrangement to compare the reader with.

The reference follows makedumpfile's ``rearrange_dumpdata()`` (what
``makedumpfile -R`` does) as plainly as possible: the records in stream
order, each written at its offset, holes zero, the end marker required.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from drgn_crashhp.read.flattened import HEADER_SIZE, SIGNATURE, is_flattened

END = struct.pack(">qq", -1, -1)


def header(kind: int = 1, version: int = 1) -> bytes:
    """write_start_flat_header(): signature, type, version; 4096 bytes."""
    return (SIGNATURE.ljust(16, b"\0") + struct.pack(">qq", kind, version)).ljust(
        HEADER_SIZE, b"\0"
    )


def record(offset: int, data: bytes, size: Optional[int] = None) -> bytes:
    """One ``makedumpfile_data_header`` and its data (*size* overrides the
    header's size field, for broken records)."""
    return struct.pack(">qq", offset, len(data) if size is None else size) + data


def flatten(
    pieces: Iterable[Tuple[int, bytes]], *, end: bool = True, head: bytes = b""
) -> bytes:
    """A flattened stream of *pieces* ``(offset, data)`` in the given order."""
    out = [head or header()] + [record(o, d) for o, d in pieces]
    return b"".join(out) + (END if end else b"")


def chunks(image: bytes, size: int = 4096) -> List[Tuple[int, bytes]]:
    """*image* cut into ``(offset, data)`` pieces of *size* bytes."""
    return [(o, image[o : o + size]) for o in range(0, len(image), size)]


def records(stream: bytes) -> List[Tuple[int, int, int]]:
    """``(offset, size, position of the data)`` of every record before the
    end marker; raises ValueError where rearrange_dumpdata() would fail."""
    if not is_flattened(stream):
        raise ValueError("signature")
    if len(stream) < HEADER_SIZE or struct.unpack_from(">q", stream, 16)[0] != 1:
        raise ValueError("header")
    out: List[Tuple[int, int, int]] = []
    at = HEADER_SIZE
    while True:
        if at + 16 > len(stream):
            raise ValueError("no end marker")
        offset, size = struct.unpack_from(">qq", stream, at)
        if offset == -1 and size == -1:
            return out
        if offset < 0 or size <= 0 or offset + size >= 1 << 63:
            raise ValueError("record")
        if at + 16 + size > len(stream):
            raise ValueError("truncated")
        out.append((offset, size, at + 16))
        at += 16 + size


def rearranged(stream: bytes, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of what ``makedumpfile -R`` writes from
    *stream* (cut at the end of that file)."""
    recs = records(stream)
    size = max((o + n for o, n, _ in recs), default=0)
    stop = min(stop, size)
    out = bytearray(max(0, stop - start))
    for offset, n, data in recs:
        a, b = max(offset, start), min(offset + n, stop)
        if a < b:
            out[a - start : b - start] = stream[data + a - offset : data + b - offset]
    return bytes(out)


# -- real flattened files, made by makedumpfile ------------------------------


def makedumpfile() -> Optional[str]:
    return shutil.which("makedumpfile")


def make_flattened(
    src: Path, out: Path, args: Sequence[str] = ("-c", "-d", "31")
) -> Path:
    """``makedumpfile -F ARGS SRC > OUT``: kdump-tools' own command, on a
    vmcore (ELF) or a kdump-compressed dump (makedumpfile refilters it)."""
    exe = makedumpfile()
    assert exe is not None
    with open(out, "wb") as f:
        subprocess.run(
            [exe, "-F", *args, str(src)],
            stdout=f,
            stderr=subprocess.PIPE,
            check=True,
        )
    return out


def qemu_elf_for_makedumpfile(src: Path, out: Path, page_offset: int) -> Path:
    """
    A copy of a QEMU ``dump-guest-memory`` ELF (paging=false) that
    makedumpfile reads: QEMU 10 puts a section header at 64 and the program
    headers after it, while makedumpfile's get_elf64_phdr() reads them at
    ``sizeof(Elf64_Ehdr)``; and its RAM PT_LOADs get ``p_vaddr =
    page_offset + p_paddr``, as /proc/vmcore has them, from which
    makedumpfile takes PAGE_OFFSET. The memory bytes are not touched.
    """
    shutil.copyfile(src, out)
    with open(out, "r+b") as f:
        eh = bytearray(f.read(64))
        (phoff,) = struct.unpack_from("<Q", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        ph = bytearray(f.read(phentsize * phnum))
        for i in range(phnum):
            (p_type,) = struct.unpack_from("<I", ph, i * phentsize)
            (paddr,) = struct.unpack_from("<Q", ph, i * phentsize + 24)
            # RAM; not the BIOS ROM below 4 GiB
            if p_type == 1 and not 0xF0000000 <= paddr < 1 << 32:
                struct.pack_into("<Q", ph, i * phentsize + 16, page_offset + paddr)
        assert 64 + len(ph) <= min(
            struct.unpack_from("<Q", ph, i * phentsize + 8)[0] for i in range(phnum)
        ), "no room for the program headers at 64"
        struct.pack_into("<Q", eh, 32, 64)  # e_phoff
        struct.pack_into("<Q", eh, 40, 0)  # e_shoff
        struct.pack_into("<HHHH", eh, 52, 64, phentsize, phnum, 0)
        struct.pack_into("<HH", eh, 60, 0, 0)  # e_shnum, e_shstrndx
        f.seek(0)
        f.write(eh + ph)
    return out


def make_plain(src: Path, out: Path, args: Sequence[str] = ("-c", "-d", "31")) -> Path:
    """``makedumpfile ARGS SRC OUT``: the same dump, not flattened."""
    exe = makedumpfile()
    assert exe is not None
    out.unlink(missing_ok=True)
    subprocess.run([exe, *args, str(src), str(out)], capture_output=True, check=True)
    return out


def rearrange(flat: Path, out: Path) -> Path:
    """``makedumpfile -R OUT < FLAT``."""
    exe = makedumpfile()
    assert exe is not None
    out.unlink(missing_ok=True)
    with open(flat, "rb") as f:
        subprocess.run([exe, "-R", str(out)], stdin=f, capture_output=True, check=True)
    return out


def metadata_seed(flat: bytes, below: int) -> bytes:
    """A real stream cut to the records that start below *below* (the
    kdump header, sub-header, notes and bitmaps), in their order, with the
    end marker: small enough for a seed, and it still decodes fully."""
    pieces = [
        (offset, flat[data : data + size])
        for offset, size, data in records(flat)
        if offset < below
    ]
    return flatten(pieces, head=flat[:HEADER_SIZE])
