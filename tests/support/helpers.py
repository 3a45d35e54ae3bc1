"""
Run single check families on hand-made parts of the facts: the tests build
an image, a header or a state and want the findings of one family, as the
report would produce them.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

from drgn import Program

from drgn_crashhp.analysis import analyze, judge_digest
from drgn_crashhp.arch import DEFAULT_ARCH
from drgn_crashhp.checks import CONTENT_CHECKS
from drgn_crashhp.checks.digest import check_purgatory as _check_purgatory
from drgn_crashhp.checks.entry import check_entry
from drgn_crashhp.checks.hotplug import check_hotplug, check_room
from drgn_crashhp.checks.memory import check_rebuild
from drgn_crashhp.checks.postmortem import check_dump as _check_dump
from drgn_crashhp.facts import (
    DigestVerdict,
    DumpHeaders,
    ElfCoreHdr,
    ElfCoreHdrRead,
    Facts,
    KImage,
    MachineState,
    Purgatory,
    RegionsHash,
)
from drgn_crashhp.findings import Finding
from drgn_crashhp.read.boot_params import read_cmdline
from drgn_crashhp.read.digest import Progress, hash_regions
from drgn_crashhp.read.purgatory import read_purgatory
from drgn_crashhp.render.text import _purgatory_text, _state_text

__all__ = (
    "check_dump",
    "check_purgatory",
    "check_state",
    "read_purgatory_full",
    "render_purgatory",
    "render_state",
    "verify_digest",
)


def check_state(
    image: KImage,
    hdr: Optional[ElfCoreHdr],
    hdr_bytes: Optional[bytes],
    state: MachineState,
) -> List[Finding]:
    """The 04x, 05x and 06x findings for *hdr* (None: unreadable) and *state*."""
    read = ElfCoreHdrRead(image.elfcorehdr, header=hdr, data=hdr_bytes or b"")
    facts = Facts("test", image.symbol, state, image=image, elfcorehdr=read)
    analysis = analyze(facts)
    out = check_hotplug(facts, analysis) + check_room(facts, analysis)
    content: List[Finding] = []
    for _, check in CONTENT_CHECKS:
        content += check(facts, analysis)
    return out + content + check_rebuild(facts, analysis, content)


def read_purgatory_full(prog: Program, image: KImage) -> Purgatory:
    """The purgatory and the command line its boot params point at, as
    :func:`~drgn_crashhp.read.read_facts` reads them."""
    p = read_purgatory(prog, image)
    return dataclasses.replace(p, cmdline=read_cmdline(prog, image, p.regs))


def verify_digest(
    prog: Program, purgatory: Purgatory, progress: Optional[Progress] = None
) -> Tuple[RegionsHash, DigestVerdict]:
    """Hash the regions and judge the digest, as a report does: the bytes
    read and the verdict on them."""
    read = hash_regions(prog, purgatory, progress)
    return read, judge_digest(purgatory, read)


def check_purgatory(
    image: KImage,
    purgatory: Purgatory,
    digest: Optional[RegionsHash],
    arch: str = DEFAULT_ARCH,
) -> List[Finding]:
    """The 02x and 03x findings for a purgatory and its hashed bytes, on
    the architecture drgn names *arch*."""
    facts = Facts(
        "test",
        image.symbol,
        MachineState(arch=arch),
        image=image,
        purgatory=purgatory,
        hashed=digest,
    )
    analysis = analyze(facts)
    return _check_purgatory(facts, analysis) + check_entry(facts, analysis)


def check_dump(dump: DumpHeaders, state: MachineState) -> List[Finding]:
    facts = Facts("test", "kexec_crash_image", state, dump=dump)
    return _check_dump(facts, analyze(facts))


def render_state(
    state: MachineState,
    hdr: Optional[ElfCoreHdr] = None,
    image: Optional[KImage] = None,
) -> str:
    """The "state now" section for *state* against *hdr*."""
    read = ElfCoreHdrRead(None, header=hdr) if hdr is not None else None
    if hdr is not None and image is None:
        image = _stand_in_image()
    facts = Facts("test", "kexec_crash_image", state, image=image, elfcorehdr=read)
    return _state_text(state, analyze(facts), hdr is not None)


def _stand_in_image() -> KImage:
    """An image for rendering a header on its own (the renderer only needs
    one to be loaded)."""
    from drgn_crashhp.facts import HotplugFields, Layout

    return KImage(
        "kexec_crash_image",
        0,
        0,
        0,
        True,
        0,
        (),
        None,
        None,
        HotplugFields(Layout.MAINLINE_6_10, True, "test"),
        None,
        "test",
    )


def render_purgatory(purgatory: Purgatory, digest: object = None) -> str:
    return _purgatory_text(purgatory, digest)  # type: ignore[arg-type]
