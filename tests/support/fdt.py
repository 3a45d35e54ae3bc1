"""
Flattened device trees built by hand: the blob a DTB compiler would write
for a tree given as nested dicts, for the decoder's tests and fuzzing.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Sequence, Tuple, Union

__all__ = ("Tree", "build_fdt", "u32", "u64")

#: A node: property name -> value, child name -> node.
Tree = Dict[str, Union[bytes, "Tree"]]


def u32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def u64(*values: int) -> bytes:
    return struct.pack(f">{len(values)}Q", *values)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def build_fdt(
    tree: Tree,
    memreserve: Sequence[Tuple[int, int]] = (),
    version: int = 17,
    boot_cpuid: int = 0,
) -> bytes:
    """The DTB of *tree* (the root's properties and children), version 17."""
    strings: List[bytes] = []
    offsets: Dict[str, int] = {}

    def name_offset(name: str) -> int:
        if name not in offsets:
            offsets[name] = sum(len(s) for s in strings)
            strings.append(name.encode() + b"\0")
        return offsets[name]

    def node(name: str, body: Tree) -> bytes:
        out = u32(1) + _pad(name.encode() + b"\0")
        for key, value in body.items():
            if isinstance(value, bytes):
                out += u32(3, len(value), name_offset(key)) + _pad(value)
        for key, value in body.items():
            if not isinstance(value, bytes):
                out += node(key, value)
        return out + u32(2)

    struct_block = node("", tree) + u32(9)
    strings_block = b"".join(strings)
    rsv = b"".join(u64(a, s) for a, s in memreserve) + u64(0, 0)
    off_rsv = 40
    off_struct = off_rsv + len(rsv)
    off_strings = off_struct + len(struct_block)
    total = off_strings + len(strings_block)
    header = u32(
        0xD00DFEED,
        total,
        off_struct,
        off_strings,
        off_rsv,
        version,
        16,
        boot_cpuid,
        len(strings_block),
        len(struct_block),
    )
    return header + rsv + struct_block + strings_block
