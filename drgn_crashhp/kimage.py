"""
Crash image
-----------

Read ``kexec_crash_image`` (``struct kimage``, include/linux/kexec.h) and its
segment table into plain frozen values, on every kernel layout of the crash
hotplug fields. Mirrors kernel/kexec_core.c, kernel/kexec_file.c and
kernel/crash_core.c.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from drgn import FaultError, Object, Program, Type

from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.physmem import Unreadable, read_phys

__all__ = (
    "HP_ACTIONS",
    "KEXEC_SEGMENT_MAX",
    "HotplugFields",
    "KImage",
    "Layout",
    "MissingInfo",
    "RfcSaved",
    "Role",
    "Segment",
    "check_image",
    "read_kimage",
    "refine_roles",
)

#: include/uapi/linux/kexec.h
KEXEC_SEGMENT_MAX = 16

#: ``KEXEC_CRASH_HP_*`` are #defines (no DWARF), include/linux/crash_core.h
#: since v6.6.
HP_ACTIONS = {
    0: "NONE",
    1: "ADD_CPU",
    2: "REMOVE_CPU",
    3: "ADD_MEMORY",
    4: "REMOVE_MEMORY",
    0xFFFFFFFF: "INVALID_CPU",
}

ELFMAG = b"\x7fELF"
ET_CORE = 4

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


class MissingInfo(Exception):
    """The target lacks a symbol, type or member a reader needs."""


class Layout(str, enum.Enum):
    """Which generation of the crash hotplug fields ``struct kimage`` has."""

    #: No crash hotplug (before v6.6, or CONFIG_CRASH_HOTPLUG=n).
    PRE_HOTPLUG = "pre-hotplug"
    #: E. DeVolder's RFC v1 (Nov 2021, never merged): x86 ``image->arch.hp``.
    RFC_V1 = "rfc-v1"
    #: v6.6 to v6.9: ``elfcorehdr_index``, ``elfcorehdr_updated``,
    #: ``hp_action``, ``update_elfcorehdr``.
    MAINLINE_6_6 = "6.6"
    #: v6.10 and later: ``update_elfcorehdr`` renamed ``hotplug_support``.
    MAINLINE_6_10 = "6.10"

    def __str__(self) -> str:
        return self.value


class Role(str, enum.Enum):
    ELFCOREHDR = "elfcorehdr"
    PURGATORY = "purgatory"
    BOOT_PARAMS = "boot_params"
    KERNEL = "kernel"
    INITRD = "initrd"
    BACKUP = "backup"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Segment:
    index: int
    mem: int
    memsz: int
    bufsz: int
    role: Role = Role.UNKNOWN

    @property
    def end(self) -> int:
        """Inclusive last physical address."""
        return self.mem + self.memsz - 1

    def contains(self, address: int) -> bool:
        return self.mem <= address < self.mem + self.memsz


@dataclass(frozen=True)
class RfcSaved:
    """``image->arch.hp`` of the RFC v1 series (x86 ``struct kimage_arch``)."""

    elf_index: int
    purg_index: int
    rbx: int
    rsi: int
    rip: int
    rsp: int


@dataclass(frozen=True)
class HotplugFields:
    layout: Layout
    #: Whether the kernel rewrites the elfcorehdr on hotplug for this image.
    support: bool
    #: The member (or rule) the support flag came from.
    support_source: str
    elfcorehdr_index: Optional[int] = None
    elfcorehdr_updated: Optional[bool] = None
    hp_action: Optional[int] = None
    rfc: Optional[RfcSaved] = None

    @property
    def hp_action_name(self) -> Optional[str]:
        if self.hp_action is None:
            return None
        return HP_ACTIONS.get(self.hp_action, f"UNKNOWN({self.hp_action})")


@dataclass(frozen=True)
class KImage:
    symbol: str
    address: int
    start: int
    type: int
    file_mode: bool
    nr_segments: int
    #: Segments actually read: at most KEXEC_SEGMENT_MAX, even when
    #: ``nr_segments`` claims more.
    segments: Tuple[Segment, ...]
    elf_load_addr: Optional[int]
    elf_headers_sz: Optional[int]
    hotplug: HotplugFields
    #: Index into ``segments`` of the elfcorehdr, or None.
    elfcorehdr_index: Optional[int]
    #: How the elfcorehdr segment was identified.
    elfcorehdr_source: str

    @property
    def elfcorehdr(self) -> Optional[Segment]:
        if self.elfcorehdr_index is None:
            return None
        return self.segments[self.elfcorehdr_index]

    def segment_containing(self, address: int) -> Optional[Segment]:
        for seg in self.segments:
            if seg.contains(address):
                return seg
        return None

    def by_role(self, role: Role) -> Optional[Segment]:
        for seg in self.segments:
            if seg.role == role:
                return seg
        return None


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
        return HotplugFields(
            layout=Layout.MAINLINE_6_10,
            support=bool(image.hotplug_support),
            support_source="hotplug_support",
            elfcorehdr_index=image.elfcorehdr_index.value_(),
            elfcorehdr_updated=bool(image.elfcorehdr_updated),
            hp_action=image.hp_action.value_(),
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
        )
    return HotplugFields(
        layout=Layout.PRE_HOTPLUG,
        support=False,
        support_source="no crash hotplug fields in struct kimage",
    )


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


def _is_elf_core(head: Optional[bytes]) -> bool:
    return (
        head is not None
        and head[:4] == ELFMAG
        and len(head) >= 18
        and int.from_bytes(head[16:18], "little") == ET_CORE
    )


def _find_elfcorehdr(
    prog: Program,
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
    found = [seg.index for seg, head in zip(segments, heads) if _is_elf_core(head)]
    if found:
        return found[-1], "scan for ET_CORE"
    if all(h is None for h in heads):
        return None, "segments not readable in this target"
    return None, "no segment starts with an ELF core header"


def _classify(
    segments: Tuple[Segment, ...],
    heads: Tuple[Optional[bytes], ...],
    start: int,
    file_mode: bool,
    elfcorehdr: Optional[int],
) -> Tuple[Segment, ...]:
    roles = [Role.UNKNOWN] * len(segments)
    if elfcorehdr is not None:
        roles[elfcorehdr] = Role.ELFCOREHDR
    for seg, head in zip(segments, heads):
        if roles[seg.index] != Role.UNKNOWN:
            continue
        if seg.contains(start):
            roles[seg.index] = Role.PURGATORY
        elif head is not None and head[0x202:0x206] == b"HdrS":
            # struct boot_params: setup_header.header "HdrS" at 0x202.
            roles[seg.index] = Role.BOOT_PARAMS
        elif head is not None and head.startswith(_INITRD_MAGIC):
            roles[seg.index] = Role.INITRD
    if file_mode and all(h is None for h in heads):
        # Contents are not in the target (a kdump vmcore excludes the crash
        # region): fall back to bzImage64_load()'s order, elfcorehdr,
        # purgatory, boot params, kernel, initrd (arch/x86/kernel/
        # kexec-bzimage64.c).
        order = [Role.ELFCOREHDR, Role.PURGATORY, Role.BOOT_PARAMS, Role.KERNEL,
                 Role.INITRD]
        for i in range(len(segments)):
            if roles[i] == Role.UNKNOWN and i < len(order) and order[i] not in roles:
                roles[i] = order[i]
    elif file_mode:
        # bzImage64_load() adds the kernel right after the boot params.
        for i in range(1, len(segments)):
            if roles[i - 1] == Role.BOOT_PARAMS and roles[i] == Role.UNKNOWN:
                roles[i] = Role.KERNEL
    return tuple(
        Segment(s.index, s.mem, s.memsz, s.bufsz, role)
        for s, role in zip(segments, roles)
    )


def refine_roles(
    image: KImage, kernel_entry: Optional[int], backup: Sequence[int] = ()
) -> KImage:
    """
    Name segments that only other decoders can recognise: the kernel, from
    the entry register purgatory jumps to (``rip`` = kernel ``mem`` + 0x200,
    arch/x86/kernel/kexec-bzimage64.c and kexec-tools alike), and kexec-tools'
    low-memory backup region, which an elfcorehdr PT_LOAD points at through
    its ``p_offset``. Only ``unknown`` roles change.
    """
    segments = []
    for seg in image.segments:
        role = seg.role
        if role == Role.UNKNOWN:
            if kernel_entry is not None and seg.mem + 0x200 == kernel_entry:
                role = Role.KERNEL
            elif seg.mem in backup:
                role = Role.BACKUP
        segments.append(dataclasses.replace(seg, role=role))
    return dataclasses.replace(image, segments=tuple(segments))


def read_kimage(prog: Program, symbol: str = "kexec_crash_image") -> Optional[KImage]:
    """
    Read a loaded kexec image.

    :param symbol: ``kexec_crash_image`` (default) or ``kexec_image``.
    :return: None if no image is loaded (the pointer is NULL).
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
        raise Unreadable(f"*{symbol} (struct kimage)", address,
                         pointer.type_.type.size or 0, physical=False) from e
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
    except (AttributeError, LookupError) as e:
        raise MissingInfo(f"struct kimage lacks a member: {e}") from e
    heads = tuple(_head(prog, seg, 4096) for seg in segments)
    elf_idx, elf_source = _find_elfcorehdr(
        prog, segments, heads, hotplug, elf_load_addr
    )
    return KImage(
        symbol=symbol,
        address=address,
        start=start,
        type=type_,
        file_mode=file_mode,
        nr_segments=nr_segments,
        segments=_classify(segments, heads, start, file_mode, elf_idx),
        elf_load_addr=elf_load_addr,
        elf_headers_sz=elf_headers_sz,
        hotplug=hotplug,
        elfcorehdr_index=elf_idx,
        elfcorehdr_source=elf_source,
    )


PAGE_SIZE = 4096


def check_image(image: KImage, crashk: Optional[Tuple[int, int]]) -> List[Finding]:
    """Sanity of the segment table (kernel/kexec_core.c sanity_check_segment_list)."""
    out = [finding(
        "CHP005",
        f"{image.symbol} at {image.address:#x}: struct kimage layout "
        f"{image.hotplug.layout} "
        f"({'kexec_file_load' if image.file_mode else 'kexec_load'}"
        f", {image.nr_segments} segments)",
        layout=str(image.hotplug.layout), file_mode=image.file_mode,
    )]
    problems = []
    if image.nr_segments == 0:
        problems.append("nr_segments is 0")
    elif image.nr_segments > KEXEC_SEGMENT_MAX:
        problems.append(
            f"nr_segments {image.nr_segments} exceeds KEXEC_SEGMENT_MAX "
            f"({KEXEC_SEGMENT_MAX}); only the first {KEXEC_SEGMENT_MAX} were read"
        )
    for seg in image.segments:
        if seg.memsz < seg.bufsz:
            problems.append(f"segment {seg.index}: memsz {seg.memsz:#x} < bufsz "
                            f"{seg.bufsz:#x}")
        if seg.mem % PAGE_SIZE or seg.memsz % PAGE_SIZE:
            problems.append(f"segment {seg.index}: mem {seg.mem:#x} or memsz "
                            f"{seg.memsz:#x} not page aligned")
    ordered = sorted(image.segments, key=lambda s: s.mem)
    for a, b in zip(ordered, ordered[1:]):
        if b.mem < a.mem + a.memsz:
            problems.append(f"segments {a.index} and {b.index} overlap")
    if problems:
        out.append(finding("CHP003", "; ".join(problems[:4])
                           + (f" (+{len(problems) - 4} more)" if len(problems) > 4
                              else ""),
                           problems=problems))
    if image.type == 1 and crashk is not None:
        outside = [
            seg.index for seg in image.segments
            if seg.memsz and not (crashk[0] <= seg.mem and seg.end <= crashk[1])
        ]
        if outside:
            out.append(finding(
                "CHP004",
                f"segments {outside} lie outside crashk_res "
                f"[{crashk[0]:#x}-{crashk[1]:#x}]",
                segments=outside, crashk=list(crashk),
            ))
    return out
