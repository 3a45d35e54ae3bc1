"""
Dump file
---------

The headers of the dump file behind a program: its PT_LOADs and note
names, and who wrote it (kdump's /proc/vmcore, QEMU ``dump-guest-memory``,
makedumpfile). A kdump-written dump's PT_LOADs are the elfcorehdr's RAM
ranges that were current at the panic (fs/proc/vmcore.c).

How the producer is told apart (from the file alone):

- QEMU ``dump-guest-memory`` (ELF) writes a ``"QEMU"`` note per CPU
  (QEMUCPUState, qemu dump/dump.c); with ``paging=false`` every PT_LOAD has
  ``p_vaddr == 0``. It also contains the crash region, which kdump's never
  does.
- ``/proc/vmcore`` has ``"CORE"`` NT_PRSTATUS notes plus one
  ``"VMCOREINFO"`` note, and RAM PT_LOADs with ``p_vaddr = PAGE_OFFSET +
  p_paddr`` (crash_prepare_elf64_headers() wrote them).
- makedumpfile's compressed format is not ELF (``"KDUMP   "`` signature):
  its page bitmap, not program headers, says what was dumped.
"""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

from drgn import Program, ProgramFlags
from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import NoteSegment

from drgn_crashhp.arch.x86_64 import is_kernel_text
from drgn_crashhp.facts import DumpHeaders, DumpLoad

__all__ = ("read_dump_headers",)


def _classify(
    note_names: Tuple[str, ...], loads: Tuple[DumpLoad, ...], page_offset: Optional[int]
) -> Tuple[str, str]:
    if "QEMU" in note_names:
        return "qemu", "QEMU notes (dump-guest-memory)"
    if loads and all(ld.vaddr == 0 for ld in loads):
        return "qemu", "every PT_LOAD has p_vaddr 0 (dump-guest-memory paging=false)"
    ram = [ld for ld in loads if not is_kernel_text(ld.vaddr)]
    if (
        "VMCOREINFO" in note_names
        and ram
        and page_offset is not None
        and all(ld.vaddr - ld.paddr == page_offset for ld in ram)
    ):
        return "kdump", (
            "VMCOREINFO note and RAM PT_LOADs at PAGE_OFFSET + "
            "paddr (/proc/vmcore of a capture kernel)"
        )
    return "unknown", "neither QEMU notes nor /proc/vmcore program headers"


def read_dump_headers(
    prog: Program, page_offset: Optional[int] = None
) -> Optional[DumpHeaders]:
    """
    Read the program headers and note names of the dump file behind *prog*.

    :param page_offset: PAGE_OFFSET of the crashed kernel (from
        :class:`~drgn_crashhp.facts.MachineState`), to recognise kdump's
        RAM PT_LOADs.
    :return: None for a live kernel or a program without a core file.
    """
    if prog.flags & ProgramFlags.IS_LIVE:
        return None
    path = prog.core_dump_path
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
            if magic.startswith(b"KDUMP") or magic.startswith(b"DISKDUMP"):
                return DumpHeaders(
                    path,
                    "kdump-compressed",
                    f"{magic.rstrip().decode()} signature (makedumpfile -c/-l/-p)",
                )
            f.seek(0)
            elf = ELFFile(f)
            names: List[str] = []
            loads: List[DumpLoad] = []
            for seg in elf.iter_segments():
                h = seg.header
                if h["p_type"] == "PT_LOAD":
                    loads.append(
                        DumpLoad(
                            h["p_paddr"], h["p_vaddr"], h["p_memsz"], h["p_filesz"]
                        )
                    )
                elif isinstance(seg, NoteSegment):
                    for note in seg.iter_notes():
                        if note["n_name"] not in names:
                            names.append(note["n_name"])
    except (OSError, ELFError, ConstructError, ValueError, struct.error) as e:
        # pyelftools lets construct's errors, struct.error and, for a note
        # name that is not UTF-8, UnicodeDecodeError out on corrupt headers.
        return DumpHeaders(path, "unknown", f"not readable as ELF: {e}")
    producer, evidence = _classify(tuple(names), tuple(loads), page_offset)
    return DumpHeaders(path, producer, evidence, tuple(names), tuple(loads))
