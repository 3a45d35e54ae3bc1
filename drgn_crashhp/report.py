"""
Report
------

One report, many targets: :func:`build_report` runs the readers and checks
on any drgn :class:`~drgn.Program` (vmcore, /proc/kcore, QEMU guest) and
returns a frozen :class:`Report`; :func:`render_text` and :func:`report_json`
render the same data as text (tabulate) or JSON.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from drgn import Program
from tabulate import tabulate

from drgn_crashhp.compare import check_state, render_state
from drgn_crashhp.elfcorehdr import (
    ElfCoreHdrRead,
    check_elfcorehdr,
    read_elfcorehdr,
)
from drgn_crashhp.findings import (
    Finding,
    Severity,
    exit_status,
    finding,
    sorted_findings,
)
from drgn_crashhp.kimage import (
    KImage,
    MissingInfo,
    check_image,
    read_kimage,
    refine_roles,
)
from drgn_crashhp.physmem import Unreadable
from drgn_crashhp.purgatory import (
    DigestResult,
    Purgatory,
    check_purgatory,
    read_purgatory,
    render_purgatory,
    verify_digest,
)
from drgn_crashhp.state import MachineState, read_state
from drgn_crashhp.vmcore import DumpHeaders, check_dump, read_dump_headers

__all__ = (
    "SCHEMA_VERSION",
    "SECTIONS",
    "Report",
    "build_report",
    "jsonable",
    "render_text",
    "report_json",
)

#: Version of the JSON document; bump on any incompatible change.
SCHEMA_VERSION = 1

SECTIONS = ("image", "elfcorehdr", "purgatory", "state", "findings")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Report:
    target: str
    image: Optional[KImage]
    elfcorehdr: Optional[ElfCoreHdrRead]
    findings: Tuple[Finding, ...]
    purgatory: Optional[Purgatory] = None
    #: None when the digest was not recomputed (--no-digest) or not located.
    digest: Optional[DigestResult] = None
    state: Optional[MachineState] = None
    #: The dump's own program headers, when the target is a kdump vmcore.
    dump: Optional[DumpHeaders] = None

    @property
    def exit_status(self) -> int:
        return exit_status(self.findings)

    @property
    def verdict(self) -> str:
        return {0: "OK", 1: "PROBLEM", 3: "CANNOT VERIFY"}[self.exit_status]


def _target(prog: Program) -> str:
    try:
        path = prog.core_dump_path
    except (AttributeError, ValueError):
        path = None
    return path or "live kernel"


def build_report(
    prog: Program,
    *,
    symbol: str = "kexec_crash_image",
    digest: bool = True,
    progress: Optional[Progress] = None,
    target: Optional[str] = None,
) -> Report:
    """
    Read the loaded image and the machine, and check one against the other.

    :param symbol: ``kexec_crash_image`` or ``kexec_image``.
    :param digest: Recompute the purgatory digest (reads every hashed byte).
    :param progress: Called as ``progress(done, total)`` during digest work.
    :param target: How to name the target; by default the core dump path, or
        "live kernel".
    """
    target = target or _target(prog)
    state = read_state(prog)
    dump = read_dump_headers(prog, state.page_offset)
    findings: List[Finding] = check_dump(dump, state) if dump is not None else []

    def done(*more: Finding, **parts: Any) -> Report:
        return Report(target, findings=sorted_findings(findings + list(more)),
                      state=state, dump=dump, **parts)

    try:
        image = read_kimage(prog, symbol)
    except MissingInfo as e:
        return done(finding("CHP090", str(e)), image=None, elfcorehdr=None)
    except Unreadable as e:
        return done(finding("CHP002", f"{symbol} cannot be read: {e}",
                            address=e.address), image=None, elfcorehdr=None)
    if image is None:
        if symbol == "kexec_crash_image":
            f = finding("CHP001", "kexec_crash_image is NULL: no crash kernel is "
                        "loaded")
        else:
            f = finding("CHP006", f"{symbol} is NULL")
        return done(f, image=None, elfcorehdr=None)
    crashk = state.crashk_res if state.crashk_res and state.crashk_res[1] else None
    findings += check_image(image, crashk)
    hdr = read_elfcorehdr(prog, image)
    findings += check_elfcorehdr(image, hdr)
    findings += check_state(image, hdr.header, hdr.data or None, state)
    purgatory = read_purgatory(prog, image)
    image = refine_roles(
        image,
        purgatory.regs.rip if purgatory.regs is not None else None,
        [ld.offset for ld in hdr.header.loads if ld.offset != ld.paddr]
        if hdr.header is not None else (),
    )
    result = verify_digest(prog, purgatory, progress) if digest else None
    findings += check_purgatory(image, purgatory, result)
    return done(image=image, elfcorehdr=hdr, purgatory=purgatory, digest=result)


# -- JSON -------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Plain JSON data from frozen dataclasses, enums, tuples and mappings."""
    if isinstance(value, Finding):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.metadata.get("json", True):
                out[f.name] = jsonable(getattr(value, f.name))
        return out
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, (str, int)) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def report_json(report: Report) -> Dict[str, Any]:
    doc = {
        "schema": SCHEMA_VERSION,
        "tool": "drgn-crashhp",
        "target": report.target,
        "verdict": report.verdict,
        "exit_status": report.exit_status,
    }
    doc.update(jsonable(report))
    return doc


# -- text -------------------------------------------------------------------


def _hex(n: Optional[int]) -> str:
    return "-" if n is None else f"{n:#x}"


def _image_text(image: KImage) -> str:
    hp = image.hotplug
    facts = [
        ("image", f"{image.symbol} = {image.address:#x}"),
        ("loaded by", "kexec_file_load" if image.file_mode else "kexec_load"),
        ("layout", str(hp.layout)),
        ("hotplug support", f"{'yes' if hp.support else 'no'} ({hp.support_source})"),
        ("start", _hex(image.start)),
        ("nr_segments", str(image.nr_segments)),
        ("elfcorehdr", f"segment {image.elfcorehdr_index} ({image.elfcorehdr_source})"
         if image.elfcorehdr_index is not None
         else f"none ({image.elfcorehdr_source})"),
    ]
    if hp.elfcorehdr_index is not None:
        facts.append(("elfcorehdr_index", str(hp.elfcorehdr_index)))
    if hp.elfcorehdr_updated is not None:
        facts.append(("elfcorehdr_updated", str(hp.elfcorehdr_updated).lower()))
    if hp.hp_action is not None:
        facts.append(("hp_action", f"{hp.hp_action} ({hp.hp_action_name})"))
    if hp.rfc is not None:
        facts.append(("arch.hp", ", ".join(
            f"{k}={v:#x}" for k, v in dataclasses.asdict(hp.rfc).items())))
    segs = tabulate(
        [(s.index, str(s.role), _hex(s.mem), _hex(s.end), _hex(s.memsz),
          _hex(s.bufsz)) for s in image.segments],
        headers=("#", "role", "mem", "end", "memsz", "bufsz"),
    )
    return tabulate(facts, tablefmt="plain") + "\n\n" + segs


def _note_names(state: Optional[MachineState]) -> Dict[int, str]:
    """Physical address -> what lives there (cpuN crash_notes, vmcoreinfo)."""
    if state is None:
        return {}
    names = {n.paddr: f"cpu{n.cpu} crash_notes" for n in state.cpu_notes
             if n.paddr is not None}
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
        rows.append((n.index, "PT_NOTE", _hex(n.paddr), "-", _hex(n.size),
                     names.get(n.paddr, "?")))
    for ld in hdr.loads:
        if text is not None and ld.vaddr == text.vaddr:
            what = "kernel text"
        elif ld.offset != ld.paddr:
            what = f"RAM, data at p_offset {ld.offset:#x}"
        else:
            what = "RAM"
        rows.append((ld.index, "PT_LOAD", _hex(ld.paddr), _hex(ld.vaddr),
                     _hex(ld.size), what))
    rows.sort(key=lambda r: r[0])
    return (f"e_phnum {hdr.phnum}, {hdr.used} of {hdr.capacity} bytes used\n\n"
            + tabulate(rows, headers=("#", "type", "paddr", "vaddr", "size", "what")))


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
    if not quiet:
        parts.append(f"drgn-crashhp: {report.target}")
        if "image" in sections and report.image is not None:
            parts.append("== crash image ==\n" + _image_text(report.image))
        if "elfcorehdr" in sections and report.elfcorehdr is not None:
            parts.append("== elfcorehdr ==\n"
                         + _elfcorehdr_text(report.elfcorehdr, report.state))
        if "purgatory" in sections and report.purgatory is not None:
            parts.append("== purgatory ==\n"
                         + render_purgatory(report.purgatory, report.digest))
        if "state" in sections and report.state is not None:
            hdr = report.elfcorehdr.header if report.elfcorehdr else None
            parts.append("== state now ==\n" + render_state(report.state, hdr))
    if "findings" in sections or quiet:
        parts.append("== findings ==\n" + _findings_text(report.findings, quiet))
    parts.append(f"verdict: {report.verdict} (exit status {report.exit_status})")
    return "\n\n".join(parts) + "\n"
