"""
03x: entry registers and the capture command line
-------------------------------------------------

Where purgatory will jump and with what (``entry64_regs``: rip at the
kernel's startup_64, rsi at the boot params, rsp at purgatory's stack;
kexec-tools' purgatory variables on ppc64 and arm64: the kernel and the
device tree segments), and
whether the capture kernel's command line points at the elfcorehdr
(``elfcorehdr=``, kernel/elfcorehdr.c).
"""

from __future__ import annotations

from typing import List, Optional

from drgn_crashhp.analysis import Analysis
from drgn_crashhp.checks._common import arch
from drgn_crashhp.facts import CmdLine, Facts, KImage, Purgatory, Role
from drgn_crashhp.findings import Finding, finding

__all__ = ("check_entry",)


def _check_regs(image: KImage, p: Purgatory, entry_offset: int) -> List[Finding]:
    r = p.regs
    if r is None:
        if p.regs_unread and p.unread is None:
            return [
                finding(
                    "CHP090",
                    f"entry64_regs: {p.regs_unread}; entry registers not checked",
                )
            ]
        return []
    starts = {s.mem for s in image.segments}
    wrong = []
    kernel = image.by_role(Role.KERNEL)
    if kernel is not None:
        if r.rip != kernel.mem + entry_offset:
            wrong.append(
                f"rip {r.rip:#x} != kernel segment {kernel.mem:#x} + {entry_offset:#x}"
            )
    elif r.rip - entry_offset not in starts:
        wrong.append(
            f"rip {r.rip:#x} is not {entry_offset:#x} past the start of a segment"
        )
    params = image.by_role(Role.BOOT_PARAMS)
    if params is not None:
        if r.rsi != params.mem:
            wrong.append(f"rsi {r.rsi:#x} != boot params segment {params.mem:#x}")
    elif r.rsi not in starts:
        wrong.append(f"rsi {r.rsi:#x} is not the start of a segment")
    if p.stack_end is not None:
        if r.rsp != p.stack_end:
            wrong.append(f"rsp {r.rsp:#x} != stack_end {p.stack_end:#x}")
    elif (
        p.segment_mem is not None
        and p.segment_memsz is not None
        and not (p.segment_mem < r.rsp <= p.segment_mem + p.segment_memsz)
    ):
        wrong.append(f"rsp {r.rsp:#x} is outside the purgatory segment")
    if r.rbx != 0:
        wrong.append(f"rbx {r.rbx:#x} != 0 (boot CPU)")
    rfc = image.hotplug.rfc
    if rfc is not None:
        # RFC v1 re-ran purgatory loading on each event and restored these
        # four from image->arch.hp.
        for name in ("rbx", "rsi", "rip", "rsp"):
            if getattr(r, name) != getattr(rfc, name):
                wrong.append(
                    f"{name} {getattr(r, name):#x} != arch.hp.{name} "
                    f"{getattr(rfc, name):#x}"
                )
    if not wrong:
        return []
    return [
        finding(
            "CHP030",
            "; ".join(wrong),
            problems=wrong,
            regs={n: getattr(r, n) for n in ("rip", "rsi", "rsp", "rbx")},
        )
    ]


def _check_cmdline(image: KImage, c: Optional[CmdLine]) -> List[Finding]:
    if c is None:
        return [
            finding(
                "CHP090",
                "no boot params segment identified; the "
                "capture command line was not checked",
            )
        ]
    if c.text is None:
        if c.address is not None and image.segment_containing(c.address) is None:
            # The loader always puts it in the boot params segment: the
            # capture kernel would parse whatever lies there after kexec.
            return [
                finding(
                    "CHP031",
                    f"capture command line: {c.unread}",
                    address=c.address,
                    params=c.params_mem,
                )
            ]
        return [finding("CHP090", f"capture command line: {c.unread}")]
    out = [finding("CHP032", c.text, address=c.address, params=c.params_mem)]
    if c.unread is not None:
        out.append(finding("CHP031", f"capture command line: {c.unread}"))
        return out
    elf = image.elfcorehdr
    target = elf.mem if elf is not None else image.elf_load_addr or None
    if c.elfcorehdr_arg is None:
        out.append(
            finding(
                "CHP031",
                "the capture command line has no "
                "elfcorehdr=: the capture kernel will not create "
                "/proc/vmcore",
                expected=target,
            )
        )
    elif c.elfcorehdr is None or (target is not None and c.elfcorehdr != target):
        got = "unparsable" if c.elfcorehdr is None else f"{c.elfcorehdr:#x}"
        want = "-" if target is None else f"{target:#x}"
        out.append(
            finding(
                "CHP031",
                f"elfcorehdr={c.elfcorehdr_arg} ({got}) "
                f"is not the elfcorehdr segment ({want})",
                argument=c.elfcorehdr_arg,
                address=c.elfcorehdr,
                expected=target,
            )
        )
    return out


def _check_variables(image: KImage, p: Purgatory) -> List[Finding]:
    if p.variables_unread is not None:
        if p.unread is not None:
            return []
        return [
            finding(
                "CHP090",
                f"kexec-tools' purgatory variables: {p.variables_unread}; "
                "entry variables not checked",
            )
        ]
    wrong = []
    for v in p.variables:
        seg = image.by_role(v.points_at)
        if seg is None:
            owner = image.segment_containing(v.value)
            wrong.append(
                f"{v.name} {v.value:#x}: no {v.points_at} segment"
                + (
                    f" (it points into segment {owner.index}, {owner.role})"
                    if owner is not None
                    else ""
                )
            )
        elif v.value != seg.mem:
            wrong.append(
                f"{v.name} {v.value:#x} != {v.points_at} segment "
                f"{seg.index} at {seg.mem:#x}"
            )
    if not wrong:
        return []
    return [
        finding(
            "CHP033",
            "; ".join(wrong) + ": purgatory would not start the capture kernel",
            problems=wrong,
            variables={v.name: v.value for v in p.variables},
        )
    ]


def check_entry(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP030, CHP031, CHP032, CHP033 and CHP090."""
    if facts.image is None or facts.purgatory is None:
        return []
    if arch(facts).kexec_tools_variables and not facts.image.file_mode:
        # kexec-tools' purgatory on an architecture without a register
        # block; the capture command line is the FDT's (08x).
        return _check_variables(facts.image, facts.purgatory)
    entry_offset = arch(facts).kernel_entry_offset
    if entry_offset is None:
        return []
    return _check_regs(facts.image, facts.purgatory, entry_offset) + _check_cmdline(
        facts.image, facts.purgatory.cmdline
    )
