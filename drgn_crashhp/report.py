"""
Report
------

One report, many targets: :func:`build_report` reads the facts once
(:func:`drgn_crashhp.read.read_facts`), runs every check on them
(:func:`drgn_crashhp.checks.run_checks`) and returns a frozen
:class:`Report`, which :mod:`drgn_crashhp.render` turns into text or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from drgn import Program

from drgn_crashhp.checks import judge_digest, run_checks
from drgn_crashhp.facts import (
    DigestResult,
    DumpHeaders,
    ElfCoreHdrRead,
    Facts,
    KImage,
    MachineState,
    Purgatory,
)
from drgn_crashhp.findings import Finding, exit_status, sorted_findings
from drgn_crashhp.read import read_facts
from drgn_crashhp.read.digest import Progress

__all__ = ("Report", "build_report", "report_from_facts")


@dataclass(frozen=True)
class Report:
    """The facts of one target and the findings about them."""

    target: str
    image: Optional[KImage]
    elfcorehdr: Optional[ElfCoreHdrRead]
    findings: Tuple[Finding, ...]
    purgatory: Optional[Purgatory] = None
    #: None when the digest was not recomputed (--no-digest) or not located.
    digest: Optional[DigestResult] = None
    state: Optional[MachineState] = None
    #: The dump's own program headers, when the target is a dump file.
    dump: Optional[DumpHeaders] = None
    #: Where types and symbols came from: "dwarf" or "btf+kallsyms".
    debuginfo: str = "dwarf"

    @property
    def exit_status(self) -> int:
        return exit_status(self.findings)

    @property
    def verdict(self) -> str:
        return {0: "OK", 1: "PROBLEM", 3: "CANNOT VERIFY"}[self.exit_status]


def report_from_facts(facts: Facts) -> Report:
    """Check *facts* (no drgn calls)."""
    digest = None
    if facts.purgatory is not None and facts.digest is not None:
        digest = judge_digest(facts.purgatory, facts.digest)
    return Report(
        target=facts.target,
        image=facts.image,
        elfcorehdr=facts.elfcorehdr,
        findings=sorted_findings(run_checks(facts)),
        purgatory=facts.purgatory,
        digest=digest,
        state=facts.state,
        dump=facts.dump,
        debuginfo=facts.debuginfo,
    )


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
    return report_from_facts(
        read_facts(prog, symbol=symbol, digest=digest, progress=progress, target=target)
    )
