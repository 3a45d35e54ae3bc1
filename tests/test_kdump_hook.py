"""
contrib/kdump: the udev rule, the units and the hook that checks the crash
kernel after each hotplug event and writes one journal entry per check.

The hook is run with the environment udev gives an event (ACTION, SUBSYSTEM,
DEVPATH, SEQNUM; its unit passes the same as %i), and its journal entries are read
from a datagram socket speaking the journal's native protocol. The live tests
hot-add and hot-remove a DIMM and hot-add a CPU in a real 6.12 guest under QEMU,
checked over QMP; the reload they allow really reloads the guest's crash kernel.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.conftest import ROOT, have_fixtures, unpack

KDUMP = ROOT / "contrib" / "kdump"
HOOK = KDUMP / "drgn-crashhp-hook"
RULE = KDUMP / "99-drgn-crashhp.rules"

# kdump-utils' 98-kexec.rules (Fedora/RHEL) reloads on exactly these events;
# Debian's kdump-tools rule on the same, plus cpu online. The hook also needs
# memory remove: x86 keeps a removed DIMM in the header, and its removal fires
# no online/offline event.
KDUMP_UTILS_EVENTS = {
    ("cpu", "add"),
    ("cpu", "remove"),
    ("memory", "online"),
    ("memory", "offline"),
}
RULE_EVENTS = KDUMP_UTILS_EVENTS | {("memory", "remove")}

Fields = List[Tuple[str, str]]


def parse_datagram(data: bytes) -> Fields:
    """The journal's native protocol, read independently of the hook's writer."""
    out: Fields = []
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            out.append((key.decode(), value.decode()))
            i = nl + 1
        else:
            (size,) = struct.unpack_from("<Q", data, nl + 1)
            start = nl + 9
            out.append((line.decode(), data[start : start + size].decode()))
            assert data[start + size : start + size + 1] == b"\n"
            i = start + size + 1
    return out


class Journal:
    """A datagram socket standing in for /run/systemd/journal/socket."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)

    def entries(self) -> List[Fields]:
        out = []
        while True:
            try:
                out.append(parse_datagram(self.sock.recv(1 << 20)))
            except BlockingIOError:
                return out


def field(entry: Fields, key: str) -> str:
    [value] = [v for k, v in entry if k == key]
    return value


def fields(entry: Fields, key: str) -> List[str]:
    return [v for k, v in entry if k == key]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sock")
    yield j
    j.sock.close()


def hook_env(
    tmp_path: Path, journal: Journal, target: str, **extra: str
) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRASHHP_")}
    env.update(
        {
            "CRASHHP_CONFIG": str(tmp_path / "no-such-config"),
            "CRASHHP_COMMAND": f"{shlex.quote(sys.executable)} -m drgn_crashhp",
            "CRASHHP_TARGET": target,
            "CRASHHP_JOURNAL": journal.path,
            "CRASHHP_STATE_DIR": str(tmp_path / "state"),
            "CRASHHP_SETTLE": "0",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def udev_env(subsystem: str, action: str, devpath: str, seqnum: int) -> Dict[str, str]:
    return {
        "ACTION": action,
        "SUBSYSTEM": subsystem,
        "DEVPATH": devpath,
        "SEQNUM": str(seqnum),
        "DEVNAME": "",
        "USEC_INITIALIZED": "0",
    }


def run_hook(env: Dict[str, str], timeout: int = 900) -> int:
    proc = subprocess.run(
        [sys.executable, str(HOOK)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode


# -- the rule and the units ----------------------------------------------------


def rule_events(text: str) -> set:
    events = set()
    for line in text.splitlines():
        m = re.match(
            r'SUBSYSTEM=="(\w+)", ACTION=="([\w|]+)", '
            r'GOTO="drgn_crashhp_check"',
            line,
        )
        if m:
            events |= {(m.group(1), a) for a in m.group(2).split("|")}
    return events


def test_rule_matches_kdump_utils_events_and_only_starts_a_unit() -> None:
    text = RULE.read_text()
    assert rule_events(text) == RULE_EVENTS
    runs = re.findall(r'RUN\+="([^"]*)"', text)
    assert runs == [
        "/usr/bin/systemctl --no-block start "
        "drgn-crashhp@$env{SUBSYSTEM}-$env{ACTION}-%k-$env{SEQNUM}.service"
    ]
    assert "PROGRAM" not in text and "IMPORT" not in text


def _udevadm_with_verify() -> Optional[str]:
    candidates = [
        os.environ.get("CRASHHP_UDEVADM"),
        shutil.which("udevadm"),
        str(unpack.cache_root() / "udevadm" / "bin" / "udevadm"),
    ]
    for c in candidates:
        if (
            c
            and os.access(c, os.X_OK)
            and subprocess.run([c, "verify", "--help"], capture_output=True).returncode
            == 0
        ):
            return c
    return None


def test_udevadm_verify_accepts_the_rule(tmp_path: Path) -> None:
    udevadm = _udevadm_with_verify()
    if udevadm is None:
        pytest.skip(
            "no udevadm with 'verify' (systemd >= 253; "
            "contrib/kdump/setup-test.sh fetches one)"
        )
    ok = subprocess.run([udevadm, "verify", str(RULE)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The same udevadm rejects a broken copy: the check can fail.
    bad = tmp_path / "99-bad.rules"
    bad.write_text(RULE.read_text().replace("ACTION==", "ACTON=="))
    assert (
        subprocess.run([udevadm, "verify", str(bad)], capture_output=True).returncode
        != 0
    )


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    system_units = Path("/lib/systemd/system")
    if analyze is None or not (system_units / "sysinit.target").exists():
        pytest.skip("no systemd-analyze and system units")
    root = tmp_path / "root"
    subprocess.run(
        ["bash", str(KDUMP / "install.sh"), "--destdir", str(root)], check=True
    )
    shutil.copytree(system_units, root / "lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    for name in (
        "drgn-crashhp@timer.service",
        "drgn-crashhp.timer",
        "drgn-crashhp@memory-online-memory32-1234.service",
    ):
        proc = subprocess.run(
            [analyze, "verify", f"--root={root}", str(units / name)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    timer = (units / "drgn-crashhp.timer").read_text()
    assert "Unit=drgn-crashhp@timer.service" in timer


def test_journal_datagram_round_trip() -> None:
    hook = _load_hook()
    sent = [
        ("MESSAGE", "two\nlines"),
        ("PRIORITY", "3"),
        ("CRASHHP_CODE", "CHP051"),
        ("CRASHHP_CODE", "CHP050"),
    ]
    assert parse_datagram(hook.journal_datagram(sent)) == sent


def _load_hook() -> Any:
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("crashhp_hook", str(HOOK))
    spec = importlib.util.spec_from_loader("crashhp_hook", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


# -- the hook on real vmcores (fast) -------------------------------------------


def vmcore_target(name: str) -> str:
    if not have_fixtures() or name not in unpack.scenarios():
        pytest.skip(f"real fixture {name} not available")
    return (
        f"-c {unpack.dump_path(name)} -s {unpack.vmlinux_path()} --no-default-symbols"
    )


def test_hook_on_a_stale_header_reloads_only_when_asked(
    tmp_path: Path, journal: Journal
) -> None:
    target = vmcore_target("file_memremove")
    ev = udev_env("memory", "offline", "/devices/system/memory/memory32", 4711)
    # Default: reload off; one entry per check (quick, then with the digest).
    status = run_hook({**hook_env(tmp_path, journal, target), **ev})
    quick, full = journal.entries()
    assert status == 1
    for e, run in ((quick, "fast"), (full, "full")):
        assert field(e, "PRIORITY") == "3"
        assert field(e, "SYSLOG_IDENTIFIER") == "drgn-crashhp"
        assert field(e, "CRASHHP_EVENT") == "memory offline memory32"
        assert field(e, "CRASHHP_RUN") == run
        assert field(e, "CRASHHP_VERDICT") == "PROBLEM"
        assert fields(e, "CRASHHP_CODE") == ["CHP051"]
        assert field(e, "CRASHHP_STALE") == "CHP051"
        assert field(e, "CRASHHP_RELOAD") == "disabled"
        assert "[0x100000000-0x107ffffff]" in field(e, "MESSAGE")
    assert field(quick, "CRASHHP_DIGEST") == "skipped"
    assert field(full, "CRASHHP_DIGEST") == "match"
    # With a reload command: it runs once, and a check of its result follows
    # (a vmcore does not change, so it is still stale).
    marker = tmp_path / "reloaded"
    status = run_hook(
        {
            **hook_env(
                tmp_path,
                journal,
                target,
                CRASHHP_RELOAD=f"touch {marker}",
                CRASHHP_DIGEST="no",
            ),
            **ev,
            "SEQNUM": "4712",
        }
    )
    first, after = journal.entries()
    assert marker.exists()
    assert field(first, "CRASHHP_RELOAD") == "ran"
    assert field(after, "CRASHHP_RUN") == "fast after reload"
    assert field(after, "CRASHHP_RELOAD") == "none"
    assert status == 1


def test_hook_writes_the_textfile_after_each_check(
    tmp_path: Path, journal: Journal
) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    prom = tmp_path / "textfile" / "drgn_crashhp.prom"
    prom.parent.mkdir()
    env = hook_env(
        tmp_path,
        journal,
        vmcore_target("file_memremove"),
        CRASHHP_TEXTFILE=str(prom),
        CRASHHP_DIGEST="no",
    )
    before = time.time()
    assert run_hook(env) == 1
    values = {
        s.name: s.value
        for fam in parser.text_string_to_metric_families(prom.read_text())
        for s in fam.samples
        if not s.labels
    }
    assert values["drgn_crashhp_stale_ram_bytes"] == 128 << 20
    assert values["drgn_crashhp_last_check_timestamp_seconds"] >= before
    assert os.listdir(prom.parent) == [prom.name]  # no temporary file left


@pytest.mark.parametrize(
    "name, verdict, priority, status",
    [
        ("file_base", "OK", "6", 0),
        ("kdump_memadd", "CANNOT VERIFY", "5", 3),
        ("noload", "PROBLEM", "3", 1),
    ],
)
def test_hook_priority_follows_the_verdict(
    tmp_path: Path,
    journal: Journal,
    name: str,
    verdict: str,
    priority: str,
    status: int,
) -> None:
    marker = tmp_path / "reloaded"
    env = hook_env(
        tmp_path,
        journal,
        vmcore_target(name),
        CRASHHP_DIGEST="yes",
        CRASHHP_RELOAD=f"touch {marker}",
    )
    assert run_hook(env) == status
    [e] = journal.entries()
    assert field(e, "CRASHHP_VERDICT") == verdict
    assert field(e, "PRIORITY") == priority
    assert field(e, "CRASHHP_EVENT") == "manual"
    assert field(e, "CRASHHP_STALE") == "no"
    assert not marker.exists()  # not stale: no reload, even when allowed


def test_hook_cannot_run_is_an_error_entry(tmp_path: Path, journal: Journal) -> None:
    env = hook_env(
        tmp_path, journal, f"-c {tmp_path / 'missing.vmcore'}", CRASHHP_DIGEST="no"
    )
    assert run_hook(env) == 2
    [e] = journal.entries()
    assert field(e, "PRIORITY") == "3"
    assert field(e, "CRASHHP_VERDICT") == "ERROR"
    assert "no such file" in field(e, "CRASHHP_ERROR")


def test_an_event_covered_by_a_later_check_is_skipped(
    tmp_path: Path, journal: Journal
) -> None:
    env = hook_env(tmp_path, journal, vmcore_target("file_base"), CRASHHP_DIGEST="no")
    state = tmp_path / "state"
    state.mkdir()
    # A check started after this event's hook started (in its settle time).
    (state / "last-check-start").write_text(repr(time.time() + 60))
    ev = udev_env("cpu", "add", "/devices/system/cpu/cpu2", 1)
    assert run_hook({**env, **ev}) == 0
    assert journal.entries() == []
    # A timer run is never skipped.
    assert run_hook({**env, "CRASHHP_EVENT": "timer"}) == 0
    [e] = journal.entries()
    assert field(e, "CRASHHP_EVENT") == "timer"


# -- the hook against a live guest ---------------------------------------------

LOAD = (
    "kexec -s -p /bzImage --initrd=/capture.cpio "
    '--append="console=ttyS0 acpi_no_memhotplug irqpoll nr_cpus=1"'
)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Tuple[Any, str]]:
    from tests.test_live_qemu import BZIMAGE, LAB, qemu_major

    if qemu_major() < 10:
        pytest.skip("QEMU 10 is not installed (vmcores/lab/setup.sh --live)")
    if not BZIMAGE.exists() or not have_fixtures():
        pytest.skip("lab kernel or its debug info is not in this checkout")
    sys.path.insert(0, str(LAB))
    from guest import Guest  # type: ignore[import-not-found]

    sock = tmp_path / "qmp.sock"
    g = Guest(
        str(tmp_path / "guest"),
        str(BZIMAGE),
        str(unpack.unpack() / "initramfs.cpio"),
        append="console=ttyS0 crashkernel=24M memhp_default_state=online_movable",
        mem="128M,slots=4,maxmem=1G",
        extra_args=["-qmp", f"unix:{sock},server=on,wait=off"],
    )
    with g:
        g.wait_ready()
        g.check(LOAD)
        yield g, (f"--qemu {sock} -s {unpack.vmlinux_path()} --no-default-symbols")


def cpu_dirs(g: Any) -> set:
    return {
        c
        for c in g.check("ls /sys/devices/system/cpu").split()
        if re.fullmatch(r"cpu\d+", c)
    }


def memory_blocks(g: Any) -> set:
    return set(g.check("ls /sys/devices/system/memory").split())


def run_hook_serving_reloads(
    env: Dict[str, str], g: Any, reload_dir: Path
) -> Tuple[int, int]:
    """Run the hook; when its reload command asks, reload the guest's crash
    kernel over the serial console. Returns (exit status, reloads done)."""
    req, done = reload_dir / "reload.req", reload_dir / "reload.done"
    proc = subprocess.Popen(
        [sys.executable, str(HOOK)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reloads = 0
    deadline = time.time() + 1800
    while proc.poll() is None and time.time() < deadline:
        if req.exists():
            req.unlink()
            g.check("kexec -p -u && " + LOAD)
            reloads += 1
            done.touch()
        time.sleep(0.2)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    return proc.returncode, reloads


@pytest.mark.slow
def test_hook_after_dimm_add_dimm_remove_and_cpu_add(
    live: Tuple[Any, str], tmp_path: Path, journal: Journal
) -> None:
    g, target = live
    reload_dir = tmp_path / "reload"
    reload_dir.mkdir()
    reload_cmd = (
        f"sh -c 'touch {reload_dir}/reload.req; "
        f"while [ ! -e {reload_dir}/reload.done ]; do sleep 0.2; done; "
        f"rm {reload_dir}/reload.done'"
    )
    env = hook_env(tmp_path, journal, target, CRASHHP_RELOAD=reload_cmd)

    # Hot-add: the kernel (6.12, kexec_file_load) rewrites the header itself.
    before = memory_blocks(g)
    dimm = g.add_dimm(1)
    start, end = dimm["addr"], dimm["addr"] + dimm["size"] - 1
    g.check("sleep 2")
    [block] = sorted(memory_blocks(g) - before)
    assert g.check(f"cat /sys/devices/system/memory/{block}/state").strip() == "online"
    ev = udev_env("memory", "online", f"/devices/system/memory/{block}", 101)
    status, reloads = run_hook_serving_reloads({**env, **ev}, g, reload_dir)
    quick, full = journal.entries()
    assert (status, reloads) == (0, 0)
    for e, run in ((quick, "fast"), (full, "full")):
        assert field(e, "CRASHHP_EVENT") == f"memory online {block}"
        assert field(e, "CRASHHP_RUN") == run
        assert field(e, "CRASHHP_VERDICT") == "OK"
        assert field(e, "PRIORITY") == "6"
        assert field(e, "CRASHHP_STALE") == "no"
        assert field(e, "CRASHHP_RELOAD") == "none"
        assert fields(e, "CRASHHP_CODE") == []
    assert field(quick, "CRASHHP_DIGEST") == "skipped"
    assert field(full, "CRASHHP_DIGEST") == "match"

    # Hot-remove, step 1: offline. x86 rebuilds the header at MEM_OFFLINE,
    # while the DIMM is still System RAM: the header still matches.
    g.check(f"echo offline > /sys/devices/system/memory/{block}/state")
    ev = udev_env("memory", "offline", f"/devices/system/memory/{block}", 102)
    status, reloads = run_hook_serving_reloads(
        {**env, **ev, "CRASHHP_DIGEST": "no"}, g, reload_dir
    )
    [e] = journal.entries()
    assert (status, reloads) == (0, 0)
    assert field(e, "CRASHHP_EVENT") == f"memory offline {block}"
    assert field(e, "CRASHHP_VERDICT") == "OK"
    # Step 2: unplug. Nothing rebuilds the header after the removal, which
    # fires no online/offline event (so kdump-utils' rule never sees it; this
    # rule also matches memory remove): the header describes memory that is gone.
    g.del_dimm(1)
    g.check("sleep 2")
    assert block not in memory_blocks(g)
    ev = udev_env("memory", "remove", f"/devices/system/memory/{block}", 103)
    rng = f"[{start:#x}-{end:#x}]"
    # Reload off: the problem is reported, nothing is changed.
    status, reloads = run_hook_serving_reloads(
        {**env, **ev, "CRASHHP_RELOAD": "", "CRASHHP_DIGEST": "no"}, g, reload_dir
    )
    [e] = journal.entries()
    assert (status, reloads) == (1, 0)
    assert field(e, "PRIORITY") == "3"
    assert field(e, "CRASHHP_VERDICT") == "PROBLEM"
    assert "CHP051" in fields(e, "CRASHHP_CODE")
    assert rng in field(e, "MESSAGE")
    assert field(e, "CRASHHP_RELOAD") == "disabled"
    # Reload on: the guest's crash kernel is reloaded once, and the check that
    # follows finds the new header current.
    status, reloads = run_hook_serving_reloads(
        {**env, **ev, "SEQNUM": "104"}, g, reload_dir
    )
    entries = journal.entries()
    assert reloads == 1
    assert status == 0
    first, after, full = entries
    assert field(first, "CRASHHP_RUN") == "fast"
    assert field(first, "CRASHHP_STALE") == "CHP051"
    assert field(first, "CRASHHP_RELOAD") == "ran"
    assert field(after, "CRASHHP_RUN") == "fast after reload"
    assert field(after, "CRASHHP_VERDICT") == "OK"
    assert field(after, "PRIORITY") == "6"
    assert field(full, "CRASHHP_RUN") == "full"
    assert field(full, "CRASHHP_VERDICT") == "OK"
    assert field(full, "CRASHHP_DIGEST") == "match"

    # CPU hot-add: a kernel-built header (6.6+) already has a note for every
    # possible CPU, so the new CPU is described without any update.
    cpus_before = cpu_dirs(g)
    g.add_cpu(2)
    deadline = time.time() + 60
    while not cpu_dirs(g) - cpus_before:
        assert time.time() < deadline, "the hot-added CPU did not appear"
        time.sleep(0.5)
    new = sorted(cpu_dirs(g) - cpus_before)
    [cpu] = new
    if g.check(f"cat /sys/devices/system/cpu/{cpu}/online").strip() != "1":
        g.check(f"echo 1 > /sys/devices/system/cpu/{cpu}/online")
    ev = udev_env("cpu", "add", f"/devices/system/cpu/{cpu}", 105)
    status, reloads = run_hook_serving_reloads(
        {**env, **ev, "CRASHHP_DIGEST": "no"}, g, reload_dir
    )
    [e] = journal.entries()
    assert (status, reloads) == (0, 0)
    assert field(e, "CRASHHP_EVENT") == f"cpu add {cpu}"
    assert field(e, "CRASHHP_VERDICT") == "OK"
    assert "CHP040" not in field(e, "CRASHHP_CODES")
