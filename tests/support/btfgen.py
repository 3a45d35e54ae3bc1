"""
A small BTF encoder for tests: drgn types (from DWARF, or built with drgn's
constructors) to a BTF blob laid out as Documentation/bpf/btf.rst says, the
way pahole encodes a vmlinux (structs with bitfields use ``kind_flag``,
incomplete structs become FWD, 64-bit enums with wide values ENUM64).

It encodes the closure of the given root types, so a real kernel's DWARF
(the 6.12 fixtures have no BTF; pahole 1.24 cannot read their dwz'd debug
file) yields a BTF blob of exactly that kernel's layouts.
"""

from __future__ import annotations

import struct
from typing import Dict, Iterable, List, Optional, Tuple

import drgn
from drgn import Qualifiers, Type, TypeKind

KIND = {
    "INT": 1,
    "PTR": 2,
    "ARRAY": 3,
    "STRUCT": 4,
    "UNION": 5,
    "ENUM": 6,
    "FWD": 7,
    "TYPEDEF": 8,
    "VOLATILE": 9,
    "CONST": 10,
    "RESTRICT": 11,
    "FUNC": 12,
    "FUNC_PROTO": 13,
    "VAR": 14,
    "DATASEC": 15,
    "FLOAT": 16,
    "DECL_TAG": 17,
    "TYPE_TAG": 18,
    "ENUM64": 19,
}


def info(kind: str, vlen: int = 0, kflag: bool = False) -> int:
    return (int(kflag) << 31) | (KIND[kind] << 24) | (vlen & 0xFFFF)


class Encoder:
    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self._str: Dict[str, int] = {"": 0}
        self.records: List[bytes] = []
        self._named: Dict[Tuple[str, str], int] = {}

    def string(self, s: Optional[str]) -> int:
        if not s:
            return 0
        off = self._str.get(s)
        if off is None:
            off = self._str[s] = len(self.strings)
            self.strings += s.encode() + b"\0"
        return off

    def _reserve(self) -> int:
        self.records.append(b"")
        return len(self.records)

    def add(self, name_off: int, info_: int, size_type: int, extra: bytes = b"") -> int:
        self.records.append(struct.pack("<III", name_off, info_, size_type) + extra)
        return len(self.records)

    def _set(
        self, tid: int, name_off: int, info_: int, size_type: int, extra: bytes = b""
    ) -> int:
        self.records[tid - 1] = struct.pack("<III", name_off, info_, size_type) + extra
        return tid

    def type(self, t: Type) -> int:
        quals = t.qualifiers
        if quals:
            tid = self.type(t.unqualified())
            for q, kind in (
                (Qualifiers.VOLATILE, "VOLATILE"),
                (Qualifiers.CONST, "CONST"),
                (Qualifiers.RESTRICT, "RESTRICT"),
            ):
                if quals & q:
                    tid = self.add(0, info(kind), tid)
            return tid
        k = t.kind
        key = None
        if k in (TypeKind.STRUCT, TypeKind.UNION, TypeKind.ENUM) and t.tag:
            key = (k.name, t.tag)
        elif k in (TypeKind.TYPEDEF, TypeKind.INT, TypeKind.BOOL, TypeKind.FLOAT):
            key = (k.name, t.name)
        if key is not None and key in self._named:
            return self._named[key]
        if k == TypeKind.VOID:
            return 0
        if k in (TypeKind.INT, TypeKind.BOOL):
            enc = 4 if k == TypeKind.BOOL else int(t.is_signed)
            tid = self.add(
                self.string(t.name),
                info("INT"),
                t.size,
                struct.pack("<I", enc << 24 | t.size * 8),
            )
        elif k == TypeKind.FLOAT:
            tid = self.add(self.string(t.name), info("FLOAT"), t.size)
        elif k == TypeKind.POINTER:
            return self.add(0, info("PTR"), self.type(t.type))
        elif k == TypeKind.ARRAY:
            elem = self.type(t.type)
            index = self.type(drgn_int(t.prog))
            return self.add(
                0, info("ARRAY"), 0, struct.pack("<III", elem, index, t.length or 0)
            )
        elif k == TypeKind.TYPEDEF:
            tid = self._reserve()
            self._named[key] = tid  # type: ignore[index]
            return self._set(
                tid, self.string(t.name), info("TYPEDEF"), self.type(t.type)
            )
        elif k in (TypeKind.STRUCT, TypeKind.UNION):
            kind = "STRUCT" if k == TypeKind.STRUCT else "UNION"
            if not t.is_complete():
                tid = self.add(
                    self.string(t.tag), info("FWD", 0, k == TypeKind.UNION), 0
                )
            else:
                tid = self._reserve()
                if key is not None:
                    self._named[key] = tid
                members = t.members or ()
                kflag = any(m.bit_field_size for m in members)
                extra = b""
                for m in members:
                    mt = self.type(m.type)
                    off = m.bit_offset
                    if kflag:
                        off |= (m.bit_field_size or 0) << 24
                    extra += struct.pack("<III", self.string(m.name), mt, off)
                return self._set(
                    tid,
                    self.string(t.tag),
                    info(kind, len(members), kflag),
                    t.size,
                    extra,
                )
        elif k == TypeKind.ENUM:
            if not t.is_complete():
                tid = self.add(self.string(t.tag), info("ENUM"), 4)
            else:
                size = t.type.size
                signed = t.type.is_signed
                values = [(e.name, e.value) for e in t.enumerators]
                wide = size == 8
                extra = b""
                for name, v in values:
                    if wide:
                        v &= (1 << 64) - 1
                        extra += struct.pack(
                            "<III", self.string(name), v & 0xFFFFFFFF, v >> 32
                        )
                    else:
                        extra += struct.pack(
                            "<Ii" if signed else "<II", self.string(name), v
                        )
                tid = self.add(
                    self.string(t.tag),
                    info("ENUM64" if wide else "ENUM", len(values), signed),
                    size,
                    extra,
                )
        elif k == TypeKind.FUNCTION:
            ret = self.type(t.type)
            params = [(p.name, self.type(p.type)) for p in t.parameters]
            if t.is_variadic:
                params.append((None, 0))
            extra = b"".join(struct.pack("<II", self.string(n), pt) for n, pt in params)
            return self.add(0, info("FUNC_PROTO", len(params)), ret, extra)
        else:
            raise ValueError(f"cannot encode {t}")
        if key is not None:
            self._named[key] = tid
        return tid

    def var(self, name: str, t: Type) -> int:
        return self.add(
            self.string(name), info("VAR"), self.type(t), struct.pack("<I", 1)
        )

    def datasec(self, name: str, entries: Iterable[Tuple[int, int, int]]) -> int:
        entries = list(entries)
        extra = b"".join(struct.pack("<III", *e) for e in entries)
        return self.add(self.string(name), info("DATASEC", len(entries)), 0, extra)

    def blob(self) -> bytes:
        types = b"".join(self.records)
        hdr = struct.pack(
            "<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(self.strings)
        )
        return hdr + types + bytes(self.strings)


def drgn_int(prog: drgn.Program) -> Type:
    return prog.type("unsigned int")


def encode(
    prog: drgn.Program,
    roots: Iterable[Type],
    percpu: Iterable[Tuple[str, Type, int]] = (),
) -> bytes:
    """BTF for *roots* and everything they reference; *percpu* adds VARs."""
    enc = Encoder()
    for t in roots:
        enc.type(t)
    secinfo = []
    for name, t, offset in percpu:
        secinfo.append((enc.var(name, t), offset, t.size or 0))
    if secinfo:
        enc.datasec(".data..percpu", secinfo)
    return enc.blob()
