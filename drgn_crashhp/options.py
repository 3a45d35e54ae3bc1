"""
Options
-------

The one option table and output function shared by the ``drgn-crashhp``
command line and the drgn ``%crashhp`` command, so both take the same
options and print the same thing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Dict, Optional, Sequence, TextIO, Tuple

from drgn import Program

from drgn_crashhp.render.json import report_json
from drgn_crashhp.render.text import SECTIONS, render_text
from drgn_crashhp.report import Report, build_report

__all__ = ("OPTIONS", "add_options", "run")

#: ``(flags, argparse keyword arguments)`` of every report option.
OPTIONS: Sequence[Tuple[Tuple[str, ...], Dict[str, Any]]] = (
    (
        ("--image",),
        dict(
            choices=("crash", "kexec"),
            default="crash",
            help="kexec_crash_image (default) or kexec_image",
        ),
    ),
    (("--json",), dict(action="store_true", help="print JSON")),
    (
        ("--no-digest",),
        dict(
            action="store_true",
            help="skip recomputing the purgatory digest (fast look)",
        ),
    ),
    (
        ("--section",),
        dict(
            action="append",
            choices=SECTIONS,
            help="sections to print (default: all); may be repeated",
        ),
    ),
    (
        ("-q", "--quiet"),
        dict(action="store_true", help="print only the verdict and problems"),
    ),
)


def add_options(add: Callable[..., Any]) -> None:
    """Call *add* (``parser.add_argument`` or drgn's ``argument``) per option."""
    for flags, kwargs in OPTIONS:
        add(*flags, **kwargs)


def run(
    prog: Program,
    args: argparse.Namespace,
    *,
    out: Optional[TextIO] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    target: Optional[str] = None,
) -> Report:
    """Build the report *args* ask for and print it; return it."""
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
    if args.json:
        json.dump(report_json(report), out, indent=2)
        out.write("\n")
    else:
        out.write(render_text(report, args.section or SECTIONS, args.quiet))
    out.flush()
    return report
