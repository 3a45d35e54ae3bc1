#!/usr/bin/env python3
"""
Digest verification throughput: drgn-crashhp's :func:`hash_regions` (drgn
physical reads through ``physmem.iter_phys``, streamed into hashlib) against a
plain loop that reads the same physical bytes straight from the dump file
(PT_LOAD offsets) into hashlib, in the same run.

    python3 tests/bench/digest_bench.py [SCENARIO|DUMP VMLINUX] [--repeat N]

Without arguments it uses the largest real fixture under vmcores/ whose
purgatory regions are in the dump. Prints both throughputs (best of N) and
their ratio; both sides must compute the same digest. Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

import drgn
from elftools.elf.elffile import ELFFile

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from drgn_crashhp.facts import Purgatory  # noqa: E402
from drgn_crashhp.read.digest import hash_regions  # noqa: E402
from drgn_crashhp.read.image import read_kimage  # noqa: E402
from drgn_crashhp.read.physmem import CHUNK  # noqa: E402
from drgn_crashhp.read.purgatory import read_purgatory  # noqa: E402


def _unpack():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "vmcores_unpack", ROOT / "vmcores" / "unpack.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _program(dump: Path, vmlinux: Path) -> drgn.Program:
    prog = drgn.Program()
    prog.set_core_dump(str(dump))
    prog.load_debug_info([str(vmlinux)])
    return prog


def _pick(args: argparse.Namespace) -> Tuple[str, Path, Path]:
    if len(args.target) == 2:
        return args.target[0], Path(args.target[0]), Path(args.target[1])
    unpack = _unpack()
    names = list(args.target) or [
        n
        for n, t in unpack.scenarios().items()
        if t.get("expected", {}).get("digest") in ("match", "mismatch")
    ]
    if not names:
        sys.exit("no fixture with a verifiable digest; pass DUMP VMLINUX")
    name = max(names, key=lambda n: unpack.dump_path(n).stat().st_size)
    return name, unpack.dump_path(name), unpack.vmlinux_path()


def _file_ranges(dump: Path) -> List[Tuple[int, int, int]]:
    """(paddr, filesz, file offset) of every PT_LOAD."""
    with open(dump, "rb") as f:
        return [
            (p["p_paddr"], p["p_filesz"], p["p_offset"])
            for p in ELFFile(f).iter_segments()
            if p["p_type"] == "PT_LOAD"
        ]


def _plain(
    dump: Path, loads: List[Tuple[int, int, int]], regions: List[Tuple[int, int]]
) -> str:
    """Read-plus-hashlib over the same physical bytes, CHUNK at a time."""
    sha = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(dump, "rb", buffering=0) as f:
        for start, length in regions:
            at, end = start, start + length
            while at < end:
                load = next((ld for ld in loads if ld[0] <= at < ld[0] + ld[1]), None)
                if load is None:
                    raise SystemExit(f"{at:#x} is not in the dump file")
                n = min(CHUNK, end - at, load[0] + load[1] - at)
                f.seek(load[2] + at - load[0])
                got = f.readinto(view[:n])
                assert got == n
                sha.update(view[:n])
                at += n
    return sha.hexdigest()


def _best(fn, repeat: int) -> Tuple[float, object]:  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("target", nargs="*", help="SCENARIO, or DUMP VMLINUX")
    p.add_argument("--repeat", type=int, default=10, help="runs per side (best of)")
    args = p.parse_args(argv)
    label, dump, vmlinux = _pick(args)
    prog = _program(dump, vmlinux)
    image = read_kimage(prog)
    if image is None:
        sys.exit("no crash image in this dump")
    purg: Purgatory = read_purgatory(prog, image)
    regions = [(r.start, r.len) for r in purg.regions]
    total = sum(n for _, n in regions)
    if purg.unread is not None or not total:
        sys.exit(f"nothing to hash: {purg.unread or 'no regions'}")
    loads = _file_ranges(dump)
    t_tool, result = _best(lambda: hash_regions(prog, purg), args.repeat)
    t_plain, plain = _best(lambda: _plain(dump, loads, regions), args.repeat)
    assert result.computed is not None, result.reason  # type: ignore[attr-defined]
    if result.computed != plain:  # type: ignore[attr-defined]
        sys.exit(f"digests differ: hash_regions {result.computed}, plain {plain}")  # type: ignore[attr-defined]
    mib = total / (1 << 20)
    print(f"target          {label} ({dump})")
    print(
        f"regions         {len(regions)}, {total:#x} bytes ({mib:.1f} MiB), "
        f"digest {plain[:16]}... (stored {purg.stored_digest[:16]}...)"
    )
    print(f"hash_regions    {t_tool * 1e3:8.2f} ms  {mib / t_tool:8.1f} MiB/s")
    print(f"read+hashlib    {t_plain * 1e3:8.2f} ms  {mib / t_plain:8.1f} MiB/s")
    print(
        f"ratio           {t_plain / t_tool:.2f} of the plain loop's throughput "
        f"(best of {args.repeat}; target >= 0.9 and >= 1 GB/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
