"""
AArch64
-------

arm64, as Debian ships it: kexec_load images only, built by kexec-tools,
the elfcorehdr named by ``linux,elfcorehdr`` in the DTB; nothing rewrites
the image on hotplug (no ``ARCH_SUPPORTS_CRASH_HOTPLUG``). The header, its
notes, the kernel text, its RAM ranges and the DTB are checked; kexec-tools'
purgatory, its entry variables, the room and the byte rebuild are not
implemented yet (kernel-notes §7, §13).
"""

from __future__ import annotations

from typing import Mapping, Optional

from drgn_crashhp.arch import U64_MAX, Arch, Rule

__all__ = ("ARCH",)


def _page_offset(numbers: Mapping[str, int]) -> Optional[int]:
    """``__va(0)``: ``PAGE_OFFSET - PHYS_OFFSET`` with ``PAGE_OFFSET =
    -(1 << VA_BITS)`` (arch/arm64/include/asm/memory.h); both numbers are in
    VMCOREINFO (arch/arm64/kernel/vmcore_info.c)."""
    if "VA_BITS" not in numbers or "PHYS_OFFSET" not in numbers:
        return None
    return (-(1 << numbers["VA_BITS"]) - numbers["PHYS_OFFSET"]) & U64_MAX


ARCH = Arch(
    name="arm64",
    drgn_name="AARCH64",
    #: EM_AARCH64
    elf_machine=183,
    # The header's own form, its notes, kernel text and RAM ranges follow
    # the common rules (checked on Debian's 6.12 cloud kernel, kexec-tools
    # 2.0.29), the FDT is read as drivers/of/kexec.c lays it out; purgatory,
    # entry, room and the byte rebuild are arm64's own.
    rules=frozenset({Rule.ELFCOREHDR, Rule.NOTES, Rule.TEXT, Rule.MEMORY, Rule.FDT}),
    #: The kernel image and modules live at and above _PAGE_END(VA_BITS_MIN),
    #: the linear map below it, with 48- and 52-bit VAs alike
    #: (arch/arm64/include/asm/memory.h).
    start_kernel_map=0xFFFF800000000000,
    page_offset_from_vmcoreinfo=_page_offset,
    #: arch/arm64/include/asm/sparsemem.h
    section_size_bits=27,
)
