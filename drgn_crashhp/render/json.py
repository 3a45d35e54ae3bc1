"""
JSON
----

The report as plain JSON data: the frozen facts as they were read, the
findings with their details (numbers and ``[start, end]`` ranges, never
formatted strings), the verdict and the exit status.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any, Dict

from drgn_crashhp.findings import Finding

if TYPE_CHECKING:
    from drgn_crashhp.report import Report

__all__ = ("SCHEMA_VERSION", "jsonable", "report_json")

#: Version of the JSON document; bump on any incompatible change. 2: finding
#: details hold plain numbers (1 had hex strings in some codes); hotplug
#: capability flags; ``image.dm_crypt_keys_addr``; ``debuginfo``; the
#: makedumpfile fields of ``dump``. 3: ``analysis`` (the note rule, the
#: header's RAM ranges, the memory rows, the CPU rows, the rebuilt header),
#: ``symbol``, ``image_problem``, and ``state.arch``.
SCHEMA_VERSION = 3


def jsonable(value: Any) -> Any:
    """Plain JSON data from frozen dataclasses, enums, tuples and mappings."""
    if isinstance(value, Finding):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.metadata.get("json", True):
                out[f.name] = jsonable(getattr(value, f.name))
        return out
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, (str, int)) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def report_json(report: Report) -> Dict[str, Any]:
    """
    The report as one JSON document, which every other renderer reads: the
    facts as they were read, the digest verdict, the analysis and the
    findings.
    """
    facts, analysis = report.facts, report.analysis
    derived = jsonable(analysis)
    del derived["digest"]  # the top-level "digest"
    return {
        "schema": SCHEMA_VERSION,
        "tool": "drgn-crashhp",
        "target": facts.target,
        "verdict": report.verdict,
        "exit_status": report.exit_status,
        "debuginfo": jsonable(facts.debuginfo),
        "symbol": facts.symbol,
        "image": jsonable(facts.image),
        "image_problem": jsonable(facts.image_problem),
        "elfcorehdr": jsonable(facts.elfcorehdr),
        "purgatory": jsonable(facts.purgatory),
        "fdt": jsonable(facts.fdt),
        "digest": jsonable(analysis.digest),
        "state": jsonable(facts.state),
        "dump": jsonable(facts.dump),
        "analysis": derived,
        "findings": jsonable(report.findings),
    }
