"""
Purgatory layout
----------------

Pure decoders of the purgatory: replay where the kernel placed the
``kexec_purgatory`` blob's sections (kernel/kexec_file.c
``kexec_purgatory_setup_kbuf()``/``kexec_purgatory_setup_sechdrs()``), find
its symbols as ``kexec_purgatory_find_symbol()`` does, locate kexec-tools'
tables in a purgatory segment by their shape (kexec-tools kexec/kexec.c
``update_purgatory()``, purgatory/purgatory.c), and parse the capture
command line's ``elfcorehdr=`` (kernel/elfcorehdr.c, lib/cmdline.c).
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Sequence, Tuple

from drgn_crashhp.arch import regs_order
from drgn_crashhp.facts import EntryRegs, KImage, RegsLayout, Segment
from drgn_crashhp.kernel.ranges import align

if TYPE_CHECKING:
    # Only the kexec_file purgatory replay parses an ELF (read.purgatory
    # imports pyelftools there): a kexec_load report never loads it.
    from elftools.elf.elffile import ELFFile

__all__ = (
    "REGS_SIZE",
    "SectionLayout",
    "aligned_hits",
    "decode_regs",
    "parse_elfcorehdr_arg",
    "replay_layout",
    "scan_regs",
    "symbol_phys",
)

#: include/uapi/linux/elf.h section flags.
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4

REGS_SIZE = 17 * 8


def _align(value: int, alignment: int) -> int:
    # kexec-tools treats sh_addralign 0 as 1; the kernel would compute 0,
    # which no real purgatory triggers.
    return align(value, max(alignment, 1))


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
        if not sec["sh_flags"] & SHF_ALLOC:
            continue
        alignment = sec["sh_addralign"]
        if sec["sh_type"] == "SHT_NOBITS":
            bss_align = max(bss_align, alignment)
            bss_sz = _align(bss_sz, alignment) + sec["sh_size"]
        else:
            off = _align(off, alignment)
            offsets[i] = off
            off += sec["sh_size"]
    bufsz = _align(off, bss_align)
    bss = bufsz
    for i, sec in enumerate(sections):
        if sec["sh_flags"] & SHF_ALLOC and sec["sh_type"] == "SHT_NOBITS":
            bss = _align(bss, sec["sh_addralign"])
            offsets[i] = bss
            bss += sec["sh_size"]
    starts = _replay_starts(elf, sections, offsets, mem)
    return SectionLayout(offsets, bufsz, bufsz + bss_sz, starts)


def _replay_starts(
    elf: ELFFile, sections: list, offsets: Dict[int, int], mem: int
) -> Tuple[Tuple[int, str], ...]:
    out = []
    entry = elf["e_entry"]
    sym = _global_symbol(elf, "purgatory_start")
    # "kexec: derive purgatory entry from symbol" (2026, Cc stable; present
    # in 6.1.192/6.12.117/7.2): prefer purgatory_start when its section is
    # executable and the symbol lies inside it.
    if sym is not None:
        shndx = sym.shndx
        sec = sections[shndx]
        if (
            sec["sh_flags"] & SHF_EXECINSTR
            and shndx in offsets
            and sec["sh_type"] != "SHT_NOBITS"
            and sym.value < sec["sh_size"]
        ):
            out.append((mem + offsets[shndx] + sym.value, "purgatory_start symbol"))
    # Older kernels: the first executable section that contains e_entry.
    for i, sec in enumerate(sections):
        if (
            i in offsets
            and sec["sh_type"] != "SHT_NOBITS"
            and sec["sh_flags"] & SHF_EXECINSTR
            and sec["sh_addr"] <= entry < sec["sh_addr"] + sec["sh_size"]
        ):
            out.append((entry - sec["sh_addr"] + mem + offsets[i], "e_entry"))
            break
    else:
        out.append((entry, "e_entry (no executable section holds it)"))
    return tuple(out)


class BlobSymbol(NamedTuple):
    """A symbol of the purgatory blob, as kexec_purgatory_find_symbol() uses it."""

    value: int
    size: int
    shndx: int


_SYM = struct.Struct("<IBBHQQ")
STB_GLOBAL = 1


@functools.lru_cache(maxsize=8)
def _global_symbols(elf: ELFFile) -> Dict[str, Optional[BlobSymbol]]:
    """
    The first STB_GLOBAL symbol of each name, over the symbol tables in
    section order, unpacked straight from the table (pyelftools' name map
    over the blob's symbols cost a tenth of a report); None for a name whose
    section index is undefined or out of range, which makes the kernel's
    lookup fail.
    """
    out: Dict[str, Optional[BlobSymbol]] = {}
    nsections = elf.num_sections()
    for sec in elf.iter_sections():
        if sec["sh_type"] != "SHT_SYMTAB" or sec["sh_entsize"] != _SYM.size:
            continue
        strtab = elf.get_section(sec["sh_link"]).data()
        data = sec.data()
        for name_at, info, _, shndx, value, size in _SYM.iter_unpack(
            data[: len(data) // _SYM.size * _SYM.size]
        ):
            if info >> 4 != STB_GLOBAL:
                continue
            end = strtab.find(b"\0", name_at)
            name = strtab[name_at : end if end >= 0 else None].decode("latin-1")
            if name in out:
                continue
            valid = 0 < shndx < nsections
            out[name] = BlobSymbol(value, size, shndx) if valid else None
    return out


def _global_symbol(elf: ELFFile, name: str) -> Optional[BlobSymbol]:
    """kexec_purgatory_find_symbol(): STB_GLOBAL, defined, valid section."""
    return _global_symbols(elf).get(name)


def symbol_phys(
    elf: ELFFile,
    layout: SectionLayout,
    mem: int,
    names: Sequence[str],
    size: Optional[int],
) -> Optional[Tuple[str, int]]:
    """Physical address of the first of *names* that exists, like
    kexec_purgatory_get_set_symbol() (size must match when given)."""
    for name in names:
        sym = _global_symbol(elf, name)
        if sym is None or sym.shndx not in layout.offsets:
            continue
        if size is not None and sym.size not in (size, 0):
            continue
        return name, mem + layout.offsets[sym.shndx] + sym.value
    return None


def decode_regs(layout: RegsLayout, address: int, raw: bytes) -> EntryRegs:
    names = regs_order(layout.value)
    values = struct.unpack("<17Q", raw)
    return EntryRegs(layout, address, **dict(zip(names, values)))


def aligned_hits(data: bytes, needle: bytes, align: int = 8) -> List[int]:
    hits, at = [], data.find(needle)
    while at >= 0:
        if at % align == 0:
            hits.append(at)
        at = data.find(needle, at + 1)
    return hits


def scan_regs(
    image: KImage, seg: Segment, data: bytes
) -> Tuple[Optional[EntryRegs], Optional[str]]:
    """
    kexec-tools' entry64_regs, found by its shape: the loader set rsi to a
    segment (the boot params), rsp inside purgatory (stack_end) and rip
    inside a segment; every other register keeps the blob's zero.
    """
    starts = {s.mem for s in image.segments}
    names = regs_order(RegsLayout.KEXEC_TOOLS.value)
    idx = {name: i for i, name in enumerate(names)}
    zero = [idx[n] for n in names if n not in ("rsi", "rsp", "rip", "rbx")]
    words = struct.unpack(f"<{len(data) // 8}Q", data[: len(data) // 8 * 8])
    hits = []
    for i in range(len(words) - len(names) + 1):
        if words[i + idx["rsi"]] not in starts:
            continue
        rsp, rip = words[i + idx["rsp"]], words[i + idx["rip"]]
        if (
            seg.contains(rsp)
            and rip
            and image.segment_containing(rip) is not None
            and not any(words[i + z] for z in zero)
        ):
            hits.append(i * 8)
    if len(hits) != 1:
        return None, (
            f"cannot locate entry64_regs: {len(hits)} candidate blocks "
            "in the purgatory segment"
        )
    return decode_regs(
        RegsLayout.KEXEC_TOOLS, seg.mem + hits[0], data[hits[0] : hits[0] + REGS_SIZE]
    ), None


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
    m = re.match(r"(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kKmMgGtTpPeE]?)", addr_text)
    if not m:
        return arg, None
    digits = m.group(1)
    base = (
        16
        if digits[:2].lower() == "0x"
        else 8
        if digits.startswith("0") and len(digits) > 1
        else 10
    )
    return arg, int(digits, base) << _SUFFIX.get(m.group(2).lower(), 0)
