"""Shared fixtures: real vmcores from a real 6.12 kernel booted under QEMU."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path
from typing import Any, Dict, Generator, Tuple

import drgn
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "vmcores_unpack", ROOT / "vmcores" / "unpack.py"
)
assert _spec is not None and _spec.loader is not None
unpack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unpack)


#: Skip reasons that mean a tool is missing that the CI setup installs
#: (``.ci/run``: ``vmcores/lab/setup.sh --live`` for QEMU 10, pahole and
#: binutils, ``contrib/kdump/setup-test.sh`` for Chromium and udevadm verify;
#: systemd-analyze comes with Debian's systemd). Under ``CI=true`` such a skip
#: fails the run: CI must run every test it has.
CI_TOOLS = re.compile(
    r"pahole not installed|objcopy not installed|no as/ld|readelf not available"
    r"|QEMU 10 is not installed|no chromium|no udevadm with 'verify'"
    r"|no systemd-analyze"
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator:
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and _in_ci()):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    if CI_TOOLS.search(reason):
        report.outcome = "failed"
        report.longrepr = (
            f"CI=true and the test skipped for a missing tool ({reason}): "
            "the CI setup (.ci/run) should have installed it"
        )


def have_fixtures() -> bool:
    return unpack.ARCHIVE.exists() and bool(unpack.scenarios())


def dwarf_program(dump: Path, vmlinux: Path) -> drgn.Program:
    """A new drgn program on *dump* with the DWARF of *vmlinux* (drgn's own
    reading, none of this package's)."""
    prog = drgn.Program()
    prog.set_core_dump(str(dump))
    prog.load_debug_info([str(vmlinux)])
    return prog


@functools.cache
def _load(name: str) -> Tuple[drgn.Program, Dict[str, Any]]:
    truth = unpack.scenarios()[name]
    return dwarf_program(unpack.dump_path(name), unpack.vmlinux_path()), truth


def real_fixture(name: str) -> Tuple[drgn.Program, Dict[str, Any]]:
    """
    A drgn program on the real dump of scenario *name* and its ground truth
    (recorded by vmcores/lab when the dump was made). Skips the test if the
    fixtures are not in this checkout.
    """
    if not have_fixtures() or name not in unpack.scenarios():
        pytest.skip(f"real fixture {name} not available")
    return _load(name)


def scenario_names() -> list:
    return sorted(unpack.scenarios()) if have_fixtures() else []


# ---- other kernel generations (vmcores/v6.1, vmcores/v7.3; issue 12) ----


def generation_scenarios(gens: Tuple[str, ...] = ("6.1", "7.3")) -> list:
    """'vGEN/NAME' of every scenario of the given generations in the checkout."""
    have = set(unpack.generations())
    return [f"v{g}/{n}" for g in gens if g in have for n in sorted(unpack.scenarios(g))]


def gen_fixture_paths(full_name: str) -> Tuple[Path, Path, Dict[str, Any]]:
    """(dump, vmlinux debug file, ground truth) of 'vGEN/NAME'; skips if absent."""
    gen, name = unpack.split_name(full_name)
    if gen not in unpack.generations() or name not in unpack.scenarios(gen):
        pytest.skip(f"real fixture {full_name} not available")
    truth = unpack.scenarios(gen)[name]
    return unpack.dump_path(name, gen), unpack.vmlinux_path(gen), truth


def dump_without_btf(name: str, where: Path) -> Path:
    """
    A copy of real scenario *name*'s dump whose in-memory BTF (the kernel's
    ``.BTF`` between ``__start_BTF`` and ``__stop_BTF``, the same bytes as
    the archive's ``kernel.btf``) has its magic zeroed: a kernel without
    usable BTF, for the "no debug info at all" paths.
    """
    dump = unpack.dump_path(name)
    btf = unpack.btf_path(unpack.DEFAULT_GEN).read_bytes()
    data = bytearray(dump.read_bytes())
    at = data.find(btf[:64])
    if at < 0:
        pytest.skip(f"{name}: the dump holds no BTF to corrupt")
    data[at : at + 2] = b"\0\0"  # BTF_MAGIC 0xeB9F
    out = where / f"{name}-nobtf.elf"
    out.write_bytes(bytes(data))
    return out
