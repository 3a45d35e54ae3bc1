"""
Command line
------------

``drgn-crashhp`` (the console script, :func:`entry`, and ``python3 -m
drgn_crashhp``): check the installed drgn, open a target the way drgn does
(vmcore, /proc/kcore, QEMU guest), run the report, print it, and exit with its
status.

The drgn check comes first: this module imports only the standard library and
modules that need no drgn at all (:mod:`~drgn_crashhp.requirements`,
:mod:`~drgn_crashhp.findings`, :mod:`~drgn_crashhp.options`) until it has
passed, so that an older drgn gets one line saying what to do.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, MutableMapping, Optional

from drgn_crashhp.findings import CODES, EXIT_USAGE
from drgn_crashhp.options import add_options
from drgn_crashhp.requirements import drgn_problem

__all__ = ("entry", "main", "parser")


class _Progress:
    """A progress line on stderr, only on a terminal and after one second."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if time.monotonic() - self.start < 1.0:
            return
        self.shown = True
        pct = 100 * done // total if total else 100
        sys.stderr.write(
            f"\rdrgn-crashhp: hashing {done >> 20}/{total >> 20} MiB ({pct}%)"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")


def _codes_help() -> str:
    return "finding codes:\n" + "\n".join(
        f"  {c.code}  {c.severity!s:<10} {c.title}" for c in CODES.values()
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="drgn-crashhp",
        description="Check that the loaded kdump crash kernel would boot and that "
        "its dump would hold every CPU and every byte of RAM, after CPU and "
        "memory hotplug.",
        epilog="exit status: 0 healthy, 1 a problem that would hurt a dump "
        "(including no crash kernel loaded), 2 usage or input error, 3 cannot "
        "verify.\n\n" + _codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "-c", "--core", metavar="VMCORE", help="a vmcore (ELF or kdump format)"
    )
    target.add_argument(
        "-k",
        "--kernel",
        action="store_true",
        help="the running kernel through /proc/kcore (default)",
    )
    target.add_argument(
        "--qemu",
        metavar="SOCK",
        help="a QEMU guest over QMP (-qmp unix:SOCK,server=on,wait=off; with "
        "-device vmcoreinfo, or --vmcoreinfo)",
    )
    p.add_argument(
        "--vmcoreinfo",
        metavar="'ADDR SIZE'|scan",
        help="with --qemu: where the guest's VMCOREINFO note is, as the guest's "
        "/sys/kernel/vmcoreinfo prints it (physical address and size, in hex), "
        "or 'scan' to search the guest's memory for it, for a guest whose "
        "memory gives drgn none: pseries (no -device vmcoreinfo there), or "
        "without the guest's qemu_fw_cfg module",
    )
    p.add_argument(
        "-s",
        "--symbols",
        metavar="PATH",
        action="append",
        default=[],
        help="vmlinux (or debug file) to load debug info from; may be repeated",
    )
    p.add_argument(
        "--debug-directory",
        metavar="DIR",
        action="append",
        default=[],
        help="also search DIR for debug info",
    )
    p.add_argument(
        "--btf",
        nargs="?",
        const=True,
        default=False,
        metavar="FILE",
        help="use the kernel's BTF and kallsyms instead of DWARF (automatic when "
        "no debug info is found); BTF from FILE (a raw blob or a vmlinux with "
        ".BTF) instead of the target's memory or /sys/kernel/btf/vmlinux",
    )
    p.add_argument(
        "--system-map",
        metavar="FILE",
        help="symbols from a System.map (or a vmlinux symbol table) instead of "
        "kallsyms; implies --btf (kernels before 6.0 have no kallsyms in "
        "VMCOREINFO)",
    )
    p.add_argument(
        "--no-default-symbols",
        action="store_true",
        help="only use the files given with -s",
    )
    add_options(p.add_argument)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line on *argv*; return the exit status."""
    problem = drgn_problem()
    if problem is not None:
        print(f"drgn-crashhp: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    p = parser()
    args = p.parse_args(argv)
    if args.vmcoreinfo is not None and args.qemu is None:
        p.error(
            "--vmcoreinfo is for --qemu guests (a vmcore and /proc/kcore carry "
            "their own VMCOREINFO)"
        )
    # Past the drgn check: these need the newer drgn.
    from drgn_crashhp.run import OutputError, run
    from drgn_crashhp.target import TargetError, open_program

    try:
        prog = open_program(
            core=args.core,
            qemu=args.qemu,
            symbols=args.symbols,
            debug_directories=args.debug_directory,
            default_symbols=not args.no_default_symbols,
            btf=args.btf,
            system_map=args.system_map,
            vmcoreinfo=args.vmcoreinfo,
        )
    except TargetError as e:
        print(f"drgn-crashhp: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = run(
            prog,
            args,
            progress=_Progress() if sys.stderr.isatty() else None,
            target=f"QEMU guest {args.qemu}" if args.qemu else None,
        )
    except OutputError as e:
        print(f"drgn-crashhp: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return report.exit_status


#: drgn plugins that only register commands (drgn's own ``%sh``/``%py``/
#: ``%source`` and crash-mode commands, and this package's ``%crashhp``): the
#: command line runs no command, and importing their command tables is most of
#: what drgn's plugin hook costs at ``set_core_dump``. Other plugins (a debug
#: info finder, say) still load.
COMMAND_PLUGINS = ("builtin_commands", "crash_commands", "crashhp")


def skip_command_plugins(environ: MutableMapping[str, str]) -> None:
    """Add :data:`COMMAND_PLUGINS` to ``DRGN_DISABLE_PLUGINS`` in *environ*,
    keeping what the user put there (``*`` stays ``*``). drgn reads it when it
    first loads plugins, and still loads a plugin named in ``DRGN_PLUGINS``."""
    have = environ.get("DRGN_DISABLE_PLUGINS", "")
    if have == "*":
        return
    names = [n for n in have.split(",") if n]
    names += [n for n in COMMAND_PLUGINS if n not in names]
    environ["DRGN_DISABLE_PLUGINS"] = ",".join(names)


def entry() -> None:
    """The ``drgn-crashhp`` console script: :func:`main`, then exit. The
    process is the command line's alone, so drgn need not load the command
    plugins in it (:func:`skip_command_plugins`)."""
    skip_command_plugins(os.environ)
    try:
        status = main()
    except BrokenPipeError:
        # Output piped into head(1) and the like.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = 0
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)
