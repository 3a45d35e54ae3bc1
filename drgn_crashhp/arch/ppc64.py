"""
ppc64
-----

What the state readers need on 64-bit PowerPC. The crash-image rules
(kexec-tools' purgatory, the FDT, ``elfcorehdr=`` on the command line) are
not implemented yet: kernel-notes §7, §13.
"""

from __future__ import annotations

from drgn_crashhp.arch import Arch

__all__ = ("ARCH",)

ARCH = Arch(
    name="ppc64",
    drgn_name="PPC64",
    #: EM_PPC64
    elf_machine=21,
    #: arch/powerpc/include/asm/sparsemem.h
    section_size_bits=24,
    #: Debian's ppc64el kernels use 64 KiB pages (CONFIG_PPC_64K_PAGES).
    page_size=1 << 16,
)
