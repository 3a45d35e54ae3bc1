"""
Flattened dump files
--------------------

makedumpfile's *flattened* format is what ``makedumpfile -F`` writes to a
pipe or a file, and what Debian's kdump-tools saves as
``/var/crash/<stamp>/dump.<stamp>``. It is a stream, not a seekable file:
makedumpfile's ``write_buffer()`` puts, in front of every write, the
offset the bytes would have had in the ordinary dump file (makedumpfile.h,
makedumpfile.c):

- a 4096-byte header (``write_start_flat_header()``): the signature
  ``"makedumpfile"`` NUL-padded to 16 bytes, then ``type`` (1, the
  flattened format) and ``version`` (1), each a big-endian s64; the rest
  zero;
- records, each ``struct makedumpfile_data_header``: ``offset`` and
  ``buf_size`` (big-endian s64), then ``buf_size`` bytes of data;
- an end marker (``write_end_flat_header()``): offset and size both -1.

``makedumpfile -R`` (``rearrange_dumpdata()``) writes each record's data at
its offset, in stream order, and fails on a record whose offset is negative
or whose size is not positive unless both are -1. So records come in any
order (page descriptors and page data interleave), a later record wins
where two overlap (``update_eraseinfo_of_sub_header()`` writes the
sub-header again at the end), bytes no record covers read as zeros (a hole
of the rearranged file), and the rearranged file ends at the largest
``offset + buf_size``. Bytes after the end marker are ignored, as by
``-R``.

:func:`open_flattened` serves reads of that rearranged file without
writing it: one pass over the record headers (seeking past the data)
builds an index of the records that start in the first :data:`WINDOW`
bytes, which hold everything this package reads (kdump-compressed header,
sub-header, notes and both page bitmaps, or an ELF dump's headers and
notes). Every bound it enforces is a :class:`FlattenedError` with a
one-line message: more than :data:`MAX_RECORDS` records, an index of more
than :data:`MAX_INDEXED`, an offset or size out of range or whose sum
overflows an s64, a truncated stream (a record's data past the end of the
file, or no end marker), and a read beyond the window.
"""

from __future__ import annotations

import bisect
import io
import os
import struct
from typing import Any, BinaryIO, List, Optional, Tuple

__all__ = (
    "HEADER_SIZE",
    "FlattenedError",
    "FlattenedFile",
    "is_flattened",
    "open_flattened",
)

#: ``MAX_SIZE_MDF_HEADER``: the flat header block before the first record.
HEADER_SIZE = 4096
#: ``MAKEDUMPFILE_SIGNATURE``, NUL-padded to ``SIG_LEN_MDF`` (16) by strncpy.
SIGNATURE = b"makedumpfile"
#: ``TYPE_FLAT_HEADER``.
TYPE_FLAT = 1
#: ``END_FLAG_FLAT_HEADER`` (offset and size of the end marker).
END_FLAG = -1
_S64_MAX = (1 << 63) - 1
_RECORD = struct.Struct(">qq")
_HEADER = struct.Struct(">16sqq")
#: Bytes read at a time while scanning record headers.
_SCAN_CHUNK = 4096

#: Records scanned at most. makedumpfile flushes page data in blocks of up
#: to 64 KiB (``page_size << block_order``, order 4) and bitmaps in 4 KiB,
#: so this is some hundreds of GiB of dump; a larger stream is refused
#: rather than scanned for more than about ten seconds.
MAX_RECORDS = 1 << 23
#: Only records that start in the first WINDOW bytes of the rearranged file
#: are indexed: the headers, notes and bitmaps (at most 2 x 256 MiB, see
#: drgn_crashhp.read.dump.MAX_BITMAP) are there.
WINDOW = 1 << 30
#: Indexed records at most (two 256 MiB bitmaps in 4 KiB writes are 2**17).
MAX_INDEXED = 1 << 18


class FlattenedError(Exception):
    """A flattened stream that ``makedumpfile -R`` would not rearrange, or a
    read this reader does not serve (one line)."""


def is_flattened(head: bytes) -> bool:
    """Whether *head* (the first bytes of a file) starts with the flat
    header's signature (read_start_flat_header() compares it with strcmp,
    so the byte after it is NUL)."""
    return head[: len(SIGNATURE) + 1] == SIGNATURE + b"\0"


def _pread(f: BinaryIO, size: int, at: int) -> bytes:
    try:
        fd = f.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        f.seek(at)
        return f.read(size)
    return os.pread(fd, size, at)


def _file_size(f: BinaryIO) -> int:
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return f.seek(0, io.SEEK_END)


class FlattenedFile(io.RawIOBase):
    """
    The rearranged dump file of a flattened stream, read-only: a raw file
    object over the records of *f* (an open binary file positioned anywhere;
    it must stay open while this one is read).

    :raises FlattenedError: if the stream is not flattened or breaks a
        bound (see the module documentation).
    """

    def __init__(
        self,
        f: BinaryIO,
        *,
        max_records: int = MAX_RECORDS,
        window: int = WINDOW,
        max_indexed: int = MAX_INDEXED,
    ) -> None:
        super().__init__()
        self._f = f
        self._pos = 0
        self._window = window
        head = _pread(f, HEADER_SIZE, 0)
        if len(head) < HEADER_SIZE:
            raise FlattenedError(
                f"header is truncated ({len(head)} of {HEADER_SIZE} bytes)"
            )
        signature, kind, version = _HEADER.unpack_from(head)
        if not is_flattened(signature):
            raise FlattenedError("no makedumpfile signature")
        if kind != TYPE_FLAT:
            raise FlattenedError(f"header type {kind}, not {TYPE_FLAT}")
        #: The flat header's version (makedumpfile writes 1 and checks none).
        self.version: int = version
        file_size = _file_size(f)
        # (offset, stream order, size, position of the data in f)
        index: List[Tuple[int, int, int, int]] = []
        end = 0
        n = 0
        # The record headers are read through a small buffer: one read per
        # record for makedumpfile's 4-64 KiB records, one per many for a
        # stream of tiny ones.
        buf, buf_at = b"", HEADER_SIZE
        at = HEADER_SIZE
        unpack_from = _RECORD.unpack_from
        while True:
            rel = at - buf_at
            if rel + _RECORD.size > len(buf):
                buf, buf_at, rel = _pread(f, _SCAN_CHUNK, at), at, 0
                if len(buf) < _RECORD.size:
                    raise FlattenedError(
                        f"stream is truncated: no end marker after "
                        f"{n} records ({file_size} bytes)"
                    )
            offset, size = unpack_from(buf, rel)
            if offset < 0 or size <= 0 or offset > _S64_MAX - size:
                if offset == END_FLAG and size == END_FLAG:
                    break
                if offset < 0 or size <= 0:
                    raise FlattenedError(
                        f"record {n} at byte {at:#x}: offset {offset}, size {size}"
                    )
                raise FlattenedError(
                    f"record {n} at byte {at:#x}: offset {offset:#x} "
                    f"+ size {size:#x} overflows"
                )
            if n >= max_records:
                raise FlattenedError(f"stream has more than {max_records} records")
            data = at + _RECORD.size
            at = data + size
            if at > file_size:
                raise FlattenedError(
                    f"stream is truncated: record {n} at byte "
                    f"{data - _RECORD.size:#x} has {size:#x} bytes, the file "
                    f"ends at {file_size:#x}"
                )
            if offset < window:
                if len(index) >= max_indexed:
                    raise FlattenedError(
                        f"stream has more than {max_indexed} "
                        f"records in its first {window:#x} bytes"
                    )
                index.append((offset, n, size, data))
            if offset + size > end:
                end = offset + size
            n += 1
        index.sort()
        self._index = index
        self._starts = [r[0] for r in index]
        self._longest = max((r[2] for r in index), default=0)
        #: Records in the stream.
        self.records: int = n
        #: Size of the rearranged file (what ``makedumpfile -R`` writes).
        self.size: int = end

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            pos += self._pos
        elif whence == io.SEEK_END:
            pos += self.size
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def read_at(self, pos: int, size: int) -> bytes:
        """Up to *size* bytes of the rearranged file at *pos* (fewer at its
        end, or at the end of the window)."""
        out = bytearray(max(0, min(size, self.size - pos)))
        return bytes(out[: self._fill(pos, memoryview(out))])

    def _fill(self, pos: int, view: memoryview) -> int:
        stop = min(pos + len(view), self.size, self._window)
        if pos >= stop:
            if pos < self.size and len(view):
                raise FlattenedError(
                    f"read at {pos:#x} is past the first "
                    f"{self._window:#x} bytes this reader indexes"
                )
            return 0
        view[: stop - pos] = bytes(stop - pos)
        lo = bisect.bisect_right(self._starts, pos - self._longest)
        hi = bisect.bisect_left(self._starts, stop)
        # Stream order: a later record overwrites an earlier one, as -R.
        hits = sorted(
            (r for r in self._index[lo:hi] if r[0] + r[2] > pos),
            key=lambda r: r[1],
        )
        for offset, _, length, data in hits:
            a, b = max(offset, pos), min(offset + length, stop)
            chunk = _pread(self._f, b - a, data + a - offset)
            if len(chunk) < b - a:
                raise FlattenedError(
                    f"stream shrank while read (record at {offset:#x})"
                )
            view[a - pos : b - pos] = chunk
        return stop - pos

    def readinto(self, buffer: Any) -> Optional[int]:
        n = self._fill(self._pos, memoryview(buffer).cast("B"))
        self._pos += n
        return n


def open_flattened(f: BinaryIO, **bounds: int) -> BinaryIO:
    """
    A buffered, read-only binary file over the rearranged dump of the
    flattened stream *f*; *bounds* override :data:`MAX_RECORDS`,
    :data:`WINDOW` and :data:`MAX_INDEXED` (``max_records``, ``window``,
    ``max_indexed``).

    :raises FlattenedError: see :class:`FlattenedFile`.
    """
    return io.BufferedReader(FlattenedFile(f, **bounds))
