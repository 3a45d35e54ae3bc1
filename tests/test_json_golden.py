"""
The JSON report's schema, pinned: every key path and the type of the value
at it, over the real 6.12 fixtures. A refactor that renames, drops or retypes
a key fails here; a deliberate schema change regenerates the golden file
(``CRASHHP_UPDATE_GOLDEN=1 python3 -m pytest tests/test_json_golden.py``),
bumps ``schema`` and documents the change in the README.

Paths: ``.a.b`` for keys, ``[]`` for list items, and ``findings[CODE]`` so
each finding code's ``details`` are pinned on their own.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Set

import pytest

from drgn_crashhp import build_report, report_json
from tests.conftest import have_fixtures, real_fixture

GOLDEN = Path(__file__).parent / "golden" / "json-paths.txt"

# The 6.12 scenarios the golden file was made from; fixtures of other kernels
# add codes of their own and are pinned by their own tests.
SCENARIOS = (
    "file_base",
    "file_corrupt",
    "file_cpuadd",
    "file_memadd",
    "file_memremove",
    "kdump_memadd",
    "load_hotplug_memadd",
    "load_stale_memadd",
    "noload",
)


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "bool",
        int: "int",
        float: "float",
        str: "str",
        list: "list",
        dict: "object",
    }[type(value)]


def key_paths(
    doc: Any, path: str = "", out: Dict[str, Set[str]] | None = None
) -> Dict[str, Set[str]]:
    """Every key path of *doc* with the set of value types seen there."""
    if out is None:
        out = defaultdict(set)
    out[path or "."].add(_type(doc))
    if isinstance(doc, dict):
        for key, value in doc.items():
            key_paths(value, f"{path}.{key}", out)
    elif isinstance(doc, list):
        for item in doc:
            if path == ".findings":
                key_paths(item, f".findings[{item['code']}]", out)
            else:
                key_paths(item, f"{path}[]", out)
    return out


def _render(paths: Dict[str, Set[str]]) -> str:
    return "".join(f"{p} {'|'.join(sorted(t))}\n" for p, t in sorted(paths.items()))


@pytest.fixture(scope="module")
def documents() -> Dict[str, Any]:
    if not have_fixtures():
        pytest.skip("real fixtures not available")
    # As a JSON consumer sees it: tuples become lists.
    return {
        name: json.loads(json.dumps(report_json(build_report(real_fixture(name)[0]))))
        for name in SCENARIOS
    }


def test_json_key_paths_and_types_are_pinned(documents: Dict[str, Any]) -> None:
    paths: Dict[str, Set[str]] = defaultdict(set)
    for doc in documents.values():
        for path, types in key_paths(doc).items():
            paths[path] |= types
    text = _render(paths)
    if os.environ.get("CRASHHP_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_key_paths_walker() -> None:
    doc = {
        "a": [{"b": 1}, {"b": None}],
        "findings": [{"code": "CHP001", "details": {"r": [[1, 2]]}}],
    }
    assert _render(key_paths(doc)) == (
        ". object\n.a list\n.a[] object\n.a[].b int|null\n"
        ".findings list\n.findings[CHP001] object\n"
        ".findings[CHP001].code str\n.findings[CHP001].details object\n"
        ".findings[CHP001].details.r list\n.findings[CHP001].details.r[] list\n"
        ".findings[CHP001].details.r[][] int\n"
    )
