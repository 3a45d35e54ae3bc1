"""
Segments
--------

The segment table of a kexec image: its bound (include/uapi/linux/kexec.h),
how the elfcorehdr segment is found (kernel/crash_core.c
``crash_handle_hotplug_event()`` scans segment starts), and what each
segment holds, from its first bytes, purgatory's entry registers and the
header's program headers (arch/x86/kernel/kexec-bzimage64.c
``bzImage64_load()`` order; kexec-tools' backup region).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

from drgn_crashhp.arch import Arch
from drgn_crashhp.facts import HotplugFields, KImage, Role, Segment
from drgn_crashhp.kernel.elfcorehdr import is_elf_core
from drgn_crashhp.kernel.fdt import is_fdt

__all__ = (
    "KEXEC_SEGMENT_MAX",
    "assign_roles",
    "find_elfcorehdr",
)

#: include/uapi/linux/kexec.h
KEXEC_SEGMENT_MAX = 16


#: Magic numbers of what an initrd starts with (cpio newc/crc, compressors
#: the kernel's initramfs unpacker understands).
_INITRD_MAGIC = (
    b"070701",
    b"070702",
    b"\x1f\x8b",
    b"\xfd7zXZ",
    b"\x28\xb5\x2f\xfd",
    b"BZh",
    b"\x02\x21\x4c\x18",
    b"\x5d\x00\x00",
    b"\x89LZO",
)


def find_elfcorehdr(
    segments: Tuple[Segment, ...],
    heads: Tuple[Optional[bytes], ...],
    hotplug: HotplugFields,
    elf_load_addr: Optional[int],
) -> Tuple[Optional[int], str]:
    n = len(segments)
    idx = hotplug.elfcorehdr_index
    if idx is not None and 0 <= idx < n:
        return idx, "elfcorehdr_index"
    if hotplug.rfc is not None and 0 <= hotplug.rfc.elf_index < n:
        return hotplug.rfc.elf_index, "arch.hp.elf_index"
    if elf_load_addr:
        for seg in segments:
            if seg.mem == elf_load_addr:
                return seg.index, "elf_load_addr"
    # kexec_load images (and a 6.6+ kernel before the first hotplug event):
    # like crash_handle_hotplug_event(), scan segment starts for an ELF
    # header; the last match wins there too.
    found = [seg.index for seg, head in zip(segments, heads) if is_elf_core(head)]
    if found:
        return found[-1], "scan for ET_CORE"
    if all(h is None for h in heads):
        return None, "segments not readable in this target"
    return None, "no segment starts with an ELF core header"


def _has(head: bytes, offset: int, magic: bytes) -> bool:
    return head[offset : offset + len(magic)] == magic


def assign_roles(
    image: KImage,
    heads: Sequence[Optional[bytes]],
    arch: Arch,
    kernel_start: Optional[int],
    backup: Sequence[int] = (),
    dm_crypt_keys: Optional[int] = None,
) -> KImage:
    """
    Name every segment once, before any check runs.

    From what it starts with (*heads*: each segment's first page, or None
    when not in the target): the elfcorehdr, purgatory (holds
    ``image->start``), boot params (the *arch*'s magic: x86 "HdrS" at
    0x202), an initrd (cpio or a
    compressor's magic), a device tree (the FDT magic; kexec-tools' DTB on
    ppc64 and arm64), the kernel by the *arch*'s image magic (ppc64's
    FIXUP_ENDIAN, arm64's Image header). From the entry register purgatory
    jumps to, less
    the architecture's entry offset (*kernel_start*; x86: startup_64 at
    ``mem`` + 0x200, the kernel's bzImage64_load() and kexec-tools alike):
    the kernel. From an elfcorehdr PT_LOAD whose
    ``p_offset`` points elsewhere (*backup*): kexec-tools' low-memory backup
    region. *dm_crypt_keys*: ``image->dm_crypt_keys_addr``.
    """
    segments = image.segments
    magic = arch.boot_params_magic
    roles = [Role.UNKNOWN] * len(segments)
    if image.elfcorehdr_index is not None:
        roles[image.elfcorehdr_index] = Role.ELFCOREHDR
    for seg, head in zip(segments, heads):
        if roles[seg.index] != Role.UNKNOWN:
            continue
        if dm_crypt_keys and seg.mem == dm_crypt_keys:
            roles[seg.index] = Role.DM_CRYPT_KEYS
        elif seg.contains(image.start):
            roles[seg.index] = Role.PURGATORY
        elif magic is not None and head is not None and _has(head, *magic):
            roles[seg.index] = Role.BOOT_PARAMS
        elif head is not None and head.startswith(_INITRD_MAGIC):
            roles[seg.index] = Role.INITRD
        elif is_fdt(head):
            roles[seg.index] = Role.FDT
        elif seg.mem == kernel_start or arch.is_kernel_head(head):
            roles[seg.index] = Role.KERNEL
        elif seg.mem in backup:
            roles[seg.index] = Role.BACKUP
    if image.file_mode and all(h is None for h in heads):
        # Contents are not in the target (a kdump vmcore excludes the crash
        # region): fall back to the kexec_file loader's order (x86:
        # bzImage64_load(), elfcorehdr, purgatory, boot params, kernel, initrd).
        order = [Role(r) for r in arch.file_load_order]
        for i in range(len(segments)):
            if roles[i] == Role.UNKNOWN and i < len(order) and order[i] not in roles:
                roles[i] = order[i]
    elif image.file_mode:
        # bzImage64_load() adds the kernel right after the boot params.
        for i in range(1, len(segments)):
            if roles[i - 1] == Role.BOOT_PARAMS and roles[i] == Role.UNKNOWN:
                roles[i] = Role.KERNEL
    return dataclasses.replace(
        image,
        segments=tuple(
            dataclasses.replace(s, role=role) for s, role in zip(segments, roles)
        ),
    )
