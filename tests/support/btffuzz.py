"""
Fuzz target for the BTF reader and the BTF type/object finders: mutated real
and synthetic BTF blobs must end in values or :class:`BTFError`, quickly.
Used by tests/test_btf_fuzz.py (a fixed subset) and tests/fuzz/fuzz_btf.py
(the long run). Seeds: tests/seeds/btf-*.bin.xz (see :func:`make_seeds`).
"""

from __future__ import annotations

import functools
import lzma
import struct
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import drgn
from drgn import (
    FindObjectFlags,
    Object,
    Platform,
    PlatformFlags,
    Program,
    Qualifiers,
    TypeEnumerator,
    TypeKind,
    TypeKindSet,
    TypeMember,
    TypeParameter,
)
from hypothesis import strategies as st

from drgn_crashhp.debuginfo.btf import BTF, BTFError, Kind
from drgn_crashhp.debuginfo.objects import BtfObjects, MissingGlobal
from drgn_crashhp.debuginfo.types import BtfTypes
from tests.support import btfgen
from tests.support.fuzzing import Target, mutated

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
X86_64 = Platform(
    drgn.Architecture.X86_64, PlatformFlags.IS_64_BIT | PlatformFlags.IS_LITTLE_ENDIAN
)
#: Types converted per input: enough to reach every kind in the seeds.
MAX_CONVERT = 1500
#: Per-record item sizes after the 12-byte header: (fixed, per vlen item,
#: name offsets within an item or None).
_LAYOUT = {
    Kind.INT: (4, 0),
    Kind.ARRAY: (12, 0),
    Kind.STRUCT: (0, 12),
    Kind.UNION: (0, 12),
    Kind.ENUM: (0, 8),
    Kind.FUNC_PROTO: (0, 8),
    Kind.VAR: (4, 0),
    Kind.DATASEC: (0, 12),
    Kind.DECL_TAG: (4, 0),
    Kind.ENUM64: (0, 12),
}
_NAMED_ITEMS = (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.FUNC_PROTO, Kind.ENUM64)


def records(data: bytes) -> List[Tuple[int, int, int, int]]:
    """``(offset, kind, vlen, size)`` of each type record of a valid blob."""
    btf = BTF(data)
    out = []
    for tid in range(1, len(btf) + 1):
        kind, vlen, _, _ = btf.header(tid)
        fixed, per = _LAYOUT.get(kind, (0, 0))
        items = 0 if kind == Kind.FUNC else vlen
        out.append((btf._offsets[tid], kind, vlen, 12 + fixed + per * items))
    return out


_REFERS = (
    Kind.PTR,
    Kind.TYPEDEF,
    Kind.VOLATILE,
    Kind.CONST,
    Kind.RESTRICT,
    Kind.FUNC,
    Kind.FUNC_PROTO,
    Kind.VAR,
    Kind.DECL_TAG,
    Kind.TYPE_TAG,
)


def _refs(btf: BTF, tid: int) -> List[int]:
    kind, vlen, _, st_ = btf.header(tid)
    out = [st_] if kind in _REFERS else []
    if kind == Kind.ARRAY:
        out += btf.array(tid)[:2]
    elif kind in (Kind.STRUCT, Kind.UNION):
        out += [m.type_id for m in btf.members(tid)]
    elif kind == Kind.FUNC_PROTO:
        out += [p.type_id for p in btf.params(tid)[0]]
    elif kind == Kind.DATASEC:
        out += [i.type_id for i in btf.datasec(tid)]
    return out


def _closure(btf: BTF, roots: Sequence[int], limit: int = 1 << 20) -> set:
    keep: set = set()
    todo = [r for r in roots if r]
    while todo and len(keep) < limit:
        tid = todo.pop()
        if tid in keep:
            continue
        keep.add(tid)
        todo += [r for r in _refs(btf, tid) if r and r not in keep]
    return keep


def _closure_size(btf: BTF, tid: int) -> int:
    return len(_closure(btf, [tid], 12))


def extract(data: bytes, roots: Sequence[int]) -> bytes:
    """
    The types *roots* reference, directly or not, from a real blob,
    renumbered in their original order, with only the strings they use:
    valid BTF made of the real records.
    """
    btf = BTF(data)
    order = sorted(_closure(btf, roots))
    new = {old: i + 1 for i, old in enumerate(order)}
    new[0] = 0
    e = "<" if btf.byteorder == "little" else ">"
    strings = bytearray(b"\0")
    remap: Dict[int, int] = {0: 0}

    def name(off: int) -> int:
        if off not in remap:
            remap[off] = len(strings)
            strings.extend((btf.string(off) or "").encode() + b"\0")
        return remap[off]

    spans = {off: (kind, vlen, size) for off, kind, vlen, size in records(data)}
    out = bytearray()
    for tid in order:
        off = btf._offsets[tid]
        kind, vlen, size = spans[off]
        rec = bytearray(data[off : off + size])
        name_off, info, st_ = struct.unpack_from(e + "III", rec)
        struct.pack_into(
            e + "III",
            rec,
            0,
            name(name_off),
            info,
            new[st_] if kind in _REFERS else st_,
        )
        if kind == Kind.ARRAY:
            elem, index, nelems = struct.unpack_from(e + "III", rec, 12)
            struct.pack_into(e + "III", rec, 12, new[elem], new[index], nelems)
        if kind in _NAMED_ITEMS:
            per = _LAYOUT[kind][1]
            for i in range(vlen):
                at = 12 + i * per
                item_name, item_type = struct.unpack_from(e + "II", rec, at)
                if kind in (Kind.ENUM, Kind.ENUM64):
                    struct.pack_into(e + "I", rec, at, name(item_name))
                else:
                    struct.pack_into(e + "II", rec, at, name(item_name), new[item_type])
        if kind == Kind.DATASEC:
            for i in range(vlen):
                at = 12 + i * 12
                struct.pack_into(
                    e + "I", rec, at, new[struct.unpack_from(e + "I", rec, at)[0]]
                )
        out += rec
    hdr = struct.pack(
        e + "HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(out), len(out), len(strings)
    )
    return hdr + bytes(out) + bytes(strings)


def all_kinds_blob() -> bytes:
    """
    A small blob with every kind: built with drgn's constructors and
    encoded by tests/support/btfgen.py, plus records the encoder does not write
    (old-style INT bitfield, TYPE_TAG, DECL_TAG, FUNC).
    """
    prog = Program(X86_64)
    u32 = prog.int_type("unsigned int", 4, False)
    s64 = prog.int_type("long", 8, True)
    node = prog.struct_type(
        "node",
        24,
        (
            TypeMember(prog.pointer_type(prog.struct_type("node")), "next", 0),
            TypeMember(Object(prog, u32, bit_field_size=3), "low", 64),
            TypeMember(Object(prog, u32, bit_field_size=29), "high", 67),
            TypeMember(
                prog.union_type(
                    None,
                    8,
                    (
                        TypeMember(s64, "a", 0),
                        TypeMember(prog.float_type("double", 8), "d", 0),
                    ),
                ),
                None,
                128,
            ),
        ),
    )
    wide = prog.enum_type(
        "wide",
        prog.int_type("unsigned long", 8, False),
        (TypeEnumerator("W_BIG", 1 << 40), TypeEnumerator("W_SMALL", 1)),
    )
    neg = prog.enum_type(
        "neg",
        prog.int_type("int", 4, True),
        (TypeEnumerator("N_MINUS", -1), TypeEnumerator("N_ONE", 1)),
    )
    fn = prog.function_type(s64, (TypeParameter(prog.pointer_type(node), "n"),), True)
    roots = [
        node,
        wide,
        neg,
        prog.pointer_type(fn),
        prog.typedef_type(
            "node_t", node.qualified(Qualifiers.CONST | Qualifiers.VOLATILE)
        ),
        prog.array_type(prog.bool_type("_Bool", 1), 7),
        prog.pointer_type(prog.union_type("opaque")),
        prog.pointer_type(u32).qualified(Qualifiers.RESTRICT),
        prog.struct_type(
            "holder", 8, (TypeMember(prog.array_type(u32, 0), "tail", 0),)
        ),
    ]
    enc = btfgen.Encoder()
    for t in roots:
        enc.type(t)
    int_bits = enc.add(
        enc.string("unsigned int"),
        btfgen.info("INT"),
        4,
        struct.pack("<I", 5 << 16 | 3),
    )  # 3 bits at bit offset 5
    enc.add(
        enc.string("old_bits"),
        btfgen.info("STRUCT", 1),
        4,
        struct.pack("<III", enc.string("flag"), int_bits, 0),
    )
    tag = enc.add(enc.string("user"), btfgen.info("TYPE_TAG"), int_bits)
    enc.add(0, btfgen.info("PTR"), tag)
    proto = enc.type(fn)
    func = enc.add(enc.string("node_walk"), btfgen.info("FUNC", 1), proto)
    enc.add(enc.string("hot"), btfgen.info("DECL_TAG"), func, struct.pack("<i", -1))
    enc.add(enc.string("arg"), btfgen.info("DECL_TAG"), func, struct.pack("<i", 0))
    var = enc.var("per_cpu_node", node)
    enc.datasec(".data..percpu", [(var, 0x40, 24)])
    return enc.blob()


def make_seeds(host_btf: str = "/sys/kernel/btf/vmlinux") -> None:
    """Write tests/seeds/btf-*.bin.xz (run once by hand; the seeds are kept)."""
    (SEEDS / "btf-all-kinds.bin.xz").write_bytes(lzma.compress(all_kinds_blob()))
    with open(host_btf, "rb") as f:
        host = f.read()
    btf = BTF(host)
    roots = [
        t
        for n in (
            "printk_ringbuffer",
            "printk_info",
            "desc_state",
            "resource",
            "cpumask",
            "xa_node",
            "atomic_t",
            "elf_prstatus",
        )
        for t in btf.find(n)
    ]
    # Real FUNC, FUNC_PROTO and per-CPU VAR records with small closures
    # (a vmlinux DATASEC references every per-CPU variable: too big a seed).
    for kind, want in ((Kind.FUNC, 10), (Kind.VAR, 5)):
        small = [t for t in btf.ids_of_kind(kind) if _closure_size(btf, t) < 12]
        roots += small[:want]
    (SEEDS / "btf-host-closure.bin.xz").write_bytes(lzma.compress(extract(host, roots)))


@functools.cache
def seeds() -> Tuple[bytes, ...]:
    return tuple(
        lzma.decompress(p.read_bytes()) for p in sorted(SEEDS.glob("btf-*.bin.xz"))
    )


def fields(data: bytes) -> List[Tuple[int, int]]:
    """``(offset, size)`` of every header and record field of a seed."""
    out = [(o, 4) for o in range(4, 24, 4)] + [(0, 2), (2, 1), (3, 1)]
    for off, _, _, size in records(data):
        out += [(o, 4) for o in range(off, off + size, 4)]
        out.append((off + 7, 1))  # the kind byte of info
    return out


@functools.cache
def _info_fields(seed: bytes) -> frozenset:
    """Offsets of the ``info`` word of each record of a seed."""
    return frozenset(off + 4 for off, _, _, _ in records(seed))


@functools.cache
def _seed_fields() -> Dict[bytes, List[Tuple[int, int]]]:
    return {s: fields(s) for s in seeds()}


_U32 = st.one_of(
    st.sampled_from(
        (
            0,
            1,
            2,
            3,
            7,
            8,
            0x10,
            0x7F,
            0x80,
            0xFF,
            0xFFFF,
            0x10000,
            0x7FFFFFFF,
            0x80000000,
            0xFFFFFFFF,
        )
    ),
    st.integers(0, 0xFFFFFFFF),
)


@st.composite
def _records_mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """Header and sections intact; 1-8 record fields rewritten (type ids,
    kinds, vlen, sizes, bit offsets), so inputs reach the conversions."""
    data = bytearray(seed)
    fields = [f for f in _seed_fields()[seed] if f[0] >= 24]
    infos = _info_fields(seed)
    for _ in range(draw(st.integers(1, 8))):
        off, size = draw(st.sampled_from(fields))
        if off in infos and draw(st.integers(0, 3)):
            # A valid kind with another vlen or kind_flag: deeper than an
            # unknown kind, which the scan refuses at once.
            vlen = int.from_bytes(seed[off : off + 2], "little")
            value = (
                draw(st.booleans()) << 31
                | draw(st.integers(1, 19)) << 24
                | draw(st.sampled_from((vlen, vlen, vlen, 0, 1, 0xFFFF)))
            )
            data[off : off + 4] = value.to_bytes(4, "little")
        elif size == 1:
            data[off] = draw(st.sampled_from((*range(20), 0x80, 0x93, 0xFF)))
        else:
            small = draw(st.integers(0, 3)) == 0
            value = draw(st.integers(0, len(BTF(seed)) + 2)) if small else draw(_U32)
            data[off : off + 4] = value.to_bytes(4, "little")
    return bytes(data)


@st.composite
def btf_input(draw: st.DrawFn) -> bytes:
    seed = draw(st.sampled_from(seeds()))
    if draw(st.integers(0, 2)):
        return draw(_records_mutated(seed))
    return draw(mutated([seed], _seed_fields()[seed]))


def run_btf(data: bytes) -> str:
    """Open, convert up to MAX_CONVERT types, touch members, look names up."""
    btf = BTF(data)
    prog = Program(X86_64)
    types = BtfTypes(prog, btf)
    objects = BtfObjects(types)
    converted = failed = 0
    for tid in range(1, min(len(btf), MAX_CONVERT) + 1):
        kind = btf.kind(tid)
        try:
            if kind == Kind.DATASEC:
                btf.datasec(tid)
                continue
            if kind == Kind.DECL_TAG:
                btf.decl_tag(tid)
                continue
            t = types.type(tid)
            if t.kind in (TypeKind.STRUCT, TypeKind.UNION) and t.members:
                for m in t.members:
                    m.type, m.bit_field_size, m.bit_offset  # noqa: B018
            elif t.kind == TypeKind.FUNCTION:
                for p in t.parameters:
                    p.type  # noqa: B018
            elif t.kind == TypeKind.ENUM and t.enumerators:
                len(t.enumerators)
            converted += 1
        except BTFError:
            failed += 1
    for name in list(btf.names())[:50]:
        try:
            types.find(
                prog,
                TypeKindSet(
                    {TypeKind.STRUCT, TypeKind.TYPEDEF, TypeKind.ENUM, TypeKind.INT}
                ),
                name,
                None,
            )
            objects.find(
                prog, name, FindObjectFlags.CONSTANT | FindObjectFlags.VARIABLE, None
            )
        except (BTFError, MissingGlobal, LookupError):
            failed += 1
    return f"{len(btf)} types, {converted} converted, {failed} refused"


TARGET = Target("BTF(blob) + drgn types", btf_input(), run_btf, (BTFError,))
