"""The command line on bad targets: one line, a distinct status, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from drgn_crashhp.findings import EXIT_USAGE


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drgn_crashhp", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("drgn-crashhp: error: ")
    for w in words:
        assert w in lines[0]


def test_help() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    assert "CHP050" in proc.stdout and "exit status" in proc.stdout


def test_missing_vmcore(tmp_path: Path) -> None:
    assert_one_line_error(run("-c", str(tmp_path / "nope")), "no such file")


def test_garbage_vmcore(tmp_path: Path) -> None:
    p = tmp_path / "garbage"
    p.write_bytes(os.urandom(8192))
    assert_one_line_error(run("-c", str(p)), "cannot open")


def test_empty_vmcore(tmp_path: Path) -> None:
    p = tmp_path / "empty"
    p.write_bytes(b"")
    assert_one_line_error(run("-c", str(p)))


def test_usage_error() -> None:
    proc = run("--bogus")
    assert proc.returncode == EXIT_USAGE
    assert "Traceback" not in proc.stderr


def _real_args(name: str) -> list:
    from tests.conftest import real_fixture, unpack

    real_fixture(name)
    return [
        "-c",
        str(unpack.dump_path(name)),
        "-s",
        str(unpack.vmlinux_path()),
        "--no-default-symbols",
    ]


def test_formats_carry_the_same_verdict(tmp_path: Path) -> None:
    """file_memremove: a hot-removed 128 MiB DIMM still in the header."""
    import json

    import pytest

    args = _real_args("file_memremove")
    doc = json.loads(run(*args, "--format", "json").stdout)
    assert doc == json.loads(run(*args, "--json").stdout) | {"target": doc["target"]}
    assert doc["verdict"] == "PROBLEM"
    html = run(*args, "--format", "html")
    assert html.returncode == 1 and "0x100000000" in html.stdout
    assert html.stdout.lstrip().lower().startswith("<!doctype html>")
    pytest.importorskip("prometheus_client")
    prom = run(*args, "--format", "prometheus")
    assert prom.returncode == 1
    assert "drgn_crashhp_verdict{" in prom.stdout and "PROBLEM" in prom.stdout
    textfile = tmp_path / "crashhp.prom"
    written = run(*args, "--format", "prometheus", "--textfile", str(textfile))
    assert written.returncode == 1 and written.stdout == ""

    def steady(text: str) -> list:
        return [ln for ln in text.splitlines() if "timestamp" not in ln]

    assert steady(textfile.read_text()) == steady(prom.stdout)


def test_textfile_not_writable(tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("prometheus_client")
    proc = run(
        *_real_args("file_base"),
        "--format",
        "prometheus",
        "--textfile",
        str(tmp_path / "no" / "such" / "dir.prom"),
    )
    assert_one_line_error(proc, "cannot write")


def test_falls_back_to_btf_and_kallsyms_and_says_so() -> None:
    """A 6.1 lab kernel built with BTF, its vmcore opened with no debug info."""
    import json

    import pytest

    from tests.conftest import gen_fixture_paths, generation_scenarios

    if "v6.1/file_memadd" not in generation_scenarios(("6.1",)):
        pytest.skip("6.1 fixtures not available")
    dump, vmlinux, truth = gen_fixture_paths("v6.1/file_memadd")
    dwarf = run("-c", str(dump), "-s", str(vmlinux), "--no-default-symbols", "--json")
    btf = run("-c", str(dump), "--no-default-symbols", "--json")
    assert "Traceback" not in btf.stderr
    [line] = btf.stderr.strip().splitlines()
    assert line.startswith(
        "drgn-crashhp: no kernel debug info found; btf+kallsyms: BTF from memory"
    )
    a, b = json.loads(dwarf.stdout), json.loads(btf.stdout)
    assert (a["debuginfo"], b["debuginfo"]) == ("dwarf", "btf+kallsyms")
    assert btf.returncode == dwarf.returncode == 1  # the DIMM is missing
    assert [f["code"] for f in a["findings"]] == [f["code"] for f in b["findings"]]
    forced = run("-c", str(dump), "-s", str(vmlinux), "--btf", "--json")
    assert json.loads(forced.stdout)["debuginfo"] == "btf+kallsyms"


def test_no_debug_info_and_no_btf_is_one_line(tmp_path: Path) -> None:
    """No debug info, and the kernel's BTF unusable: nothing to fall back to."""
    from tests.conftest import dump_without_btf

    _real_args("file_base")
    proc = run(
        "-c", str(dump_without_btf("file_base", tmp_path)), "--no-default-symbols"
    )
    assert_one_line_error(proc, "no kernel debug info found", "BTF")


def test_a_wrong_symbols_file_is_an_error_not_a_switch_to_btf() -> None:
    """-s names the debug info: a file without it is the user's mistake to
    hear about, even on a kernel whose BTF could answer (6.1 lab kernel)."""
    import pytest

    from tests.conftest import gen_fixture_paths, generation_scenarios

    if "v6.1/file_memadd" not in generation_scenarios(("6.1",)):
        pytest.skip("6.1 fixtures not available")
    dump, _, _ = gen_fixture_paths("v6.1/file_memadd")
    proc = run(
        "-c", str(dump), "-s", os.path.realpath(sys.executable), "--no-default-symbols"
    )
    assert_one_line_error(proc, "no kernel debug info in", "--btf")
