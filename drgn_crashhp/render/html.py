"""
HTML
----

The report as one self-contained page (inline CSS and SVG; no scripts, fonts
or other files): the verdict, a map of physical memory with the RAM, the
crash kernel reservation and the elfcorehdr's ranges (RAM the header misses in
red, header ranges that are no longer RAM in amber), the CPU table and the
findings. Input is the JSON document of
:func:`drgn_crashhp.render.json.report_json`: its facts, its ``analysis``
rows and its findings.
"""

from __future__ import annotations

import datetime
import math
from html import escape
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

from drgn_crashhp.kernel.ranges import normalize

__all__ = ("render_html",)

Range = Tuple[int, int]

# Fill colours of the memory map, by role; the legend and the tests use them.
COLOURS = {
    "ram": "#4c78a8",
    "crashkernel": "#8e6cc0",
    "header": "#59a14f",
    "text": "#9d9d9d",
    "missing": "#d62728",
    "stale": "#f5a623",
}
ROLE_NAMES = {
    "ram": "RAM now",
    "crashkernel": "crash kernel reservation",
    "header": "elfcorehdr PT_LOAD",
    "text": "elfcorehdr kernel text",
    "missing": "RAM missing from the elfcorehdr",
    "stale": "elfcorehdr range no longer RAM",
}
VERDICT_COLOURS = {"OK": "#2e7d32", "PROBLEM": "#b00020", "CANNOT VERIFY": "#8a6d00"}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;
font-weight:bold;font-size:18px}
.target{color:#555;font-family:monospace}
table{border-collapse:collapse;margin:4px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{font-family:monospace;text-align:right}
td.mono{font-family:monospace}
tr.missing td,tr.error td{background:#fde8e8}
tr.stale td,tr.warning td{background:#fff3dc}
tr.unverified td{background:#eef2f8}
.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;
vertical-align:middle;border:1px solid #555}
svg text{font:11px monospace}
.note{color:#555}
"""


def _ranges(values: Optional[Iterable[Sequence[Any]]]) -> List[Range]:
    return [(int(r[0]), int(r[1])) for r in values or ()]


def rows_with_status(doc: Mapping[str, Any], status: str) -> List[Range]:
    """The memory rows of *doc*'s analysis with *status*, adjacent ones merged."""
    rows = (doc.get("analysis") or {}).get("memory_rows") or ()
    return normalize((r["start"], r["end"]) for r in rows if r["status"] == status)


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def memory_map(doc: Mapping[str, Any]) -> List[Tuple[str, Range]]:
    """(role, inclusive range) for every range the map draws."""
    state = doc.get("state") or {}
    out: List[Tuple[str, Range]] = []
    out += [("ram", r) for r in _ranges(state.get("system_ram"))]
    for key in ("crashk_res", "crashk_low_res"):
        r = state.get(key)
        if r and r[1] > r[0]:
            out.append(("crashkernel", (r[0], r[1])))
    stale = rows_with_status(doc, "not RAM now")
    text = state.get("kernel_text") or {}
    text_range = (
        (text["paddr"], text["paddr"] + text["size"] - 1)
        if text.get("paddr") is not None and text.get("size")
        else None
    )
    header = (doc.get("elfcorehdr") or {}).get("header") or {}
    for ld in header.get("loads") or ():
        if not ld["size"]:
            continue
        r = (ld["paddr"], ld["paddr"] + ld["size"] - 1)
        if r == text_range:
            out.append(("text", r))
        elif r not in stale:
            out.append(("header", r))
    out += [("stale", r) for r in stale]
    out += [("missing", r) for r in rows_with_status(doc, "MISSING")]
    return out


_ROWS = (
    ("RAM now", ("ram",)),
    ("crash kernel", ("crashkernel",)),
    ("elfcorehdr", ("header", "stale", "missing")),
    ("kernel text", ("text",)),
)


def _scale(ranges: Sequence[Range], width: float) -> Any:
    """Address -> x: each stretch between two range boundaries gets a width
    growing with the log of its size, so 4 KiB and 4 GiB both show; stretches
    no range covers (holes) get a fixed narrow width."""
    points = sorted({p for s, e in ranges for p in (s, e + 1)})
    pieces = list(zip(points, points[1:]))
    covered = [any(s <= a and b - 1 <= e for s, e in ranges) for a, b in pieces]
    gap = 14.0
    weights = [math.log2(b - a) + 4 if c else 0.0 for (a, b), c in zip(pieces, covered)]
    room = width - gap * covered.count(False)
    unit = room / (sum(weights) or 1)
    xs = [0.0]
    for w, c in zip(weights, covered):
        xs.append(xs[-1] + (w * unit if c else gap))

    def x(addr: int) -> float:
        for (a, b), x0, x1 in zip(pieces, xs, xs[1:]):
            if a <= addr <= b:
                return x0 + (x1 - x0) * (addr - a) / (b - a)
        return xs[-1] if points and addr > points[-1] else 0.0

    holes = [(x0, x1) for c, x0, x1 in zip(covered, xs, xs[1:]) if not c]
    return x, holes


def _svg(mapped: Sequence[Tuple[str, Range]]) -> str:
    if not mapped:
        return '<p class="note">No RAM or elfcorehdr ranges could be read.</p>'
    left, width, row_h, gap = 100, 960.0, 26, 10
    x, holes = _scale([r for _, r in mapped], width)
    height = len(_ROWS) * (row_h + gap) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 10:.0f}" '
        f'height="{height}" role="img" aria-label="physical memory map">'
    ]
    for i, (label, roles) in enumerate(_ROWS):
        y = i * (row_h + gap)
        out.append(f'<text x="0" y="{y + row_h * 0.65:.0f}">{escape(label)}</text>')
        out.append(
            f'<rect x="{left}" y="{y}" width="{width:.0f}" height="{row_h}" '
            'fill="#f4f4f4"/>'
        )
        for role, (s, e) in mapped:
            if role not in roles:
                continue
            x0, x1 = left + x(s), left + x(e + 1)
            w = max(x1 - x0, 1.5)
            tip = f"{ROLE_NAMES[role]} {s:#x}-{e:#x} ({_size(e - s + 1)})"
            out.append(
                f'<rect class="range {role}" data-role="{role}" data-start="{s:#x}" '
                f'data-end="{e:#x}" x="{x0:.1f}" y="{y}" width="{w:.1f}" '
                f'height="{row_h}" fill="{COLOURS[role]}"><title>{escape(tip)}</title>'
                "</rect>"
            )
    for x0, x1 in holes:
        out.append(
            f'<line x1="{left + (x0 + x1) / 2:.1f}" y1="0" '
            f'x2="{left + (x0 + x1) / 2:.1f}" y2="{height - 20}" '
            'stroke="#888" stroke-dasharray="3 3"/>'
        )
    y = len(_ROWS) * (row_h + gap) + 10
    starts = sorted({s for _, (s, _) in mapped})
    last = -1e9
    for s in starts:
        px = left + x(s)
        if px - last > 70:  # keep boundary labels apart
            out.append(f'<text x="{px:.1f}" y="{y}">{s:#x}</text>')
            last = px
    out.append("</svg>")
    return "\n".join(out)


def _legend(mapped: Sequence[Tuple[str, Range]]) -> str:
    present = [r for r in COLOURS if any(role == r for role, _ in mapped)]
    return (
        "<p>"
        + " &nbsp; ".join(
            f'<span class="swatch" style="background:{COLOURS[r]}"></span>'
            f"{escape(ROLE_NAMES[r])}"
            for r in present
        )
        + "</p>"
    )


def _range_table(mapped: Sequence[Tuple[str, Range]]) -> str:
    rows = ["<table><tr><th>range</th><th>start</th><th>end</th><th>size</th></tr>"]
    order = {r: i for i, r in enumerate(COLOURS)}
    for role, (s, e) in sorted(mapped, key=lambda m: (m[1][0], order[m[0]])):
        rows.append(
            f'<tr class="{role}" data-role="{role}" data-start="{s:#x}" '
            f'data-end="{e:#x}"><td>{escape(ROLE_NAMES[role])}</td>'
            f'<td class="num">{s:#x}</td><td class="num">{e:#x}</td>'
            f'<td class="num">{_size(e - s + 1)}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


#: CPU row status (analysis.CpuStatus values) -> (text, row class).
_CPU_STATUS = {
    "missing": ("missing from the elfcorehdr (CHP040)", "missing"),
    "wrong address": ("note at a wrong address (CHP042)", "missing"),
    "stale": ("note for a CPU no longer present (CHP041)", "stale"),
    "no note if hot-added later": ("no note if hot-added later (CHP044)", "stale"),
}


def _cpu_table(doc: Mapping[str, Any]) -> str:
    rows_in = (doc.get("analysis") or {}).get("cpu_rows")
    if not rows_in:
        return '<p class="note">The CPUs could not be read.</p>'
    rows = [
        "<table><tr><th>CPU</th><th>present</th><th>online</th>"
        "<th>crash_notes</th><th>note in elfcorehdr</th><th>status</th></tr>"
    ]
    for r in rows_in:
        cpu, paddr, status = r["cpu"], r["crash_notes"], r["status"]
        text, cls = _CPU_STATUS.get(status, ("", ""))
        if status is None:
            note = "unknown"
        else:
            note = "yes" if status in ("noted", "stale") else "no"
        crash_notes = f"{paddr:#x}" if paddr is not None else "unknown"
        rows.append(
            f'<tr class="{cls}" data-cpu="{cpu}"><td class="num">{cpu}</td>'
            f"<td>{_yes(r['present'])}</td><td>{_yes(r['online'])}</td>"
            f'<td class="num">{crash_notes}</td><td>{note}</td>'
            f"<td>{escape(text)}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _findings(doc: Mapping[str, Any]) -> str:
    rows = [
        "<table><tr><th>severity</th><th>code</th><th>title</th><th>message</th></tr>"
    ]
    for f in doc.get("findings") or ():
        sev = escape(str(f["severity"]))
        rows.append(
            f'<tr class="{sev}" data-code="{escape(f["code"])}"><td>{sev}</td>'
            f'<td class="mono">{escape(f["code"])}</td><td>{escape(f["title"])}</td>'
            f"<td>{escape(f['message'])}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def render_html(doc: Mapping[str, Any], now: Optional[float] = None) -> str:
    """
    The report *doc* (from ``report_json``) as one self-contained HTML page.
    *now* is the check time shown on the page (default: the current time).
    """
    verdict = str(doc.get("verdict"))
    when = (
        datetime.datetime.now(datetime.timezone.utc)
        if now is None
        else datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    )
    mapped = memory_map(doc)
    colour = VERDICT_COLOURS.get(verdict, "#555")
    digest = doc.get("digest")
    digest_text = digest["status"] if digest else "not checked (--no-digest)"
    no_header = (
        ""
        if (doc.get("elfcorehdr") or {}).get("header")
        else (
            '<p class="note">No elfcorehdr was decoded: the map shows RAM and the '
            "reservation only.</p>"
        )
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>drgn-crashhp: {escape(verdict)}</title>
<style>{_CSS}</style></head>
<body>
<h1>drgn-crashhp <span class="verdict" id="verdict" style="background:{colour}">\
{escape(verdict)}</span></h1>
<div class="target">{escape(str(doc.get("target")))}</div>
<p>exit status {escape(str(doc.get("exit_status")))}; purgatory digest: \
{escape(str(digest_text))}; checked {when:%Y-%m-%d %H:%M:%S} UTC</p>
<h2>Physical memory</h2>
{no_header}
{_svg(mapped)}
{_legend(mapped)}
{_range_table(mapped)}
<h2>CPUs</h2>
{_cpu_table(doc)}
<h2>Findings</h2>
{_findings(doc)}
<p class="note">{escape(str(doc.get("tool")))}, report schema \
{escape(str(doc.get("schema")))}</p>
</body></html>
"""
