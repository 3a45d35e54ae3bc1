"""
Digest regions
--------------

Which bytes purgatory hashes: ``struct kexec_sha_region
purgatory_sha_regions[KEXEC_SEGMENT_MAX]`` (include/linux/purgatory.h; the
same table in kexec-tools' ``sha256_regions``), filled by
``kexec_calculate_store_digests()`` (kernel/kexec_file.c) or kexec-tools'
``update_purgatory()`` (kexec/kexec.c): every segment but purgatory's and,
when the loader excludes it, the elfcorehdr's.
"""

from __future__ import annotations

import hashlib
import struct
from typing import AbstractSet, FrozenSet, Iterable, List, Tuple

from drgn_crashhp.arch import Arch
from drgn_crashhp.facts import KImage, Role, Segment, ShaRegion
from drgn_crashhp.kernel.segments import KEXEC_SEGMENT_MAX

__all__ = (
    "DIGEST_SIZE",
    "REGIONS_SIZE",
    "REGION_SIZE",
    "SHA256_EMPTY",
    "expected_regions",
    "hash_excluded",
    "kexec_tools_hotplug_excludes",
    "name_regions",
    "regions_table",
)

#: ``struct kexec_sha_region { unsigned long start, len; }``.
REGION_SIZE = 16
REGIONS_SIZE = REGION_SIZE * KEXEC_SEGMENT_MAX
DIGEST_SIZE = 32
#: SHA-256 of nothing: what the 6.6-6.10 exclusion bug stores.
SHA256_EMPTY = hashlib.sha256(b"").hexdigest()


def hash_excluded(image: KImage, arch: Arch) -> FrozenSet[Role]:
    """
    The segment roles this image's loader leaves out of the digest: the
    kernel's kexec_file loader the segment at ``elfcorehdr_index`` when it
    excludes it; kexec-tools, with ``--hotplug`` (the image's hotplug
    flag), what the architecture's ``arch_do_exclude_segment()`` names.
    """
    if not image.hotplug.digest_excludes_elfcorehdr:
        return frozenset()
    if image.file_mode:
        return frozenset({Role.ELFCOREHDR})
    return kexec_tools_hotplug_excludes(arch)


def kexec_tools_hotplug_excludes(arch: Arch) -> FrozenSet[Role]:
    """The roles ``kexec --hotplug`` leaves out of the digest on *arch*."""
    return frozenset(Role(r) for r in arch.kexec_tools_hotplug_excludes)


def expected_regions(
    image: KImage, excluded: AbstractSet[Role] = frozenset()
) -> List[Tuple[int, int]]:
    """
    ``(mem, memsz)`` of every segment the loader hashes, in segment order:
    all but the purgatory segment and the *excluded* roles (kernel/
    kexec_file.c kexec_calculate_store_digests(); kexec-tools
    kexec/kexec.c update_purgatory() with arch_do_exclude_segment()). The
    elfcorehdr is known by ``elfcorehdr_index`` too: a kdump vmcore lacks
    the bytes that name its role.
    """
    purgatory = image.segment_containing(image.start)

    def left_out(s: Segment) -> bool:
        if Role.ELFCOREHDR in excluded and s.index == image.elfcorehdr_index:
            return True
        return s.role in excluded

    return [
        (s.mem, s.memsz)
        for s in image.segments
        if s is not purgatory and s.memsz and not left_out(s)
    ]


def regions_table(regions: Iterable[Tuple[int, int]]) -> bytes:
    """The table bytes the loader writes for ``(start, len)`` regions."""
    raw = b"".join(struct.pack("<QQ", start, length) for start, length in regions)
    return raw.ljust(REGIONS_SIZE, b"\0")


def name_regions(image: KImage, table: bytes) -> Tuple[ShaRegion, ...]:
    """The non-empty slots of a table, each named by the segment it covers
    (exactly, else by its start) and that segment's role."""
    out = []
    for slot in range(KEXEC_SEGMENT_MAX):
        start, length = struct.unpack_from("<QQ", table, slot * REGION_SIZE)
        if not length:
            continue
        seg = next(
            (s for s in image.segments if s.mem == start and s.memsz == length), None
        )
        exact = seg is not None
        if seg is None:
            seg = image.segment_containing(start)
        out.append(
            ShaRegion(
                slot,
                start,
                length,
                seg.index if seg else None,
                seg.role if seg else None,
                exact,
            )
        )
    return tuple(out)
