"""
Formatting
----------

How numbers read in messages and text: hex addresses, inclusive ranges,
sizes in MiB, CPU lists in the kernel's format. Finding details never hold
these strings; they hold the numbers.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

__all__ = ("cpulist", "hex_or_dash", "mib", "ranges", "yes_no")

SZ_1M = 1 << 20


def hex_or_dash(n: Optional[int], missing: str = "-") -> str:
    """An address in hex, or *missing* when there is none."""
    return missing if n is None else f"{n:#x}"


def mib(n: int) -> str:
    """A size: MiB with one decimal, or hex bytes below 1 MiB."""
    return f"{n / SZ_1M:.1f} MiB" if n >= SZ_1M else f"{n:#x} bytes"


def ranges(rngs: Sequence[Tuple[int, int]], limit: int = 4) -> str:
    """``[0x1000-0x1fff], ... and N more``."""
    text = ", ".join(f"[{s:#x}-{e:#x}]" for s, e in rngs[:limit])
    if len(rngs) > limit:
        text += f" and {len(rngs) - limit} more"
    return text


def yes_no(value: Optional[bool]) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def cpulist(cpus: Sequence[int]) -> str:
    """CPU numbers in the kernel's list format: ``0-3,6``."""
    parts = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)
