"""
A live kernel rewrites its crash image under the kexec lock on every hotplug
event: a report must never judge a half-read header. read_facts() reads a
live target between two signatures of what an update changes and reads it
again when they differ or the lock is held; after MAX_READS tries the report
says CANNOT VERIFY (CHP092). Here the signatures are scripted; the storm
test (tests/test_storm.py) does it on a real guest.
"""

from __future__ import annotations

from typing import Iterator, List

import pytest

import drgn_crashhp.read as read_mod
from drgn_crashhp.report import build_report
from tests.support.kimage import machine
from tests.support.synth import SynthKernel


def _live(monkeypatch: pytest.MonkeyPatch, signatures: Iterator[tuple]) -> List[int]:
    """Pretend the synthetic kernel is live, with scripted signatures; return
    a list that counts the full reads."""
    reads: List[int] = []
    real_once = read_mod._read_once

    def once(*args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(1)
        return real_once(*args, **kwargs)

    monkeypatch.setattr(read_mod, "_is_live", lambda prog: True)
    monkeypatch.setattr(read_mod, "RETRY_PAUSE", 0)
    monkeypatch.setattr(read_mod, "_read_once", once)
    monkeypatch.setattr(read_mod, "_signature", lambda prog, symbol: next(signatures))
    return reads


def _real_signature(k: SynthKernel) -> tuple:
    return read_mod._signature(k.prog, "kexec_crash_image")


def test_a_stable_live_target_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    k = SynthKernel(machine("6.10"))
    sig = _real_signature(k)
    assert sig[0] == 0 and sig[2]  # lock free, header bytes read
    reads = _live(monkeypatch, iter([sig, sig]))
    report = build_report(k.prog)
    assert len(reads) == 1
    assert "CHP092" not in {f.code for f in report.findings}


def test_a_change_between_signatures_reads_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    k = SynthKernel(machine("6.10"))
    sig = _real_signature(k)
    moved = (sig[0], sig[1], sig[2][:-1] + b"\xff") + sig[3:]
    reads = _live(monkeypatch, iter([sig, moved, sig, sig]))
    report = build_report(k.prog)
    assert len(reads) == 2
    assert "CHP092" not in {f.code for f in report.findings}


def test_a_header_that_differs_from_both_signatures_reads_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both signatures agree, but the full read saw other header bytes: it
    # was taken in the middle of two updates.
    k = SynthKernel(machine("6.10"))
    sig = _real_signature(k)
    other = (sig[0], sig[1], b"\x7fELF" + bytes(60)) + sig[3:]
    reads = _live(monkeypatch, iter([other, other, sig, sig]))
    build_report(k.prog)
    assert len(reads) == 2


def test_a_lock_held_on_every_read_is_cannot_verify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    k = SynthKernel(machine("6.10"))
    sig = _real_signature(k)
    held = (1,) + sig[1:]
    reads = _live(monkeypatch, iter([held] * (2 * read_mod.MAX_READS)))
    report = build_report(k.prog)
    assert len(reads) == read_mod.MAX_READS
    assert [f.code for f in report.findings] == ["CHP092"]
    assert report.verdict == "CANNOT VERIFY"


def test_a_dump_is_read_once_without_signatures() -> None:
    k = SynthKernel(machine("6.10"))
    assert not read_mod._is_live(k.prog)
