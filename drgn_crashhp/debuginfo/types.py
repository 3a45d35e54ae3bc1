"""
BTF types for drgn
------------------

A drgn type finder over a :class:`~drgn_crashhp.debuginfo.btf.BTF` blob:
each BTF type becomes a drgn :class:`~drgn.Type` the first time it is asked
for, through drgn's public constructors (``prog.struct_type()`` ...), and is
cached. Struct and union members are converted lazily (drgn's callable
:class:`~drgn.TypeMember`), so a self-referencing struct costs nothing and
opening costs nothing. Forward declarations resolve to the complete type of
the same name.

A corrupt blob (a type id out of range, a reference cycle that does not pass
through a struct member, a size drgn rejects) raises
:class:`~drgn_crashhp.debuginfo.btf.BTFError`.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Set, Union

from drgn import (
    Object,
    Program,
    Qualifiers,
    Type,
    TypeEnumerator,
    TypeKind,
    TypeKindSet,
    TypeMember,
    TypeParameter,
    sizeof,
)

from drgn_crashhp.debuginfo.btf import BTF, INT_BOOL, INT_SIGNED, BTFError, Kind

__all__ = ("BtfTypes",)

#: Deepest chain of non-struct references (pointer to const to typedef ...)
#: followed in one conversion; real kernels need fewer than 20.
MAX_DEPTH = 128
_QUALIFIER = {
    Kind.CONST: Qualifiers.CONST,
    Kind.VOLATILE: Qualifiers.VOLATILE,
    Kind.RESTRICT: Qualifiers.RESTRICT,
}
_INT_NAMES = {
    (1, True): "signed char",
    (1, False): "unsigned char",
    (2, True): "short",
    (2, False): "unsigned short",
    (4, True): "int",
    (4, False): "unsigned int",
    (8, True): "long",
    (8, False): "unsigned long",
}
#: Sizes the kernel's BTF verifier accepts (kernel/bpf/btf.c).
_INT_SIZES = frozenset((1, 2, 4, 8, 16))
_FLOAT_SIZES = frozenset((2, 4, 8, 12, 16))
_ENUM_SIZES = frozenset((1, 2, 4, 8))
#: Kinds a member's bitfield INT can hide behind.
_TRANSPARENT = frozenset(
    (Kind.TYPEDEF, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG)
)
#: drgn type kinds asked for -> BTF kinds that can answer, in preference order.
_BY_KIND = {
    TypeKind.STRUCT: (Kind.STRUCT, Kind.FWD),
    TypeKind.UNION: (Kind.UNION, Kind.FWD),
    TypeKind.ENUM: (Kind.ENUM, Kind.ENUM64),
    TypeKind.TYPEDEF: (Kind.TYPEDEF,),
    TypeKind.INT: (Kind.INT,),
    TypeKind.BOOL: (Kind.INT,),
    TypeKind.FLOAT: (Kind.FLOAT,),
}


class BtfTypes:
    """drgn types converted from one BTF blob, on demand."""

    def __init__(self, prog: Program, btf: BTF) -> None:
        self.prog = prog
        self.btf = btf
        self._cache: Dict[int, Type] = {}
        self._active: Set[int] = set()
        self._bases: Dict[int, int] = {}
        #: Types BTF lacks but a check needs, built from other BTF types
        #: (name -> builder); see :mod:`drgn_crashhp.debuginfo.globals`.
        self.fallbacks: Dict[str, Callable[[], Type]] = {}

    # -- drgn type finder ----------------------------------------------------

    def find(
        self, prog: Program, kinds: TypeKindSet, name: str, filename: Optional[str]
    ) -> Optional[Type]:
        """``register_type_finder()`` callback: ``(prog, kinds, name, filename)``."""
        for kind in kinds:
            btf_kinds = _BY_KIND.get(kind)
            if not btf_kinds:
                continue
            tid = self.lookup(name, btf_kinds)
            if tid is not None:
                type_ = self.type(tid)
                if type_.kind == kind:
                    return type_
        if TypeKind.TYPEDEF in kinds and name in self.fallbacks:
            return self.fallbacks[name]()
        return None

    def lookup(self, name: str, kinds: tuple[int, ...]) -> Optional[int]:
        """
        The type id for *name* among *kinds*: a complete definition first
        (an ENUM with enumerators, a STRUCT/UNION rather than a FWD), else
        the first match.
        """
        ids = self.btf.find(name, kinds)
        if not ids:
            return None
        for tid in ids:
            kind, vlen, _, _ = self.btf.header(tid)
            if kind != Kind.FWD and (kind not in (Kind.ENUM, Kind.ENUM64) or vlen):
                return tid
        return ids[0]

    # -- conversion ----------------------------------------------------------

    def type(self, type_id: int) -> Type:
        """The drgn type of BTF *type_id* (0 is void)."""
        cached = self._cache.get(type_id)
        if cached is not None:
            return cached
        if type_id in self._active:
            raise BTFError(f"type reference cycle through type {type_id}")
        if len(self._active) >= MAX_DEPTH:
            raise BTFError(f"type references nest deeper than {MAX_DEPTH}")
        self._active.add(type_id)
        try:
            result = self._convert(type_id)
        except (ValueError, OverflowError, TypeError, RecursionError) as e:
            if isinstance(e, BTFError):
                raise
            # drgn rejects what no compiler emits (e.g. a 0-byte integer, a
            # type nested past its own depth limit).
            raise BTFError(f"type {type_id}: {type(e).__name__}: {e}") from e
        finally:
            self._active.discard(type_id)
        self._cache[type_id] = result
        return result

    def _convert(self, tid: int) -> Type:
        prog, btf = self.prog, self.btf
        if tid == 0:
            return prog.void_type()
        kind, vlen, kflag, size_type = btf.header(tid)
        name = btf.name(tid)
        if kind == Kind.INT:
            encoding, int_off, bits = btf.int_encoding(tid)
            # The kernel's BTF verifier (kernel/bpf/btf.c btf_int_check_meta()).
            if (
                size_type not in _INT_SIZES
                or bits > 128
                or int_off + bits > 8 * size_type
            ):
                raise BTFError(
                    f"type {tid}: INT of {size_type} bytes, {bits} bits at "
                    f"bit {int_off}"
                )
            if encoding & INT_BOOL:
                return prog.bool_type(name or "_Bool", size_type)
            return prog.int_type(
                name or _INT_NAMES.get((size_type, bool(encoding & INT_SIGNED)), "int"),
                size_type,
                bool(encoding & INT_SIGNED),
            )
        if kind == Kind.FLOAT:
            if size_type not in _FLOAT_SIZES:
                raise BTFError(f"type {tid}: FLOAT of {size_type} bytes")
            return prog.float_type(name or "double", size_type)
        if kind == Kind.PTR:
            return prog.pointer_type(self.type(size_type))
        if kind == Kind.ARRAY:
            elem_id, _, nelems = btf.array(tid)
            elem = self.type(elem_id)
            try:
                # Elements must have a size (void, functions and incomplete
                # structs do not), as the kernel's BTF verifier requires.
                sizeof(elem)
            except TypeError as e:
                raise BTFError(f"type {tid}: array of type {elem_id}: {e}") from e
            return prog.array_type(elem, nelems)
        if kind == Kind.TYPEDEF:
            return prog.typedef_type(name or "", self.type(size_type))
        if kind in _QUALIFIER:
            base = self.type(size_type)
            return base.qualified(base.qualifiers | _QUALIFIER[kind])
        if kind == Kind.TYPE_TAG:
            # __user, __rcu, __percpu: no meaning for reading memory.
            return self.type(size_type)
        if kind in (Kind.STRUCT, Kind.UNION):
            make = prog.struct_type if kind == Kind.STRUCT else prog.union_type
            return make(name, size_type, self._members(tid))
        if kind in (Kind.ENUM, Kind.ENUM64):
            if size_type not in _ENUM_SIZES:
                raise BTFError(f"type {tid}: {Kind.NAMES[kind]} of {size_type} bytes")
            values, signed = btf.enumerators(tid)
            compatible = prog.int_type(
                _INT_NAMES.get((size_type, signed), "int"), size_type, signed
            )
            if not vlen:
                return prog.enum_type(name, None, None)
            return prog.enum_type(
                name, compatible, [TypeEnumerator(n, v) for n, v in values]
            )
        if kind == Kind.FWD:
            want = Kind.UNION if kflag else Kind.STRUCT
            full = self.lookup(name, (want,)) if name else None
            if full is not None:
                return self.type(full)
            make = prog.union_type if kflag else prog.struct_type
            return make(name, None, None)
        if kind == Kind.FUNC_PROTO:
            params, variadic = btf.params(tid)
            return prog.function_type(
                self.type(size_type),
                [TypeParameter(self._lazy(p.type_id), p.name) for p in params],
                variadic,
            )
        if kind in (Kind.FUNC, Kind.VAR):
            return self.type(size_type)
        raise BTFError(f"type {tid} is a {Kind.NAMES[kind]}, which has no C type")

    def _lazy(self, type_id: int) -> Callable[[], Type]:
        return lambda: self.type(type_id)

    def _member(self, type_id: int) -> Callable[[], Object]:
        def make() -> Object:
            type_ = self.type(type_id)
            try:
                # What drgn itself makes of a member (an absent object): it
                # refuses void and function members, as the kernel's BTF
                # verifier does.
                return Object(self.prog, type_)
            except (ValueError, TypeError, OverflowError) as e:
                raise BTFError(f"type {type_id} cannot be a member: {e}") from e

        return make

    def _int_base(self, type_id: int) -> int:
        """
        The INT a member type is through typedefs and qualifiers, or 0.
        Memoized along the whole path, so a struct of 65535 members over
        long chains still costs one walk per type.
        """
        path = []
        tid = type_id
        while tid and tid not in self._bases:
            kind = self.btf.kind(tid)
            if kind not in _TRANSPARENT:
                break
            path.append(tid)
            if len(path) > MAX_DEPTH:
                for t in path:
                    self._bases[t] = -1
                break
            tid = self.btf.header(tid)[3]
        if tid in self._bases:
            base = self._bases[tid]
        else:
            base = tid if tid and self.btf.kind(tid) == Kind.INT else 0
        for t in path:
            self._bases.setdefault(t, base)
        if self._bases.get(type_id, base) < 0:
            raise BTFError(
                f"type references from {type_id} nest deeper than {MAX_DEPTH}"
            )
        return base

    def _members(self, tid: int) -> List[TypeMember]:
        out = []
        for m in self.btf.members(tid):
            bit_offset = m.bit_offset
            make: Callable[[], Union[Type, Object]]
            if m.bitfield_size:
                make = self._bitfield(m.type_id, m.bitfield_size)
            else:
                # Without kind_flag, a bitfield's width and extra offset are
                # in its INT type (btf.rst, BTF_KIND_STRUCT).
                base = self._int_base(m.type_id)
                if base:
                    _, int_off, bits = self.btf.int_encoding(base)
                    if int_off or bits != self.btf.header(base)[3] * 8:
                        make = self._bitfield(m.type_id, bits)
                        bit_offset += int_off
                    else:
                        make = self._member(m.type_id)
                else:
                    make = self._member(m.type_id)
            out.append(TypeMember(make, m.name, bit_offset))
        return out

    def _bitfield(self, type_id: int, bits: int) -> Callable[[], Object]:
        def make() -> Object:
            type_ = self.type(type_id)
            try:
                return Object(self.prog, type_, bit_field_size=bits)
            except (ValueError, TypeError, OverflowError) as e:
                raise BTFError(f"type {type_id}: bitfield of {bits} bits: {e}") from e

        return make
