#!/usr/bin/env python3
"""
Batch triage: run drgn-crashhp over many vmcores in parallel processes.

    python3 contrib/batch_triage.py DIR_OR_FILES... [-s VMLINUX] [-j N]
        [--jsonl OUT] [--no-digest]

Prints one JSON line per dump (to --jsonl, default stdout) and a summary
table on stderr: which dumps would have hung in purgatory, which miss memory
or CPUs, which cannot be verified. Every file in a directory that starts like
an ELF core file or a kdump file is taken; the rest (vmlinux, JSON) is skipped.
Exit status: the worst of the dumps' statuses (0, 1, 3), 2 if none was found.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from tabulate import tabulate

HANG = {"CHP020", "CHP023", "CHP024"}
MISSING_MEMORY = {"CHP050", "CHP051", "CHP052", "CHP070"}
MISSING_CPUS = {"CHP040", "CHP042"}


def is_dump(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError:
        return False
    elf_core = head[:4] == b"\x7fELF" and int.from_bytes(head[16:18], "little") == 4
    return elf_core or head[:8] in (b"KDUMP   ", b"makedump")


def find_dumps(paths: Iterable[str]) -> List[Path]:
    out: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(c for c in p.iterdir() if c.is_file() and is_dump(c))
        else:
            out.append(p)
    return out


def triage(path: str, symbols: Sequence[str], digest: bool) -> Dict[str, Any]:
    """Run in a worker process: one dump, one JSON document."""
    from drgn_crashhp import TargetError, open_program
    from drgn_crashhp.report import build_report, report_json

    try:
        prog = open_program(core=path, symbols=symbols,
                            default_symbols=not symbols)
    except TargetError as e:
        return {"dump": path, "verdict": "ERROR", "exit_status": 2,
                "error": str(e), "findings": []}
    doc = report_json(build_report(prog, digest=digest))
    doc["dump"] = path
    return doc


def summary_row(doc: Dict[str, Any]) -> List[Any]:
    codes = {f["code"] for f in doc.get("findings", [])
             if f["severity"] in ("error", "unverified")}

    def flag(group: set) -> str:
        return ",".join(sorted(codes & group)) or "-"

    return [os.path.basename(doc["dump"]), doc["verdict"], flag(HANG),
            flag(MISSING_MEMORY), flag(MISSING_CPUS),
            ",".join(sorted(c for c in codes if c not in HANG | MISSING_MEMORY
                            | MISSING_CPUS)) or "-"]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("paths", nargs="+", help="vmcore files or directories")
    p.add_argument("-s", "--symbols", action="append", default=[],
                   help="vmlinux with debug info (else drgn's default search)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--jsonl", help="write JSON lines here instead of stdout")
    p.add_argument("--no-digest", action="store_true")
    args = p.parse_args(argv)
    dumps = find_dumps(args.paths)
    if not dumps:
        print("batch_triage: no dumps found", file=sys.stderr)
        return 2
    docs = []
    with contextlib.ExitStack() as stack:
        out = (stack.enter_context(open(args.jsonl, "w")) if args.jsonl
               else sys.stdout)
        pool = stack.enter_context(
            concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs))
        futures = [pool.submit(triage, str(d), args.symbols, not args.no_digest)
                   for d in dumps]
        for fut in futures:
            doc = fut.result()
            docs.append(doc)
            out.write(json.dumps(doc, sort_keys=True) + "\n")
    print(tabulate([summary_row(d) for d in docs],
                   headers=("dump", "verdict", "purgatory hang", "missing memory",
                            "missing CPUs", "other problems")), file=sys.stderr)
    statuses = [d["exit_status"] for d in docs]
    return 1 if 1 in statuses else 2 if 2 in statuses else max(statuses)


if __name__ == "__main__":
    sys.exit(main())
