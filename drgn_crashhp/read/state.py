"""
Machine state
-------------

Read the CPU and memory state that the elfcorehdr must describe, as the
kernel sees it now, into one :class:`~drgn_crashhp.facts.MachineState`: the
CPUs (:mod:`.cpus`), the memory (:mod:`.memory`), the kernel text
(:mod:`.kernel_text`), the vmcoreinfo note (kernel/vmcore_info.c), the
crash hotplug lines of the kernel log, the relevant Kconfig and
``__kexec_lock``.

Every value that cannot be read becomes ``None`` plus an entry in
:attr:`~drgn_crashhp.facts.MachineState.unknown` saying why; the reader
never raises for a missing symbol or unreadable memory.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

from drgn import FaultError, Program
from drgn.helpers.linux.cpumask import (
    cpu_online_mask,
    cpu_possible_mask,
    cpu_present_mask,
)
from drgn.helpers.linux.mm import phys_to_virt

from drgn_crashhp.arch import Arch
from drgn_crashhp.facts import CpuNote, LogLine, MachineState, Range, Unread, UnreadKind
from drgn_crashhp.read.cpus import cpus_of, read_cpu_notes
from drgn_crashhp.read.fields import FieldReader, target_arch
from drgn_crashhp.read.kernel_text import read_kernel_text
from drgn_crashhp.read.memory import (
    read_crashk,
    read_crashk_cma,
    read_firmware_ranges,
    read_memblock,
    read_memory_blocks,
    walk_system_ram_res,
)

__all__ = ("read_state",)


#: kexec/crash hotplug lines worth showing (kernel-notes §3.4).
_LOG_RE = re.compile(
    rb"^(crash hp: |kexec: |kexec_file: |kexec_core: |kexec-bzImage64: |"
    rb"kexec_file_load|crash_core: |crashkernel)|crash hotplug"
)


_KCONFIG_KEYS = (
    "CONFIG_NR_CPUS_DEFAULT",
    "CONFIG_NR_CPUS",
    "CONFIG_CRASH_MAX_MEMORY_RANGES",
    "CONFIG_MEMORY_HOTPLUG",
    "CONFIG_CRASH_HOTPLUG",
)


def _page_offset(prog: Program, arch: Arch) -> Tuple[int, Optional[str]]:
    """The direct map's virtual minus physical address (``__va(0)``)."""
    try:
        return prog["page_offset_base"].value_(), None
    except FaultError as e:
        return (
            arch.default_page_offset or 0,
            f"page_offset_base unreadable ({e}): constant",
        )
    except KeyError:
        pass
    # Without x86's CONFIG_DYNAMIC_MEMORY_LAYOUT: drgn's own __va(), which
    # knows each architecture's linear map (arm64's moves with memstart_addr).
    try:
        return phys_to_virt(prog, 0).value_(), None
    except Exception:  # noqa: BLE001 - libdrgn raises plain Exception here
        # ("could not find variable in direct mapping" without debug info)
        pass
    if arch.page_offset_from_vmcoreinfo is not None:
        offset = arch.page_offset_from_vmcoreinfo(_vmcoreinfo_numbers(prog))
        if offset is not None:
            return offset, None
    return (
        arch.default_page_offset or 0,
        "page_offset_base absent and __va() unavailable: constant PAGE_OFFSET",
    )


def _vmcoreinfo_numbers(prog: Program) -> Dict[str, int]:
    """VMCOREINFO's ``NUMBER(name)=value`` lines, from drgn's own copy."""
    try:
        text = prog["VMCOREINFO"].string_().decode(errors="replace")
    except (KeyError, FaultError):
        return {}
    out = {}
    for m in re.finditer(r"^NUMBER\((\w+)\)=(-?(?:0x)?[0-9a-fA-F]+)$", text, re.M):
        try:
            out[m.group(1)] = int(m.group(2), 0)
        except ValueError:
            continue
    return out


def _page_size(prog: Program, arch: Arch) -> int:
    try:
        return prog["PAGE_SIZE"].value_()
    except (KeyError, FaultError):
        return arch.page_size


def _vmcoreinfo(prog: Program, page_size: int, page_offset: int) -> Tuple[int, int]:
    vaddr = prog["vmcoreinfo_note"].value_()
    if not vaddr:
        raise ValueError("vmcoreinfo_note is NULL")
    # include/linux/vmcore_info.h: VMCOREINFO_NOTE_SIZE = 2 note headers
    # (12 each) + "VMCOREINFO" name (12) + VMCOREINFO_BYTES (PAGE_SIZE).
    return vaddr - page_offset, 24 + 12 + page_size


def _check_printk_ring(prog: Program) -> None:
    """
    drgn's get_printk_records() walks the lockless ring (kernel/printk/
    printk_ringbuffer.c, v5.10+) from tail_id to head_id with no bound of its
    own; refuse a ring whose span exceeds its own descriptor count.
    """
    try:
        ring = prog["prb"].desc_ring
    except KeyError:
        return  # the older log_buf is walked by length
    count = 1 << ring.count_bits.value_()
    # DESC_ID_MASK: the id is the state variable minus its two flag bits.
    id_mask = (1 << (8 * prog.type("unsigned long").size - 2)) - 1
    span = (ring.head_id.counter.value_() - ring.tail_id.counter.value_()) & id_mask
    if span >= count:
        raise ValueError(
            f"printk ring is corrupt: tail..head spans {span:#x} "
            f"descriptors, the ring holds {count:#x}"
        )


def _log(prog: Program) -> Tuple[LogLine, ...]:
    from drgn.helpers.linux.printk import get_printk_records

    _check_printk_ring(prog)
    out = []
    for rec in get_printk_records(prog):
        if _LOG_RE.search(rec.text):
            out.append(
                LogLine(
                    rec.seq, rec.timestamp, rec.level, rec.text.decode(errors="replace")
                )
            )
    return tuple(out)


def _kconfig(prog: Program) -> Tuple[Tuple[str, str], ...]:
    from drgn.helpers.linux.kconfig import get_kconfig

    config = get_kconfig(prog)
    return tuple((k, config[k]) for k in _KCONFIG_KEYS if k in config)


def read_state(prog: Program) -> MachineState:
    """
    Read the current CPU and memory state of the target.

    Never raises for missing symbols or unreadable memory: such fields are
    None and listed in :attr:`MachineState.unknown`.
    """
    arch = target_arch(prog)
    r = FieldReader(prog)
    page_offset, po_note = _page_offset(prog, arch)
    page_size = _page_size(prog, arch)
    if po_note:
        r.unknown.append(Unread("page_offset", UnreadKind.MISSING_INFO, po_note))
    possible = r.get("possible_cpus", lambda: cpus_of(cpu_possible_mask(prog)))
    present = r.get("present_cpus", lambda: cpus_of(cpu_present_mask(prog)))
    online = r.get("online_cpus", lambda: cpus_of(cpu_online_mask(prog)))
    nr_cpu_ids = r.get("nr_cpu_ids", lambda: prog["nr_cpu_ids"].value_())
    notes: Tuple[CpuNote, ...] = ()
    note_size = None
    if possible is not None:
        notes, note_size = read_cpu_notes(
            r, arch, possible, present or (), online or (), page_offset
        )
    root = r.get("system_ram", lambda: prog["iomem_resource"].address_of_())
    system_ram: Optional[Tuple[Range, ...]] = None
    iomem_problem = None
    if root is not None:
        system_ram, iomem_problem = walk_system_ram_res(prog, root)
        if iomem_problem:
            r.unknown.append(Unread("system_ram", UnreadKind.MALFORMED, iomem_problem))
    blocks = r.get("memory_blocks", lambda: read_memory_blocks(prog, arch))
    memblock = firmware = None
    if arch.crash_ranges == "memblock":
        memblock = r.get("memblock", lambda: read_memblock(prog))
        firmware = r.get("firmware_ranges", lambda: read_firmware_ranges(prog))
    kconfig = r.get("kconfig", lambda: _kconfig(prog))
    lock = r.get("kexec_lock", lambda: prog["__kexec_lock"].counter.value_())
    return MachineState(
        arch=arch.drgn_name,
        possible_cpus=possible,
        present_cpus=present,
        online_cpus=online,
        nr_cpu_ids=nr_cpu_ids,
        cpu_notes=notes,
        note_size=note_size,
        vmcoreinfo=r.get(
            "vmcoreinfo", lambda: _vmcoreinfo(prog, page_size, page_offset)
        ),
        # Only where the header maps the kernel image (x86, arm64); ppc64's
        # text lies in the linear map (prepare_elf_headers() there passes
        # need_kernel_map = false).
        kernel_text=r.get("kernel_text", lambda: read_kernel_text(prog, arch))
        if arch.start_kernel_map is not None
        else None,
        page_offset=page_offset,
        page_size=page_size,
        system_ram=system_ram,
        iomem_problem=iomem_problem,
        crashk_res=r.get("crashk_res", lambda: read_crashk(prog, "crashk_res")),
        crashk_low_res=r.get(
            "crashk_low_res", lambda: read_crashk(prog, "crashk_low_res")
        ),
        crashk_cma=r.get("crashk_cma", lambda: read_crashk_cma(prog)),
        memblock=memblock,
        firmware_ranges=firmware or (),
        memory_blocks=blocks[0] if blocks else None,
        memory_block_size=blocks[1] if blocks else None,
        memory_block_encoding=blocks[2] if blocks else None,
        log=r.get("log", lambda: _log(prog)),
        kexec_lock=lock,
        panic_cpu=r.get("panic_cpu", lambda: prog["panic_cpu"].counter.value_()),
        kconfig=kconfig or (),
        unknown=tuple(r.unknown),
    )
