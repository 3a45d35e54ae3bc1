"""
s390x
-----

What the state readers need on s390x. s390 kdump builds its elfcorehdr in
the capture kernel (kernel-notes §7): there is no first-kernel header to
check.
"""

from __future__ import annotations

from drgn_crashhp.arch import Arch, Rule

__all__ = ("ARCH",)

ARCH = Arch(
    name="s390x",
    drgn_name="S390X",
    #: EM_S390
    elf_machine=22,
    #: arch/s390/include/asm/sparsemem.h
    section_size_bits=28,
    # The capture kernel does not boot from a device tree.
    not_applicable=frozenset({Rule.FDT}),
)
