"""
BTF reader
----------

A bounded, lazy reader of the BPF Type Format, following the kernel's
Documentation/bpf/btf.rst and include/uapi/linux/btf.h: a header, a type
section of variable-length records (type id 1, 2, ... in order; id 0 is
``void``) and a string section.

Opening a blob checks the header, walks the type section once to record where
each type starts, and indexes named types by name; nothing else is decoded
until asked. Every accessor checks its offsets and type ids, so a corrupt or
hostile blob raises :class:`BTFError` (one line), never another exception, and
costs at most time and memory linear in its size.

This module does not import drgn; :mod:`drgn_crashhp.debuginfo.types` turns
these records into drgn types.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

__all__ = (
    "BTF",
    "BTFError",
    "BTF_MAGIC",
    "Kind",
    "Member",
    "Param",
    "SecInfo",
)

BTF_MAGIC = 0xEB9F
#: include/uapi/linux/btf.h BTF_MAX_TYPE: type ids are 20 bits wide.
BTF_MAX_TYPE = 0xFFFFF
_HEADER_MIN = 24


class BTFError(ValueError):
    """A corrupt or unsupported BTF blob (the message is one line)."""


class Kind:
    """``BTF_KIND_*`` (include/uapi/linux/btf.h)."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19

    NAMES = (
        "UNKN",
        "INT",
        "PTR",
        "ARRAY",
        "STRUCT",
        "UNION",
        "ENUM",
        "FWD",
        "TYPEDEF",
        "VOLATILE",
        "CONST",
        "RESTRICT",
        "FUNC",
        "FUNC_PROTO",
        "VAR",
        "DATASEC",
        "FLOAT",
        "DECL_TAG",
        "TYPE_TAG",
        "ENUM64",
    )


#: Bytes after the 12-byte ``struct btf_type``: (fixed, per vlen item).
_EXTRA: Tuple[Tuple[int, int], ...] = (
    (-1, 0),  # UNKN: invalid in a type section
    (4, 0),  # INT: u32 encoding | offset | bits
    (0, 0),  # PTR
    (12, 0),  # ARRAY: struct btf_array
    (0, 12),  # STRUCT: struct btf_member[vlen]
    (0, 12),  # UNION
    (0, 8),  # ENUM: struct btf_enum[vlen]
    (0, 0),  # FWD
    (0, 0),  # TYPEDEF
    (0, 0),  # VOLATILE
    (0, 0),  # CONST
    (0, 0),  # RESTRICT
    (0, 0),  # FUNC (vlen is the linkage)
    (0, 8),  # FUNC_PROTO: struct btf_param[vlen]
    (4, 0),  # VAR: struct btf_var
    (0, 12),  # DATASEC: struct btf_var_secinfo[vlen]
    (0, 0),  # FLOAT
    (4, 0),  # DECL_TAG: struct btf_decl_tag
    (0, 0),  # TYPE_TAG
    (0, 12),  # ENUM64: struct btf_enum64[vlen]
)
_NO_VLEN_ITEMS = frozenset((Kind.FUNC,))
#: BTF_INT_ENCODING bits.
INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4


@dataclass(frozen=True)
class Member:
    """A ``struct btf_member``: *bitfield_size* 0 is not a bitfield."""

    name: Optional[str]
    type_id: int
    bit_offset: int
    bitfield_size: int


@dataclass(frozen=True)
class Param:
    """A ``struct btf_param`` of a FUNC_PROTO."""

    name: Optional[str]
    type_id: int


@dataclass(frozen=True)
class SecInfo:
    """A ``struct btf_var_secinfo`` of a DATASEC."""

    type_id: int
    offset: int
    size: int


class BTF:
    """
    One BTF blob (vmlinux BTF, not split BTF).

    :param data: the raw blob (``/sys/kernel/btf/vmlinux``, a ``.BTF``
        section, or the bytes between ``__start_BTF`` and ``__stop_BTF``).
    :raises BTFError: if the header or the type section is malformed.
    """

    def __init__(self, data: bytes) -> None:
        if len(data) < _HEADER_MIN:
            raise BTFError(f"BTF blob of {len(data)} bytes is shorter than its header")
        magic = int.from_bytes(data[:2], "little")
        if magic == BTF_MAGIC:
            self.byteorder = "little"
        elif int.from_bytes(data[:2], "big") == BTF_MAGIC:
            self.byteorder = "big"
        else:
            raise BTFError(f"bad BTF magic {data[:2].hex()} (want eb9f)")
        e = "<" if self.byteorder == "little" else ">"
        self._e = e
        version, _flags, hdr_len, type_off, type_len, str_off, str_len = (
            struct.unpack_from(e + "BBIIIII", data, 2)
        )
        if version != 1:
            raise BTFError(f"BTF version {version} is not supported (want 1)")
        if hdr_len < _HEADER_MIN or hdr_len > len(data):
            raise BTFError(f"BTF header length {hdr_len} out of range")
        if any(data[_HEADER_MIN:hdr_len]):
            # btf.rst: a larger header is allowed only if the unknown part is 0.
            raise BTFError("BTF header has unknown non-zero fields")
        body = len(data) - hdr_len
        for what, off, ln in (
            ("type", type_off, type_len),
            ("string", str_off, str_len),
        ):
            if off + ln > body:
                raise BTFError(
                    f"BTF {what} section [{off:#x}+{ln:#x}] lies outside "
                    f"the blob ({body:#x} bytes after the header)"
                )
        if type_off % 4:
            raise BTFError(f"BTF type section offset {type_off:#x} is not 4-aligned")
        if type_off < str_off + str_len and str_off < type_off + type_len:
            raise BTFError("BTF type and string sections overlap")
        if (
            not str_len
            or data[hdr_len + str_off] != 0
            or data[hdr_len + str_off + str_len - 1] != 0
        ):
            raise BTFError("BTF string section does not start and end with NUL")
        self.data = bytes(data)
        self._str_start = hdr_len + str_off
        self._str_end = self._str_start + str_len
        self._type_start = hdr_len + type_off
        self._type_end = self._type_start + type_len
        self._u32x3 = struct.Struct(e + "III").unpack_from
        self._u32 = struct.Struct(e + "I").unpack_from
        self._i32 = struct.Struct(e + "i").unpack_from
        self._offsets = array("Q", [0])
        self._kinds = bytearray(1)
        self._index: Dict[bytes, List[int]] = {}
        self._enumerators: Optional[Dict[str, Tuple[int, int]]] = None
        self._funcs: Optional[Dict[bytes, List[int]]] = None
        self._scan()

    # -- opening -------------------------------------------------------------

    def _scan(self) -> None:
        data = self.data
        unpack = self._u32x3
        strtab_find = data.find
        s0, s1 = self._str_start, self._str_end
        offsets, kinds, index = self._offsets, self._kinds, self._index
        extra = _EXTRA
        func = Kind.FUNC
        pos, end = self._type_start, self._type_end
        tid = 0
        while pos < end:
            if pos + 12 > end:
                raise BTFError(f"type {tid + 1} header at {pos:#x} is truncated")
            name_off, info, _ = unpack(data, pos)
            kind = (info >> 24) & 0x1F
            if kind >= len(extra) or kind == Kind.UNKN:
                raise BTFError(f"type {tid + 1} has unknown kind {kind}")
            fixed, per = extra[kind]
            size = 12 + fixed + per * (info & 0xFFFF)
            if pos + size > end:
                raise BTFError(
                    f"type {tid + 1} ({Kind.NAMES[kind]}) runs past the type section"
                )
            tid += 1
            if tid > BTF_MAX_TYPE:
                raise BTFError(f"more than {BTF_MAX_TYPE} types")
            offsets.append(pos)
            kinds.append(kind)
            # FUNCs are half of a vmlinux's types and rarely looked up by
            # name: they are indexed on first use (_func_index()).
            if name_off and kind != func:
                a = s0 + name_off
                z = strtab_find(b"\0", a, s1)
                if a >= s1 or z < 0:
                    raise BTFError(
                        f"type {tid} name offset {name_off:#x} is outside "
                        "the string section"
                    )
                name = data[a:z]
                ids = index.get(name)
                if ids is None:
                    index[name] = [tid]
                else:
                    ids.append(tid)
            pos += size
        self.nr_types = tid

    # -- raw access ----------------------------------------------------------

    def string(self, offset: int) -> Optional[str]:
        """The string at *offset* of the string section; None for offset 0."""
        if not offset:
            return None
        a = self._str_start + offset
        z = self.data.find(b"\0", a, self._str_end)
        if a >= self._str_end or z < 0:
            raise BTFError(f"string offset {offset:#x} is outside the string section")
        return self.data[a:z].decode("utf-8", "replace")

    def _check(self, type_id: int) -> int:
        if not 0 < type_id <= self.nr_types:
            raise BTFError(f"type id {type_id} out of range (1..{self.nr_types})")
        return self._offsets[type_id]

    def kind(self, type_id: int) -> int:
        """``BTF_KIND_*`` of *type_id* (``Kind.UNKN`` for id 0, void)."""
        if type_id == 0:
            return Kind.UNKN
        self._check(type_id)
        return self._kinds[type_id]

    def header(self, type_id: int) -> Tuple[int, int, bool, int]:
        """``(kind, vlen, kind_flag, size_or_type)`` of *type_id*."""
        pos = self._check(type_id)
        _, info, size_type = self._u32x3(self.data, pos)
        return (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31), size_type

    def name(self, type_id: int) -> Optional[str]:
        """The name of *type_id*, or None if anonymous."""
        if type_id == 0:
            return None
        return self.string(self._u32(self.data, self._check(type_id))[0])

    def _items(self, type_id: int, kind: int, fmt: str) -> Iterator[Tuple[int, ...]]:
        pos = self._check(type_id)
        _, info, _ = self._u32x3(self.data, pos)
        if (info >> 24) & 0x1F != kind:
            raise BTFError(
                f"type {type_id} is {Kind.NAMES[(info >> 24) & 0x1F]}, "
                f"not {Kind.NAMES[kind]}"
            )
        item = struct.Struct(self._e + fmt)
        pos += 12 + _EXTRA[kind][0]
        for _ in range(0 if kind in _NO_VLEN_ITEMS else info & 0xFFFF):
            yield item.unpack_from(self.data, pos)
            pos += item.size

    def _extra_u32(self, type_id: int, kind: int) -> int:
        k, _, _, _ = self.header(type_id)
        if k != kind:
            raise BTFError(f"type {type_id} is {Kind.NAMES[k]}, not {Kind.NAMES[kind]}")
        return self._u32(self.data, self._offsets[type_id] + 12)[0]

    # -- decoded records -----------------------------------------------------

    def int_encoding(self, type_id: int) -> Tuple[int, int, int]:
        """``(encoding, bit offset, bits)`` of an INT (``BTF_INT_*`` macros)."""
        word = self._extra_u32(type_id, Kind.INT)
        return (word >> 24) & 0x0F, (word >> 16) & 0xFF, word & 0xFF

    def array(self, type_id: int) -> Tuple[int, int, int]:
        """``(element type, index type, nelems)`` of an ARRAY."""
        k, _, _, _ = self.header(type_id)
        if k != Kind.ARRAY:
            raise BTFError(f"type {type_id} is {Kind.NAMES[k]}, not ARRAY")
        return self._u32x3(self.data, self._offsets[type_id] + 12)

    def members(self, type_id: int) -> List[Member]:
        """Members of a STRUCT or UNION, bitfields decoded (``kind_flag``)."""
        kind, _, kflag, _ = self.header(type_id)
        if kind not in (Kind.STRUCT, Kind.UNION):
            raise BTFError(f"type {type_id} is {Kind.NAMES[kind]}, not STRUCT/UNION")
        out = []
        for name_off, mtype, offset in self._items(type_id, kind, "III"):
            if kflag:
                # btf.rst: with kind_flag, offset is bitfield_size << 24 | bit offset.
                out.append(
                    Member(
                        self.string(name_off), mtype, offset & 0xFFFFFF, offset >> 24
                    )
                )
            else:
                out.append(Member(self.string(name_off), mtype, offset, 0))
        return out

    def enumerators(self, type_id: int) -> Tuple[List[Tuple[str, int]], bool]:
        """
        ``([(name, value)], is_signed)`` of an ENUM or ENUM64. ``kind_flag``
        says signed; older BTF leaves it 0, so a negative 32-bit value also
        makes the enum signed.
        """
        kind, _, kflag, _ = self.header(type_id)
        out = []
        if kind == Kind.ENUM:
            signed = kflag
            raw = [
                (self.string(n) or "", v) for n, v in self._items(type_id, kind, "Ii")
            ]
            if not signed and any(v < 0 for _, v in raw):
                signed = True
            for name, v in raw:
                out.append((name, v if signed else v & 0xFFFFFFFF))
            return out, signed
        if kind == Kind.ENUM64:
            for n, lo, hi in self._items(type_id, kind, "III"):
                v = hi << 32 | lo
                if kflag and v >> 63:
                    v -= 1 << 64
                out.append((self.string(n) or "", v))
            return out, kflag
        raise BTFError(f"type {type_id} is {Kind.NAMES[kind]}, not ENUM/ENUM64")

    def params(self, type_id: int) -> Tuple[List[Param], bool]:
        """``(parameters, is_variadic)`` of a FUNC_PROTO."""
        params = [
            Param(self.string(n), t)
            for n, t in self._items(type_id, Kind.FUNC_PROTO, "II")
        ]
        variadic = bool(params) and params[-1].type_id == 0 and params[-1].name is None
        return (params[:-1] if variadic else params), variadic

    def var_linkage(self, type_id: int) -> int:
        """``btf_var.linkage`` of a VAR (0 static, 1 global, 2 extern)."""
        return self._extra_u32(type_id, Kind.VAR)

    def datasec(self, type_id: int) -> List[SecInfo]:
        """Variables of a DATASEC: ``(VAR type id, offset, size)``."""
        return [SecInfo(*t) for t in self._items(type_id, Kind.DATASEC, "III")]

    def decl_tag(self, type_id: int) -> Tuple[int, int]:
        """``(tagged type id, component index)`` of a DECL_TAG (-1: the type)."""
        _, _, _, target = self.header(type_id)
        idx = self._extra_u32(type_id, Kind.DECL_TAG)
        return target, idx - (1 << 32) if idx >> 31 else idx

    # -- lookups -------------------------------------------------------------

    def _func_index(self) -> Dict[bytes, List[int]]:
        if self._funcs is None:
            funcs: Dict[bytes, List[int]] = {}
            for tid in self.ids_of_kind(Kind.FUNC):
                name = self.name(tid)
                if name:
                    funcs.setdefault(name.encode(), []).append(tid)
            self._funcs = funcs
        return self._funcs

    def find(self, name: str, kinds: Iterable[int] = ()) -> List[int]:
        """Type ids named *name*, in id order, optionally only of *kinds*."""
        key = name.encode()
        want = frozenset(kinds)
        ids = list(self._index.get(key, ()))
        if not want or Kind.FUNC in want:
            ids = sorted(ids + self._func_index().get(key, []))
        if not want:
            return ids
        return [t for t in ids if self._kinds[t] in want]

    def names(self) -> Iterator[str]:
        """Every distinct type name (FUNCs included)."""
        names = set(self._index) | set(self._func_index())
        return (n.decode("utf-8", "replace") for n in names)

    def ids_of_kind(self, kind: int) -> Iterator[int]:
        """Type ids of one kind, in order."""
        kinds = self._kinds
        start = 0
        while True:
            i = kinds.find(kind, start + 1)
            if i < 0:
                return
            yield i
            start = i

    def enumerator(self, name: str) -> Optional[Tuple[int, int]]:
        """
        ``(enum type id, value)`` of an enumerator constant; the first
        lookup indexes every ENUM/ENUM64 (the first definition wins).
        """
        if self._enumerators is None:
            table: Dict[str, Tuple[int, int]] = {}
            for kind in (Kind.ENUM, Kind.ENUM64):
                for tid in self.ids_of_kind(kind):
                    for ename, value in self.enumerators(tid)[0]:
                        table.setdefault(ename, (tid, value))
            self._enumerators = table
        return self._enumerators.get(name)

    def __len__(self) -> int:
        return self.nr_types
