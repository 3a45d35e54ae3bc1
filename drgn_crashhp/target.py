"""
Targets
-------

Open a target the way ``drgn`` does (a vmcore, /proc/kcore, or a QEMU guest
over QMP) and load its kernel debug info, failing with one line instead of a
traceback.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import List, Optional, Sequence

import drgn

__all__ = ("TargetError", "open_program")


class TargetError(Exception):
    """A one-line reason the target cannot be opened (exit status 2)."""


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _build_id_hint(prog: drgn.Program, logged: Sequence[str]) -> str:
    try:
        build_id = prog.main_module().build_id
    except (LookupError, ValueError):
        build_id = None
    m = re.search(r"for kernel (\S+)", " ".join(logged))
    release = m.group(1) if m else "$(uname -r)"
    looked = f" for kernel {release}"
    if build_id:
        looked += f" (build ID {build_id.hex()})"
    return (
        f"{looked}; pass -s path/to/vmlinux or --debug-directory DIR, or "
        f"install the distro's debug package (Debian: linux-image-{release}-dbg"
        f", Fedora/RHEL: kernel-debuginfo-{release})"
    )


def open_program(
    core: Optional[str] = None,
    qemu: Optional[str] = None,
    symbols: Sequence[str] = (),
    debug_directories: Sequence[str] = (),
    default_symbols: bool = True,
) -> drgn.Program:
    """
    Open a target like ``drgn`` does: *core* (a vmcore or /proc/kcore), a QEMU
    guest over QMP (*qemu*), or the running kernel.

    :raises TargetError: with a one-line reason.
    """
    prog = drgn.Program()
    try:
        if core is not None:
            prog.set_core_dump(core)
        elif qemu is not None:
            prog.set_qemu_qmp(qemu)
        else:
            prog.set_kernel()
    except PermissionError as e:
        what = core or ("QEMU socket " + qemu if qemu else "/proc/kcore")
        raise TargetError(
            f"no permission to read {what}: {e.strerror or e} (run as root)"
        ) from e
    except FileNotFoundError as e:
        raise TargetError(f"{core or qemu or '/proc/kcore'}: no such file") from e
    except Exception as e:
        # OSError, ValueError, and libelf errors (a truncated or corrupt
        # vmcore), which drgn raises as a plain Exception.
        raise TargetError(
            f"cannot open {core or qemu or 'the running kernel'}: {e}"
        ) from e
    if debug_directories:
        opts = prog.debug_info_options
        opts.directories = tuple(debug_directories) + tuple(opts.directories)
    # drgn logs what it could not find; keep it for a one-line error instead.
    drgn_log = logging.getLogger("drgn")
    collect = _Collect()
    propagate = drgn_log.propagate
    drgn_log.addHandler(collect)
    drgn_log.propagate = False
    try:
        prog.load_debug_info(list(symbols), default=default_symbols, main=True)
    except drgn.MissingDebugInfoError as e:
        try:
            critical = prog.main_module().wants_debug_file()
        except LookupError:
            critical = True
        if critical:
            raise TargetError(
                "no kernel debug info found" + _build_id_hint(prog, collect.messages)
            ) from e
    except (OSError, ValueError, drgn.BadDataError) as e:
        raise TargetError(f"cannot load debug info: {e}") from e
    finally:
        drgn_log.removeHandler(collect)
        drgn_log.propagate = propagate
    try:
        arch = prog.platform.arch if prog.platform else None
    except ValueError:
        arch = None
    if arch is not None and arch != drgn.Architecture.X86_64:
        print(
            f"drgn-crashhp: warning: {arch.name} target; purgatory and "
            "elfcorehdr rules are checked as on x86_64",
            file=sys.stderr,
        )
    return prog
