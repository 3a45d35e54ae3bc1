"""
Live /proc/kcore on a real Debian 13 system (issue 18, deliverable 2).

A Debian 13 guest built by vmcores/lab/debian-guest.sh (systemd, udev,
kdump-tools with its defaults, the package in a venv from host-built wheels)
boots trixie's 6.12 cloud kernel or trixie-backports' 7.3 under QEMU TCG.
After boot, a DIMM hot-add, its hot-remove and a CPU hot-add, drgn-crashhp
runs inside the guest as root on /proc/kcore, with the -dbg package's DWARF
and without it (BTF and kallsyms), and on the host over QMP with the same
-dbg vmlinux: verdict, codes, RAM ranges and CPU rows must be equal. Then
``%crashhp`` through drgn's command API, and the live errors: no root,
/proc/kcore missing, lockdown=confidentiality.

Slow: building the image takes minutes (once; cached) and each boot about
half a minute to minutes under TCG. Skips only when the image cannot be built.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.support.debian import (
    DebianGuest,
    boot,
    guest_report,
    host_report,
    summary,
    wait_memory_settled,
)

pytestmark = pytest.mark.slow

GENS = ["6.12", "7.3"]
RESULTS = (
    Path(
        os.environ.get("DRGN_CRASHHP_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "drgn-crashhp"
    )
    / "debian-guest"
    / "results"
)


def record(name: str, data: Any) -> None:
    """Keep what a run saw (timings, summaries) for the README and the issue."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")


def compare(g: DebianGuest, moment: str, log: List[Dict[str, Any]]) -> None:
    dwarf, dwarf_err, t_dwarf = guest_report(g)
    btf, btf_err, t_btf = guest_report(g, hide_debug=True)
    host, _, t_host = host_report(g)
    assert dwarf["debuginfo"] == "dwarf", dwarf_err
    assert btf["debuginfo"] == "btf+kallsyms", btf_err
    assert "no kernel debug info found; btf+kallsyms" in btf_err
    assert dwarf["target"] == btf["target"] == "/proc/kcore" or dwarf["target"]
    log.append(
        {
            "moment": moment,
            "seconds": {"kcore_dwarf": t_dwarf, "kcore_btf": t_btf, "qmp": t_host},
            "kcore_dwarf": summary(dwarf),
            "kcore_btf": summary(btf),
            "qmp": summary(host),
        }
    )
    assert summary(dwarf) == summary(host), moment
    assert summary(btf) == summary(host), moment


@pytest.mark.parametrize("gen", GENS)
def test_live_kcore_equals_qmp(tmp_path: Path, gen: str) -> None:
    log: List[Dict[str, Any]] = []
    with boot(tmp_path, gen) as g:
        meta = {"gen": gen, "release": g.release, "boot_seconds": g.boot_seconds}
        assert g.check("cat /sys/kernel/kexec_crash_loaded").strip() == "1", g.check(
            "journalctl -b -u kdump-tools --no-pager | tail -20"
        )
        compare(g, "boot", log)
        assert log[-1]["qmp"]["verdict"] == "OK", log[-1]

        dimm = g.add_dimm(1)
        rng = [dimm["addr"], dimm["addr"] + dimm["size"] - 1]
        wait_memory_settled(g)
        time.sleep(5)  # kdump-tools' udev reload, if it runs
        compare(g, "dimm hot-add", log)
        assert rng in log[-1]["qmp"]["system_ram"]
        assert rng in log[-1]["qmp"]["elfcorehdr_ram"]

        g.del_dimm(1)
        wait_memory_settled(g)
        time.sleep(5)
        compare(g, "dimm hot-remove", log)
        assert rng not in log[-1]["qmp"]["system_ram"]

        g.add_cpu(2)
        g.check("sleep 3; echo 1 > /sys/devices/system/cpu/cpu2/online || true")
        time.sleep(5)
        compare(g, "cpu hot-add", log)
        rows = {r["cpu"]: r for r in log[-1]["qmp"]["cpu_notes"]}
        assert rows[2]["present"], rows
        meta["command"] = crashhp_command_in_drgn(g)
        meta["errors"] = live_errors(g)
        meta["journal_kdump_config"] = g.check(
            "journalctl -b --no-pager -o cat -t kdump-config | tail -20 || true"
        )
        record(f"live-{gen}", {"meta": meta, "moments": log})


def crashhp_command_in_drgn(g: DebianGuest) -> Dict[str, Any]:
    """%crashhp inside drgn on the live kernel, through drgn's command API
    (drgn -e runs code; the REPL's %-syntax is drgn.commands.run_command)."""
    out = g.check(
        'drgn -q -e "from drgn.commands import run_command; '
        "run_command(prog, 'crashhp --json')\" 2>/tmp/e.err",
        1800,
    )
    doc = json.loads(out[out.index("{") :])
    cli, _, _ = guest_report(g)
    assert summary(doc) == summary(cli)
    return summary(doc)


def live_errors(g: DebianGuest) -> List[str]:
    """No root, /proc/kcore missing: one line on stderr, exit status 2."""
    lines = []
    for cmd, word in [
        (
            "setpriv --reuid=nobody --regid=nogroup --clear-groups "
            "/opt/drgn-crashhp/bin/drgn-crashhp",
            "root",
        ),
        # A procfs without kcore (as with CONFIG_PROC_KCORE=n): an empty
        # /proc in a private mount namespace.
        (
            "unshare -m sh -c 'mount -t tmpfs none /proc; "
            "/opt/drgn-crashhp/bin/drgn-crashhp'",
            "/proc/kcore",
        ),
    ]:
        out = g.run(f"{cmd} 2>/tmp/e >/dev/null; echo rc=$?; cat /tmp/e")[1]
        assert "rc=2" in out, out
        [line] = out.split("rc=2", 1)[1].strip().splitlines()
        assert word in line, line
        lines.append(line)
    return lines


@pytest.mark.parametrize("gen", GENS[:1])
def test_lockdown_confidentiality(tmp_path: Path, gen: str) -> None:
    with boot(tmp_path, gen, append="lockdown=confidentiality") as g:
        assert "[confidentiality]" in g.check("cat /sys/kernel/security/lockdown")
        out = g.run("drgn-crashhp 2>/tmp/e; echo rc=$?; cat /tmp/e")[1]
        assert "rc=2" in out, out
        lines = out.split("rc=2", 1)[1].strip().splitlines()
        assert len(lines) == 1 and "lockdown" in lines[0], out
        record(f"lockdown-{gen}", {"transcript": g.transcript[-1:]})
