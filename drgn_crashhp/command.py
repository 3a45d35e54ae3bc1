"""
drgn command
------------

``%crashhp`` in the drgn REPL, registered the way drgn's own kernel commands
are (:func:`drgn.commands.linux.linux_kernel_command`) and loaded through
the ``drgn.plugins`` entry point: a thin shell over the options and output
of :mod:`drgn_crashhp.options`, which the ``drgn-crashhp`` command line
shares.
"""

from __future__ import annotations

import argparse
from typing import Any, List

from drgn_crashhp.requirements import check_drgn_version

# drgn imports plugins at start: an older drgn gets one line saying what to do.
check_drgn_version()

from drgn import Program  # noqa: E402
from drgn.commands import CommandError, argument  # noqa: E402
from drgn.commands.linux import linux_kernel_command  # noqa: E402

from drgn_crashhp.options import OutputError, add_options, run  # noqa: E402
from drgn_crashhp.target import DEBUGINFO_KEY, TargetError, use_btf  # noqa: E402

__all__ = ()

_ARGUMENTS: List[argument] = []
add_options(lambda *flags, **kwargs: _ARGUMENTS.append(argument(*flags, **kwargs)))

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


@linux_kernel_command(
    description="check the loaded crash kernel against CPU/memory hotplug state",
    long_description=_LONG,
    arguments=_ARGUMENTS,
)
def _cmd_crashhp(
    prog: Program, name: str, args: argparse.Namespace, **kwargs: Any
) -> int:
    if _without_debug_info(prog):
        try:
            line = use_btf(prog)
        except TargetError as e:
            raise CommandError(f"no kernel debug info found; {e}") from e
        print(f"crashhp: no kernel debug info loaded; {line}")
    try:
        return run(prog, args).exit_status
    except OutputError as e:
        raise CommandError(str(e)) from e


def _without_debug_info(prog: Program) -> bool:
    if DEBUGINFO_KEY in prog.cache:
        return False
    try:
        return prog.main_module().debug_file_path is None
    except LookupError:
        return True
