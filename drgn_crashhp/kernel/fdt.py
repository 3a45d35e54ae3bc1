"""
Flattened device tree
---------------------

A bounded decoder of the flattened device tree (DTB) kexec-tools loads for
the capture kernel on ppc64 and arm64 (the Devicetree Specification v0.4,
chapter 5; scripts/dtc/libfdt/fdt.h), and the few property readers the
checks need: cells, ``reg`` ranges, CPU hardware ids, ``ibm,dynamic-memory-v2``.

The bytes come from the target, so every size, offset and count is bounded
before it is used (:data:`MAX_FDT`, :data:`MAX_NODES`, :data:`MAX_DEPTH`,
:data:`MAX_PROPERTIES`, :data:`MAX_RESERVE`), each token advances the walk
by at least 4 bytes, and every malformation raises :class:`Malformed` with a
one-line reason; nothing else is raised and nothing loops without bound.

No PyPI library fitted: ``fdt`` (0.3.3, last release 2022) walks the blob
with ``while True`` loops and raises bare ``Exception``, ``IndexError`` or
``struct.error`` on hostile input; ``pyfdt`` (0.3) is older still.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Optional, Sequence, Tuple

from drgn_crashhp.facts import Fdt, FdtHeader, FdtNode

__all__ = (
    "FDT_MAGIC",
    "MAX_DEPTH",
    "MAX_FDT",
    "MAX_NODES",
    "MAX_PROPERTIES",
    "MAX_RESERVE",
    "Malformed",
    "cells",
    "cpu_hw_ids",
    "decode_fdt",
    "dynamic_memory_v2",
    "is_fdt",
    "reg_ranges",
    "string",
)

#: The first four bytes of a DTB, big-endian.
FDT_MAGIC = b"\xd0\x0d\xfe\xed"
#: Largest blob decoded: kexec-tools' DTBs are tens of KiB (24 KiB on the
#: ppc64 fixtures, arm64 fewer); the kernel's own limit is far above.
MAX_FDT = 1 << 20
#: Nodes, nesting depth, properties and reserve-map entries decoded at most.
MAX_NODES = 8192
MAX_DEPTH = 64
MAX_PROPERTIES = 65536
MAX_RESERVE = 1024

_HEADER = struct.Struct(">10I")
#: Version 16 headers stop before ``size_dt_struct``.
_HEADER_V16 = 36
_TOKEN = struct.Struct(">I")
_PROP = struct.Struct(">II")
_RESERVE = struct.Struct(">QQ")

FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END = 1, 2, 3, 4, 9


class Malformed(Exception):
    """The bytes are not a device tree the capture kernel would accept."""


def is_fdt(head: Optional[bytes]) -> bool:
    """Whether a segment's first bytes are a DTB's."""
    return head is not None and head[:4] == FDT_MAGIC


def _align(n: int) -> int:
    return (n + 3) & ~3


def _header(data: bytes) -> FdtHeader:
    if len(data) < _HEADER_V16:
        raise Malformed(f"{len(data)} bytes: shorter than an FDT header")
    if data[:4] != FDT_MAGIC:
        raise Malformed(f"bad magic {data[:4].hex()}")
    fields = list(_HEADER.unpack_from(data.ljust(_HEADER.size, b"\0")))
    (_, total, off_struct, off_strings, off_rsv, version, last_comp, boot, size_str) = (
        fields[:9]
    )
    if version < 16 or last_comp > 17:
        raise Malformed(f"version {version}, last compatible {last_comp}: not 16/17")
    if total > MAX_FDT:
        raise Malformed(f"totalsize {total} over the {MAX_FDT}-byte bound")
    if total > len(data):
        raise Malformed(f"totalsize {total} past the {len(data)} bytes read")
    header_size = _HEADER.size if version >= 17 else _HEADER_V16
    size_struct = fields[9] if version >= 17 else total - min(off_struct, total)
    if total < header_size:
        raise Malformed(f"totalsize {total} smaller than its header")
    for name, off, size in (
        ("structure block", off_struct, size_struct),
        ("strings block", off_strings, size_str),
    ):
        if off < header_size or off + size > total:
            raise Malformed(f"{name} {off:#x}+{size:#x} outside totalsize {total:#x}")
    if off_rsv < header_size or off_rsv % 8 or off_rsv >= total:
        raise Malformed(f"reserve map offset {off_rsv:#x} invalid")
    return FdtHeader(
        totalsize=total,
        off_dt_struct=off_struct,
        off_dt_strings=off_strings,
        off_mem_rsvmap=off_rsv,
        version=version,
        last_comp_version=last_comp,
        boot_cpuid_phys=boot,
        size_dt_strings=size_str,
        size_dt_struct=size_struct,
    )


def _reserve_map(data: bytes, hdr: FdtHeader) -> Tuple[Tuple[int, int], ...]:
    out: List[Tuple[int, int]] = []
    pos = hdr.off_mem_rsvmap
    for _ in range(MAX_RESERVE + 1):
        if pos + _RESERVE.size > hdr.totalsize:
            raise Malformed("reserve map runs past totalsize without its end entry")
        address, size = _RESERVE.unpack_from(data, pos)
        if address == 0 and size == 0:
            return tuple(out)
        out.append((address, size))
        pos += _RESERVE.size
    raise Malformed(f"reserve map over {MAX_RESERVE} entries")


def _cstring(data: bytes, start: int, end: int, what: str) -> str:
    """The NUL-terminated printable ASCII string at *start*, before *end*."""
    nul = data.find(b"\0", start, end)
    if nul < 0:
        raise Malformed(f"{what} at {start:#x} is not NUL-terminated in its block")
    raw = data[start:nul]
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise Malformed(f"{what} at {start:#x} is not printable ASCII")
    return raw.decode("ascii")


def decode_fdt(data: bytes) -> Fdt:
    """
    Decode a flattened device tree.

    :param data: The blob, at least ``totalsize`` bytes (more is ignored).
    :raises Malformed: with a one-line reason, for anything a conforming
        blob does not hold or a bound is exceeded.
    """
    hdr = _header(data)
    memreserve = _reserve_map(data, hdr)
    strings_end = hdr.off_dt_strings + hdr.size_dt_strings
    pos, end = hdr.off_dt_struct, hdr.off_dt_struct + hdr.size_dt_struct
    if pos % 4:
        raise Malformed(f"structure block offset {pos:#x} not 4-byte aligned")
    nodes: List[FdtNode] = []
    # Open nodes: (path, properties so far); a node is emitted when it
    # opens, with its properties filled in when it closes.
    stack: List[Tuple[str, List[Tuple[str, bytes]], int]] = []
    properties = 0
    closed_root = False
    # Every token moves pos on by 4 bytes or more, so the walk ends.
    while True:
        if pos + 4 > end:
            raise Malformed("structure block ends without FDT_END")
        (token,) = _TOKEN.unpack_from(data, pos)
        pos += 4
        if token == FDT_NOP:
            continue
        if token == FDT_BEGIN_NODE:
            if closed_root:
                raise Malformed("a second root node")
            name = _cstring(data, pos, end, "node name")
            pos = _align(pos + len(name) + 1)
            if len(stack) >= MAX_DEPTH:
                raise Malformed(f"nodes nested over {MAX_DEPTH} deep")
            if len(nodes) >= MAX_NODES:
                raise Malformed(f"over {MAX_NODES} nodes")
            if not stack:
                if name:
                    raise Malformed(f"root node named {name!r}")
                path = "/"
            else:
                if not name or "/" in name:
                    raise Malformed(f"node name {name!r} under {stack[-1][0]}")
                path = stack[-1][0].rstrip("/") + "/" + name
            stack.append((path, [], len(nodes)))
            nodes.append(FdtNode(path))
        elif token == FDT_END_NODE:
            if not stack:
                raise Malformed("FDT_END_NODE without an open node")
            path, props, index = stack.pop()
            nodes[index] = FdtNode(path, tuple(props))
            closed_root = not stack
        elif token == FDT_PROP:
            if not stack:
                raise Malformed("a property outside every node")
            if pos + _PROP.size > end:
                raise Malformed("property header runs past the structure block")
            length, nameoff = _PROP.unpack_from(data, pos)
            pos += _PROP.size
            if length > end - pos:
                raise Malformed(f"property of {length} bytes runs past its block")
            if nameoff >= hdr.size_dt_strings:
                raise Malformed(f"property name offset {nameoff:#x} past strings")
            properties += 1
            if properties > MAX_PROPERTIES:
                raise Malformed(f"over {MAX_PROPERTIES} properties")
            name = _cstring(
                data, hdr.off_dt_strings + nameoff, strings_end, "property name"
            )
            stack[-1][1].append((name, bytes(data[pos : pos + length])))
            pos = _align(pos + length)
        elif token == FDT_END:
            if stack:
                raise Malformed(f"FDT_END inside node {stack[-1][0]}")
            if not closed_root:
                raise Malformed("no root node")
            return Fdt(hdr, memreserve, tuple(nodes))
        else:
            raise Malformed(f"unknown token {token:#x} at {pos - 4:#x}")


# -- property values ----------------------------------------------------------


def cells(value: bytes) -> Tuple[int, ...]:
    """A property as big-endian 32-bit cells."""
    if len(value) % 4:
        raise Malformed(f"{len(value)} bytes is not a whole number of cells")
    return struct.unpack(f">{len(value) // 4}I", value)


def _join(words: Sequence[int]) -> int:
    n = 0
    for w in words:
        n = n << 32 | w
    return n


def string(value: bytes) -> str:
    """A string property (its first string)."""
    text = value.split(b"\0", 1)[0]
    return text.decode("ascii", "replace")


def _address_cells(fdt: Fdt, parent: str, name: str, default: int) -> int:
    node = fdt.node(parent)
    raw = node.prop(name) if node is not None else None
    if raw is None:
        return default
    (n,) = cells(raw)[:1] or (default,)
    if not 0 <= n <= 4:
        raise Malformed(f"{parent} {name} = {n}")
    return n


def reg_ranges(
    fdt: Fdt, node: FdtNode, prop: str = "reg"
) -> Tuple[Tuple[int, int], ...]:
    """``(address, size)`` of *prop* of *node*, with its parent's
    ``#address-cells`` and ``#size-cells`` (defaults 2 and 1)."""
    raw = node.prop(prop)
    if raw is None:
        return ()
    parent = node.path.rsplit("/", 1)[0] or "/"
    na = _address_cells(fdt, parent, "#address-cells", 2)
    ns = _address_cells(fdt, parent, "#size-cells", 1)
    words = cells(raw)
    step = na + ns
    if step == 0 or len(words) % step:
        raise Malformed(f"{node.path} {prop}: {len(words)} cells, not pairs of {step}")
    return tuple(
        (_join(words[i : i + na]), _join(words[i + na : i + step]))
        for i in range(0, len(words), step)
    )


def cpu_hw_ids(fdt: Fdt) -> Dict[str, Tuple[int, ...]]:
    """
    The hardware thread ids of every CPU node under ``/cpus``, by node path:
    ``ibm,ppc-interrupt-server#s`` when present (one per thread of a ppc64
    core), else ``reg`` in ``/cpus``'s ``#address-cells`` (arm64 MPIDR, ppc64
    first thread). CPU nodes are those with ``device_type = "cpu"``.
    """
    out: Dict[str, Tuple[int, ...]] = {}
    na = _address_cells(fdt, "/cpus", "#address-cells", 1)
    for node in fdt.children("/cpus"):
        kind = node.prop("device_type")
        if kind is None or string(kind) != "cpu":
            continue
        servers = node.prop("ibm,ppc-interrupt-server#s")
        if servers is not None:
            out[node.path] = cells(servers)
            continue
        words = cells(node.prop("reg") or b"")
        if na == 0 or len(words) % na:
            raise Malformed(f"{node.path} reg: {len(words)} cells, #address-cells {na}")
        out[node.path] = tuple(
            _join(words[i : i + na]) for i in range(0, len(words), na)
        )
    return out


#: struct of_drconf_cell_v2 (arch/powerpc/include/asm/drmem.h).
_DRCONF_V2 = struct.Struct(">IQIII")
#: DRCONF_MEM_ASSIGNED: the LMBs are the partition's.
DRCONF_MEM_ASSIGNED = 0x8


def dynamic_memory_v2(fdt: Fdt) -> Optional[Tuple[Tuple[int, int, int], ...]]:
    """
    ``/ibm,dynamic-reconfiguration-memory``'s ``ibm,dynamic-memory-v2`` as
    ``(base, size, flags)`` per LMB set, or None when absent.
    """
    node = fdt.node("/ibm,dynamic-reconfiguration-memory")
    if node is None:
        return None
    raw, lmb = node.prop("ibm,dynamic-memory-v2"), node.prop("ibm,lmb-size")
    if raw is None or lmb is None:
        return None
    lmb_size = _join(cells(lmb))
    if len(raw) < 4:
        raise Malformed("ibm,dynamic-memory-v2 shorter than its count")
    (count,) = struct.unpack_from(">I", raw)
    if 4 + count * _DRCONF_V2.size != len(raw):
        raise Malformed(f"ibm,dynamic-memory-v2: {count} sets in {len(raw)} bytes")
    out = []
    for i in range(count):
        seq, base, _drc, _aa, flags = _DRCONF_V2.unpack_from(raw, 4 + i * 24)
        out.append((base, seq * lmb_size, flags))
    return tuple(out)
