"""The command line on bad targets: one line, a distinct status, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from drgn_crashhp.findings import EXIT_USAGE


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drgn_crashhp", *args],
        capture_output=True, text=True, timeout=120, **kw,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("drgn-crashhp: error: ")
    for w in words:
        assert w in lines[0]


def test_help() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    assert "CHP050" in proc.stdout and "exit status" in proc.stdout


def test_missing_vmcore(tmp_path: Path) -> None:
    assert_one_line_error(run("-c", str(tmp_path / "nope")), "no such file")


def test_garbage_vmcore(tmp_path: Path) -> None:
    p = tmp_path / "garbage"
    p.write_bytes(os.urandom(8192))
    assert_one_line_error(run("-c", str(p)), "cannot open")


def test_empty_vmcore(tmp_path: Path) -> None:
    p = tmp_path / "empty"
    p.write_bytes(b"")
    assert_one_line_error(run("-c", str(p)))


def test_usage_error() -> None:
    proc = run("--bogus")
    assert proc.returncode == EXIT_USAGE
    assert "Traceback" not in proc.stderr
