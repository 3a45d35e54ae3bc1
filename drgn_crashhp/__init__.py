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

from drgn_crashhp.elfcorehdr import (
    ElfCoreHdr,
    ElfCoreHdrRead,
    decode_elfcorehdr,
    read_elfcorehdr,
)
from drgn_crashhp.findings import CODES, Finding, Severity, exit_status
from drgn_crashhp.kimage import KImage, Layout, Role, Segment, read_kimage
from drgn_crashhp.report import Report, build_report, render_text, report_json
from drgn_crashhp.target import TargetError, open_program

__all__ = (
    "CODES",
    "ElfCoreHdr",
    "ElfCoreHdrRead",
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
    "read_kimage",
    "render_text",
    "report_json",
)
