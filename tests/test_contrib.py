"""contrib/kdump_ready.py and the CLI's missing-debug-info error on real dumps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, have_fixtures, unpack

pytestmark = pytest.mark.skipif(not have_fixtures(), reason="no fixtures")


def ready(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "contrib" / "kdump_ready.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "name,status,start",
    [
        ("file_memadd", 0, "kdump-ready: OK"),
        ("load_stale_memadd", 1, "kdump-ready: PROBLEM CHP050"),
        ("noload", 1, "kdump-ready: PROBLEM CHP001"),
    ],
)
def test_kdump_ready_one_line(name: str, status: int, start: str) -> None:
    proc = ready("-c", str(unpack.dump_path(name)), "-s", str(unpack.vmlinux_path()))
    assert proc.returncode == status, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), proc.stdout


def test_kdump_ready_json() -> None:
    proc = ready(
        "-c",
        str(unpack.dump_path("file_corrupt")),
        "-s",
        str(unpack.vmlinux_path()),
        "--json",
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == doc["exit_status"] == 1
    assert "CHP020" in {f["code"] for f in doc["findings"]}


def test_missing_debug_info_names_the_build_id(tmp_path) -> None:
    from tests.conftest import dump_without_btf

    dump = dump_without_btf("file_base", tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn_crashhp",
            "-c",
            str(dump),
            "--no-default-symbols",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "no kernel debug info found" in line and "build ID" in line
