"""
The package's import direction, from its source (``ast``; nothing is
imported): every module of ``drgn_crashhp`` sits on a floor, and imports only
from floors below its own or from its own room (package or module); ``read/``
(with ``debuginfo/`` and ``target.py``, which load types and symbols) is the
only code that reads the target's memory; ``render/`` does not import
``checks/``.

The floors, lowest first:

0. per-architecture constants and leaves: ``arch/``, ``fmt``, ``findings``
   and the stdlib-only ``requirements``;
1. the values readers produce, ``facts``, and the types and symbols drgn is
   given without DWARF, ``debuginfo/`` (BTF and kallsyms);
2. what the kernel does, and opening a target: ``kernel/``, ``target``;
3. what is derived once from the facts: ``analysis``;
4. reading the target, and judging what was read: ``read/``, ``checks/``;
5. the report: ``report``;
6. its renderers: ``render/``;
7. the option table and what it does: ``options``, ``run``;
8. the entry points: ``cli``, ``command`` and the package's ``__init__``
   (its lazy public names);
9. ``python3 -m drgn_crashhp`` (``__main__``), which runs ``cli``.

A new top-level module or package must be given a floor here.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "drgn_crashhp"
NAME = "drgn_crashhp"

#: Room (first name below the package; "" for its __init__) -> floor.
FLOORS: Dict[str, int] = {
    "arch": 0,
    "fmt": 0,
    "findings": 0,
    "requirements": 0,
    "facts": 1,
    "debuginfo": 1,
    "kernel": 2,
    "target": 2,
    "analysis": 3,
    "read": 4,
    "checks": 4,
    "report": 5,
    "render": 6,
    "options": 7,
    "run": 7,
    "cli": 8,
    "command": 8,
    "": 8,
    "__main__": 9,
}

#: (importing room, imported room) pairs that are forbidden whatever the
#: floors say.
FORBIDDEN = {
    ("render", "checks"),  # a renderer renders the report; it never judges
}

#: Known edges that break the rules above, each with the change that removes
#: it: (importing module, imported module) -> why it is still here.
ALLOWED: Dict[Tuple[str, str], str] = {}

#: The only rooms that may read the target's memory.
READERS = {"read", "debuginfo", "target"}

#: Calls that read the target's memory: drgn's Program.read*, Object.read_,
#: value_ and string_.
READ_CALLS = {
    "read_u8",
    "read_u16",
    "read_u32",
    "read_u64",
    "read_word",
    "read_",
    "value_",
    "string_",
}


def modules() -> Iterator[Tuple[str, Path]]:
    """(dotted name below the package, path) of every module."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def room(module: str) -> str:
    return module.split(".")[0]


def imports(module: str, path: Path) -> Iterator[Tuple[str, int]]:
    """(imported module below the package, line) of every import of the
    package in *path*, at any depth (lazy imports in functions count)."""
    tree = ast.parse(path.read_text(), str(path))
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                full = f"{NAME}.{target}".rstrip(".")
            else:
                full = node.module or ""
            if full != NAME and not full.startswith(NAME + "."):
                continue
            below = full[len(NAME) + 1 :]
            if below:
                yield below, node.lineno
            else:
                # from drgn_crashhp import x: a submodule or a public name
                for alias in node.names:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(NAME + "."):
                    yield alias.name[len(NAME) + 1 :], node.lineno


def violations() -> List[str]:
    out = []
    names = {m for m, _ in modules()}
    for module, path in modules():
        src = room(module) if module else ""
        if src not in FLOORS:
            out.append(f"{path.name}: {module}: no floor in FLOORS; give it one")
            continue
        for target, line in imports(module, path):
            dst = room(target)
            if target not in names and dst not in FLOORS:
                continue  # a public name of the package's __init__
            if dst == src:
                continue
            why = None
            if (src, dst) in FORBIDDEN:
                why = f"{src}/ must not import {dst}/"
            elif FLOORS[dst] >= FLOORS[src]:
                why = (
                    f"floor {FLOORS[src]} ({src}) imports floor {FLOORS[dst]} "
                    f"({dst}): upward or sideways"
                )
            if why and (module, target) not in ALLOWED:
                rel = path.relative_to(PACKAGE.parent)
                out.append(f"{rel}:{line}: {module} imports {target}: {why}")
    return out


def stale_allowances() -> Set[Tuple[str, str]]:
    have = {(m, t) for m, p in modules() for t, _ in imports(m, p)}
    return set(ALLOWED) - have


def memory_reads(module: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            recv = node.func.value
            prog = (isinstance(recv, ast.Name) and recv.id == "prog") or (
                isinstance(recv, ast.Attribute) and recv.attr == "prog"
            )
            if attr in READ_CALLS or (attr == "read" and prog):
                yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: .{attr}()"
        elif _names_fault_error(node):
            yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: FaultError"


def _names_fault_error(node: ast.AST) -> bool:
    """drgn.FaultError (caught, raised or imported): reading memory's error."""
    if isinstance(node, ast.Name):
        return node.id == "FaultError"
    if isinstance(node, ast.Attribute):
        return node.attr == "FaultError"
    if isinstance(node, ast.ImportFrom):
        return any(a.name == "FaultError" for a in node.names)
    return False


def test_every_module_has_a_floor() -> None:
    missing = {room(m) for m, _ in modules() if m} - set(FLOORS)
    assert not missing, f"give these a floor in FLOORS: {sorted(missing)}"


def test_nothing_imports_upward() -> None:
    found = violations()
    assert not found, "imports against the direction:\n" + "\n".join(found)


def test_allow_list_has_no_stale_entry() -> None:
    """An allowance whose import is gone must go too."""
    assert not stale_allowances(), f"remove from ALLOWED: {stale_allowances()}"


def test_only_read_reads_memory() -> None:
    found = [
        hit
        for module, path in modules()
        if (room(module) if module else "") not in READERS
        for hit in memory_reads(module, path)
    ]
    assert not found, "memory read outside read/:\n" + "\n".join(found)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The test itself: a module that imported a floor above it is caught."""
    fake = tmp_path / "drgn_crashhp" / "kernel"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text(
        "def f():\n    from drgn_crashhp.report import build_report\n"
    )
    found = list(imports("kernel.bad", fake / "bad.py"))
    assert found == [("report", 2)]
    assert FLOORS[room(found[0][0])] > FLOORS["kernel"]


@pytest.mark.parametrize(
    "module, text, expected",
    [
        ("read.x", "from . import digest\n", ["read.digest"]),
        ("read.x", "from ..kernel import ranges\n", ["kernel.ranges"]),
        ("read", "from .image import read_kimage\n", ["read.image"]),
        ("cli", "import drgn_crashhp.run\n", ["run"]),
    ],
)
def test_relative_imports_resolve(
    tmp_path: Path, module: str, text: str, expected: List[str]
) -> None:
    name = "__init__.py" if module == "read" else "x.py"
    path = tmp_path / name
    path.write_text(text)
    got = [t for t, _ in imports(module, path)]
    # "from . import digest" names the package; the checker sees its room
    assert [room(g) for g in got] == [room(e) for e in expected]
