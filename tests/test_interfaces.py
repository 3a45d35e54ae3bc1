"""The library, the CLI and the drgn command give the same findings."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from typing import Any, Dict, List

import drgn
import pytest
from drgn.commands import DEFAULT_COMMAND_NAMESPACE, CommandNotFoundError

import drgn_crashhp.command  # noqa: F401  (registers %crashhp)
from drgn_crashhp.cli import parser
from drgn_crashhp.options import OPTIONS
from drgn_crashhp.render.json import report_json
from drgn_crashhp.report import build_report
from tests.conftest import real_fixture, scenario_names, unpack
from tests.support.kimage import machine
from tests.support.synth import SynthKernel


def codes(doc: Dict[str, Any]) -> List[str]:
    return [f["code"] for f in doc["findings"]]


def run_command(namespace: Any, prog: drgn.Program, line: str) -> Dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = namespace.run(prog, line, globals={})
    doc = json.loads(out.getvalue())
    assert doc["exit_status"] == status
    return doc


def test_command_is_a_kernel_command() -> None:
    """Registered like drgn's own kernel commands: enabled for a Linux
    kernel program only (a synthetic program is not one)."""
    prog = SynthKernel(machine("6.10", nr_segments=0)).prog
    with pytest.raises(CommandNotFoundError):
        DEFAULT_COMMAND_NAMESPACE.lookup(prog, "crashhp")
    kernel, _ = real_fixture("file_base")
    assert DEFAULT_COMMAND_NAMESPACE.lookup(kernel, "crashhp") is not None


def test_cli_and_command_share_one_option_table() -> None:
    kernel, _ = real_fixture("file_base")
    cli_help = parser().format_help()
    cmd_help = DEFAULT_COMMAND_NAMESPACE.lookup(kernel, "crashhp").format_help()
    for flags, _ in OPTIONS:
        for flag in flags:
            assert flag in cli_help and flag in cmd_help


def test_command_text_and_help() -> None:
    prog, _ = real_fixture("file_base")
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
    assert codes(
        run_command(DEFAULT_COMMAND_NAMESPACE, prog, "crashhp --json")
    ) == codes(lib)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn_crashhp",
            "-c",
            str(unpack.dump_path(name)),
            "-s",
            str(unpack.vmlinux_path()),
            "--no-default-symbols",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
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
        [
            sys.executable,
            "-m",
            "drgn",
            "-q",
            "-c",
            str(unpack.dump_path("file_memadd")),
            "-s",
            str(unpack.vmlinux_path()),
            "--no-default-symbols",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verdict: OK (exit status 0)" in proc.stdout
