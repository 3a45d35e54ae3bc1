"""
The entry points load only what they use: the plugin module drgn imports at
every ``set_core_dump`` holds the command table and nothing of the report;
the command line checks drgn before it imports anything that needs it, and
keeps drgn's command plugins out of its own process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Dict, List

import pytest

from drgn_crashhp.cli import COMMAND_PLUGINS, skip_command_plugins
from tests.conftest import ROOT

#: All the plugin module may import of the package: its command table.
PLUGIN_IMPORTS = {
    "drgn_crashhp",
    "drgn_crashhp.command",
    "drgn_crashhp.options",
    "drgn_crashhp.render",
    "drgn_crashhp.requirements",
}


def loaded_after(stmt: str) -> List[str]:
    """The package's modules loaded by *stmt* in a fresh interpreter."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, json; {stmt}; print(json.dumps(sorted("
            "m for m in sys.modules if m.split('.')[0] == 'drgn_crashhp')))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(proc.stdout)


def test_plugin_module_imports_only_its_command_table() -> None:
    assert set(loaded_after("import drgn_crashhp.command")) == PLUGIN_IMPORTS


def test_command_line_imports_no_drgn_api_before_the_check() -> None:
    """cli's own imports need no drgn at all (the check comes first)."""
    mods = loaded_after("import drgn_crashhp.cli")
    assert set(mods) <= {
        "drgn_crashhp",
        "drgn_crashhp.cli",
        "drgn_crashhp.findings",
        "drgn_crashhp.options",
        "drgn_crashhp.render",
        "drgn_crashhp.requirements",
    }


def test_an_old_drgn_is_one_line_from_the_command_line() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import drgn; del drgn.BadDataError\n"
            "from drgn_crashhp.cli import entry\n"
            "entry()",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "is too old" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "have, want",
    [
        (None, ",".join(COMMAND_PLUGINS)),
        ("", ",".join(COMMAND_PLUGINS)),
        ("*", "*"),
        ("mine", "mine," + ",".join(COMMAND_PLUGINS)),
        ("crash_commands,x", "crash_commands,x,builtin_commands,crashhp"),
    ],
)
def test_skip_command_plugins_keeps_the_users_setting(have: str, want: str) -> None:
    env: Dict[str, str] = {} if have is None else {"DRGN_DISABLE_PLUGINS": have}
    skip_command_plugins(env)
    assert env["DRGN_DISABLE_PLUGINS"] == want


def test_command_line_process_loads_no_command_plugin() -> None:
    """Through the console script's function, on a real dump: drgn's plugin
    hook ran (other plugins would load) but no command table was imported
    (``drgn.commands`` itself comes in with drgn's Linux helpers)."""
    from tests.conftest import real_fixture, unpack

    real_fixture("file_base")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import atexit, sys\n"
            "atexit.register(lambda: print(sorted(m for m in sys.modules if "
            "m.startswith(('drgn.commands.', 'drgn_crashhp.command'))), "
            "file=sys.stderr))\n"
            "from drgn_crashhp.cli import entry\n"
            "entry()",
            "-c",
            str(unpack.dump_path("file_base")),
            "-s",
            str(unpack.vmlinux_path()),
            "--no-default-symbols",
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert "verdict: OK (exit status 0)" in proc.stdout, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]"
