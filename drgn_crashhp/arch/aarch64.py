"""
AArch64
-------

What the state readers need on arm64. The crash-image rules (kexec-tools'
purgatory, ``linux,elfcorehdr`` in the DTB) are not implemented yet:
kernel-notes §7, §13.
"""

from __future__ import annotations

from drgn_crashhp.arch import Arch, Rule

__all__ = ("ARCH",)

ARCH = Arch(
    name="arm64",
    drgn_name="AARCH64",
    #: EM_AARCH64
    elf_machine=183,
    rules=frozenset({Rule.FDT}),
    #: arch/arm64/include/asm/sparsemem.h
    section_size_bits=27,
)
