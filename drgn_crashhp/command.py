"""
drgn commands
-------------

The plugin module (the ``drgn.plugins`` entry point): drgn imports it at every
``set_core_dump``, so it holds the command table and nothing else. The bodies
import the report on first use.

- ``%crashhp`` in the drgn REPL, registered the way drgn's own kernel commands
  are (:func:`drgn.commands.linux.linux_kernel_command`).
- ``crashhp`` in drgn's crash mode (``drgn-crash``, or ``%crash`` in the REPL),
  for people who come from crash. drgn 0.3.0 keeps the crash-command decorator
  in a private module, ``drgn.commands._crash.common``, that it may move or
  change: :func:`drgn_prog_set` is the only place the package touches it,
  through one guarded import. A drgn without it loses only this command, and
  silently: an import error that escaped would make drgn log the whole plugin
  as failed, with a warning, at every start. The import waits for drgn's
  ``drgn_prog_set`` hook, which runs once every plugin is loaded, and happens
  only when this session has crash mode (``drgn-crash`` imported it, or drgn's
  own ``crash_commands`` plugin did): importing it would load and register
  every crash command of drgn, which a user may have left out on purpose
  (``DRGN_DISABLE_PLUGINS=crash_commands``).

Both take the option table of :mod:`drgn_crashhp.options` and print what
:func:`drgn_crashhp.run.run` prints, like the ``drgn-crashhp`` command line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List

from drgn_crashhp.requirements import check_drgn_version

# drgn imports plugins at start: an older drgn gets one line saying what to do.
check_drgn_version()

from drgn import Program  # noqa: E402
from drgn.commands import CommandError, argument  # noqa: E402
from drgn.commands.linux import linux_kernel_command  # noqa: E402

from drgn_crashhp.options import add_options  # noqa: E402

__all__ = ()

_ARGUMENTS: List[argument] = []
add_options(lambda *flags, **kwargs: _ARGUMENTS.append(argument(*flags, **kwargs)))

_DESCRIPTION = "check the loaded crash kernel against CPU/memory hotplug state"

_LONG = """
Check that the loaded kdump crash kernel would boot and capture every CPU and
every byte of RAM. Sections: "image" lists the segments (role, physical mem,
inclusive end, memsz, bufsz); "elfcorehdr" lists its program headers (index,
type, physical address, virtual address, size); "purgatory" the hashed regions,
stored and recomputed digest and entry registers; "state" the CPUs and RAM now
against the header; "findings" each finding with severity, stable code and
message (codes are listed in the README). The verdict line gives the exit
status drgn-crashhp would return: 0 healthy, 1 a problem, 3 cannot verify.
"""


def _crashhp(prog: Program, args: argparse.Namespace) -> int:
    """The body of both commands: the report *args* ask for, printed."""
    from drgn_crashhp.run import OutputError, run
    from drgn_crashhp.target import TargetError, fall_back_to_btf

    try:
        fall_back_to_btf(prog, lambda line: print(f"crashhp: {line}"))
    except TargetError as e:
        raise CommandError(str(e)) from e
    try:
        return run(prog, args).exit_status
    except OutputError as e:
        raise CommandError(str(e)) from e


@linux_kernel_command(
    description=_DESCRIPTION,
    long_description=_LONG,
    arguments=_ARGUMENTS,
)
def _cmd_crashhp(
    prog: Program, name: str, args: argparse.Namespace, **kwargs: Any
) -> int:
    return _crashhp(prog, args)


def drgn_prog_set(prog: Program) -> None:
    """
    drgn's plugin hook, run at every ``set_core_dump``/``set_kernel`` once
    every plugin is loaded: register ``crashhp`` in crash mode, once, if this
    session has crash mode (see the module docstring).
    """
    global _in_crash_mode
    if _in_crash_mode or sys.modules.get("drgn.commands._crash") is None:
        return
    try:
        # Private drgn API: the one place the package touches it.
        from drgn.commands._crash.common import crash_command
    except ImportError:
        return
    # The same function in the crash namespace. Every crash command is a
    # kernel command: that namespace needs no enabled= check of its own.
    crash_command(
        name="crashhp",
        description=_DESCRIPTION,
        long_description=_LONG,
        arguments=_ARGUMENTS,
    )(_cmd_crashhp)
    _in_crash_mode = True


#: Whether :func:`drgn_prog_set` registered the crash-mode command.
_in_crash_mode = False
