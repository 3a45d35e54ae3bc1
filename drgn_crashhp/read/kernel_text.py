"""
Kernel text
-----------

The running kernel's text, as the elfcorehdr's kernel-text PT_LOAD must map
it: ``_text``, ``__pa_symbol(_text)`` and ``_end - _text`` at link time
(kernel-notes §10: whether drgn's ``_end`` is KASLR-shifted depends on the
vmlinux).
"""

from __future__ import annotations

from typing import Optional, Tuple

from drgn import Program
from drgn.helpers.linux.boot import kaslr_offset
from drgn.helpers.linux.mm import follow_phys

from drgn_crashhp.arch import U64_MAX, Arch
from drgn_crashhp.facts import KernelText
from drgn_crashhp.read.symtab import link_time_symbols

__all__ = ("AmbiguousTextSize", "kernel_text_size", "pa_symbol", "read_kernel_text")


def _phys_base(prog: Program) -> int:
    try:
        return prog["phys_base"].value_()
    except KeyError:
        # Defined in arch/x86/kernel/head_64.S: a symbol without DWARF.
        return prog.read_u64(prog.symbol("phys_base").address)


def pa_symbol(prog: Program, arch: Arch, vaddr: int) -> int:
    """``__pa_symbol()``: a kernel image address to physical (x86's
    ``phys_base`` rule, else a walk of ``init_mm``'s page tables: arm64's
    image lives in the vmalloc area, mapped at ``kimage_voffset``)."""
    if arch.phys_base_rule:
        return arch.pa_symbol(vaddr, _phys_base(prog))
    return follow_phys(prog["init_mm"].address_of_(), vaddr).value_()


class AmbiguousTextSize(ValueError):
    """drgn's symbols cannot tell whether ``_end`` was KASLR-shifted."""


def kernel_text_size(
    arch: Arch,
    text: int,
    end: int,
    module_end: Optional[int],
    kernel_offset: Optional[int],
    link_size: Optional[int] = None,
) -> Tuple[int, str]:
    """
    ``_end - _text`` of the running kernel, and where it came from.

    *text* and *end* are the symbol addresses drgn gives; *module_end* is the
    end of vmlinux's loaded address range (None without a vmlinux, e.g. from
    kallsyms); *kernel_offset* is VMCOREINFO's ``KERNELOFFSET``; *link_size*
    is ``_end - _text`` read from the vmlinux symbol table. drgn shifts
    ``_text`` but, on a minimal vmlinux, not ``_end``, which sits exactly at
    the end of the loaded range (kernel-notes §10); on a distribution
    vmlinux it shifts both, and the range runs past ``_end``.

    :raises AmbiguousTextSize: when both readings fit: read the symbol table
        and pass *link_size*.
    :raises ValueError: if no candidate is a kernel image size.
    """
    if link_size is not None:
        return link_size, "vmlinux symbol table (link-time _end - _text)"
    shifted = end - text
    unshifted = end + kernel_offset - text if kernel_offset is not None else None
    if module_end is None:
        candidates = [(shifted, "runtime symbols _end - _text")]
        if unshifted is not None:
            candidates.append((unshifted, "_end + VMCOREINFO KERNELOFFSET - _text"))
    else:
        is_shifted = text < end <= module_end
        is_unshifted = unshifted is not None and text + unshifted == module_end
        if is_shifted and is_unshifted:
            raise AmbiguousTextSize("_end may or may not be KASLR-shifted")
        candidates = []
        if is_shifted:
            candidates.append((shifted, "runtime symbols _end - _text"))
        if is_unshifted and unshifted is not None:
            candidates.append((unshifted, "_end + VMCOREINFO KERNELOFFSET - _text"))
        if not candidates:
            # Neither reading ends the loaded range (arm64's vmlinux has
            # sections past _end, and drgn leaves its _end unshifted): only
            # the symbol table can tell.
            raise AmbiguousTextSize("_end ends neither reading of the range")
    for size, source in candidates:
        if 0 < size <= (arch.kernel_image_size or U64_MAX):
            return size, source
    raise ValueError(
        f"_end - _text = {end - text:#x} is not a kernel image size "
        "(_end not KASLR-shifted?) and no KERNELOFFSET or vmlinux to fix it"
    )


def _module_end(prog: Program) -> Optional[int]:
    try:
        address_range = prog.main_module().address_range
    except LookupError:
        return None
    return address_range[1] if address_range else None


def _link_time_size(prog: Program) -> Optional[int]:
    """``_end - _text`` from the vmlinux symbol table, if drgn loaded one."""
    try:
        path = prog.main_module().debug_file_path
    except LookupError:
        return None
    if not path:
        return None
    try:
        syms = link_time_symbols(path, ("_text", "_end"))
    except (OSError, ValueError):
        return None
    if "_text" not in syms or "_end" not in syms:
        return None
    return syms["_end"] - syms["_text"]


def read_kernel_text(prog: Program, arch: Arch) -> KernelText:
    """The running kernel's text as its elfcorehdr PT_LOAD must map it."""
    # From drgn's own symbol index and module range, and VMCOREINFO; the
    # vmlinux symbol table is read (two sections, not parsed whole) only
    # when those cannot tell.
    text = prog.symbol("_text").address
    end = prog.symbol("_end").address
    module_end = _module_end(prog)
    # drgn's own reading of VMCOREINFO's KERNELOFFSET (0 without KASLR); a
    # program drgn does not know as a Linux kernel has none.
    try:
        offset: Optional[int] = kaslr_offset(prog)
    except ValueError:
        offset = None
    try:
        size, source = kernel_text_size(arch, text, end, module_end, offset)
    except AmbiguousTextSize:
        size, source = kernel_text_size(
            arch, text, end, module_end, offset, _link_time_size(prog)
        )
    return KernelText(text, pa_symbol(prog, arch, text), size, source)
