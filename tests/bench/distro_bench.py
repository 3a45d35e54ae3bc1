#!/usr/bin/env python3
"""
drgn-crashhp on a Debian distribution kernel with full debug info, against
drgn's own open time on the same dump.

    python3 tests/bench/distro_bench.py [--suite bookworm-backports]
        [--flavour cloud-amd64 | --package linux-image-KVER] [--runs 10]
        [--mem 1G] [--crashkernel 128M] [--reuse] [--dumps ELF,kdump]
        [--profile] [--json-out FILE]

One command from a clean clone (root, Debian, QEMU 10 from
``vmcores/lab/setup.sh --live``, whose apt sources file adds the extra suites):

1. ``apt-get download``s the kernel of ``linux-image-FLAVOUR`` in SUITE and its
   ``-dbg`` package, and unpacks vmlinuz, the debug vmlinux and the
   ``qemu_fw_cfg`` module (Debian builds it as a module; without it QEMU's dump
   has no VMCOREINFO) into ``${XDG_CACHE_HOME:-~/.cache}/drgn-crashhp/bench/``.
2. Boots it under QEMU with the lab's driver (``vmcores/lab/guest.py``) and
   the fixtures' guest initramfs plus the module, loads the lab kernel as crash
   kernel with ``kexec -s -p``, hot-adds a 128 MiB DIMM, and dumps the guest as
   ELF and as kdump-raw-zlib (``dump-guest-memory``) into the cache.
   ``--reuse`` skips this step and times the dumps a previous run left there
   (no ``--qemu`` pair then, as no guest runs).
3. Times (after one untimed warm-up of each) drgn's open
   (``drgn -q -c VMCORE -s VMLINUX -e pass``, ``drgn -q --qemu SOCK ...``)
   and drgn-crashhp's full report, ``--no-digest``, ``--json`` and ``--qemu``
   in --runs interleaved rounds: each round runs every command once, back to
   back. The figure judged against a target is the paired one: the median
   over the rounds of each round's ratio to the matching drgn open, with its
   spread (lowest, quartiles, highest), in wall-clock and in CPU time (user +
   system of the child, which load from other jobs moves less). The ratio of
   the medians is printed beside it, for reference only: on a shared machine
   it mixes runs that saw different loads.
4. Import time of the package on top of drgn's, and the digest throughput
   (``tests/bench/digest_bench.py`` on the ELF dump).

``--profile`` adds a cProfile of the full report on each dump (top functions by
own time). Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import lzma
import os
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "vmcores" / "lab"))

from guest import Guest, GuestError  # noqa: E402

CAPTURE_APPEND = "console=ttyS0 acpi_no_memhotplug irqpoll nr_cpus=1 reset_devices"
KEXEC_CMD = f'kexec -s -p /bzImage --initrd=/capture.cpio --append="{CAPTURE_APPEND}"'
DIMM_SIZE = 128 << 20

# (variant, baseline variant, target for the paired per-round ratio or None)
TARGETS = {
    "crashhp full ELF": ("drgn open ELF", 1.15),
    "crashhp --no-digest ELF": ("drgn open ELF", 1.05),
    "crashhp --json ELF": ("drgn open ELF", None),
    "crashhp full kdump": ("drgn open kdump", 1.3),
    "crashhp --no-digest kdump": ("drgn open kdump", 1.1),
    "crashhp --json kdump": ("drgn open kdump", None),
    "crashhp --qemu": ("drgn open --qemu", 1.5),
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "drgn-crashhp" / "bench"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ packages
def apt_field(spec: str, field: str) -> Optional[str]:
    """A field of ``apt-cache show SPEC`` (first stanza), None if unknown."""
    proc = subprocess.run(["apt-cache", "show", spec], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    m = re.search(rf"^{field}: (.*)$", proc.stdout, re.M)
    return m.group(1) if m else ""


def resolve_kernel(suite: str, flavour: str) -> str:
    """``linux-image-FLAVOUR/SUITE`` (meta-package) -> ``linux-image-KVER``."""
    meta = f"linux-image-{flavour}/{suite}"
    depends = apt_field(meta, "Depends")
    if not depends:
        sys.exit(
            f"apt-cache knows no {meta}: run vmcores/lab/setup.sh --live "
            "(it adds bookworm-backports, trixie and trixie-backports to "
            "the apt sources) and apt-get update"
        )
    # 7.x meta-packages list linux-base-FLAVOUR first
    m = re.search(r"\b(linux-image-\d\S*)", depends)
    if not m:
        sys.exit(f"{meta} depends on no versioned kernel: {depends}")
    return m.group(1)


def download(pkg: str, debs: Path) -> Path:
    """``apt-get download PKG`` into *debs* once; the .deb path."""
    have = sorted(debs.glob(f"{pkg}_*.deb"))
    if have:
        return have[-1]
    debs.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(LookupError, OSError):
        shutil.chown(debs, "_apt")  # lets apt-get download fetch sandboxed
    log(f"apt-get download {pkg}")
    subprocess.run(
        ["apt-get", "download", "-q", pkg],
        cwd=debs,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    have = sorted(debs.glob(f"{pkg}_*.deb"))
    if not have:
        sys.exit(f"apt-get download {pkg} left no .deb in {debs}")
    return have[-1]


def extract(deb: Path, dest: Path, patterns: Sequence[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    tar = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE
    )
    subprocess.run(
        ["tar", "-x", "-C", str(dest), "--wildcards", *patterns],
        stdin=tar.stdout,
        check=False,
        stderr=subprocess.DEVNULL,
    )
    assert tar.stdout is not None
    tar.stdout.close()
    tar.wait()


def one(dest: Path, patterns: Sequence[str]) -> Optional[Path]:
    for pat in patterns:
        hits = sorted(glob.glob(str(dest / pat)))
        if hits:
            return Path(hits[0])
    return None


def fetch_kernel(kpkg: str, cache: Path) -> Dict[str, Path]:
    """vmlinuz, debug vmlinux and qemu_fw_cfg.ko of *kpkg*, cached."""
    kver = kpkg[len("linux-image-") :]
    dest = cache / kver
    debs = cache / "debs"
    vmlinuz_pats = ("boot/vmlinuz-*", "usr/lib/modules/*/vmlinuz*")
    vmlinux_pats = (
        "usr/lib/debug/boot/vmlinux-*",
        "usr/lib/debug/lib/modules/*/vmlinux",
    )
    module_pats = (
        "lib/modules/*/kernel/drivers/firmware/qemu_fw_cfg.ko*",
        "usr/lib/modules/*/kernel/drivers/firmware/qemu_fw_cfg.ko*",
    )
    if not one(dest, vmlinux_pats):
        extract(download(kpkg + "-dbg", debs), dest, ["*/vmlinux*"])
    # Debian 6.x: linux-image-KVER-unsigned; 7.x: linux-binary-unsigned-KVER
    # (kernel) and linux-modules-KVER (modules), kernel-notes section 11.
    for cand in (
        kpkg + "-unsigned",
        "linux-binary-unsigned-" + kver,
        "linux-modules-" + kver,
        kpkg,
    ):
        if one(dest, vmlinuz_pats) and one(dest, module_pats):
            break
        if apt_field(cand, "Package") is None:
            continue
        extract(
            download(cand, debs),
            dest,
            ["*vmlinuz*", "*/qemu_fw_cfg.ko*", "./boot/config-*"],
        )
    files = {
        "vmlinuz": one(dest, vmlinuz_pats),
        "vmlinux": one(dest, vmlinux_pats),
        "module": one(dest, module_pats),
    }
    missing = [k for k, v in files.items() if v is None]
    if missing:
        sys.exit(
            f"{kpkg}: could not find {', '.join(missing)} in its packages ({dest})"
        )
    return files  # type: ignore[return-value]


# ------------------------------------------------------------------ initramfs
def newc(entries: Sequence[Tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive of (name, mode, data) entries plus the trailer."""
    out = io.BytesIO()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], 1):
        raw = name.encode() + b"\0"
        fields = (
            ino if name != "TRAILER!!!" else 0,
            mode,
            0,
            0,
            1,
            0,
            len(data),
            0,
            0,
            0,
            0,
            len(raw),
            0,
        )
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + raw)
        out.write(b"\0" * (-out.tell() % 4) + data + b"\0" * (-len(data) % 4))
    return out.getvalue()


def guest_initrd(base: Path, module: Path, dest: Path) -> Path:
    """The lab initramfs plus /qemu_fw_cfg.ko, as one concatenated archive."""
    data = module.read_bytes()
    if module.suffix == ".xz":
        data = lzma.decompress(data)
    elif module.suffix == ".zst":
        import zstandard

        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    blob = base.read_bytes()
    blob += b"\0" * (-len(blob) % 4) + newc([("qemu_fw_cfg.ko", 0o100644, data)])
    if not dest.exists() or dest.read_bytes() != blob:
        dest.write_bytes(blob)
    return dest


def lab_initramfs() -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "vmcores_unpack", ROOT / "vmcores" / "unpack.py"
    )
    assert spec is not None and spec.loader is not None
    unpack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unpack)
    return Path(unpack.unpack()) / "initramfs.cpio"


# ------------------------------------------------------------------ guest
def boot(
    args: argparse.Namespace,
    files: Dict[str, Path],
    initrd: Path,
    run: Path,
    qmp_sock: Path,
) -> Tuple[Guest, Dict[str, object]]:
    append = (
        f"console=ttyS0 crashkernel={args.crashkernel} "
        "memhp_default_state=online_movable"
    )
    for attempt in range(1, 4):
        if qmp_sock.exists():
            qmp_sock.unlink()
        g = Guest(
            str(run),
            str(files["vmlinuz"]),
            str(initrd),
            append=append,
            mem=f"{args.mem},slots=4,maxmem=4G",
            extra_args=["-qmp", f"unix:{qmp_sock},server=on,wait=off"],
            name="distro",
        )
        t0 = time.monotonic()
        g.start()
        try:
            g.wait_ready(1200)
            boot_s = time.monotonic() - t0
            if int(g.read("/sys/kernel/kexec_crash_size").strip() or 0):
                break
            log(f"boot {attempt}: no crashkernel reservation, booting again")
        except GuestError:
            g.close()
            raise
        g.close()
    else:
        sys.exit(f"crashkernel={args.crashkernel} was never reserved; see {run}")
    info: Dict[str, object] = {
        "boot_s": round(boot_s, 1),
        "boot_attempts": attempt,
        "release": g.check("uname -r").strip(),
    }
    log(f"booted {info['release']} in {boot_s:.1f} s")
    g.check("insmod /qemu_fw_cfg.ko")  # writes VMCOREINFO into fw_cfg for the dumps
    g.check(KEXEC_CMD, timeout=600)
    if g.read("/sys/kernel/kexec_crash_loaded").strip() != "1":
        raise GuestError("kexec -s -p did not load a crash kernel")
    dimm = g.add_dimm(1, DIMM_SIZE)
    block = int(g.read("/sys/devices/system/memory/block_size_bytes").strip(), 16)
    state = f"/sys/devices/system/memory/memory{dimm['addr'] // block}/state"
    for _ in range(100):
        if g.run(f"cat {state}")[1].strip() == "online":
            break
        time.sleep(0.2)
    else:
        raise GuestError(f"hot-added DIMM at {dimm['addr']:#x} never came online")
    info["dimm"] = [dimm["addr"], dimm["addr"] + dimm["size"] - 1]
    info["crash_hotplug"] = g.run("cat /sys/devices/system/memory/crash_hotplug")[
        1
    ].strip()
    return g, info


UTSNAME = 8 + 4  # disk_dump_header: signature, header_version, new_utsname
UTS_FIELDS = ("sysname", "nodename", "release", "version", "machine")


def write_utsname(path: Path, uts: Dict[str, str]) -> None:
    """QEMU 10.0's kdump formats leave utsname empty (machine "Unknown"), and
    libkdumpfile takes the architecture from it only when sysname is "Linux"
    and release, version and machine are set (uts_looks_sane), so drgn cannot
    open the file without --architecture. makedumpfile writes the crashed
    kernel's utsname there; so does this, from the guest's uname."""
    with open(path, "r+b") as f:
        if f.read(8) != b"KDUMP   ":
            raise GuestError(f"{path}: not a kdump file")
        f.seek(UTSNAME)
        f.write(b"".join(uts[k].encode()[:64].ljust(65, b"\0") for k in UTS_FIELDS))


def dump(g: Guest, run: Path) -> Dict[str, Path]:
    uts = dict(
        zip(
            UTS_FIELDS, ("Linux", *(g.check(f"uname -{opt}").strip() for opt in "nrvm"))
        )
    )
    out = {}
    for name, fmt in (("ELF", "elf"), ("kdump", "kdump-raw-zlib")):
        path = run / f"vmcore.{fmt}"
        if path.exists():
            path.unlink()
        t0 = time.monotonic()
        g.qmp(
            "dump-guest-memory",
            paging=False,
            protocol=f"file:{path}",
            format=fmt,
            detach=False,
        )
        log(
            f"dumped {fmt}: {path.stat().st_size / 2**20:.0f} MiB in "
            f"{time.monotonic() - t0:.1f} s"
        )
        if fmt != "elf":
            write_utsname(path, uts)
        out[name] = path
    return out


# ------------------------------------------------------------------ timing
def child_env() -> Dict[str, str]:
    """The checkout's package first; bytecode cached like an installed
    package's (PYTHONDONTWRITEBYTECODE would compile every module from
    source in every timed run, drgn's own are precompiled by pip), in the
    bench cache rather than the repository."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache_dir() / "pycache")
    return env


def variants(
    dumps: Dict[str, Path], vmlinux: Path, sock: Optional[Path]
) -> Dict[str, List[str]]:
    py = sys.executable
    out = {}
    for name, core in dumps.items():
        out[f"drgn open {name}"] = [
            py,
            "-m",
            "drgn",
            "-q",
            "-c",
            str(core),
            "-s",
            str(vmlinux),
            "-e",
            "pass",
        ]
        base = [py, "-m", "drgn_crashhp", "-c", str(core), "-s", str(vmlinux)]
        out[f"crashhp full {name}"] = base
        out[f"crashhp --no-digest {name}"] = base + ["--no-digest"]
        out[f"crashhp --json {name}"] = base + ["--json"]
    if sock is not None:
        out["drgn open --qemu"] = [
            py,
            "-m",
            "drgn",
            "-q",
            "--qemu",
            str(sock),
            "-s",
            str(vmlinux),
            "-e",
            "pass",
        ]
        out["crashhp --qemu"] = [
            py,
            "-m",
            "drgn_crashhp",
            "--qemu",
            str(sock),
            "-s",
            str(vmlinux),
        ]
    return out


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(name: str, argv: List[str]) -> Tuple[float, float, str]:
    """(wall-clock seconds, CPU seconds, stdout) of one run. The CPU time is
    the difference in the reaped children's total around it: the only child
    reaped meanwhile is this one (the guest's QEMU is reaped at the end)."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=child_env())
    elapsed = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    ok = (0,) if name.startswith("drgn") else (0, 1, 3)
    if proc.returncode not in ok or "Traceback" in proc.stderr:
        sys.exit(
            f"{name} failed ({proc.returncode}): {' '.join(argv)}\n"
            f"{proc.stderr[-3000:]}"
        )
    return elapsed, cpu, proc.stdout


Times = Dict[str, Dict[str, List[float]]]


def measure(cmds: Dict[str, List[str]], runs: int) -> Times:
    """Warm up each command once, then *runs* rounds; each round runs every
    command once, starting one place later than the round before, so load
    noise and cache state fall on every variant alike. Returns
    ``{"wall": {name: seconds per round}, "cpu": {...}}``."""
    names = list(cmds)
    for name in names:
        _, _, out = run_once(name, cmds[name])
        if name.startswith("crashhp full") or name == "crashhp --qemu":
            verdict = next(
                (ln for ln in out.splitlines() if "verdict" in ln.lower()),
                out.splitlines()[0] if out else "",
            )
            log(f"{name}: {verdict.strip()}")
    times: Times = {"wall": {n: [] for n in names}, "cpu": {n: [] for n in names}}
    for r in range(runs):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, cpu, _ = run_once(name, cmds[name])
            times["wall"][name].append(wall)
            times["cpu"][name].append(cpu)
        log(f"round {r + 1}/{runs} done")
    return times


IMPORT_SETS = {
    "drgn": "import drgn",
    # what `drgn -c VMCORE -e pass` imports besides drgn (cli.py's globals)
    "drgn CLI": "import drgn.cli, drgn.helpers.common, drgn.helpers.linux",
    "drgn_crashhp": "import drgn_crashhp",
    # the package may load its modules on first use: what a report needs
    "drgn_crashhp API": "from drgn_crashhp import build_report, report_json, "
    "render_text, open_program, TargetError, exit_status",
}
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")


def _import_rows(stderr: str) -> List[Tuple[int, str, int, int]]:
    """(depth, module, self us, cumulative us) of each -X importtime line."""
    return [
        (len(m.group(3)), m.group(4), int(m.group(1)), int(m.group(2)))
        for m in map(IMPORT_LINE.match, stderr.splitlines())
        if m
    ]


def import_breakdown(stderr: str, baseline: set) -> Dict[str, float]:
    """Seconds of an import by what it adds to *baseline* (the modules that
    ``import drgn`` loads): drgn_crashhp's own modules (self time), and each
    other package it brings in (cumulative time of the first module of each
    new subtree, by top-level name; drgn's subpackages by their own name)."""
    rows = _import_rows(stderr)
    out: Dict[str, float] = {}
    for i, (depth, name, self_us, cum_us) in enumerate(rows):
        if name in baseline:
            continue
        # -X importtime prints a module after its imports, one level less deep
        parent = next((r[1] for r in rows[i + 1 :] if r[0] < depth), "")
        if name.split(".")[0] == "drgn_crashhp":
            key, value = "drgn_crashhp (own modules)", self_us
        elif (
            parent and parent not in baseline and not parent.startswith("drgn_crashhp")
        ):
            continue  # inside a subtree already counted
        else:
            parts = name.split(".")
            key = ".".join(parts[:3] if parts[0] == "drgn" else parts[:1])
            value = cum_us
        out[key] = out.get(key, 0) + value / 1e6
    return out


def import_cost(runs: int) -> Dict[str, object]:
    """-X importtime of each IMPORT_SETS entry: the sum of the top-level
    imports' cumulative times (site's own included, the same in each), median
    of *runs* interleaved runs; and the median breakdown of the API import."""

    def once(stmt: str) -> Tuple[float, str]:
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", stmt],
            capture_output=True,
            text=True,
            env=child_env(),
            check=True,
        )
        total = sum(c for d, _, _, c in _import_rows(proc.stderr) if d == 0)
        return total / 1e6, proc.stderr

    res: Dict[str, List[float]] = {name: [] for name in IMPORT_SETS}
    parts: Dict[str, List[float]] = {}
    for _ in range(runs):
        errs = {}
        for name, stmt in IMPORT_SETS.items():
            total, errs[name] = once(stmt)
            res[name].append(total)
        baseline = {r[1] for r in _import_rows(errs["drgn"])}
        for key, v in import_breakdown(errs["drgn_crashhp API"], baseline).items():
            parts.setdefault(key, []).append(v)
    out: Dict[str, object] = {n: statistics.median(v) for n, v in res.items()}
    out["breakdown"] = dict(
        sorted(
            (
                (k, statistics.median(v + [0.0] * (runs - len(v))))
                for k, v in parts.items()
            ),
            key=lambda kv: -kv[1],
        )
    )
    return out


def profile(core: Path, vmlinux: Path, top: int, tries: int = 3) -> str:
    """cProfile of a full report in a fresh interpreter, the least disturbed
    (fastest) of *tries*: the top by own time and the top by cumulative time
    inside drgn_crashhp."""
    with tempfile.TemporaryDirectory() as tmp:
        best = None
        for i in range(tries):
            out = Path(tmp) / f"prof{i}"
            argv = [sys.executable, "-m", "cProfile", "-o", str(out)]
            argv += ["-m", "drgn_crashhp", "-c", str(core), "-s", str(vmlinux)]
            subprocess.run(
                argv,
                env=child_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            buf = io.StringIO()
            st = pstats.Stats(str(out), stream=buf)
            if best is None or st.total_tt < best[0].total_tt:  # type: ignore[attr-defined]
                best = (st, buf)
        assert best is not None
        st, buf = best
        buf.write(f"fastest of {tries}: total {st.total_tt:.3f} s\n")  # type: ignore[attr-defined]
        st.sort_stats("tottime").print_stats(top)
        st.sort_stats("cumulative").print_stats("drgn_crashhp", top)
        return buf.getvalue()


# ------------------------------------------------------------------ main
def spread(values: Sequence[float]) -> Tuple[float, float, float, float, float]:
    """(lowest, first quartile, median, third quartile, highest)."""
    v = sorted(values)
    if len(v) == 1:
        return (v[0],) * 5  # type: ignore[return-value]
    q1, q2, q3 = statistics.quantiles(v, n=4, method="inclusive")
    return v[0], q1, q2, q3, v[-1]


def report(times: Times) -> List[Dict[str, object]]:
    """Per variant: the paired ratio to its drgn open (each round's ratio,
    then their median and spread), in wall-clock and CPU time, judged against
    the target on the wall-clock median; and the ratio of the medians, for
    reference."""
    wall, cpu = times["wall"], times["cpu"]
    rows = []
    for name, values in wall.items():
        base, target = TARGETS.get(name, (None, None))
        row: Dict[str, object] = {
            "variant": name,
            "median_s": round(statistics.median(values), 3),
            "min_s": round(min(values), 3),
            "max_s": round(max(values), 3),
            "cpu_median_s": round(statistics.median(cpu[name]), 3),
            "target": target,
        }
        if base in wall:
            for key, series in (("wall", wall), ("cpu", cpu)):
                per_round = [a / b for a, b in zip(series[name], series[base])]
                row[f"{key}_per_round"] = [round(x, 3) for x in per_round]
                row[f"{key}_paired"] = [round(x, 3) for x in spread(per_round)]
            row["ratio_of_medians"] = round(
                statistics.median(values) / statistics.median(wall[base]), 3
            )
            paired = row["wall_paired"][2]  # type: ignore[index]
            row["meets"] = None if target is None else paired <= target
        rows.append(row)

    def x(v: object) -> str:
        return "" if v is None else f"{v:.2f}x"

    def sp(v: object) -> str:
        if v is None:
            return ""
        lo, q1, _, q3, hi = v  # type: ignore[misc]
        return f"{lo:.2f}-[{q1:.2f}-{q3:.2f}]-{hi:.2f}"

    print(
        f"\n{'variant':26} {'wall s':>6} {'cpu s':>6}  {'paired':>6} "
        f"{'spread: min-[q1-q3]-max':>24}  {'cpu':>6} {'spread':>24}  "
        f"{'of med':>6}  target"
    )
    for r in rows:
        wp, cp = r.get("wall_paired"), r.get("cpu_paired")
        tgt = (
            ""
            if r["target"] is None
            else f"<= {r['target']}x {'ok' if r.get('meets') else 'MISSED'}"
        )
        print(
            f"{r['variant']:26} {r['median_s']:6.3f} {r['cpu_median_s']:6.3f}  "
            f"{x(wp[2] if wp else None):>6} {sp(wp):>24}  "  # type: ignore[index]
            f"{x(cp[2] if cp else None):>6} {sp(cp):>24}  "  # type: ignore[index]
            f"{x(r.get('ratio_of_medians')):>6}  {tgt}"
        )
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--suite", default="bookworm-backports")
    p.add_argument("--flavour", default="cloud-amd64")
    p.add_argument(
        "--package",
        help="linux-image-KVER (default: what the "
        "linux-image-FLAVOUR meta-package of SUITE depends on)",
    )
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--mem", default="1G", help="guest RAM at boot (QEMU -m)")
    p.add_argument("--crashkernel", default="128M")
    p.add_argument(
        "--initrd",
        type=Path,
        help="lab guest initramfs "
        "(default: the fixtures' initramfs.cpio, via vmcores/unpack.py)",
    )
    p.add_argument("--cache", type=Path, default=cache_dir())
    p.add_argument(
        "--profile", action="store_true", help="cProfile a full report per dump"
    )
    p.add_argument("--no-qemu", action="store_true", help="skip the --qemu pair")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="time the dumps a previous run left in the cache; boot no guest "
        "(implies --no-qemu)",
    )
    p.add_argument(
        "--dumps",
        default="ELF,kdump",
        help="which dumps to time, comma-separated (default: ELF,kdump)",
    )
    p.add_argument("--json-out", type=Path, help="write the figures here as JSON")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if not args.reuse and shutil.which("qemu-system-x86_64") is None:
        sys.exit("qemu-system-x86_64 not found: run vmcores/lab/setup.sh --live")

    kpkg = args.package or resolve_kernel(args.suite, args.flavour)
    log(f"kernel package {kpkg}")
    files = fetch_kernel(kpkg, args.cache)
    run = args.cache / "run"
    run.mkdir(parents=True, exist_ok=True)
    initrd = guest_initrd(
        args.initrd or lab_initramfs(), files["module"], run / "initramfs-bench.cpio"
    )
    sock = run / "drgn.qmp.sock"
    wanted = [d.strip() for d in args.dumps.split(",") if d.strip()]
    if args.reuse:
        dumps = {
            name: run / f"vmcore.{fmt}"
            for name, fmt in (("ELF", "elf"), ("kdump", "kdump-raw-zlib"))
        }
        missing = [str(p) for p in dumps.values() if not p.exists()]
        if missing:
            sys.exit(f"--reuse: no dumps from a previous run: {', '.join(missing)}")
        info: Dict[str, object] = {"release": kpkg[len("linux-image-") :]}
        info["boot_s"] = "-"
        timed = {k: v for k, v in dumps.items() if k in wanted}
        times = measure(variants(timed, files["vmlinux"], None), args.runs)
    else:
        g, info = boot(args, files, initrd, run, sock)
        try:
            dumps = dump(g, run)
            timed = {k: v for k, v in dumps.items() if k in wanted}
            cmds = variants(timed, files["vmlinux"], None if args.no_qemu else sock)
            times = measure(cmds, args.runs)
        finally:
            g.close()
    vmlinux = files["vmlinux"]
    print(
        f"\nkernel {info['release']} ({kpkg}), guest {args.mem} + "
        f"{DIMM_SIZE >> 20} MiB DIMM, booted in {info['boot_s']} s; "
        f"vmlinux {vmlinux.stat().st_size / 1e6:.0f} MB; dumps: "
        + ", ".join(f"{k} {v.stat().st_size / 2**20:.0f} MiB" for k, v in dumps.items())
    )
    print(
        f"{args.runs} interleaved rounds, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; paired = median of "
        "the per-round ratios to the matching drgn open (wall-clock, then CPU "
        "time); of med = ratio of the medians (reference only)"
    )
    rows = report(times)

    imp = import_cost(max(args.runs, 5))
    extra = float(imp["drgn_crashhp"]) - float(imp["drgn"])  # type: ignore[arg-type]
    api_extra = float(imp["drgn_crashhp API"]) - float(imp["drgn"])  # type: ignore[arg-type]
    cli_extra = float(imp["drgn_crashhp API"]) - float(imp["drgn CLI"])  # type: ignore[arg-type]
    print(
        "\nimport time (python -X importtime, sum of top-level cumulative, median): "
        + ", ".join(f"{n} {imp[n]:.3f} s" for n in IMPORT_SETS)
        + f"\n  `import drgn_crashhp` on top of `import drgn`: {extra:.3f} s "
        f"(target < 0.1 s: {'ok' if extra < 0.1 else 'MISSED'})"
        f"\n  the public API (everything a report needs) on top of `import drgn`: "
        f"{api_extra:.3f} s; on top of what drgn's CLI imports: {cli_extra:.3f} s"
        "\n  what the API import pulls in: "
        + ", ".join(f"{k} {v:.3f} s" for k, v in imp["breakdown"].items() if v >= 0.002)  # type: ignore[attr-defined]
    )

    digest = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "bench" / "digest_bench.py"),
            str(dumps["ELF"]),
            str(vmlinux),
            "--repeat",
            "3",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    print("\ndigest throughput (tests/bench/digest_bench.py on the ELF dump):")
    print(
        digest.stdout.strip()
        if digest.returncode == 0
        else f"  not measured: {(digest.stderr.strip().splitlines() or ['?'])[-1]}"
    )

    profiles = {}
    if args.profile:
        for name, core in dumps.items():
            profiles[name] = profile(core, vmlinux, 25)
            print(
                f"\ncProfile of the full report on the {name} dump:\n{profiles[name]}"
            )
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {
                    "package": kpkg,
                    "guest": info,
                    "runs": args.runs,
                    "results": rows,
                    "times": times,
                    "import": imp,
                    "digest": digest.stdout,
                    "profiles": profiles,
                },
                indent=1,
            )
            + "\n"
        )
    return 0 if all(r.get("meets") is not False for r in rows) and extra < 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
