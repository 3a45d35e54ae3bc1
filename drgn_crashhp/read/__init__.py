"""
Readers
-------

The only code that calls drgn to read the target or catches its
``FaultError``. Each reader turns kernel memory into the frozen values of
:mod:`drgn_crashhp.facts`; :func:`read_facts` reads one report's worth.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional, Tuple

from drgn import Program, ProgramFlags
from drgn.helpers.linux.cpumask import cpu_online_mask, cpu_present_mask

from drgn_crashhp.facts import (
    DebugInfo,
    Facts,
    ImageProblem,
    ImageProblemKind,
    Unread,
    UnreadKind,
)
from drgn_crashhp.kernel.segments import assign_roles
from drgn_crashhp.read.boot_params import read_cmdline
from drgn_crashhp.read.cpus import cpus_of
from drgn_crashhp.read.digest import Progress, hash_regions
from drgn_crashhp.read.dump import read_dump_headers
from drgn_crashhp.read.elfcorehdr import read_elfcorehdr
from drgn_crashhp.read.fdt import read_fdt
from drgn_crashhp.read.fields import FieldReader, target_arch
from drgn_crashhp.read.image import MissingInfo, read_kimage_with_heads
from drgn_crashhp.read.memory import read_memory_blocks, walk_system_ram_res
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


#: Reads of a live target that changed while it was read, before the report
#: gives up and says CANNOT VERIFY.
MAX_READS = 4
#: Pause between two reads of a changing live target: a hotplug update of
#: the crash image takes milliseconds.
RETRY_PAUSE = 0.2


def _signature(prog: Program, symbol: str) -> Tuple[object, ...]:
    """
    What a crash hotplug update changes, read again cheaply: the kexec lock
    (held while the kernel rewrites the image, kernel/crash_core.c
    crash_handle_hotplug_event()), the image with its hotplug fields and
    segment heads, the elfcorehdr's bytes, and the CPUs and RAM it must
    describe.
    """
    r = FieldReader(prog)
    read = r.get("image", lambda: read_kimage_with_heads(prog, symbol))
    header = read_elfcorehdr(prog, read[0]).data if read is not None else None
    return (
        r.get("kexec_lock", lambda: prog["__kexec_lock"].counter.value_()),
        read,
        header,
        r.get("present_cpus", lambda: cpus_of(cpu_present_mask(prog))),
        r.get("online_cpus", lambda: cpus_of(cpu_online_mask(prog))),
        r.get("system_ram", lambda: _system_ram(prog)),
        r.get("memory_blocks", lambda: read_memory_blocks(prog, target_arch(prog))),
    )


def _is_live(prog: Program) -> bool:
    """/proc/kcore or a running QEMU guest: memory that changes as it is read."""
    return bool(prog.flags & ProgramFlags.IS_LIVE)


def _system_ram(prog: Program) -> object:
    return walk_system_ram_res(prog, prog["iomem_resource"].address_of_())


def _consistent(
    facts: Facts, before: Tuple[object, ...], after: Tuple[object, ...]
) -> bool:
    """Nothing changed from *before* to *after*, the lock was free, and the
    facts read in between hold the header both signatures saw."""
    header = facts.elfcorehdr.data if facts.elfcorehdr is not None else None
    return (
        before == after
        and not before[0]
        and (facts.image is None or before[2] == header)
    )


def read_facts(
    prog: Program,
    *,
    symbol: str = "kexec_crash_image",
    digest: bool = True,
    progress: Optional[Progress] = None,
    target: Optional[str] = None,
) -> Facts:
    """
    Read everything a report needs from *prog*. Never raises for problems
    of the target: they become values the checks judge.

    A live kernel rewrites its crash image under the kexec lock on every
    hotplug event, so a live target is read between two signatures of what
    an update changes (:func:`_signature`); when they differ, or the lock is
    held, it is read again, up to :data:`MAX_READS` times, and then the facts
    carry :attr:`~drgn_crashhp.facts.Facts.changing` instead of a half-read
    header.

    :param symbol: ``kexec_crash_image`` or ``kexec_image``.
    :param digest: Hash the purgatory regions (reads every hashed byte).
    :param progress: Called as ``progress(done, total)`` while hashing.
    :param target: How to name the target; by default the core dump path,
        or "live kernel".
    """
    if not _is_live(prog):
        return _read_once(prog, symbol, digest, progress, target)
    for attempt in range(MAX_READS):
        if attempt:
            time.sleep(RETRY_PAUSE)
        before = _signature(prog, symbol)
        facts = _read_once(prog, symbol, digest, progress, target)
        if _consistent(facts, before, _signature(prog, symbol)):
            return facts
    return dataclasses.replace(
        facts,
        changing=Unread(
            symbol,
            UnreadKind.CHANGING,
            f"the crash image or the CPUs and memory it describes changed "
            f"while they were read, {MAX_READS} times (a hotplug update "
            "under the kexec lock)",
        ),
    )


def _read_once(
    prog: Program,
    symbol: str,
    digest: bool,
    progress: Optional[Progress],
    target: Optional[str],
) -> Facts:
    """Read everything a report needs from *prog*, once."""
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
    # Roles once, from everything the readers found, before any check: from
    # the contents for the purgatory reader (kexec-tools' hash exclusions
    # and variables name roles), then with where purgatory's registers jump.
    arch = target_arch(prog)
    backup = (
        [ld.offset for ld in hdr.header.loads if ld.offset != ld.paddr]
        if hdr.header is not None
        else []
    )
    purgatory = read_purgatory(
        prog,
        assign_roles(image, heads, arch, None, backup, image.dm_crypt_keys_addr),
    )
    entry_offset = arch.kernel_entry_offset
    image = assign_roles(
        image,
        heads,
        arch,
        purgatory.regs.rip - entry_offset
        if purgatory.regs is not None and entry_offset is not None
        else None,
        backup,
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
        fdt=read_fdt(prog, image, state.present_cpus),
    )
