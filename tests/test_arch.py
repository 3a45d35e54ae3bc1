"""
The architecture interface: every per-architecture fact comes from an
``arch`` record, and an architecture whose crash-image rules are not
implemented is judged CANNOT VERIFY, never PROBLEM or OK.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from drgn_crashhp.arch import arch_named, arch_of
from drgn_crashhp.facts import Facts
from drgn_crashhp.read import read_facts
from drgn_crashhp.report import report_from_facts
from tests.support.kimage import machine
from tests.support.synth import SynthKernel

PACKAGE = Path(__file__).resolve().parent.parent / "drgn_crashhp"


def _facts(layout: str = "6.10") -> Facts:
    return read_facts(SynthKernel(machine(layout)).prog)


def test_the_synthetic_x86_image_is_judged_by_x86_rules() -> None:
    codes = {f.code for f in report_from_facts(_facts()).findings}
    assert "CHP091" not in codes
    assert {"CHP013", "CHP065"} <= codes  # elfcorehdr and room checks ran


# Architectures with no rule implemented (ppc64 and arm64 have some: their
# real fixtures are judged in tests/test_other_arches.py).
@pytest.mark.parametrize("name", ["S390X", "RISCV64"])
def test_an_architecture_without_rules_cannot_be_verified(name: str) -> None:
    # The same image read on another architecture: x86's purgatory, header
    # and entry rules must not be applied to it.
    facts = _facts()
    facts = dataclasses.replace(
        facts, state=dataclasses.replace(facts.state, arch=name)
    )
    report = report_from_facts(facts)
    codes = {f.code for f in report.findings}
    assert "CHP091" in codes
    assert report.verdict == "CANNOT VERIFY"
    # Only the architecture-independent families ran: image (00x),
    # hotplug (06x, not the x86 room check), postmortem (07x), and the FDT
    # (08x) where the architecture boots from one (this x86 image has none:
    # CHP090, never a PROBLEM).
    assert codes - {"CHP091", "CHP090"} <= {c for c in codes if c[3] in "0678"}
    assert not codes & {"CHP014", "CHP042", "CHP043", "CHP065"}


def test_arch_lookup_by_name_and_elf_machine() -> None:
    assert arch_named("X86_64") is arch_of(62)
    assert arch_named("PPC64").default_page_offset == 0xC000000000000000
    assert arch_named("AARCH64").elf_machine == 183
    unknown = arch_named("LOONGARCH64")
    assert not unknown.supported and not unknown.is_kernel_text(1 << 63)
    assert not arch_of(258).supported


def _names(tree: ast.AST) -> set:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
    return out


def test_no_architecture_name_is_tested_outside_arch() -> None:
    """
    Outside ``arch/`` no module compares against an architecture's name or
    imports one architecture's module: a new architecture is one new record.
    """
    names = {"X86_64", "PPC64", "AARCH64", "S390X", "RISCV64", "x86_64", "ppc64"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("arch/"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "drgn_crashhp.arch."
            ):
                offenders.append(f"{rel}: imports {node.module}")
            if isinstance(node, ast.Compare):
                used = _names(node) & names
                if used:
                    offenders.append(f"{rel}:{node.lineno}: compares with {used}")
    assert offenders == []
