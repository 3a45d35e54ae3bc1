#!/usr/bin/env python3
"""
Scaling of the state check: a synthetic kernel (tests/support/synth.py) with N
possible (and present) CPUs and N "System RAM" ranges, a kernel-format
elfcorehdr describing all of them loaded in the crash region, then the full
report timed by phase: read the facts (image, elfcorehdr, machine state:
cpumasks, crash_notes, iomem walk), rebuild + every check, and render the
text (target: under 0.5 s at N = 8192). Compares N = 1024 with N = 8192.

    python3 tests/bench/scale_bench.py [--sizes 1024 8192] [--repeat 3]

Prints the best of --repeat for each size, per phase, and the ratio of the
totals (8x the input: linear is a ratio near 8, the target is <= 10).
Not a test: building the synthetic kernel is not timed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict

from drgn import Program

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from drgn_crashhp.read import read_facts  # noqa: E402
from drgn_crashhp.read.state import read_state  # noqa: E402
from drgn_crashhp.render.text import render_text  # noqa: E402
from drgn_crashhp.report import report_from_facts  # noqa: E402
from tests.support.synth import (  # noqa: E402
    Machine,
    Res,
    Seg,
    SynthKernel,
    default_iomem,
    elf_core_header,
    note,
    ram,
    text,
)

CRASHK = (0x2F000000, 0x3EFFFFFF)
ELF_MEM = 0x2F000000
PURG_MEM = 0x3E000000
GiB = 1 << 30


def machine(n: int) -> Machine:
    """N possible CPUs and N RAM ranges after the kernel's exclusions."""
    cpus = range(n)
    # default_iomem() gives 2 ranges after excluding the low 1 MiB and
    # crashk_res; add N - 2 ranges of 128 MiB above 4 GiB.
    extra = [
        (4 * GiB + i * GiB // 4, 4 * GiB + i * GiB // 4 + GiB // 8 - 1)
        for i in range(n - 2)
    ]
    ranges = [(0x100000, CRASHK[0] - 1), (CRASHK[1] + 1, 0x3FFDFFFF)] + extra
    probe = Machine()
    vmcoreinfo = SynthKernel(probe).vmcoreinfo_note_phys
    hdr = elf_core_header(
        [note(probe.crash_notes_phys(c)) for c in cpus]
        + [note(vmcoreinfo, 4132), text()]
        + [ram(s, e) for s, e in ranges]
    )
    memsz = (len(hdr) + 4095) // 4096 * 4096
    return Machine(
        nr_cpus=n,
        possible=cpus,
        present=cpus,
        online=cpus,
        iomem=default_iomem(CRASHK) + [Res("System RAM", s, e) for s, e in extra],
        crashk=CRASHK,
        segments=[Seg(ELF_MEM, memsz, hdr), Seg(PURG_MEM, 0x5000, b"\xcc" * 0x100)],
        start=PURG_MEM + 0x40,
        elfcorehdr_index=0,
        elf_load_addr=ELF_MEM,
    )


def one_pass(prog: Program) -> Dict[str, float]:
    """Time each phase of one full report; assert the verdict."""
    times: Dict[str, float] = {}
    t0 = time.perf_counter()
    facts = read_facts(prog, digest=False)
    t1 = time.perf_counter()
    report = report_from_facts(facts)
    t2 = time.perf_counter()
    render_text(report)
    t3 = time.perf_counter()
    got = {f.code for f in report.findings}
    assert {"CHP055", "CHP056"} <= got, sorted(got)
    times["read"] = t1 - t0
    times["rebuild+check"] = t2 - t1
    times["render"] = t3 - t2
    times["total"] = t3 - t0
    return times


def run(n: int, repeat: int) -> Dict[str, float]:
    prog = SynthKernel(machine(n)).prog
    state = read_state(prog)
    assert len(state.cpu_notes) == n and len(state.system_ram or ()) == n
    return min((one_pass(prog) for _ in range(repeat)), key=lambda t: t["total"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--sizes", type=int, nargs=2, default=[1024, 8192])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    small, large = (run(n, args.repeat) for n in args.sizes)
    print(f"{'phase':16} {args.sizes[0]:>10} {args.sizes[1]:>10}   ratio")
    for phase in small:
        ratio = large[phase] / small[phase] if small[phase] else float("inf")
        print(f"{phase:16} {small[phase]:9.3f}s {large[phase]:9.3f}s {ratio:7.1f}")
    ratio = large["total"] / small["total"]
    print(
        f"inputs x{args.sizes[1] / args.sizes[0]:.0f}: total time x{ratio:.1f} "
        f"({'linear' if ratio <= 10 else 'SUPERLINEAR'}, target <= 10)"
    )
    return 0 if ratio <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
