"""
elfcorehdr
----------

Read the elfcorehdr segment of a loaded image from physical memory and
decode it (:mod:`drgn_crashhp.kernel.elfcorehdr`).
"""

from __future__ import annotations

from drgn import Program

from drgn_crashhp.facts import ElfCoreHdrRead, KImage, Unread, UnreadKind
from drgn_crashhp.kernel.elfcorehdr import MAX_ELFCOREHDR, Malformed, decode_elfcorehdr
from drgn_crashhp.kernel.segments import SEGMENTS_NOT_IN_TARGET
from drgn_crashhp.read.fields import target_arch
from drgn_crashhp.read.physmem import Unreadable, read_phys

__all__ = ("read_elfcorehdr",)


def read_elfcorehdr(prog: Program, image: KImage) -> ElfCoreHdrRead:
    """Read and decode the elfcorehdr segment of *image* from physical memory."""
    seg = image.elfcorehdr
    if seg is None:
        # No segment is in this target (a kdump dump): the header may well
        # exist; it is the target that lacks it.
        kind = (
            UnreadKind.NOT_IN_TARGET
            if image.elfcorehdr_source == SEGMENTS_NOT_IN_TARGET
            else UnreadKind.NOT_FOUND
        )
        return ElfCoreHdrRead(
            None, unread=Unread("elfcorehdr", kind, image.elfcorehdr_source)
        )
    size = min(seg.memsz, MAX_ELFCOREHDR)
    try:
        data = read_phys(prog, seg.mem, size, "elfcorehdr")
    except Unreadable as e:
        return ElfCoreHdrRead(seg, unread=e.unread())
    # The e_machine the capture kernel expects.
    machine = target_arch(prog).elf_machine or None
    try:
        hdr = decode_elfcorehdr(data, seg.memsz, machine)
    except Malformed as e:
        return ElfCoreHdrRead(
            seg, unread=Unread("elfcorehdr", UnreadKind.MALFORMED, str(e))
        )
    return ElfCoreHdrRead(seg, header=hdr, data=data[: hdr.used])
