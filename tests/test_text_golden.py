"""
The text report of every real fixture, pinned (the sdb way: one expected
output per command per dump, under ``tests/golden/text/``). A change of
wording, layout or rows then shows up as a reviewed diff of the golden
files: regenerate them with ``CRASHHP_UPDATE_GOLDEN=1 python3 -m pytest
tests/test_text_golden.py`` and read ``git diff tests/golden``.

The target line names the scenario instead of the cache path of the dump,
and the digest is recomputed, so each golden is the full report.
"""

from __future__ import annotations

import os
from pathlib import Path

import drgn
import pytest

from drgn_crashhp import build_report
from drgn_crashhp.render.text import render_text
from tests.conftest import (
    dwarf_program,
    gen_fixture_paths,
    generation_scenarios,
    scenario_names,
)

GOLDEN = Path(__file__).parent / "golden" / "text"


def _check(name: str, prog: drgn.Program) -> None:
    text = render_text(build_report(prog, target=name))
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("CRASHHP_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden for {name}: run with CRASHHP_UPDATE_GOLDEN=1"
    assert text == path.read_text()


@pytest.mark.parametrize("name", scenario_names())
def test_text_report_of_6_12_fixture(name: str) -> None:
    from tests.conftest import real_fixture

    prog, _ = real_fixture(name)
    _check(f"v6.12/{name}", prog)


@pytest.mark.parametrize("full_name", generation_scenarios())
def test_text_report_of_other_generations(full_name: str) -> None:
    dump, vmlinux, _ = gen_fixture_paths(full_name)
    _check(full_name, dwarf_program(dump, vmlinux))
