"""
Physical memory
---------------

The one place that reads raw physical bytes from the target and turns drgn's
:class:`~drgn.FaultError` into :class:`Unreadable`. Nothing here writes.
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

from drgn import FaultError, Program

from drgn_crashhp.arch import U64_MAX
from drgn_crashhp.facts import Unread, UnreadKind
from drgn_crashhp.kernel.ranges import normalize
from drgn_crashhp.read.fields import target_arch

__all__ = (
    "CHUNK",
    "Unreadable",
    "iter_phys",
    "missing_ranges",
    "read_phys",
)

#: Streaming granule for hashing and scanning: big enough to amortise
#: drgn's per-read cost, small enough to never hold a segment whole. A
#: consumer still holds the previous chunk while the next is read; at 1 MiB
#: that pair costs fresh pages every read (20% slower hashing, measured with
#: tests/bench/digest_bench.py), at 256 KiB it stays in the allocator and
#: the cache.
CHUNK = 256 << 10


class Unreadable(Exception):
    """Bytes the target does not have (not in the dump, or a bad address)."""

    def __init__(
        self, what: str, address: int, size: int, physical: bool = True
    ) -> None:
        # drgn reports a failed virtual read at the address that faulted,
        # which may be a page-table entry's: name the space only when known.
        space = "physical " if physical else ""
        super().__init__(
            f"{what}: {size:#x} bytes at {space}{address:#x} "
            "are not readable in this target"
        )
        self.what = what
        self.address = address
        self.size = size

    def unread(self) -> Unread:
        """This failure as the value the readers hand on."""
        return Unread(
            self.what, UnreadKind.NOT_IN_TARGET, str(self), self.address, self.size
        )


def read_phys(prog: Program, address: int, size: int, what: str = "memory") -> bytes:
    """Read *size* bytes of physical memory or raise :class:`Unreadable`."""
    if size < 0 or address < 0 or address + size > U64_MAX + 1:
        raise Unreadable(what, address, max(size, 0))
    try:
        return prog.read(address, size, True)
    except (FaultError, ValueError, OverflowError) as e:
        raise Unreadable(what, address, size) from e


def iter_phys(
    prog: Program, address: int, size: int, what: str = "memory", chunk: int = CHUNK
) -> Iterator[bytes]:
    """Yield *size* bytes of physical memory in chunks of at most *chunk*."""
    end = address + size
    while address < end:
        n = min(chunk, end - address)
        yield read_phys(prog, address, n, what)
        address += n


def _readable(prog: Program, address: int, size: int) -> bool:
    try:
        prog.read(address, size, True)
    except (FaultError, ValueError, OverflowError):
        return False
    return True


def missing_ranges(prog: Program, address: int, size: int) -> List[Tuple[int, int]]:
    """
    Return the ``[start, end]`` (inclusive) sub-ranges of a physical range that
    the target cannot supply, at page granularity, merged.

    A range that reads whole costs one read; otherwise it is bisected, so a
    dump that lacks a few pages of a large region costs O(holes * log size)
    reads, and one that lacks it all about two reads per page (callers cap
    the size they probe: read.digest.MISSING_PROBE).
    """
    out: List[Tuple[int, int]] = []
    if size <= 0:
        return out
    page = target_arch(prog).page_size
    stack = [(address, size)]
    while stack:
        start, length = stack.pop()
        if _readable(prog, start, length):
            continue
        if length <= page:
            out.append((start, start + length - 1))
            continue
        # Split on a page boundary; push the upper half first so the lower
        # half is examined first and the output stays sorted.
        half = ((length // 2) + page - 1) // page * page
        half = min(max(half, page), length - 1)
        stack.append((start + half, length - half))
        stack.append((start, half))
    return normalize(out)
