"""
Fuzz targets shared by tests/test_fuzz.py (fast, derandomized) and
contrib/fuzz_long.py (long run).

A target is a decoder that reads bytes (or a whole program) controlled by
the target machine, a hypothesis strategy for its input, and the documented
ways it may fail. Every input must end in a value that satisfies the
target's invariants or in a documented error, within :data:`TIME_BOUND`
seconds; anything else is a crash.

Inputs are structured (fields drawn one by one) and mutated (bytes from
seeds: headers written by tests/synth.py and by the kernel's own rebuild,
and small files under tests/seeds/ cut from the real fixture dumps).
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

from hypothesis import strategies as st

from drgn_crashhp.elfcorehdr import (
    PN_XNUM,
    ElfCoreHdr,
    Malformed,
    build_elfcorehdr,
    decode_elfcorehdr,
)
from drgn_crashhp.findings import CODES, exit_status
from drgn_crashhp.kimage import KEXEC_SEGMENT_MAX
from drgn_crashhp.report import build_report, render_text, report_json
from tests.synth import (
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

SEEDS = Path(__file__).resolve().parent / "seeds"

#: Seconds one input may take before it counts as a hang. Generous: CI
#: machines are shared, and the decoders take well under a millisecond.
TIME_BOUND = 2.0


class Crash(AssertionError):
    """An input ended in neither a valid value nor a documented error."""


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


def normalise(message: str) -> str:
    """An error message with its numbers blanked, to count kinds of outcome."""
    return re.sub(r"0x[0-9a-fA-F]+|\d+", "N", message)


def outcome(target: Target, value: Any) -> Tuple[str, float]:
    """
    Run one input; return ``(label, seconds)``.

    :raises Crash: on an undocumented exception, a broken invariant or a
        run over :data:`TIME_BOUND`.
    """
    t0 = time.perf_counter()
    try:
        label = target.run(value)
    except target.errors as e:
        label = f"{type(e).__name__}: {normalise(str(e))}"
    except Crash:
        raise
    except Exception as e:
        raise Crash(f"{target.name}: {type(e).__name__}: {e}") from e
    elapsed = time.perf_counter() - t0
    if elapsed > TIME_BOUND:
        raise Crash(f"{target.name}: {elapsed:.2f}s for one input")
    return label, elapsed


# -- seeds --------------------------------------------------------------------


def seed_files(prefix: str) -> List[bytes]:
    """Seed bytes cut from the real fixtures (tests/seeds/PREFIX*.bin)."""
    return [p.read_bytes() for p in sorted(SEEDS.glob(f"{prefix}*.bin"))]


def _synthetic_elfcorehdrs() -> List[bytes]:
    m = Machine()
    hand = elf_core_header(
        [note(m.crash_notes_phys(c)) for c in range(4)]
        + [note(0x3020000, 4132), text(), ram(0x100000, 0x2EFFFFFF),
           ram(0x3F000000, 0x3FFDFFFF)]
    )
    rebuilt = build_elfcorehdr(
        [(m.crash_notes_phys(c), 368) for c in range(2)] + [(0x286000, 4132)],
        (0x2200000, 0xFFFFFFFFA9E00000, 0xA30000),
        [(0x100000, 0x2FFFFFF), (0x4800000, 0x5FDEFFF)],
        PAGE_OFFSET,
    )
    return [hand, rebuilt, elf_core_header([note(0x1000)])]


ELFCOREHDR_SEEDS = _synthetic_elfcorehdrs() + seed_files("elfcorehdr")

# Offsets of every Ehdr field and of every field of the first four Phdrs:
# where a mutation is most likely to reach a new branch.
_EHDR_FIELDS = [(4, 1), (5, 1), (6, 1), (16, 2), (18, 2), (20, 4), (24, 8),
                (32, 8), (40, 8), (48, 4), (52, 2), (54, 2), (56, 2), (58, 2),
                (60, 2), (62, 2)]
_PHDR_FIELDS = [(64 + 56 * i + off, size) for i in range(4)
                for off, size in ((0, 4), (4, 4), (8, 8), (16, 8), (24, 8),
                                  (32, 8), (40, 8), (48, 8))]
FIELDS = _EHDR_FIELDS + _PHDR_FIELDS

INTERESTING = (0, 1, 2, 3, 4, 6, 7, 0x38, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0xFFFE,
               0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32,
               (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 0x6474E550, 0x6474E551)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes],
            fields: Sequence[Tuple[int, int]] = FIELDS) -> bytes:
    """A seed with up to 8 mutations: field writes, bit flips, cuts, splices."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(
            ("field", "field", "flip", "byte", "truncate", "extend", "splice",
             "delete")))
        n = len(data)
        if op == "field":
            off, size = draw(st.sampled_from(fields))
            value = draw(st.one_of(st.sampled_from(INTERESTING),
                                   st.integers(0, (1 << (8 * size)) - 1)))
            if off + size <= n:
                data[off:off + size] = (value % (1 << (8 * size))).to_bytes(
                    size, "little")
        elif op == "flip" and n:
            pos = draw(st.integers(0, n - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and n:
            data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[draw(st.integers(0, n)):]
        elif op == "extend":
            data += draw(st.binary(max_size=256))
        elif op == "splice" and n:
            pos = draw(st.integers(0, n))
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete" and n:
            pos = draw(st.integers(0, n - 1))
            del data[pos:pos + draw(st.integers(1, 64))]
    return bytes(data)


# -- elfcorehdr ---------------------------------------------------------------

_PTYPES = st.one_of(st.sampled_from((0, 1, 1, 1, 2, 3, 4, 4, 5, 6, 7,
                                     0x6474E550, 0x6474E551, 0x6474E552,
                                     0x70000000)),
                    st.integers(0, 0xFFFFFFFF))
_U64 = st.one_of(st.sampled_from(INTERESTING), st.integers(0, (1 << 64) - 1))


@st.composite
def structured_elf(draw: st.DrawFn) -> bytes:
    """An ELF64 header drawn field by field, with program headers at e_phoff."""
    phdrs = draw(st.lists(st.tuples(_PTYPES, st.integers(0, 0xFFFFFFFF), _U64, _U64,
                                    _U64, _U64, _U64, _U64), max_size=12))
    phoff = draw(st.one_of(st.just(64), st.integers(0, 512), _U64))
    phnum = draw(st.one_of(st.just(len(phdrs)), st.integers(0, 0xFFFF)))
    ident = (b"\x7fELF" + bytes([draw(st.sampled_from((2, 2, 1, 0, 3))),
                                 draw(st.sampled_from((1, 1, 2, 0, 3))),
                                 draw(st.sampled_from((1, 1, 0, 2)))])
             + draw(st.binary(min_size=9, max_size=9)))
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        draw(st.sampled_from((4, 4, 4, 0, 1, 2, 3, 0xFE00, 0xFFFF))),
        draw(st.sampled_from((62, 62, 0, 3, 183, 0xFFFF))),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(_U64),
        phoff,
        draw(st.one_of(st.just(0), _U64)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.sampled_from((64, 64, 0, 52, 0xFFFF))),
        draw(st.sampled_from((56, 56, 56, 0, 32, 0xFFFF))),
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
    data = draw(st.one_of(structured_elf(), mutated(ELFCOREHDR_SEEDS),
                          st.binary(max_size=512)))
    capacity = draw(st.one_of(
        st.none(), st.integers(0, 2 * len(data) + 64), _U64,
        st.just(0x71000)))
    machine = draw(st.sampled_from((None, None, 62, 183, 0)))
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
    return f"value: {bool(hdr.notes)} notes, {bool(hdr.loads)} loads, " \
           f"{bool(hdr.other)} other"


ELFCOREHDR = Target("decode_elfcorehdr", elfcorehdr_input(), run_decode_elfcorehdr,
                    (Malformed,))


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
            buf[off:off + len(data)] = data[: len(buf) - off]
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
        memsz = draw(st.one_of(st.integers(0, 0x2000), st.sampled_from(
            (0x1000, 0x71000, _HOSTILE_SLOT // 2))))
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
        segments[1] = Seg(a.mem + draw(st.integers(0, 0x1000)), a.memsz,
                          segments[1].data, a.present)
    layout = draw(st.sampled_from(LAYOUTS))
    starts = [s.mem + draw(st.integers(0, 0x100)) for s in segments[:1]]
    machine = Machine(
        layout=layout,
        segments=segments if draw(st.integers(0, 15)) else None,
        start=draw(st.one_of(st.sampled_from(starts or [0]), _U64)),
        file_mode=draw(st.booleans()),
        hotplug_support=draw(st.booleans()),
        elfcorehdr_index=draw(st.one_of(st.integers(-1, n + 1),
                                        st.integers(-(1 << 31), (1 << 31) - 1))),
        elfcorehdr_updated=draw(st.booleans()),
        hp_action=draw(st.one_of(st.integers(0, 5), st.just(0xFFFFFFFF),
                                 st.integers(0, 0xFFFFFFFF))),
        elf_load_addr=draw(st.one_of(st.sampled_from(
            [s.mem for s in segments] or [0]), _U64)),
        nr_segments=draw(st.one_of(st.none(), st.integers(0, 64), _U64)),
        rfc=draw(st.none() | st.fixed_dictionaries({
            "elf_index": st.integers(-(1 << 31), (1 << 31) - 1),
            "purg_index": st.integers(-(1 << 31), (1 << 31) - 1),
            "rbx": _U64, "rsi": _U64, "rip": _U64, "rsp": _U64,
        })) if layout == "rfc-v1" else None,
        image_pointer=draw(st.none() | st.sampled_from(
            (1, PAGE_OFFSET + HEAP_PHYS + 0x3FFF8, PAGE_OFFSET + 0x2F000000,
             0xFFFF8880DEAD0000, (1 << 64) - 1))),
    )
    patches = draw(st.lists(st.tuples(st.integers(0, 1 << 12),
                                      st.binary(min_size=1, max_size=8)),
                            max_size=4))
    return machine, patches


def run_report(value: Tuple[Machine, List[Tuple[int, bytes]]]) -> str:
    machine, patches = value
    prog = HostileKernel(machine, patches).prog
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
    image = report.image
    if image is not None:
        if len(image.segments) > KEXEC_SEGMENT_MAX:
            raise Crash(f"{len(image.segments)} segments read")
        nr = image.nr_segments
        if (nr == 0 or nr > KEXEC_SEGMENT_MAX) and status == 0:
            raise Crash(f"nr_segments {nr} reported OK")
    return f"{status} " + ",".join(sorted({f.code for f in report.findings}))


REPORT = Target("build_report(hostile kimage)", hostile_machine(), run_report)


TARGETS: Dict[str, Target] = {t.name: t for t in (ELFCOREHDR, REPORT)}
