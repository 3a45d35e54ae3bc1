"""
--qemu on a guest whose memory gives drgn no VMCOREINFO (pseries has no
-device vmcoreinfo): --vmcoreinfo takes what the guest's
/sys/kernel/vmcoreinfo prints, and every mistake is one line (exit status
2). The real guests are in tests/test_live_other_arches.py.
"""

from __future__ import annotations

import struct
from typing import Any

import drgn
import pytest

from drgn_crashhp import cli, target
from drgn_crashhp.target import TargetError, open_program, parse_vmcoreinfo_location


def test_location_is_what_sysfs_prints() -> None:
    # kernel/ksysfs.c: "%pa %x\n"; the size is hex (0x1024), never decimal
    assert parse_vmcoreinfo_location("0x0000000006fe8000 1024\n") == (
        0x6FE8000,
        0x1024,
    )
    assert parse_vmcoreinfo_location("6fe8000,1024") == (0x6FE8000, 0x1024)
    assert parse_vmcoreinfo_location("0x42c70000") == (0x42C70000, None)


@pytest.mark.parametrize("text", ["", "zz", "1 2 3", "0x1000 0x0", "0x1000 200000"])
def test_bad_location_is_one_line(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_vmcoreinfo_location(text)
    assert "\n" not in str(info.value)
    assert "--vmcoreinfo" in str(info.value)


def _note(desc: bytes, name: bytes = b"VMCOREINFO\0") -> bytes:
    pad = (-len(name)) % 4
    return struct.pack("<III", len(name), len(desc), 0) + name + b"\0" * pad + desc


def test_note_text() -> None:
    desc = b"OSRELEASE=6.12.107+deb13-powerpc64le\nPAGESIZE=65536\n"
    raw = _note(desc).ljust(0x1024, b"\0")
    assert target._vmcoreinfo_desc(raw, 0x1000, "QEMU guest s") == desc


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"\0" * 0x1024, "no VMCOREINFO note at physical 0x1000"),
        (_note(b"OSRELEASE=x\n", b"CORE\0"), "no VMCOREINFO note"),
        (_note(b"OSRELEASE=" + b"x" * 100)[:60], "give the size"),
        (_note(b"BUILD-ID=1\n"), "not the kernel's"),
    ],
)
def test_wrong_note_is_one_line(raw: bytes, words: str) -> None:
    with pytest.raises(TargetError) as info:
        target._vmcoreinfo_desc(raw, 0x1000, "QEMU guest s")
    assert words in str(info.value)
    assert "\n" not in str(info.value)


class _NoVmcoreinfoGuest:
    """A drgn.Program on a QEMU guest that gave drgn no VMCOREINFO."""

    flags = drgn.ProgramFlags.IS_LIVE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_qemu_qmp(self, address: str) -> None:
        pass


def test_missing_vmcoreinfo_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drgn, "Program", _NoVmcoreinfoGuest)
    with pytest.raises(TargetError) as info:
        open_program(qemu="/run/qmp.sock")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("QEMU guest /run/qmp.sock: drgn found no VMCOREINFO")
    assert '--vmcoreinfo "$(cat /sys/kernel/vmcoreinfo)"' in message


def test_option_needs_qemu(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["-c", "vmcore", "--vmcoreinfo", "0x1000 1024"])
    assert info.value.code == 2
    assert "--vmcoreinfo is for --qemu guests" in capsys.readouterr().err
