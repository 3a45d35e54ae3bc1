"""
Debug info without DWARF
------------------------

Run the checks from the kernel's own BTF and kallsyms when no vmlinux debug
info is available:

>>> prog = drgn.Program(); prog.set_core_dump("vmcore")
>>> load_btf_debuginfo(prog)
'btf+kallsyms: BTF from memory (__start_BTF), 107004 types; 190000 kallsyms symbols'

Types come from BTF (:mod:`.btf`, :mod:`.types`), symbols from kallsyms or a
``System.map`` (:mod:`.symbols`), and globals from both (:mod:`.objects`).
drgn's own helpers (cpumask, per-CPU, printk, xarray, memory blocks) work
on top of these finders.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

from drgn import Program, ProgramFlags, SymbolIndex

from drgn_crashhp.debuginfo.btf import BTF, BTFError
from drgn_crashhp.debuginfo.objects import GLOBALS, BtfObjects
from drgn_crashhp.debuginfo.symbols import SymbolsError, file_symbols, kallsyms
from drgn_crashhp.debuginfo.types import BtfTypes

__all__ = (
    "BTFError",
    "DebugInfoError",
    "GLOBALS",
    "find_btf",
    "load_btf_debuginfo",
    "read_btf_file",
)

#: /sys/kernel/btf/vmlinux of the running kernel.
SYSFS_BTF = "/sys/kernel/btf/vmlinux"
#: A vmlinux BTF is a few MB; refuse to read more from a corrupt symbol pair.
MAX_BTF_SIZE = 64 << 20
FINDER_NAME = "crashhp-btf"


class DebugInfoError(Exception):
    """BTF plus kallsyms cannot describe this target (one line)."""


def read_btf_file(path: str) -> BTF:
    """
    BTF from a file: a raw blob (``/sys/kernel/btf/vmlinux``, an extracted
    ``.BTF``) or an ELF vmlinux with a ``.BTF`` section.

    :raises DebugInfoError: unreadable, or no valid BTF in it.
    """
    try:
        with open(path, "rb") as f:
            is_elf = f.read(4) == b"\x7fELF"
            f.seek(0)
            data = b"" if is_elf else f.read(MAX_BTF_SIZE + 1)
    except OSError as e:
        raise DebugInfoError(f"cannot read {path}: {e.strerror or e}") from e
    if is_elf:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        try:
            with open(path, "rb") as f:
                section = ELFFile(f).get_section_by_name(".BTF")
                if section is None:
                    raise DebugInfoError(f"{path}: ELF file without a .BTF section")
                if section["sh_type"] == "SHT_NOBITS":
                    raise DebugInfoError(
                        f"{path}: its .BTF section has no contents (a debug-only file?)"
                    )
                data = section.data()
        except (ELFError, ValueError, OSError) as e:
            raise DebugInfoError(f"{path}: bad ELF file ({e})") from e
    elif len(data) > MAX_BTF_SIZE:
        raise DebugInfoError(f"{path}: larger than {MAX_BTF_SIZE >> 20} MiB, not BTF")
    try:
        return BTF(data)
    except BTFError as e:
        raise DebugInfoError(f"{path}: {e}") from e


def _address(prog: Program, symbols: Optional[SymbolIndex], name: str) -> Optional[int]:
    if symbols is None:
        try:
            return prog.symbol(name).address
        except LookupError:
            return None
    found = symbols(prog, name, None, True)
    return found[0].address if found else None


def _btf_from_memory(
    prog: Program, symbols: Optional[SymbolIndex]
) -> Tuple[Optional[BTF], str]:
    start = _address(prog, symbols, "__start_BTF")
    stop = _address(prog, symbols, "__stop_BTF")
    if start is None or stop is None:
        return None, "no __start_BTF/__stop_BTF symbols (CONFIG_DEBUG_INFO_BTF=n?)"
    if not 0 < stop - start <= MAX_BTF_SIZE:
        return None, f"__stop_BTF - __start_BTF = {stop - start:#x} is not a BTF size"
    try:
        data = prog.read(start, stop - start)
    except Exception as e:  # noqa: BLE001 - drgn FaultError or a libdrgn error
        return None, f"BTF at {start:#x} unreadable ({e})"
    try:
        return BTF(data), "memory (__start_BTF)"
    except BTFError as e:
        return None, f"BTF in memory at {start:#x} is corrupt: {e}"


def _is_local_live(prog: Program) -> bool:
    flags = ProgramFlags.IS_LIVE | ProgramFlags.IS_LOCAL
    return prog.flags & flags == flags


def find_btf(
    prog: Program, btf_path: Optional[str] = None, symbols: Optional[SymbolIndex] = None
) -> Tuple[BTF, str]:
    """
    The target's BTF and where it came from: *btf_path* if given, else
    ``/sys/kernel/btf/vmlinux`` on the running kernel, else the kernel's
    memory between ``__start_BTF`` and ``__stop_BTF`` (looked up in
    *symbols*, or in the program's symbol finders).

    :raises DebugInfoError: if none is usable.
    """
    if btf_path is not None:
        return read_btf_file(btf_path), btf_path
    if _is_local_live(prog) and os.path.exists(SYSFS_BTF):
        return read_btf_file(SYSFS_BTF), SYSFS_BTF
    btf, why = _btf_from_memory(prog, symbols)
    if btf is not None:
        return btf, why
    raise DebugInfoError(
        f"no BTF: {why}; pass --btf FILE (a raw BTF blob or a "
        "vmlinux with a .BTF section)"
    )


def load_btf_debuginfo(
    prog: Program, *, btf_path: Optional[str] = None, system_map: Optional[str] = None
) -> str:
    """
    Register kallsyms (or *system_map*, a ``System.map`` or an ELF vmlinux
    symbol table) as the symbol finder, and BTF type and object finders, on
    a program that has a target but no debug info.

    :return: one line saying what was loaded, e.g. ``btf+kallsyms: BTF from
        memory (__start_BTF), 107004 types; 28414 kallsyms symbols``.
    :raises DebugInfoError: if there are no symbols or no BTF.
    """
    if FINDER_NAME in prog.registered_type_finders():
        raise DebugInfoError("BTF debug info is already loaded in this program")
    # Nothing may create a type before the BTF type finder is registered:
    # drgn caches primitive types (char) on first use.
    try:
        index = file_symbols(prog, system_map) if system_map else kallsyms(prog)
    except SymbolsError as e:
        raise DebugInfoError(str(e)) from e
    btf, where = find_btf(prog, btf_path, index)
    types = BtfTypes(prog, btf)
    prog.register_type_finder(FINDER_NAME, types.find, enable_index=0)
    prog.register_symbol_finder(FINDER_NAME, index, enable_index=0)
    prog.register_object_finder(FINDER_NAME, BtfObjects(types).find, enable_index=0)
    nr_symbols = len(index(prog, None, None, False))
    source = "System.map" if system_map else "kallsyms"
    return (
        f"btf+kallsyms: BTF from {where}, {len(btf)} types; {nr_symbols} "
        f"{source} symbols"
    )
