"""
Edit a kdump-compressed dump (makedumpfile's diskdump format) the way a
higher dump level would have written it: :func:`drop_pages` removes pages
from the 2nd bitmap and their descriptors from the descriptor table, so
drgn (libkdumpfile) sees them as excluded, like makedumpfile's filtered
pages, while every other page reads as before.

Layout (makedumpfile diskdump_mod.h): block 0 ``struct disk_dump_header``
(block_size at 428, sub_hdr_size 432, bitmap_blocks 436); the sub-header
from block 1; the 1st and 2nd bitmaps (``bitmap_blocks`` blocks together)
from block ``1 + sub_hdr_size``; then one 24-byte ``struct page_desc``
(offset, size, flags, page_flags) per page set in the 2nd bitmap, in pfn
order; then the page data the descriptors point at.
"""

from __future__ import annotations

import struct
from typing import Iterable

PAGE_DESC_SIZE = 24


def drop_pages(dump: bytes, pfns: Iterable[int]) -> bytes:
    """*dump* with the pages *pfns* excluded (each must be dumped)."""
    data = bytearray(dump)
    block_size, sub_hdr_size, bitmap_blocks = struct.unpack_from("<iiI", data, 428)
    half = bitmap_blocks * block_size // 2
    second = (1 + sub_hdr_size) * block_size + half
    descs = (1 + sub_hdr_size + bitmap_blocks) * block_size
    ndesc = sum(bin(b).count("1") for b in data[second : second + half])
    end = descs + ndesc * PAGE_DESC_SIZE
    for pfn in sorted(set(pfns), reverse=True):
        byte, bit = second + pfn // 8, 1 << (pfn % 8)
        if not data[byte] & bit:
            raise ValueError(f"pfn {pfn:#x} is not in the dump")
        index = sum(bin(b).count("1") for b in data[second:byte]) + bin(
            data[byte] & (bit - 1)
        ).count("1")
        at = descs + index * PAGE_DESC_SIZE
        data[at:end] = data[at + PAGE_DESC_SIZE : end] + bytes(PAGE_DESC_SIZE)
        data[byte] &= ~bit & 0xFF
    return bytes(data)
