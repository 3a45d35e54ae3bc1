"""
x86_64
------

Every x86_64 constant of the package, each citing where the kernel (or
kexec-tools) defines it, and the address arithmetic built on them.
"""

from __future__ import annotations

from drgn_crashhp.arch import Arch, Rule

__all__ = (
    "ARCH",
    "BP_CMD_LINE_PTR",
    "BP_EXT_CMD_LINE_PTR",
    "DEFAULT_PAGE_OFFSET",
    "EM_X86_64",
    "KERNEL_IMAGE_SIZE",
    "KERNEL_REGS",
    "KEXEC_TOOLS_REGS",
    "LOW_RESERVED",
    "PAGE_SIZE",
    "SECTION_SIZE_BITS",
    "START_KERNEL_MAP",
    "STARTUP_64_OFFSET",
    "VMALLOC_SIZE_MAX",
)

PAGE_SIZE = 4096
#: include/uapi/linux/elf-em.h
EM_X86_64 = 62
#: __START_KERNEL_map (arch/x86/include/asm/page_64_types.h): the kernel
#: text PT_LOAD's p_vaddr lies above it, RAM PT_LOADs (direct map) below.
START_KERNEL_MAP = 0xFFFFFFFF80000000
#: PAGE_OFFSET without CONFIG_DYNAMIC_MEMORY_LAYOUT (4-level paging).
DEFAULT_PAGE_OFFSET = 0xFFFF888000000000
#: KERNEL_IMAGE_SIZE with KASLR (arch/x86/include/asm/page_64_types.h).
KERNEL_IMAGE_SIZE = 1 << 30
#: arch/x86/include/asm/sparsemem.h
SECTION_SIZE_BITS = 27
#: VMALLOC_SIZE_TB: 32 TiB (4-level) or 12.5 PiB (5-level); the larger bound
#: is safe because the direct map lies below vmalloc space.
VMALLOC_SIZE_MAX = 12800 << 40
#: arch/x86/kernel/crash.c elf_header_exclude_ranges(): the low 1 MiB is
#: never dumped through the elfcorehdr (it is copied to a backup region).
LOW_RESERVED = (0, (1 << 20) - 1)
#: struct boot_params offsets (Documentation/arch/x86/zero-page.rst, boot.rst).
BP_EXT_CMD_LINE_PTR = 0x0C8
BP_CMD_LINE_PTR = 0x228
#: bzImage64_load(): ``rip = kernel_load_addr + 0x200`` (startup_64).
STARTUP_64_OFFSET = 0x200
#: Register order of the kernel's ``struct kexec_entry64_regs``
#: (arch/x86/include/asm/kexec.h, arch/x86/purgatory/entry64.S).
KERNEL_REGS = (
    "rax",
    "rcx",
    "rdx",
    "rbx",
    "rsp",
    "rbp",
    "rsi",
    "rdi",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
)
#: Register order of kexec-tools' ``struct entry64_regs``
#: (kexec/arch/x86_64/kexec-x86_64.h, purgatory/arch/x86_64/entry64.S).
KEXEC_TOOLS_REGS = (
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rsp",
    "rbp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
)


ARCH = Arch(
    name="x86_64",
    drgn_name="X86_64",
    elf_machine=EM_X86_64,
    rules=frozenset(Rule) - {Rule.FDT},
    # The capture kernel boots from boot params, not a device tree.
    not_applicable=frozenset({Rule.FDT}),
    page_size=PAGE_SIZE,
    section_size_bits=SECTION_SIZE_BITS,
    start_kernel_map=START_KERNEL_MAP,
    phys_base_rule=True,
    default_page_offset=DEFAULT_PAGE_OFFSET,
    kernel_image_size=KERNEL_IMAGE_SIZE,
    vmalloc_size_max=VMALLOC_SIZE_MAX,
    low_reserved=LOW_RESERVED,
    kernel_entry_offset=STARTUP_64_OFFSET,
    crash_ranges="resources",
    # struct boot_params: setup_header.header "HdrS" at 0x202.
    boot_params_magic=(0x202, b"HdrS"),
    # bzImage64_load() (arch/x86/kernel/kexec-bzimage64.c) after the
    # elfcorehdr crash_load_segments() added first.
    file_load_order=("elfcorehdr", "purgatory", "boot_params", "kernel", "initrd"),
    # arch/x86/Kconfig NR_CPUS_DEFAULT: 64, or 8192 with MAXSMP.
    nr_cpus_defaults=(64, 8192),
    cmdline_ptr_fields=(
        (BP_CMD_LINE_PTR, "boot_params.hdr.cmd_line_ptr"),
        (BP_EXT_CMD_LINE_PTR, "boot_params.ext_cmd_line_ptr"),
    ),
    # facts.RegsLayout values: the kernel's and kexec-tools' blocks.
    regs={
        "kexec_entry64_regs": KERNEL_REGS,
        "kexec-tools entry64_regs": KEXEC_TOOLS_REGS,
    },
)
