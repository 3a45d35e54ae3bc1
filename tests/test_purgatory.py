"""Purgatory reader, digest verification and checks on synthetic kernels."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import replace
from typing import List, Tuple

import pytest

from drgn_crashhp.facts import (
    DigestStatus,
    DigestVerdict,
    KImage,
    Purgatory,
    RegsLayout,
    Role,
    Source,
    UnreadKind,
)
from drgn_crashhp.findings import Finding
from drgn_crashhp.kernel.purgatory import parse_elfcorehdr_arg
from drgn_crashhp.kernel.sha_regions import SHA256_EMPTY
from drgn_crashhp.read.image import read_kimage
from drgn_crashhp.render.json import jsonable
from tests.conftest import real_fixture, scenario_names
from tests.support import purgblob as pb
from tests.support.helpers import (
    check_purgatory,
    read_purgatory_full,
    render_purgatory,
    verify_digest,
)
from tests.support.synth import SynthKernel


def run(built: pb.Built) -> Tuple[KImage, Purgatory, object, List[Finding]]:
    prog = SynthKernel(built.machine).prog
    image = read_kimage(prog)
    assert image is not None
    purg = read_purgatory_full(prog, image)
    read, digest = verify_digest(prog, purg)
    return image, purg, digest, check_purgatory(image, purg, read)


def codes(findings: List[Finding]) -> List[str]:
    return sorted(f.code for f in findings)


def only(findings: List[Finding], code: str) -> Finding:
    [f] = [f for f in findings if f.code == code]
    return f


# -- kexec_file_load ----------------------------------------------------------


@pytest.fixture(params=["python", "as+ld"])
def blob(request: pytest.FixtureRequest) -> bytes:
    if request.param == "python":
        return pb.build_blob()
    built = pb.assemble_blob()
    if built is None:
        pytest.skip("no as/ld")
    return built


def test_file_match_decodes_everything(blob: bytes) -> None:
    built = pb.file_image(blob=blob)
    image, purg, digest, findings = run(built)
    assert purg.unread is None and purg.source == Source.KERNEL_BLOB
    assert purg.replay_start == image.start == pb.PURG_MEM + pb.ENTRY_VALUE
    assert purg.regions_address == pb.PURG_MEM + pb.KP_OFF + pb.REGIONS_VALUE
    assert purg.digest_address == pb.PURG_MEM + pb.KP_OFF + pb.DIGEST_VALUE
    assert purg.stack_end == pb.PURG_MEM + pb.DATA_OFF + pb.STACK_END_VALUE
    assert purg.symbol("purgatory_sha256_digest") == purg.digest_address
    assert purg.stored_digest == built.digest.hex()
    # 6.10: the elfcorehdr is excluded; params, kernel, initrd in order.
    assert [(r.start, r.len) for r in purg.regions] == built.regions
    assert [r.role for r in purg.regions] == [
        Role.BOOT_PARAMS,
        Role.KERNEL,
        Role.INITRD,
    ]
    assert all(r.exact for r in purg.regions)
    assert purg.regs is not None and purg.regs.layout == RegsLayout.KERNEL
    assert purg.regs.address == pb.PURG_MEM + pb.RODATA_OFF + pb.REGS_VALUE
    assert (purg.regs.rip, purg.regs.rsi, purg.regs.rsp, purg.regs.rbx) == (
        pb.KERNEL_MEM + 0x200,
        pb.PARAMS_MEM,
        purg.stack_end,
        0,
    )
    assert digest.status == DigestStatus.MATCH
    assert digest.computed == built.digest.hex()
    assert digest.bytes_hashed == sum(n for _, n in built.regions)
    assert codes(findings) == ["CHP021", "CHP032"]


def test_file_one_byte_flipped_is_a_mismatch() -> None:
    built = pb.file_image()
    kernel = built.segments[3]
    flipped = bytearray(kernel.data)
    flipped[0x1234] ^= 0x01
    built.segments[3] = replace(kernel, data=bytes(flipped))
    built.machine.segments = built.segments
    _, _, digest, findings = run(built)
    assert digest.status == DigestStatus.MISMATCH
    assert digest.stored == built.digest.hex()
    assert digest.computed != digest.stored
    assert "CHP020" in codes(findings) and "CHP021" not in codes(findings)


def test_byte_past_bufsz_counts_too() -> None:
    # Purgatory hashes the zero tail up to memsz: a byte there must break it.
    built = pb.file_image()
    initrd = built.segments[4]
    built.segments[4] = replace(
        initrd, data=initrd.data.ljust(0x80000, b"\0") + b"\x01"
    )
    built.machine.segments = built.segments
    _, _, digest, findings = run(built)
    assert digest.status == DigestStatus.MISMATCH
    assert "CHP020" in codes(findings)


def test_jbug_all_regions_empty_is_disabled_not_mismatch() -> None:
    built = pb.file_image(layout="6.6", regions=[], digest=hashlib.sha256().digest())
    image, purg, digest, findings = run(built)
    assert purg.regions == () and purg.stored_digest == SHA256_EMPTY
    assert digest.status == DigestStatus.MATCH  # sha256("") == sha256("")
    f = only(findings, "CHP023")
    assert f.details["expected"] == [
        (pb.PARAMS_MEM, 0x3000),
        (pb.KERNEL_MEM, 0x1000000),
        (pb.INITRD_MEM, 0x100000),
    ]
    assert not {"CHP020", "CHP021", "CHP025"} & set(codes(findings))


def test_empty_regions_with_other_digest_is_a_mismatch_not_jbug() -> None:
    built = pb.file_image(regions=[], digest=b"\x11" * 32)
    _, _, digest, findings = run(built)
    assert digest.status == DigestStatus.MISMATCH
    assert {"CHP020", "CHP025"} <= set(codes(findings))
    assert "CHP023" not in codes(findings)


def test_unreadable_region_cannot_verify_with_ranges() -> None:
    built = pb.file_image(initrd_present=False)
    _, purg, digest, findings = run(built)
    assert purg.unread is None
    assert digest.status == DigestStatus.UNVERIFIABLE
    assert digest.computed is None
    assert digest.missing == ((pb.INITRD_MEM, pb.INITRD_MEM + 0x100000 - 1),)
    f = only(findings, "CHP022")
    assert f.details["missing"] == [[pb.INITRD_MEM, pb.INITRD_MEM + 0xFFFFF]]
    assert not {"CHP020", "CHP021"} & set(codes(findings))


def test_huge_unreadable_region_is_reported_without_probing_it_all() -> None:
    # A 1 GiB region past the end of memory: holes are probed page by page
    # only up to a budget, the rest is reported whole.
    far = (0x100000000, 0x40000000)
    built = pb.file_image(regions=[(pb.PARAMS_MEM, 0x3000), far], digest=bytes(32))
    _, _, digest, findings = run(built)
    assert digest.status == DigestStatus.UNVERIFIABLE
    assert digest.missing == ((far[0], far[0] + far[1] - 1),)
    assert digest.bytes_hashed == 0x3000 + far[1]
    assert "CHP022" in codes(findings)


def test_unreadable_purgatory_segment() -> None:
    built = pb.file_image()
    built.segments[1] = replace(built.segments[1], present=False)
    built.machine.segments = built.segments
    image, purg, digest, findings = run(built)
    assert purg.unread is not None and purg.unread.kind == UnreadKind.NOT_IN_TARGET
    # The layout is still known from the kernel's blob.
    assert purg.replay_start == image.start
    assert digest.status == DigestStatus.UNVERIFIABLE
    f = only(findings, "CHP022")
    assert f.details["missing"] == [(pb.PURG_MEM, pb.PURG_MEM + pb.MEMSZ - 1)]
    assert "CHP027" not in codes(findings)


def test_replayed_entry_differs_from_image_start() -> None:
    built = pb.file_image(start_offset=pb.ENTRY_VALUE + 0x40)
    image, purg, _, findings = run(built)
    assert purg.replay_start == pb.PURG_MEM + pb.ENTRY_VALUE != image.start
    f = only(findings, "CHP027")
    assert f.details["replay_start"] == pb.PURG_MEM + pb.ENTRY_VALUE


def test_replay_falls_back_to_e_entry_without_purgatory_start() -> None:
    # A blob whose purgatory_start lies outside .text: the kernel then uses
    # e_entry in the first executable section that holds it.
    blob = bytearray(pb.build_blob(entry_value=pb.TEXT_SIZE + 8))
    struct.pack_into("<Q", blob, 24, pb.ENTRY_VALUE)  # e_entry
    built = pb.file_image(blob=bytes(blob))
    image, purg, _, findings = run(built)
    assert purg.replay_rule == "e_entry"
    assert purg.replay_start == image.start
    assert "CHP027" not in codes(findings)


def test_replay_accepts_an_older_kernels_e_entry_rule() -> None:
    # purgatory_start and e_entry disagree; a kernel without "kexec: derive
    # purgatory entry from symbol" started at e_entry.
    blob = bytearray(pb.build_blob(entry_value=pb.ENTRY_VALUE))
    struct.pack_into("<Q", blob, 24, 0x80)  # e_entry
    built = pb.file_image(blob=bytes(blob), start_offset=0x80)
    image, purg, _, findings = run(built)
    assert (purg.replay_start, purg.replay_rule) == (pb.PURG_MEM + 0x80, "e_entry")
    assert "CHP027" not in codes(findings)
    built = pb.file_image(blob=bytes(blob), start_offset=0x60)
    _, purg, _, findings = run(built)
    assert purg.replay_rule == "purgatory_start symbol"
    assert "CHP027" in codes(findings)


def test_pre_4_11_symbol_names() -> None:
    built = pb.file_image(blob=pb.build_blob(names=("sha_regions", "sha256_digest")))
    _, purg, digest, _ = run(built)
    assert purg.digest_source == "symbol sha256_digest"
    assert digest.status == DigestStatus.MATCH


def test_no_kexec_purgatory_symbol() -> None:
    built = pb.file_image(symbols={}, extra_memory={})
    _, purg, digest, findings = run(built)
    assert purg.unread is not None and purg.unread.kind == UnreadKind.MISSING_INFO
    assert digest.status == DigestStatus.UNVERIFIABLE
    assert "CHP090" in codes(findings)
    assert not {"CHP020", "CHP021"} & set(codes(findings))


def test_garbage_blob() -> None:
    built = pb.file_image(blob=b"\x7fELF" + bytes(200))
    _, purg, _, findings = run(built)
    assert purg.unread is not None and purg.unread.kind == UnreadKind.MALFORMED
    assert "CHP026" in codes(findings)


def test_elfcorehdr_hashed_on_6_10_is_a_region_problem() -> None:
    built = pb.file_image(hash_elfcorehdr=True)
    _, _, digest, findings = run(built)
    assert digest.status == DigestStatus.MATCH
    f = only(findings, "CHP025")
    assert f.details["actual"][0] == (pb.ELF_MEM, 0x71000)


# -- RFC v1: elfcorehdr inside the digest ----------------------------------------

RFC_REGS = dict(
    elf_index=0,
    purg_index=1,
    rbx=0,
    rsi=pb.PARAMS_MEM,
    rip=pb.KERNEL_MEM + 0x200,
    rsp=pb.PURG_MEM + pb.DATA_OFF + pb.STACK_END_VALUE,
)


def test_rfc_elfcorehdr_hashed_and_intact_matches() -> None:
    built = pb.file_image(layout="rfc-v1", rfc=dict(RFC_REGS))
    _, purg, digest, findings = run(built)
    assert purg.regions[0].role == Role.ELFCOREHDR
    assert digest.status == DigestStatus.MATCH
    assert codes(findings) == ["CHP021", "CHP032"]


def test_rfc_elfcorehdr_changed_without_new_digest() -> None:
    built = pb.file_image(layout="rfc-v1", rfc=dict(RFC_REGS))
    # A hotplug event rewrote the header (one CPU more), the digest stayed.
    built.segments[0] = replace(
        built.segments[0], data=pb.elfcorehdr(cpus=(0, 1, 2, 3, 4))
    )
    built.machine.segments = built.segments
    _, _, digest, findings = run(built)
    assert digest.status == DigestStatus.MISMATCH
    f = only(findings, "CHP024")
    assert f.details["elfcorehdr_slot"] == 0
    assert "RFC v1" in f.message
    assert "CHP020" not in codes(findings)


def test_hashed_elfcorehdr_rewritten_by_a_hotplug_event() -> None:
    # A 6.10 image whose elfcorehdr ended up hashed (the exclusion bug on a
    # non-zero index) and that the kernel then rewrote (elfcorehdr_updated).
    built = pb.file_image(hash_elfcorehdr=True, elfcorehdr_updated=True)
    built.segments[0] = replace(built.segments[0], data=pb.elfcorehdr(cpus=(0, 1)))
    built.machine.segments = built.segments
    _, _, _, findings = run(built)
    f = only(findings, "CHP024")
    assert "elfcorehdr_updated" in f.details["cause"]
    assert "CHP020" not in codes(findings)


def test_pre_hotplug_other_region_changed_is_plain_mismatch() -> None:
    # The elfcorehdr is hashed but nothing says it was rewritten.
    built = pb.file_image(layout="pre-hotplug")
    kernel = built.segments[3]
    built.segments[3] = replace(kernel, data=b"\xff" + kernel.data[1:])
    built.machine.segments = built.segments
    _, _, _, findings = run(built)
    f = only(findings, "CHP020")
    assert f.details["elfcorehdr_slot"] == 0
    assert "CHP024" not in codes(findings)


def test_rfc_registers_compared_with_saved() -> None:
    saved = dict(RFC_REGS, rsi=pb.PARAMS_MEM + 0x1000)
    built = pb.file_image(layout="rfc-v1", rfc=saved)
    _, _, _, findings = run(built)
    f = only(findings, "CHP030")
    assert f.details["problems"] == [
        f"rsi {pb.PARAMS_MEM:#x} != arch.hp.rsi {pb.PARAMS_MEM + 0x1000:#x}"
    ]


# -- registers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "regs,word",
    [
        (dict(rip=pb.KERNEL_MEM + 0x100), "rip"),
        (dict(rsi=pb.KERNEL_MEM), "rsi"),
        (dict(rsp=pb.PURG_MEM + 0x3000), "rsp"),
        (dict(rbx=1), "rbx"),
    ],
)
def test_bad_registers(regs: dict, word: str) -> None:
    _, _, _, findings = run(pb.file_image(regs=regs))
    f = only(findings, "CHP030")
    assert [p.split()[0] for p in f.details["problems"]] == [word]


# -- command line ----------------------------------------------------------------


def test_cmdline_without_elfcorehdr() -> None:
    _, purg, _, findings = run(pb.file_image(cmdline="console=ttyS0 quiet"))
    assert purg.cmdline is not None and purg.cmdline.text == "console=ttyS0 quiet"
    assert purg.cmdline.address == pb.PARAMS_MEM + 0x1000
    assert only(findings, "CHP032").message == "console=ttyS0 quiet"
    assert "no elfcorehdr=" in only(findings, "CHP031").message


def test_cmdline_elfcorehdr_points_elsewhere() -> None:
    _, purg, _, findings = run(pb.file_image(cmdline="elfcorehdr=0x2f100000 x"))
    assert purg.cmdline is not None and purg.cmdline.elfcorehdr == 0x2F100000
    f = only(findings, "CHP031")
    assert f.details["expected"] == pb.ELF_MEM


def test_cmdline_not_terminated() -> None:
    built = pb.file_image(cmdline="x" * 0x1000)  # fills the segment to its end
    params = bytearray(built.segments[2].data)
    params[0x1000:] = b"y" * (len(params) - 0x1000)
    built.segments[2] = replace(
        built.segments[2], data=bytes(params.ljust(0x3000, b"z"))
    )
    built.machine.segments = built.segments
    _, purg, _, findings = run(built)
    assert purg.cmdline is not None and purg.cmdline.unread is not None
    assert "NUL" in only(findings, "CHP031").message


@pytest.mark.parametrize(
    "line,expected",
    [
        ("elfcorehdr=0x2f000000 console=ttyS0", 0x2F000000),
        ("console=ttyS0 elfcorehdr=770048K", 0x2F000000),
        ("elfcorehdr=0x4000@0x2f000000", 0x2F000000),
        ("elfcorehdr=1M elfcorehdr=2M", 2 << 20),
        ("noelfcorehdr=5", None),
    ],
)
def test_parse_elfcorehdr_arg(line: str, expected: object) -> None:
    parsed = parse_elfcorehdr_arg(line)
    assert (parsed[1] if parsed else None) == expected


# -- kexec_load (kexec-tools purgatory, found by scanning) --------------------


@pytest.mark.parametrize("hotplug", [True, False])
def test_load_scan_found(hotplug: bool) -> None:
    built = pb.load_image(hotplug=hotplug)
    image, purg, digest, findings = run(built)
    assert purg.source == Source.SCAN and purg.unread is None
    assert purg.regions_address == pb.PURG_MEM + pb.KT_REGIONS
    assert purg.digest_address == pb.PURG_MEM + pb.KT_DIGEST
    assert purg.symbol("sha256_regions") == purg.regions_address
    assert purg.elfcorehdr_excluded is hotplug
    assert [(r.start, r.len) for r in purg.regions] == built.regions
    assert purg.regs is not None and purg.regs.layout == RegsLayout.KEXEC_TOOLS
    assert purg.regs.address == pb.PURG_MEM + pb.KT_REGS
    assert (purg.regs.rsi, purg.regs.rsp) == (
        pb.PARAMS_MEM,
        pb.PURG_MEM + pb.KT_STACK_END,
    )
    assert purg.cmdline is not None and purg.cmdline.elfcorehdr == pb.ELF_MEM
    assert digest.status == DigestStatus.MATCH
    assert codes(findings) == ["CHP021", "CHP032"]


def test_load_scan_not_found() -> None:
    # A table that is not the segment list (kexec -i leaves it zero; here a
    # wrong length) cannot be located.
    built = pb.load_image(
        regions=[
            (pb.KERNEL_MEM, 0x1000),
            (pb.INITRD_MEM, 0x100000),
            (pb.PARAMS_MEM, 0x3000),
        ]
    )
    _, purg, digest, findings = run(built)
    assert purg.unread is not None and purg.unread.kind == UnreadKind.NOT_FOUND
    assert "cannot locate" in purg.unread.reason
    assert digest.status == DigestStatus.UNVERIFIABLE
    assert "CHP026" in codes(findings)
    assert not {"CHP020", "CHP021"} & set(codes(findings))


def test_load_mismatch_uses_digest_before_table() -> None:
    built = pb.load_image()
    kernel = built.segments[1]
    built.segments[1] = replace(kernel, data=kernel.data[:-1] + b"\0")
    built.machine.segments = built.segments
    _, _, digest, findings = run(built)
    assert digest.status == DigestStatus.MISMATCH
    assert digest.stored == built.digest.hex()
    assert "CHP020" in codes(findings)


def test_load_digest_elsewhere_is_found_by_search() -> None:
    built = pb.load_image(digest_at=0x6000)
    _, purg, digest, findings = run(built)
    assert purg.stored_digest == bytes(32).hex()
    assert digest.status == DigestStatus.MATCH
    assert digest.digest_address == pb.PURG_MEM + 0x6000
    assert "CHP021" in codes(findings)


def test_load_hotplug_flag_but_elfcorehdr_hashed() -> None:
    # Table built without --hotplug while the image claims hotplug support.
    regions = [
        (pb.ELF_MEM, 0x4000),
        (pb.KERNEL_MEM, 0x1000000),
        (pb.INITRD_MEM, 0x100000),
        (pb.PARAMS_MEM, 0x3000),
    ]
    _, purg, _, findings = run(pb.load_image(hotplug=True, regions=regions))
    assert purg.elfcorehdr_excluded is False
    assert "hashed the elfcorehdr" in only(findings, "CHP025").message


# -- rendering ---------------------------------------------------------------------


def test_render_and_json() -> None:
    _, purg, digest, _ = run(pb.file_image())
    text = render_purgatory(purg, digest)
    assert f"{pb.KERNEL_MEM:#x}" in text and "kernel" in text
    assert digest.computed is not None and digest.computed in text
    assert "rip" in text and "match" in text
    doc = json.loads(json.dumps(jsonable(purg)))
    assert doc["source"] == "kexec_purgatory"
    assert doc["regions"][1]["role"] == "kernel"
    assert doc["regs"]["rip"] == pb.KERNEL_MEM + 0x200
    assert json.loads(json.dumps(jsonable(digest)))["status"] == "match"


def test_progress_reports_all_bytes() -> None:
    built = pb.file_image()
    prog = SynthKernel(built.machine).prog
    image = read_kimage(prog)
    assert image is not None
    seen: List[Tuple[int, int]] = []
    verify_digest(
        prog,
        read_purgatory_full(prog, image),
        progress=lambda d, t: seen.append((d, t)),
    )
    total = sum(n for _, n in built.regions)
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# -- real 6.12 dumps (vmcores/, ground truth recorded by the lab) --------------

REAL = scenario_names() or ["file_base"]


def _hex(x: str) -> int:
    return int(x.split()[0], 16)


def _real(name: str) -> Tuple[KImage, Purgatory, DigestVerdict, List[Finding], dict]:
    prog, truth = real_fixture(name)
    if not truth["expected"]["crash_loaded"]:
        pytest.skip("no crash kernel loaded in this scenario")
    image = read_kimage(prog)
    assert image is not None
    purg = read_purgatory_full(prog, image)
    read, digest = verify_digest(prog, purg)
    return image, purg, digest, check_purgatory(image, purg, read), truth


def _logged(lines: List[str], prefix: str) -> List[str]:
    return [line.split(prefix, 1)[1].strip() for line in lines if prefix in line]


@pytest.mark.parametrize("name", REAL)
def test_real_digest_verdict(name: str) -> None:
    _, purg, digest, findings, truth = _real(name)
    want = truth["expected"]["digest"]
    if want == "n/a":
        # A kdump-written vmcore lacks the crash region.
        assert purg.unread is not None and purg.unread.kind == UnreadKind.NOT_IN_TARGET
        assert digest.status == DigestStatus.UNVERIFIABLE
        assert "CHP022" in codes(findings)
        return
    assert digest.status == DigestStatus(want)
    assert ("CHP021" if want == "match" else "CHP020") in codes(findings)
    assert not {"CHP023", "CHP025", "CHP026", "CHP027", "CHP030", "CHP031"} & set(
        codes(findings)
    )


@pytest.mark.parametrize("name", REAL)
def test_real_layout_matches_what_the_loader_logged(name: str) -> None:
    image, purg, _, _, truth = _real(name)
    load = truth["load"]
    purg_mem = (
        _hex(load["segment_roles"]["purgatory"])
        if load["mode"] == "file_load"
        else None
    )
    if load["mode"] == "file_load":
        # kexec_file_load: "Loaded purgatory at" and start: from the kernel.
        assert purg.source == Source.KERNEL_BLOB
        assert purg.segment_mem == purg_mem
        assert purg.replay_start == image.start == _hex(load["entry"])
        roles = load["segment_roles"]
        want = [
            (_hex(s["mem"]), _hex(s["memsz"]))
            for s in truth["segments"]
            if s["mem"] not in (roles["purgatory"], load["elf_headers"]["mem"])
        ]
        assert purg.regions_address is not None
        assert purg.unread is None or purg.unread.kind == UnreadKind.NOT_IN_TARGET
        if purg.unread is None:
            assert [(r.start, r.len) for r in purg.regions] == want
            assert purg.regs is not None
            assert purg.regs.rip == _hex(roles["kernel"]) + 0x200
            assert purg.regs.rsi == _hex(roles["boot_params"])
    else:
        # kexec -d printed where it put the symbols.
        out = load["kexec_output"]
        regions = _logged(out, "sym: sha256_regions value:")[0]
        digest_at = _logged(out, "sym: sha256_digest value:")[0]
        assert purg.source == Source.SCAN and purg.unread is None
        assert purg.regions_address == _hex(regions)
        assert purg.digest_address == _hex(digest_at)
        skipped = _logged(out, "Skipping segment mem:")
        assert purg.elfcorehdr_excluded is bool(skipped)
        assert image.start == _hex(_logged(out, "kexec_load: entry =")[0])


@pytest.mark.parametrize("name", REAL)
def test_real_command_line(name: str) -> None:
    _, purg, _, findings, truth = _real(name)
    load = truth["load"]
    if load["mode"] == "file_load":
        logged = _logged(load["kernel_debug_lines"], "Final command line is:")
    else:
        out = load["kexec_output"]
        logged = [out[out.index("Command line after adding elfcorehdr") + 1].strip()]
    if purg.cmdline is None or purg.cmdline.text is None:
        assert truth["expected"]["digest"] == "n/a"
        return
    assert purg.cmdline.text.strip() == logged[0]
    assert only(findings, "CHP032").message == purg.cmdline.text
    assert "CHP031" not in codes(findings)
