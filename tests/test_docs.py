"""The README documents every finding code exactly as the code table has it."""

from pathlib import Path

from drgn_crashhp.findings import CODES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_code_is_in_the_readme() -> None:
    for c in CODES.values():
        assert f"| {c.code} | {c.severity} | {c.title} |" in README, c.code


def test_readme_names_the_test_command() -> None:
    assert "python3 -m pytest -q" in README
