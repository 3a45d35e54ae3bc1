"""
drgn-crashhp
------------

Would the loaded kdump crash kernel boot, and would its dump hold every CPU
and every byte of RAM? Readers turn kernel memory into frozen values, checks
turn values into findings, and the report renders them.

>>> from drgn_crashhp import build_report, render_text
>>> report = build_report(prog)
>>> print(render_text(report))
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drgn_crashhp.facts import (
        ElfCoreHdr,
        ElfCoreHdrRead,
        Facts,
        KImage,
        Layout,
        Role,
        Segment,
    )
    from drgn_crashhp.findings import CODES, Finding, Severity, exit_status
    from drgn_crashhp.kernel.elfcorehdr import decode_elfcorehdr
    from drgn_crashhp.read import read_facts
    from drgn_crashhp.read.elfcorehdr import read_elfcorehdr
    from drgn_crashhp.read.image import read_kimage
    from drgn_crashhp.render.json import report_json
    from drgn_crashhp.render.text import render_text
    from drgn_crashhp.report import Report, build_report, report_from_facts
    from drgn_crashhp.target import TargetError, open_program

#: Where each public name lives. They load on first use (PEP 562), so that
#: drgn, which imports the plugin at every start, does not pay for the
#: report's modules until ``%crashhp`` runs.
_PUBLIC = {
    "CODES": "findings",
    "ElfCoreHdr": "facts",
    "ElfCoreHdrRead": "facts",
    "Facts": "facts",
    "Finding": "findings",
    "KImage": "facts",
    "Layout": "facts",
    "Report": "report",
    "Role": "facts",
    "Segment": "facts",
    "Severity": "findings",
    "TargetError": "target",
    "build_report": "report",
    "decode_elfcorehdr": "kernel.elfcorehdr",
    "exit_status": "findings",
    "open_program": "target",
    "read_elfcorehdr": "read.elfcorehdr",
    "read_facts": "read",
    "read_kimage": "read.image",
    "render_text": "render.text",
    "report_from_facts": "report",
    "report_json": "render.json",
}

__all__ = (
    "CODES",
    "ElfCoreHdr",
    "ElfCoreHdrRead",
    "Facts",
    "Finding",
    "KImage",
    "Layout",
    "Report",
    "Role",
    "Segment",
    "Severity",
    "TargetError",
    "build_report",
    "decode_elfcorehdr",
    "exit_status",
    "open_program",
    "read_elfcorehdr",
    "read_facts",
    "read_kimage",
    "render_text",
    "report_from_facts",
    "report_json",
)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # An older drgn (a distribution's python3-drgn) gets one line saying what
    # to do, not an ImportError from deep inside a reader.
    from drgn_crashhp.requirements import check_drgn_version

    check_drgn_version()
    value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + list(_PUBLIC))
