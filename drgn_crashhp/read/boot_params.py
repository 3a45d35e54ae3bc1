"""
Boot parameters
---------------

The capture kernel's command line, read through the boot-params segment's
``cmd_line_ptr``/``ext_cmd_line_ptr`` (x86 boot protocol,
Documentation/arch/x86/boot.rst).
"""

from __future__ import annotations

from typing import Optional

from drgn import Program

from drgn_crashhp.facts import CmdLine, EntryRegs, KImage, Role, Unread, UnreadKind
from drgn_crashhp.kernel.purgatory import parse_elfcorehdr_arg
from drgn_crashhp.read.fields import target_arch
from drgn_crashhp.read.physmem import Unreadable, read_phys

__all__ = ("MAX_CMDLINE", "read_cmdline")

MAX_CMDLINE = 1 << 16


def read_cmdline(
    prog: Program, image: KImage, regs: Optional[EntryRegs]
) -> Optional[CmdLine]:
    params = image.by_role(Role.BOOT_PARAMS)
    if params is None and regs is not None:
        params = image.segment_containing(regs.rsi)
    if params is None:
        return None
    fields = target_arch(prog).cmdline_ptr_fields
    if not fields:
        return None
    address = 0
    try:
        for i, (offset, name) in enumerate(fields):
            word = read_phys(prog, params.mem + offset, 4, name)
            address |= int.from_bytes(word, "little") << (32 * i)
    except Unreadable as e:
        return CmdLine(params.mem, None, None, None, None, e.unread())
    holder = image.segment_containing(address)
    if holder is None:
        return CmdLine(
            params.mem,
            address,
            None,
            None,
            None,
            Unread(
                "command line",
                UnreadKind.NOT_FOUND,
                f"cmd_line_ptr {address:#x} lies in no segment",
            ),
        )
    try:
        raw = read_phys(
            prog,
            address,
            min(holder.mem + holder.memsz - address, MAX_CMDLINE),
            "command line",
        )
    except Unreadable as e:
        return CmdLine(params.mem, address, None, None, None, e.unread())
    end = raw.find(b"\0")
    if end < 0:
        return CmdLine(
            params.mem,
            address,
            raw.decode(errors="replace"),
            None,
            None,
            Unread(
                "command line",
                UnreadKind.MALFORMED,
                "the command line is not NUL-terminated inside its segment",
            ),
        )
    text = raw[:end].decode(errors="replace")
    parsed = parse_elfcorehdr_arg(text)
    return CmdLine(params.mem, address, text, *(parsed or (None, None)))
