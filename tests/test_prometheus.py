"""
Prometheus textfile output on the real fixtures, parsed back with
prometheus-client's own parser and compared with what each scenario did to
its guest (vmcores/*.json), never with the report's own numbers.
"""

from __future__ import annotations

import copy
import functools
import os
from typing import Any, Dict, List, Tuple

import pytest

from drgn_crashhp import build_report, report_json
from tests.conftest import ROOT, real_fixture, scenario_names

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from drgn_crashhp.render.prometheus import (  # noqa: E402
    METRICS,
    render_prometheus,
    write_prometheus_textfile,
)

NOW = 1_764_570_000.0


@functools.cache
def _report(name: str) -> Dict[str, Any]:
    prog, _ = real_fixture(name)
    return report_json(build_report(prog))


def doc_and_truth(name: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    _, truth = real_fixture(name)
    return copy.deepcopy(_report(name)), truth


Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        assert fam.type == "gauge", fam.name
        assert fam.documentation, fam.name
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    want = {k: v for k, v in labels.items()}
    hits = [
        v
        for (n, ls), v in samples.items()
        if n == "drgn_crashhp_" + name and want.items() <= dict(ls).items()
    ]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def _size(ranges: List[List[str]]) -> int:
    return sum(int(e, 16) - int(s, 16) + 1 for s, e in ranges)


def expected_verdict(truth: Dict[str, Any]) -> str:
    exp = truth["expected"]
    if (
        not exp["crash_loaded"]
        or exp["digest"] == "mismatch"
        or exp["elfcorehdr"] == "stale"
    ):
        return "PROBLEM"
    if exp["digest"] == "n/a":  # a kdump dump excludes the crash region
        return "CANNOT VERIFY"
    return "OK"


def missing_cpu_notes(truth: Dict[str, Any]) -> int:
    """Present CPUs whose crash_notes address has no PT_NOTE (guest's sysfs)."""
    notes = {int(a, 16) for a, _ in truth["observed"]["pt_note"]}
    cpus = truth["guest_state"]["cpu"]["cpus"].values()
    return sum(1 for c in cpus if int(c["crash_notes"], 16) not in notes)


@pytest.mark.parametrize("name", scenario_names())
def test_metrics_match_the_scenario(name: str) -> None:
    doc, truth = doc_and_truth(name)
    samples = parse(render_prometheus(doc, now=NOW))
    exp = truth["expected"]
    verdict = expected_verdict(truth)
    for v in ("OK", "PROBLEM", "CANNOT VERIFY"):
        assert value(samples, "verdict", verdict=v) == (v == verdict), v
    assert (
        value(samples, "exit_status")
        == {"OK": 0, "PROBLEM": 1, "CANNOT VERIFY": 3}[verdict]
    )
    assert value(samples, "crash_kernel_loaded") == exp["crash_loaded"]
    assert value(samples, "last_check_timestamp_seconds") == NOW
    digest = {"n/a": None}.get(exp["digest"], exp["digest"])
    if digest is not None:
        assert value(samples, "digest", status=digest) == 1
        for other in ("match", "mismatch", "unverifiable", "skipped"):
            if other != digest:
                assert value(samples, "digest", status=other) == 0
    if exp["crash_loaded"] and exp["digest"] != "n/a":
        assert value(samples, "missing_ram_bytes") == _size(exp["missing_ram"])
        assert value(samples, "stale_ram_bytes") == _size(exp["extra_ram"])
        assert value(samples, "missing_cpu_notes") == missing_cpu_notes(truth)
        # Room for more program headers, from the segment the guest's kexec
        # reported and the CPUs and RAM ranges its sysfs and iomem showed.
        [seg] = [
            sg
            for sg in truth["segments"]
            if sg["mem"] == truth["observed"]["elfcorehdr_paddr"]
        ]
        memsz = int(seg["memsz"], 16)
        possible = truth["guest_state"]["cpu"]["possible"]
        lo, _, hi = possible.partition("-")
        ncpus = int(hi or lo) - int(lo) + 1
        ranges = len(truth["observed"]["iomem_ram_now"])
        assert value(samples, "elfcorehdr_free_phdrs") == (memsz - 64) // 56 - (
            ncpus + 2 + ranges
        )
    else:
        # Nothing to compare: no metric rather than a made-up zero.
        names = {n for n, _ in samples}
        assert "drgn_crashhp_missing_ram_bytes" not in names
        assert "drgn_crashhp_stale_ram_bytes" not in names
    by_sev = {
        s: value(samples, "findings_by_severity", severity=s)
        for s in ("error", "warning", "unverified", "info")
    }
    by_code = [
        (dict(ls), v) for (n, ls), v in samples.items() if n == "drgn_crashhp_findings"
    ]
    assert sum(by_sev.values()) == sum(v for _, v in by_code) > 0
    assert (by_sev["error"] > 0) == (verdict == "PROBLEM")


def test_file_memremove_shows_128_mib_stale() -> None:
    doc, _ = doc_and_truth("file_memremove")
    samples = parse(render_prometheus(doc, now=NOW))
    assert value(samples, "stale_ram_bytes") == 128 << 20
    assert value(samples, "missing_ram_bytes") == 0
    assert value(samples, "findings", code="CHP051", severity="error") == 1


def test_no_digest_is_skipped() -> None:
    prog, _ = real_fixture("file_base")
    samples = parse(
        render_prometheus(report_json(build_report(prog, digest=False)), now=NOW)
    )
    assert value(samples, "digest", status="skipped") == 1
    assert value(samples, "digest", status="match") == 0


def test_details_as_ints_or_hex_strings() -> None:
    """Schema 2 has plain ints in finding details; schema 1 had hex strings."""
    doc, _ = doc_and_truth("load_stale_memadd")

    def convert(x: Any, to_hex: bool) -> Any:
        if isinstance(x, list):
            return [convert(i, to_hex) for i in x]
        if isinstance(x, dict):
            return {k: convert(v, to_hex) for k, v in x.items()}
        if to_hex and isinstance(x, int) and not isinstance(x, bool):
            return hex(x)
        if not to_hex and isinstance(x, str) and x.startswith("0x"):
            return int(x, 16)
        return x

    as_int, as_hex = copy.deepcopy(doc), copy.deepcopy(doc)
    for f in as_int["findings"]:
        f["details"] = convert(f["details"], False)
    for f in as_hex["findings"]:
        f["details"]["ranges"] = convert(f["details"].get("ranges", []), True)
    a, b = render_prometheus(as_int, now=NOW), render_prometheus(as_hex, now=NOW)
    assert a == b
    assert value(parse(a), "missing_ram_bytes") == 128 << 20


def test_every_metric_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Monitoring") :]
    for name in METRICS:
        assert f"`drgn_crashhp_{name}`" in section, name


def test_textfile_is_replaced_atomically(tmp_path: Any) -> None:
    doc, _ = doc_and_truth("file_memremove")
    path = tmp_path / "drgn_crashhp.prom"
    path.write_text("# old\n")
    before = os.stat(path).st_ino
    write_prometheus_textfile(doc, str(path), now=NOW)
    # A new inode: the collector never sees a half-written file.
    assert os.stat(path).st_ino != before
    assert os.listdir(tmp_path) == ["drgn_crashhp.prom"]
    assert parse(path.read_text()) == parse(render_prometheus(doc, now=NOW))
