#!/usr/bin/env python3
"""
BTF + kallsyms against DWARF on the same dump: the full report's time in each
mode, and what opening in BTF mode costs.

    python3 tests/bench/btf_bench.py --vmlinux VMLINUX DUMP [DUMP...] [--runs 5]
    python3 tests/bench/btf_bench.py --btf-file /sys/kernel/btf/vmlinux

Each mode runs in a fresh process (``python3 -c``: open the dump, load debug
info, build the report and its JSON), interleaved, after one untimed warm-up;
the median of --runs is printed with the BTF/DWARF ratio (issue 13's target:
at most 1.5). The open cost is split in-process into the BTF name index
(``BTF()``), kallsyms (drgn's loader) and the rest. ``--btf-file`` only times
opening a BTF blob. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

_PRELUDE = (
    "import sys, drgn; from drgn_crashhp import build_report, report_json; "
    "p = drgn.Program(); p.set_core_dump(sys.argv[1]); "
)
MODES = {
    "dwarf": _PRELUDE
    + ("p.load_debug_info([sys.argv[2]]); report_json(build_report(p))"),
    "btf": _PRELUDE
    + (
        "from drgn_crashhp.debuginfo import load_btf_debuginfo; "
        "load_btf_debuginfo(p); report_json(build_report(p))"
    ),
}


def run(code: str, dump: str, vmlinux: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, dump, vmlinux],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    return time.perf_counter() - t0


def open_cost(dump: str) -> Dict[str, float]:
    import drgn

    from drgn_crashhp.debuginfo import find_btf
    from drgn_crashhp.debuginfo.btf import BTF
    from drgn_crashhp.debuginfo.symbols import kallsyms

    prog = drgn.Program()
    prog.set_core_dump(dump)
    t0 = time.perf_counter()
    index = kallsyms(prog)
    t1 = time.perf_counter()
    btf, _ = find_btf(prog, None, index)
    t2 = time.perf_counter()
    BTF(btf.data)
    t3 = time.perf_counter()
    return {
        "kallsyms_s": t1 - t0,
        "btf_read_and_index_s": t2 - t1,
        "btf_index_only_s": t3 - t2,
        "types": len(btf),
        "btf_bytes": len(btf.data),
    }


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("dumps", nargs="*")
    p.add_argument("--vmlinux", help="the dumps' vmlinux with DWARF")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--btf-file", help="only time opening this BTF blob")
    args = p.parse_args(argv)
    if args.btf_file:
        from drgn_crashhp.debuginfo import read_btf_file

        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            btf = read_btf_file(args.btf_file)
            times.append(time.perf_counter() - t0)
        print(
            f"{args.btf_file}: {len(btf.data)} bytes, {len(btf)} types, open "
            f"(read + name index) median {statistics.median(times):.3f} s"
        )
        return 0
    if not args.dumps or not args.vmlinux:
        p.error("give --vmlinux and at least one dump, or --btf-file")
    worst = 0.0
    for dump in args.dumps:
        for code in MODES.values():
            run(code, dump, args.vmlinux)  # warm-up
        times: Dict[str, List[float]] = {m: [] for m in MODES}
        for _ in range(args.runs):
            for mode, code in MODES.items():
                times[mode].append(run(code, dump, args.vmlinux))
        med = {m: statistics.median(t) for m, t in times.items()}
        ratio = med["btf"] / med["dwarf"]
        worst = max(worst, ratio)
        cost = open_cost(dump)
        print(
            f"{Path(dump).name}: DWARF {med['dwarf']:.2f} s, BTF+kallsyms "
            f"{med['btf']:.2f} s, ratio {ratio:.2f}; BTF open: kallsyms "
            f"{cost['kallsyms_s']:.2f} s, BTF read + name index "
            f"{cost['btf_read_and_index_s']:.2f} s (index alone "
            f"{cost['btf_index_only_s']:.2f} s for {cost['types']} types, "
            f"{cost['btf_bytes'] / 1e6:.1f} MB)",
            flush=True,
        )
    verdict = "ok" if worst <= 1.5 else "MISSED"
    print(f"worst ratio {worst:.2f} (target <= 1.5: {verdict})")
    return 0 if worst <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
