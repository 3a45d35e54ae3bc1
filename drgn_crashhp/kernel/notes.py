"""
CPU notes
---------

Which CPUs the elfcorehdr's PT_NOTEs are for (kernel-notes §5.2, §6): every
possible CPU since v6.6 ("crash: change crash_prepare_elf64_headers() to
for_each_possible_cpu()"), present CPUs before, and CPUs present at load for
a kexec-tools header the kernel never rewrote.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

from drgn_crashhp.arch import Arch
from drgn_crashhp.facts import ElfCoreHdr, KImage, MachineState

__all__ = ("NoteCpus", "NoteRule", "note_rule")


class NoteCpus(str, enum.Enum):
    """Which CPUs get a PT_NOTE."""

    #: Every possible CPU (v6.6+, ``for_each_possible_cpu``).
    POSSIBLE = "possible"
    #: Present CPUs (kernels before v6.6).
    PRESENT = "present"
    #: CPUs present when kexec-tools built the header in user space.
    KEXEC_TOOLS = "kexec-tools"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class NoteRule:
    """Which CPUs the header's PT_NOTEs are for, and why."""

    kind: NoteCpus
    reason: str

    @property
    def kernel_format(self) -> bool:
        """Written by crash_prepare_elf64_headers() (byte-comparable)."""
        return self.kind != NoteCpus.KEXEC_TOOLS

    def cpus(self, arch: Arch) -> NoteCpus:
        """The CPU set the notes are for: POSSIBLE or PRESENT (kexec-tools
        writes one for every CPU with a sysfs directory at load, which are
        the present CPUs on x86 and the possible ones on ppc64 pseries)."""
        if self.kind == NoteCpus.KEXEC_TOOLS:
            return NoteCpus(arch.kexec_tools_note_cpus)
        return self.kind


def note_rule(
    image: Optional[KImage], hdr: Optional[ElfCoreHdr], state: MachineState
) -> NoteRule:
    """
    Decide which CPUs the loaded header has notes for (kernel-notes §5.2, §6).
    """
    hp = image.hotplug if image is not None else None
    if (
        image is not None
        and not image.file_mode
        and not (hp is not None and hp.elfcorehdr_updated)
    ):
        return NoteRule(
            NoteCpus.KEXEC_TOOLS,
            "kexec_load image not rewritten by the kernel: kexec-tools "
            "wrote notes for the CPUs that had a sysfs directory at load",
        )
    if hp is not None and hp.notes_for_possible_cpus:
        return NoteRule(
            NoteCpus.POSSIBLE,
            f"struct kimage layout {hp.layout}: the kernel "
            "writes a note for every possible CPU",
        )
    # No hotplug fields: a kernel before v6.6 (present CPUs) or a newer one
    # with CONFIG_CRASH_HOTPLUG=n (possible CPUs). Decide by the note count.
    possible = len(state.possible_cpus or ())
    present = len(state.present_cpus or ())
    if hdr is not None and state.possible_cpus is not None:
        n = max(0, len(hdr.notes) - 1)
        if n == possible:
            return NoteRule(
                NoteCpus.POSSIBLE,
                f"{n} CPU notes = possible CPUs "
                "(v6.6+ kernel without CONFIG_CRASH_HOTPLUG)",
            )
        return NoteRule(
            NoteCpus.PRESENT,
            f"{n} CPU notes, {possible} possible and "
            f"{present} present CPUs: a kernel before v6.6 (present "
            "CPUs at load)",
        )
    return NoteRule(
        NoteCpus.PRESENT,
        "no crash hotplug fields and no header to count: "
        "assuming a kernel before v6.6 (present CPUs)",
    )
