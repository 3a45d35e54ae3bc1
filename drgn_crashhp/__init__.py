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
