"""
Requirements
------------

The oldest drgn this package runs on, checked by what the installed drgn
has (never by parsing its version string), so that an older drgn, such as
Debian 12's ``python3-drgn`` 0.0.22 or Debian 13's 0.0.31, gives one line
that says what to do instead of an ``AttributeError`` deep in a reader.

A leaf: stdlib and ``drgn`` only, and nothing of this package, so that the
command line (:mod:`drgn_crashhp.cli`) and the drgn plugin
(:mod:`drgn_crashhp.command`) can run it before they import any module that
needs the newer API.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Optional, Tuple

__all__ = ("MIN_DRGN", "DrgnTooOld", "check_drgn_version", "drgn_problem")

MIN_DRGN = "0.3.0"

# (what the package uses, the drgn release that introduced it), newest first:
# the first one missing names the reason.
_NEEDS: Tuple[Tuple[str, str], ...] = (
    # open_program(): corrupt debug info becomes a one-line error; drgn commit
    # d0c4433e "Add and use DRGN_ERROR_BAD_DATA/drgn.BadDataError" (after
    # 0.2.0: on 0.2.0 everything else passes the test suite).
    ("drgn.BadDataError", "0.3.0"),
    # open_program(qemu=...): drgn commit f679eb18 "Add support for debugging
    # QEMU guests over QMP".
    ("Program.set_qemu_qmp", "0.2.0"),
    # command.py: the @command decorator and argument().
    ("drgn.commands", "0.0.33"),
    # open_program(): debug directories and the one-line missing-debug-info
    # error.
    ("Program.debug_info_options", "0.0.31"),
    ("Program.main_module", "0.0.31"),
    ("Module.wants_debug_file", "0.0.31"),
)


class DrgnTooOld(ImportError):
    """The installed drgn lacks an API this package uses (exit status 2)."""


def _has(drgn: object, name: str) -> bool:
    if name == "drgn.commands":
        # Found, not imported: the command line needs no drgn.commands, and
        # importing it would cost every run of it.
        try:
            return importlib.util.find_spec(name) is not None
        except ImportError:
            return False
    owner, _, attr = name.partition(".")
    return hasattr(drgn if owner == "drgn" else getattr(drgn, owner, None), attr)


def drgn_problem() -> Optional[str]:
    """
    One line saying why the installed drgn cannot run this package and what
    to do, or None when it can.
    """
    try:
        import drgn
    except ImportError as e:
        return (
            f"drgn is not installed in this Python ({e}): "
            f"pip install 'drgn>={MIN_DRGN}' into the same environment"
        )
    missing = [(name, since) for name, since in _NEEDS if not _has(drgn, name)]
    if not missing:
        return None
    name, since = missing[0]
    where = os.path.dirname(os.path.dirname(getattr(drgn, "__file__", "") or ""))
    version = getattr(drgn, "__version__", "unknown version")
    if where.startswith("/usr/lib/python3"):
        todo = (
            f"that is the distribution's python3-drgn: install drgn-crashhp "
            f"in a venv (README: Quick start), which gets drgn >= {MIN_DRGN} "
            "from PyPI"
        )
    else:
        todo = f"upgrade it there: pip install -U 'drgn>={MIN_DRGN}'"
    return (
        f"drgn {version} in {where or 'an unknown location'} is too old: "
        f"drgn-crashhp needs drgn >= {MIN_DRGN} ({name} is new in {since}); "
        f"{todo}"
    )


def check_drgn_version() -> None:
    """
    :raises DrgnTooOld: with a one-line message when the installed drgn is
        older than :data:`MIN_DRGN`.
    """
    problem = drgn_problem()
    if problem is not None:
        raise DrgnTooOld(problem)
