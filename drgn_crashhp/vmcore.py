"""
vmcore
------

Postmortem: a vmcore written by kdump is ``/proc/vmcore`` of the capture
kernel (fs/proc/vmcore.c), whose PT_LOADs are the elfcorehdr's RAM ranges
that were current at the panic. Compare them with the RAM the crashed
kernel had, read from the same dump.

How the producer is told apart (from the file alone):

- QEMU ``dump-guest-memory`` (ELF) writes a ``"QEMU"`` note per CPU
  (QEMUCPUState, qemu dump/dump.c); with ``paging=false`` every PT_LOAD has
  ``p_vaddr == 0``. It also contains the crash region, which kdump's never
  does.
- ``/proc/vmcore`` has ``"CORE"`` NT_PRSTATUS notes plus one
  ``"VMCOREINFO"`` note, and RAM PT_LOADs with ``p_vaddr = PAGE_OFFSET +
  p_paddr`` (crash_prepare_elf64_headers() wrote them).
- makedumpfile's compressed format is not ELF (``"KDUMP   "`` signature):
  its page bitmap, not program headers, says what was dumped; not compared.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import List, Optional, Tuple

from drgn import Program, ProgramFlags
from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import NoteSegment

from drgn_crashhp.compare import (
    _hex,
    _mib,
    _normalize,
    _size,
    _subtract,
    excluded_ranges,
)
from drgn_crashhp.elfcorehdr import START_KERNEL_MAP
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.state import MachineState

__all__ = ("DumpHeaders", "DumpLoad", "check_dump", "read_dump_headers")


@dataclass(frozen=True)
class DumpLoad:
    paddr: int
    vaddr: int
    memsz: int
    filesz: int

    @property
    def end(self) -> int:
        return self.paddr + self.memsz - 1


@dataclass(frozen=True)
class DumpHeaders:
    path: str
    #: "kdump", "qemu", "kdump-compressed" or "unknown".
    producer: str
    #: What decided the producer.
    evidence: str
    note_names: Tuple[str, ...] = ()
    loads: Tuple[DumpLoad, ...] = ()


def _classify(note_names: Tuple[str, ...], loads: Tuple[DumpLoad, ...],
              page_offset: Optional[int]) -> Tuple[str, str]:
    if "QEMU" in note_names:
        return "qemu", "QEMU notes (dump-guest-memory)"
    if loads and all(ld.vaddr == 0 for ld in loads):
        return "qemu", "every PT_LOAD has p_vaddr 0 (dump-guest-memory paging=false)"
    ram = [ld for ld in loads if ld.vaddr < START_KERNEL_MAP]
    if "VMCOREINFO" in note_names and ram and page_offset is not None and all(
        ld.vaddr - ld.paddr == page_offset for ld in ram
    ):
        return "kdump", ("VMCOREINFO note and RAM PT_LOADs at PAGE_OFFSET + "
                         "paddr (/proc/vmcore of a capture kernel)")
    return "unknown", "neither QEMU notes nor /proc/vmcore program headers"


def read_dump_headers(
    prog: Program, page_offset: Optional[int] = None
) -> Optional[DumpHeaders]:
    """
    Read the program headers and note names of the dump file behind *prog*.

    :param page_offset: PAGE_OFFSET of the crashed kernel (from
        :class:`~drgn_crashhp.state.MachineState`), to recognise kdump's
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
                return DumpHeaders(path, "kdump-compressed",
                                   f"{magic.rstrip().decode()} signature "
                                   "(makedumpfile -c/-l/-p)")
            f.seek(0)
            elf = ELFFile(f)
            names: List[str] = []
            loads: List[DumpLoad] = []
            for seg in elf.iter_segments():
                h = seg.header
                if h["p_type"] == "PT_LOAD":
                    loads.append(DumpLoad(h["p_paddr"], h["p_vaddr"], h["p_memsz"],
                                          h["p_filesz"]))
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


def check_dump(dump: DumpHeaders, state: MachineState) -> List[Finding]:
    """
    Compare a kdump-written dump's own PT_LOADs with the RAM the crashed
    kernel had (its iomem walk, minus what the kernel excludes from the
    elfcorehdr). Nothing for other producers.
    """
    if dump.producer == "kdump-compressed":
        return [finding("CHP071", f"{dump.path}: written by makedumpfile "
                        f"({dump.evidence}); its page bitmap is not compared",
                        producer=dump.producer)]
    if dump.producer != "kdump":
        return []
    loads = [ld for ld in dump.loads if ld.vaddr < START_KERNEL_MAP]
    dumped = _normalize((ld.paddr, ld.end) for ld in loads if ld.memsz)
    out = [finding(
        "CHP071", f"{dump.path}: written by kdump ({dump.evidence}); "
        f"{len(loads)} RAM PT_LOADs, {_mib(_size(dumped))}",
        producer=dump.producer, loads=len(loads), bytes=_size(dumped))]
    if state.system_ram is None or state.iomem_problem:
        out.append(finding("CHP090", "the crashed kernel's RAM is unknown: "
                           f"{state.why_unknown('system_ram')}", check="dump RAM"))
        return out
    required = _subtract(_normalize(state.system_ram),
                         _normalize(r for _, r in excluded_ranges(state)))
    missing = _subtract(required, dumped)
    offline = _normalize((b.start, b.end) for b in state.memory_blocks or ()
                         if not b.online)
    not_online = _subtract(missing, _subtract(missing, offline))
    missing = _subtract(missing, offline)
    if missing:
        out.append(finding(
            "CHP070", f"{_mib(_size(missing))} of the crashed kernel's RAM in "
            f"{len(missing)} range(s) is not in the dump: "
            + ", ".join(f"[{s:#x}-{e:#x}]" for s, e in missing[:4]),
            ranges=_hex(missing), bytes=_size(missing),
            offline_not_dumped=_hex(not_online)))
    return out
