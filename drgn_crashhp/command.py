"""
drgn commands
-------------

``%crashhp`` in the drgn REPL, and ``crashhp`` in drgn's crash compatibility
mode (``drgn-crash``, ``%crash crashhp``). Loaded through the ``drgn.plugins``
entry point; a thin shell over :func:`drgn_crashhp.report.build_report`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from drgn import Program
from drgn.commands import argument, command

from drgn_crashhp.report import SECTIONS, build_report, render_text, report_json

__all__ = ()

_ARGUMENTS = (
    argument("--json", action="store_true", help="print JSON"),
    argument("--no-digest", action="store_true",
             help="skip recomputing the purgatory digest (fast look)"),
    argument("--image", choices=("crash", "kexec"), default="crash",
             help="kexec_crash_image (default) or kexec_image"),
    argument("-q", "--quiet", action="store_true",
             help="print only the verdict and problems"),
    argument("--section", action="append", choices=SECTIONS,
             help="sections to print (default: all); may be repeated"),
)

_LONG = """
Check that the loaded kdump crash kernel would boot and capture every CPU and
every byte of RAM. Sections: "image" lists the segments (role, physical mem,
inclusive end, memsz, bufsz); "elfcorehdr" lists its program headers (index,
type, physical address, virtual address, size); "purgatory" the hashed regions,
stored and recomputed digest and entry registers; "state" the CPUs and RAM now
against the header; "findings" each finding with severity, stable code and
message (codes are listed in the README). The verdict line gives the exit
status drgn-crashhp would return: 0 healthy, 1 a problem, 3 cannot verify.
"""


def _run(prog: Program, args: argparse.Namespace) -> int:
    report = build_report(
        prog,
        symbol="kexec_image" if args.image == "kexec" else "kexec_crash_image",
        digest=not args.no_digest,
    )
    if args.json:
        json.dump(report_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(report, args.section or SECTIONS, args.quiet))
    return report.exit_status


@command(
    description="check the loaded crash kernel against CPU/memory hotplug state",
    long_description=_LONG,
    arguments=_ARGUMENTS,
)
def _cmd_crashhp(prog: Program, name: str, args: argparse.Namespace, **kwargs: Any
                 ) -> int:
    return _run(prog, args)


try:
    # drgn >= 0.0.33: crash compatibility mode (drgn-crash, %crash).
    from drgn.commands._crash.common import crash_command
except ImportError:  # pragma: no cover - older drgn without crash mode
    pass
else:

    @crash_command(
        name="crashhp",
        description="check the loaded crash kernel against CPU/memory hotplug "
        "state",
        long_description=_LONG,
        arguments=_ARGUMENTS,
    )
    def _crash_cmd_crashhp(
        prog: Program, name: str, args: argparse.Namespace, **kwargs: Any
    ) -> int:
        return _run(prog, args)
