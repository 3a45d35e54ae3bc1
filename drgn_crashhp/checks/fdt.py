"""
08x: the flattened device tree
------------------------------

What only the capture kernel's device tree can be wrong about (ppc64 and
arm64 kexec_load images, where kexec-tools builds the DTB at load time):
its ``/cpus`` against the present CPUs (the capture kernel boots on the CPU
that panicked and must find it there: ppc64 ``early_init_dt_scan_cpus()``
looks the boot CPU's hardware id up in /cpus), where ``/chosen`` points it
at the elfcorehdr (``linux,elfcorehdr`` on arm64, ``elfcorehdr=`` in
``bootargs`` on ppc64), and the memory it gives the capture kernel
(``linux,usable-memory-range``) against the crash reservation.

The memory nodes describe the machine at load time and nothing rewrites
them on hotplug; the capture kernel takes the dump's ranges from the
elfcorehdr, so RAM outside them is reported, not judged (CHP084).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from drgn_crashhp.analysis import Analysis
from drgn_crashhp.facts import Facts, Fdt, FdtRead, Range, Segment, UnreadKind
from drgn_crashhp.findings import Finding, finding
from drgn_crashhp.kernel.fdt import (
    DRCONF_MEM_ASSIGNED,
    Malformed,
    cpu_hw_ids,
    dynamic_memory_v2,
    reg_ranges,
    string,
)
from drgn_crashhp.kernel.purgatory import parse_elfcorehdr_arg
from drgn_crashhp.kernel.ranges import normalize, subtract

__all__ = ("check_fdt",)


def check_fdt(facts: Facts, analysis: Analysis) -> List[Finding]:
    """Emits CHP080 to CHP084 and CHP090."""
    image = facts.image
    if image is None:
        return []
    read = facts.fdt
    if read is None:
        hdr = facts.elfcorehdr
        unread = hdr.unread if hdr is not None else None
        # A kdump vmcore leaves the crash region out; an image whose
        # segments were read but hold no DTB is not judged either: a wrong
        # role test must not give a false PROBLEM.
        why = (
            "the image's segments are not in this target"
            if unread is not None and unread.kind == UnreadKind.NOT_IN_TARGET
            else "no segment starts with the FDT magic 0xd00dfeed"
        )
        return [finding("CHP090", f"FDT not checked: {why}", check="fdt")]
    seg = read.segment
    assert seg is not None
    where = f"FDT segment {seg.index} at {seg.mem:#x}"
    if read.fdt is None:
        unread = read.unread
        if unread is not None and unread.kind == UnreadKind.MALFORMED:
            return [
                finding(
                    "CHP083",
                    f"{where}: {unread}",
                    segment=seg.index,
                    reason=str(unread),
                )
            ]
        return [
            finding(
                "CHP090",
                f"FDT not checked: {where}: {unread}",
                check="fdt",
                segment=seg.index,
            )
        ]
    fdt = read.fdt
    try:
        out = _cpus(facts, read, fdt)
        out += _elfcorehdr(facts, fdt, where)
        out += _usable(facts, fdt)
        out.append(_summary(facts, read, fdt, where))
    except Malformed as e:
        # A property the capture kernel would misread as well.
        return [finding("CHP083", f"{where}: {e}", segment=seg.index, reason=str(e))]
    return out


def _cpus(facts: Facts, read: FdtRead, fdt: Fdt) -> List[Finding]:
    present = facts.state.present_cpus
    if present is None:
        return [
            finding(
                "CHP090",
                "FDT /cpus not checked: present CPUs unknown",
                check="fdt",
            )
        ]
    in_fdt = {hw for ids in cpu_hw_ids(fdt).values() for hw in ids}
    hw_of: Dict[int, int] = dict(read.hw_cpu_ids)
    out = []
    for cpu in present:
        hw = hw_of.get(cpu, cpu)
        if hw in in_fdt:
            continue
        out.append(
            finding(
                "CHP080",
                f"present CPU {cpu} (hardware id {hw:#x}) is not in the FDT's "
                f"/cpus: a panic on CPU {cpu} would hang the capture kernel",
                cpu=cpu,
                hw_id=hw,
                fdt_hw_ids=sorted(in_fdt),
                hw_ids_source=read.hw_cpu_ids_source,
            )
        )
    return out


def _elfcorehdr(facts: Facts, fdt: Fdt, where: str) -> List[Finding]:
    """``linux,elfcorehdr`` (arm64) or ``elfcorehdr=`` in bootargs (ppc64)
    against the elfcorehdr segment."""
    seg: Optional[Segment] = facts.image.elfcorehdr if facts.image else None
    chosen = fdt.node("/chosen")
    if seg is None or chosen is None:
        # No header segment is CHP010's to report.
        return []
    said: List[Tuple[str, Optional[int]]] = []
    for address, _size in reg_ranges(fdt, chosen, "linux,elfcorehdr"):
        said.append(("/chosen linux,elfcorehdr", address))
    bootargs = chosen.prop("bootargs")
    arg = parse_elfcorehdr_arg(string(bootargs)) if bootargs is not None else None
    if arg is not None:
        said.append((f"/chosen bootargs elfcorehdr={arg[0]}", arg[1]))
    if not said:
        return [
            finding(
                "CHP081",
                f"{where}: /chosen has neither linux,elfcorehdr nor elfcorehdr= in "
                f"bootargs; the capture kernel will not find the elfcorehdr "
                f"(segment {seg.index} at {seg.mem:#x})",
                segment=seg.index,
            )
        ]
    return [
        finding(
            "CHP081",
            f"{what} says {'nothing parsable' if address is None else hex(address)}"
            f", but the elfcorehdr segment {seg.index} is at {seg.mem:#x}",
            segment=seg.index,
            fdt_address=address,
        )
        for what, address in said
        if address != seg.mem
    ]


def _usable(facts: Facts, fdt: Fdt) -> List[Finding]:
    """arm64 ``linux,usable-memory-range`` inside the crash reservations."""
    chosen = fdt.node("/chosen")
    state = facts.state
    if chosen is None or state.crashk_res is None:
        return []
    reserved = [
        r for r in (state.crashk_res, state.crashk_low_res) if r is not None and r[1]
    ]
    reserved += list(state.crashk_cma or ())
    out = []
    for address, size in reg_ranges(fdt, chosen, "linux,usable-memory-range"):
        if not size:
            continue
        rng = (address, address + size - 1)
        outside = subtract([rng], normalize(reserved))
        if outside:
            out.append(
                finding(
                    "CHP082",
                    f"/chosen linux,usable-memory-range {rng[0]:#x}-{rng[1]:#x} "
                    f"reaches outside the crash reservation ({_ranges(outside)}): "
                    "the capture kernel would run in the crashed kernel's memory",
                    range=list(rng),
                    outside=[list(r) for r in outside],
                )
            )
    return out


def _ranges(ranges: Sequence[Range]) -> str:
    return ", ".join(f"{a:#x}-{b:#x}" for a, b in ranges) or "none"


def _memory(fdt: Fdt) -> List[Range]:
    """RAM the FDT describes: memory nodes' ``reg`` and the assigned LMBs of
    ``ibm,dynamic-memory-v2``."""
    out: List[Range] = []
    for node in fdt.children("/"):
        kind = node.prop("device_type")
        if kind is not None and string(kind) == "memory":
            out += [(a, a + s - 1) for a, s in reg_ranges(fdt, node) if s]
    for base, size, flags in dynamic_memory_v2(fdt) or ():
        if flags & DRCONF_MEM_ASSIGNED and size:
            out.append((base, base + size - 1))
    return out


def _summary(facts: Facts, read: FdtRead, fdt: Fdt, where: str) -> Finding:
    memory = _memory(fdt)
    ram = facts.state.system_ram
    beyond = subtract(normalize(ram), normalize(memory)) if ram is not None else []
    ids = cpu_hw_ids(fdt)
    text = (
        f"{where}: version {fdt.header.version}, {fdt.header.totalsize} bytes, "
        f"{len(fdt.nodes)} nodes; /cpus hardware ids "
        f"{', '.join(f'{i:#x}' for v in ids.values() for i in v) or 'none'}; "
        f"memory {_ranges(normalize(memory))}"
    )
    if beyond:
        text += (
            f"; RAM now outside it: {_ranges(beyond)} (not rewritten on hotplug; "
            "the dump's ranges come from the elfcorehdr)"
        )
    return finding(
        "CHP084",
        text,
        segment=read.segment.index if read.segment else None,
        cpus={path: list(v) for path, v in ids.items()},
        memory=[list(r) for r in memory],
        ram_outside=[list(r) for r in beyond],
        hw_ids_source=read.hw_cpu_ids_source,
    )
