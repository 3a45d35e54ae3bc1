"""
Field reader
------------

How the state readers turn a drgn lookup or fault into "could not read":
:class:`FieldReader` runs one reader per field and records an
:class:`~drgn_crashhp.facts.Unread` for the field when drgn cannot read it
(drgn's exception decides the kind).
"""

from __future__ import annotations

from typing import Callable, List, Optional, TypeVar

from drgn import FaultError, Program

from drgn_crashhp.arch import Arch, arch_named
from drgn_crashhp.facts import Unread, UnreadKind

__all__ = ("READ_ERRORS", "FieldReader", "target_arch")

T = TypeVar("T")

#: What drgn raises for a missing symbol, type or member, or unreadable memory.
READ_ERRORS = (
    LookupError,
    FaultError,
    ValueError,
    OverflowError,
    AttributeError,
    NotImplementedError,
)


class FieldReader:
    """Reads state fields, collecting why each unreadable one is unknown."""

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.unknown: List[Unread] = []

    def get(self, name: str, fn: Callable[[], T]) -> Optional[T]:
        """Run *fn*; on a drgn lookup or fault, record *name* as unknown."""
        try:
            return fn()
        except READ_ERRORS as e:
            # A fault names the address drgn could not read (CHP072 looks
            # the page up in a filtered dump's bitmaps).
            address = e.address if isinstance(e, FaultError) else None
            self.unknown.append(
                Unread(name, _kind(e), f"{type(e).__name__}: {e}", address)
            )
            return None


def _kind(e: Exception) -> UnreadKind:
    if isinstance(e, FaultError):
        return UnreadKind.NOT_IN_TARGET
    if isinstance(e, (LookupError, AttributeError, NotImplementedError)):
        return UnreadKind.MISSING_INFO
    return UnreadKind.MALFORMED


def target_arch(prog: Program) -> Arch:
    """The architecture of *prog*'s target."""
    return arch_named(prog.platform.arch.name if prog.platform else "")
