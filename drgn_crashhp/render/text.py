"""
Text
----

The report as text: one section per reader (crash image, elfcorehdr,
purgatory, state now) as tables, then the findings and the verdict.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from drgn_crashhp.analysis import Analysis, CpuStatus
from drgn_crashhp.arch import regs_order
from drgn_crashhp.facts import (
    DigestVerdict,
    ElfCoreHdrRead,
    KImage,
    MachineState,
    Purgatory,
)
from drgn_crashhp.findings import Finding, Severity
from drgn_crashhp.fmt import hex_or_dash as _hex
from drgn_crashhp.fmt import mib, yes_no
from drgn_crashhp.render import SECTIONS

if TYPE_CHECKING:
    from drgn_crashhp.report import Report

__all__ = ("SECTIONS", "render_text")


def tabulate(rows: Any, headers: Any = (), tablefmt: str = "simple") -> str:
    """
    A table, as tabulate's "simple" (with *headers*) or "plain" formats lay
    it out: integer columns right-aligned, text left-aligned, two spaces
    between columns. Written out here because tabulate's per-cell type
    sniffing made a report with thousands of rows take seconds; the small
    key/value tables still go through tabulate.
    """
    if not headers:
        # Loaded here: JSON, HTML and Prometheus reports never need it.
        import tabulate as _tabulate

        return _tabulate.tabulate(rows, tablefmt=tablefmt)
    rows = [list(r) for r in rows]
    ncols = len(headers)
    numeric = [
        bool(rows)
        and all(isinstance(r[i], int) and not isinstance(r[i], bool) for r in rows)
        for i in range(ncols)
    ]
    text = [[str(c) for c in r] for r in rows]
    widths = [
        max([len(h) + 2] + [len(r[i]) for r in text]) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric)
        ).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in text]
    return "\n".join(out)


def _image_text(image: KImage) -> str:
    hp = image.hotplug
    facts = [
        ("image", f"{image.symbol} = {image.address:#x}"),
        ("loaded by", "kexec_file_load" if image.file_mode else "kexec_load"),
        ("layout", str(hp.layout)),
        ("hotplug support", f"{'yes' if hp.support else 'no'} ({hp.support_source})"),
        ("start", _hex(image.start)),
        ("nr_segments", str(image.nr_segments)),
        (
            "elfcorehdr",
            f"segment {image.elfcorehdr_index} ({image.elfcorehdr_source})"
            if image.elfcorehdr_index is not None
            else f"none ({image.elfcorehdr_source})",
        ),
    ]
    if hp.elfcorehdr_index is not None:
        facts.append(("elfcorehdr_index", str(hp.elfcorehdr_index)))
    if hp.elfcorehdr_updated is not None:
        facts.append(("elfcorehdr_updated", str(hp.elfcorehdr_updated).lower()))
    if hp.hp_action is not None:
        facts.append(("hp_action", f"{hp.hp_action} ({hp.hp_action_name})"))
    if hp.rfc is not None:
        facts.append(
            (
                "arch.hp",
                ", ".join(f"{k}={v:#x}" for k, v in dataclasses.asdict(hp.rfc).items()),
            )
        )
    segs = tabulate(
        [
            (
                s.index,
                str(s.role),
                _hex(s.mem),
                _hex(s.end),
                _hex(s.memsz),
                _hex(s.bufsz),
            )
            for s in image.segments
        ],
        headers=("#", "role", "mem", "end", "memsz", "bufsz"),
    )
    return tabulate(facts, tablefmt="plain") + "\n\n" + segs


def _note_names(state: Optional[MachineState]) -> Dict[int, str]:
    """Physical address -> what lives there (cpuN crash_notes, vmcoreinfo)."""
    if state is None:
        return {}
    names = {
        n.paddr: f"cpu{n.cpu} crash_notes"
        for n in state.cpu_notes
        if n.paddr is not None
    }
    if state.vmcoreinfo is not None:
        names[state.vmcoreinfo[0]] = "vmcoreinfo"
    return names


def _elfcorehdr_text(read: ElfCoreHdrRead, state: Optional[MachineState]) -> str:
    if read.header is None:
        return "(no decodable elfcorehdr)"
    hdr = read.header
    names = _note_names(state)
    text = state.kernel_text if state is not None else None
    rows: List[Sequence[Any]] = []
    for n in hdr.notes:
        rows.append(
            (
                n.index,
                "PT_NOTE",
                _hex(n.paddr),
                "-",
                _hex(n.size),
                names.get(n.paddr, "?"),
            )
        )
    for ld in hdr.loads:
        if text is not None and ld.vaddr == text.vaddr:
            what = "kernel text"
        elif ld.offset != ld.paddr:
            what = f"RAM, data at p_offset {ld.offset:#x}"
        else:
            what = "RAM"
        rows.append(
            (ld.index, "PT_LOAD", _hex(ld.paddr), _hex(ld.vaddr), _hex(ld.size), what)
        )
    rows.sort(key=lambda r: r[0])
    return (
        f"e_phnum {hdr.phnum}, {hdr.used} of {hdr.capacity} bytes used\n\n"
        + tabulate(rows, headers=("#", "type", "paddr", "vaddr", "size", "what"))
    )


def _purgatory_text(purgatory: Purgatory, digest: Optional[DigestVerdict]) -> str:
    """The purgatory section of the text report."""
    p = purgatory
    facts = [
        ("source", str(p.source)),
        (
            "segment",
            f"{p.segment} at {_hex(p.segment_mem)}" if p.segment is not None else "-",
        ),
    ]
    if p.blob_size is not None:
        facts.append(("kexec_purgatory", f"{p.blob_size:#x} bytes"))
    if p.replay_start is not None:
        facts.append(("replayed entry", f"{p.replay_start:#x} ({p.replay_rule})"))
    if p.unread is not None:
        facts.append(("problem", f"{p.unread.kind}: {p.unread}"))
    facts.append(("sha regions at", _hex(p.regions_address)))
    facts.append(
        (
            "digest at",
            f"{_hex(p.digest_address)}"
            + (f" ({p.digest_source})" if p.digest_source else ""),
        )
    )
    facts.append(("stored digest", p.stored_digest or "-"))
    if digest is not None:
        facts.append(
            (
                "computed digest",
                f"{digest.computed or '-'} ({digest.status}"
                + (f", {digest.reason}" if digest.reason else "")
                + ")",
            )
        )
    parts = [tabulate(facts, tablefmt="plain")]
    if p.regions:
        parts.append(
            tabulate(
                [
                    (
                        r.slot,
                        _hex(r.start),
                        _hex(r.len),
                        "-"
                        if r.segment is None
                        else r.segment
                        if r.exact
                        else f"{r.segment}*",
                        str(r.role) if r.role else "-",
                    )
                    for r in p.regions
                ],
                headers=("#", "start", "len", "segment", "role"),
            )
        )
    if p.regs is not None:
        names = regs_order(p.regs.layout.value)
        rows = [(n, _hex(getattr(p.regs, n))) for n in names]
        half = (len(rows) + 1) // 2
        paired = [
            a + (b if b else ("", ""))
            for a, b in zip(rows[:half], rows[half:] + [()] * (2 * half - len(rows)))
        ]
        parts.append(
            f"entry64_regs at {p.regs.address:#x} ({p.regs.layout})\n"
            + tabulate(paired, tablefmt="plain")
        )
    elif p.regs_unread:
        parts.append(f"entry64_regs: {p.regs_unread}")
    if p.variables:
        parts.append(
            "entry variables (kexec-tools purgatory)\n"
            + tabulate(
                [
                    (v.name, _hex(v.address), _hex(v.value), v.points_at)
                    for v in p.variables
                ],
                headers=("variable", "at", "value", "must be the start of"),
            )
        )
    elif p.variables_unread:
        parts.append(f"entry variables: {p.variables_unread}")
    if p.cmdline is not None:
        c = p.cmdline
        parts.append(
            f"command line at {_hex(c.address)}: "
            + (repr(c.text) if c.text is not None else f"({c.unread})")
        )
    return "\n\n".join(parts)


def _in_header(status: Optional[CpuStatus]) -> str:
    if status is None:
        return "-"
    return "yes" if status in (CpuStatus.NOTED, CpuStatus.STALE) else "no"


def _state_text(state: MachineState, analysis: Analysis, has_header: bool) -> str:
    """Two tables: CPUs with their note addresses, and memory header vs now."""
    cpu_rows = [
        [
            r.cpu,
            yes_no(r.present),
            yes_no(r.online),
            f"{r.crash_notes:#x}" if r.crash_notes is not None else "unknown",
            _in_header(r.status),
        ]
        for r in analysis.cpu_rows
    ]
    parts = [
        tabulate(
            cpu_rows, headers=["CPU", "present", "online", "crash_notes", "in header"]
        )
    ]
    mem_rows = [
        [
            f"{r.start:#x}",
            f"{r.end:#x}",
            mib(r.end - r.start + 1),
            yes_no(r.in_header) if has_header else "-",
            yes_no(r.ram_now),
            r.excluded or "",
            r.block or "",
            str(r.status or ""),
        ]
        for r in analysis.memory_rows
    ]
    parts.append(
        tabulate(
            mem_rows,
            headers=[
                "start",
                "end",
                "size",
                "in header",
                "RAM now",
                "excluded",
                "block",
                "status",
            ],
        )
    )
    if state.unknown:
        parts.append("unknown: " + "; ".join(f"{u.what}: {u}" for u in state.unknown))
    return "\n\n".join(parts)


def _findings_text(findings: Sequence[Finding], quiet: bool) -> str:
    shown = [f for f in findings if not quiet or f.severity > Severity.INFO]
    if not shown:
        return "(none)"
    return tabulate(
        [(str(f.severity), f.code, f.message) for f in shown],
        headers=("severity", "code", "message"),
    )


def render_text(
    report: Report, sections: Sequence[str] = SECTIONS, quiet: bool = False
) -> str:
    """The report as text; *quiet* prints only the verdict and problems."""
    parts = []
    facts, analysis = report.facts, report.analysis
    if not quiet:
        parts.append(f"drgn-crashhp: {facts.target}")
        if "image" in sections and facts.image is not None:
            parts.append("== crash image ==\n" + _image_text(facts.image))
        if "elfcorehdr" in sections and facts.elfcorehdr is not None:
            parts.append(
                "== elfcorehdr ==\n" + _elfcorehdr_text(facts.elfcorehdr, facts.state)
            )
        if "purgatory" in sections and facts.purgatory is not None:
            parts.append(
                "== purgatory ==\n" + _purgatory_text(facts.purgatory, analysis.digest)
            )
        if "state" in sections:
            read = facts.elfcorehdr
            has_header = facts.image is not None and bool(read and read.header)
            parts.append(
                "== state now ==\n" + _state_text(facts.state, analysis, has_header)
            )
    if "findings" in sections or quiet:
        parts.append("== findings ==\n" + _findings_text(report.findings, quiet))
    parts.append(f"verdict: {report.verdict} (exit status {report.exit_status})")
    return "\n\n".join(parts) + "\n"
