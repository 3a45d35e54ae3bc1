"""
Prometheus
----------

The report as node_exporter textfile-collector metrics, written with the
``prometheus-client`` library (the ``prometheus`` extra). Input is the JSON
document of :func:`drgn_crashhp.render.json.report_json`; only its top-level keys
and the finding codes and details are used.

    python3 -m drgn_crashhp.render.prometheus --textfile \\
        /var/lib/prometheus/node-exporter/drgn_crashhp.prom < report.json

The textfile collector reads every ``*.prom`` file in its directory at each
scrape, so a file must be replaced atomically, never rewritten in place.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

__all__ = ("METRICS", "render_prometheus", "write_prometheus_textfile")

PREFIX = "drgn_crashhp_"
VERDICTS = ("OK", "PROBLEM", "CANNOT VERIFY")
SEVERITIES = ("error", "warning", "unverified", "info")
DIGEST_STATUSES = ("match", "mismatch", "unverifiable", "skipped")

# name (without PREFIX): help. The README's "Monitoring" table lists the same.
METRICS: Dict[str, str] = {
    "verdict": "1 for the verdict of the last check (OK, PROBLEM, CANNOT VERIFY), "
    "0 for the others",
    "exit_status": "exit status of the last check: 0 OK, 1 problem, 3 cannot verify",
    "crash_kernel_loaded": "1 if a crash kernel is loaded (no CHP001)",
    "findings": "findings of the last check, by code and severity",
    "findings_by_severity": "findings of the last check, by severity",
    "missing_ram_bytes": "RAM not described by the elfcorehdr (CHP050); absent when "
    "the comparison could not run",
    "stale_ram_bytes": "elfcorehdr bytes that are no longer RAM (CHP051, CHP052); "
    "absent when the comparison could not run",
    "missing_cpu_notes": "present CPUs without a PT_NOTE in the elfcorehdr "
    "(CHP040); absent when the comparison could not run",
    "digest": "1 for the purgatory digest status (match, mismatch, unverifiable, "
    "skipped with --no-digest), 0 for the others",
    "elfcorehdr_free_phdrs": "program headers the elfcorehdr segment can still "
    "take (CHP065/CHP060 free_phdrs; negative: the next update fails)",
    "last_check_timestamp_seconds": "when this report was rendered, Unix time",
}


def _by_code(doc: Mapping[str, Any]) -> Dict[str, List[Mapping[str, Any]]]:
    out: Dict[str, List[Mapping[str, Any]]] = {}
    for f in doc.get("findings") or ():
        out.setdefault(f["code"], []).append(f)
    return out


def memory_compared(doc: Mapping[str, Any]) -> bool:
    """Did the report compare the elfcorehdr's RAM ranges with RAM now?"""
    hdr = doc.get("elfcorehdr") or {}
    state = doc.get("state") or {}
    return (
        bool(hdr.get("header"))
        and state.get("system_ram") is not None
        and not state.get("iomem_problem")
    )


def cpus_compared(doc: Mapping[str, Any]) -> bool:
    """Did the report compare the elfcorehdr's CPU notes with the CPUs now?"""
    hdr = doc.get("elfcorehdr") or {}
    state = doc.get("state") or {}
    return bool(hdr.get("header")) and state.get("present_cpus") is not None


def row_bytes(doc: Mapping[str, Any], status: str) -> int:
    """Bytes of the analysis' memory rows with *status*."""
    return sum(
        row["end"] - row["start"] + 1
        for row in (doc.get("analysis") or {}).get("memory_rows") or ()
        if row["status"] == status
    )


def cpus_with_status(doc: Mapping[str, Any], status: str) -> int:
    """How many of the analysis' CPU rows have *status*."""
    rows = (doc.get("analysis") or {}).get("cpu_rows") or ()
    return sum(1 for row in rows if row["status"] == status)


def _families(doc: Mapping[str, Any], now: float) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    def gauge(name: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(PREFIX + name, METRICS[name], labels=list(labels))

    codes = _by_code(doc)
    target = str(doc.get("target") or "")

    g = gauge("verdict", ["verdict", "target"])
    for v in VERDICTS:
        g.add_metric([v, target], 1.0 if doc.get("verdict") == v else 0.0)
    yield g
    g = gauge("exit_status")
    g.add_metric([], float(doc.get("exit_status", 3)))
    yield g
    g = gauge("crash_kernel_loaded")
    g.add_metric([], 0.0 if "CHP001" in codes else 1.0)
    yield g

    g = gauge("findings", ["code", "severity"])
    for code in sorted(codes):
        g.add_metric([code, codes[code][0]["severity"]], float(len(codes[code])))
    yield g
    g = gauge("findings_by_severity", ["severity"])
    for sev in SEVERITIES:
        g.add_metric(
            [sev],
            float(sum(len(fs) for fs in codes.values() if fs[0]["severity"] == sev)),
        )
    yield g

    if memory_compared(doc):
        g = gauge("missing_ram_bytes")
        g.add_metric([], float(row_bytes(doc, "MISSING")))
        yield g
        g = gauge("stale_ram_bytes")
        g.add_metric([], float(row_bytes(doc, "not RAM now")))
        yield g
    if cpus_compared(doc):
        g = gauge("missing_cpu_notes")
        g.add_metric([], float(cpus_with_status(doc, "missing")))
        yield g

    digest = doc.get("digest")
    status = "skipped" if digest is None else str(digest.get("status"))
    g = gauge("digest", ["status"])
    for s in DIGEST_STATUSES:
        g.add_metric([s], 1.0 if status == s else 0.0)
    yield g

    room = codes.get("CHP065", []) + codes.get("CHP060", [])
    if room and "free_phdrs" in room[0]["details"]:
        g = gauge("elfcorehdr_free_phdrs")
        g.add_metric([], float(room[0]["details"]["free_phdrs"]))
        yield g

    g = gauge("last_check_timestamp_seconds")
    g.add_metric([], float(now))
    yield g


def _registry(doc: Mapping[str, Any], now: Optional[float]) -> Any:
    from prometheus_client import CollectorRegistry

    when = time.time() if now is None else now

    class _Report:
        def collect(self) -> Iterator[Any]:
            return _families(doc, when)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Report())
    return registry


def render_prometheus(doc: Mapping[str, Any], now: Optional[float] = None) -> str:
    """
    The report *doc* (from ``report_json``) in the Prometheus text exposition
    format. *now* is the check time (default: the current time).

    :raises ImportError: without ``prometheus-client`` (the ``prometheus`` extra).
    """
    from prometheus_client import generate_latest

    return generate_latest(_registry(doc, now)).decode()


def write_prometheus_textfile(
    doc: Mapping[str, Any], path: str, now: Optional[float] = None
) -> None:
    """
    Write :func:`render_prometheus` to *path* atomically (a temporary file in
    the same directory, then ``os.replace``), as node_exporter's textfile
    collector requires; *path* must end in ``.prom`` for the collector.
    """
    from prometheus_client import write_to_textfile

    write_to_textfile(path, _registry(doc, now))


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        description="Render a drgn-crashhp JSON report (stdin) as Prometheus metrics"
    )
    p.add_argument(
        "--textfile",
        metavar="PATH.prom",
        help="write atomically to PATH.prom instead of stdout",
    )
    args = p.parse_args(argv)
    doc = json.load(sys.stdin)
    if args.textfile:
        write_prometheus_textfile(doc, args.textfile)
    else:
        sys.stdout.write(render_prometheus(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
