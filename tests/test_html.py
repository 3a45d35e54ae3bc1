"""
The HTML page, rendered by a real headless Chromium (Debian's package:
contrib/kdump/setup-test.sh installs it): the DOM Chromium builds must hold the
ranges each scenario's guest reported (its /proc/iomem, its crash kernel
region, the elfcorehdr ranges the lab read back), and the screenshot must show
red only where RAM is missing from the header and amber only where the header
describes memory that is gone.
"""

from __future__ import annotations

import copy
import functools
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest

from drgn_crashhp import build_report, report_json
from drgn_crashhp.render.html import COLOURS, render_html
from tests.conftest import real_fixture

SCENARIOS = [
    "file_memremove",
    "load_stale_memadd",
    "file_base",
    "file_cpuadd",
    "noload",
    "kdump_memadd",
]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
]


@functools.cache
def _report(name: str) -> Dict[str, Any]:
    prog, _ = real_fixture(name)
    return report_json(build_report(prog))


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("no chromium (contrib/kdump/setup-test.sh installs it)")
    return path


def run_chromium(tmp_path: Path, page: Path, *args: str) -> str:
    proc = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class Dom(HTMLParser):
    """Ranges, CPU rows and the verdict from the DOM Chromium dumped."""

    def __init__(self) -> None:
        super().__init__()
        self.rects: Set[Tuple[str, int, int]] = set()
        self.rows: Set[Tuple[str, int, int]] = set()
        self.cpus: Dict[int, List[str]] = {}
        self._cpu: Any = None
        self._in_verdict = False
        self.verdict = ""
        self.text: List[str] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Any]]) -> None:
        a = dict(attrs)
        if "data-start" in a:
            r = (a["data-role"], int(a["data-start"], 16), int(a["data-end"], 16))
            (self.rects if tag == "rect" else self.rows).add(r)
        if tag == "tr" and "data-cpu" in a:
            self._cpu = int(a["data-cpu"])
            self.cpus[self._cpu] = []
        self._in_verdict = a.get("id") == "verdict"

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._cpu = None
        self._in_verdict = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_verdict:
            self.verdict += data
        if self._cpu is not None and data.strip():
            self.cpus[self._cpu].append(data.strip())


def png_pixels(path: Path) -> Tuple[int, int, bytes, int]:
    """(width, height, raw pixel bytes, bytes per pixel) of an 8-bit,
    non-interlaced RGB or RGBA PNG, as Chromium writes screenshots."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(
                ">IIBBBBB", body
            )
            assert depth == 8 and colour in (2, 6) and interlace == 0
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = prev[i]
            ul = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + left) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + up) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif ftype == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else ul
                line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    return width, height, bytes(out), bpp


def count_colour(pixels: Tuple[int, int, bytes, int], hex_colour: str) -> int:
    width, height, raw, bpp = pixels
    rgb = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(1 for i in range(0, len(raw), bpp) if raw[i : i + 3] == rgb)


def _r(pair: List[str]) -> Tuple[int, int]:
    return int(pair[0], 16), int(pair[1], 16)


def expected_ranges(truth: Dict[str, Any]) -> Set[Tuple[str, int, int]]:
    """What the guest reported: top-level System RAM lines of its /proc/iomem,
    its crash kernel region, and the elfcorehdr RAM ranges the lab read back
    (stale ones as such), plus the RAM the recipe expects to be missing."""
    out = set()
    for line in truth["guest_state"]["proc_iomem"].splitlines():
        if not line.startswith(" ") and line.endswith(": System RAM"):
            s, e = line.split(" :")[0].split("-")
            out.add(("ram", int(s, 16), int(e, 16)))
    out.add(("crashkernel", *_r(truth["crash_kernel_region"])))
    exp = truth["expected"]
    stale = {_r(r) for r in exp["extra_ram"]}
    header = truth.get("observed", {}).get("observed_header_ram") or []
    if truth["dump_format"] == "elf":  # a kdump dump lacks the header bytes
        out |= {("stale" if _r(r) in stale else "header", *_r(r)) for r in header}
    out |= {("missing", *_r(r)) for r in exp["missing_ram"]}
    return out


@pytest.mark.parametrize("name", SCENARIOS)
def test_page_in_chromium(tmp_path: Path, name: str) -> None:
    chromium()
    _, truth = real_fixture(name)
    doc = copy.deepcopy(_report(name))
    page = tmp_path / f"{name}.html"
    page.write_text(render_html(doc, now=1_764_570_000))

    dom = Dom()
    dom.feed(run_chromium(tmp_path, page, "--dump-dom"))
    want = expected_ranges(truth)
    drawn = {r for r in dom.rects if r[0] != "text"}
    assert drawn == want
    assert {r for r in dom.rows if r[0] != "text"} == want
    verdict = {"stale": "PROBLEM", "none": "PROBLEM"}.get(
        truth["expected"]["elfcorehdr"], ""
    )
    if truth["expected"]["digest"] == "mismatch":
        verdict = "PROBLEM"
    if verdict:
        assert dom.verdict == verdict
    # The CPU table: every CPU the guest had, with its crash_notes address.
    for cpu, info in truth["guest_state"]["cpu"]["cpus"].items():
        row = dom.cpus[int(cpu[3:])]
        assert row[1] == "yes"  # present
        assert int(row[3], 16) == int(info["crash_notes"], 16)
    # Every finding is on the page.
    text = " ".join(dom.text)
    for f in doc["findings"]:
        assert f["code"] in text

    shot = tmp_path / f"{name}.png"
    run_chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1200,900")
    pixels = png_pixels(shot)
    assert count_colour(pixels, COLOURS["ram"]) > 1000
    kinds = {r[0] for r in want}
    for kind in ("missing", "stale"):
        n = count_colour(pixels, COLOURS[kind])
        assert (n > 1000) == (kind in kinds), (kind, n)


def test_page_is_self_contained() -> None:
    _, _ = real_fixture("file_memremove")
    page = render_html(_report("file_memremove"))
    for needle in (
        "<script",
        "<link",
        "src=",
        "url(",
        "@import",
        "http://",
        "https://",
    ):
        assert needle not in page.replace('xmlns="http://www.w3.org/2000/svg"', ""), (
            needle
        )


def test_hex_string_details_draw_the_same_ranges() -> None:
    """Schema 1 finding details hold hex strings, schema 2 ints."""
    doc = copy.deepcopy(_report("load_stale_memadd"))
    as_int = copy.deepcopy(doc)
    for f in as_int["findings"]:
        if "ranges" in f["details"]:
            f["details"]["ranges"] = [
                [int(str(x), 0) for x in r] for r in f["details"]["ranges"]
            ]
    assert render_html(doc, now=0) == render_html(as_int, now=0)
