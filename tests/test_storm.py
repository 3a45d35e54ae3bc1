"""
Torn reads, for real: while QMP adds and removes DIMMs and the guest takes a
CPU offline and online in a loop, drgn-crashhp reads the running 6.12 lab
guest over QMP again and again. The kernel rewrites the crash image's
elfcorehdr under the kexec lock on every one of those events; a report must
never show a problem that only a half-read header has.

Every verdict must be right for some moment of the loop:
- OK (the header is current after an add, an offline or a CPU event);
- PROBLEM with only CHP051/CHP052 on ranges of DIMMs that were removed (x86
  keeps a removed DIMM's range until the next rebuild, kernel-notes §3.7);
- CANNOT VERIFY (CHP092, or anything the target could not give).
Anything else is a false verdict; there must be none. The counts and the
CANNOT VERIFY rate are printed (``-s``).

CRASHHP_STORM_SECONDS sets the length (default 180).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any, Dict, List, Tuple

import pytest

import drgn_crashhp.read as read_mod
from drgn_crashhp.render.json import report_json
from drgn_crashhp.report import build_report
from drgn_crashhp.target import open_program
from tests.conftest import unpack
from tests.test_live_qemu import boot

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("CRASHHP_STORM_SECONDS", "180"))
BLOCK = 128 << 20  # the lab guest's memory block size


def _storm(
    g: Any, stop: threading.Event, added: List[Tuple[int, int]], log: List[str]
) -> None:
    rng = random.Random(1)
    idx = 1
    while not stop.is_set():
        d = g.add_dimm(idx)
        start, size = d["addr"], d["size"]
        added.append((start, start + size - 1))
        log.append(f"+dimm{idx} {start:#x}")
        time.sleep(rng.uniform(0.2, 1.5))
        g.check("echo 0 > /sys/devices/system/cpu/cpu1/online")
        g.check("echo 1 > /sys/devices/system/cpu/cpu1/online")
        log.append("cpu1 off/on")
        for b in range(start // BLOCK, (start + size) // BLOCK):
            g.check(f"echo offline > /sys/devices/system/memory/memory{b}/state")
        g.del_dimm(idx)
        log.append(f"-dimm{idx}")
        time.sleep(rng.uniform(0.2, 1.5))
        idx += 1


def _judge(doc: Dict[str, Any], added: List[Tuple[int, int]]) -> str:
    if doc["verdict"] == "OK":
        return "ok"
    if doc["verdict"] == "CANNOT VERIFY":
        return "cannot verify"
    errors = [f for f in doc["findings"] if f["severity"] == "error"]
    for f in errors:
        if f["code"] == "CHP051":
            ranges = [tuple(r) for r in f["details"]["ranges"]]
        elif f["code"] == "CHP052":
            ranges = [tuple(r["range"]) for r in f["details"]["ranges"]]
        else:
            return "false"
        if not all(any(a <= s and e <= b for a, b in added) for s, e in ranges):
            return "false"
    return "stale after removal"


def test_storm_gives_no_false_verdict(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    g, sock = boot(tmp_path, "6.12")
    with g:
        g.wait_ready()
        g.check(
            "kexec -s -p /bzImage --initrd=/capture.cpio "
            '--append="console=ttyS0 acpi_no_memhotplug irqpoll nr_cpus=1"'
        )
        prog = open_program(
            qemu=sock, symbols=[str(unpack.vmlinux_path("6.12"))], default_symbols=False
        )
        # The guard runs on live targets only: a QMP guest must be one.
        assert read_mod._is_live(prog)
        reads: List[int] = []
        real_once = read_mod._read_once

        def counted(*args: Any, **kwargs: Any) -> Any:
            reads.append(1)
            return real_once(*args, **kwargs)

        monkeypatch.setattr(read_mod, "_read_once", counted)
        stop = threading.Event()
        added: List[Tuple[int, int]] = []
        log: List[str] = []
        failure: List[BaseException] = []

        def run() -> None:
            try:
                _storm(g, stop, added, log)
            except BaseException as e:  # noqa: BLE001 - reported below
                failure.append(e)

        mutator = threading.Thread(target=run)
        mutator.start()
        counts: Dict[str, int] = {}
        codes: Dict[str, int] = {}
        false: List[Dict[str, Any]] = []
        end = time.time() + SECONDS
        try:
            while time.time() < end and not failure:
                doc = report_json(build_report(prog, digest=False))
                kind = _judge(doc, list(added))
                counts[kind] = counts.get(kind, 0) + 1
                if kind == "cannot verify":
                    for f in doc["findings"]:
                        if f["severity"] == "unverified":
                            codes[f["code"]] = codes.get(f["code"], 0) + 1
                if kind == "false":
                    false.append(doc)
        finally:
            stop.set()
            mutator.join(timeout=300)
    total = sum(counts.values())
    summary = {
        "seconds": SECONDS,
        "reports": total,
        "verdicts": counts,
        "cannot_verify_codes": codes,
        "cannot_verify_rate": round(counts.get("cannot verify", 0) / max(total, 1), 3),
        "hotplug_events": len(log),
        # Full reads beyond one per report: the guard saw the image change.
        "rereads": len(reads) - total,
    }
    print("storm:", json.dumps(summary))
    assert not failure, failure
    assert total >= 10 and len(log) >= 6, summary
    assert not false, [
        [(f["code"], f["message"]) for f in d["findings"] if f["severity"] == "error"]
        for d in false[:3]
    ]
