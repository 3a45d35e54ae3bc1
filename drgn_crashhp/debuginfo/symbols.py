"""
Kernel symbols without DWARF
----------------------------

Symbol finders for a kernel whose vmlinux is not at hand:

* kallsyms, through drgn's ``load_vmlinux_kallsyms()``: ``/proc/kallsyms``
  on the running kernel (as root), otherwise the kallsyms tables that
  VMCOREINFO describes (Linux 6.0+, commit f09bddbd8661 "vmcoreinfo: add
  kallsyms_num_syms symbol");
* a ``System.map`` or an ELF vmlinux with only a symbol table, for older
  kernels, shifted by VMCOREINFO's ``KERNELOFFSET`` (KASLR).

Data symbols (globals) are in kallsyms only with ``CONFIG_KALLSYMS_ALL``.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from drgn import (
    Program,
    ProgramFlags,
    Symbol,
    SymbolBinding,
    SymbolIndex,
    SymbolKind,
)
from drgn.helpers.linux.boot import kaslr_offset

from drgn_crashhp.arch import U64_MAX, arch_named

__all__ = ("SymbolsError", "file_symbols", "kallsyms", "vmcoreinfo")

_MAP_LINE = re.compile(rb"^([0-9a-fA-F]+) ([A-Za-z?-]) (\S+)")


class SymbolsError(Exception):
    """No usable symbol source (one line)."""


def _side_program(prog: Program) -> Program:
    """
    A second program on the same core dump, for reads that create types.

    drgn caches primitive types (``char``) on first use; reading
    ``prog["VMCOREINFO"]`` (a ``const char []``), as drgn's
    ``load_vmlinux_kallsyms()`` does, before the BTF type finder is
    registered would fix ``char`` to drgn's default signedness, while kernels
    since 6.2 build with ``-funsigned-char``. A core dump (or /proc/kcore) is
    therefore opened a second time; only a QEMU target, which cannot be
    opened twice, is read through *prog* itself.
    """
    side = prog.cache.get("crashhp_side_program")
    if side is not None:
        return side
    side = prog
    path = prog.core_dump_path
    if path:
        try:
            other = Program()
            other.set_core_dump(path)
            side = other
        except Exception:  # noqa: BLE001 - libdrgn raises plain Exception too
            side = prog
    prog.cache["crashhp_side_program"] = side
    return side


def vmcoreinfo(prog: Program) -> str:
    """The target's VMCOREINFO text, read without creating a type in *prog*."""
    try:
        return _side_program(prog)["VMCOREINFO"].string_().decode("ascii", "replace")
    except (LookupError, ValueError, OSError):
        return ""


def _vmcoreinfo_values(text: str, key: str) -> Dict[str, int]:
    pattern = re.compile(rf"^{key}\(([^)]+)\)=([0-9a-fA-F]+)$", re.M)
    return {m.group(1): int(m.group(2), 16) for m in pattern.finditer(text)}


def kallsyms(prog: Program) -> SymbolIndex:
    """
    The kernel's own kallsyms as a drgn symbol index, from drgn's
    ``load_vmlinux_kallsyms()``: ``/proc/kallsyms`` on the running kernel as
    root, else the tables VMCOREINFO points at (read through a side program,
    see :func:`_side_program`).

    :raises SymbolsError: if the target has neither ``/proc/kallsyms`` nor
        kallsyms in VMCOREINFO (Linux < 6.0).
    """
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    live = ProgramFlags.IS_LIVE | ProgramFlags.IS_LOCAL
    local_root = prog.flags & live == live and os.geteuid() == 0
    try:
        if not local_root and "kallsyms_num_syms" not in _vmcoreinfo_values(
            vmcoreinfo(prog), "SYMBOL"
        ):
            raise LookupError("VMCOREINFO has no SYMBOL(kallsyms_num_syms)")
        return load_vmlinux_kallsyms(prog if local_root else _side_program(prog))
    except Exception as e:  # noqa: BLE001 - libdrgn raises plain Exception too
        raise SymbolsError(
            f"no kallsyms in this target ({type(e).__name__}: {e}); kernels before "
            "6.0 need --system-map System.map (or a vmlinux with a symbol table)"
        ) from e


def _vmcoreinfo_symbol(prog: Program, name: str) -> Optional[int]:
    return _vmcoreinfo_values(vmcoreinfo(prog), "SYMBOL").get(name)


def _binding_kind(code: str) -> Tuple[SymbolBinding, SymbolKind]:
    if code in "vVwW":
        binding = SymbolBinding.WEAK
    elif code.isupper():
        binding = SymbolBinding.GLOBAL
    else:
        binding = SymbolBinding.LOCAL
    if code in "tTwW":
        kind = SymbolKind.FUNC
    elif code in "dDbBrRvVgGsS":
        kind = SymbolKind.OBJECT
    else:
        kind = SymbolKind.UNKNOWN
    return binding, kind


def _read_system_map(data: bytes) -> List[Tuple[str, int, str]]:
    out = []
    for line in data.splitlines():
        m = _MAP_LINE.match(line)
        if m:
            out.append(
                (
                    m.group(3).decode("ascii", "replace"),
                    int(m.group(1), 16),
                    m.group(2).decode(),
                )
            )
    return out


def _read_elf_symtab(path: str) -> List[Tuple[str, int, str]]:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            symtab = elf.get_section_by_name(".symtab")
            if not isinstance(symtab, SymbolTableSection):
                raise SymbolsError(f"{path}: ELF file without a .symtab")
            out = []
            for sym in symtab.iter_symbols():
                if not sym.name or sym["st_info"]["type"] in (
                    "STT_FILE",
                    "STT_SECTION",
                ):
                    continue
                code = "t" if sym["st_info"]["type"] == "STT_FUNC" else "d"
                if sym["st_info"]["bind"] != "STB_LOCAL":
                    code = code.upper()
                out.append((sym.name, int(sym["st_value"]), code))
            return out
    except (ELFError, ValueError, KeyError) as e:
        raise SymbolsError(f"{path}: bad ELF symbol table ({e})") from e


def file_symbols(prog: Program, path: str) -> SymbolIndex:
    """
    Symbols from a ``System.map`` or an ELF vmlinux (its ``.symtab``), moved
    by the target's KASLR offset. The result is checked against VMCOREINFO's
    ``SYMBOL(_stext)`` when the target has it.

    :raises SymbolsError: unreadable file, no symbols, or a file of another
        build.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            rest = f.read() if head != b"\x7fELF" else b""
    except OSError as e:
        raise SymbolsError(f"cannot read {path}: {e.strerror or e}") from e
    entries = (
        _read_elf_symtab(path) if head == b"\x7fELF" else _read_system_map(head + rest)
    )
    if not any(name in ("_text", "_stext") for name, _, _ in entries):
        # Debian's linux-image packages ship a one-line placeholder System.map.
        raise SymbolsError(
            f"{path}: no kernel symbols (_text) in it; not a "
            "System.map or vmlinux of a kernel"
        )
    offset = kaslr_offset(prog)
    # KASLR moves the symbols of the kernel image, in its window
    # (x86: __START_KERNEL_map + KERNEL_IMAGE_SIZE); not zero-based per-CPU
    # symbols (before v6.15), absolute symbols, nor the fixmap and vsyscall
    # page above it (ffffffffff600000 __vsyscall_page would overflow 64 bits).
    arch = arch_named(prog.platform.arch.name if prog.platform else "")
    start = arch.start_kernel_map or 0
    end = start + (arch.kernel_image_size or 0) if arch.start_kernel_map else 0
    moved = [
        (n, a + offset if start <= a < end else a, c)
        for n, a, c in entries
        if 0 <= a <= U64_MAX
    ]
    stext = _vmcoreinfo_symbol(prog, "_stext")
    if stext is not None:
        ours = [a for n, a, _ in moved if n == "_stext"]
        if ours and ours[0] != stext:
            raise SymbolsError(
                f"{path} does not match this kernel: _stext is "
                f"{ours[0]:#x} there, {stext:#x} in VMCOREINFO"
            )
    # No sizes in a System.map: like drgn's kallsyms, a symbol ends where the
    # next one starts.
    addresses = sorted({a for _, a, _ in moved})
    following = dict(zip(addresses, addresses[1:] + [addresses[-1]]))
    symbols = []
    for name, address, code in moved:
        binding, kind = _binding_kind(code)
        symbols.append(
            Symbol(name, address, following[address] - address, binding, kind)
        )
    return SymbolIndex(symbols)
