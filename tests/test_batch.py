"""contrib/batch_triage.py over the bundled vmcores agrees with ground truth."""

from __future__ import annotations

import json
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
        [sys.executable, str(ROOT / "contrib" / "batch_triage.py"),
         str(unpack.unpack()),
         "-s", str(unpack.vmlinux_path()), "-j", "2", "--jsonl", str(out)],
        capture_output=True, text=True, timeout=1800,
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
def test_batch_matches_ground_truth(triage: Dict[str, Dict[str, Any]], name: str
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
