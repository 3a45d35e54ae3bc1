"""contrib/batch_triage.py over the bundled vmcores agrees with ground truth."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from tests.conftest import ROOT, have_fixtures, unpack


@pytest.fixture(scope="module")
def triage(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Dict[str, Any]]:
    if not have_fixtures():
        pytest.skip("fixtures not available")
    out = tmp_path_factory.mktemp("batch") / "triage.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "contrib" / "batch_triage.py"),
            str(unpack.unpack()),
            "-s",
            str(unpack.vmlinux_path()),
            "-j",
            "2",
            "--jsonl",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    by_name = {Path(d["dump"]).name: d for d in docs}
    assert "purgatory hang" in proc.stderr  # the summary table
    assert proc.returncode == 1  # some fixtures have problems by design
    return by_name


def codes(doc: Dict[str, Any]) -> set:
    return {f["code"] for f in doc["findings"]}


@pytest.mark.parametrize("name", sorted(unpack.scenarios()) if have_fixtures() else [])
def test_batch_matches_ground_truth(
    triage: Dict[str, Dict[str, Any]], name: str
) -> None:
    truth = unpack.scenarios()[name]
    doc = triage[truth["dump"]]
    expected = truth["expected"]
    found = codes(doc)
    if not expected["crash_loaded"]:
        assert "CHP001" in found
        return
    assert ("CHP020" in found) == (expected["digest"] == "mismatch")
    if expected["digest"] == "match":
        assert "CHP021" in found
    assert ("CHP050" in found) == bool(expected["missing_ram"])
    assert ("CHP051" in found) == bool(expected["extra_ram"])
    if expected["elfcorehdr"] == "current" and expected["digest"] == "match":
        assert doc["verdict"] == "OK", doc["findings"]


def _readelf_build_id(path: Path) -> str:
    out = subprocess.run(
        ["readelf", "-n", str(path)], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    assert m, out
    return m.group(1)


def test_dumps_grouped_by_build_id(tmp_path: Path) -> None:
    # The build ID each dump's VMCOREINFO names must be the one binutils reads
    # from the vmlinux the fixtures were made with; a -s file of another build
    # (Debian's own python3) must not be offered for them, and a dump whose
    # build ID cannot be read falls back to every -s file like the CLI.
    if not have_fixtures() or shutil.which("readelf") is None:
        pytest.skip("fixtures or readelf not available")
    spec = importlib.util.spec_from_file_location(
        "batch_triage", ROOT / "contrib" / "batch_triage.py"
    )
    assert spec is not None and spec.loader is not None
    bt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bt)
    vmlinux = unpack.vmlinux_path()
    want = _readelf_build_id(vmlinux)
    assert bt.file_build_id(str(vmlinux)) == want
    dumps = [unpack.dump_path(n) for n in sorted(unpack.scenarios())]
    assert [bt.dump_build_id(d) for d in dumps] == [want] * len(dumps)
    others = [
        p
        for p in ("/usr/bin/python3", sys.executable)
        if Path(p).exists() and bt.file_build_id(p)
    ]
    for other in others:
        assert bt.file_build_id(other) == _readelf_build_id(Path(other)) != want
    headless = tmp_path / "headless.elf"
    with open(dumps[0], "rb") as f:
        headless.write_bytes(f.read(64))  # the ELF header, no notes
    assert bt.dump_build_id(headless) is None
    symbols = [*others, str(vmlinux)]
    jobs = dict(
        (d, (s, default)) for d, s, default in bt.plan([*dumps, headless], symbols)
    )
    for d in dumps:
        assert jobs[str(d)] == ((str(vmlinux),), False)
    assert jobs[str(headless)] == (tuple(symbols), False)


def test_dumps_are_found_in_var_crash_layout(tmp_path: Path) -> None:
    """kdump-tools saves /var/crash/<stamp>/dump.<stamp> (flattened format,
    'makedumpfile' signature): a directory is searched at any depth, and
    what is not a dump is left out."""
    spec = importlib.util.spec_from_file_location(
        "batch_triage", ROOT / "contrib" / "batch_triage.py"
    )
    assert spec is not None and spec.loader is not None
    bt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bt)
    stamp = tmp_path / "crash" / "202612062358"
    stamp.mkdir(parents=True)
    (stamp / "dump.202612062358").write_bytes(b"makedumpfile" + bytes(4084))
    (stamp / "dmesg.202612062358").write_text("[    0.000000] Linux version\n")
    (tmp_path / "crash" / "kexec_cmd").write_text("kexec -p ...\n")
    assert bt.find_dumps([str(tmp_path)]) == [stamp / "dump.202612062358"]
