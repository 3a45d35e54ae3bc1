"""
--qemu on a guest whose memory gives drgn no VMCOREINFO (pseries has no
-device vmcoreinfo): --vmcoreinfo takes what the guest's
/sys/kernel/vmcoreinfo prints, and every mistake is one line (exit status
2). The real guests are in tests/test_live_other_arches.py.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from pathlib import Path
from typing import Any, Dict, List

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


#: ``info mtree -f`` of a pseries guest (QEMU 10.0), cut short.
MTREE = """FlatView #0
 AS "v-scsi@71000003", root: iommu-spapr-root
 Root memory region: iommu-spapr-root
  0000000000000000-000000000fffffff (prio 0, i/o): tce-iommu-71000003

FlatView #2
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 Root memory region: system
  0000000000000000-000000007fffffff (prio 0, ram): ppc_spapr.ram
  00002000000001ce-00002000000001d1 (prio 0, i/o): vbe
  0000000080000000-00000000bfffffff (prio 0, ram): mem1 @0000000000000000
  0000200080000000-0000200080ffffff (prio 1, ram): vga.vram

FlatView #3
 AS "vga.vram", root: vmem0
  0000000000000000-000000003fffffff (prio 0, ram): vmem0
"""


def _fake_qmp(path: str, mtree: str, seen: List[Dict[str, Any]]) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb", buffering=0) as f:
            f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            for line in f:
                msg = json.loads(line)
                seen.append(msg)
                ret: Any = {}
                if msg["execute"] == "human-monitor-command":
                    ret = mtree
                f.write(json.dumps({"return": ret}).encode() + b"\n")
        server.close()

    threading.Thread(target=serve, daemon=True).start()


def test_qemu_ram_is_qemus_memory_map(tmp_path: Path) -> None:
    sock = str(tmp_path / "qmp.sock")
    seen: List[Dict[str, Any]] = []
    _fake_qmp(sock, MTREE, seen)
    assert target.qemu_ram(sock, timeout=10) == [
        (0, 0x7FFFFFFF),
        (0x80000000, 0xBFFFFFFF),
        (0x200080000000, 0x200080FFFFFF),
    ]
    # read-only: the capabilities handshake and one HMP "info"
    assert [m["execute"] for m in seen] == ["qmp_capabilities", "human-monitor-command"]
    assert seen[1]["arguments"] == {"command-line": "info mtree -f"}


def test_address_outside_ram_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing reads an address QEMU's map does not call RAM (device memory
    read over QMP can crash QEMU)."""
    sock = str(tmp_path / "qmp.sock")
    _fake_qmp(sock, MTREE, [])
    monkeypatch.setattr(drgn, "Program", _NoVmcoreinfoGuest)  # must not be used
    with pytest.raises(TargetError) as info:
        open_program(qemu=sock, vmcoreinfo="0xc0000000 1024")
    message = str(info.value)
    assert "\n" not in message
    assert "physical 0xc0000000-0xc0001023 is not RAM of QEMU guest" in message
    assert "0x0-0x7fffffff, 0x80000000-0xbfffffff" in message
