"""The crash image reader and elfcorehdr decoder on synthetic kernels."""

from __future__ import annotations

import pytest

from drgn_crashhp.facts import Layout, Role
from drgn_crashhp.findings import exit_status
from drgn_crashhp.kernel.elfcorehdr import Malformed, decode_elfcorehdr
from drgn_crashhp.read.elfcorehdr import read_elfcorehdr
from drgn_crashhp.read.image import read_kimage
from drgn_crashhp.render.json import report_json
from drgn_crashhp.render.text import render_text
from drgn_crashhp.report import build_report
from tests.support.kimage import (
    ELF_MEM,
    INITRD_MEM,
    KERNEL_MEM,
    PARAMS_MEM,
    PURG_MEM,
    file_segments,
    machine,
)
from tests.support.synth import (
    KERNEL_PHYS,
    KERNEL_SIZE,
    PAGE_OFFSET,
    TEXT,
    Machine,
    Seg,
    SynthKernel,
    elf_core_header,
    note,
)


@pytest.mark.parametrize(
    "layout,expected",
    [
        ("pre-hotplug", Layout.PRE_HOTPLUG),
        ("rfc-v1", Layout.RFC_V1),
        ("6.6", Layout.MAINLINE_6_6),
        ("6.10", Layout.MAINLINE_6_10),
    ],
)
def test_layouts(layout: str, expected: Layout) -> None:
    rfc = dict(
        elf_index=0,
        purg_index=1,
        rbx=0,
        rsi=PARAMS_MEM,
        rip=KERNEL_MEM + 0x200,
        rsp=PURG_MEM + 0x2000,
    )
    k = SynthKernel(machine(layout, rfc=rfc if layout == "rfc-v1" else None))
    image = read_kimage(k.prog)
    assert image is not None
    assert image.hotplug.layout == expected
    assert image.address == k.image_address
    assert image.nr_segments == 5
    assert [s.mem for s in image.segments] == [
        ELF_MEM,
        PURG_MEM,
        PARAMS_MEM,
        KERNEL_MEM,
        INITRD_MEM,
    ]
    assert [s.role for s in image.segments] == [
        Role.ELFCOREHDR,
        Role.PURGATORY,
        Role.BOOT_PARAMS,
        Role.KERNEL,
        Role.INITRD,
    ]
    assert image.segments[4].bufsz == 106
    assert image.elfcorehdr_index == 0
    assert image.start == PURG_MEM + 0x40
    assert image.file_mode
    if layout == "rfc-v1":
        assert image.hotplug.rfc is not None
        assert image.hotplug.rfc.rsi == PARAMS_MEM
        assert image.hotplug.rfc.purg_index == 1
        assert image.elfcorehdr_source == "arch.hp.elf_index"
    if layout == "6.10":
        assert image.hotplug.support
        assert image.hotplug.hp_action_name == "NONE"
        assert image.elfcorehdr_source == "elfcorehdr_index"
    if layout == "pre-hotplug":
        assert not image.hotplug.support
        assert image.elfcorehdr_source == "elf_load_addr"


def test_6_6_kexec_load_support_comes_from_update_elfcorehdr() -> None:
    k = SynthKernel(
        machine(
            "6.6",
            file_mode=False,
            hotplug_support=False,
            elfcorehdr_index=-1,
            elf_load_addr=0,
        )
    )
    image = read_kimage(k.prog)
    assert image is not None
    assert not image.hotplug.support
    assert image.hotplug.support_source == "file_mode || update_elfcorehdr"
    # kexec_load: the kernel does not know the elfcorehdr; the scan finds it.
    assert image.elfcorehdr_index == 0
    assert image.elfcorehdr_source == "scan for ET_CORE"


def test_hp_action_in_flight_is_named() -> None:
    k = SynthKernel(machine("6.10", hp_action=3, elfcorehdr_updated=True))
    image = read_kimage(k.prog)
    assert image is not None
    assert image.hotplug.hp_action_name == "ADD_MEMORY"
    assert image.hotplug.elfcorehdr_updated


def test_elfcorehdr_decoded() -> None:
    k = SynthKernel(machine("6.10"))
    image = read_kimage(k.prog)
    assert image is not None
    read = read_elfcorehdr(k.prog, image)
    assert read.header is not None, read.unread
    hdr = read.header
    assert [n.paddr for n in hdr.notes[:4]] == [
        Machine().crash_notes_phys(c) for c in range(4)
    ]
    assert hdr.notes[4].size == 4132
    assert [(ld.paddr, ld.size) for ld in hdr.loads] == [
        (KERNEL_PHYS, KERNEL_SIZE),
        (0x100000, 0x2EF00000),
        (0x3F000000, 0x3FFE0000 - 0x3F000000),
    ]
    assert hdr.loads[0].vaddr == TEXT
    assert hdr.loads[1].vaddr == PAGE_OFFSET + 0x100000
    assert hdr.used == 64 + 8 * 56
    assert hdr.capacity == 0x71000


def test_null_image_is_no_crash_kernel() -> None:
    k = SynthKernel(Machine(segments=None))
    assert read_kimage(k.prog) is None
    report = build_report(k.prog)
    assert [f.code for f in report.findings] == ["CHP001"]
    assert report.exit_status == 1


def test_garbage_image_pointer_is_unreadable() -> None:
    k = SynthKernel(Machine(segments=None, image_pointer=0xFFFF8880DEAD0000))
    report = build_report(k.prog)
    assert [f.code for f in report.findings] == ["CHP002"]
    assert report.exit_status == 3


def test_nr_segments_200_is_bounded() -> None:
    k = SynthKernel(machine("6.10", nr_segments=200))
    image = read_kimage(k.prog)
    assert image is not None
    assert image.nr_segments == 200
    assert len(image.segments) == 16
    report = build_report(k.prog)
    codes = {f.code for f in report.findings}
    assert "CHP003" in codes
    assert report.exit_status == 1


def test_segment_outside_crashk_res() -> None:
    segs = file_segments()
    segs[3] = Seg(0x10000000, 0x1000000, b"\x90")
    k = SynthKernel(machine("6.10", segments=segs))
    report = build_report(k.prog)
    [f] = [f for f in report.findings if f.code == "CHP004"]
    assert f.details["segments"] == [3]


def test_memsz_below_bufsz() -> None:
    segs = file_segments()
    segs[1] = Seg(PURG_MEM, 0x1000, b"\xcc" * 0x2000)
    k = SynthKernel(machine("6.10", segments=segs))
    [f] = [f for f in build_report(k.prog).findings if f.code == "CHP003"]
    assert "memsz 0x1000 < bufsz 0x2000" in f.message


@pytest.mark.parametrize(
    "data,reason",
    [
        (elf_core_header([note(0x1000)], e_phnum=65535), "PN_XNUM"),
        (elf_core_header([note(0x1000)], e_phnum=3000), "run past the segment"),
        (elf_core_header([note(0x1000)])[:40], "shorter than an ELF header"),
        (elf_core_header([note(0x1000)], e_type=2), "expected ET_CORE"),
        (elf_core_header([note(0x1000)], e_phoff=0x80000), "run past the segment"),
        (b"\x7fELX" + bytes(100), "bad ELF magic"),
    ],
)
def test_malformed_headers(data: bytes, reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        decode_elfcorehdr(data, capacity=0x1000)


def test_malformed_header_in_memory_is_a_finding() -> None:
    bad = elf_core_header([note(0x1000)], e_phnum=65535)
    k = SynthKernel(machine("6.10", segments=file_segments(bad)))
    report = build_report(k.prog)
    [f] = [f for f in report.findings if f.code == "CHP012"]
    assert "PN_XNUM" in f.message
    assert exit_status(report.findings) == 1


def test_elfcorehdr_not_in_target() -> None:
    segs = file_segments()
    segs[0].present = False
    k = SynthKernel(machine("6.10", segments=segs))
    report = build_report(k.prog)
    [f] = [f for f in report.findings if f.code == "CHP011"]
    assert f.details["address"] == ELF_MEM
    assert report.exit_status == 3


def test_contents_absent_roles_follow_bzimage64_order() -> None:
    segs = file_segments()
    for s in segs:
        s.present = False
    k = SynthKernel(machine("6.10", segments=segs))
    image = read_kimage(k.prog)
    assert image is not None
    assert [s.role for s in image.segments] == [
        Role.ELFCOREHDR,
        Role.PURGATORY,
        Role.BOOT_PARAMS,
        Role.KERNEL,
        Role.INITRD,
    ]


def test_no_elfcorehdr_found() -> None:
    segs = file_segments(b"\0" * 64)
    k = SynthKernel(
        machine("pre-hotplug", segments=segs, elf_load_addr=0, file_mode=False)
    )
    report = build_report(k.prog)
    [f] = [f for f in report.findings if f.code == "CHP010"]
    assert "no segment starts with an ELF core header" in f.message


def test_kexec_load_segments_not_in_target_is_unverified() -> None:
    """A kexec_load image in a kdump dump (the real Debian 12 6.1 panic):
    no segment is in the target, so the header cannot be located by its ELF
    magic; that is "cannot verify" (CHP011), not "no header" (CHP010), which
    the capture that wrote the dump disproves."""
    segs = file_segments()
    for s in segs:
        s.present = False
    k = SynthKernel(
        machine("pre-hotplug", segments=segs, elf_load_addr=0, file_mode=False)
    )
    report = build_report(k.prog)
    codes = [f.code for f in report.findings]
    assert "CHP010" not in codes
    [f] = [f for f in report.findings if f.code == "CHP011"]
    assert "no segment of the image is readable here" in f.message
    assert f.details["segment"] is None
    assert report.exit_status == 3


def test_text_and_json_carry_the_same_findings() -> None:
    k = SynthKernel(machine("6.10"))
    report = build_report(k.prog)
    doc = report_json(report)
    assert doc["schema"] == 3
    assert [f["code"] for f in doc["findings"]] == [f.code for f in report.findings]
    assert doc["image"]["segments"][0]["role"] == "elfcorehdr"
    text_out = render_text(report)
    for f in report.findings:
        assert f.code in text_out
    assert "0x2f000000" in text_out


def test_section_fields_and_pt_dynamic_are_ignored() -> None:
    """Found by tests/fuzz/fuzz_long.py: pyelftools followed a huge e_shoff from
    a PT_DYNAMIC segment and raised OverflowError. The capture kernel reads
    only the Ehdr and Phdrs, and so does the decoder."""
    data = bytearray(elf_core_header([note(0x1000), (2, 0, 0, 0, 16, 16)]))
    data[0x28:0x30] = (1 << 63).to_bytes(8, "little")  # e_shoff
    data[0x3C:0x40] = b"\xff\xff\x05\x00"  # e_shnum, e_shstrndx
    hdr = decode_elfcorehdr(bytes(data), capacity=0x1000)
    assert [n.paddr for n in hdr.notes] == [0x1000]
    assert len(hdr.other) == 1 and not hdr.loads
