"""
Fuzz targets shared by tests/test_fuzz.py (fast, derandomized) and
tests/fuzz/fuzz_long.py (long run).

A target is a decoder that reads bytes (or a whole program) controlled by
the target machine, a hypothesis strategy for its input, and the documented
ways it may fail. Every input must end in a value that satisfies the
target's invariants or in a documented error, within :data:`TIME_BOUND`
seconds; anything else is a crash.

Inputs are structured (fields drawn one by one) and mutated (bytes from
seeds: headers written by tests/support/synth.py and by the kernel's own rebuild,
and small files under tests/seeds/ cut from the real fixture dumps).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import lzma
import re
import signal
import struct
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
)

from drgn import (
    Architecture,
    Platform,
    PlatformFlags,
    Program,
    ProgramFlags,
    Symbol,
    SymbolBinding,
    SymbolKind,
)
from hypothesis import strategies as st

from drgn_crashhp.arch import arch_named
from drgn_crashhp.arch.x86_64 import EM_X86_64
from drgn_crashhp.checks.fdt import check_fdt
from drgn_crashhp.facts import (
    DumpHeaders,
    ElfCoreHdr,
    Facts,
    Fdt,
    FdtRead,
    HotplugFields,
    KImage,
    Layout,
    MachineState,
    Purgatory,
    Role,
    Segment,
)
from drgn_crashhp.findings import CODES, exit_status
from drgn_crashhp.kernel.elfcorehdr import (
    PN_XNUM,
    Malformed,
    build_elfcorehdr,
    decode_elfcorehdr,
)
from drgn_crashhp.kernel.fdt import FDT_MAGIC, decode_fdt
from drgn_crashhp.kernel.fdt import MAX_FDT as FDT_MAX
from drgn_crashhp.kernel.fdt import MAX_NODES as FDT_MAX_NODES
from drgn_crashhp.kernel.fdt import Malformed as FdtMalformed
from drgn_crashhp.kernel.purgatory import parse_elfcorehdr_arg
from drgn_crashhp.kernel.segments import KEXEC_SEGMENT_MAX
from drgn_crashhp.kernel.sha_regions import (
    DIGEST_SIZE,
    REGIONS_SIZE,
    expected_regions,
    hash_excluded,
    regions_table,
)
from drgn_crashhp.read.dump import read_dump_headers
from drgn_crashhp.read.flattened import (
    WINDOW,
    FlattenedError,
    FlattenedFile,
    is_flattened,
)
from drgn_crashhp.render.json import jsonable, report_json
from drgn_crashhp.render.text import render_text
from drgn_crashhp.report import build_report
from tests.support import fdt as fdtb
from tests.support import flat
from tests.support import purgblob as pb
from tests.support.fdt import build_fdt
from tests.support.helpers import (
    check_purgatory,
    read_purgatory_full,
    render_purgatory,
    verify_digest,
)
from tests.support.synth import (
    HEAP_PHYS,
    LAYOUTS,
    PAGE_OFFSET,
    Machine,
    Seg,
    SynthKernel,
    elf_core_header,
    note,
    ram,
    text,
)

SEEDS = Path(__file__).resolve().parents[1] / "seeds"

#: Seconds one input may take before it counts as a hang. Generous: CI
#: machines are shared, and the decoders take well under a millisecond.
TIME_BOUND = 10.0


#: Seconds after which one input is interrupted as a hang.
HANG_BOUND = 30.0


class Crash(AssertionError):
    """An input ended in neither a valid value nor a documented error."""


class Hang(Crash):
    """An input ran past :data:`HANG_BOUND` and was interrupted."""


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    """Interrupt the block with :class:`Hang` after *seconds* (main thread,
    POSIX; elsewhere only the after-the-fact :data:`TIME_BOUND` check)."""
    if not hasattr(signal, "setitimer") or (
        threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def expire(signum: int, frame: Optional[FrameType]) -> None:
        where = "".join(traceback.format_stack(frame)[-4:]) if frame else ""
        raise Hang(f"interrupted after {seconds}s in\n{where}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Target:
    name: str
    strategy: st.SearchStrategy
    #: Runs one input; returns a short outcome label (for counting distinct
    #: outcomes) or raises one of *errors*; raises :class:`Crash` when a
    #: returned value breaks an invariant.
    run: Callable[[Any], str]
    #: The documented errors.
    errors: Tuple[Type[BaseException], ...] = ()
    #: Turns a drawn value into the input (for example, builds a program);
    #: not timed, and its errors are the harness's, not the target's.
    prepare: Callable[[Any], Any] = lambda value: value


def normalise(message: str) -> str:
    """An error message with its numbers blanked, to count kinds of outcome."""
    message = re.sub(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"", "B", message)
    return re.sub(r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]*\d[0-9a-fA-F]*\b|\d+", "N", message)


def outcome(target: Target, value: Any) -> Tuple[str, float]:
    """
    Run one input; return ``(label, seconds)``.

    :raises Crash: on an undocumented exception, a broken invariant or a
        run over :data:`TIME_BOUND`.
    """
    value = target.prepare(value)
    t0 = time.perf_counter()
    try:
        with _watchdog(HANG_BOUND):
            label = target.run(value)
    except target.errors as e:
        label = f"{type(e).__name__}: {normalise(str(e))}"
    except (Crash, Hang):
        raise
    except Exception as e:
        raise Crash(f"{target.name}: {type(e).__name__}: {e}") from e
    elapsed = time.perf_counter() - t0
    if elapsed > TIME_BOUND:
        raise Crash(f"{target.name}: {elapsed:.2f}s for one input")
    return label, elapsed


# -- seeds --------------------------------------------------------------------


@functools.cache
def seed_files(prefix: str) -> Tuple[bytes, ...]:
    """
    Seed bytes cut from the real fixtures (tests/seeds/PREFIX*.bin[.xz]),
    read once: hypothesis needs the same draws to give the same input for
    the whole run.
    """
    return tuple(
        lzma.decompress(p.read_bytes()) if p.suffix == ".xz" else p.read_bytes()
        for p in sorted(SEEDS.glob(f"{prefix}*.bin*"))
    )


def seed_image(name: str) -> KImage:
    """The crash image of a real fixture, as tests/seeds/extract.py saved it."""
    doc = json.loads((SEEDS / f"image-{name}.json").read_text())
    hp = doc.pop("hotplug")
    hp["layout"] = Layout(hp["layout"])
    segments = tuple(
        Segment(**{**s, "role": Role(s["role"])}) for s in doc.pop("segments")
    )
    return KImage(segments=segments, hotplug=HotplugFields(**hp), **doc)


def _synthetic_elfcorehdrs() -> List[bytes]:
    m = Machine()
    hand = elf_core_header(
        [note(m.crash_notes_phys(c)) for c in range(4)]
        + [
            note(0x3020000, 4132),
            text(),
            ram(0x100000, 0x2EFFFFFF),
            ram(0x3F000000, 0x3FFDFFFF),
        ]
    )
    rebuilt = build_elfcorehdr(
        [(m.crash_notes_phys(c), 368) for c in range(2)] + [(0x286000, 4132)],
        (0x2200000, 0xFFFFFFFFA9E00000, 0xA30000),
        [(0x100000, 0x2FFFFFF), (0x4800000, 0x5FDEFFF)],
        PAGE_OFFSET,
        EM_X86_64,
    )
    return [hand, rebuilt, elf_core_header([note(0x1000)])]


ELFCOREHDR_SEEDS = _synthetic_elfcorehdrs() + list(seed_files("elfcorehdr"))

# Offsets of every Ehdr field and of every field of the first four Phdrs:
# where a mutation is most likely to reach a new branch.
_EHDR_FIELDS = [
    (4, 1),
    (5, 1),
    (6, 1),
    (16, 2),
    (18, 2),
    (20, 4),
    (24, 8),
    (32, 8),
    (40, 8),
    (48, 4),
    (52, 2),
    (54, 2),
    (56, 2),
    (58, 2),
    (60, 2),
    (62, 2),
]
_PHDR_FIELDS = [
    (64 + 56 * i + off, size)
    for i in range(4)
    for off, size in (
        (0, 4),
        (4, 4),
        (8, 8),
        (16, 8),
        (24, 8),
        (32, 8),
        (40, 8),
        (48, 8),
    )
]
FIELDS = _EHDR_FIELDS + _PHDR_FIELDS

INTERESTING = (
    0,
    1,
    2,
    3,
    4,
    6,
    7,
    0x38,
    0x40,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0xFFFE,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    1 << 32,
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
    0x6474E550,
    0x6474E551,
)


@st.composite
def mutated(
    draw: st.DrawFn, seeds: Sequence[bytes], fields: Sequence[Tuple[int, int]] = FIELDS
) -> bytes:
    """A seed with up to 8 mutations: field writes, bit flips, cuts, splices."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(
            st.sampled_from(
                (
                    "field",
                    "field",
                    "flip",
                    "byte",
                    "truncate",
                    "extend",
                    "splice",
                    "delete",
                )
            )
        )
        n = len(data)
        if op == "field":
            off, size = draw(st.sampled_from(fields))
            value = draw(
                st.one_of(
                    st.sampled_from(INTERESTING), st.integers(0, (1 << (8 * size)) - 1)
                )
            )
            if off + size <= n:
                data[off : off + size] = (value % (1 << (8 * size))).to_bytes(
                    size, "little"
                )
        elif op == "flip" and n:
            pos = draw(st.integers(0, n - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and n:
            data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[draw(st.integers(0, n)) :]
        elif op == "extend":
            data += draw(st.binary(max_size=256))
        elif op == "splice" and n:
            pos = draw(st.integers(0, n))
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete" and n:
            pos = draw(st.integers(0, n - 1))
            del data[pos : pos + draw(st.integers(1, 64))]
    return bytes(data)


# -- elfcorehdr ---------------------------------------------------------------

_PTYPES = st.one_of(
    st.sampled_from(
        (
            0,
            1,
            1,
            1,
            2,
            3,
            4,
            4,
            5,
            6,
            7,
            0x6474E550,
            0x6474E551,
            0x6474E552,
            0x70000000,
        )
    ),
    st.integers(0, 0xFFFFFFFF),
)
_U64 = st.one_of(st.sampled_from(INTERESTING), st.integers(0, (1 << 64) - 1))


#: True about one time in five (hypothesis favours 0, so the rare case is
#: the large one).
_RARELY = st.integers(0, 9).map(lambda n: n >= 8)


def mostly(valid: int, *others: int) -> st.SearchStrategy[int]:
    """*valid* four times in five, else one of *others*."""
    return st.sampled_from((valid,) * (4 * len(others)) + others)


@st.composite
def structured_elf(draw: st.DrawFn) -> bytes:
    """An ELF64 header drawn field by field, with program headers at e_phoff."""
    phdrs = draw(
        st.lists(
            st.tuples(
                _PTYPES, st.integers(0, 0xFFFFFFFF), _U64, _U64, _U64, _U64, _U64, _U64
            ),
            max_size=12,
        )
    )
    phoff = draw(st.one_of(st.just(64), st.just(64), st.integers(0, 512), _U64))
    phnum = draw(
        st.one_of(st.just(len(phdrs)), st.just(len(phdrs)), st.integers(0, 0xFFFF))
    )
    ident = (
        b"\x7fELF"
        + bytes(
            [draw(mostly(2, 1, 0, 3)), draw(mostly(1, 2, 0, 3)), draw(mostly(1, 0, 2))]
        )
        + draw(st.binary(min_size=9, max_size=9))
    )
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        draw(mostly(4, 0, 1, 2, 3, 0xFE00, 0xFFFF)),
        draw(mostly(62, 0, 3, 183, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(_U64),
        phoff,
        draw(st.one_of(st.just(0), _U64)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(mostly(64, 0, 52, 0xFFFF)),
        draw(mostly(56, 0, 32, 0xFFFF)),
        phnum % 0x10000,
        draw(st.sampled_from((0, 0, 64, 40, 0xFFFF))),
        draw(st.one_of(st.just(0), st.integers(0, 0xFFFF))),
        draw(st.one_of(st.just(0), st.integers(0, 0xFFFF))),
    )
    body = b"".join(struct.pack("<IIQQQQQQ", *ph) for ph in phdrs)
    gap = phoff - 64 if 64 <= phoff <= 4096 else 0
    tail = draw(st.binary(max_size=128))
    return ehdr + bytes(gap) + body + tail


ElfInput = Tuple[bytes, Optional[int], Optional[int]]


@st.composite
def elfcorehdr_input(draw: st.DrawFn) -> ElfInput:
    data = draw(
        st.one_of(structured_elf(), mutated(ELFCOREHDR_SEEDS), st.binary(max_size=512))
    )
    capacity = draw(
        st.one_of(st.none(), st.integers(0, 2 * len(data) + 64), _U64, st.just(0x71000))
    )
    machine = draw(st.sampled_from((None,) * 4 + (62,) * 4 + (183, 0)))
    return data, capacity, machine


def run_decode_elfcorehdr(value: ElfInput) -> str:
    data, capacity, machine = value
    hdr = decode_elfcorehdr(data, capacity, machine)
    cap = len(data) if capacity is None else capacity
    if not isinstance(hdr, ElfCoreHdr):
        raise Crash(f"returned {type(hdr).__name__}")
    if not 0 < hdr.phnum < PN_XNUM:
        raise Crash(f"phnum {hdr.phnum}")
    if len(hdr.notes) + len(hdr.loads) + len(hdr.other) != hdr.phnum:
        raise Crash("program headers lost or invented")
    if hdr.used > min(cap, len(data)) or hdr.capacity != cap:
        raise Crash(f"used {hdr.used} > capacity {cap} or {len(data)} bytes")
    if machine is not None and hdr.machine != machine:
        raise Crash(f"machine {hdr.machine} accepted, {machine} expected")
    for i, ph in enumerate(sorted(hdr.notes + hdr.loads, key=lambda p: p.index)):
        if not 0 <= ph.index < hdr.phnum:
            raise Crash(f"program header index {ph.index} of {i}")
    return (
        f"value: {bool(hdr.notes)} notes, {bool(hdr.loads)} loads, "
        f"{bool(hdr.other)} other"
    )


ELFCOREHDR = Target(
    "decode_elfcorehdr", elfcorehdr_input(), run_decode_elfcorehdr, (Malformed,)
)


# -- the whole report on a hostile crash image --------------------------------

#: Where present (readable) hostile segments go: inside the synthetic
#: machine's crash region, clear of the kernel's data, heap and per-CPU areas.
_HOSTILE_BASE = 0x2F000000
_HOSTILE_SLOTS = 16
_HOSTILE_SLOT = 0x100000


class HostileKernel(SynthKernel):
    """A synthetic kernel whose ``struct kimage`` bytes are then mutated."""

    def __init__(self, machine: Machine, patches: Sequence[Tuple[int, bytes]]):
        self._patches = patches
        super().__init__(machine)

    def _kimage_bytes(self) -> bytes:
        buf = bytearray(super()._kimage_bytes())
        for off, data in self._patches:
            off %= len(buf)
            buf[off : off + len(data)] = data[: len(buf) - off]
        return bytes(buf)


_SEGMENT_PAYLOADS = st.one_of(
    st.just(b""),
    mutated(ELFCOREHDR_SEEDS),
    st.binary(max_size=64),
    st.builds(lambda b: bytes(0x202) + b"HdrS" + b, st.binary(max_size=32)),
    st.sampled_from((b"070701" + bytes(32), b"\x1f\x8b" + bytes(16))),
)


@st.composite
def hostile_segment(draw: st.DrawFn, slot: int) -> Seg:
    present = draw(st.booleans())
    data = draw(_SEGMENT_PAYLOADS)
    if present:
        # Readable: a bounded chunk (the synthetic kernel allocates it), at
        # an arbitrary offset inside its own slot.
        # memsz may be below bufsz; the allocation covers both.
        memsz = draw(
            st.one_of(
                st.integers(0, 0x2000),
                st.sampled_from((0x1000, 0x71000, _HOSTILE_SLOT // 2)),
            )
        )
        offset = draw(st.integers(0, _HOSTILE_SLOT - max(memsz, len(data))))
        mem = _HOSTILE_BASE + slot * _HOSTILE_SLOT + offset
    else:
        mem = draw(_U64)
        memsz = draw(_U64)
    return Seg(mem, memsz, data, present)


@st.composite
def hostile_machine(draw: st.DrawFn) -> Tuple[Machine, List[Tuple[int, bytes]]]:
    n = draw(st.integers(0, KEXEC_SEGMENT_MAX))
    segments = [draw(hostile_segment(i)) for i in range(n)]
    # Two segments may share a slot: overlapping segments.
    if n >= 2 and draw(st.booleans()):
        a = segments[0]
        segments[1] = Seg(
            (a.mem + draw(st.integers(0, 0x1000))) % (1 << 64),
            a.memsz,
            segments[1].data,
            a.present,
        )
    layout = draw(st.sampled_from(LAYOUTS))
    starts = [(s.mem + draw(st.integers(0, 0x100))) % (1 << 64) for s in segments[:1]]
    machine = Machine(
        layout=layout,
        segments=segments if draw(st.integers(0, 15)) else None,
        start=draw(st.one_of(st.sampled_from(starts or [0]), _U64)),
        file_mode=draw(st.booleans()),
        hotplug_support=draw(st.booleans()),
        elfcorehdr_index=draw(
            st.one_of(st.integers(-1, n + 1), st.integers(-(1 << 31), (1 << 31) - 1))
        ),
        elfcorehdr_updated=draw(st.booleans()),
        hp_action=draw(
            st.one_of(
                st.integers(0, 5), st.just(0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)
            )
        ),
        elf_load_addr=draw(
            st.one_of(st.sampled_from([s.mem for s in segments] or [0]), _U64)
        ),
        nr_segments=draw(st.one_of(st.none(), st.integers(0, 64), _U64)),
        rfc=draw(
            st.none()
            | st.fixed_dictionaries(
                {
                    "elf_index": st.integers(-(1 << 31), (1 << 31) - 1),
                    "purg_index": st.integers(-(1 << 31), (1 << 31) - 1),
                    "rbx": _U64,
                    "rsi": _U64,
                    "rip": _U64,
                    "rsp": _U64,
                }
            )
        )
        if layout == "rfc-v1"
        else None,
        image_pointer=draw(
            st.sampled_from(
                (None,) * 15
                + (
                    1,
                    PAGE_OFFSET + HEAP_PHYS + 0x3FFF8,
                    PAGE_OFFSET + 0x2F000000,
                    0xFFFF8880DEAD0000,
                    (1 << 64) - 1,
                )
            )
        ),
    )
    if draw(_RARELY):
        # A corrupt iomem tree: a link to itself, its parent, its first
        # sibling, or anywhere.
        nodes = [r for top in machine.iomem for r in (top, *top.children)]
        node = draw(st.sampled_from(nodes))
        link = draw(st.one_of(st.sampled_from(("self", "parent", "first")), _U64))
        if draw(st.booleans()):
            node.sibling_raw = link
        else:
            node.child_raw = link
    patches = draw(
        st.lists(
            st.tuples(st.integers(0, 1 << 12), st.binary(min_size=1, max_size=8)),
            max_size=4,
        )
    )
    return machine, patches


def hostile_program(value: Tuple[Machine, List[Tuple[int, bytes]]]) -> Program:
    machine, patches = value
    return HostileKernel(machine, patches).prog


def run_report(prog: Program) -> str:
    report = build_report(prog)
    if not report.findings:
        raise Crash("a report with no findings")
    for f in report.findings:
        if f.code not in CODES:
            raise Crash(f"unknown code {f.code}")
    status = exit_status(report.findings)
    if status != report.exit_status:
        raise Crash("exit status disagrees")
    # Rendering must cope with whatever was read.
    render_text(report)
    report_json(report)
    image = report.facts.image
    if image is not None:
        if len(image.segments) > KEXEC_SEGMENT_MAX:
            raise Crash(f"{len(image.segments)} segments read")
        nr = image.nr_segments
        if (nr == 0 or nr > KEXEC_SEGMENT_MAX) and status == 0:
            raise Crash(f"nr_segments {nr} reported OK")
    return f"{status} " + ",".join(sorted({f.code for f in report.findings}))


REPORT = Target(
    "build_report(hostile kimage)",
    hostile_machine(),
    run_report,
    prepare=hostile_program,
)


# -- purgatory: kernel blob, kexec_load scan, command line ---------------------

_FLAGS = PlatformFlags.IS_64_BIT | PlatformFlags.IS_LITTLE_ENDIAN
#: Where the minimal programs below put ``kexec_purgatory`` (virtual).
BLOB_VA = 0xFFFFFFFF83000000


def _reader(data: bytes) -> Callable[[int, int, int, bool], bytes]:
    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        return data[offset : offset + count]

    return read


def phys_program(
    phys: Dict[int, bytes],
    blob: Optional[bytes] = None,
    blob_size: Optional[int] = None,
    arch: Architecture = Architecture.X86_64,
) -> Program:
    """
    The least program the purgatory reader needs: physical *phys* chunks
    and, when *blob* is given, ``kexec_purgatory`` and its size quad
    (*blob_size*, default ``len(blob)``). Cheap enough to build per input.
    """
    prog = Program(Platform(arch, _FLAGS))
    for base, data in phys.items():
        if data:
            prog.add_memory_segment(base, len(data), _reader(data), True)
    if blob is not None:
        quad = struct.pack(
            "<Q", (len(blob) if blob_size is None else blob_size) % (1 << 64)
        )
        virt = quad + bytes(8) + blob
        prog.add_memory_segment(BLOB_VA - 16, len(virt), _reader(virt), False)
        symbols = {
            "kexec_purgatory": (BLOB_VA, len(blob)),
            "kexec_purgatory_size": (BLOB_VA - 16, 8),
        }

        def find(
            prog: Program, name: Optional[str], address: Optional[int], one: bool
        ) -> List[Symbol]:
            return [
                Symbol(n, a, z, SymbolBinding.GLOBAL, SymbolKind.OBJECT)
                for n, (a, z) in symbols.items()
                if (name is None or n == name)
                and (address is None or a <= address < a + z)
            ]

        prog.register_symbol_finder("fuzz", find, enable_index=0)
    return prog


def elf_fields(blob: bytes) -> List[Tuple[int, int]]:
    """(offset, size) of every Ehdr, Shdr and Sym field of an ELF64 blob."""
    fields = list(_EHDR_FIELDS)
    (shoff,) = struct.unpack_from("<Q", blob, 40)
    (shnum,) = struct.unpack_from("<H", blob, 60)
    for i in range(shnum):
        at = shoff + 64 * i
        fields += [
            (at + off, size)
            for off, size in (
                (0, 4),
                (4, 4),
                (8, 8),
                (16, 8),
                (24, 8),
                (32, 8),
                (40, 4),
                (44, 4),
                (48, 8),
                (56, 8),
            )
        ]
        (sh_type,) = struct.unpack_from("<I", blob, at + 4)
        if sh_type == 2:  # SHT_SYMTAB
            offset, size = struct.unpack_from("<QQ", blob, at + 24)
            for j in range(min(size // 24, 256)):
                sym = offset + 24 * j
                fields += [
                    (sym + off, size)
                    for off, size in ((0, 4), (4, 1), (5, 1), (6, 2), (8, 8), (16, 8))
                ]
    return fields


def _segment_bytes(image: KImage, role: Role) -> Tuple[int, bytes]:
    seg = image.by_role(role)
    assert seg is not None
    name = "file_base" if image.file_mode else "load_hotplug_memadd"
    stem = "purgatory" if role == Role.PURGATORY else "boot-params"
    [data] = seed_files(f"{stem}-{name}")
    # The seed holds bufsz bytes; the loader zero-fills the rest of memsz.
    return seg.mem, data.ljust(seg.memsz, b"\0")


FILE_IMAGE = seed_image("file_base")
LOAD_IMAGE = seed_image("load_hotplug_memadd")
BLOB_SEEDS = list(seed_files("purgatory-blob")) + [pb.build_blob()]
BLOB_FIELDS = sorted({f for blob in BLOB_SEEDS for f in elf_fields(blob)})


@st.composite
def hostile_image(draw: st.DrawFn, base: KImage) -> KImage:
    """*base* with, sometimes, its segment table or flags corrupted."""
    segments = list(base.segments)
    for _ in range(draw(st.integers(1, 2)) if draw(_RARELY) else 0):
        if not segments:
            break
        i = draw(st.integers(0, len(segments) - 1))
        seg = segments[i]
        how = draw(st.sampled_from(("memsz", "mem", "drop", "dup")))
        if how == "memsz":
            segments[i] = replace(seg, memsz=draw(_U64))
        elif how == "mem":
            segments[i] = replace(seg, mem=draw(_U64))
        elif how == "drop":
            del segments[i]
        else:
            segments.append(replace(seg, index=len(segments)))
    segments = [replace(s, index=i) for i, s in enumerate(segments)]
    elf_index = base.elfcorehdr_index
    if elf_index is not None and elf_index >= len(segments):
        elf_index = None
    hotplug = replace(
        base.hotplug,
        support=draw(st.booleans()),
        layout=draw(st.sampled_from(list(Layout))),
    )
    return replace(
        base,
        segments=tuple(segments),
        elfcorehdr_index=elf_index,
        hotplug=hotplug,
        start=draw(st.one_of(st.sampled_from((0, 1 << 63)), _U64))
        if draw(_RARELY)
        else base.start,
    )


def _run_purgatory(value: Tuple[Program, KImage]) -> str:
    prog, image = value
    p = read_purgatory_full(prog, image)
    if not isinstance(p, Purgatory):
        raise Crash(f"returned {type(p).__name__}")
    read, digest = verify_digest(prog, p)
    findings = check_purgatory(image, p, read, prog.platform.arch.name)  # type: ignore[union-attr]
    for v in p.variables:
        if image.segment_containing(p.segment_mem or 0) is None or not (
            p.segment_mem is not None
            and p.segment_memsz is not None
            and p.segment_mem <= v.address < p.segment_mem + p.segment_memsz
        ):
            raise Crash(f"variable {v.name} at {v.address:#x} outside purgatory")
    for f in findings:
        if f.code not in CODES:
            raise Crash(f"unknown code {f.code}")
    if len(p.regions) > KEXEC_SEGMENT_MAX:
        raise Crash(f"{len(p.regions)} sha regions")
    render_purgatory(p, digest)
    jsonable(p)
    jsonable(digest)
    return (
        f"{p.source} {p.unread.kind if p.unread else 'decoded'} {digest.status} "
        + ",".join(sorted({f.code for f in findings}))
    )


BlobInput = Tuple[bytes, Optional[int], bytes, KImage]


@st.composite
def purgatory_blob_input(draw: st.DrawFn) -> BlobInput:
    blob = draw(st.one_of(mutated(BLOB_SEEDS, BLOB_FIELDS), st.binary(max_size=256)))
    size = draw(st.one_of(st.none(), st.none(), st.integers(0, len(blob) + 64), _U64))
    _, segment = _segment_bytes(FILE_IMAGE, Role.PURGATORY)
    segment = draw(st.one_of(st.just(segment), mutated([segment], _TABLE_FIELDS)))
    return blob, size, segment, draw(hostile_image(FILE_IMAGE))


def purgatory_blob_program(value: BlobInput) -> Tuple[Program, KImage]:
    blob, size, segment, image = value
    mem, _ = _segment_bytes(FILE_IMAGE, Role.PURGATORY)
    phys = dict([(mem, segment), _segment_bytes(FILE_IMAGE, Role.BOOT_PARAMS)])
    return phys_program(phys, blob, size), image


# Fields of the kexec-tools purgatory as loaded (tests/support/purgblob.py KT_*, the
# same offsets as the real fixture): regions table, digest, entry64_regs.
_TABLE_FIELDS = (
    [(pb.KT_REGIONS + 8 * i, 8) for i in range(32)]
    + [(pb.KT_DIGEST + 8 * i, 8) for i in range(4)]
    + [(pb.KT_REGS + 8 * i, 8) for i in range(17)]
    + [(0x3000 + 8 * i, 8) for i in range(0x80)]
)

ScanInput = Tuple[bytes, KImage]


@st.composite
def kexec_load_input(draw: st.DrawFn) -> ScanInput:
    _, segment = _segment_bytes(LOAD_IMAGE, Role.PURGATORY)
    # Mostly the whole segment (the loader zero-fills past bufsz), sometimes
    # short (the tail unreadable).
    data = draw(
        st.one_of(
            mutated([segment], _TABLE_FIELDS).map(
                lambda d: d.ljust(len(segment), b"\0")
            ),
            st.binary(max_size=512),
        )
    )
    return data, draw(hostile_image(LOAD_IMAGE))


def kexec_load_program(value: ScanInput) -> Tuple[Program, KImage]:
    data, image = value
    mem, _ = _segment_bytes(LOAD_IMAGE, Role.PURGATORY)
    phys = dict([(mem, data), _segment_bytes(LOAD_IMAGE, Role.BOOT_PARAMS)])
    return phys_program(phys), image


# -- kexec-tools' purgatory on ppc64 and arm64: regions, digest, variables --

#: The real purgatory segments (tests/seeds/extract_kexec_tools.py) and the
#: drgn architecture of each.
_OTHER_ARCH_SEEDS = (
    ("ppc_hp_base", Architecture.PPC64),
    ("arm_base", Architecture.AARCH64),
)


def _shrunk(name: str, drgn_arch: Architecture) -> Tuple[KImage, bytes]:
    """The seed's image with every segment but purgatory cut to one page
    (zeros when read), its regions table rewritten to match and the digest
    of those pages stored where the build keeps it: the digest is then
    verifiable per input, and mutations reach the match, the mismatch and
    the digest search."""
    image = seed_image(name)
    arch = arch_named(drgn_arch.name)
    data = bytearray(seed_files(f"purgatory-{name}")[0])
    purgatory = image.segment_containing(image.start)
    old_table = regions_table(expected_regions(image, hash_excluded(image, arch)))
    at = bytes(data).find(old_table)
    assert at >= 0, name
    small = replace(
        image,
        segments=tuple(
            s if s is purgatory else replace(s, memsz=0x1000, bufsz=0)
            for s in image.segments
        ),
    )
    hashed = expected_regions(small, hash_excluded(small, arch))
    data[at : at + REGIONS_SIZE] = regions_table(hashed)
    digest = hashlib.sha256(bytes(0x1000 * len(hashed))).digest()
    at += arch.kexec_tools_digest_offset
    data[at : at + DIGEST_SIZE] = digest
    return small, bytes(data)


_OTHER_ARCH = [(*_shrunk(name, arch), arch) for name, arch in _OTHER_ARCH_SEEDS]

OtherArchInput = Tuple[int, bytes, KImage]


def _other_arch_fields(image: KImage, data: bytes) -> List[Tuple[int, int]]:
    """The regions table, the digest and the variables after it: 0x200
    bytes from the table's start (found in the seed by its first region)."""
    first = image.segments[0]
    at = data.find(first.mem.to_bytes(8, "little") + first.memsz.to_bytes(8, "little"))
    at = at if at >= 0 else 0
    return [(at + 8 * i, 8) for i in range(0x40)]


@st.composite
def other_arch_input(draw: st.DrawFn) -> OtherArchInput:
    which = draw(st.integers(0, len(_OTHER_ARCH) - 1))
    image, segment, _ = _OTHER_ARCH[which]
    seg = image.segment_containing(image.start)
    assert seg is not None
    data = draw(
        st.one_of(
            mutated([segment], _other_arch_fields(image, segment)).map(
                lambda d: d.ljust(seg.memsz, b"\0")
            ),
            st.binary(max_size=512),
        )
    )
    return which, data, draw(hostile_image(image))


def other_arch_program(value: OtherArchInput) -> Tuple[Program, KImage]:
    which, data, image = value
    base, _, arch = _OTHER_ARCH[which]
    seg = base.segment_containing(base.start)
    assert seg is not None
    phys = {s.mem: bytes(0x1000) for s in base.segments if s is not seg}
    phys[seg.mem] = data
    return phys_program(phys, arch=arch), image


#: struct boot_params fields the reader uses, and the command line's start.
_PARAMS_FIELDS = [(0x0C8, 4), (0x228, 4), (0x202, 4), (0x1000, 8), (0x4000, 8)]
_CMDLINE_WORDS = st.sampled_from(
    (
        "elfcorehdr=0x3000000",
        "elfcorehdr=56256K",
        "elfcorehdr=",
        "elfcorehdr=@",
        "elfcorehdr=4K@0x1000",
        "elfcorehdr=0777",
        "elfcorehdr=99999999999999999999E",
        "elfcorehdr=0x",
        "console=ttyS0",
        "\x00",
        "elfcorehdr=1G elfcorehdr=2M",
        "\xff\xfe",
        "elfcorehdr=\u00e9",
        "irqpoll",
    )
)

ParamsInput = Tuple[bytes, bool, KImage]


@st.composite
def boot_params_input(draw: st.DrawFn) -> ParamsInput:
    file_mode = draw(st.booleans())
    base = FILE_IMAGE if file_mode else LOAD_IMAGE
    _, params = _segment_bytes(base, Role.BOOT_PARAMS)
    data = bytearray(draw(mutated([params], _PARAMS_FIELDS)))
    if draw(st.booleans()):
        # A new command line where cmd_line_ptr points.
        line = " ".join(
            draw(st.lists(st.one_of(_CMDLINE_WORDS, st.text(max_size=20)), max_size=8))
        ).encode("utf-8", "surrogatepass")
        seg = base.by_role(Role.BOOT_PARAMS)
        assert seg is not None
        if len(data) >= 0x22C:
            ptr = int.from_bytes(data[0x228:0x22C], "little") - seg.mem
            if 0 <= ptr < len(data):
                end = draw(st.sampled_from((b"\0", b"")))
                data[ptr : ptr + len(line) + len(end)] = line + end
    return bytes(data), draw(st.booleans()), draw(hostile_image(base))


def boot_params_program(value: ParamsInput) -> Tuple[Program, KImage]:
    data, with_purgatory, image = value
    seg = (FILE_IMAGE if image.file_mode else LOAD_IMAGE).by_role(Role.BOOT_PARAMS)
    assert seg is not None
    phys = {seg.mem: data}
    if with_purgatory:
        phys.update(
            [
                _segment_bytes(
                    FILE_IMAGE if image.file_mode else LOAD_IMAGE, Role.PURGATORY
                )
            ]
        )
    blob = BLOB_SEEDS[0] if with_purgatory and image.file_mode else None
    return phys_program(phys, blob), image


def run_parse_elfcorehdr_arg(text: str) -> str:
    parsed = parse_elfcorehdr_arg(text)
    if parsed is None:
        if "elfcorehdr=" in text and re.search(r"(?:^|\s)elfcorehdr=", text):
            raise Crash("elfcorehdr= present but not found")
        return "none"
    arg, address = parsed
    if address is not None and address < 0:
        raise Crash(f"negative address {address}")
    return "address" if address is not None else "unparsable"


PURGATORY_BLOB = Target(
    "read_purgatory(kexec_purgatory blob, layout replay)",
    purgatory_blob_input(),
    _run_purgatory,
    prepare=purgatory_blob_program,
)
KEXEC_LOAD = Target(
    "read_purgatory(kexec_load regions scan)",
    kexec_load_input(),
    _run_purgatory,
    prepare=kexec_load_program,
)
KEXEC_TOOLS_OTHER_ARCH = Target(
    "read_purgatory(kexec_load scan, ppc64 and arm64 variables)",
    other_arch_input(),
    _run_purgatory,
    prepare=other_arch_program,
)
BOOT_PARAMS = Target(
    "read_purgatory(boot params, command line)",
    boot_params_input(),
    _run_purgatory,
    prepare=boot_params_program,
)
ELFCOREHDR_ARG = Target(
    "parse_elfcorehdr_arg",
    st.lists(st.one_of(_CMDLINE_WORDS, st.text(max_size=40)), max_size=10).map(
        " ".join
    ),
    run_parse_elfcorehdr_arg,
)


# -- the dump file's own headers (postmortem) ---------------------------------


@dataclass(frozen=True)
class _DumpFile:
    """What :func:`~drgn_crashhp.read.dump.read_dump_headers` asks of a
    program: its flags, its platform and the path of its core dump."""

    core_dump_path: str
    flags: ProgramFlags = ProgramFlags(0)
    platform: Platform = field(
        default_factory=lambda: Platform(Architecture.X86_64, _FLAGS)
    )


VMCORE_HEAD_SEEDS = list(seed_files("vmcore-head"))
_NOTE_FIELDS = FIELDS + [(off, 4) for off in range(0x168, 0x400, 4)]


def run_read_dump_headers(data: bytes) -> str:
    with tempfile.NamedTemporaryFile(prefix="crashhp-fuzz-") as f:
        f.write(data)
        f.flush()
        dump = read_dump_headers(
            _DumpFile(f.name),  # type: ignore[arg-type]
            page_offset=PAGE_OFFSET,
        )
    if dump is None or not isinstance(dump, DumpHeaders):
        raise Crash(f"returned {dump!r}")
    if dump.producer not in ("kdump", "qemu", "kdump-compressed", "unknown"):
        raise Crash(f"producer {dump.producer!r}")
    jsonable(dump)
    return f"{dump.producer}: {normalise(dump.evidence)[:60]}"


VMCORE_HEADERS = Target(
    "read_dump_headers(vmcore ELF headers and notes)",
    st.one_of(
        mutated(VMCORE_HEAD_SEEDS, _NOTE_FIELDS),
        structured_elf(),
        st.sampled_from((b"KDUMP   " + bytes(8), b"DISKDUMP", b"")),
    ),
    run_read_dump_headers,
)


# -- makedumpfile's flattened format (kdump-tools' /var/crash dumps) ----------

FLATTENED_SEEDS = list(seed_files("flattened"))

#: Logical offsets and sizes of the kdump-compressed fields _read_diskdump()
#: reads (disk_dump_header: version, block_size, sub_hdr_size,
#: bitmap_blocks, max_mapnr; kdump_sub_header at block 1: dump_level,
#: offset_note, size_note, max_mapnr), written inside the records.
_INNER_FIELDS = [
    (8, 4),
    (428, 4),
    (432, 4),
    (436, 4),
    (440, 4),
    (4096 + 8, 4),
    (4096 + 48, 8),
    (4096 + 56, 8),
    (4096 + 96, 8),
]
_S64 = st.one_of(
    st.sampled_from(
        (0, 1, -1, -2, 4096, 0x7FFFFFFF, (1 << 63) - 1, -(1 << 63), 1 << 30)
    ),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.integers(0, 1 << 16),
)


@st.composite
def flattened_mutated(draw: st.DrawFn) -> bytes:
    """A real flattened stream with record-level mutations: a record's
    offset or size (big-endian s64), records swapped, duplicated (an
    overlap) or dropped, a kdump field inside a record's data, the flat
    header's type, a cut; then byte-level ones."""
    from tests.support import flat

    data = bytearray(draw(st.sampled_from(FLATTENED_SEEDS)))
    recs = flat.records(bytes(data))
    pieces = [(o, bytes(data[d : d + n])) for o, n, d in recs]
    head = bytes(data[:4096])
    sizes: Dict[int, int] = {}
    for _ in range(draw(st.integers(0, 4))):
        op = draw(
            st.sampled_from(
                ("offset", "size", "swap", "dup", "drop")
                + ("inner",) * 4
                + ("type",) * draw(st.integers(0, 1))
            )
        )
        if not pieces:
            break
        i = draw(st.integers(0, len(pieces) - 1))
        if op == "offset":
            pieces[i] = (draw(_S64), pieces[i][1])
        elif op == "size":
            sizes[i] = draw(_S64)
        elif op == "swap":
            j = draw(st.integers(0, len(pieces) - 1))
            pieces[i], pieces[j] = pieces[j], pieces[i]
        elif op == "dup":
            pieces.append(pieces[i])
        elif op == "drop":
            del pieces[i]
        elif op == "type":
            head = flat.header(kind=draw(_S64), version=draw(_S64))
        else:
            at, size = draw(st.sampled_from(_INNER_FIELDS))
            value = draw(st.sampled_from(INTERESTING)) % (1 << (8 * size))
            for k, (o, d) in enumerate(pieces):
                if 0 <= at - o <= len(d) - size:
                    rel = at - o
                    d = d[:rel] + value.to_bytes(size, "little") + d[rel + size :]
                    pieces[k] = (o, d)
    out = head + b"".join(
        flat.record(o, d, sizes.get(i)) for i, (o, d) in enumerate(pieces)
    )
    if draw(st.integers(0, 9)) < 9:
        out += flat.END
    if draw(_RARELY):
        # bytes anywhere: the flat header, record headers, data
        out = draw(mutated([out], [(4096 + 16 * k, 8) for k in range(4)]))
    return out


@st.composite
def flattened_structured(draw: st.DrawFn) -> bytes:
    """A flattened stream drawn record by record: small offsets that
    overlap and leave holes, or any s64; then maybe no end marker, or
    trailing bytes."""
    offsets = st.one_of(st.integers(0, 64), _S64)
    pieces = draw(
        st.lists(st.tuples(offsets, st.binary(min_size=1, max_size=48)), max_size=12)
    )
    head = flat.header(kind=draw(mostly(1, 0, 2, -1)), version=draw(mostly(1, 0, 2)))
    out = head + b"".join(flat.record(o, d) for o, d in pieces)
    if draw(st.integers(0, 9)) < 8:
        out += flat.END
    return out + draw(st.binary(max_size=draw(st.sampled_from((0, 0, 32)))))


def run_flattened(data: bytes) -> str:
    """
    The flattened reader must agree with a plain model of makedumpfile -R
    (tests/support/flat.py): refuse exactly the streams it refuses and serve
    the bytes it would write; and read_dump_headers() on the file must give
    a value that says whether it is flattened.
    """
    try:
        flat.records(data)
        valid = True
    except ValueError:
        valid = False
    with tempfile.NamedTemporaryFile(prefix="crashhp-fuzz-") as f:
        f.write(data)
        f.flush()
        dump = read_dump_headers(
            _DumpFile(f.name),  # type: ignore[arg-type]
            page_offset=PAGE_OFFSET,
        )
        if dump is None or dump.flattened != is_flattened(data):
            raise Crash(f"read_dump_headers returned {dump!r}")
        if dump.producer not in ("kdump", "qemu", "makedumpfile", "unknown"):
            raise Crash(f"producer {dump.producer!r}")
        jsonable(dump)
        try:
            with open(f.name, "rb") as raw:
                reader = FlattenedFile(raw)  # type: ignore[arg-type]
                if not valid:
                    raise Crash("the reader accepts a stream makedumpfile -R refuses")
                for at, n in ((0, 1 << 16), (max(0, reader.size - 4096), 4096)):
                    if at >= WINDOW:
                        continue
                    got = reader.read_at(at, n)
                    if got != flat.rearranged(data, at, min(at + n, WINDOW)):
                        raise Crash(f"bytes at {at:#x} differ from makedumpfile -R")
        except FlattenedError as e:
            if valid:
                raise Crash(
                    f"the reader refuses a stream makedumpfile -R accepts: {e}"
                ) from e
            raise
    return f"{dump.producer}: {normalise(dump.evidence)[:70]}"


FLATTENED = Target(
    "flattened(makedumpfile -F stream)",
    st.one_of(
        flattened_mutated(),
        flattened_structured(),
        # an ELF dump in records (makedumpfile -E -F), out of order
        st.tuples(structured_elf(), st.randoms(use_true_random=False)).map(
            lambda t: flat.flatten(
                t[1].sample(flat.chunks(t[0], 64), len(flat.chunks(t[0], 64)))
            )
        ),
    ),
    run_flattened,
    errors=(FlattenedError,),
)


# -- the FDT (kexec-tools' DTB on ppc64 and arm64) ------------------------------

#: Real DTBs cut from the ppc64le and arm64 fixtures (tests/seeds/
#: extract_fdt.py) and hand-built ones.
FDT_SEEDS = list(seed_files("fdt")) + [
    build_fdt({}),
    build_fdt(
        {
            "#address-cells": fdtb.u32(2),
            "#size-cells": fdtb.u32(2),
            "cpus": {
                "#address-cells": fdtb.u32(1),
                "cpu@0": {"device_type": b"cpu\0", "reg": fdtb.u32(0)},
            },
            "memory@0": {"device_type": b"memory\0", "reg": fdtb.u64(0, 1 << 30)},
            "chosen": {
                "linux,elfcorehdr": fdtb.u64(0x7ABFF000, 0x400),
                "bootargs": b"elfcorehdr=2011132K\0",
            },
        },
        memreserve=[(0x1000, 0x2000)],
    ),
]

#: Big-endian words worth writing over a DTB's header, tokens and lengths.
_FDT_WORDS = (0, 1, 2, 3, 4, 9, 16, 17, 0x28, 0xD00DFEED, 0x7FFFFFFF, 0xFFFFFFFF)


@st.composite
def fdt_mutated(draw: st.DrawFn) -> bytes:
    """A DTB with up to 8 mutations: 32-bit big-endian writes (header
    fields, tokens, lengths, name offsets), byte flips, cuts, repeats."""
    data = bytearray(draw(st.sampled_from(FDT_SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(("word", "word", "header", "flip", "cut", "repeat")))
        n = len(data)
        if op in ("word", "header") and n >= 4:
            top = 9 if op == "header" else n // 4 - 1
            off = 4 * draw(st.integers(0, min(top, n // 4 - 1)))
            value = draw(
                st.one_of(st.sampled_from(_FDT_WORDS), st.integers(0, 0xFFFFFFFF))
            )
            data[off : off + 4] = value.to_bytes(4, "big")
        elif op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut" and n:
            del data[draw(st.integers(0, n - 1)) :]
        elif op == "repeat" and n >= 8:
            a = 4 * draw(st.integers(0, n // 4 - 1))
            b = min(n, a + 4 * draw(st.integers(1, 64)))
            data[a:a] = data[a:b] * draw(st.integers(1, 4))
    return bytes(data)


_FDT_NAMES = st.sampled_from(
    (
        "cpus",
        "cpu@0",
        "cpu@1",
        "memory@0",
        "chosen",
        "reg",
        "device_type",
        "#address-cells",
        "#size-cells",
        "linux,elfcorehdr",
        "bootargs",
        "ibm,dynamic-reconfiguration-memory",
        "ibm,dynamic-memory-v2",
        "ibm,lmb-size",
        "ibm,ppc-interrupt-server#s",
        "linux,usable-memory-range",
    )
) | st.text("abc@,#-0123456789", min_size=1, max_size=12)
_FDT_VALUES = st.one_of(
    st.binary(max_size=40),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=8).map(lambda v: fdtb.u32(*v)),
    st.sampled_from((b"cpu\0", b"memory\0", fdtb.u32(1), fdtb.u32(2), b"")),
)


def _fdt_tree(depth: int) -> st.SearchStrategy:
    leaf = st.dictionaries(_FDT_NAMES, _FDT_VALUES, max_size=4)
    if depth == 0:
        return leaf
    return st.dictionaries(
        _FDT_NAMES, st.one_of(_FDT_VALUES, _fdt_tree(depth - 1)), max_size=5
    )


def fdt_structured() -> st.SearchStrategy:
    """Trees drawn node by node and written as a DTB compiler would."""
    return st.builds(
        build_fdt,
        _fdt_tree(3),
        st.lists(st.tuples(_U64, _U64), max_size=3),
    )


def run_decode_fdt(data: bytes) -> str:
    """Decode, then read every property the checks read, then run the 08x
    checks on it: each ends in a value or :class:`Malformed`."""
    fdt = decode_fdt(data)
    if not isinstance(fdt, Fdt):
        raise Crash(f"returned {type(fdt).__name__}")
    if fdt.header.totalsize > min(len(data), FDT_MAX):
        raise Crash(f"totalsize {fdt.header.totalsize} past {len(data)} bytes")
    if not fdt.nodes or fdt.nodes[0].path != "/" or len(fdt.nodes) > FDT_MAX_NODES:
        raise Crash(f"{len(fdt.nodes)} nodes, first {fdt.nodes[:1]}")
    seen = set()
    for node in fdt.nodes:
        parent = node.path.rsplit("/", 1)[0] or "/"
        if node.path != "/" and parent not in seen:
            raise Crash(f"{node.path} before its parent")
        seen.add(node.path)
    if sum(len(v) for n in fdt.nodes for _, v in n.properties) > len(data):
        raise Crash("property values longer than the blob")
    facts = _fdt_facts(fdt)
    for f in check_fdt(facts, None):  # type: ignore[arg-type]
        if f.code not in CODES:
            raise Crash(f"unknown code {f.code}")
    return f"value: {min(len(fdt.nodes), 3)} nodes, {bool(fdt.memreserve)} reserve"


def _fdt_facts(fdt: Fdt) -> Facts:
    segments = (
        Segment(0, 0x6CC68000, 0x2000, 0x2000, Role.FDT),
        Segment(1, 0x7ABFF000, 0x1000, 0x400, Role.ELFCOREHDR),
    )
    image = KImage(
        symbol="kexec_crash_image",
        address=0,
        start=0,
        type=1,
        file_mode=False,
        nr_segments=2,
        segments=segments,
        elf_load_addr=None,
        elf_headers_sz=None,
        hotplug=HotplugFields(Layout.PRE_HOTPLUG, False, "fuzz"),
        elfcorehdr_index=1,
        elfcorehdr_source="fuzz",
    )
    state = MachineState(
        arch="AARCH64",
        present_cpus=(0, 1),
        crashk_res=(0x6AC00000, 0x7ABFFFFF),
        system_ram=((0x40000000, 0x7FFFFFFF),),
    )
    read = FdtRead(segments[0], fdt=fdt, hw_cpu_ids=((0, 0), (1, 1)))
    return Facts("fuzz", "kexec_crash_image", state, image=image, fdt=read)


FDT = Target(
    "decode_fdt",
    st.one_of(
        fdt_mutated(),
        fdt_structured(),
        st.binary(max_size=256).map(lambda b: FDT_MAGIC + b),
    ),
    run_decode_fdt,
    (FdtMalformed,),
)


TARGETS: Dict[str, Target] = {
    t.name: t
    for t in (
        ELFCOREHDR,
        PURGATORY_BLOB,
        KEXEC_LOAD,
        KEXEC_TOOLS_OTHER_ARCH,
        BOOT_PARAMS,
        ELFCOREHDR_ARG,
        VMCORE_HEADERS,
        FLATTENED,
        FDT,
        REPORT,
    )
}
