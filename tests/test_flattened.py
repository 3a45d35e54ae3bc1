"""
makedumpfile's flattened format (``makedumpfile -F``, what Debian's
kdump-tools saves in /var/crash): the reader against a reference
rearrangement and its bounds, and the real captures of every kernel
generation made flattened by makedumpfile itself at test time, which must
give the verdict, codes and dump fields of the same dump not flattened,
with DWARF and with no debug info (BTF and kallsyms).
"""

from __future__ import annotations

import functools
import io
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from drgn import ProgramFlags

from drgn_crashhp.read.dump import read_dump_headers
from drgn_crashhp.read.flattened import (
    FlattenedError,
    FlattenedFile,
    open_flattened,
)
from tests.conftest import gen_fixture_paths
from tests.support import flat

# -- the reader, on streams built here ---------------------------------------


def _image(n: int = 20000, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def _open(stream: bytes, **bounds: int) -> FlattenedFile:
    return FlattenedFile(io.BytesIO(stream), **bounds)  # type: ignore[arg-type]


def test_reads_what_makedumpfile_r_writes() -> None:
    """Records out of order, a hole, and a later record over an earlier one
    (update_eraseinfo_of_sub_header() writes the sub-header again at the
    end): the bytes are those of the rearranged file."""
    image = _image()
    pieces = flat.chunks(image, 3000)
    del pieces[2]  # a hole: zeros, as in the sparse file -R writes
    random.Random(2).shuffle(pieces)
    pieces.append((4100, b"\xaa" * 50))  # overwrites earlier bytes
    stream = flat.flatten(pieces)
    f = _open(stream)
    assert f.records == len(pieces)
    assert f.size == len(image)
    whole = flat.rearranged(stream, 0, 1 << 30)
    assert whole[4100:4150] == b"\xaa" * 50 and whole[6000:9000] == bytes(3000)
    buffered = io.BufferedReader(f)
    assert buffered.read() == whole
    rng = random.Random(3)
    for _ in range(300):
        at, n = rng.randrange(len(whole) + 10), rng.randrange(1, 9000)
        buffered.seek(at)
        assert buffered.read(n) == whole[at : at + n]
    assert buffered.seek(0, io.SEEK_END) == len(image)


def test_bytes_after_the_end_marker_are_ignored() -> None:
    stream = flat.flatten([(0, b"abc")]) + b"trailing garbage"
    assert open_flattened(io.BytesIO(stream)).read() == b"abc"  # type: ignore[arg-type]


def _bad(what: str) -> Tuple[bytes, Dict[str, int], str]:
    ok = flat.flatten([(0, b"x" * 100), (100, b"y" * 100)])
    rec = flat.record
    cases: Dict[str, Tuple[bytes, Dict[str, int], str]] = {
        "short header": (ok[:100], {}, "header is truncated"),
        "signature": (b"makedumpfilX" + ok[12:], {}, "no makedumpfile signature"),
        "type": (flat.flatten([], head=flat.header(kind=2)), {}, "header type 2"),
        "no end marker": (ok[:-16], {}, "no end marker after 2 records"),
        "end marker cut": (ok[:-5], {}, "no end marker after 2 records"),
        "data past the end": (
            flat.header() + rec(0, b"x" * 10, size=4096),
            {},
            "stream is truncated: record 0",
        ),
        "negative offset": (
            flat.header() + rec(-5, b"x") + flat.END,
            {},
            "offset -5, size 1",
        ),
        "zero size": (flat.header() + rec(0, b"", size=0) + flat.END, {}, "size 0"),
        "half an end marker": (
            flat.header() + rec(0, b"", size=-1) + flat.END,
            {},
            "offset 0, size -1",
        ),
        "overflow": (
            flat.header() + rec((1 << 63) - 10, b"x" * 100) + flat.END,
            {},
            "overflows",
        ),
        "too many records": (ok, {"max_records": 1}, "more than 1 records"),
        "too many indexed": (ok, {"max_indexed": 1}, "more than 1 records in"),
    }
    return cases[what]


@pytest.mark.parametrize(
    "what",
    [
        "short header",
        "signature",
        "type",
        "no end marker",
        "end marker cut",
        "data past the end",
        "negative offset",
        "zero size",
        "half an end marker",
        "overflow",
        "too many records",
        "too many indexed",
    ],
)
def test_bounds_are_one_line_errors(what: str) -> None:
    stream, bounds, message = _bad(what)
    with pytest.raises(FlattenedError, match=message) as e:
        _open(stream, **bounds)
    assert "\n" not in str(e.value)


def test_reads_past_the_window_are_refused() -> None:
    image = _image(12000)
    f = open_flattened(
        io.BytesIO(flat.flatten(flat.chunks(image))),  # type: ignore[arg-type]
        window=8192,
    )
    assert f.read(8000) == image[:8000]
    with pytest.raises(FlattenedError, match="past the first 0x2000 bytes"):
        f.read(1000)


def test_many_records_stay_bounded_in_time() -> None:
    """A stream of tiny records is scanned through a small buffer, not one
    read per record: 100,000 records take well under a second (the scan of
    MAX_RECORDS is the bound on time)."""
    n = 100_000
    body = b"".join(flat.record((1 << 31) + 64 * i, bytes(8)) for i in range(n))
    f = _open(flat.header() + body + flat.END)
    assert f.records == n and f.size == (1 << 31) + 64 * (n - 1) + 8


# -- the hook in read_dump_headers -------------------------------------------


class _Core:
    """What read_dump_headers() asks of a program."""

    flags = ProgramFlags(0)

    def __init__(self, path: Path) -> None:
        self.core_dump_path = str(path)


def _headers(path: Path) -> Dict[str, Any]:
    from drgn_crashhp.render.json import jsonable

    dump = read_dump_headers(_Core(path))  # type: ignore[arg-type]
    assert dump is not None
    return dict(jsonable(dump))


def _same_dump(flattened: Dict[str, Any], plain: Dict[str, Any]) -> None:
    """The dump fields of a flattened file are those of the same dump not
    flattened, except that they say so."""
    assert flattened["flattened"] is True and plain["flattened"] is False
    assert flattened["evidence"] == (
        f"makedumpfile flattened format (-F): {plain['evidence']}"
    )
    skip = {"path", "evidence", "flattened"}
    assert {k: v for k, v in flattened.items() if k not in skip} == {
        k: v for k, v in plain.items() if k not in skip
    }


def test_a_real_dump_flattened_here_reads_like_the_original(tmp_path: Path) -> None:
    """The 6.1 makedumpfile capture, cut into shuffled records by the test
    (no makedumpfile needed): the same 1st and 2nd bitmaps, notes, level."""
    dump, _, _ = gen_fixture_paths("v6.1/kdump_mdf_memadd")
    image = dump.read_bytes()
    pieces = flat.chunks(image, 4096)
    random.Random(4).shuffle(pieces)
    out = tmp_path / "dump.flat"
    out.write_bytes(flat.flatten(pieces))
    got, want = _headers(out), _headers(dump)
    _same_dump(got, want)
    assert want["producer"] == "makedumpfile" and want["dump_level"] == 31


def test_a_corrupt_flattened_file_is_a_value_not_a_traceback(tmp_path: Path) -> None:
    """Like a corrupt kdump header: producer unknown, the reason in the
    evidence (check_dump() then emits nothing and the report says why it
    cannot verify the dump)."""
    dump, _, _ = gen_fixture_paths("v6.1/kdump_mdf_memadd")
    stream = flat.flatten(flat.chunks(dump.read_bytes()[:1000]))
    out = tmp_path / "cut.flat"
    out.write_bytes(stream[:-40])
    got = _headers(out)
    assert got["producer"] == "unknown" and got["flattened"] is True
    assert got["evidence"].startswith(
        "makedumpfile flattened format (-F): stream is truncated"
    )
    out.write_bytes(stream)  # a whole stream of a cut dump
    got = _headers(out)
    assert got["producer"] == "unknown"
    assert got["evidence"] == (
        "makedumpfile flattened format (-F): kdump-compressed sub-header is truncated"
    )


# -- real captures, flattened by makedumpfile --------------------------------

needs_makedumpfile = pytest.mark.skipif(
    flat.makedumpfile() is None,
    reason="makedumpfile is not installed (contrib/kdump/setup-test.sh does it)",
)

#: The real kdump captures: the 6.1 and 7.3 ones are makedumpfile -d 31
#: dumps (refiltered as kdump-tools would write them), the 6.12 one is the
#: capture kernel's /proc/vmcore as ELF (made kdump-compressed and
#: flattened from it, as kdump-tools does in the capture kernel).
CAPTURES = ["v6.1/kdump_mdf_memadd", "kdump_memadd", "v7.3/kdump_mdf_memadd"]
MODES = ["dwarf", "btf+kallsyms"]


@functools.cache
def _files(name: str, where: Path) -> Tuple[Path, Path, Path, Dict[str, Any]]:
    """(flattened, the same dump not flattened, vmlinux, ground truth)."""
    dump, vmlinux, truth = gen_fixture_paths(name)
    stem = name.replace("/", "-")
    flattened = flat.make_flattened(dump, where / f"{stem}.flat")
    if dump.suffix == ".kdump":
        plain = dump
    else:
        plain = flat.make_plain(dump, where / f"{stem}.kdump")
    return flattened, plain, vmlinux, truth


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flattened")


@functools.cache
def _report(core: Path, vmlinux: Path, mode: str) -> Dict[str, Any]:
    from drgn_crashhp import build_report, open_program, report_json

    if mode == "dwarf":
        prog = open_program(
            core=str(core), symbols=[str(vmlinux)], default_symbols=False
        )
    else:
        prog = open_program(core=str(core), default_symbols=False, say=lambda _: None)
    doc = json.loads(json.dumps(report_json(build_report(prog))))
    assert doc["debuginfo"] == mode
    return doc


def codes(doc: Dict[str, Any]) -> List[str]:
    return sorted(f["code"] for f in doc["findings"])


@needs_makedumpfile
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", CAPTURES)
def test_real_capture_flattened_gives_the_same_report(
    name: str, mode: str, workdir: Path
) -> None:
    flattened, plain, vmlinux, truth = _files(name, workdir)
    got, want = _report(flattened, vmlinux, mode), _report(plain, vmlinux, mode)
    assert (got["verdict"], got["exit_status"], codes(got)) == (
        want["verdict"],
        want["exit_status"],
        codes(want),
    )
    _same_dump(got["dump"], want["dump"])
    assert got["dump"]["producer"] == "makedumpfile"
    assert got["dump"]["dump_level"] == 31
    # and the ground truth of the capture (tests/test_generations.py's rules)
    missing = truth["expected"]["missing_ram"]
    assert "CHP071" in codes(got)
    if missing:
        [f] = [f for f in got["findings"] if f["code"] == "CHP070"]
        assert f["details"]["ranges"] == [[int(a, 16), int(b, 16)] for a, b in missing]
        assert (got["verdict"], got["exit_status"]) == ("PROBLEM", 1)
    else:
        assert "CHP070" not in codes(got)
        assert (got["verdict"], got["exit_status"]) == ("CANNOT VERIFY", 3)


@needs_makedumpfile
@pytest.mark.parametrize("name", CAPTURES)
def test_reader_bytes_are_makedumpfile_r(name: str, workdir: Path) -> None:
    """Every byte the reader serves is what makedumpfile -R writes."""
    flattened, _, _, _ = _files(name, workdir)
    stem = name.replace("/", "-")
    rearranged = flat.rearrange(flattened, workdir / f"{stem}.R")
    with open(flattened, "rb") as f:
        assert open_flattened(f).read() == rearranged.read_bytes()


@needs_makedumpfile
def test_the_cli_on_the_6_1_capture_as_kdump_tools_saves_it(workdir: Path) -> None:
    """The issue's case: the hot-added DIMM missing from the dump
    (CHP070), the makedumpfile finding (CHP071), PROBLEM, exit 1."""
    flattened, _, vmlinux, _ = _files("v6.1/kdump_mdf_memadd", workdir)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn_crashhp",
            "-c",
            str(flattened),
            "-s",
            str(vmlinux),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "CHP070" in proc.stdout and "CHP071" in proc.stdout
    assert "makedumpfile flattened format (-F): kdump-compressed" in proc.stdout
