"""
Synthetic purgatories for tests.

:func:`build_blob` writes a real ``ET_REL`` x86_64 ELF by hand, shaped like
arch/x86/purgatory/purgatory.ro: ``.text`` (``purgatory_start``),
``.rodata`` (``entry64_regs``), ``.data`` (``stack``/``stack_end``),
``.kexec-purgatory`` (``purgatory_sha_regions``, ``purgatory_sha256_digest``)
and ``.bss``. Where the kernel puts each section is written down here by hand
(``*_OFF``, from the sizes and alignments chosen below), not computed by the
code under test. :func:`file_image` and :func:`load_image` build whole
synthetic kexec_file/kexec_load crash images and their expected digest, with
hashlib over the bytes they place.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tests.support.synth import (
    PAGE_OFFSET,
    Machine,
    Seg,
    elf_core_header,
    note,
    ram,
    text,
)

# Section sizes and alignments of the hand-written blob.
TEXT_SIZE, TEXT_ALIGN = 0x100, 16
RODATA_SIZE, RODATA_ALIGN = 0xA0, 32
DATA_SIZE, DATA_ALIGN = 0x1000, 4096
KP_SIZE, KP_ALIGN = 0x120, 32
BSS_SIZE, BSS_ALIGN = 0x1000, 4096
# Placement by kexec_purgatory_setup_kbuf()/_sechdrs(), worked out by hand:
# .text at 0, .rodata ALIGN(0x100, 32), .data ALIGN(0x1a0, 4096),
# .kexec-purgatory ALIGN(0x2000, 32); bufsz ALIGN(0x2120, 4096); .bss after.
TEXT_OFF, RODATA_OFF, DATA_OFF, KP_OFF = 0x0, 0x100, 0x1000, 0x2000
BUFSZ, BSS_OFF, MEMSZ = 0x3000, 0x3000, 0x4000
# Symbol offsets inside their sections.
ENTRY_VALUE = 0x40  # purgatory_start in .text
REGS_VALUE = 0x10  # entry64_regs in .rodata
STACK_END_VALUE = 0x1000  # stack_end in .data
REGIONS_VALUE, DIGEST_VALUE = 0x0, 0x100  # in .kexec-purgatory

KERNEL_ORDER = (
    "rax",
    "rcx",
    "rdx",
    "rbx",
    "rsp",
    "rbp",
    "rsi",
    "rdi",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
)
TOOLS_ORDER = (
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rsp",
    "rbp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
)

SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 1, 2, 3, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
STB_GLOBAL, STT_NOTYPE, STT_OBJECT = 1, 0, 1


def _strtab(names: Sequence[str]) -> Tuple[bytes, Dict[str, int]]:
    data, where = b"\0", {}
    for n in names:
        where[n] = len(data)
        data += n.encode() + b"\0"
    return data, where


def build_blob(
    entry_value: int = ENTRY_VALUE,
    names: Tuple[str, str] = ("purgatory_sha_regions", "purgatory_sha256_digest"),
) -> bytes:
    """The purgatory.ro-like ``ET_REL`` ELF (zeros where the loader patches)."""
    text_bytes = bytes([0x90]) * TEXT_SIZE
    sections = [  # name, type, flags, data or size, align
        (".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text_bytes, TEXT_ALIGN),
        (".rodata", SHT_PROGBITS, SHF_ALLOC, bytes(RODATA_SIZE), RODATA_ALIGN),
        (".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, bytes(DATA_SIZE), DATA_ALIGN),
        (
            ".kexec-purgatory",
            SHT_PROGBITS,
            SHF_ALLOC | SHF_WRITE,
            bytes(KP_SIZE),
            KP_ALIGN,
        ),
        (".bss", SHT_NOBITS, SHF_ALLOC | SHF_WRITE, BSS_SIZE, BSS_ALIGN),
    ]
    # (name, section index, value, size, type)
    syms = [
        ("purgatory_start", 1, entry_value, 0, STT_NOTYPE),
        ("entry64_regs", 2, REGS_VALUE, 136, STT_OBJECT),
        ("stack", 3, 0, 4096, STT_OBJECT),
        ("stack_end", 3, STACK_END_VALUE, 0, STT_OBJECT),
        (names[0], 4, REGIONS_VALUE, 256, STT_OBJECT),
        (names[1], 4, DIGEST_VALUE, 32, STT_OBJECT),
    ]
    strtab, sym_name = _strtab([s[0] for s in syms])
    symtab = bytes(24) + b"".join(
        struct.pack("<IBBHQQ", sym_name[n], STB_GLOBAL << 4 | t, 0, shndx, value, size)
        for n, shndx, value, size, t in syms
    )
    shnames = [s[0] for s in sections] + [".symtab", ".strtab", ".shstrtab"]
    shstrtab, sh_name = _strtab(shnames)
    body = bytearray(64)
    headers = [bytes(64)]
    for name, type_, flags, data, align in sections:
        if type_ == SHT_NOBITS:
            assert isinstance(data, int)
            offset, size = len(body), data
        else:
            assert isinstance(data, bytes)
            body += bytes(-len(body) % align)
            offset, size = len(body), len(data)
            body += data
        headers.append(
            struct.pack(
                "<IIQQQQIIQQ",
                sh_name[name],
                type_,
                flags,
                0,
                offset,
                size,
                0,
                0,
                align,
                0,
            )
        )
    nsec = len(sections)
    for name, type_, data, link, info, align, entsize in (
        (".symtab", SHT_SYMTAB, symtab, nsec + 2, 1, 8, 24),
        (".strtab", SHT_STRTAB, strtab, 0, 0, 1, 0),
        (".shstrtab", SHT_STRTAB, shstrtab, 0, 0, 1, 0),
    ):
        body += bytes(-len(body) % align)
        headers.append(
            struct.pack(
                "<IIQQQQIIQQ",
                sh_name[name],
                type_,
                0,
                0,
                len(body),
                len(data),
                link,
                info,
                align,
                entsize,
            )
        )
        body += data
    body += bytes(-len(body) % 8)
    shoff = len(body)
    ehdr = (
        b"\x7fELF\x02\x01\x01"
        + bytes(9)
        + struct.pack(
            "<HHIQQQIHHHHHH",
            1,
            62,
            1,
            entry_value,
            0,
            shoff,
            0,
            64,
            0,
            0,
            64,
            len(headers),
            len(headers) - 1,
        )
    )
    body[:64] = ehdr
    return bytes(body) + b"".join(headers)


#: The same purgatory in assembly, for a blob the GNU toolchain lays out
#: (``as`` + ``ld -r -e purgatory_start``, like arch/x86/purgatory/Makefile).
ASM_SOURCE = """
    .text
    .balign 16
    .skip 0x40, 0x90
    .globl purgatory_start
purgatory_start:
    .skip 0xc0, 0x90
    .section .rodata,"a"
    .balign 32
    .skip 0x10
    .globl entry64_regs
    .type entry64_regs, @object
    .size entry64_regs, 136
entry64_regs:
    .skip 136 + 8
    .data
    .balign 4096
    .globl stack, stack_end
    .type stack, @object
    .size stack, 4096
stack:
    .skip 4096
stack_end:
    .section .kexec-purgatory,"aw"
    .balign 32
    .globl purgatory_sha_regions, purgatory_sha256_digest
    .type purgatory_sha_regions, @object
    .size purgatory_sha_regions, 256
purgatory_sha_regions:
    .skip 256
    .type purgatory_sha256_digest, @object
    .size purgatory_sha256_digest, 32
purgatory_sha256_digest:
    .skip 32
    .bss
    .balign 4096
lstack:
    .skip 4096
"""


def assemble_blob() -> Optional[bytes]:
    """:data:`ASM_SOURCE` built with as/ld, or None without a toolchain."""
    if not (shutil.which("as") and shutil.which("ld")):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "p.S").write_text(ASM_SOURCE)
        subprocess.run(["as", "--64", "-o", str(d / "p.o"), str(d / "p.S")], check=True)
        subprocess.run(
            [
                "ld",
                "-r",
                "-e",
                "purgatory_start",
                "-z",
                "nodefaultlib",
                "-o",
                str(d / "p.ro"),
                str(d / "p.o"),
            ],
            check=True,
        )
        return (d / "p.ro").read_bytes()


def regs_bytes(order: Sequence[str], **values: int) -> bytes:
    return struct.pack("<17Q", *(values.get(n, 0) for n in order))


def regions_table(regions: Sequence[Tuple[int, int]]) -> bytes:
    raw = b"".join(struct.pack("<QQ", s, n) for s, n in regions)
    return raw.ljust(256, b"\0")


def digest_of(segments: Sequence[Seg], regions: Sequence[Tuple[int, int]]) -> bytes:
    """SHA-256 over the regions as the loader hashed them: data + zero tail."""
    h = hashlib.sha256()
    for start, length in regions:
        seg = next(s for s in segments if s.mem == start)
        h.update(seg.data[:length])
        h.update(bytes(length - min(len(seg.data), length)))
    return h.digest()


# -- whole crash images ------------------------------------------------------

CRASHK = (0x2F000000, 0x3EFFFFFF)
ELF_MEM = 0x2F000000
KERNEL_MEM = 0x30000000
INITRD_MEM = 0x3D000000
PURG_MEM = 0x3E000000
PARAMS_MEM = 0x3E010000
BLOB_PHYS = 0x5000000
BLOB_SIZE_PHYS = 0x5100000


def elfcorehdr(cpus: Sequence[int] = (0, 1, 2, 3)) -> bytes:
    m = Machine()
    return elf_core_header(
        [note(m.crash_notes_phys(c)) for c in cpus]
        + [
            note(0x3020000, 4132),
            text(),
            ram(0x100000, 0x2EFFFFFF),
            ram(0x3F000000, 0x3FFDFFFF),
        ]
    )


def boot_params(cmdline: Optional[str], cmd_line_ptr: Optional[int] = None) -> bytes:
    data = bytearray(0x2000)
    data[0x202:0x206] = b"HdrS"
    ptr = PARAMS_MEM + 0x1000 if cmd_line_ptr is None else cmd_line_ptr
    struct.pack_into("<I", data, 0x228, ptr & 0xFFFFFFFF)
    struct.pack_into("<I", data, 0x0C8, ptr >> 32)
    if cmdline is not None:
        raw = cmdline.encode() + b"\0"
        data[0x1000 : 0x1000 + len(raw)] = raw
    return bytes(data)


@dataclass
class Built:
    """A crash image to build with :class:`tests.synth.SynthKernel`."""

    machine: Machine
    segments: List[Seg]
    regions: List[Tuple[int, int]]
    digest: bytes
    purgatory: bytearray = field(default_factory=bytearray)


def file_image(
    layout: str = "6.10",
    cmdline: Optional[str] = f"elfcorehdr={ELF_MEM:#x} console=ttyS0",
    hash_elfcorehdr: Optional[bool] = None,
    start_offset: int = ENTRY_VALUE,
    regs: Optional[Dict[str, int]] = None,
    kernel_present: bool = True,
    initrd_present: bool = True,
    blob: Optional[bytes] = None,
    regions: Optional[List[Tuple[int, int]]] = None,
    digest: Optional[bytes] = None,
    cmd_line_ptr: Optional[int] = None,
    **machine: object,
) -> Built:
    """
    A kexec_file_load image in bzImage64_load()'s order (elfcorehdr,
    purgatory, boot params, kernel, initrd), with the kernel's blob behind
    ``kexec_purgatory`` and the loaded purgatory patched like the kernel does.
    """
    if hash_elfcorehdr is None:
        hash_elfcorehdr = layout not in ("6.6", "6.10")
    segments = [
        Seg(ELF_MEM, 0x71000, elfcorehdr()),
        Seg(PURG_MEM, MEMSZ, b""),
        Seg(PARAMS_MEM, 0x3000, boot_params(cmdline, cmd_line_ptr)),
        Seg(KERNEL_MEM, 0x1000000, bytes(range(256)) * 0x100, present=kernel_present),
        Seg(INITRD_MEM, 0x100000, b"070701" + bytes(100), present=initrd_present),
    ]
    if regions is None:
        regions = [
            (s.mem, s.memsz)
            for s in segments
            if s.mem != PURG_MEM and (hash_elfcorehdr or s.mem != ELF_MEM)
        ]
    if digest is None:
        digest = digest_of(segments, regions)
    set_regs = dict(
        rbx=0,
        rsi=PARAMS_MEM,
        rip=KERNEL_MEM + 0x200,
        rsp=PURG_MEM + DATA_OFF + STACK_END_VALUE,
    )
    set_regs.update(regs or {})
    purg = bytearray(BUFSZ)
    purg[TEXT_OFF : TEXT_OFF + TEXT_SIZE] = b"\x90" * TEXT_SIZE
    at = RODATA_OFF + REGS_VALUE
    purg[at : at + 136] = regs_bytes(KERNEL_ORDER, **set_regs)
    at = KP_OFF + REGIONS_VALUE
    purg[at : at + 256] = regions_table(regions)
    at = KP_OFF + DIGEST_VALUE
    purg[at : at + 32] = digest
    segments[1] = Seg(PURG_MEM, MEMSZ, bytes(purg))
    blob = build_blob() if blob is None else blob
    kw: Dict[str, object] = dict(
        layout=layout,
        crashk=CRASHK,
        segments=segments,
        start=PURG_MEM + start_offset,
        file_mode=True,
        elfcorehdr_index=0 if layout in ("6.6", "6.10") else -1,
        elf_load_addr=ELF_MEM,
        symbols={
            "kexec_purgatory": (PAGE_OFFSET + BLOB_PHYS, len(blob)),
            "kexec_purgatory_size": (PAGE_OFFSET + BLOB_SIZE_PHYS, 8),
        },
        extra_memory={BLOB_PHYS: blob, BLOB_SIZE_PHYS: struct.pack("<Q", len(blob))},
    )
    kw.update(machine)
    return Built(Machine(**kw), segments, regions, digest, purg)  # type: ignore[arg-type]


# kexec-tools 2.0.29's purgatory as loaded (offsets from Debian trixie's
# build: .data at 0x5000 with sha256_digest at +0x20, sha256_regions at +0x40,
# entry64_regs in .rodata at 0x3ea0, stack_end at 0x7000; bufsz 0x8000).
KT_REGS, KT_DIGEST, KT_REGIONS, KT_STACK_END = 0x3EA0, 0x5020, 0x5040, 0x7000
KT_BUFSZ, KT_MEMSZ = 0x8000, 0x9000
KT_ENTRY = 0x730


def load_image(
    hotplug: bool = True,
    cmdline: Optional[str] = f"console=ttyS0 elfcorehdr={ELF_MEM // 1024}K",
    regions: Optional[List[Tuple[int, int]]] = None,
    digest_at: int = KT_DIGEST,
    **machine: object,
) -> Built:
    """
    A kexec_load image as kexec-tools builds it: segments sorted by address,
    the purgatory with no symbols in the kernel, the sha256 table hashing all
    but purgatory and (with ``--hotplug``) the elfcorehdr.
    """
    segments = [
        Seg(ELF_MEM, 0x4000, elfcorehdr()),
        Seg(KERNEL_MEM, 0x1000000, bytes(range(256)) * 0x100),
        Seg(INITRD_MEM, 0x100000, b"070701" + bytes(100)),
        Seg(PURG_MEM, KT_MEMSZ, b""),
        Seg(PARAMS_MEM, 0x3000, boot_params(cmdline)),
    ]
    if regions is None:
        regions = [
            (s.mem, s.memsz)
            for s in segments
            if s.mem != PURG_MEM and not (hotplug and s.mem == ELF_MEM)
        ]
    digest = digest_of(segments, regions)
    purg = bytearray(KT_BUFSZ)
    purg[KT_ENTRY : KT_ENTRY + 16] = b"\x90" * 16
    purg[KT_REGS : KT_REGS + 136] = regs_bytes(
        TOOLS_ORDER,
        rbx=0,
        rsi=PARAMS_MEM,
        rip=KERNEL_MEM + 0x200,
        rsp=PURG_MEM + KT_STACK_END,
    )
    purg[KT_REGIONS : KT_REGIONS + 256] = regions_table(regions)
    purg[digest_at : digest_at + 32] = digest
    segments[3] = Seg(PURG_MEM, KT_MEMSZ, bytes(purg))
    kw: Dict[str, object] = dict(
        layout="6.10",
        crashk=CRASHK,
        segments=segments,
        start=PURG_MEM + KT_ENTRY,
        file_mode=False,
        hotplug_support=hotplug,
        elfcorehdr_index=-1,
        elf_load_addr=0,
    )
    kw.update(machine)
    return Built(Machine(**kw), segments, regions, digest, purg)  # type: ignore[arg-type]
