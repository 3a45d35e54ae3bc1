"""
Report
------

One report, many targets: :func:`build_report` reads the facts once
(:func:`drgn_crashhp.read.read_facts`), derives what the checks and the
renderers share once (:func:`drgn_crashhp.analysis.analyze`), runs every
check on both (:func:`drgn_crashhp.checks.run_checks`) and returns a frozen
:class:`Report`, which :mod:`drgn_crashhp.render` turns into text or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from drgn import Program

from drgn_crashhp.analysis import Analysis, analyze
from drgn_crashhp.checks import run_checks
from drgn_crashhp.facts import Facts
from drgn_crashhp.findings import Finding, exit_status, sorted_findings
from drgn_crashhp.read import read_facts
from drgn_crashhp.read.digest import Progress

__all__ = ("Report", "build_report", "report_from_facts")


@dataclass(frozen=True)
class Report:
    """The facts of one target, what was derived from them, and the findings."""

    facts: Facts
    analysis: Analysis
    findings: Tuple[Finding, ...]

    @property
    def exit_status(self) -> int:
        return exit_status(self.findings)

    @property
    def verdict(self) -> str:
        return {0: "OK", 1: "PROBLEM", 3: "CANNOT VERIFY"}[self.exit_status]


def report_from_facts(facts: Facts) -> Report:
    """Check *facts* (no drgn calls)."""
    analysis = analyze(facts)
    return Report(facts, analysis, sorted_findings(run_checks(facts, analysis)))


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
