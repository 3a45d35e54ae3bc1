"""
Purgatory
---------

Locate the purgatory inside the loaded crash image, decode what the loader
patched into it (``purgatory_sha_regions``, ``purgatory_sha256_digest``,
``entry64_regs``) and the capture command line in the boot-params segment,
recompute the SHA-256 digest exactly as purgatory will at panic, and check
all of it against the segment table.

Mirrors kernel/kexec_file.c (``kexec_purgatory_setup_kbuf``,
``kexec_purgatory_setup_sechdrs``, ``kexec_calculate_store_digests``),
arch/x86/purgatory/purgatory.c and arch/x86/kernel/kexec-bzimage64.c; for
kexec_load images, kexec-tools' kexec/kexec.c ``update_purgatory`` and
purgatory/purgatory.c.
"""

from __future__ import annotations

import enum
import hashlib
import io
import re
import struct
from dataclasses import dataclass, replace
from typing import (
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

from drgn import FaultError, Program
from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import Symbol, SymbolTableSection
from tabulate import tabulate

from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.kimage import KEXEC_SEGMENT_MAX, KImage, Layout, Role, Segment
from drgn_crashhp.physmem import Unreadable, iter_phys, missing_ranges, read_phys

__all__ = (
    "KERNEL_REGS",
    "KEXEC_TOOLS_REGS",
    "SHA256_EMPTY",
    "CmdLine",
    "DigestResult",
    "DigestStatus",
    "EntryRegs",
    "Problem",
    "Purgatory",
    "RegsLayout",
    "SectionLayout",
    "ShaRegion",
    "Source",
    "check_purgatory",
    "expected_regions",
    "parse_elfcorehdr_arg",
    "read_purgatory",
    "render_purgatory",
    "replay_layout",
    "verify_digest",
)

PAGE_SIZE = 4096
#: ``struct kexec_sha_region { unsigned long start, len; }[KEXEC_SEGMENT_MAX]``
#: (include/linux/purgatory.h); kexec-tools' ``sha256_regions`` is the same.
REGION_SIZE = 16
REGIONS_SIZE = REGION_SIZE * KEXEC_SEGMENT_MAX
DIGEST_SIZE = 32
REGS_SIZE = 17 * 8
#: SHA-256 of nothing: what the 6.6-6.10 exclusion bug stores.
SHA256_EMPTY = hashlib.sha256(b"").hexdigest()
#: x86 boot protocol offsets in struct boot_params (Documentation/arch/x86/
#: zero-page.rst, boot.rst).
BP_EXT_CMD_LINE_PTR = 0x0C8
BP_CMD_LINE_PTR = 0x228
#: bzImage64_load(): ``rip = kernel_load_addr + 0x200`` (startup_64).
STARTUP_64_OFFSET = 0x200
#: Reads of a segment are capped here whatever memsz claims; real purgatory
#: segments are a few pages.
MAX_PURGATORY = 1 << 22
MAX_CMDLINE = 1 << 16
#: Regions are segments (kernel, initrd, boot params: tens of MiB); a table
#: adding up to more than this is corrupt, and hashing (or probing for
#: holes in) 2**63 bytes would never end.
MAX_DIGEST_BYTES = 1 << 32
#: Unreadable bytes whose holes are located page by page; beyond this the
#: rest of a region is reported missing whole.
MISSING_PROBE = 1 << 26

#: Register order of the kernel's ``struct kexec_entry64_regs``
#: (arch/x86/include/asm/kexec.h, arch/x86/purgatory/entry64.S).
KERNEL_REGS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
               "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")
#: Register order of kexec-tools' ``struct entry64_regs``
#: (kexec/arch/x86_64/kexec-x86_64.h, purgatory/arch/x86_64/entry64.S).
KEXEC_TOOLS_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
                    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")

Progress = Callable[[int, int], None]


class Source(str, enum.Enum):
    """Where the purgatory layout came from."""

    #: The kernel's own blob (``kexec_purgatory``), replayed: kexec_file_load.
    KERNEL_BLOB = "kexec_purgatory"
    #: No symbols (kexec-tools' purgatory): found by scanning the segment.
    SCAN = "scan"

    def __str__(self) -> str:
        return self.value


class Problem(str, enum.Enum):
    """Why the purgatory could not be fully decoded."""

    #: The kernel has no ``kexec_purgatory``/``kexec_purgatory_size`` symbol.
    NO_BLOB = "no-blob"
    #: The blob is not an ELF the kernel could have loaded.
    BAD_BLOB = "bad-blob"
    #: ``image->start`` lies in no segment.
    NO_SEGMENT = "no-segment"
    #: The sha regions table (kexec_load) was not found, or not uniquely.
    NOT_LOCATED = "not-located"
    #: The purgatory segment's bytes are not in this target.
    UNREADABLE = "unreadable"

    def __str__(self) -> str:
        return self.value


class RegsLayout(str, enum.Enum):
    KERNEL = "kexec_entry64_regs"
    KEXEC_TOOLS = "kexec-tools entry64_regs"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ShaRegion:
    """One non-empty slot of ``purgatory_sha_regions``."""

    slot: int
    start: int
    len: int
    #: Index of the segment the region covers (exactly, else by its start).
    segment: Optional[int]
    role: Optional[Role]
    #: The region is exactly ``(segment.mem, segment.memsz)``.
    exact: bool


@dataclass(frozen=True)
class EntryRegs:
    """Registers purgatory's ``entry64`` loads before jumping to ``rip``."""

    layout: RegsLayout
    address: int
    rax: int
    rbx: int
    rcx: int
    rdx: int
    rsi: int
    rdi: int
    rsp: int
    rbp: int
    r8: int
    r9: int
    r10: int
    r11: int
    r12: int
    r13: int
    r14: int
    r15: int
    rip: int


@dataclass(frozen=True)
class CmdLine:
    """The capture kernel's command line, from its boot params."""

    params_mem: int
    #: ``ext_cmd_line_ptr << 32 | cmd_line_ptr``; None if unreadable.
    address: Optional[int]
    text: Optional[str]
    #: The last ``elfcorehdr=`` argument (the kernel's early_param keeps the
    #: last) and its parsed address.
    elfcorehdr_arg: Optional[str]
    elfcorehdr: Optional[int]
    problem: Optional[str] = None


@dataclass(frozen=True)
class Purgatory:
    source: Source
    problem: Optional[Problem]
    problem_text: Optional[str]
    #: Index of the purgatory segment (the one holding ``image->start``).
    segment: Optional[int]
    segment_mem: Optional[int] = None
    segment_memsz: Optional[int] = None
    blob_size: Optional[int] = None
    #: Replay of the kernel's section placement (kernel blob only).
    replay_start: Optional[int] = None
    replay_rule: Optional[str] = None
    replay_bufsz: Optional[int] = None
    replay_memsz: Optional[int] = None
    #: Physical addresses of the purgatory symbols that were resolved.
    symbols: Tuple[Tuple[str, int], ...] = ()
    regions_address: Optional[int] = None
    regions: Tuple[ShaRegion, ...] = ()
    digest_address: Optional[int] = None
    #: How ``digest_address`` was found.
    digest_source: Optional[str] = None
    stored_digest: Optional[str] = None
    regs: Optional[EntryRegs] = None
    regs_problem: Optional[str] = None
    stack_end: Optional[int] = None
    #: kexec_load scan: whether the table found leaves the elfcorehdr out.
    elfcorehdr_excluded: Optional[bool] = None
    cmdline: Optional[CmdLine] = None

    def symbol(self, name: str) -> Optional[int]:
        for sym, address in self.symbols:
            if sym == name:
                return address
        return None


class DigestStatus(str, enum.Enum):
    MATCH = "match"
    MISMATCH = "mismatch"
    #: Some hashed bytes are not in the target, or nothing to compare.
    UNVERIFIABLE = "unverifiable"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class DigestResult:
    status: DigestStatus
    stored: Optional[str]
    computed: Optional[str]
    bytes_hashed: int
    #: Inclusive ``(start, end)`` physical ranges the target lacks.
    missing: Tuple[Tuple[int, int], ...] = ()
    #: Where the stored digest was read (kexec_load: may be found by search).
    digest_address: Optional[int] = None
    reason: Optional[str] = None


# -- layout replay ---------------------------------------------------------


def _align(value: int, align: int) -> int:
    # kexec-tools treats sh_addralign 0 as 1; the kernel would compute 0,
    # which no real purgatory triggers.
    align = max(align, 1)
    return (value + align - 1) // align * align


@dataclass(frozen=True)
class SectionLayout:
    """Where the kernel put the blob's sections in the purgatory segment."""

    #: Offset of each SHF_ALLOC section from the segment's ``mem``.
    offsets: Dict[int, int]
    bufsz: int
    memsz: int
    #: ``image->start`` by each rule a kernel may use, preferred first.
    starts: Tuple[Tuple[int, str], ...]

    def start_for(self, actual: int) -> Tuple[int, str]:
        """The replayed entry that equals *actual*, else the preferred one."""
        return next((s for s in self.starts if s[0] == actual), self.starts[0])


def replay_layout(elf: ELFFile, mem: int) -> SectionLayout:
    """
    Place the blob's sections like kexec_purgatory_setup_kbuf() and
    kexec_purgatory_setup_sechdrs() (kernel/kexec_file.c, same in 6.1, 6.12
    and 7.2) and compute ``image->start`` by each kernel's rule.
    """
    sections = [elf.get_section(i) for i in range(elf.num_sections())]
    off = bss_sz = 0
    bss_align = 1
    offsets: Dict[int, int] = {}
    for i, sec in enumerate(sections):
        if not sec["sh_flags"] & SH_FLAGS.SHF_ALLOC:
            continue
        align = sec["sh_addralign"]
        if sec["sh_type"] == "SHT_NOBITS":
            bss_align = max(bss_align, align)
            bss_sz = _align(bss_sz, align) + sec["sh_size"]
        else:
            off = _align(off, align)
            offsets[i] = off
            off += sec["sh_size"]
    bufsz = _align(off, bss_align)
    bss = bufsz
    for i, sec in enumerate(sections):
        if sec["sh_flags"] & SH_FLAGS.SHF_ALLOC and sec["sh_type"] == "SHT_NOBITS":
            bss = _align(bss, sec["sh_addralign"])
            offsets[i] = bss
            bss += sec["sh_size"]
    starts = _replay_starts(elf, sections, offsets, mem)
    return SectionLayout(offsets, bufsz, bufsz + bss_sz, starts)


def _replay_starts(elf: ELFFile, sections: list, offsets: Dict[int, int],
                   mem: int) -> Tuple[Tuple[int, str], ...]:
    out = []
    entry = elf["e_entry"]
    sym = _global_symbol(elf, "purgatory_start")
    # "kexec: derive purgatory entry from symbol" (2026, Cc stable; present
    # in 6.1.192/6.12.117/7.2): prefer purgatory_start when its section is
    # executable and the symbol lies inside it.
    if sym is not None:
        shndx = sym["st_shndx"]
        sec = sections[shndx]
        if (sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and shndx in offsets
                and sec["sh_type"] != "SHT_NOBITS"
                and sym["st_value"] < sec["sh_size"]):
            out.append((mem + offsets[shndx] + sym["st_value"],
                        "purgatory_start symbol"))
    # Older kernels: the first executable section that contains e_entry.
    for i, sec in enumerate(sections):
        if (i in offsets and sec["sh_type"] != "SHT_NOBITS"
                and sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
                and sec["sh_addr"] <= entry < sec["sh_addr"] + sec["sh_size"]):
            out.append((entry - sec["sh_addr"] + mem + offsets[i], "e_entry"))
            break
    else:
        out.append((entry, "e_entry (no executable section holds it)"))
    return tuple(out)


def _global_symbol(elf: ELFFile, name: str) -> Optional[Symbol]:
    """kexec_purgatory_find_symbol(): STB_GLOBAL, defined, valid section."""
    for sec in elf.iter_sections():
        if not isinstance(sec, SymbolTableSection):
            continue
        for sym in sec.get_symbol_by_name(name) or ():
            shndx = sym["st_shndx"]
            if sym["st_info"]["bind"] != "STB_GLOBAL":
                continue
            if not isinstance(shndx, int) or shndx == 0 or shndx >= elf.num_sections():
                return None
            return sym
    return None


# -- reading ---------------------------------------------------------------


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


def _symbol_phys(elf: ELFFile, layout: SectionLayout, mem: int, names: Sequence[str],
                 size: Optional[int]) -> Optional[Tuple[str, int]]:
    """Physical address of the first of *names* that exists, like
    kexec_purgatory_get_set_symbol() (size must match when given)."""
    for name in names:
        sym = _global_symbol(elf, name)
        if sym is None or sym["st_shndx"] not in layout.offsets:
            continue
        if size is not None and sym["st_size"] not in (size, 0):
            continue
        return name, mem + layout.offsets[sym["st_shndx"]] + sym["st_value"]
    return None


def _name_regions(image: KImage, table: bytes) -> Tuple[ShaRegion, ...]:
    out = []
    for slot in range(KEXEC_SEGMENT_MAX):
        start, length = struct.unpack_from("<QQ", table, slot * REGION_SIZE)
        if not length:
            continue
        seg = next((s for s in image.segments
                    if s.mem == start and s.memsz == length), None)
        exact = seg is not None
        if seg is None:
            seg = image.segment_containing(start)
        out.append(ShaRegion(slot, start, length,
                             seg.index if seg else None,
                             seg.role if seg else None, exact))
    return tuple(out)


def _regs(layout: RegsLayout, address: int, raw: bytes) -> EntryRegs:
    names = KERNEL_REGS if layout == RegsLayout.KERNEL else KEXEC_TOOLS_REGS
    values = struct.unpack("<17Q", raw)
    return EntryRegs(layout, address, **dict(zip(names, values)))


def expected_regions(image: KImage, exclude_elfcorehdr: bool) -> List[Tuple[int, int]]:
    """
    ``(mem, memsz)`` of every segment the loader hashes, in segment order:
    all but the purgatory segment and, when *exclude_elfcorehdr*, the
    elfcorehdr (kernel/kexec_file.c kexec_calculate_store_digests(); kexec-
    tools kexec/kexec.c update_purgatory() with arch_do_exclude_segment()).
    """
    purgatory = image.segment_containing(image.start)
    return [
        (s.mem, s.memsz) for s in image.segments
        if s is not purgatory and s.memsz
        and not (exclude_elfcorehdr and s.index == image.elfcorehdr_index)
    ]


def _kernel_excludes_elfcorehdr(image: KImage) -> bool:
    """Whether the loader left the elfcorehdr out of the digest."""
    if image.file_mode:
        # v6.6 "crash: add generic infrastructure for crash hotplug support":
        # with CONFIG_CRASH_HOTPLUG the segment at elfcorehdr_index is
        # skipped (x86 sets the index at load unless the header would need
        # PN_XNUM phdrs); RFC v1 and older kernels hash it.
        index = image.hotplug.elfcorehdr_index
        return (image.hotplug.layout in (Layout.MAINLINE_6_6, Layout.MAINLINE_6_10)
                and index is not None and index >= 0)
    # kexec-tools >= 2.0.28 --hotplug (which is what sets the flag) excludes
    # it through arch_do_exclude_segment().
    return image.hotplug.support


def read_purgatory(prog: Program, image: KImage) -> Purgatory:
    """
    Locate and decode the purgatory of a loaded image. Never raises for
    problems of the target: they become :attr:`Purgatory.problem`.
    """
    seg = image.segment_containing(image.start)
    source = Source.KERNEL_BLOB if image.file_mode else Source.SCAN
    if seg is None:
        return Purgatory(source, Problem.NO_SEGMENT,
                         f"image->start {image.start:#x} lies in no segment", None,
                         cmdline=_read_cmdline(prog, image, None))
    if image.file_mode:
        purg = _read_file_mode(prog, image, seg)
    else:
        purg = _read_scanned(prog, image, seg)
    return replace(purg, segment_mem=seg.mem, segment_memsz=seg.memsz,
                   cmdline=_read_cmdline(prog, image, purg.regs))


def _read_file_mode(prog: Program, image: KImage, seg: Segment) -> Purgatory:
    base = Purgatory(Source.KERNEL_BLOB, None, None, seg.index)
    try:
        blob = _blob(prog)
    except LookupError as e:
        return replace(base, problem=Problem.NO_BLOB,
                       problem_text=f"kexec_purgatory symbols not found: {e}")
    except (FaultError, ValueError) as e:
        return replace(base, problem=Problem.BAD_BLOB,
                       problem_text=f"kexec_purgatory cannot be read: {e}")
    base = replace(base, blob_size=len(blob))
    try:
        elf = ELFFile(io.BytesIO(blob))
        if elf["e_type"] != "ET_REL" or elf["e_machine"] != "EM_X86_64":
            raise ELFError(f"{elf['e_type']} {elf['e_machine']}, "
                           "expected ET_REL EM_X86_64")
        layout = replay_layout(elf, seg.mem)
        start, rule = layout.start_for(image.start)
        # Commit 40c50c1fecdf (v4.11) added the purgatory_ prefix to
        # sha_regions and sha256_digest.
        regions = _symbol_phys(elf, layout, seg.mem,
                               ("purgatory_sha_regions", "sha_regions"),
                               REGIONS_SIZE)
        digest = _symbol_phys(elf, layout, seg.mem,
                              ("purgatory_sha256_digest", "sha256_digest"),
                              DIGEST_SIZE)
        regs = _symbol_phys(elf, layout, seg.mem, ("entry64_regs",), REGS_SIZE)
        stack_end = _symbol_phys(elf, layout, seg.mem, ("stack_end",), None)
    except (ELFError, KeyError, IndexError, ValueError, OverflowError,
            struct.error) as e:
        # OverflowError: pyelftools seeks to offsets past 2**63 as given.
        return replace(base, problem=Problem.BAD_BLOB,
                       problem_text=f"kexec_purgatory is not a loadable purgatory: {e}")
    base = replace(
        base, replay_start=start, replay_rule=rule,
        replay_bufsz=layout.bufsz, replay_memsz=layout.memsz,
        symbols=tuple(s for s in (regions, digest, regs, stack_end) if s),
        stack_end=stack_end[1] if stack_end else None,
    )
    if regions is None or digest is None:
        lacking = [n for n, s in (("sha regions", regions), ("digest", digest))
                   if s is None]
        return replace(base, problem=Problem.BAD_BLOB,
                       problem_text=f"the blob lacks the {' and '.join(lacking)} "
                                    "symbol")
    base = replace(base, regions_address=regions[1], digest_address=digest[1],
                   digest_source=f"symbol {digest[0]}")
    try:
        table = read_phys(prog, regions[1], REGIONS_SIZE, regions[0])
        stored = read_phys(prog, digest[1], DIGEST_SIZE, digest[0])
    except Unreadable as e:
        return replace(base, problem=Problem.UNREADABLE, problem_text=str(e))
    base = replace(base, regions=_name_regions(image, table),
                   stored_digest=stored.hex())
    if regs is None:
        return replace(base, regs_problem="the blob has no entry64_regs symbol")
    try:
        raw = read_phys(prog, regs[1], REGS_SIZE, "entry64_regs")
    except Unreadable as e:
        return replace(base, regs_problem=str(e))
    return replace(base, regs=_regs(RegsLayout.KERNEL, regs[1], raw))


def _table(regions: Iterable[Tuple[int, int]]) -> bytes:
    raw = b"".join(struct.pack("<QQ", start, length) for start, length in regions)
    return raw.ljust(REGIONS_SIZE, b"\0")


def _aligned_hits(data: bytes, needle: bytes, align: int = 8) -> List[int]:
    hits, at = [], data.find(needle)
    while at >= 0:
        if at % align == 0:
            hits.append(at)
        at = data.find(needle, at + 1)
    return hits


def _read_scanned(prog: Program, image: KImage, seg: Segment) -> Purgatory:
    src = Source.SCAN
    size = min(seg.memsz, MAX_PURGATORY)
    try:
        data = b"".join(iter_phys(prog, seg.mem, size, "purgatory segment"))
    except Unreadable as e:
        return Purgatory(src, Problem.UNREADABLE, str(e), seg.index)
    regs, regs_problem = _scan_regs(image, seg, data)
    # kexec-tools hashes every segment but purgatory (and, with --hotplug,
    # the elfcorehdr) in sorted order; try both, the check compares with
    # what this image's flags imply.
    candidates: List[Tuple[int, bool, List[Tuple[int, int]]]] = []
    for exclude in (False, True):
        wanted = expected_regions(image, exclude)
        if not wanted or (exclude and wanted == expected_regions(image, False)):
            continue
        for at in _aligned_hits(data, _table(wanted)):
            candidates.append((at, exclude, wanted))
    # When the elfcorehdr is the first region, the shorter list also matches
    # 16 bytes into the longer one (its zero padding runs on into what
    # follows): tables cannot overlap, so keep the first of overlapping hits.
    candidates.sort()
    candidates = [c for i, c in enumerate(candidates)
                  if i == 0 or candidates[i - 1][0] + REGIONS_SIZE <= c[0]]
    if len(candidates) != 1:
        why = ("no 8-byte aligned block equals the expected sha256_regions table"
               if not candidates else
               f"{len(candidates)} blocks match the expected sha256_regions table")
        return Purgatory(src, Problem.NOT_LOCATED, f"cannot locate: {why}",
                         seg.index, regs=regs, regs_problem=regs_problem)
    at, exclude, _ = candidates[0]
    regions_at = seg.mem + at
    # kexec-tools 2.0.29's purgatory/purgatory.c defines sha256_digest just
    # before sha256_regions (its .data: digest at 0x20, regions at 0x40, as
    # built by Debian trixie); verify_digest() searches the segment if the
    # computed digest is elsewhere.
    digest_at = regions_at - DIGEST_SIZE if at >= DIGEST_SIZE else None
    stored = data[at - DIGEST_SIZE:at].hex() if digest_at is not None else None
    found = (("sha256_regions", regions_at), ("sha256_digest", digest_at),
             ("entry64_regs", regs.address if regs else None))
    return Purgatory(
        src, None, None, seg.index,
        symbols=tuple((n, a) for n, a in found if a is not None),
        regions_address=regions_at,
        regions=_name_regions(image, data[at:at + REGIONS_SIZE]),
        digest_address=digest_at,
        digest_source="32 bytes before sha256_regions (kexec-tools layout)",
        stored_digest=stored, regs=regs, regs_problem=regs_problem,
        elfcorehdr_excluded=exclude,
    )


def _scan_regs(image: KImage, seg: Segment,
               data: bytes) -> Tuple[Optional[EntryRegs], Optional[str]]:
    """
    kexec-tools' entry64_regs, found by its shape: the loader set rsi to a
    segment (the boot params), rsp inside purgatory (stack_end) and rip
    inside a segment; every other register keeps the blob's zero.
    """
    starts = {s.mem for s in image.segments}
    idx = {name: i for i, name in enumerate(KEXEC_TOOLS_REGS)}
    zero = [idx[n] for n in KEXEC_TOOLS_REGS if n not in ("rsi", "rsp", "rip", "rbx")]
    words = struct.unpack(f"<{len(data) // 8}Q", data[:len(data) // 8 * 8])
    hits = []
    for i in range(len(words) - len(KEXEC_TOOLS_REGS) + 1):
        if words[i + idx["rsi"]] not in starts:
            continue
        rsp, rip = words[i + idx["rsp"]], words[i + idx["rip"]]
        if (seg.contains(rsp) and rip and image.segment_containing(rip) is not None
                and not any(words[i + z] for z in zero)):
            hits.append(i * 8)
    if len(hits) != 1:
        return None, (f"cannot locate entry64_regs: {len(hits)} candidate blocks "
                      "in the purgatory segment")
    return _regs(RegsLayout.KEXEC_TOOLS, seg.mem + hits[0],
                 data[hits[0]:hits[0] + REGS_SIZE]), None


_SUFFIX = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


def parse_elfcorehdr_arg(text: str) -> Optional[Tuple[str, Optional[int]]]:
    """
    The last ``elfcorehdr=[size@]addr`` on a command line and its address,
    parsed like setup_elfcorehdr() with memparse() (kernel/elfcorehdr.c,
    lib/cmdline.c): kernel-built lines use ``0x…``, kexec-tools ``<N>K``.
    """
    args = re.findall(r"(?:^|\s)elfcorehdr=(\S*)", text)
    if not args:
        return None
    arg = args[-1]
    addr_text = arg.rsplit("@", 1)[-1]
    m = re.match(r"(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kKmMgGtTpPeE]?)",
                 addr_text)
    if not m:
        return arg, None
    digits = m.group(1)
    base = (16 if digits[:2].lower() == "0x"
            else 8 if digits.startswith("0") and len(digits) > 1 else 10)
    return arg, int(digits, base) << _SUFFIX.get(m.group(2).lower(), 0)


def _read_cmdline(prog: Program, image: KImage,
                  regs: Optional[EntryRegs]) -> Optional[CmdLine]:
    params = image.by_role(Role.BOOT_PARAMS)
    if params is None and regs is not None:
        params = image.segment_containing(regs.rsi)
    if params is None:
        return None
    try:
        ptr = int.from_bytes(read_phys(prog, params.mem + BP_CMD_LINE_PTR, 4,
                                       "boot_params.hdr.cmd_line_ptr"), "little")
        ext = int.from_bytes(read_phys(prog, params.mem + BP_EXT_CMD_LINE_PTR, 4,
                                       "boot_params.ext_cmd_line_ptr"), "little")
    except Unreadable as e:
        return CmdLine(params.mem, None, None, None, None, str(e))
    address = ext << 32 | ptr
    holder = image.segment_containing(address)
    if holder is None:
        return CmdLine(params.mem, address, None, None, None,
                       f"cmd_line_ptr {address:#x} lies in no segment")
    try:
        raw = read_phys(prog, address,
                        min(holder.mem + holder.memsz - address, MAX_CMDLINE),
                        "command line")
    except Unreadable as e:
        return CmdLine(params.mem, address, None, None, None, str(e))
    end = raw.find(b"\0")
    if end < 0:
        return CmdLine(params.mem, address, raw.decode(errors="replace"), None, None,
                       "the command line is not NUL-terminated inside its segment")
    text = raw[:end].decode(errors="replace")
    parsed = parse_elfcorehdr_arg(text)
    return CmdLine(params.mem, address, text, *(parsed or (None, None)))


# -- digest ----------------------------------------------------------------


def _merge(ranges: List[Tuple[int, int]], new: Iterable[Tuple[int, int]]) -> None:
    for start, end in new:
        if ranges and ranges[-1][1] + 1 >= start:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((start, end))


def _stream(prog: Program, start: int, length: int,
            what: str) -> Iterator[Tuple[int, int, Optional[bytes]]]:
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


def verify_digest(prog: Program, purgatory: Purgatory,
                  progress: Optional[Progress] = None) -> DigestResult:
    """
    Recompute SHA-256 over the non-empty regions, in slot order, from
    physical memory, as purgatory's verify_sha256_digest() does
    (arch/x86/purgatory/purgatory.c), streaming with :func:`iter_phys`.
    Missing bytes make the result UNVERIFIABLE, never a match.

    :param progress: called as ``progress(done_bytes, total_bytes)``.
    """
    p = purgatory
    if p.problem is not None or p.regions_address is None:
        return DigestResult(DigestStatus.UNVERIFIABLE, p.stored_digest, None, 0,
                            reason=p.problem_text or "no sha regions decoded")
    total = sum(r.len for r in p.regions)
    if total > MAX_DIGEST_BYTES:
        return DigestResult(DigestStatus.UNVERIFIABLE, p.stored_digest, None, 0,
                            digest_address=p.digest_address,
                            reason=f"the sha regions add up to {total:#x} bytes, "
                                   "more than any crash image: the table is corrupt")
    sha = hashlib.sha256()
    done = 0
    missing: List[Tuple[int, int]] = []
    budget = MISSING_PROBE
    for region in p.regions:
        end = region.start + region.len
        for at, size, chunk in _stream(prog, region.start, region.len,
                                       f"sha region {region.slot}"):
            if chunk is not None:
                if not missing:
                    sha.update(chunk)
            elif budget > 0:
                budget -= size
                _merge(missing, missing_ranges(prog, at, size))
            else:
                # Past the probing budget the rest of the region is one
                # range: a kdump vmcore lacks whole segments anyway.
                _merge(missing, [(at, end - 1)])
                size = end - at
            done += size
            if progress is not None:
                progress(done, total)
            if at + size >= end:
                break
    if missing:
        return DigestResult(DigestStatus.UNVERIFIABLE, p.stored_digest, None, done,
                            tuple(missing), p.digest_address,
                            "hashed bytes are not in this target")
    computed = sha.hexdigest()
    if computed == p.stored_digest:
        return DigestResult(DigestStatus.MATCH, p.stored_digest, computed, done,
                            digest_address=p.digest_address)
    if p.source == Source.SCAN:
        found = _search_digest(prog, p, bytes.fromhex(computed))
        if found is not None:
            return DigestResult(DigestStatus.MATCH, computed, computed, done,
                                digest_address=found,
                                reason="digest found by searching the purgatory "
                                       "segment")
    return DigestResult(DigestStatus.MISMATCH, p.stored_digest, computed, done,
                        digest_address=p.digest_address)


def _search_digest(prog: Program, p: Purgatory, digest: bytes) -> Optional[int]:
    """kexec_load: the stored digest is not at its usual place; look for the
    computed one anywhere in the purgatory segment (a unique 8-aligned hit)."""
    if p.segment_mem is None or p.segment_memsz is None:
        return None
    try:
        data = b"".join(iter_phys(prog, p.segment_mem,
                                  min(p.segment_memsz, MAX_PURGATORY),
                                  "purgatory segment"))
    except Unreadable:
        return None
    hits = _aligned_hits(data, digest)
    return p.segment_mem + hits[0] if len(hits) == 1 else None


# -- checks ----------------------------------------------------------------


def _problem_finding(p: Purgatory) -> Finding:
    assert p.problem is not None
    text = p.problem_text or str(p.problem)
    if p.problem == Problem.NO_BLOB:
        return finding("CHP090", f"{text}: purgatory, digest and entry registers "
                       "not checked", problem=str(p.problem))
    if p.problem == Problem.UNREADABLE:
        missing = ([(p.segment_mem, p.segment_mem + p.segment_memsz - 1)]
                   if p.segment_mem is not None and p.segment_memsz else [])
        return finding("CHP022", f"the purgatory segment is not in this target "
                       f"({text}); digest and entry registers not checked",
                       problem=str(p.problem), missing=missing)
    return finding("CHP026", f"purgatory ({p.source}): {text}",
                   problem=str(p.problem))


def _check_replay(image: KImage, p: Purgatory) -> List[Finding]:
    seg = image.segment_containing(image.start)
    wrong = []
    if p.replay_start != image.start:
        wrong.append(f"entry {p.replay_start:#x} ({p.replay_rule}) != image->start "
                     f"{image.start:#x}")
    if seg is not None and p.replay_bufsz is not None and p.replay_memsz is not None:
        if p.replay_bufsz != seg.bufsz:
            wrong.append(f"bufsz {p.replay_bufsz:#x} != segment bufsz {seg.bufsz:#x}")
        memsz = _align(p.replay_memsz, PAGE_SIZE)
        if memsz != seg.memsz:
            wrong.append(f"memsz {memsz:#x} != segment memsz {seg.memsz:#x}")
    if not wrong:
        return []
    return [finding("CHP027", "replaying kexec_purgatory's section placement: "
                    + "; ".join(wrong), replay_start=p.replay_start,
                    start=image.start, disagreements=wrong)]


def _fmt_regions(regions: Sequence[Tuple[int, int]]) -> str:
    return ", ".join(f"[{s:#x}+{n:#x}]" for s, n in regions) or "none"


def _check_regions(image: KImage, p: Purgatory) -> Tuple[List[Finding], bool]:
    """CHP023/CHP025; also whether verification is disabled."""
    exclude = _kernel_excludes_elfcorehdr(image)
    expected = expected_regions(image, exclude)
    actual = [(r.start, r.len) for r in p.regions]
    if not actual and expected:
        if p.stored_digest == SHA256_EMPTY:
            # v6.6 commit f7cc804a9fd4 compared the output index j with
            # elfcorehdr_index (0 on x86), skipping every segment; fixed in
            # 6.11 by "kexec_file: fix elfcorehdr digest exclusion when
            # CONFIG_CRASH_HOTPLUG=y" (Cc stable).
            return [finding(
                "CHP023",
                f"all {KEXEC_SEGMENT_MAX} sha regions are empty and the stored "
                f"digest is SHA-256 of nothing, while {len(expected)} segments "
                "should be hashed: purgatory verifies nothing (6.6-6.10 "
                "elfcorehdr exclusion bug, fixed in 6.11)",
                expected=expected, stored=p.stored_digest)], True
        return [finding("CHP025", f"all sha regions are empty; expected "
                        f"{_fmt_regions(expected)}", expected=expected,
                        actual=actual)], False
    if actual == expected:
        return [], False
    if p.source == Source.SCAN and p.elfcorehdr_excluded is not None:
        how = "left out" if p.elfcorehdr_excluded else "hashed"
        why = ("the image has hotplug support (kexec --hotplug)"
               if image.hotplug.support else "the image has no hotplug support")
        message = f"kexec-tools {how} the elfcorehdr although {why}"
    else:
        missing = [r for r in expected if r not in actual]
        extra = [r for r in actual if r not in expected]
        message = (f"sha regions {_fmt_regions(actual)} differ from the expected "
                   f"{_fmt_regions(expected)} (missing {_fmt_regions(missing)}, "
                   f"unexpected {_fmt_regions(extra)})")
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
    if hp.layout == Layout.RFC_V1:
        return ("RFC v1 crash hotplug rewrites the hashed elfcorehdr on every "
                "event and must store a new digest; the header changed without "
                "one")
    if hp.elfcorehdr_updated:
        return ("the kernel rewrote the elfcorehdr on a hotplug event "
                "(elfcorehdr_updated) although the header is inside the digest")
    return None


def _check_digest(image: KImage, p: Purgatory,
                  digest: Optional[DigestResult]) -> List[Finding]:
    if digest is None:
        return []
    if digest.status == DigestStatus.UNVERIFIABLE:
        ranges = [f"[{s:#x}-{e:#x}]" for s, e in digest.missing]
        return [finding(
            "CHP022",
            "cannot verify the purgatory digest: "
            + (f"{len(ranges)} hashed ranges are not in this target: "
               + ", ".join(ranges[:4]) + (" ..." if len(ranges) > 4 else "")
               if ranges else (digest.reason or "nothing to hash")),
            missing=[list(r) for r in digest.missing], reason=digest.reason)]
    if digest.status == DigestStatus.MATCH:
        return [finding(
            "CHP021", f"sha256 over {len(p.regions)} regions "
            f"({digest.bytes_hashed:#x} bytes) matches the stored digest",
            digest=digest.computed, bytes=digest.bytes_hashed)]
    elf_region = _elfcorehdr_region(image, p)
    cause = _rewrite_cause(image) if elf_region is not None else None
    details = dict(stored=digest.stored, computed=digest.computed,
                   bytes=digest.bytes_hashed,
                   elfcorehdr_slot=elf_region.slot if elf_region else None)
    if cause is not None:
        return [finding(
            "CHP024", f"digest mismatch and the elfcorehdr (segment "
            f"{image.elfcorehdr_index}) is hashed in slot {elf_region.slot}: "  # type: ignore[union-attr]
            f"{cause}; purgatory will hang at panic", cause=cause, **details)]
    hint = (" (the elfcorehdr is inside the hashed regions on this layout)"
            if elf_region is not None else "")
    return [finding(
        "CHP020", f"stored digest {digest.stored or '-'} != computed "
        f"{digest.computed}{hint}: purgatory will hang at panic", **details)]


def _check_regs(image: KImage, p: Purgatory) -> List[Finding]:
    r = p.regs
    if r is None:
        if p.regs_problem and p.problem is None:
            return [finding("CHP090", f"entry64_regs: {p.regs_problem}; entry "
                            "registers not checked")]
        return []
    starts = {s.mem for s in image.segments}
    wrong = []
    kernel = image.by_role(Role.KERNEL)
    if kernel is not None:
        if r.rip != kernel.mem + STARTUP_64_OFFSET:
            wrong.append(f"rip {r.rip:#x} != kernel segment {kernel.mem:#x} + 0x200")
    elif r.rip - STARTUP_64_OFFSET not in starts:
        wrong.append(f"rip {r.rip:#x} is not 0x200 past the start of a segment")
    params = image.by_role(Role.BOOT_PARAMS)
    if params is not None:
        if r.rsi != params.mem:
            wrong.append(f"rsi {r.rsi:#x} != boot params segment {params.mem:#x}")
    elif r.rsi not in starts:
        wrong.append(f"rsi {r.rsi:#x} is not the start of a segment")
    if p.stack_end is not None:
        if r.rsp != p.stack_end:
            wrong.append(f"rsp {r.rsp:#x} != stack_end {p.stack_end:#x}")
    elif p.segment_mem is not None and p.segment_memsz is not None and not (
            p.segment_mem < r.rsp <= p.segment_mem + p.segment_memsz):
        wrong.append(f"rsp {r.rsp:#x} is outside the purgatory segment")
    if r.rbx != 0:
        wrong.append(f"rbx {r.rbx:#x} != 0 (boot CPU)")
    rfc = image.hotplug.rfc
    if rfc is not None:
        # RFC v1 re-ran purgatory loading on each event and restored these
        # four from image->arch.hp.
        for name in ("rbx", "rsi", "rip", "rsp"):
            if getattr(r, name) != getattr(rfc, name):
                wrong.append(f"{name} {getattr(r, name):#x} != arch.hp.{name} "
                             f"{getattr(rfc, name):#x}")
    if not wrong:
        return []
    return [finding("CHP030", "; ".join(wrong), problems=wrong,
                    regs={n: getattr(r, n) for n in ("rip", "rsi", "rsp", "rbx")})]


def _check_cmdline(image: KImage, c: Optional[CmdLine]) -> List[Finding]:
    if c is None:
        return [finding("CHP090", "no boot params segment identified; the "
                        "capture command line was not checked")]
    if c.text is None:
        return [finding("CHP090", f"capture command line: {c.problem}")]
    out = [finding("CHP032", c.text, address=c.address, params=c.params_mem)]
    if c.problem is not None:
        out.append(finding("CHP031", f"capture command line: {c.problem}"))
        return out
    elf = image.elfcorehdr
    target = elf.mem if elf is not None else image.elf_load_addr or None
    if c.elfcorehdr_arg is None:
        out.append(finding("CHP031", "the capture command line has no "
                           "elfcorehdr=: the capture kernel will not create "
                           "/proc/vmcore", expected=target))
    elif c.elfcorehdr is None or (target is not None and c.elfcorehdr != target):
        got = "unparsable" if c.elfcorehdr is None else f"{c.elfcorehdr:#x}"
        want = "-" if target is None else f"{target:#x}"
        out.append(finding("CHP031", f"elfcorehdr={c.elfcorehdr_arg} ({got}) "
                           f"is not the elfcorehdr segment ({want})",
                           argument=c.elfcorehdr_arg, address=c.elfcorehdr,
                           expected=target))
    return out


def check_purgatory(image: KImage, purgatory: Purgatory,
                    digest: Optional[DigestResult]) -> List[Finding]:
    """Findings CHP020-CHP032 for a decoded purgatory; no drgn calls."""
    p = purgatory
    out: List[Finding] = []
    if p.problem is not None:
        out.append(_problem_finding(p))
    if p.replay_start is not None:
        out += _check_replay(image, p)
    if p.regions_address is not None and p.problem is None:
        found, disabled = _check_regions(image, p)
        out += found
        if not disabled:
            out += _check_digest(image, p, digest)
    out += _check_regs(image, p)
    out += _check_cmdline(image, p.cmdline)
    return out


# -- text ------------------------------------------------------------------


def _hex(n: Optional[int]) -> str:
    return "-" if n is None else f"{n:#x}"


def render_purgatory(purgatory: Purgatory, digest: Optional[DigestResult]) -> str:
    """The purgatory section of the text report."""
    p = purgatory
    facts = [("source", str(p.source)),
             ("segment", f"{p.segment} at {_hex(p.segment_mem)}"
              if p.segment is not None else "-")]
    if p.blob_size is not None:
        facts.append(("kexec_purgatory", f"{p.blob_size:#x} bytes"))
    if p.replay_start is not None:
        facts.append(("replayed entry", f"{p.replay_start:#x} ({p.replay_rule})"))
    if p.problem is not None:
        facts.append(("problem", f"{p.problem}: {p.problem_text}"))
    facts.append(("sha regions at", _hex(p.regions_address)))
    facts.append(("digest at", f"{_hex(p.digest_address)}"
                  + (f" ({p.digest_source})" if p.digest_source else "")))
    facts.append(("stored digest", p.stored_digest or "-"))
    if digest is not None:
        facts.append(("computed digest", f"{digest.computed or '-'} ({digest.status}"
                      + (f", {digest.reason}" if digest.reason else "") + ")"))
    parts = [tabulate(facts, tablefmt="plain")]
    if p.regions:
        parts.append(tabulate(
            [(r.slot, _hex(r.start), _hex(r.len),
              "-" if r.segment is None else str(r.segment) + ("" if r.exact else "*"),
              str(r.role) if r.role else "-") for r in p.regions],
            headers=("#", "start", "len", "segment", "role")))
    if p.regs is not None:
        names = KERNEL_REGS if p.regs.layout == RegsLayout.KERNEL else KEXEC_TOOLS_REGS
        rows = [(n, _hex(getattr(p.regs, n))) for n in names]
        half = (len(rows) + 1) // 2
        paired = [a + (b if b else ("", "")) for a, b in
                  zip(rows[:half], rows[half:] + [()] * (2 * half - len(rows)))]
        parts.append(f"entry64_regs at {p.regs.address:#x} ({p.regs.layout})\n"
                     + tabulate(paired, tablefmt="plain"))
    elif p.regs_problem:
        parts.append(f"entry64_regs: {p.regs_problem}")
    if p.cmdline is not None:
        c = p.cmdline
        parts.append(f"command line at {_hex(c.address)}: "
                     + (repr(c.text) if c.text is not None else f"({c.problem})"))
    return "\n\n".join(parts)
