"""
vmlinux symbols
---------------

Link-time values of a few named symbols, read straight from a vmlinux (or
its debug file) ``.symtab``: the section headers, the string table, and a
byte search of the symbol table for the entries that name them. A
distribution vmlinux has ~190,000 symbols; parsing them all (pyelftools'
name map) cost 95% of a report, this costs a read of two sections.
"""

from __future__ import annotations

import array
import struct
import sys
from typing import BinaryIO, Dict, Iterable, Optional, Tuple

__all__ = ("link_time_symbols",)

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
SHT_SYMTAB = 2
#: Bounds on what is read: a section table or string table larger than
#: these is not a kernel's.
MAX_SECTIONS = 1 << 16
MAX_TABLE = 1 << 30


def _section(f: BinaryIO, shoff: int, entsize: int, index: int) -> Tuple[int, ...]:
    f.seek(shoff + index * entsize)
    return _SHDR.unpack(f.read(_SHDR.size))


def _name_offsets(strtab: bytes, name: bytes) -> Iterable[int]:
    # Linkers merge string tails: "_end" may be the end of "__bss_end".
    needle = name + b"\0"
    at = strtab.find(needle)
    while at >= 0:
        yield at
        at = strtab.find(needle, at + 1)


def link_time_symbols(path: str, names: Iterable[str]) -> Dict[str, int]:
    """
    ``st_value`` of each of *names* that the ELF file at *path* defines (the
    first definition with a section index, as the link map has it).

    :raises OSError: if the file cannot be read.
    :raises ValueError: if it is not a little-endian ELF64 with a symbol table.
    """
    with open(path, "rb") as f:
        ehdr = f.read(_EHDR.size)
        if len(ehdr) < _EHDR.size or ehdr[:4] != b"\x7fELF" or ehdr[4:6] != b"\2\1":
            raise ValueError(f"{path}: not a little-endian ELF64 file")
        fields = _EHDR.unpack(ehdr)
        shoff, shentsize, shnum = fields[6], fields[11], fields[12]
        if shentsize != _SHDR.size or not 0 < shnum <= MAX_SECTIONS:
            raise ValueError(f"{path}: unexpected section header table")
        symtab: Optional[Tuple[int, ...]] = None
        for i in range(shnum):
            sh = _section(f, shoff, shentsize, i)
            if sh[1] == SHT_SYMTAB:
                symtab = sh
                break
        if symtab is None:
            raise ValueError(f"{path}: no .symtab")
        strtab = _section(f, shoff, shentsize, symtab[6])
        if symtab[5] > MAX_TABLE or strtab[5] > MAX_TABLE or symtab[9] != _SYM.size:
            raise ValueError(f"{path}: implausible symbol table")
        f.seek(strtab[4])
        strings = f.read(strtab[5])
        f.seek(symtab[4])
        table = f.read(symtab[5])
    wanted: Dict[int, str] = {}
    for name in names:
        for offset in _name_offsets(strings, name.encode()):
            wanted.setdefault(offset, name)
    # Every 6th 32-bit word of the table is an st_name: scan that column
    # rather than unpack 190,000 entries.
    words = array.array("I")
    words.frombytes(table[: len(table) // _SYM.size * _SYM.size])
    if sys.byteorder != "little":
        words.byteswap()
    hits = [i for i, st_name in enumerate(words[0::6]) if st_name in wanted]
    out: Dict[str, int] = {}
    for i in hits:
        st_name, _, _, shndx, value, _ = _SYM.unpack_from(table, i * _SYM.size)
        name = wanted[st_name]
        if shndx and name not in out:
            out[name] = value
    return out
