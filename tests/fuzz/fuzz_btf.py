#!/usr/bin/env python3
"""
Long fuzz run of the BTF reader and the BTF type/object finders
(drgn_crashhp/debuginfo; target in tests/support/btffuzz.py, a fixed subset runs in
CI as tests/test_btf_fuzz.py).

    nice -n 10 python3 tests/fuzz/fuzz_btf.py --inputs 100000 --json btf.json

Inputs are mutations (field writes, bit flips, cuts, splices) of real BTF
records (tests/seeds/btf-host-closure.bin.xz, cut from a running kernel's
/sys/kernel/btf/vmlinux) and of a synthetic blob with every BTF kind. Same
batching, figures and exit status as tests/fuzz/fuzz_long.py: inputs, distinct
outcomes, crashes (anything but a value or BTFError, or an input over the
time bound: must be 0) and the longest time one input took.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support import btffuzz  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "fuzz_long", ROOT / "tests" / "fuzz" / "fuzz_long.py"
)
assert _spec is not None and _spec.loader is not None
fuzz_long = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_long)


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument(
        "--inputs", type=int, default=100_000, help="inputs (default 100000)"
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
        help="stop after this long (default 120)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    r = fuzz_long.fuzz(
        btffuzz.TARGET, args.inputs, args.batch, args.seed, 60 * args.max_minutes
    )
    print(
        f"{r['target']}: {r['inputs']} inputs, {r['distinct_outcomes']} distinct "
        f"outcomes, {r['crashes']} crashes, max {r['max_time_per_input_s']:.4f}s "
        f"per input (CPU {r['max_cpu_time_per_input_s']:.4f}s; mean "
        f"{r['mean_time_per_input_ms']:.3f} ms), {r['wall_time_s']}s"
        + (" STOPPED EARLY (time limit)" if r["stopped_early"] else ""),
        flush=True,
    )
    for c in r["crash_examples"][:5]:
        print(f"  crash: {c['error'][:300]}\n    input: {c['input'][:200]}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1) + "\n")
    return 1 if r["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
