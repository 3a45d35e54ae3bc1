#!/usr/bin/env python3
"""
Live kdump-readiness check for cron or a systemd timer.

    python3 contrib/kdump_ready.py [--json] [-s VMLINUX] [--no-digest]

Prints one line ("kdump-ready: OK ..." or the worst finding) or, with
--json, the full report; exits like drgn-crashhp: 0 ready, 1 a panic now
would not give a complete dump, 2 cannot run (no root, no debug info),
3 cannot verify. A systemd unit:

    [Service]
    Type=oneshot
    ExecStart=/usr/bin/python3 /path/to/contrib/kdump_ready.py
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from drgn_crashhp import TargetError, build_report, open_program, report_json
from drgn_crashhp.findings import EXIT_USAGE, Severity


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("-s", "--symbols", action="append", default=[])
    p.add_argument("-c", "--core", help="check a vmcore instead of the live kernel")
    p.add_argument("--no-digest", action="store_true")
    args = p.parse_args(argv)
    try:
        prog = open_program(core=args.core, symbols=args.symbols)
    except TargetError as e:
        print(f"kdump-ready: ERROR {e}")
        return EXIT_USAGE
    report = build_report(prog, digest=not args.no_digest)
    if args.json:
        print(json.dumps(report_json(report), sort_keys=True))
    else:
        problems = [f for f in report.findings if f.severity > Severity.WARNING]
        worst = f" {problems[0].code} {problems[0].message}" if problems else ""
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        print(f"kdump-ready: {report.verdict}{worst}{more}")
    return report.exit_status


if __name__ == "__main__":
    sys.exit(main())
