#!/usr/bin/env python3
"""
Long fuzz run of every decoder of target-controlled bytes (the targets in
tests/support/fuzzing.py; tests/test_fuzz.py runs a fixed subset in CI).

    nice -n 10 python3 tests/fuzz/fuzz_long.py                  # 100,000 each
    python3 tests/fuzz/fuzz_long.py --inputs 2000 --target parse_elfcorehdr_arg
    python3 tests/fuzz/fuzz_long.py --list

Inputs come from hypothesis in batches, each batch with its own seed
(``--seed`` + batch number), so a run is reproducible. Per target it prints
inputs, distinct outcomes (values and documented errors, numbers blanked),
crashes (undocumented exceptions, broken invariants, hangs: must be 0),
and the longest time one input took (wall clock, and CPU). Exit status 1
if anything crashed; ``--json FILE`` also writes the numbers, every
outcome's count and the first ten crashes with their inputs.

On a shared machine, split a target over processes with distinct seeds:

    nice -n 10 python3 tests/fuzz/fuzz_long.py --target NAME --inputs 34000 \
        --seed 3000000 --json a.json &
    nice -n 10 python3 tests/fuzz/fuzz_long.py --target NAME --inputs 34000 \
        --seed 4000000 --json b.json &
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.support.fuzzing import TARGETS, Crash, Target, outcome  # noqa: E402


def fuzz(
    target: Target, inputs: int, batch: int, base_seed: int, max_seconds: float
) -> Dict[str, Any]:
    outcomes: collections.Counter = collections.Counter()
    crashes: List[Dict[str, str]] = []
    stats = {"inputs": 0, "max_time": 0.0, "total_time": 0.0, "max_cpu": 0.0}
    started = time.monotonic()

    def one(value: Any) -> None:
        stats["inputs"] += 1
        cpu = time.process_time()
        try:
            label, elapsed = outcome(target, value)
        except Crash as e:
            crashes.append({"error": str(e)[:500], "input": repr(value)[:2000]})
            label, elapsed = "CRASH", 0.0
        outcomes[label] += 1
        stats["max_time"] = max(stats["max_time"], elapsed)
        # CPU time too: on a shared machine the wall-clock maximum is mostly
        # the scheduler's.
        stats["max_cpu"] = max(stats["max_cpu"], time.process_time() - cpu)
        stats["total_time"] += elapsed

    n = 0
    while stats["inputs"] < inputs and time.monotonic() - started < max_seconds:
        want = min(batch, inputs - stats["inputs"])
        run = seed(base_seed + n)(
            settings(
                max_examples=want,
                database=None,
                deadline=None,
                phases=(Phase.generate,),
                suppress_health_check=list(HealthCheck),
            )(given(target.strategy)(one))
        )
        run()
        n += 1
        print(
            f"  {target.name}: {stats['inputs']} inputs, {len(crashes)} crashes, "
            f"{time.monotonic() - started:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    return {
        "target": target.name,
        "inputs": stats["inputs"],
        "distinct_outcomes": len(outcomes),
        "crashes": len(crashes),
        "max_time_per_input_s": round(stats["max_time"], 4),
        "max_cpu_time_per_input_s": round(stats["max_cpu"], 4),
        "mean_time_per_input_ms": round(
            1000 * stats["total_time"] / max(stats["inputs"], 1), 3
        ),
        "wall_time_s": round(time.monotonic() - started, 1),
        "stopped_early": stats["inputs"] < inputs,
        "top_outcomes": outcomes.most_common(8),
        "outcomes": dict(outcomes),
        "crash_examples": crashes[:10],
    }


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument(
        "--inputs", type=int, default=100_000, help="inputs per target (default 100000)"
    )
    p.add_argument(
        "--target",
        action="append",
        choices=sorted(TARGETS),
        help="fuzz only this target; may be repeated",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the first batch")
    p.add_argument(
        "--batch",
        type=int,
        default=5000,
        help="inputs per hypothesis run (default 5000)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=120.0,
        help="stop a target after this long (default 120)",
    )
    p.add_argument("--json", metavar="FILE", help="also write results as JSON")
    p.add_argument("--list", action="store_true", help="list the targets")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(sorted(TARGETS)))
        return 0
    results = []
    for name in args.target or list(TARGETS):
        r = fuzz(
            TARGETS[name], args.inputs, args.batch, args.seed, 60 * args.max_minutes
        )
        results.append(r)
        print(
            f"{r['target']}: {r['inputs']} inputs, {r['distinct_outcomes']} "
            f"distinct outcomes, {r['crashes']} crashes, max "
            f"{r['max_time_per_input_s']:.4f}s per input (CPU "
            f"{r['max_cpu_time_per_input_s']:.4f}s; mean "
            f"{r['mean_time_per_input_ms']:.3f} ms), {r['wall_time_s']}s"
            + (" STOPPED EARLY (time limit)" if r["stopped_early"] else ""),
            flush=True,
        )
        for c in r["crash_examples"][:3]:
            print(f"  crash: {c['error']}\n    input: {c['input'][:300]}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 1 if any(r["crashes"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
