"""
The kdump stack of a real Debian 13 system (issue 18, deliverable 4).

In the Debian 13 guest (vmcores/lab/debian-guest.sh: systemd, udev and
kdump-tools with its defaults), contrib/kdump/install.sh installs the udev
rule, the hardened unit and the hook; the package is in /opt/drgn-crashhp, as
the README says. Then, on 6.12 and on 7.3, one scenario of hotplug events,
each waited for until udev's queue is empty and no check runs or waits:

1. reload option off: a 128 MiB DIMM hot-add, its hot-remove, a CPU hot-add;
2. ``--reload 'systemctl restart kdump-tools'`` (kdump-tools' service does
   the reload: no drop-in): the same DIMM add and remove;
3. ``--reload 'kdump-config reload'`` (the hook's unit loads the kernel
   itself: the CAP_SYS_BOOT drop-in): the same again;
4. a 2 GiB DIMM (16 memory blocks of 128 MiB).

From ``journalctl -t drgn-crashhp -o json`` in the guest: one entry per
settled burst, with its priority and CRASHHP_* fields; on the removal, the
gone DIMM's range in a CHP051 (x86 keeps it in the header), fixed by exactly
one reload when the option is on; a bounded number of checks for the 16
blocks. kdump-tools' own reload is Debian's udev rule (50-kdump-tools.rules:
``kdump-config try-reload`` as a udev PROGRAM): each uevent it names (seen
with ``udevadm monitor``) gives one try-reload in the journal, and on Debian
13 each one fails ("failed to unload kdump kernel": udevd's
SystemCallFilter= has no kexec_load), leaving the loaded kernel as it was.
``systemd-analyze security`` rates the unit at 2.0 or less (the same unit
without its hardening lines: recorded as "before").
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Set, Tuple

import pytest

from tests.support.debian import DebianGuest, boot, wait_memory_settled
from tests.test_debian_guest import record

pytestmark = pytest.mark.slow

UNIT = "/etc/systemd/system/drgn-crashhp@.service"
DROPIN = "/etc/systemd/system/drgn-crashhp@.service.d/reload.conf"
INSTALL = "bash /mnt/payload/contrib/kdump/install.sh"
HOOK_SETTINGS = (
    # One full check per burst (no quick --no-digest check before it): one
    # journal entry per settled burst.
    "sed -i 's/^CRASHHP_DIGEST=.*/CRASHHP_DIGEST=yes/' /etc/default/drgn-crashhp"
)
UEVENTS = "/root/uevents.log"
FIELDS = (
    "PRIORITY",
    "CRASHHP_EVENT",
    "CRASHHP_RUN",
    "CRASHHP_VERDICT",
    "CRASHHP_EXIT_STATUS",
    "CRASHHP_STALE",
    "CRASHHP_RELOAD",
    "CRASHHP_CODES",
    "MESSAGE",
)


def install(g: DebianGuest, args: str = "") -> None:
    """install.sh with --enable; then the daily timer is stopped, so that
    every check in an event's window is that event's (its first run,
    OnBootSec=15min plus up to an hour, fell inside one in a run, and
    install.sh --enable starts it again each time)."""
    g.check(f"{INSTALL} {args} --enable", 600)
    g.check("systemctl stop drgn-crashhp.timer")


def now(g: DebianGuest) -> str:
    return g.check("date +%s.%N").strip()


def checks_done(g: DebianGuest, timeout: int = 2400) -> None:
    """Wait until udev's queue is empty (its PROGRAMs, kdump-tools' try-reload
    among them, have run and its RUN+= have queued their units) and no
    drgn-crashhp@ instance runs or waits, three times in a row."""
    g.check("udevadm settle --timeout=900", 1000)
    end = time.time() + timeout
    quiet = 0
    while quiet < 3:
        out = g.check(
            "udevadm settle --timeout=900; "
            "systemctl --no-pager list-units --no-legend --plain --all "
            "--state=activating,deactivating,reloading 'drgn-crashhp@*'; "
            "systemctl --no-pager list-jobs --no-legend | grep drgn-crashhp || true",
            1000,
        )
        quiet = quiet + 1 if not out.strip() else 0
        if time.time() > end:
            raise AssertionError(f"checks still running: {out}")
        time.sleep(3)


def entries(g: DebianGuest, since: str, *match: str) -> List[Dict[str, Any]]:
    # journalctl --since takes "@EPOCH"; the fraction is dropped, so filter.
    docs = g.journal(f"--since=@{since.split('.')[0]}", *match)
    t0 = float(since) * 1e6
    return [d for d in docs if int(d["__REALTIME_TIMESTAMP"]) >= t0]


def kdump_rules(g: DebianGuest) -> Set[Tuple[str, str]]:
    """(subsystem, action) pairs Debian's 50-kdump-tools.rules runs
    ``kdump-config try-reload`` for."""
    text = g.check("cat /usr/lib/udev/rules.d/50-kdump-tools.rules")
    pairs = set()
    for line in text.splitlines():
        if "try-reload" not in line or line.lstrip().startswith("#"):
            continue
        sub = re.search(r'SUBSYSTEM=="([^"]+)"', line)
        act = re.search(r'ACTION=="([^"]+)"', line)
        assert sub and act, line
        for s in sub.group(1).split("|"):
            for a in act.group(1).split("|"):
                pairs.add((s, a))
    assert pairs, text
    return pairs


class Scenario:
    def __init__(self, g: DebianGuest) -> None:
        self.g = g
        self.table: List[Dict[str, Any]] = []
        self.rules = kdump_rules(g)
        self.seen_uevents = 0
        # Every uevent of these subsystems, as udev processed it.
        g.check(
            f"setsid nohup stdbuf -oL udevadm monitor --udev -s memory -s cpu "
            f"> {UEVENTS} 2>&1 < /dev/null & sleep 2"
        )

    def uevents(self) -> List[Tuple[str, str, str]]:
        """(subsystem, action, device) of the uevents since the last call."""
        lines = self.g.check(f"cat {UEVENTS}").splitlines()
        out = []
        for line in lines:
            m = re.match(r"UDEV\s+\[[\d.]+\]\s+(\S+)\s+(\S+)\s+\((\S+)\)", line)
            if m:
                out.append((m.group(3), m.group(1), m.group(2).rsplit("/", 1)[-1]))
        new, self.seen_uevents = out[self.seen_uevents :], len(out)
        return new

    def event(self, name: str, action: Callable[[], Any]) -> Dict[str, Any]:
        """Do *action*, wait for the checks, add a row (event -> uevents ->
        journal entries -> reloads) to the table and return it."""
        g = self.g
        self.uevents()
        t = now(g)
        action()
        wait_memory_settled(g)
        checks_done(g)
        mine = entries(g, t, "-t", "drgn-crashhp")
        kdump_config = entries(g, t, "-t", "kdump-config")
        service = entries(g, t, "-u", "kdump-tools.service")
        units = entries(g, t, "-u", "'drgn-crashhp@*'")
        uevents = self.uevents()
        row = {
            "event": name,
            "uevents": [" ".join(u) for u in uevents],
            "try_reload_uevents": len(
                [u for u in uevents if (u[0], u[1]) in self.rules]
            ),
            "units_started": [
                d.get("UNIT")
                for d in units
                if str(d.get("MESSAGE", "")).startswith("Starting drgn-crashhp@")
            ],
            "covered": [
                d["MESSAGE"]
                for d in units
                if "covered by the check" in str(d.get("MESSAGE", ""))
            ],
            # The timer's own start (OnBootSec=15min + up to 1 h) may fall in
            # any window: kept apart.
            "entries": [
                {k: d.get(k) for k in FIELDS}
                for d in mine
                if d.get("CRASHHP_EVENT") != "timer"
            ],
            "timer_entries": [
                d.get("MESSAGE") for d in mine if d.get("CRASHHP_EVENT") == "timer"
            ],
            "kdump_config": [
                f"{d.get('_SYSTEMD_UNIT', '?')}: {d.get('MESSAGE')}"
                for d in kdump_config
            ],
            "kdump_tools_service": [
                d.get("MESSAGE")
                for d in service
                if d.get("SYSLOG_IDENTIFIER") == "kdump-tools"
            ],
            "crash_loaded": g.check("cat /sys/kernel/kexec_crash_loaded").strip(),
        }
        self.table.append(row)
        print(json.dumps(row, indent=1))
        # Every unit an event started either checked (one entry, two with a
        # reload) or found its event covered by a check that started later.
        checks = [e for e in row["entries"] if "after reload" not in e["CRASHHP_RUN"]]
        events = [u for u in row["units_started"] if u != "drgn-crashhp@timer.service"]
        assert len(checks) + len(row["covered"]) == len(events), row
        return row


def security(g: DebianGuest, unit: str) -> float:
    out = g.check(f"systemd-analyze security --no-pager {unit} | tail -1", 600)
    m = re.search(r"exposure level for \S+: (\d+\.\d+)", out)
    assert m, out
    return float(m.group(1))


def exposure_unhardened(g: DebianGuest) -> float:
    """The installed unit without its hardening lines (everything after
    TimeoutStartSec=), as it was before them."""
    bare = "/etc/systemd/system/drgn-crashhp-bare@.service"
    g.check(
        f"sed -n '1,/^TimeoutStartSec=/p' {UNIT} > {bare} && systemctl daemon-reload"
    )
    try:
        return security(g, "drgn-crashhp-bare@timer.service")
    finally:
        g.check(f"rm -f {bare}; systemctl daemon-reload")


def wait_blocks(g: DebianGuest, addr: int, size: int, online: bool) -> List[int]:
    """The memory blocks of [addr, addr+size): wait until all are online, or
    all gone."""
    bs = int(g.check("cat /sys/devices/system/memory/block_size_bytes").strip(), 16)
    blocks = list(range(addr // bs, (addr + size) // bs))
    end = time.time() + 600
    while True:
        states = g.check(
            "for b in "
            + " ".join(str(b) for b in blocks)
            + "; do cat /sys/devices/system/memory/memory$b/state 2>/dev/null "
            "|| echo gone; done"
        ).split()
        if all(s == ("online" if online else "gone") for s in states):
            return blocks
        if time.time() > end:
            raise AssertionError(f"memory blocks {blocks}: {states}")
        time.sleep(2)


def hex_range(d: Dict[str, Any]) -> str:
    return f"[{d['addr']:#x}-{d['addr'] + d['size'] - 1:#x}]"


def check_try_reloads(row: Dict[str, Any]) -> None:
    """kdump-tools' udev rule: one ``kdump-config try-reload`` per uevent it
    names, each failing on Debian 13 (udevd's seccomp filter), the loaded
    crash kernel left in place."""
    failed = [
        m for m in row["kdump_config"] if m.endswith("failed to unload kdump kernel")
    ]
    assert len(failed) == row["try_reload_uevents"] >= 1, row
    assert row["crash_loaded"] == "1", row


@pytest.mark.parametrize("gen", ["6.12", "7.3"])
def test_kdump_stack_journal(tmp_path: Path, gen: str) -> None:
    started = time.time()
    with boot(tmp_path, gen) as g:
        assert g.check("cat /sys/kernel/kexec_crash_loaded").strip() == "1"
        install(g)
        g.check(HOOK_SETTINGS)
        exposure = {
            "unhardened": exposure_unhardened(g),
            "installed": security(g, "drgn-crashhp@timer.service"),
        }
        assert exposure["installed"] <= 2.0, exposure
        s = Scenario(g)

        # The unit works under its hardening: a manual start of the timer's
        # unit (systemctl start fails when the check does: status 1 is a
        # problem, 2 cannot run).
        t = now(g)
        g.run("systemctl start drgn-crashhp@timer.service", 1800)
        [first] = entries(g, t, "-t", "drgn-crashhp")
        assert first["CRASHHP_VERDICT"] == "OK", first
        assert first["PRIORITY"] == "6", first
        assert first["CRASHHP_EVENT"] == "timer", first

        # 1. reload off. A 128 MiB DIMM: the kernel rewrites the header as
        # its block goes online: one check, OK (info).
        dimm: Dict[str, Any] = {}

        def add(idx: int, size: int = 128 << 20) -> None:
            dimm.clear()
            dimm.update(g.add_dimm(idx, size=size))
            wait_blocks(g, dimm["addr"], dimm["size"], online=True)

        def remove(idx: int) -> None:
            g.del_dimm(idx)
            wait_blocks(g, dimm["addr"], dimm["size"], online=False)

        row = s.event("dimm hot-add 128 MiB", lambda: add(1))
        [e] = row["entries"]
        assert e["CRASHHP_EVENT"].startswith("memory online memory"), row
        assert (e["CRASHHP_VERDICT"], e["PRIORITY"]) == ("OK", "6"), row
        assert e["CRASHHP_STALE"] == "no", row
        check_try_reloads(row)
        gone = hex_range(dimm)

        # Its removal (offline, then remove): one settled burst, one entry.
        # x86 rewrote the header at MEM_OFFLINE, while the range was still
        # System RAM, and nothing rewrites it after the removal: PROBLEM
        # CHP051 naming the removed DIMM (err); reload off.
        row = s.event("dimm hot-remove", lambda: remove(1))
        [e] = row["entries"]
        assert re.match(r"memory (offline|remove) memory", e["CRASHHP_EVENT"]), row
        assert (e["CRASHHP_VERDICT"], e["PRIORITY"]) == ("PROBLEM", "3"), row
        assert e["CRASHHP_EXIT_STATUS"] == "1", row
        assert "CHP051" in e["CRASHHP_CODES"].split(), row
        assert e["CRASHHP_STALE"] == "CHP051", row
        assert gone in e["MESSAGE"], (gone, row)
        assert e["CRASHHP_RELOAD"] == "disabled", row
        check_try_reloads(row)

        # A CPU hot-add: one check; the header still has the removed DIMM.
        row = s.event("cpu hot-add", lambda: add_cpu(g, 2))
        [e] = row["entries"]
        assert e["CRASHHP_EVENT"].startswith("cpu add cpu2"), row
        assert (e["CRASHHP_VERDICT"], e["PRIORITY"]) == ("PROBLEM", "3"), row
        assert gone in e["MESSAGE"], (gone, row)
        check_try_reloads(row)

        # 2. The reload option through kdump-tools' service: no drop-in.
        install(g, "--reload 'systemctl restart kdump-tools'")
        assert g.run(f"test -e {DROPIN}")[0] != 0
        exposure["reload_systemctl"] = security(g, "drgn-crashhp@timer.service")
        reload_cycle(s, "systemctl", add, remove, 3, hex_range)

        # 3. The reload option with a command that loads the kernel itself:
        # the drop-in gives the hardened unit CAP_SYS_BOOT and kexec_load.
        install(g, "--reload 'kdump-config reload'")
        dropin = g.check(f"cat {DROPIN}")
        assert "CAP_SYS_BOOT" in dropin, dropin
        caps = g.check(
            "systemctl --no-pager show -p CapabilityBoundingSet "
            "drgn-crashhp@timer.service"
        )
        assert "cap_sys_boot" in caps, caps
        exposure["reload_dropin"] = security(g, "drgn-crashhp@timer.service")
        reload_cycle(s, "kdump-config", add, remove, 4, hex_range)

        # 4. 2 GiB, 16 memory blocks, 16 online uevents: each starts a unit,
        # and each check covers the events that came before it started, so
        # a few checks, all OK, the last one after the last block.
        row = s.event("dimm hot-add 2 GiB", lambda: add(5, size=2 << 30))
        online = [u for u in row["uevents"] if u.startswith("memory online")]
        assert len(online) == 16, row
        assert len(row["units_started"]) == 16, row
        n = len(row["entries"])
        assert 1 <= n <= 3, row
        assert n + len(row["covered"]) == 16, row
        assert [e["CRASHHP_VERDICT"] for e in row["entries"]] == ["OK"] * n, row
        check_try_reloads(row)

        # The hardened unit still works after all that (reload option on).
        t = now(g)
        g.run("systemctl start drgn-crashhp@timer.service", 1800)
        [last] = entries(g, t, "-t", "drgn-crashhp")
        assert last["CRASHHP_VERDICT"] == "OK", last
        record(
            f"kdump-journal-{gen}",
            {
                "release": g.release,
                "seconds": round(time.time() - started),
                "exposure": exposure,
                "kdump_tools_rules": sorted(s.rules),
                "table": s.table,
            },
        )


def add_cpu(g: DebianGuest, socket: int) -> None:
    g.add_cpu(socket)
    end = time.time() + 300
    while g.run(f"test -e /sys/devices/system/cpu/cpu{socket}")[0] != 0:
        if time.time() > end:
            raise AssertionError(f"cpu{socket} did not appear")
        time.sleep(2)


def reload_cycle(
    s: Scenario,
    how: str,
    add: Callable[..., None],
    remove: Callable[[int], None],
    idx: int,
    hex_range: Callable[[Dict[str, Any]], str],
) -> None:
    """A DIMM hot-add (one check, OK, no reload) and its hot-remove: the check
    finds the removed DIMM in the header (CHP051), runs the reload once, and
    the check after it is OK."""
    g = s.g
    got: Dict[str, Any] = {}

    def do_add() -> None:
        add(idx)
        got["range"] = g.qmp("query-memory-devices")

    row = s.event(f"dimm hot-add 128 MiB, reload by {how}", do_add)
    [e] = row["entries"]
    assert (e["CRASHHP_VERDICT"], e["CRASHHP_RELOAD"]) == ("OK", "none"), row
    check_try_reloads(row)
    dimm = next(d["data"] for d in got["range"] if d["data"].get("id") == f"dimm{idx}")
    before = int(g.check("date +%s").strip())
    row = s.event(f"dimm hot-remove, reload by {how}", lambda: remove(idx))
    assert [
        (e["CRASHHP_RUN"], e["CRASHHP_VERDICT"], e["CRASHHP_RELOAD"], e["PRIORITY"])
        for e in row["entries"]
    ] == [("full", "PROBLEM", "ran", "3"), ("full after reload", "OK", "none", "6")], (
        row
    )
    assert hex_range(dimm) in row["entries"][0]["MESSAGE"], row
    assert row["entries"][0]["CRASHHP_STALE"] == "CHP051", row
    check_try_reloads(row)
    if how == "systemctl":
        # kdump-tools.service itself: stopped (unloaded) and started (loaded)
        # once.
        msgs = row["kdump_tools_service"]
        assert msgs.count("Starting kdump-tools:") == 1, row
        assert any(m.startswith("loaded kdump kernel") for m in msgs), row
    else:
        # kdump-config run by the hook (in the drgn-crashhp@ unit): one
        # unload and one load. The udev ones all fail (above), so these are
        # the hook's.
        msgs = [m.split(": ", 1)[1] for m in row["kdump_config"]]
        assert msgs.count("unloaded kdump kernel") == 1, row
        assert msgs.count("loaded kdump kernel") == 1, row
        # ... and wrote the command it loaded with to /var/crash/kexec_cmd
        # (the drop-in makes kdump-tools' KDUMP_COREDIR writable), which
        # "kdump-config show" prints.
        written = int(g.check("stat -c %Y /var/crash/kexec_cmd").strip())
        assert written >= before, (written, before)
        assert "kexec -p" in g.check("cat /var/crash/kexec_cmd")
