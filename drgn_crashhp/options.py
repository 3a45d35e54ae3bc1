"""
Options
-------

The one option table of the report, shared by the ``drgn-crashhp`` command
line and the ``crashhp`` drgn commands, so all of them take the same options.
Options only: importing it is cheap (drgn imports the plugin's command table at
every ``set_core_dump``), and what the options do is in :mod:`drgn_crashhp.run`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence, Tuple

from drgn_crashhp.render import FORMATS, SECTIONS

__all__ = ("OPTIONS", "add_options")

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
    (
        ("--format",),
        dict(
            choices=FORMATS,
            default="text",
            help="text (default), json, prometheus (node_exporter textfile "
            "metrics; needs prometheus-client) or html (one self-contained page)",
        ),
    ),
    (("--json",), dict(action="store_true", help="print JSON (--format json)")),
    (
        ("--textfile",),
        dict(
            metavar="PATH.prom",
            help="with --format prometheus: replace PATH.prom atomically instead "
            "of printing (node_exporter's textfile collector)",
        ),
    ),
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
