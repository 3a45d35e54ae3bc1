"""The README documents every finding code exactly as the code table has it."""

from pathlib import Path

from drgn_crashhp.findings import CODES
from drgn_crashhp.render.json import report_json
from drgn_crashhp.report import build_report
from tests.support.kimage import machine
from tests.support.synth import SynthKernel

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_code_is_in_the_readme() -> None:
    for c in CODES.values():
        assert f"| {c.code} | {c.severity} | {c.title} |" in README, c.code


def test_readme_names_the_test_command() -> None:
    assert "python3 -m pytest -q" in README


def test_every_json_key_is_documented() -> None:
    doc = report_json(build_report(SynthKernel(machine("6.10")).prog))
    section = README[README.index("## JSON") : README.index("## contrib")]
    for key in doc:
        assert f"| `{key}` |" in section, key
