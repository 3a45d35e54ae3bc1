"""
Crash image
-----------

Read ``kexec_crash_image`` (``struct kimage``, include/linux/kexec.h) and its
segment table, on every kernel layout of the crash hotplug fields, and
decide there what the kernel that has them does (the capability flags of
:class:`~drgn_crashhp.facts.HotplugFields`). Mirrors kernel/kexec_core.c,
kernel/kexec_file.c and kernel/crash_core.c.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from drgn import FaultError, Object, Program, Type

from drgn_crashhp.facts import HotplugFields, KImage, Layout, RfcSaved, Segment
from drgn_crashhp.kernel.segments import (
    KEXEC_SEGMENT_MAX,
    assign_roles,
    find_elfcorehdr,
)
from drgn_crashhp.read.fields import target_arch
from drgn_crashhp.read.physmem import Unreadable, read_phys

__all__ = ("MissingInfo", "read_kimage_with_heads", "read_kimage")


class MissingInfo(Exception):
    """The target lacks a symbol, type or member a reader needs."""


def _has_member(type_: Type, name: str) -> bool:
    try:
        return type_.has_member(name)
    except TypeError:
        return False


def _hotplug_fields(prog: Program, image: Object) -> HotplugFields:
    kimage = image.type_
    if _has_member(kimage, "hotplug_support"):
        # v6.10, commit 79365026f869 ("crash: add a new kexec flag for hotplug
        # support"): update_elfcorehdr renamed and set for both syscalls.
        support = bool(image.hotplug_support)
        return HotplugFields(
            layout=Layout.MAINLINE_6_10,
            support=support,
            support_source="hotplug_support",
            elfcorehdr_index=image.elfcorehdr_index.value_(),
            elfcorehdr_updated=bool(image.elfcorehdr_updated),
            hp_action=image.hp_action.value_(),
            **_mainline_capabilities(image, support),
        )
    if _has_member(kimage, "elfcorehdr_index"):
        # v6.6, series "crash: Kernel handling of CPU and memory hot un/plug"
        # (commit 247262756121 and a72bbec70da2 "crash: hotplug support for
        # kexec_load()"): kexec_file images always, kexec_load images when
        # loaded with KEXEC_UPDATE_ELFCOREHDR.
        file_mode = bool(image.file_mode)
        if _has_member(kimage, "update_elfcorehdr"):
            support = file_mode or bool(image.update_elfcorehdr)
            source = "file_mode || update_elfcorehdr"
        else:
            support = file_mode
            source = "file_mode"
        return HotplugFields(
            layout=Layout.MAINLINE_6_6,
            support=support,
            support_source=source,
            elfcorehdr_index=image.elfcorehdr_index.value_(),
            elfcorehdr_updated=bool(image.elfcorehdr_updated),
            hp_action=image.hp_action.value_(),
            **_mainline_capabilities(image, support),
        )
    if _has_member(image.arch.type_, "hp"):
        # RFC v1 "crash hp: Add x86 crash hotplug support for kexec_file_load"
        # (Nov 2021, never merged): x86 struct kimage_arch gained
        # hp.{elf_index,purg_index,rbx,rsi,rip,rsp}; kexec_file_load only.
        hp = image.arch.hp
        return HotplugFields(
            layout=Layout.RFC_V1,
            support=bool(image.file_mode),
            support_source="file_mode (RFC v1 supports kexec_file_load only)",
            rfc=RfcSaved(
                elf_index=hp.elf_index.value_(),
                purg_index=hp.purg_index.value_(),
                rbx=hp.rbx.value_(),
                rsi=hp.rsi.value_(),
                rip=hp.rip.value_(),
                rsp=hp.rsp.value_(),
            ),
            # RFC v1 re-ran the purgatory setup on every event: the header
            # stays inside the digest and a new digest is stored with it.
            rewrites_hashed_header=True,
        )
    return HotplugFields(
        layout=Layout.PRE_HOTPLUG,
        support=False,
        support_source="no crash hotplug fields in struct kimage",
    )


def _mainline_capabilities(image: Object, support: bool) -> Dict[str, Any]:
    """
    What v6.6+ kernels do (series "crash: Kernel handling of CPU and memory
    hot un/plug", commits 247262756121, f7cc804a9fd4, a72bbec70da2):
    ``crash_prepare_elf64_headers()`` writes a note for every possible CPU;
    /sys/devices/system/{cpu,memory}/crash_hotplug exist; kexec_file_load
    leaves the segment at ``elfcorehdr_index`` out of the digest (x86 sets
    the index at load unless the header would need PN_XNUM Phdrs), and
    kexec-tools >= 2.0.28 ``--hotplug`` (which sets the flag) leaves it out
    through ``arch_do_exclude_segment()``.
    """
    return {
        "digest_excludes_elfcorehdr": image.elfcorehdr_index.value_() >= 0
        if image.file_mode
        else support,
        "notes_for_possible_cpus": True,
        "sysfs_crash_hotplug": True,
    }


def _elf_fields(image: Object) -> Tuple[Optional[int], Optional[int]]:
    # Commit 9336a5f64b54 ("kexec: Move ELF fields to struct kimage", v5.13)
    # moved elf_load_addr/elf_headers_sz from x86's struct kimage_arch.
    for holder in (image, image.arch):
        if _has_member(holder.type_, "elf_load_addr"):
            size = (
                holder.elf_headers_sz.value_()
                if _has_member(holder.type_, "elf_headers_sz")
                else None
            )
            return holder.elf_load_addr.value_(), size
    return None, None


def _head(prog: Program, seg: Segment, size: int) -> Optional[bytes]:
    try:
        return read_phys(prog, seg.mem, min(size, seg.memsz), "segment")
    except Unreadable:
        return None


def read_kimage_with_heads(
    prog: Program, symbol: str = "kexec_crash_image"
) -> Optional[Tuple[KImage, Tuple[Optional[bytes], ...]]]:
    """
    Read a loaded kexec image. Segment roles are not assigned here
    (:func:`drgn_crashhp.kernel.segments.assign_roles` does that once all
    readers are done).

    :param symbol: ``kexec_crash_image`` (default) or ``kexec_image``.
    :return: the image and each segment's first page (None when it is not in
        the target); None if no image is loaded (the pointer is NULL).
    :raises MissingInfo: if the symbol or ``struct kimage`` is not known.
    :raises Unreadable: if the image cannot be read.
    """
    try:
        pointer = prog[symbol]
    except (KeyError, LookupError) as e:
        raise MissingInfo(
            f"symbol {symbol} not found (no debug info for kexec?)"
        ) from e
    try:
        address = pointer.value_()
    except FaultError as e:
        raise Unreadable(symbol, e.address, 8, physical=False) from e
    if not address:
        return None
    try:
        image = pointer[0].read_()
    except FaultError as e:
        raise Unreadable(
            f"*{symbol} (struct kimage)",
            address,
            pointer.type_.type.size or 0,
            physical=False,
        ) from e
    try:
        nr_segments = image.nr_segments.value_()
        segments = tuple(
            Segment(
                index=i,
                mem=image.segment[i].mem.value_(),
                memsz=image.segment[i].memsz.value_(),
                bufsz=image.segment[i].bufsz.value_(),
            )
            for i in range(min(nr_segments, KEXEC_SEGMENT_MAX))
        )
        hotplug = _hotplug_fields(prog, image)
        elf_load_addr, elf_headers_sz = _elf_fields(image)
        start = image.start.value_()
        file_mode = (
            bool(image.file_mode) if _has_member(image.type_, "file_mode") else False
        )
        type_ = image.type.value_()
        # After v6.12 ("crash_dump: store dm crypt keys in kdump reserved
        # memory"): the keys buffer loaded into the crash reservation.
        dm_crypt_keys_addr = (
            image.dm_crypt_keys_addr.value_()
            if _has_member(image.type_, "dm_crypt_keys_addr")
            else None
        )
    except (AttributeError, LookupError) as e:
        raise MissingInfo(f"struct kimage lacks a member: {e}") from e
    page = target_arch(prog).page_size
    heads = tuple(_head(prog, seg, page) for seg in segments)
    elf_idx, elf_source = find_elfcorehdr(segments, heads, hotplug, elf_load_addr)
    image_ = KImage(
        symbol=symbol,
        address=address,
        start=start,
        type=type_,
        file_mode=file_mode,
        nr_segments=nr_segments,
        segments=segments,
        elf_load_addr=elf_load_addr,
        elf_headers_sz=elf_headers_sz,
        hotplug=hotplug,
        elfcorehdr_index=elf_idx,
        elfcorehdr_source=elf_source,
        dm_crypt_keys_addr=dm_crypt_keys_addr,
    )
    return image_, heads


def read_kimage(prog: Program, symbol: str = "kexec_crash_image") -> Optional[KImage]:
    """
    Read a loaded kexec image, with segment roles named from their contents
    only (a full report also uses purgatory's registers and the header:
    :func:`drgn_crashhp.read.read_facts`).

    :return: None if no image is loaded.
    :raises MissingInfo: if the symbol or ``struct kimage`` is not known.
    :raises Unreadable: if the image cannot be read.
    """
    read = read_kimage_with_heads(prog, symbol)
    if read is None:
        return None
    return assign_roles(read[0], read[1], target_arch(prog), None)
