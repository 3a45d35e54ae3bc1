"""
AArch64
-------

arm64, as Debian ships it: kexec_load images only, built by kexec-tools,
the elfcorehdr named by ``linux,elfcorehdr`` in the DTB; nothing rewrites
the image on hotplug (no ``ARCH_SUPPORTS_CRASH_HOTPLUG``). The header, its
notes, the kernel text, its RAM ranges, the DTB, kexec-tools' purgatory
digest and its entry variables are checked, and the header as a whole by
content; room for an in-kernel update does not apply.
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
    # kexec-tools' purgatory and its variables are read as its 2.0.29 build
    # lays them out; the header is always kexec-tools', judged by content
    # against the machine now (CHP056), never by bytes.
    rules=frozenset(
        {
            Rule.ELFCOREHDR,
            Rule.PURGATORY,
            Rule.ENTRY,
            Rule.NOTES,
            Rule.TEXT,
            Rule.MEMORY,
            Rule.REBUILD,
            Rule.FDT,
        }
    ),
    # Nothing on arm64 rewrites a loaded header (no
    # ARCH_SUPPORTS_CRASH_HOTPLUG): there is no room to keep for an update.
    not_applicable=frozenset({Rule.ROOM}),
    #: The kernel image and modules live at and above _PAGE_END(VA_BITS_MIN),
    #: the linear map below it, with 48- and 52-bit VAs alike
    #: (arch/arm64/include/asm/memory.h).
    start_kernel_map=0xFFFF800000000000,
    page_offset_from_vmcoreinfo=_page_offset,
    #: arch/arm64/include/asm/sparsemem.h
    section_size_bits=27,
    #: The Image header's magic "ARM\x64" (Documentation/arch/arm64/
    #: booting.rst), which kexec-tools loads as is.
    kernel_magic=((0x38, b"ARM\x64"),),
    # purgatory/arch/arm64/entry.S: purgatory_start branches to
    # ``arm64_kernel_entry`` with x0 = ``arm64_dtb_addr``; kexec-tools'
    # arm64 loader (kexec/arch/arm64/kexec-arm64.c) sets them to the kernel
    # segment (TEXT_OFFSET is 0 since v5.8) and the DTB segment. Debian's
    # 2.0.29 build keeps sha256_digest right after sha256_regions, then
    # skip_checks, then these two.
    kexec_tools_digest_offset=0x100,
    kexec_tools_variables=(
        ("arm64_kernel_entry", 0x28, "kernel"),
        ("arm64_dtb_addr", 0x30, "fdt"),
    ),
    # kexec/arch/arm64/kexec-arm64.c arch_do_exclude_segment() excludes
    # nothing: every segment but purgatory is hashed, --hotplug or not.
    kexec_tools_hotplug_excludes=frozenset(),
)
