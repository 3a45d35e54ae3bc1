"""
Findings
--------

A finding is one statement about the loaded crash image: a stable code, a
severity, a one-line message and structured details. Checks produce them;
reports render them. The code table below is the single source of truth for
every code the tool can emit (the README's table is generated from it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Tuple

__all__ = (
    "CODES",
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_UNVERIFIED",
    "EXIT_USAGE",
    "Code",
    "Finding",
    "Severity",
    "exit_status",
    "finding",
    "sorted_findings",
)


class Severity(enum.IntEnum):
    """How much a finding matters for the question "would kdump work now?"."""

    INFO = 0
    #: Not a failure now, but a risk (for example, no room for the next update).
    WARNING = 1
    #: The tool could not prove the property (bytes missing from the target).
    UNVERIFIED = 2
    #: A panic now would hang, or the dump would miss CPUs or memory.
    ERROR = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Code:
    """A finding code: its severity, title and what to do about it."""

    code: str
    severity: Severity
    title: str
    advice: str


def _codes(*codes: Code) -> Dict[str, Code]:
    return {c.code: c for c in codes}


E, W, U, N = Severity.ERROR, Severity.WARNING, Severity.UNVERIFIED, Severity.INFO

CODES: Mapping[str, Code] = _codes(
    # 00x: the crash image itself
    Code(
        "CHP001",
        E,
        "no crash kernel is loaded",
        "A panic now gives no dump. Load one (kexec -p / kdumpctl start); if a "
        "reload is in progress (__kexec_lock held), check again.",
    ),
    Code(
        "CHP002",
        U,
        "the crash image cannot be read",
        "The kimage is not in this dump or the pointer is bad; nothing below "
        "it can be verified.",
    ),
    Code(
        "CHP003",
        E,
        "the segment table is invalid",
        "nr_segments is 0 or above KEXEC_SEGMENT_MAX, or a segment is "
        "malformed (memsz < bufsz, unaligned, overlapping); the image is "
        "corrupt.",
    ),
    Code(
        "CHP004",
        E,
        "a segment lies outside the crash kernel reservation",
        "The kernel only loads crash segments inside crashk_res; the image "
        "or crashk_res is corrupt.",
    ),
    Code(
        "CHP005",
        N,
        "crash image layout",
        "Which kernel layout of struct kimage was found.",
    ),
    Code(
        "CHP006",
        N,
        "no kexec image is loaded",
        "kexec_image (the normal kexec image, on request) is NULL.",
    ),
    # 01x: the elfcorehdr
    Code(
        "CHP010",
        E,
        "no elfcorehdr segment was found",
        "The capture kernel gets no ELF core header and /proc/vmcore will "
        "not exist. Reload the crash kernel.",
    ),
    Code(
        "CHP011",
        U,
        "the elfcorehdr bytes are not in this target",
        "A kdump-written vmcore excludes the crash region; check the live "
        "system or a full-memory dump.",
    ),
    Code(
        "CHP012",
        E,
        "the elfcorehdr is malformed",
        'The capture kernel will reject it ("Core image elf header is not '
        'sane"). Reload the crash kernel.',
    ),
    Code(
        "CHP013",
        N,
        "elfcorehdr summary",
        "Notes, loads and the used size of the header.",
    ),
    Code(
        "CHP014",
        E,
        "the elfcorehdr RAM ranges overlap, are out of order or wrap",
        "Neither the kernel nor kexec-tools writes such a header: it is "
        "corrupt, and /proc/vmcore would map memory twice or out of order. "
        "Reload the crash kernel.",
    ),
    # 02x: purgatory and its digest
    Code(
        "CHP020",
        E,
        "the purgatory digest does not match",
        "Purgatory will hash the segments at panic, find this mismatch and "
        "spin forever: no dump. Reload the crash kernel.",
    ),
    Code(
        "CHP021",
        N,
        "the purgatory digest matches",
        "Every hashed region was read and hashes to the stored digest.",
    ),
    Code(
        "CHP022",
        U,
        "the digest cannot be verified",
        "Some hashed bytes are not in this target (listed ranges).",
    ),
    Code(
        "CHP023",
        E,
        "digest verification is silently disabled",
        "All sha regions are empty while segments exist (the 6.6-6.10 "
        "elfcorehdr-exclusion bug, fixed in 6.11): purgatory checks nothing. "
        "Update the kernel.",
    ),
    Code(
        "CHP024",
        E,
        "the elfcorehdr is hashed but was changed after load",
        "The header lies inside the digest and differs from what was "
        "hashed: purgatory will hang. Reload the crash kernel.",
    ),
    Code(
        "CHP025",
        W,
        "the sha regions differ from the segment table",
        "The regions should be every segment except purgatory, the "
        "elfcorehdr (with hotplug) and IMA, in segment order.",
    ),
    Code(
        "CHP026",
        U,
        "the purgatory cannot be located or decoded",
        "Its symbols or layout could not be recovered; digest and "
        "registers are not checked.",
    ),
    Code(
        "CHP027",
        E,
        "the purgatory layout replay disagrees with image->start",
        "The recomputed entry point is not image->start; symbol addresses "
        "cannot be trusted.",
    ),
    # 03x: entry registers and the capture command line
    Code(
        "CHP030",
        E,
        "entry64_regs would not start the capture kernel",
        "rip/rsi/rsp/rbx do not point where bzImage64_load put them.",
    ),
    Code(
        "CHP031",
        E,
        "the capture command line does not name this elfcorehdr",
        "elfcorehdr= is missing or points elsewhere; the capture kernel "
        "will read the wrong header.",
    ),
    Code(
        "CHP032",
        N,
        "capture command line",
        "The command line the capture kernel will boot with.",
    ),
    Code(
        "CHP033",
        E,
        "purgatory's entry variables would not start the capture kernel",
        "kexec-tools' purgatory jumps with variables, not registers (ppc64 "
        "kernel, dt_offset, backup_start; arm64 arm64_kernel_entry, "
        "arm64_dtb_addr): one does not hold the start of its segment.",
    ),
    # 04x: CPUs
    Code(
        "CHP040",
        E,
        "CPUs are missing from the elfcorehdr",
        "Their registers will not be in the dump. The header is stale: "
        "reload the crash kernel or enable crash hotplug.",
    ),
    Code(
        "CHP041",
        W,
        "the elfcorehdr has notes for CPUs that do not exist",
        "Harmless for the dump, but the header is stale.",
    ),
    Code(
        "CHP042",
        E,
        "a CPU note points at the wrong address",
        "The capture kernel will read garbage registers for that CPU.",
    ),
    Code(
        "CHP043",
        E,
        "the vmcoreinfo note is missing or wrong",
        "makedumpfile and crash need VMCOREINFO; the dump will be hard to read.",
    ),
    Code(
        "CHP044",
        W,
        "possible CPUs that are not present have no note",
        "A kernel-built header (v6.6+) has a note for every possible CPU; x86 "
        "ignores CPU events for it, so a CPU hot-added later would be "
        "missing. Reload the crash kernel.",
    ),
    # 05x: memory
    Code(
        "CHP050",
        E,
        "RAM is missing from the elfcorehdr",
        "These ranges will be absent from the dump. Reload the crash kernel "
        "or enable crash hotplug.",
    ),
    Code(
        "CHP051",
        E,
        "the elfcorehdr describes memory that is no longer RAM",
        "The capture kernel will read unplugged memory (x86 keeps a "
        "hot-removed range until the next memory event).",
    ),
    Code(
        "CHP052",
        E,
        "an elfcorehdr range partially overlaps RAM",
        "Part of a header range is not RAM or part of RAM is not covered.",
    ),
    Code(
        "CHP053",
        N,
        "memory added but not yet online",
        "No hotplug event has fired for it; it will be described once onlined.",
    ),
    Code(
        "CHP054",
        E,
        "the kernel text entry is missing or wrong",
        "The PT_LOAD for _text.._end does not match the running kernel.",
    ),
    Code(
        "CHP055",
        N,
        "the elfcorehdr matches a rebuild byte for byte",
        "The header is exactly what the kernel would write now.",
    ),
    Code(
        "CHP056",
        N,
        "the elfcorehdr is current",
        "It describes every CPU and every byte of RAM of the machine now.",
    ),
    # 06x: hotplug machinery
    Code(
        "CHP060",
        W,
        "no room for the next elfcorehdr update",
        "The segment cannot hold one more program header; the next hotplug "
        'update will fail ("elfsz > memsz").',
    ),
    Code(
        "CHP061",
        N,
        "crash hotplug status",
        "Support flag, last action, whether the kernel updated the header.",
    ),
    Code(
        "CHP062",
        E,
        "the kernel logged a crash hotplug failure",
        "An update was dropped or failed; the header may be stale.",
    ),
    Code(
        "CHP063",
        W,
        "crash hotplug is not supported for this image",
        "Any CPU or memory hotplug leaves the header stale until userspace "
        "reloads the crash kernel (kexec -s, or kexec --hotplug).",
    ),
    Code(
        "CHP064",
        W,
        "a hotplug update is in flight",
        "hp_action is not NONE: the header is being rewritten right now.",
    ),
    Code(
        "CHP065",
        N,
        "elfcorehdr room",
        "Program headers the elfcorehdr segment can hold, needed now and "
        "free, and the Kconfig sizing when the config is built in.",
    ),
    Code(
        "CHP066",
        W,
        "the kernel could not rebuild the elfcorehdr now",
        "Excluding the crash reservations needs more range slots than "
        "prepare_elf_headers() allocates (-ENOMEM): the next hotplug update "
        'fails with "unable to create new elfcorehdr".',
    ),
    # 07x: postmortem (a vmcore written by kdump)
    Code(
        "CHP070",
        E,
        "this kdump dump is missing memory",
        "RAM the crashed kernel had is not in the dump: not in its program "
        "headers, or (makedumpfile) not in its 1st page bitmap, which is what "
        "the capture kernel's /proc/vmcore described. Pages makedumpfile "
        "filtered out are not missing.",
    ),
    Code(
        "CHP071",
        N,
        "this dump was written by kdump",
        "Postmortem comparison of the dump's own headers with the crashed "
        "kernel's state.",
    ),
    Code(
        "CHP072",
        U,
        "a needed kernel object was filtered out of the dump",
        "makedumpfile's dump level dropped a page the crashed kernel used "
        "(in the dump's 1st page bitmap, not in its 2nd), so the object in "
        "it cannot be checked. Linux 7.3 with makedumpfile -d 31 drops tail "
        "pages of multi-page slabs as user pages; keep user pages (-d 23; "
        "on Debian, MAKEDUMP_ARGS in /etc/default/kdump-tools).",
    ),
    # 08x: the capture kernel's flattened device tree (ppc64, arm64)
    Code(
        "CHP080",
        E,
        "a present CPU is missing from the FDT's /cpus",
        "The capture kernel starts on the CPU that panicked and looks its "
        "hardware id up in the device tree's /cpus (ppc64 "
        "early_init_dt_scan_cpus()); a panic on a CPU the tree lacks hangs it "
        "before it prints anything. ppc64: load with kexec -p --hotplug on a "
        "kernel with crash hotplug (the kernel rewrites /cpus on CPU add), or "
        "reload the crash kernel after every CPU add; elsewhere, reload.",
    ),
    Code(
        "CHP081",
        E,
        "the FDT does not point the capture kernel at the elfcorehdr",
        "/chosen's linux,elfcorehdr (arm64) or the elfcorehdr= of its "
        "bootargs (ppc64) is how the capture kernel finds the header: it is "
        "missing or names another address than the elfcorehdr segment, so "
        "/proc/vmcore would be empty or garbage. Reload the crash kernel.",
    ),
    Code(
        "CHP082",
        E,
        "the FDT gives the capture kernel memory outside the crash reservation",
        "/chosen linux,usable-memory-range is the only RAM the arm64 capture "
        "kernel uses; outside crashkernel= it would overwrite the memory it "
        "is meant to dump. Reload the crash kernel.",
    ),
    Code(
        "CHP083",
        E,
        "the FDT segment does not decode",
        "The capture kernel cannot boot from a device tree that is not one "
        "(bad header, offsets, tokens or properties). Reload the crash kernel.",
    ),
    Code(
        "CHP084",
        N,
        "the FDT",
        "The device tree the capture kernel boots with: its CPUs' hardware "
        "ids and the RAM its memory nodes describe. Nothing rewrites the "
        "memory nodes on hotplug; the dump's ranges come from the elfcorehdr, "
        "so RAM outside them is shown, not judged.",
    ),
    # 09x: the target itself
    Code(
        "CHP090",
        U,
        "the target lacks information the check needs",
        "A symbol, type or memory range is missing; the named check was skipped.",
    ),
    Code(
        "CHP091",
        U,
        "the architecture's crash-image rules are not known to this version",
        "Purgatory, elfcorehdr, CPU, memory and entry checks depend on the "
        "architecture's kexec code and were not run; only what is common to "
        "every architecture was checked.",
    ),
    Code(
        "CHP092",
        U,
        "the crash image changed while it was read",
        "A hotplug update rewrote the image (under the kexec lock) during every "
        "read: nothing was judged from a half-read header. Check again when "
        "the hotplug events have settled.",
    ),
)


@dataclass(frozen=True)
class Finding:
    """One statement about the target: a code, a message, plain-data details."""

    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return CODES[self.code].severity

    @property
    def title(self) -> str:
        return CODES[self.code].title

    def to_json(self) -> Dict[str, Any]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "title": self.title,
            "message": self.message,
            "details": dict(self.details),
        }


def finding(code: str, message: str, **details: Any) -> Finding:
    if code not in CODES:
        raise ValueError(f"unknown finding code {code}")
    return Finding(code, message, details)


#: Exit statuses, as documented in the README.
EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_UNVERIFIED = 3


def exit_status(findings: Iterable[Finding]) -> int:
    """0 healthy, 1 a problem that would hurt a dump, 3 cannot verify."""
    worst = max((f.severity for f in findings), default=Severity.INFO)
    if worst == Severity.ERROR:
        return EXIT_PROBLEM
    if worst == Severity.UNVERIFIED:
        return EXIT_UNVERIFIED
    return EXIT_OK


def sorted_findings(findings: Iterable[Finding]) -> Tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (-f.severity, f.code)))
