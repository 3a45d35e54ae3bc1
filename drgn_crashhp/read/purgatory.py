"""
Purgatory
---------

Locate the purgatory inside a loaded crash image and read what the loader
patched into it (``purgatory_sha_regions``, ``purgatory_sha256_digest``,
``entry64_regs``): for kexec_file_load by replaying the kernel's own blob
(``kexec_purgatory``, arch/x86/purgatory/kexec-purgatory.S), for
kexec_load by scanning the segment for kexec-tools' tables
(:mod:`drgn_crashhp.kernel.purgatory`).
"""

from __future__ import annotations

import io
import struct
from dataclasses import replace
from typing import List, Optional, Tuple

from drgn import FaultError, Program

from drgn_crashhp.arch import Arch
from drgn_crashhp.facts import (
    EntryRegs,
    KImage,
    Purgatory,
    PurgatoryVariable,
    RegsLayout,
    Role,
    Segment,
    Source,
    Unread,
    UnreadKind,
)
from drgn_crashhp.kernel.purgatory import (
    REGS_SIZE,
    aligned_hits,
    decode_regs,
    replay_layout,
    scan_regs,
    symbol_phys,
)
from drgn_crashhp.kernel.sha_regions import (
    DIGEST_SIZE,
    REGIONS_SIZE,
    expected_regions,
    kexec_tools_hotplug_excludes,
    name_regions,
    regions_table,
)
from drgn_crashhp.read.fields import target_arch
from drgn_crashhp.read.physmem import Unreadable, iter_phys, read_phys

__all__ = ("MAX_PURGATORY", "read_purgatory")

#: Reads of a segment are capped here whatever memsz claims; real purgatory
#: segments are a few pages.
MAX_PURGATORY = 1 << 22


def _blob(prog: Program) -> bytes:
    """The ``kexec_purgatory`` ELF (arch/x86/purgatory/kexec-purgatory.S)."""
    # Both symbols are defined in assembly: there is no DWARF variable, so
    # read the .quad at kexec_purgatory_size's address.
    start = prog.symbol("kexec_purgatory").address
    size_at = prog.symbol("kexec_purgatory_size").address
    size = int.from_bytes(prog.read(size_at, 8), "little")
    if not 0 < size <= MAX_PURGATORY:
        raise ValueError(f"kexec_purgatory_size is {size:#x}")
    return prog.read(start, size)


def read_purgatory(prog: Program, image: KImage) -> Purgatory:
    """
    Locate and decode the purgatory of a loaded image. Never raises for
    problems of the target: they become :attr:`Purgatory.unread`.
    """
    seg = image.segment_containing(image.start)
    source = Source.KERNEL_BLOB if image.file_mode else Source.SCAN
    if seg is None:
        return Purgatory(
            source,
            Unread(
                "purgatory",
                UnreadKind.NOT_FOUND,
                f"image->start {image.start:#x} lies in no segment",
            ),
            None,
        )
    if image.file_mode:
        purg = _read_file_mode(prog, image, seg)
    else:
        purg = _read_scanned(prog, image, seg)
    return replace(purg, segment_mem=seg.mem, segment_memsz=seg.memsz)


def _read_file_mode(prog: Program, image: KImage, seg: Segment) -> Purgatory:
    base = Purgatory(Source.KERNEL_BLOB, None, seg.index)
    try:
        blob = _blob(prog)
    except LookupError as e:
        return replace(
            base,
            unread=Unread(
                "kexec_purgatory",
                UnreadKind.MISSING_INFO,
                f"kexec_purgatory symbols not found: {e}",
            ),
        )
    except (FaultError, ValueError) as e:
        return replace(
            base,
            unread=Unread(
                "kexec_purgatory",
                UnreadKind.MALFORMED,
                f"kexec_purgatory cannot be read: {e}",
            ),
        )
    base = replace(base, blob_size=len(blob))
    # pyelftools earns its place here, on the purgatory object, and loads
    # only for a kexec_file image.
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(blob))
        machine = target_arch(prog).elf_machine
        if elf["e_type"] != "ET_REL" or blob[18:20] != machine.to_bytes(2, "little"):
            raise ELFError(
                f"{elf['e_type']} {elf['e_machine']}, expected ET_REL of "
                f"e_machine {machine}"
            )
        layout = replay_layout(elf, seg.mem)
        start, rule = layout.start_for(image.start)
        # Commit 40c50c1fecdf (v4.11) added the purgatory_ prefix to
        # sha_regions and sha256_digest.
        regions = symbol_phys(
            elf, layout, seg.mem, ("purgatory_sha_regions", "sha_regions"), REGIONS_SIZE
        )
        digest = symbol_phys(
            elf,
            layout,
            seg.mem,
            ("purgatory_sha256_digest", "sha256_digest"),
            DIGEST_SIZE,
        )
        regs = symbol_phys(elf, layout, seg.mem, ("entry64_regs",), REGS_SIZE)
        stack_end = symbol_phys(elf, layout, seg.mem, ("stack_end",), None)
    except (
        ELFError,
        KeyError,
        IndexError,
        ValueError,
        OverflowError,
        struct.error,
    ) as e:
        # OverflowError: pyelftools seeks to offsets past 2**63 as given.
        return replace(
            base,
            unread=Unread(
                "kexec_purgatory",
                UnreadKind.MALFORMED,
                f"kexec_purgatory is not a loadable purgatory: {e}",
            ),
        )
    base = replace(
        base,
        replay_start=start,
        replay_rule=rule,
        replay_bufsz=layout.bufsz,
        replay_memsz=layout.memsz,
        symbols=tuple(s for s in (regions, digest, regs, stack_end) if s),
        stack_end=stack_end[1] if stack_end else None,
    )
    if regions is None or digest is None:
        lacking = [
            n for n, s in (("sha regions", regions), ("digest", digest)) if s is None
        ]
        return replace(
            base,
            unread=Unread(
                "kexec_purgatory",
                UnreadKind.MALFORMED,
                f"the blob lacks the {' and '.join(lacking)} symbol",
            ),
        )
    base = replace(
        base,
        regions_address=regions[1],
        digest_address=digest[1],
        digest_source=f"symbol {digest[0]}",
    )
    try:
        table = read_phys(prog, regions[1], REGIONS_SIZE, regions[0])
        stored = read_phys(prog, digest[1], DIGEST_SIZE, digest[0])
    except Unreadable as e:
        return replace(base, unread=e.unread())
    base = replace(base, regions=name_regions(image, table), stored_digest=stored.hex())
    if regs is None:
        return replace(
            base,
            regs_unread=Unread(
                "entry64_regs",
                UnreadKind.MALFORMED,
                "the blob has no entry64_regs symbol",
            ),
        )
    try:
        raw = read_phys(prog, regs[1], REGS_SIZE, "entry64_regs")
    except Unreadable as e:
        return replace(base, regs_unread=e.unread())
    return replace(base, regs=decode_regs(RegsLayout.KERNEL, regs[1], raw))


def _read_scanned(prog: Program, image: KImage, seg: Segment) -> Purgatory:
    src = Source.SCAN
    arch = target_arch(prog)
    size = min(seg.memsz, MAX_PURGATORY)
    try:
        data = b"".join(iter_phys(prog, seg.mem, size, "purgatory segment"))
    except Unreadable as e:
        return Purgatory(src, e.unread(), seg.index)
    regs: Optional[EntryRegs] = None
    regs_unread = None
    if RegsLayout.KEXEC_TOOLS.value in arch.regs:
        regs, regs_missing = scan_regs(image, seg, data)
        if regs_missing:
            regs_unread = Unread("entry64_regs", UnreadKind.NOT_FOUND, regs_missing)
    # kexec-tools hashes every segment but purgatory (and, with --hotplug,
    # what the architecture excludes) in segment order; try both, the check
    # compares with what this image's flags imply.
    hotplug_excludes = kexec_tools_hotplug_excludes(arch)
    candidates: List[Tuple[int, bool, List[Tuple[int, int]]]] = []
    for exclude in (False, True):
        wanted = expected_regions(image, hotplug_excludes if exclude else frozenset())
        if not wanted or (exclude and wanted == expected_regions(image)):
            continue
        for at in aligned_hits(data, regions_table(wanted)):
            candidates.append((at, exclude, wanted))
    # When the elfcorehdr is the first region, the shorter list also matches
    # 16 bytes into the longer one (its zero padding runs on into what
    # follows): tables cannot overlap, so keep the first of overlapping hits.
    candidates.sort()
    candidates = [
        c
        for i, c in enumerate(candidates)
        if i == 0 or candidates[i - 1][0] + REGIONS_SIZE <= c[0]
    ]
    if len(candidates) != 1:
        why = (
            "no 8-byte aligned block equals the expected sha256_regions table"
            if not candidates
            else f"{len(candidates)} blocks match the expected sha256_regions table"
        )
        return Purgatory(
            src,
            Unread("sha256_regions", UnreadKind.NOT_FOUND, f"cannot locate: {why}"),
            seg.index,
            regs=regs,
            regs_unread=regs_unread,
        )
    at, exclude, _ = candidates[0]
    regions_at = seg.mem + at
    # purgatory/purgatory.c defines sha256_regions and sha256_digest side by
    # side; where the linker puts the digest differs by architecture (x86:
    # 32 bytes before the table, ppc64 and arm64: right after it, in
    # Debian's 2.0.29 builds). hash_regions() searches the segment for the
    # computed digest when it is not here.
    digest_off = at + arch.kexec_tools_digest_offset
    digest_at: Optional[int] = None
    stored = None
    if 0 <= digest_off <= len(data) - DIGEST_SIZE:
        digest_at = seg.mem + digest_off
        stored = data[digest_off : digest_off + DIGEST_SIZE].hex()
    where = (
        f"{abs(arch.kexec_tools_digest_offset)} bytes "
        f"{'before' if arch.kexec_tools_digest_offset < 0 else 'after'} "
        f"sha256_regions (kexec-tools' {arch.name} layout)"
    )
    variables, variables_unread = _scan_variables(
        image, seg, data, digest_off, (at, at + REGIONS_SIZE), arch
    )
    found = (
        ("sha256_regions", regions_at),
        ("sha256_digest", digest_at),
        ("entry64_regs", regs.address if regs else None),
    ) + tuple((v.name, v.address) for v in variables)
    return Purgatory(
        src,
        None,
        seg.index,
        symbols=tuple((n, a) for n, a in found if a is not None),
        regions_address=regions_at,
        regions=name_regions(image, data[at : at + REGIONS_SIZE]),
        digest_address=digest_at,
        digest_source=where,
        stored_digest=stored,
        regs=regs,
        regs_unread=regs_unread,
        elfcorehdr_excluded=exclude,
        variables=variables,
        variables_unread=variables_unread,
    )


def _scan_variables(
    image: KImage,
    seg: Segment,
    data: bytes,
    digest_off: int,
    table: Tuple[int, int],
    arch: Arch,
) -> Tuple[Tuple[PurgatoryVariable, ...], Optional[Unread]]:
    """
    kexec-tools' purgatory variables, read at the architecture's offsets
    from sha256_digest. The offsets are those of the builds tried: when a
    variable there does not hold its segment's start but that start is
    stored elsewhere in the segment (outside the regions table), this build
    lays them out differently and nothing is claimed.
    """
    if not arch.kexec_tools_variables:
        return (), None
    out = []
    for name, offset, role_name in arch.kexec_tools_variables:
        role = Role(role_name)
        target = image.by_role(role)
        at = digest_off + offset
        if not 0 <= at <= len(data) - 8 or at % 8:
            return (), Unread(
                name,
                UnreadKind.NOT_FOUND,
                f"{name} would lie at {at:#x}, outside the purgatory segment",
            )
        (value,) = struct.unpack_from("<Q", data, at)
        if target is not None and value != target.mem:
            elsewhere = [
                h
                for h in aligned_hits(data, struct.pack("<Q", target.mem))
                if not table[0] <= h < table[1]
            ]
            if elsewhere:
                return (), Unread(
                    name,
                    UnreadKind.NOT_FOUND,
                    f"{name} is not at {at:#x} in this kexec-tools build "
                    f"(the {role} segment's start {target.mem:#x} is stored at "
                    + ", ".join(f"{h:#x}" for h in elsewhere[:4])
                    + ")",
                )
        out.append(PurgatoryVariable(name, seg.mem + at, value, role))
    return tuple(out), None
