"""
Readers
-------

The only code that calls drgn to read the target or catches its
``FaultError``. Each reader turns kernel memory into the frozen values of
:mod:`drgn_crashhp.facts`; :func:`read_facts` reads one report's worth.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from drgn import Program

from drgn_crashhp.facts import DebugInfo, Facts, ImageProblem, ImageProblemKind
from drgn_crashhp.kernel.segments import assign_roles
from drgn_crashhp.read.boot_params import read_cmdline
from drgn_crashhp.read.digest import Progress, hash_regions
from drgn_crashhp.read.dump import read_dump_headers
from drgn_crashhp.read.elfcorehdr import read_elfcorehdr
from drgn_crashhp.read.fields import target_arch
from drgn_crashhp.read.image import MissingInfo, read_kimage_with_heads
from drgn_crashhp.read.physmem import Unreadable
from drgn_crashhp.read.purgatory import read_purgatory
from drgn_crashhp.read.state import read_state
from drgn_crashhp.target import debuginfo_source

__all__ = ("read_facts",)


def _target(prog: Program) -> str:
    try:
        path = prog.core_dump_path
    except (AttributeError, ValueError):
        path = None
    return path or "live kernel"


def read_facts(
    prog: Program,
    *,
    symbol: str = "kexec_crash_image",
    digest: bool = True,
    progress: Optional[Progress] = None,
    target: Optional[str] = None,
) -> Facts:
    """
    Read everything a report needs from *prog*, once. Never raises for
    problems of the target: they become values the checks judge.

    :param symbol: ``kexec_crash_image`` or ``kexec_image``.
    :param digest: Hash the purgatory regions (reads every hashed byte).
    :param progress: Called as ``progress(done, total)`` while hashing.
    :param target: How to name the target; by default the core dump path,
        or "live kernel".
    """
    state = read_state(prog)
    facts = Facts(
        target or _target(prog),
        symbol,
        state,
        read_dump_headers(prog, state.page_offset),
        debuginfo=DebugInfo(debuginfo_source(prog)),
    )
    try:
        read = read_kimage_with_heads(prog, symbol)
    except MissingInfo as e:
        return dataclasses.replace(
            facts, image_problem=ImageProblem(ImageProblemKind.MISSING_INFO, str(e))
        )
    except Unreadable as e:
        return dataclasses.replace(
            facts,
            image_problem=ImageProblem(
                ImageProblemKind.UNREADABLE, f"{symbol} cannot be read: {e}", e.address
            ),
        )
    if read is None:
        return dataclasses.replace(
            facts,
            image_problem=ImageProblem(ImageProblemKind.NULL, f"{symbol} is NULL"),
        )
    image, heads = read
    hdr = read_elfcorehdr(prog, image)
    purgatory = read_purgatory(prog, image)
    # Roles once, from everything the readers found, before any check.
    arch = target_arch(prog)
    entry_offset = arch.kernel_entry_offset
    image = assign_roles(
        image,
        heads,
        arch,
        purgatory.regs.rip - entry_offset
        if purgatory.regs is not None and entry_offset is not None
        else None,
        [ld.offset for ld in hdr.header.loads if ld.offset != ld.paddr]
        if hdr.header is not None
        else (),
        image.dm_crypt_keys_addr,
    )
    purgatory = dataclasses.replace(
        purgatory,
        regions=tuple(
            dataclasses.replace(
                r,
                role=image.segments[r.segment].role if r.segment is not None else None,
            )
            for r in purgatory.regions
        ),
        cmdline=read_cmdline(prog, image, purgatory.regs),
    )
    hdr = dataclasses.replace(hdr, segment=image.elfcorehdr)
    return dataclasses.replace(
        facts,
        image=image,
        elfcorehdr=hdr,
        purgatory=purgatory,
        hashed=hash_regions(prog, purgatory, progress) if digest else None,
    )
