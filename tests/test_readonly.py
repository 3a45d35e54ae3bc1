"""
Read-only: nothing drgn-crashhp runs can change the target.

Dynamically: the report (text, JSON, the ``%crashhp`` drgn command) runs on
synthetic kernels whose memory segments record each access, and memory is
byte-for-byte unchanged afterwards; each reader touches only the physical
bytes it is meant to read; a real vmcore is unchanged after the command
line read it.
Structurally: drgn's :class:`~drgn.Program` has no write API at all; drgn's
QEMU backend sends only QMP commands that read; and a scan of the package
source (ast) finds no call that could write target memory: no file opened
for writing, no ``/dev/mem``, ``/dev/kmem`` or ``/proc/kcore`` opened other
than by drgn, no ``ptrace``, ``ctypes``, ``mmap``, ``socket`` or
``subprocess``, and no QMP command named anywhere.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import _drgn
import drgn
import pytest

import drgn_crashhp.command
from drgn_crashhp.facts import Role
from drgn_crashhp.options import add_options
from drgn_crashhp.read.boot_params import read_cmdline
from drgn_crashhp.read.digest import hash_regions
from drgn_crashhp.read.elfcorehdr import read_elfcorehdr
from drgn_crashhp.read.image import read_kimage, read_kimage_with_heads
from drgn_crashhp.read.purgatory import read_purgatory
from drgn_crashhp.read.state import read_state
from drgn_crashhp.render.json import report_json
from drgn_crashhp.render.text import render_text
from drgn_crashhp.report import build_report
from drgn_crashhp.run import run
from tests.conftest import ROOT, real_fixture, unpack
from tests.support import purgblob as pb
from tests.support import synth
from tests.support.kimage import machine
from tests.support.synth import Machine, SynthKernel

PACKAGE = Path(drgn_crashhp.command.__file__).resolve().parent

Access = Tuple[int, int, bool]


@contextlib.contextmanager
def recording() -> Iterator[List[Access]]:
    """Make tests/support/synth.py's memory segments log every access as
    ``(address, count, physical)``; the program must be built inside."""
    log: List[Access] = []
    make_reader, zero_reader = synth._reader, synth._zero_reader

    def logged(
        read: Callable[[int, int, int, bool], bytes],
    ) -> Callable[[int, int, int, bool], bytes]:
        def access(address: int, count: int, offset: int, physical: bool) -> bytes:
            log.append((address, count, physical))
            return read(address, count, offset, physical)

        return access

    synth._reader = lambda buf: logged(make_reader(buf))  # type: ignore[assignment]
    synth._zero_reader = logged(zero_reader)  # type: ignore[assignment]
    try:
        yield log
    finally:
        synth._reader, synth._zero_reader = make_reader, zero_reader  # type: ignore[assignment]


def _memory_digest(kernel: SynthKernel) -> Dict[int, str]:
    return {
        base: hashlib.sha256(buf).hexdigest() for base, buf in kernel.mem.chunks.items()
    }


MACHINES: Dict[str, Callable[[], Machine]] = {
    "kexec_file_load": lambda: pb.file_image().machine,
    "kexec_load --hotplug": lambda: pb.load_image().machine,
    "memory blocks": lambda: (
        pb.file_image(memory_blocks={0: "MEM_ONLINE", 1: "MEM_OFFLINE"}).machine
    ),
    "pre-hotplug": lambda: machine("pre-hotplug"),
    "no crash kernel": lambda: Machine(segments=None),
}


def _everything(prog: drgn.Program) -> None:
    """The report both ways, and the options shared by the CLI and the drgn
    command (which drgn enables only for real kernels, not these programs)."""
    for kw in ({}, {"digest": False}, {"symbol": "kexec_image"}):
        report = build_report(prog, **kw)  # type: ignore[arg-type]
        render_text(report)
        render_text(report, quiet=True)
        json.dumps(report_json(report))
    out = io.StringIO()
    parser = argparse.ArgumentParser()
    add_options(parser.add_argument)
    for args in ("", "--json", "-q --no-digest", "--image kexec"):
        run(prog, parser.parse_args(args.split()), out=out)
    assert "verdict" in out.getvalue() and '"schema"' in out.getvalue()


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_everything_leaves_memory_unchanged(name: str) -> None:
    with recording() as log:
        kernel = SynthKernel(MACHINES[name]())
    before = _memory_digest(kernel)
    _everything(kernel.prog)
    assert log, "the recorder saw no access: it is not wired to the program"
    assert _memory_digest(kernel) == before


Span = Tuple[int, int]


def _physical(log: List[Access]) -> List[Span]:
    """Physical byte ranges ``[start, end)`` read, direct-map reads included."""
    out = []
    for address, count, physical in log:
        if not physical and synth.PAGE_OFFSET <= address < synth.START_KERNEL_MAP:
            address -= synth.PAGE_OFFSET
        elif not physical:
            continue
        out.append((address, address + count))
    return out


def _outside(spans: List[Span], allowed: List[Span]) -> List[Span]:
    return [
        s for s in spans if not any(lo <= s[0] and s[1] <= hi for lo, hi in allowed)
    ]


def _touches(spans: List[Span], target: Span) -> bool:
    return any(s[0] < target[1] and target[0] < s[1] for s in spans)


@pytest.mark.parametrize("build", [pb.file_image, pb.load_image])
def test_each_reader_reads_only_its_own_bytes(build: Callable[[], pb.Built]) -> None:
    """
    Which physical bytes each reader touches: the image reader the first
    page of each segment, the elfcorehdr reader its segment, the purgatory
    reader the purgatory segment, the command-line reader the boot params,
    the digest the hashed regions (and purgatory, where it searches); the
    machine-state reader none of the crash image.
    """
    built = build()
    with recording() as log:
        kernel = SynthKernel(built.machine)
    prog = kernel.prog
    segs = [(s.mem, s.mem + s.memsz) for s in built.segments]
    crash = [(kernel.machine.crashk[0], kernel.machine.crashk[1] + 1)]

    def reads(fn: Callable[[], object]) -> List[Span]:
        del log[:]
        fn()
        return _physical(log)

    state_spans = reads(lambda: read_state(prog))
    assert state_spans and not [s for s in state_spans if _touches(crash, s)]
    raw = read_kimage_with_heads(prog)
    assert raw is not None
    image_spans = reads(lambda: read_kimage_with_heads(prog))
    kimage = prog["kexec_crash_image"]
    struct = kimage.value_() - synth.PAGE_OFFSET
    struct_span = (struct, struct + drgn.sizeof(kimage.type_.type))
    assert _touches(image_spans, struct_span)
    heads = [(lo, min(hi, lo + 4096)) for lo, hi in segs]
    assert all(_touches(image_spans, h) for h in heads)
    assert _outside(image_spans, heads + [struct_span]) == []
    image = read_kimage(prog)
    assert image is not None and image.elfcorehdr is not None
    elf = image.elfcorehdr
    elf_spans = reads(lambda: read_elfcorehdr(prog, image))
    assert _touches(elf_spans, (elf.mem, elf.mem + 64))
    assert _outside(elf_spans, [(elf.mem, elf.mem + elf.memsz)]) == []
    purg = image.segment_containing(image.start)
    assert purg is not None
    p = read_purgatory(prog, image)
    purg_spans = reads(lambda: read_purgatory(prog, image))
    assert _touches(purg_spans, (purg.mem, purg.mem + purg.memsz))
    allowed = [(purg.mem, purg.mem + purg.memsz)]
    if image.file_mode:
        # The kernel's own purgatory blob and its size word (kernel data).
        blob = prog.symbol("kexec_purgatory").address - synth.PAGE_OFFSET
        size_at = prog.symbol("kexec_purgatory_size").address - synth.PAGE_OFFSET
        allowed += [(blob, blob + len(built.purgatory)), (size_at, size_at + 8)]
        assert _touches(purg_spans, allowed[1])
    assert _outside(purg_spans, allowed) == []
    params = image.by_role(Role.BOOT_PARAMS) or image.segment_containing(
        p.regs.rsi if p.regs else 0
    )
    assert params is not None
    cmd_spans = reads(lambda: read_cmdline(prog, image, p.regs))
    assert _touches(cmd_spans, (params.mem, params.mem + 4096))
    assert _outside(cmd_spans, [(params.mem, params.mem + params.memsz)]) == []
    digest_spans = reads(lambda: hash_regions(prog, p))
    regions = [(r.start, r.start + r.len) for r in p.regions]
    assert regions and all(_touches(digest_spans, r) for r in regions)
    assert _outside(digest_spans, regions + [(purg.mem, purg.mem + purg.memsz)]) == []


def test_drgn_program_has_no_write_api() -> None:
    names = [
        n
        for n in dir(drgn.Program)
        if "write" in n.lower() or "poke" in n.lower() or "store" in n.lower()
    ]
    assert names == []
    # Memory segments are registered with a read callback only.
    assert "write" not in drgn.Program.add_memory_segment.__doc__.lower()


# -- the source scan ---------------------------------------------------------

#: Calls that could write something, by their last name.
WRITE_CALLS = {
    "write",
    "writelines",
    "write_bytes",
    "write_text",
    "pwrite",
    "pwritev",
    "truncate",
    "ftruncate",
    "ptrace",
    "ioctl",
    "process_vm_writev",
    "mmap",
    "system",
    "popen",
    "Popen",
    "sendall",
    "send",
}
WRITE_MODULES = {"ctypes", "mmap", "socket", "subprocess", "fcntl", "shutil"}
TARGET_PATHS = ("/dev/mem", "/dev/kmem", "/proc/kcore", "/dev/crash")
#: Output the tool produces: text to its own stdout/stderr, or to the stream
#: a caller hands :func:`drgn_crashhp.run.run` (stdout by default).
OUTPUT_STREAMS = {"sys.stdout", "sys.stderr", "out"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _constant_strings(tree: ast.AST) -> Iterator[Tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def write_risks(source: str, filename: str) -> List[str]:
    """Every place in *source* that could write target memory."""
    tree = ast.parse(source, filename)
    found = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for mod in mods:
                if mod.split(".")[0] in WRITE_MODULES:
                    found.append(f"{where}: imports {mod}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if last in WRITE_CALLS and name.rsplit(".", 1)[0] not in OUTPUT_STREAMS:
            found.append(f"{where}: calls {name}")
        if last in ("open", "fdopen"):
            found.extend(f"{where}: {why}" for why in _open_risks(name, node))
        if last == "dump" and name == "json.dump":
            stream = node.args[1] if len(node.args) > 1 else None
            if stream is None or _dotted(stream) not in OUTPUT_STREAMS:
                found.append(f"{where}: json.dump to something else than stdout")
    for lineno, text in _constant_strings(tree):
        if any(p in text for p in TARGET_PATHS) and "open" in source:
            # Naming /proc/kcore in help text is fine; opening it is drgn's job.
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and _dotted(node.func).endswith("open")
                    and any(
                        isinstance(a, ast.Constant) and a.value == text
                        for a in node.args
                    )
                ):
                    found.append(f"{filename}:{lineno}: opens {text}")
        if '"execute"' in text or "'execute'" in text or text == "execute":
            found.append(f"{filename}:{lineno}: names a QMP command")
    return found


def _open_risks(name: str, node: ast.Call) -> List[str]:
    """open(), io.open(), os.fdopen(), Path.open(): any mode that writes;
    os.open(): anything but os.devnull."""
    if name == "os.open":
        # Only os.open(os.devnull, os.O_WRONLY) (silencing a broken pipe).
        target = _dotted(node.args[0]) if node.args else "?"
        return (
            []
            if target == "os.devnull"
            else ["os.open of something else than os.devnull"]
        )
    # The mode is open()'s second argument and Path.open()'s first.
    position = 1 if name in ("open", "io.open", "os.fdopen") else 0
    mode = (
        node.args[position]
        if len(node.args) > position
        else next((k.value for k in node.keywords if k.arg == "mode"), None)
    )
    if mode is None:
        return []
    if not isinstance(mode, ast.Constant) or not isinstance(mode.value, str):
        return ["open() with a computed mode"]
    if set(mode.value) & set("wax+"):
        return [f"open() for writing ({mode.value!r})"]
    return []


def test_source_has_no_write_path() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    names = {str(p.relative_to(PACKAGE)) for p in sources}
    assert names >= {
        "read/image.py",
        "read/elfcorehdr.py",
        "read/physmem.py",
        "report.py",
        "cli.py",
        "command.py",
    }
    risks = [
        r
        for p in sources
        for r in write_risks(p.read_text(), str(p.relative_to(PACKAGE)))
    ]
    # target.qemu_ram() talks QMP itself (QEMU's memory map for
    # --vmcoreinfo): its socket, its writes to that socket and the commands
    # it names are judged by test_own_qmp_commands_only_read instead.
    own_qmp = ("imports socket", "calls f.write", "names a QMP command")
    risks = [
        r for r in risks if not (r.startswith("target.py:") and r.endswith(own_qmp))
    ]
    assert risks == []


def test_own_qmp_commands_only_read() -> None:
    """The QMP commands the package sends itself (target.qemu_ram()) are
    among those drgn's backend may send, and the monitor commands among the
    reading ones: every ``execute(...)`` call names a constant command."""
    tree = ast.parse((PACKAGE / "target.py").read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and _dotted(n.func) == "execute"
    ]
    assert calls
    for call in calls:
        [command] = call.args
        assert isinstance(command, ast.Constant) and command.value in QMP_READS
        for kw in call.keywords:
            if kw.arg is None:
                assert isinstance(kw.value, ast.Dict)
                for k, v in zip(kw.value.keys, kw.value.values):
                    assert isinstance(k, ast.Constant) and k.value == "command-line"
                    assert isinstance(v, ast.Constant)
                    assert v.value.split()[0] in HMP_READS
                    assert v.value.split()[:2] == ["info", "mtree"]


@pytest.mark.parametrize(
    "snippet",
    [
        "open('/dev/mem', 'r+b')",
        "open(path, 'wb')",
        "open(path, mode)",
        "Path(p).open('r+b')",
        "import ctypes",
        "from socket import socket",
        "prog.write(addr, b'x')",
        "f.write(b'x')",
        "os.open('/proc/kcore', os.O_RDWR)",
        "import subprocess",
        "os.system('echo 1 > /proc/sys/kernel/panic')",
        "json.dump(doc, f)",
        "qmp = {'execute': 'pmemsave'}\nopen(p)",
        "x = 'execute'",
    ],
)
def test_scan_catches_writes(snippet: str) -> None:
    """The scanner itself finds what it must (so a clean scan means something)."""
    assert write_risks(snippet, "snippet.py")


@pytest.mark.parametrize(
    "snippet",
    [
        "sys.stdout.write('x')",
        "sys.stderr.write('x')",
        "json.dump(doc, sys.stdout, indent=2)",
        "open(path, 'rb')",
        "Path(p).open('rb')",
        "Path(p).open()",
        "os.open(os.devnull, os.O_WRONLY)",
        "help = 'the running kernel through /proc/kcore'",
    ],
)
def test_scan_allows_output(snippet: str) -> None:
    assert write_risks(snippet, "snippet.py") == []


#: QMP commands drgn's QEMU backend may send (``--qemu``): none of them
#: changes guest memory. ``dump-guest-memory`` copies one byte of guest RAM
#: into a file descriptor drgn passes with ``getfd``.
QMP_READS = {
    "qmp_capabilities",
    "query-target",
    "getfd",
    "closefd",
    "dump-guest-memory",
    "human-monitor-command",
}
#: Monitor commands inside ``human-monitor-command``: examine physical
#: memory, show the memory tree, translate an address.
HMP_READS = {"xp", "info", "gpa2hva"}


def test_drgn_qmp_backend_only_reads() -> None:
    binary = Path(_drgn.__file__).read_bytes()
    qmp = set(re.findall(rb'"execute":"([A-Za-z0-9_-]+)"', binary))
    hmp = {c.split()[0] for c in re.findall(rb'"command-line":"([^"]+)"', binary)}
    if not qmp:
        pytest.skip("this drgn has no QMP backend")
    assert {c.decode() for c in qmp} <= QMP_READS
    assert {c.decode() for c in hmp} <= HMP_READS


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_real_dump_is_unchanged(tmp_path: Path) -> None:
    """The command line on a real vmcore leaves the file as it was."""
    real_fixture("file_base")
    dump = unpack.dump_path("file_base")
    before = (_sha256(dump), dump.stat().st_mtime_ns)
    for extra in ((), ("--json",)):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "drgn_crashhp",
                "-c",
                str(dump),
                "-s",
                str(unpack.vmlinux_path()),
                "--no-default-symbols",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert "Traceback" not in proc.stderr
    assert (_sha256(dump), dump.stat().st_mtime_ns) == before
