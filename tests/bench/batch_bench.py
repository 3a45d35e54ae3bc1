#!/usr/bin/env python3
"""
Throughput of contrib/batch_triage.py over a directory of many vmcores,
with and without its per-build debug-info reuse, and against one
``drgn-crashhp --json`` process per dump (a shell loop on every core).

    python3 tests/bench/batch_bench.py [--count 54] [--rounds 3] [-j N]
        [--dump FILE... --vmlinux FILE] [--no-digest]

Without --dump it hard-links the unpacked fixtures (vmcores/unpack.py) into
``${XDG_CACHE_HOME:-~/.cache}/drgn-crashhp/bench/batch-N/`` until there are
--count dumps; with --dump it links those files (e.g. the distribution dumps
that distro_bench.py leaves in the bench cache). The variants run in
interleaved rounds; it prints the median dumps per second of each and checks
that every variant gave every dump the same verdict and finding codes.
Not a test.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
TRIAGE = ROOT / "contrib" / "batch_triage.py"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "drgn-crashhp" / "bench"


def fixtures() -> Tuple[List[Path], Path]:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "vmcores_unpack", ROOT / "vmcores" / "unpack.py"
    )
    assert spec is not None and spec.loader is not None
    unpack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unpack)
    d = Path(unpack.unpack())
    return sorted(d.glob("*.elf")), Path(unpack.vmlinux_path())


def link_dir(dumps: List[Path], count: int) -> Path:
    """*count* hard links (symlinks across file systems) cycling over *dumps*."""
    dest = cache_dir() / f"batch-{count}"
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        old.unlink()
    for i in range(count):
        src = dumps[i % len(dumps)]
        link = dest / f"{i:04d}-{src.name}"
        try:
            os.link(src, link)
        except OSError:
            link.symlink_to(src.resolve())
    return dest


def env() -> Dict[str, str]:
    """The checkout's package first, its bytecode cached (in the bench cache)
    like an installed package's, not compiled again in every process."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH")]))
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPYCACHEPREFIX"] = str(cache_dir() / "pycache")
    return e


def run_triage(
    directory: Path, vmlinux: Path, jobs: int, extra: List[str]
) -> Tuple[float, Dict[str, Tuple[str, Tuple[str, ...]]]]:
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(TRIAGE), str(directory), "-s", str(vmlinux)]
            + ["-j", str(jobs), "--jsonl", out.name]
            + extra,
            capture_output=True,
            text=True,
            env=env(),
        )
        elapsed = time.perf_counter() - t0
        if "Traceback" in proc.stderr or proc.returncode not in (0, 1, 3):
            sys.exit(f"batch_triage failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        docs = [json.loads(line) for line in Path(out.name).read_text().splitlines()]
    return elapsed, {d["dump"]: verdict(d) for d in docs}


def run_cli(
    directory: Path, vmlinux: Path, jobs: int, extra: List[str]
) -> Tuple[float, Dict[str, Tuple[str, Tuple[str, ...]]]]:
    def one(dump: Path) -> Tuple[str, Tuple[str, Tuple[str, ...]]]:
        argv = [sys.executable, "-m", "drgn_crashhp", "-c", str(dump)]
        argv += ["-s", str(vmlinux), "--json"] + extra
        proc = subprocess.run(argv, capture_output=True, text=True, env=env())
        if proc.returncode not in (0, 1, 3):
            sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
        return str(dump), verdict(json.loads(proc.stdout))

    dumps = sorted(directory.iterdir())
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        results = dict(pool.map(one, dumps))
    return time.perf_counter() - t0, results


def verdict(doc: Dict) -> Tuple[str, Tuple[str, ...]]:
    return doc["verdict"], tuple(sorted({f["code"] for f in doc["findings"]}))


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--count", type=int, default=54)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--dump", type=Path, nargs="+", help="dumps to link")
    p.add_argument("--vmlinux", type=Path, help="debug file of --dump")
    p.add_argument("--no-digest", action="store_true")
    args = p.parse_args(argv)
    if bool(args.dump) != bool(args.vmlinux):
        p.error("--dump and --vmlinux go together")
    dumps, vmlinux = (args.dump, args.vmlinux) if args.dump else fixtures()
    directory = link_dir(dumps, args.count)
    extra = ["--no-digest"] if args.no_digest else []
    variants = {
        "batch_triage (reuse)": lambda: run_triage(
            directory, vmlinux, args.jobs, extra
        ),
        "batch_triage --no-reuse": lambda: run_triage(
            directory, vmlinux, args.jobs, extra + ["--no-reuse"]
        ),
        "one CLI process per dump": lambda: run_cli(
            directory, vmlinux, args.jobs, extra
        ),
    }
    names = list(variants)
    times: Dict[str, List[float]] = {n: [] for n in names}
    verdicts: Dict[str, Dict[str, Tuple[str, Tuple[str, ...]]]] = {}
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            elapsed, verdicts[name] = variants[name]()
            times[name].append(elapsed)
            print(f"round {r + 1} {name}: {elapsed:.1f} s", file=sys.stderr, flush=True)
    ref = verdicts[names[0]]
    for name in names[1:]:
        if verdicts[name] != ref:
            diff = [d for d in ref if verdicts[name].get(d) != ref[d]]
            sys.exit(f"{name} disagrees with {names[0]} on {diff[:5]}")
    print(
        f"{args.count} dumps ({len(dumps)} distinct, debug file {vmlinux.name}, "
        f"{vmlinux.stat().st_size / 1e6:.0f} MB), {args.jobs} jobs on "
        f"{os.cpu_count()} CPUs, median of {args.rounds} interleaved rounds; "
        "all variants gave the same verdicts and codes"
    )
    base = statistics.median(times[names[0]])
    for name in names:
        med = statistics.median(times[name])
        print(
            f"{name:28} {med:7.1f} s  {args.count / med:6.2f} dumps/s  "
            f"({med / base:.2f}x the reuse time)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
