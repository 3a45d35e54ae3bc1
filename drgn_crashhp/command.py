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

from drgn import Program
from drgn.commands import argument
from drgn.commands.linux import linux_kernel_command

from drgn_crashhp.options import add_options, run

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
    return run(prog, args).exit_status
