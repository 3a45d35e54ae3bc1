"""
ppc64
-----

64-bit PowerPC (pseries), as Debian ships it: kexec_load images only, built
by kexec-tools, with ``elfcorehdr=`` on the command line and the FDT the
capture kernel boots from; since 6.10 the kernel keeps a ``--hotplug``
image's elfcorehdr (memory) and FDT ``/cpus`` (CPUs) current
(arch/powerpc/kexec/crash.c). The header, its notes, its RAM ranges, the
FDT, kexec-tools' purgatory digest, its entry variables, the header's room
for another update and the header against the kernel's rebuild are checked.
"""

from __future__ import annotations

from drgn_crashhp.arch import Arch, Rule

__all__ = ("ARCH",)

ARCH = Arch(
    name="ppc64",
    drgn_name="PPC64",
    #: EM_PPC64
    elf_machine=21,
    #: arch/powerpc/include/asm/sparsemem.h
    section_size_bits=24,
    # The header's own form, its notes and its RAM ranges follow the common
    # rules (checked on Debian's 6.12 pseries kernel, kexec-tools 2.0.29),
    # the FDT is read as kexec-tools and arch/powerpc/kexec lay it out;
    # kexec-tools' purgatory and its variables are read as its 2.0.29 build
    # lays them out; the kernel rebuilds the header of a --hotplug image on
    # memory events by update_crash_elfcorehdr() (arch/powerpc/kexec/
    # crash.c) into a segment sized by arch_crash_get_elfcorehdr_size().
    rules=frozenset(
        {
            Rule.ELFCOREHDR,
            Rule.ROOM,
            Rule.PURGATORY,
            Rule.ENTRY,
            Rule.NOTES,
            Rule.MEMORY,
            Rule.REBUILD,
            Rule.FDT,
        }
    ),
    # prepare_elf_headers() passes need_kernel_map = false: no text PT_LOAD.
    not_applicable=frozenset({Rule.TEXT}),
    # pseries has a /sys/devices/system/cpu/cpuN for every possible CPU.
    kexec_tools_note_cpus="possible",
    sorted_header_loads=False,
    #: Used only when the kernel does not say: Debian's ppc64el 6.12 kernel
    #: has 4 KiB pages (VMCOREINFO PAGESIZE=4096), others 64 KiB.
    page_size=4096,
    #: PAGE_OFFSET of the book3s 64 linear map, when drgn cannot say.
    default_page_offset=0xC000000000000000,
    #: head_64.S starts with FIXUP_ENDIAN, whose first instruction is
    #: ``tdi 0,0,0x48`` (arch/powerpc/include/asm/ppc_asm.h), stored little-
    #: or big-endian.
    kernel_magic=((0, b"\x48\x00\x00\x08"), (0, b"\x08\x00\x00\x48")),
    # purgatory/arch/ppc64/purgatory-ppc64.c; kexec-tools' ppc64 loader sets
    # them (kexec/arch/ppc64/kexec-elf-ppc64.c) and v2wrap.S jumps to
    # ``kernel`` with r3 = ``dt_offset``; post_verification_setup_arch()
    # copies the first 64 KiB to ``backup_start``. Debian's 2.0.29 build
    # keeps sha256_digest right after sha256_regions and these after it.
    kexec_tools_digest_offset=0x100,
    kexec_tools_variables=(
        ("kernel", 0x48, "kernel"),
        ("dt_offset", 0x58, "fdt"),
        ("backup_start", 0x68, "backup"),
    ),
    # kexec/arch/ppc64/kexec-ppc64.c arch_do_exclude_segment(): the header
    # and any segment that starts with the FDT magic.
    kexec_tools_hotplug_excludes=frozenset({"elfcorehdr", "fdt"}),
    crash_ranges="memblock",
    #: arch/powerpc/include/asm/kexec_ranges.h BACKUP_SRC_START/END (64 KiB).
    backup_region=(0, 0xFFFF),
)
