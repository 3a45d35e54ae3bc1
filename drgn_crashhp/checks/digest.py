"""
02x: purgatory and its digest
-----------------------------

Whether purgatory's SHA-256 check will pass at panic: the regions it will
hash against the segments the loader should hash
(:mod:`drgn_crashhp.kernel.sha_regions`), the replayed section placement,
and the recomputed digest against the stored one.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from drgn_crashhp.analysis import Analysis
from drgn_crashhp.arch import Arch
from drgn_crashhp.checks._common import arch, page_size
from drgn_crashhp.facts import (
    DigestStatus,
    DigestVerdict,
    Facts,
    KImage,
    Purgatory,
    ShaRegion,
    Source,
    UnreadKind,
)
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.kernel.ranges import align
from drgn_crashhp.kernel.segments import KEXEC_SEGMENT_MAX
from drgn_crashhp.kernel.sha_regions import (
    SHA256_EMPTY,
    expected_regions,
    hash_excluded,
)

__all__ = ("check_purgatory",)


def _problem_finding(p: Purgatory) -> Finding:
    assert p.unread is not None
    text, kind = p.unread.reason, p.unread.kind
    if kind == UnreadKind.MISSING_INFO:
        return finding(
            "CHP090",
            f"{text}: purgatory, digest and entry registers not checked",
            problem=str(kind),
        )
    if kind == UnreadKind.NOT_IN_TARGET:
        missing = (
            [(p.segment_mem, p.segment_mem + p.segment_memsz - 1)]
            if p.segment_mem is not None and p.segment_memsz
            else []
        )
        return finding(
            "CHP022",
            f"the purgatory segment is not in this target "
            f"({text}); digest and entry registers not checked",
            problem=str(kind),
            missing=missing,
        )
    return finding("CHP026", f"purgatory ({p.source}): {text}", problem=str(kind))


def _check_replay(image: KImage, p: Purgatory, page_size: int) -> List[Finding]:
    seg = image.segment_containing(image.start)
    wrong = []
    if p.replay_start != image.start:
        wrong.append(
            f"entry {p.replay_start:#x} ({p.replay_rule}) != image->start "
            f"{image.start:#x}"
        )
    if seg is not None and p.replay_bufsz is not None and p.replay_memsz is not None:
        if p.replay_bufsz != seg.bufsz:
            wrong.append(f"bufsz {p.replay_bufsz:#x} != segment bufsz {seg.bufsz:#x}")
        memsz = align(p.replay_memsz, page_size)
        if memsz != seg.memsz:
            wrong.append(f"memsz {memsz:#x} != segment memsz {seg.memsz:#x}")
    if not wrong:
        return []
    return [
        finding(
            "CHP027",
            "replaying kexec_purgatory's section placement: " + "; ".join(wrong),
            replay_start=p.replay_start,
            start=image.start,
            disagreements=wrong,
        )
    ]


def _fmt_regions(regions: Sequence[Tuple[int, int]]) -> str:
    return ", ".join(f"[{s:#x}+{n:#x}]" for s, n in regions) or "none"


def _check_regions(
    image: KImage, p: Purgatory, target: Arch
) -> Tuple[List[Finding], bool]:
    """CHP023/CHP025; also whether verification is disabled."""
    expected = expected_regions(image, hash_excluded(image, target))
    actual = [(r.start, r.len) for r in p.regions]
    if not actual and expected:
        if p.stored_digest == SHA256_EMPTY:
            # v6.6 commit f7cc804a9fd4 compared the output index j with
            # elfcorehdr_index (0 on x86), skipping every segment; fixed in
            # 6.11 by "kexec_file: fix elfcorehdr digest exclusion when
            # CONFIG_CRASH_HOTPLUG=y" (Cc stable).
            return [
                finding(
                    "CHP023",
                    f"all {KEXEC_SEGMENT_MAX} sha regions are empty and the stored "
                    f"digest is SHA-256 of nothing, while {len(expected)} segments "
                    "should be hashed: purgatory verifies nothing (6.6-6.10 "
                    "elfcorehdr exclusion bug, fixed in 6.11)",
                    expected=expected,
                    stored=p.stored_digest,
                )
            ], True
        return [
            finding(
                "CHP025",
                f"all sha regions are empty; expected {_fmt_regions(expected)}",
                expected=expected,
                actual=actual,
            )
        ], False
    if actual == expected:
        return [], False
    if p.source == Source.SCAN and p.elfcorehdr_excluded is not None:
        how = "left out" if p.elfcorehdr_excluded else "hashed"
        what = " and ".join(
            ["the elfcorehdr"]
            + [
                f"the {r} segment"
                for r in sorted(target.kexec_tools_hotplug_excludes)
                if r != "elfcorehdr"
            ]
        )
        why = (
            "the image has hotplug support (kexec --hotplug)"
            if image.hotplug.support
            else "the image has no hotplug support"
        )
        message = f"kexec-tools {how} {what} although {why}"
    else:
        missing = [r for r in expected if r not in actual]
        extra = [r for r in actual if r not in expected]
        message = (
            f"sha regions {_fmt_regions(actual)} differ from the expected "
            f"{_fmt_regions(expected)} (missing {_fmt_regions(missing)}, "
            f"unexpected {_fmt_regions(extra)})"
        )
    return [finding("CHP025", message, expected=expected, actual=actual)], False


def _elfcorehdr_region(image: KImage, p: Purgatory) -> Optional[ShaRegion]:
    elf = image.elfcorehdr
    if elf is None:
        return None
    for r in p.regions:
        if r.start < elf.mem + elf.memsz and elf.mem < r.start + r.len:
            return r
    return None


def _rewrite_cause(image: KImage) -> Optional[str]:
    """Why the elfcorehdr may differ from what was hashed, if anything says so."""
    hp = image.hotplug
    if hp.rewrites_hashed_header:
        return (
            "RFC v1 crash hotplug rewrites the hashed elfcorehdr on every "
            "event and must store a new digest; the header changed without "
            "one"
        )
    if hp.elfcorehdr_updated:
        return (
            "the kernel rewrote the elfcorehdr on a hotplug event "
            "(elfcorehdr_updated) although the header is inside the digest"
        )
    return None


def _check_digest(image: KImage, p: Purgatory, digest: DigestVerdict) -> List[Finding]:
    if digest.status == DigestStatus.UNVERIFIABLE:
        ranges = [f"[{s:#x}-{e:#x}]" for s, e in digest.missing]
        return [
            finding(
                "CHP022",
                "cannot verify the purgatory digest: "
                + (
                    f"{len(ranges)} hashed ranges are not in this target: "
                    + ", ".join(ranges[:4])
                    + (" ..." if len(ranges) > 4 else "")
                    if ranges
                    else (digest.reason or "nothing to hash")
                ),
                missing=[list(r) for r in digest.missing],
                reason=digest.reason,
            )
        ]
    if digest.status == DigestStatus.MATCH:
        return [
            finding(
                "CHP021",
                f"sha256 over {len(p.regions)} regions "
                f"({digest.bytes_hashed:#x} bytes) matches the stored digest",
                digest=digest.computed,
                bytes=digest.bytes_hashed,
            )
        ]
    elf_region = _elfcorehdr_region(image, p)
    cause = _rewrite_cause(image) if elf_region is not None else None
    details = dict(
        stored=digest.stored,
        computed=digest.computed,
        bytes=digest.bytes_hashed,
        elfcorehdr_slot=elf_region.slot if elf_region else None,
    )
    if cause is not None:
        return [
            finding(
                "CHP024",
                f"digest mismatch and the elfcorehdr (segment "
                f"{image.elfcorehdr_index}) is hashed in slot {elf_region.slot}: "  # type: ignore[union-attr]
                f"{cause}; purgatory will hang at panic",
                cause=cause,
                **details,
            )
        ]
    hint = (
        " (the elfcorehdr is inside the hashed regions on this layout)"
        if elf_region is not None
        else ""
    )
    return [
        finding(
            "CHP020",
            f"stored digest {digest.stored or '-'} != computed "
            f"{digest.computed}{hint}: purgatory will hang at panic",
            **details,
        )
    ]


def check_purgatory(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP020 to CHP027, and CHP090 when the kernel has no purgatory blob."""
    image, p = facts.image, facts.purgatory
    if image is None or p is None:
        return []
    out: List[Finding] = []
    if p.unread is not None:
        out.append(_problem_finding(p))
    if p.replay_start is not None:
        out += _check_replay(image, p, page_size(facts))
    if p.regions_address is not None and p.unread is None:
        found, disabled = _check_regions(image, p, arch(facts))
        out += found
        if not disabled and analysis.digest is not None:
            out += _check_digest(image, p, analysis.digest)
    return out
