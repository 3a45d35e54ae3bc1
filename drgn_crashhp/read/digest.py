"""
Digest
------

Hash the regions of ``purgatory_sha_regions`` from physical memory, in slot
order, exactly as purgatory's ``verify_sha256_digest()`` will at panic
(arch/x86/purgatory/purgatory.c), streaming in :data:`~drgn_crashhp.read.
physmem.CHUNK` pieces. Missing bytes are located, never hashed around;
whether the result matches is for :mod:`drgn_crashhp.checks.digest`.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterator, List, Optional, Tuple

from drgn import Program

from drgn_crashhp.facts import Purgatory, RegionsHash, Source
from drgn_crashhp.kernel.purgatory import aligned_hits
from drgn_crashhp.kernel.ranges import normalize
from drgn_crashhp.read.physmem import Unreadable, iter_phys, missing_ranges
from drgn_crashhp.read.purgatory import MAX_PURGATORY

__all__ = ("MAX_DIGEST_BYTES", "MISSING_PROBE", "Progress", "hash_regions")

Progress = Callable[[int, int], None]
#: Regions are segments (kernel, initrd, boot params: tens of MiB); a table
#: adding up to more than this is corrupt, and hashing (or probing for
#: holes in) 2**63 bytes would never end.
MAX_DIGEST_BYTES = 1 << 32
#: Unreadable bytes whose holes are located page by page; beyond this the
#: rest of a region is reported missing whole.
MISSING_PROBE = 1 << 26


def _stream(
    prog: Program, start: int, length: int, what: str
) -> Iterator[Tuple[int, int, Optional[bytes]]]:
    """``(address, size, bytes or None)`` chunks of a range; unreadable
    chunks come as None and streaming goes on after them."""
    at, end = start, start + length
    while at < end:
        try:
            for chunk in iter_phys(prog, at, end - at, what):
                yield at, len(chunk), chunk
                at += len(chunk)
        except Unreadable as e:
            yield e.address, e.size, None
            at = e.address + e.size


def hash_regions(
    prog: Program, purgatory: Purgatory, progress: Optional[Progress] = None
) -> RegionsHash:
    """
    SHA-256 over the non-empty regions, in slot order, from physical memory.
    Missing bytes give no digest and the ranges that lack them. For a
    kexec_load image whose computed digest differs from the bytes before
    ``sha256_regions``, also look for it elsewhere in the purgatory segment
    (kexec-tools builds may place it differently).

    :param progress: called as ``progress(done_bytes, total_bytes)``.
    """
    p = purgatory
    if p.unread is not None or p.regions_address is None:
        reason = p.unread.reason if p.unread else "no sha regions decoded"
        return RegionsHash(None, 0, reason=reason)
    total = sum(r.len for r in p.regions)
    if total > MAX_DIGEST_BYTES:
        return RegionsHash(
            None,
            0,
            reason=f"the sha regions add up to {total:#x} "
            "bytes, more than any crash image: the table is corrupt",
        )
    sha = hashlib.sha256()
    done = 0
    missing: List[Tuple[int, int]] = []
    budget = MISSING_PROBE
    for region in p.regions:
        end = region.start + region.len
        for at, size, chunk in _stream(
            prog, region.start, region.len, f"sha region {region.slot}"
        ):
            if chunk is not None:
                if not missing:
                    sha.update(chunk)
            elif budget > 0:
                budget -= size
                missing += missing_ranges(prog, at, size)
            else:
                # Past the probing budget the rest of the region is one
                # range: a kdump vmcore lacks whole segments anyway.
                missing.append((at, end - 1))
                size = end - at
            done += size
            if progress is not None:
                progress(done, total)
            if at + size >= end:
                break
    if missing:
        return RegionsHash(
            None,
            done,
            tuple(normalize(missing)),
            reason="hashed bytes are not in this target",
        )
    computed = sha.hexdigest()
    found_at = None
    if computed != p.stored_digest and p.source == Source.SCAN:
        found_at = _search_digest(prog, p, bytes.fromhex(computed))
    return RegionsHash(computed, done, found_at=found_at)


def _search_digest(prog: Program, p: Purgatory, digest: bytes) -> Optional[int]:
    """kexec_load: the stored digest is not at its usual place; look for the
    computed one anywhere in the purgatory segment (a unique 8-aligned hit)."""
    if p.segment_mem is None or p.segment_memsz is None:
        return None
    try:
        data = b"".join(
            iter_phys(
                prog,
                p.segment_mem,
                min(p.segment_memsz, MAX_PURGATORY),
                "purgatory segment",
            )
        )
    except Unreadable:
        return None
    hits = aligned_hits(data, digest)
    return p.segment_mem + hits[0] if len(hits) == 1 else None
