"""The library, the CLI and the drgn commands give the same findings."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from typing import Any, Dict, List

import drgn
import pytest
from drgn.commands import DEFAULT_COMMAND_NAMESPACE
from drgn.commands._crash.common import CRASH_COMMAND_NAMESPACE

import drgn_crashhp.command  # noqa: F401  (registers %crashhp)
from drgn_crashhp.report import build_report, report_json
from tests.conftest import real_fixture, scenario_names, unpack
from tests.synth import SynthKernel
from tests.test_kimage import machine


def codes(doc: Dict[str, Any]) -> List[str]:
    return [f["code"] for f in doc["findings"]]


def run_command(namespace: Any, prog: drgn.Program, line: str) -> Dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = namespace.run(prog, line, globals={})
    doc = json.loads(out.getvalue())
    assert doc["exit_status"] == status
    return doc


def test_command_matches_library_on_synthetic_kernel() -> None:
    prog = SynthKernel(machine("6.10", nr_segments=0)).prog
    lib = report_json(build_report(prog))
    assert "CHP003" in codes(lib)
    for ns in (DEFAULT_COMMAND_NAMESPACE, CRASH_COMMAND_NAMESPACE):
        doc = run_command(ns, prog, "crashhp --json")
        assert codes(doc) == codes(lib)
        assert doc["verdict"] == lib["verdict"] == "PROBLEM"


def test_command_text_and_help() -> None:
    prog = SynthKernel(machine("6.10")).prog
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        DEFAULT_COMMAND_NAMESPACE.run(prog, "crashhp --section image", globals={})
    assert "== crash image ==" in out.getvalue()
    assert "== findings ==" not in out.getvalue()
    help_text = DEFAULT_COMMAND_NAMESPACE.lookup(prog, "crashhp").format_help()
    assert "--no-digest" in help_text and "verdict line" in help_text


@pytest.mark.parametrize("name", scenario_names() or ["file_base"])
def test_cli_command_library_agree_on_real_dump(name: str) -> None:
    prog, truth = real_fixture(name)
    lib = report_json(build_report(prog))
    for ns in (DEFAULT_COMMAND_NAMESPACE, CRASH_COMMAND_NAMESPACE):
        assert codes(run_command(ns, prog, "crashhp --json")) == codes(lib)
    proc = subprocess.run(
        [sys.executable, "-m", "drgn_crashhp", "-c", str(unpack.dump_path(name)),
         "-s", str(unpack.vmlinux_path()), "--no-default-symbols", "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert "Traceback" not in proc.stderr
    cli = json.loads(proc.stdout)
    assert proc.returncode == cli["exit_status"] == lib["exit_status"]
    assert codes(cli) == codes(lib)


def test_drgn_finds_the_plugin_through_its_entry_point(tmp_path) -> None:
    """drgn itself loads drgn_crashhp.command via the drgn.plugins entry point."""
    prog, truth = real_fixture("file_memadd")
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from drgn.commands import DEFAULT_COMMAND_NAMESPACE as ns\n"
        "assert 'drgn_crashhp.command' in sys.modules\n"
        "sys.exit(ns.run(prog, 'crashhp -q', globals=globals()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "drgn", "-q", "-c",
         str(unpack.dump_path("file_memadd")), "-s",
         str(unpack.vmlinux_path()), "--no-default-symbols", str(script)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verdict: OK (exit status 0)" in proc.stdout
