"""
The hotplug storm on a real Debian 13 system (issue 18): while QMP adds and
removes DIMMs and CPUs in a loop for several minutes, drgn-crashhp checks
the running kernel again and again, inside the guest over /proc/kcore (as
root, the package in its venv, one full check after the other in a loop the
guest runs by itself) and from the host over QMP (a second QMP socket, the
-dbg vmlinux, in-process as tests/test_storm.py does).

Every verdict is judged by tests/test_storm.py's rule (``_judge``): right for
some moment of the loop (OK; PROBLEM with only CHP051/CHP052 on ranges of
DIMMs that had been added, which x86 keeps in the header after their
removal), or CANNOT VERIFY; anything else is a false verdict, and there must
be none. A check that writes no report at all is counted apart and fails the
test too. The counts, the CANNOT VERIFY rate and the time are printed
(``-s``) and kept in the results folder.

The DIMMs are added and removed over QMP (the guest kernel offlines and
ejects them itself: hot-added memory is ZONE_MOVABLE). Two CPUs are added
over QMP and then taken on and off line through sysfs: QMP's device_del of
a hot-added CPU never completed on the 6.12 guest (no DEVICE_DELETED within
10 minutes), so CPUs are not removed. The console is shared by the two
threads, one command at a time.

Slow and opt-in like the rest of the Debian set. A check over /proc/kcore
takes 20 to 60 s under TCG, so a few minutes give only a few in-guest
checks. CRASHHP_DEBIAN_STORM_SECONDS sets the length (default 300).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from drgn_crashhp.render.json import report_json
from drgn_crashhp.report import build_report
from drgn_crashhp.target import open_program
from tests.support.debian import DebianGuest, boot
from tests.test_debian_guest import record
from tests.test_storm import _judge

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("CRASHHP_DEBIAN_STORM_SECONDS", "300"))
DIR = "/root/storm"
# One check after the other inside the guest until told to stop; one index
# line per check: number, start, end (guest clock), exit status.
LOOP = (
    f"mkdir -p {DIR}; i=0; while [ ! -e {DIR}/stop ]; do i=$((i+1)); "
    f"t0=$(date +%s.%N); drgn-crashhp --json > {DIR}/$i.json 2> {DIR}/$i.err; "
    f'rc=$?; echo "$i $t0 $(date +%s.%N) $rc" >> {DIR}/index; done; '
    f"touch {DIR}/done"
)
# What the judge needs of a report, made small inside the guest (the console
# is a serial line).
TRIM = (
    "import json,sys; d=json.load(open(sys.argv[1])); "
    "print(json.dumps({'verdict': d['verdict'], 'findings': [{'code': f['code'], "
    "'severity': f['severity'], 'message': f['message'], 'details': f['details'] "
    "if f['severity'] == 'error' else None} for f in d['findings']]}))"
)


def _storm(
    g: DebianGuest,
    stop: threading.Event,
    added: List[Tuple[int, int]],
    log: List[Tuple[float, str]],
) -> None:
    """DIMMs in and out over QMP; CPUs added over QMP and taken on and off
    line (a hot-added CPU's device_del never completed on 6.12: no
    DEVICE_DELETED in 10 min)."""
    rng = random.Random(1)
    idx = 1
    cpus: List[int] = []
    while not stop.is_set():
        if len(cpus) < 2:
            cpu = 2 + len(cpus)
            g.add_cpu(cpu)
            wait_for(g, f"test -e /sys/devices/system/cpu/cpu{cpu}/online")
            cpus.append(cpu)
            log.append((time.time(), f"+cpu{cpu}"))
        d = g.add_dimm(100 + idx)
        added.append((d["addr"], d["addr"] + d["size"] - 1))
        log.append((time.time(), f"+dimm {d['addr']:#x}"))
        time.sleep(rng.uniform(2, 10))
        cpu = rng.choice(cpus)
        g.check(f"echo 1 > /sys/devices/system/cpu/cpu{cpu}/online")
        log.append((time.time(), f"cpu{cpu} online"))
        time.sleep(rng.uniform(2, 10))
        g.del_dimm(100 + idx, timeout=600)
        log.append((time.time(), f"-dimm {d['addr']:#x}"))
        time.sleep(rng.uniform(2, 10))
        g.check(f"echo 0 > /sys/devices/system/cpu/cpu{cpu}/online")
        log.append((time.time(), f"cpu{cpu} offline"))
        time.sleep(rng.uniform(2, 10))
        idx += 1


def wait_for(g: DebianGuest, command: str, timeout: float = 600) -> None:
    end = time.time() + timeout
    while g.run(command)[0] != 0:
        if time.time() > end:
            raise AssertionError(f"still false after {timeout} s: {command}")
        time.sleep(2)


def serialize_console(g: DebianGuest) -> None:
    """One command at a time on the console, from the checks' thread and the
    storm's: g.run (and g.check, which calls it) takes a lock."""
    lock = threading.RLock()
    run = g.run

    def locked(command: str, timeout: float = 300) -> Tuple[int, str]:
        with lock:
            return run(command, timeout)

    g.run = locked  # type: ignore[method-assign]


class Tally:
    def __init__(self) -> None:
        self.counts: Dict[str, int] = {}
        self.codes: Dict[str, int] = {}
        self.false: List[Dict[str, Any]] = []
        self.seconds: List[float] = []

    def add(self, doc: Dict[str, Any], added: List[Tuple[int, int]]) -> str:
        kind = _judge(doc, added)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "cannot verify":
            for f in doc["findings"]:
                if f["severity"] == "unverified":
                    self.codes[f["code"]] = self.codes.get(f["code"], 0) + 1
        if kind == "false":
            self.false.append(doc)
        return kind

    def summary(self) -> Dict[str, Any]:
        total = sum(self.counts.values())
        return {
            "reports": total,
            "verdicts": self.counts,
            "cannot_verify_codes": self.codes,
            "cannot_verify_rate": round(
                self.counts.get("cannot verify", 0) / max(total, 1), 3
            ),
            "false": len(self.false),
        }


def _collect(
    g: DebianGuest, seen: int, added: List[Tuple[int, int]], tally: Tally, bad: List
) -> int:
    """Judge the in-guest checks finished since *seen*; return the new count."""
    lines = g.check(f"cat {DIR}/index 2>/dev/null || true").split("\n")
    rows = [ln.split() for ln in lines if len(ln.split()) == 4]
    for num, t0, t1, rc in rows[seen:]:
        out = g.run(f'python3 -c "{TRIM}" {DIR}/{num}.json 2>/dev/null')[1]
        try:
            doc = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            bad.append(
                {
                    "check": num,
                    "exit_status": rc,
                    "stderr": g.check(f"tail -3 {DIR}/{num}.err"),
                }
            )
            continue
        tally.add(doc, list(added))
        tally.seconds.append(float(t1) - float(t0))
    return len(rows)


@pytest.mark.parametrize("gen", ["6.12", "7.3"])
def test_debian_storm(tmp_path: Path, gen: str) -> None:
    started = time.time()
    with boot(tmp_path, gen) as g:
        prog = open_program(qemu=g.qmp_drgn, symbols=[g.vmlinux], default_symbols=False)
        g.check(f"rm -rf {DIR}; mkdir -p {DIR}")
        g.check(f"setsid nohup sh -c '{LOOP}' > /dev/null 2>&1 < /dev/null &")
        serialize_console(g)
        stop = threading.Event()
        added: List[Tuple[int, int]] = []
        log: List[Tuple[float, str]] = []
        failure: List[BaseException] = []

        def run() -> None:
            try:
                _storm(g, stop, added, log)
            except BaseException as e:  # noqa: BLE001 - reported below
                failure.append(e)

        kcore, qmp = Tally(), Tally()
        no_report: List[Dict[str, Any]] = []
        qmp_seconds: List[float] = []
        mutator = threading.Thread(target=run)
        t_storm = time.time()
        mutator.start()
        seen = 0
        try:
            end = t_storm + SECONDS
            while time.time() < end and not failure:
                t = time.time()
                qmp.add(report_json(build_report(prog, digest=False)), list(added))
                qmp_seconds.append(time.time() - t)
                seen = _collect(g, seen, added, kcore, no_report)
                time.sleep(2)
        finally:
            stop.set()
            mutator.join(timeout=900)
        storm_seconds = time.time() - t_storm
        # The check that was running when the loop stopped still counts.
        g.check(f"touch {DIR}/stop")
        deadline = time.time() + 300
        while g.run(f"test -e {DIR}/done")[0] != 0 and time.time() < deadline:
            time.sleep(5)
        seen = _collect(g, seen, added, kcore, no_report)
        summary = {
            "gen": gen,
            "release": g.release,
            "storm_seconds": round(storm_seconds),
            "test_seconds": round(time.time() - started),
            "hotplug_events": len(log),
            "events": [f"{t - t_storm:.0f}s {e}" for t, e in log],
            "kcore": {
                **kcore.summary(),
                "no_report": no_report,
                "seconds_per_check": [round(s) for s in kcore.seconds],
            },
            "qmp": {
                **qmp.summary(),
                "seconds_per_check": round(
                    sum(qmp_seconds) / max(len(qmp_seconds), 1), 1
                ),
            },
        }
        print("debian storm:", json.dumps(summary, indent=1))
        record(f"storm-{gen}", summary)
    assert not failure, failure
    assert len(log) >= 8, summary
    assert kcore.summary()["reports"] >= 2 and qmp.summary()["reports"] >= 10, summary
    assert not no_report, no_report
    for tally in (kcore, qmp):
        assert not tally.false, [
            [
                (f["code"], f["message"])
                for f in d["findings"]
                if f["severity"] == "error"
            ]
            for d in tally.false[:3]
        ]
