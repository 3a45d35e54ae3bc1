"""
Architectures
-------------

Everything the readers, rules and checks need to know about one
architecture, behind one small interface: an :class:`Arch` record per
architecture (page size, memory-section size, where the kernel image is
mapped, the register blocks of purgatory, the boot protocol's offsets), found
by drgn's architecture name (:func:`arch_named`) or by ELF ``e_machine``
(:func:`arch_of`). No module outside this package names an architecture or
holds one of its constants.

Each record says which check families (:class:`Rule`) this package
implements for the architecture and which do not apply there; the checks of
a family that applies but is not implemented say CANNOT VERIFY (CHP091),
never OK or PROBLEM. x86_64 implements every family that applies to it
(the FDT does not); ppc64 and arm64 implement the FDT's, and carry what the
state readers need (kernel-notes §7).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Mapping, Optional, Tuple

__all__ = (
    "DEFAULT_ARCH",
    "U64_MAX",
    "Arch",
    "Rule",
    "arch_named",
    "arch_of",
    "regs_order",
)

#: Every architecture this package reads is 64-bit: addresses and sizes wrap
#: at ``U64_MAX`` like the kernel's u64.
U64_MAX = (1 << 64) - 1

#: The architecture of a state built by hand, without a target (drgn's
#: ``Architecture`` member name): the synthetic kernels of the tests.
DEFAULT_ARCH = "X86_64"

#: An inclusive physical range (the same shape as ``facts.Range``; this
#: package sits below facts and imports nothing of the package).
Range = Tuple[int, int]


class Rule(str, enum.Enum):
    """A family of checks that depends on the architecture's kexec code."""

    #: The elfcorehdr segment's own form (01x).
    ELFCOREHDR = "elfcorehdr"
    #: The header's room for another update, as the kernel sizes it (06x).
    ROOM = "room"
    #: Purgatory's sha regions and digest (02x).
    PURGATORY = "purgatory"
    #: The registers or variables purgatory jumps with, the command line (03x).
    ENTRY = "entry"
    #: A PT_NOTE per CPU and the vmcoreinfo note (04x).
    NOTES = "notes"
    #: The kernel-text PT_LOAD (CHP054).
    TEXT = "text"
    #: The RAM PT_LOADs against RAM now (05x).
    MEMORY = "memory"
    #: The header byte for byte against a rebuild (CHP055, CHP056).
    REBUILD = "rebuild"
    #: The capture kernel's flattened device tree (08x): kexec-tools' DTB on
    #: ppc64 and arm64.
    FDT = "fdt"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Arch:
    """One architecture's constants and address rules."""

    #: The package's name for it (``uname -m`` style).
    name: str
    #: drgn's ``Architecture`` member name.
    drgn_name: str
    #: include/uapi/linux/elf-em.h
    elf_machine: int
    #: The check families whose rules this package implements for the
    #: architecture; the others say CANNOT VERIFY (CHP091) unless they do
    #: not apply.
    rules: FrozenSet[Rule] = frozenset()
    #: Check families that do not exist on the architecture (ppc64 maps no
    #: kernel text in the header): neither checked nor unverified.
    not_applicable: FrozenSet[Rule] = frozenset()
    page_size: int = 4096
    #: SECTION_SIZE_BITS when VMCOREINFO does not say
    #: (arch/*/include/asm/sparsemem.h).
    section_size_bits: int = 27
    #: Kernel image mapping: PT_LOADs at or above it map kernel text.
    start_kernel_map: Optional[int] = None
    #: PAGE_OFFSET when the kernel does not say (no dynamic memory layout).
    default_page_offset: Optional[int] = None
    #: ``__pa_symbol(x) = x - start_kernel_map + phys_base`` (x86); other
    #: architectures are translated through the kernel's page tables.
    phys_base_rule: bool = False
    #: The direct map's offset from VMCOREINFO's ``NUMBER(...)`` values, for
    #: when drgn's ``__va()`` cannot say (no debug info): arm64's moves with
    #: ``memstart_addr``.
    page_offset_from_vmcoreinfo: Optional[
        Callable[[Mapping[str, int]], Optional[int]]
    ] = None
    #: Largest kernel image (the text size sanity bound).
    kernel_image_size: Optional[int] = None
    #: Upper bound of the vmalloc area's size.
    vmalloc_size_max: Optional[int] = None
    #: Memory the kernel leaves out of every elfcorehdr (x86: low 1 MiB).
    low_reserved: Optional[Range] = None
    #: Kernel entry point offset from the kernel segment (x86: startup_64).
    kernel_entry_offset: Optional[int] = None
    #: Boot protocol: the 32-bit words of the command-line pointer in the
    #: boot parameters segment, low word first, as ``(offset, field name)``.
    cmdline_ptr_fields: Tuple[Tuple[int, str], ...] = ()
    #: Boot parameters segment: ``(offset, magic)`` at its start.
    boot_params_magic: Optional[Tuple[int, bytes]] = None
    #: Segment roles (``facts.Role`` values) in the order the kernel's
    #: kexec_file loader adds them, for when their bytes are not in the target.
    file_load_order: Tuple[str, ...] = ()
    #: The elfcorehdr's RAM PT_LOADs come in address order (ppc64's
    #: kexec-tools appends the RTAS region last).
    sorted_header_loads: bool = True
    #: Which CPUs kexec-tools writes notes for ("present" or "possible",
    #: ``kernel.notes.NoteCpus`` values): those with a directory in
    #: /sys/devices/system/cpu at load.
    kexec_tools_note_cpus: str = "present"
    #: CONFIG_NR_CPUS_DEFAULT values the kernel may be built with.
    nr_cpus_defaults: Tuple[int, ...] = ()
    #: Register order of each purgatory register block, by
    #: ``facts.RegsLayout`` value.
    regs: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    #: What the kernel segment starts with, as ``(offset, magic)``
    #: alternatives: how a kexec_load image's kernel is named when no entry
    #: register block says where purgatory jumps.
    kernel_magic: Tuple[Tuple[int, bytes], ...] = ()
    #: kexec-tools' purgatory (kexec_load): where the build for this
    #: architecture keeps ``sha256_digest``, in bytes from ``sha256_regions``
    #: (purgatory/purgatory.c defines both; the linker orders them). The
    #: digest is searched for first; this place is read only when the
    #: computed digest is nowhere in the segment, to show what is stored.
    kexec_tools_digest_offset: int = -32
    #: kexec-tools' purgatory variables the loader sets with
    #: ``elf_rel_set_symbol()``, which purgatory jumps with instead of a
    #: register block: ``(name, offset from sha256_digest, segment role it
    #: must hold the start of)``, as the builds tried lay them out.
    kexec_tools_variables: Tuple[Tuple[str, int, str], ...] = ()
    #: How the kernel gathers the RAM ranges of a header it rebuilds on a
    #: hotplug event: None when it does not rebuild one (or this package does
    #: not know how), "resources" for x86's walk of the System RAM resources
    #: less its exclusions (prepare_elf_headers()), "memblock" for powerpc's
    #: get_crash_memory_ranges() (memblock less crashk_res, plus RTAS and the
    #: backup region, sorted).
    crash_ranges: Optional[str] = None
    #: The low-memory region kexec-tools backs up and the header describes
    #: with its own PT_LOAD (powerpc BACKUP_SRC_START..BACKUP_SRC_END).
    backup_region: Optional[Range] = None
    #: Segment roles (``facts.Role`` values) that ``kexec --hotplug`` leaves
    #: out of the digest: kexec-tools' ``arch_do_exclude_segment()``.
    kexec_tools_hotplug_excludes: FrozenSet[str] = frozenset({"elfcorehdr"})

    def is_kernel_head(self, head: Optional[bytes]) -> bool:
        """Whether a segment starting with *head* holds the kernel image, by
        :attr:`kernel_magic`."""
        return head is not None and any(
            head[off : off + len(magic)] == magic for off, magic in self.kernel_magic
        )

    @property
    def supported(self) -> bool:
        """Every family that applies is implemented."""
        return self.rules | self.not_applicable >= frozenset(Rule)

    def is_kernel_text(self, vaddr: int) -> bool:
        """Whether an elfcorehdr PT_LOAD maps the kernel image, not the
        direct map."""
        return self.start_kernel_map is not None and vaddr >= self.start_kernel_map

    def pa_symbol(self, vaddr: int, phys_base: int) -> int:
        """``__pa_symbol()`` by the ``phys_base`` rule (x86): a kernel image
        address to physical."""
        if self.start_kernel_map is None or not self.phys_base_rule:
            raise NotImplementedError(f"__pa_symbol() by phys_base on {self.name}")
        # phys_base is negative when the kernel runs below its link address.
        return (vaddr - self.start_kernel_map + phys_base) & U64_MAX


def _all() -> Tuple[Arch, ...]:
    from drgn_crashhp.arch import arm64, ppc64, s390x, x86_64

    return (x86_64.ARCH, ppc64.ARCH, arm64.ARCH, s390x.ARCH)


_BY_DRGN: Dict[str, Arch] = {}
_BY_EM: Dict[int, Arch] = {}


def _index() -> None:
    if not _BY_DRGN:
        for a in _all():
            _BY_DRGN[a.drgn_name] = a
            _BY_EM[a.elf_machine] = a


def _unknown(name: str, machine: int = 0) -> Arch:
    return Arch(name=name.lower(), drgn_name=name, elf_machine=machine)


def arch_named(drgn_name: str) -> Arch:
    """The architecture of drgn's ``Architecture`` member *drgn_name*
    (``prog.platform.arch.name``); an unsupported record for others."""
    _index()
    return _BY_DRGN.get(drgn_name) or _unknown(drgn_name)


def arch_of(elf_machine: int) -> Arch:
    """The architecture of ELF ``e_machine`` *elf_machine*."""
    _index()
    return _BY_EM.get(elf_machine) or _unknown(f"EM_{elf_machine}", elf_machine)


def regs_order(layout: str) -> Tuple[str, ...]:
    """The memory order of the registers of purgatory block *layout*."""
    _index()
    for a in _BY_DRGN.values():
        if layout in a.regs:
            return a.regs[layout]
    return ()
