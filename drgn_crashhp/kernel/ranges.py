"""
Ranges
------

Inclusive ``(start, end)`` physical ranges, as the kernel's ``struct
range``/``crash_mem`` keeps them, and the arithmetic the checks need.
"""

from __future__ import annotations

import bisect
from typing import Iterable, List, Sequence

from drgn_crashhp.facts import Range

__all__ = ("Range", "align", "covered", "normalize", "size", "subtract")


def align(value: int, alignment: int) -> int:
    """``ALIGN(value, alignment)`` (include/linux/align.h)."""
    return (value + alignment - 1) // alignment * alignment


def normalize(ranges: Iterable[Range]) -> List[Range]:
    """Sorted, with overlapping and adjacent ranges merged."""
    out: List[Range] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1] + 1:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def subtract(a: Sequence[Range], b: Sequence[Range]) -> List[Range]:
    """Normalized *a* minus normalized *b*."""
    out: List[Range] = []
    j = 0
    for s, e in a:
        while j < len(b) and b[j][1] < s:
            j += 1
        k = j
        cur = s
        while k < len(b) and b[k][0] <= e:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            k += 1
        if cur <= e:
            out.append((cur, e))
    return out


def covered(rng: Range, norm: Sequence[Range], starts: Sequence[int]) -> int:
    """Bytes of *rng* inside the normalized ranges *norm* (*starts*: theirs)."""
    s, e = rng
    i = max(0, bisect.bisect_right(starts, s) - 1)
    total = 0
    while i < len(norm) and norm[i][0] <= e:
        lo, hi = max(s, norm[i][0]), min(e, norm[i][1])
        if lo <= hi:
            total += hi - lo + 1
        i += 1
    return total


def size(ranges: Iterable[Range]) -> int:
    """Total bytes of inclusive ranges."""
    return sum(e - s + 1 for s, e in ranges)
