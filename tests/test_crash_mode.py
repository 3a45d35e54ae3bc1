"""
``crashhp`` in drgn's crash mode: ``drgn-crash`` on a real dump, fed on stdin
like a user types at its ``%crash>`` prompt, prints what ``%crashhp`` and the
command line print; a drgn without the private crash-command module loses
only this command, silently.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any, Dict, List

import pytest
from drgn.commands import DEFAULT_COMMAND_NAMESPACE

import drgn_crashhp.command  # noqa: F401  (registers %crashhp)
from tests.conftest import ROOT, real_fixture, unpack

PROMPT = "%crash> "


def drgn_crash(name: str, lines: List[str]) -> subprocess.CompletedProcess:
    """``drgn-crash VMLINUX VMCORE`` of real scenario *name*, the *lines*
    on its stdin: the console script drgn declares, run by this Python so that
    it loads this checkout's plugin."""
    scripts = entry_points(group="console_scripts")
    ep = next((e for e in scripts if e.name == "drgn-crash"), None)
    if ep is None:
        pytest.skip("this drgn has no drgn-crash")
    real_fixture(name)  # skips when the fixtures are absent
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlib.metadata import EntryPoint; "
            f"sys.argv[0] = 'drgn-crash'; EntryPoint(None, {ep.value!r}, None)"
            ".load()()",
            str(unpack.vmlinux_path()),
            str(unpack.dump_path(name)),
        ],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def outputs(stdout: str) -> List[str]:
    """What each command printed: the text between the ``%crash>`` prompts
    (the first chunk is drgn-crash's banner, the last the prompt at EOF)."""
    return stdout.split(PROMPT)[1:-1]


def in_repl(name: str, line: str) -> str:
    prog, _ = real_fixture(name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        DEFAULT_COMMAND_NAMESPACE.run(prog, line, globals={})
    return out.getvalue()


def codes(doc: Dict[str, Any]) -> List[str]:
    return [f["code"] for f in doc["findings"]]


@pytest.mark.parametrize("name", ["file_memadd", "load_stale_memadd"])
def test_drgn_crash_prints_what_percent_crashhp_prints(name: str) -> None:
    proc = drgn_crash(name, ["crashhp", "crashhp --json", "crashhp -q --no-digest"])
    assert "Traceback" not in proc.stderr and proc.returncode == 0, proc.stderr
    # drgn's crash mode warns about the dump's panic task; nothing of ours
    assert "crashhp" not in proc.stderr, proc.stderr
    text, doc, quick = outputs(proc.stdout)
    assert text == in_repl(name, "crashhp")
    assert quick == in_repl(name, "crashhp -q --no-digest")
    cli = subprocess.run(
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
        cwd=ROOT,
        timeout=600,
    )
    crash_doc, cli_doc = json.loads(doc), json.loads(cli.stdout)
    assert codes(crash_doc) == codes(cli_doc)
    assert crash_doc["exit_status"] == cli_doc["exit_status"] == cli.returncode
    assert crash_doc == json.loads(in_repl(name, "crashhp --json"))


def test_drgn_crash_help_lists_the_same_options() -> None:
    proc = drgn_crash("file_base", ["help crashhp", "crashhp --format nope"])
    help_text, bad = outputs(proc.stdout) + [""] * (2 - len(outputs(proc.stdout)))
    for flag in ("--image", "--format", "--json", "--no-digest", "--section", "-q"):
        assert flag in help_text
    assert "invalid choice" in proc.stderr


def test_a_session_without_crash_mode_does_not_load_it() -> None:
    """With drgn's crash commands left out, the plugin does not bring them
    back: it registers in crash mode only when the session has it."""
    real_fixture("file_base")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn",
            "-q",
            "-c",
            str(unpack.dump_path("file_base")),
            "-s",
            str(unpack.vmlinux_path()),
            "--no-default-symbols",
            "-e",
            "import sys; from drgn.commands import DEFAULT_COMMAND_NAMESPACE as ns; "
            "assert 'drgn_crashhp.command' in sys.modules; "
            "assert 'drgn.commands._crash' not in sys.modules, 'crash mode loaded'; "
            "sys.exit(ns.run(prog, 'crashhp -q', globals=globals()))",
        ],
        env={**os.environ, "DRGN_DISABLE_PLUGINS": "crash_commands"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verdict: OK (exit status 0)" in proc.stdout
    assert proc.stderr == "", proc.stderr


def test_percent_crash_in_the_repl_runs_crashhp() -> None:
    """``%crash crashhp`` in drgn's own session: drgn's crash_commands
    plugin loaded crash mode, and the plugin's hook registered there."""
    real_fixture("file_base")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drgn",
            "-q",
            "-c",
            str(unpack.dump_path("file_base")),
            "-s",
            str(unpack.vmlinux_path()),
            "--no-default-symbols",
            "-e",
            "from drgn.commands import DEFAULT_COMMAND_NAMESPACE as ns; "
            "ns.run(prog, 'crash crashhp -q', globals=globals())",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verdict: OK (exit status 0)" in proc.stdout


def test_without_the_private_crash_module_only_crash_mode_is_lost() -> None:
    """A drgn without ``drgn.commands._crash.common``: drgn with the plugin
    starts without a warning, and ``%crashhp`` still works."""
    real_fixture("file_base")
    script = (
        "import sys\n"
        "sys.modules['drgn.commands._crash'] = None  # as if drgn had none\n"
        "sys.argv = ['drgn', '-q', '-c', sys.argv[1], '-s', sys.argv[2],\n"
        "            '--no-default-symbols', '-e',\n"
        "            'import sys; from drgn.commands import "
        "DEFAULT_COMMAND_NAMESPACE as ns; "
        'assert "drgn_crashhp.command" in sys.modules; '
        'sys.exit(ns.run(prog, "crashhp -q", globals=globals()))\']\n'
        "from drgn.cli import _main\n"
        "_main()\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(unpack.dump_path("file_base")),
            str(unpack.vmlinux_path()),
        ],
        # drgn's own crash_commands plugin would fail to import too, with a
        # warning of its own: leave it out, so stderr shows only ours.
        env={**os.environ, "DRGN_DISABLE_PLUGINS": "crash_commands"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verdict: OK (exit status 0)" in proc.stdout
    assert proc.stderr == "", proc.stderr
