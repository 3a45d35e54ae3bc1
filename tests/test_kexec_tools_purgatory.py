"""
kexec-tools' purgatory on ppc64 and arm64, from the real Debian dumps of
vmcores/ppc64le and vmcores/arm64: its entry variables against their
segments (CHP033), and what the reader says when a build lays them out
differently than Debian's 2.0.29. The wrong values are made by changing the
real purgatory's bytes, the way a loader bug or a stray write would; what
each variable must hold comes from the lab's own reading of the dump
(``observed.purgatory_variables``) and the segment table.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from typing import Any, Dict, List, Tuple

import pytest

from drgn_crashhp.analysis import analyze
from drgn_crashhp.checks import run_checks
from drgn_crashhp.facts import Facts, Role
from drgn_crashhp.findings import Severity
from drgn_crashhp.read import read_facts
from drgn_crashhp.read.fields import target_arch
from drgn_crashhp.read.purgatory import _scan_variables
from drgn_crashhp.target import open_program
from tests.conftest import unpack

CASES = (("ppc64le-6.12", "ppc_hp_base"), ("arm64-6.12", "arm_base"))


@functools.cache
def _real(gen: str, name: str) -> Tuple[Facts, bytes, Any, Dict[str, Any]]:
    if gen not in unpack.generations():
        pytest.skip(f"no {gen} fixtures")
    prog = open_program(
        str(unpack.dump_path(name, gen)), default_symbols=False, say=lambda _: None
    )
    facts = read_facts(prog, digest=False)
    assert facts.image is not None and facts.purgatory is not None
    seg = facts.image.segments[facts.purgatory.segment or 0]
    data = prog.read(seg.mem, seg.memsz, True)
    return facts, data, target_arch(prog), unpack.scenarios(gen)[name]


def _codes(facts: Facts) -> List[str]:
    return sorted(f.code for f in run_checks(facts, analyze(facts)))


@pytest.mark.parametrize("gen,name", CASES)
def test_variables_are_where_the_lab_found_them(gen: str, name: str) -> None:
    facts, _, _, truth = _real(gen, name)
    p = facts.purgatory
    assert p is not None and p.variables_unread is None
    lab = truth["observed"]["purgatory_variables"]
    for v in p.variables:
        assert (v.address, v.value) == (
            int(lab[v.name]["addr"], 16),
            int(lab[v.name]["u64_in_dump"], 16),
        )
    # The kernel segment is named by its image magic, not by the variable.
    seg0 = truth["segments"][0]
    kernel = facts.image.by_role(Role.KERNEL)  # type: ignore[union-attr]
    assert kernel is not None and f"{kernel.mem:#x}" == seg0["mem"]
    assert "CHP033" not in _codes(facts) and "CHP090" not in _codes(facts)


@pytest.mark.parametrize("gen,name", CASES)
def test_a_variable_off_its_segment_is_chp033(gen: str, name: str) -> None:
    facts, data, arch, _ = _real(gen, name)
    p = facts.purgatory
    assert p is not None and facts.image is not None
    seg = facts.image.segments[p.segment or 0]
    # The device tree variable (ppc64 dt_offset, arm64 arm64_dtb_addr) one
    # page past the FDT: the capture kernel would boot with no tree.
    [dtb] = [v for v in p.variables if v.points_at == Role.FDT]
    fdt = facts.image.by_role(Role.FDT)
    assert fdt is not None and dtb.value == fdt.mem
    at = dtb.address - seg.mem
    bad = fdt.mem + 0x1000
    patched = data[:at] + struct.pack("<Q", bad) + data[at + 8 :]
    assert p.regions_address is not None and p.digest_address is not None
    table = p.regions_address - seg.mem
    variables, unread = _scan_variables(
        facts.image,
        seg,
        patched,
        p.digest_address - seg.mem,
        (table, table + 256),
        arch,
    )
    assert unread is None
    wrong = dataclasses.replace(p, variables=variables)
    findings = run_checks(
        dataclasses.replace(facts, purgatory=wrong),
        analyze(dataclasses.replace(facts, purgatory=wrong)),
    )
    [chp033] = [f for f in findings if f.code == "CHP033"]
    assert chp033.severity == Severity.ERROR
    assert f"{dtb.name} {bad:#x} != fdt segment {fdt.index} at {fdt.mem:#x}" in (
        chp033.message
    )


@pytest.mark.parametrize("gen,name", CASES)
def test_another_build_layout_is_not_a_problem(gen: str, name: str) -> None:
    """A build that keeps the variables elsewhere: the kernel variable's
    place holds something else while the kernel's start is stored further
    on. The report must not claim a wrong entry."""
    facts, data, arch, _ = _real(gen, name)
    p = facts.purgatory
    assert p is not None and facts.image is not None
    seg = facts.image.segments[p.segment or 0]
    [kv] = [v for v in p.variables if v.points_at == Role.KERNEL]
    at = kv.address - seg.mem
    # Move the value 0x40 bytes on (into the zeros past the variables).
    moved = bytearray(data)
    moved[at : at + 8] = bytes(8)
    assert moved[at + 0x40 : at + 0x48] in (bytes(8), struct.pack("<Q", 0x80))
    moved[at + 0x40 : at + 0x48] = struct.pack("<Q", kv.value)
    assert p.regions_address is not None and p.digest_address is not None
    table = p.regions_address - seg.mem
    variables, unread = _scan_variables(
        facts.image,
        seg,
        bytes(moved),
        p.digest_address - seg.mem,
        (table, table + 256),
        arch,
    )
    assert variables == () and unread is not None
    assert f"{kv.name} is not at {at:#x} in this kexec-tools build" in unread.reason
    odd = dataclasses.replace(p, variables=(), variables_unread=unread)
    codes = _codes(dataclasses.replace(facts, purgatory=odd))
    assert "CHP033" not in codes and "CHP090" in codes
