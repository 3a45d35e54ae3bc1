"""
Run
---

What the options of :mod:`drgn_crashhp.options` do: build the report they ask
for (:func:`drgn_crashhp.report.build_report`) and print it in the format they
name. The ``drgn-crashhp`` command line and the ``crashhp`` drgn commands all
end here, so they print the same thing. The report and its renderers load on
first use.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Callable, Optional, TextIO

from drgn_crashhp.render import SECTIONS

if TYPE_CHECKING:
    from drgn import Program

    from drgn_crashhp.report import Report

__all__ = ("OutputError", "run")


class OutputError(Exception):
    """The report cannot be written as asked (one line; exit status 2)."""


def _render(report: Report, args: argparse.Namespace, out: TextIO) -> None:
    fmt = "json" if args.json else args.format
    if fmt == "text":
        from drgn_crashhp.render.text import render_text

        out.write(render_text(report, args.section or SECTIONS, args.quiet))
        return
    from drgn_crashhp.render.json import report_json

    doc = report_json(report)
    if fmt == "json":
        import json

        json.dump(doc, out, indent=2)
        out.write("\n")
    elif fmt == "html":
        from drgn_crashhp.render.html import render_html

        out.write(render_html(doc))
    else:
        from drgn_crashhp.render import prometheus

        try:
            if args.textfile:
                prometheus.write_prometheus_textfile(doc, args.textfile)
            else:
                out.write(prometheus.render_prometheus(doc))
        except ImportError as e:
            raise OutputError(
                "--format prometheus needs the prometheus-client package "
                "(pip install 'drgn-crashhp[prometheus]')"
            ) from e
        except OSError as e:
            raise OutputError(f"cannot write {args.textfile}: {e}") from e


def run(
    prog: Program,
    args: argparse.Namespace,
    *,
    out: Optional[TextIO] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    target: Optional[str] = None,
) -> Report:
    """
    Build the report *args* ask for and print it; return it.

    :raises OutputError: if the chosen format cannot be written.
    """
    from drgn_crashhp.report import build_report

    out = out or sys.stdout
    report = build_report(
        prog,
        symbol="kexec_image" if args.image == "kexec" else "kexec_crash_image",
        digest=not args.no_digest,
        progress=progress,
        target=target,
    )
    if progress is not None and hasattr(progress, "finish"):
        progress.finish()
    _render(report, args, out)
    out.flush()
    return report
