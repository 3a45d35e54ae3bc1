"""
The live target's errors (issue 18): no root, kernel lockdown, /proc/kcore
missing. Each is one line (TargetError, exit status 2); the real ones are
checked on a Debian guest in tests/test_debian_guest.py.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import drgn
import pytest

from drgn_crashhp import target
from drgn_crashhp.target import TargetError, open_program


class _Refusing:
    """A drgn.Program whose set_kernel fails the way opening /proc/kcore does."""

    error: OSError = OSError()

    def __init__(self, *args: Any) -> None:
        pass

    def set_kernel(self) -> None:
        raise self.error


def _fail_with(monkeypatch: pytest.MonkeyPatch, error: OSError) -> str:
    _Refusing.error = error
    monkeypatch.setattr(drgn, "Program", _Refusing)
    with pytest.raises(TargetError) as info:
        open_program()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(target.os, "geteuid", lambda: 1000)
    message = _fail_with(
        monkeypatch, PermissionError(errno.EACCES, "Permission denied", "/proc/kcore")
    )
    assert message == (
        "no permission to read /proc/kcore: Permission denied (run as root)"
    )


def test_lockdown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lockdown = tmp_path / "lockdown"
    lockdown.write_text("none integrity [confidentiality]\n")
    monkeypatch.setattr(target.os, "geteuid", lambda: 0)
    monkeypatch.setattr(target, "LOCKDOWN", str(lockdown))
    message = _fail_with(
        monkeypatch, PermissionError(errno.EPERM, "Operation not permitted")
    )
    assert "locked down (lockdown=confidentiality)" in message


def test_root_denied_without_lockdown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lockdown = tmp_path / "lockdown"
    lockdown.write_text("[none] integrity confidentiality\n")
    monkeypatch.setattr(target.os, "geteuid", lambda: 0)
    monkeypatch.setattr(target, "LOCKDOWN", str(lockdown))
    message = _fail_with(
        monkeypatch, PermissionError(errno.EPERM, "Operation not permitted")
    )
    assert message == (
        "cannot read /proc/kcore as root: Operation not permitted (lockdown: none)"
    )


def test_kcore_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _fail_with(
        monkeypatch, FileNotFoundError(errno.ENOENT, "No such file", "/proc/kcore")
    )
    assert message.startswith("/proc/kcore: no such file; this kernel has no")
