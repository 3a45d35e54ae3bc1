"""
CHP072: a kernel object the check needs lies in a page that the dump's 1st
page bitmap has and its 2nd lacks (makedumpfile filtered it out).

Real 7.3 memory shows it twice:

- the lab's 7.3 capture (makedumpfile 1.7.2 ``-d 31`` in the capture
  kernel) filtered 279 tail pages of slabs (7.3's VMCOREINFO names
  ``page.compound_info``, which it does not know), one of them holding a
  ``radix_tree_node`` of the ``memory_blocks`` xarray at pfn 0x611; its
  ``struct kimage`` was in a slab's head page and was kept;
- the 7.3 guest's whole memory (QEMU's dump of ``file_memadd``) filtered
  here by Debian's makedumpfile as kdump-tools does (``-F -c -d 31``) loses
  ``struct kimage`` (kmalloc-1k at offset 0x400 of a slab tail page) and a
  ``memory_blocks`` node; ``-d 23``, the level CHP072 proposes, keeps
  both, and the report is then the unfiltered memory's.

The capture with only the kimage page excluded by the test
(tests/support/diskdump.py) pins the message without makedumpfile.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.conftest import dwarf_program, gen_fixture_paths
from tests.support import flat
from tests.support.diskdump import drop_pages

MODES = ["dwarf", "btf+kallsyms"]


@functools.cache
def _report(core: Path, vmlinux: Path, mode: str) -> Dict[str, Any]:
    from drgn_crashhp import build_report, open_program, report_json

    if mode == "dwarf":
        prog = open_program(
            core=str(core), symbols=[str(vmlinux)], default_symbols=False
        )
    else:
        prog = open_program(core=str(core), default_symbols=False, say=lambda _: None)
    doc = json.loads(json.dumps(report_json(build_report(prog))))
    assert doc["debuginfo"] == mode
    return doc


def _chp072(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [f for f in doc["findings"] if f["code"] == "CHP072"]


@pytest.mark.parametrize("mode", MODES)
def test_the_real_7_3_capture_lost_a_memory_blocks_node(mode: str) -> None:
    dump, vmlinux, _ = gen_fixture_paths("v7.3/kdump_mdf_memadd")
    doc = _report(dump, vmlinux, mode)
    [f] = _chp072(doc)
    d = f["details"]
    assert [(o["object"], o["pfn"]) for o in d["objects"]] == [
        ("the memory block list (memory_blocks xarray)", 0x611)
    ]
    assert (d["dump_level"], d["suggested_dump_level"]) == (31, 23)
    assert d["setting"] == 'MAKEDUMP_ARGS="-c -d 23"'
    assert "/etc/default/kdump-tools" in f["message"]
    assert f["severity"] == "unverified"
    # the kimage itself was kept: the image is checked
    assert "CHP005" in {g["code"] for g in doc["findings"]}


@pytest.mark.parametrize("mode", MODES)
def test_6_1_capture_lost_nothing_needed(mode: str) -> None:
    """6.1's VMCOREINFO has page.compound_head: no slab page was taken for
    a user page, nothing needed is missing."""
    dump, vmlinux, _ = gen_fixture_paths("v6.1/kdump_mdf_memadd")
    assert not _chp072(_report(dump, vmlinux, mode))


@pytest.fixture(scope="module")
def kimage_dropped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dump, _, _ = gen_fixture_paths("v7.3/kdump_mdf_memadd")
    out = tmp_path_factory.mktemp("filtered") / "kimage-dropped.kdump"
    # kexec_crash_image is 0xffff88f0006ba000 in this capture
    out.write_bytes(drop_pages(dump.read_bytes(), [0x6BA]))
    return out


@pytest.mark.parametrize("mode", MODES)
def test_a_filtered_kimage_says_which_page_and_what_to_change(
    mode: str, kimage_dropped: Path
) -> None:
    _, vmlinux, _ = gen_fixture_paths("v7.3/kdump_mdf_memadd")
    doc = _report(kimage_dropped, vmlinux, mode)
    codes = {f["code"] for f in doc["findings"]}
    assert "CHP002" in codes and "CHP005" not in codes
    [f] = _chp072(doc)
    objects = {o["object"]: o for o in f["details"]["objects"]}
    kimage = objects["struct kimage of kexec_crash_image"]
    assert (kimage["address"], kimage["pfn"]) == (0xFFFF88F0006BA000, 0x6BA)
    assert kimage["physical"] == 0x6BA000
    assert "struct kimage of kexec_crash_image at 0xffff88f0006ba000" in f["message"]
    assert 'MAKEDUMP_ARGS="-c -d 23"' in f["message"]
    assert doc["exit_status"] == 3 and doc["verdict"] == "CANNOT VERIFY"


# -- real 7.3 memory through makedumpfile -d 31 and -d 23 --------------------


@pytest.fixture(scope="module")
def levels(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """The 7.3 guest's memory (file_memadd), made flattened by makedumpfile
    at kdump-tools' default dump level 31 and at 23; and the kimage's
    address and page offset read from the unfiltered memory. The loss is
    that of Debian 12's makedumpfile 1.7.2 (what setup-test.sh installs;
    1.7.6 and 1.7.8 do not know page.compound_info either): a makedumpfile
    that learns it fails this test, which is then to be revisited."""
    if flat.makedumpfile() is None:
        pytest.skip("makedumpfile is not installed (contrib/kdump/setup-test.sh)")
    dump, vmlinux, _ = gen_fixture_paths("v7.3/file_memadd")
    prog = dwarf_program(dump, vmlinux)
    page_offset = prog["page_offset_base"].value_()
    where = tmp_path_factory.mktemp("levels")
    elf = flat.qemu_elf_for_makedumpfile(dump, where / "memory.elf", page_offset)
    out: Dict[str, Any] = {
        "page_offset": page_offset,
        "kimage": prog["kexec_crash_image"].value_(),
        "vmlinux": vmlinux,
        "memory": dump,
    }
    for level in (31, 23):
        out[level] = flat.make_flattened(
            elf, where / f"d{level}.flat", ("-c", "-d", str(level))
        )
    elf.unlink()
    return out


@pytest.mark.parametrize("mode", MODES)
def test_dump_level_31_loses_the_kimage_and_23_keeps_it(
    mode: str, levels: Dict[str, Any]
) -> None:
    kimage, vmlinux = levels["kimage"], levels["vmlinux"]
    d31 = _report(levels[31], vmlinux, mode)
    [f] = _chp072(d31)
    objects = {o["object"]: o for o in f["details"]["objects"]}
    o = objects["struct kimage of kexec_crash_image"]
    assert o["address"] == kimage
    assert o["pfn"] == (kimage - levels["page_offset"]) >> 12
    assert (f["details"]["dump_level"], f["details"]["suggested_dump_level"]) == (
        31,
        23,
    )
    assert "the memory block list (memory_blocks xarray)" in objects
    assert d31["exit_status"] == 3
    # the fix: the next dump, at level 23, is verifiable and says what the
    # unfiltered memory says
    d23 = _report(levels[23], vmlinux, mode)
    whole = _report(levels["memory"], vmlinux, mode)
    assert not _chp072(d23)
    codes23 = sorted(g["code"] for g in d23["findings"])
    assert (d23["verdict"], d23["exit_status"], codes23) == (
        whole["verdict"],
        whole["exit_status"],
        sorted(g["code"] for g in whole["findings"]),
    )
    assert d23["verdict"] == "OK"


# -- an iomem node filtered out: the System RAM walk stops there -------------


@pytest.fixture(scope="module")
def iomem_dropped(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """The 7.3 capture with the page of the first node the System RAM walk
    reads (iomem_resource.child, the first top-level resource) excluded, as
    makedumpfile excluded an iomem node on the real 7.3 panic (Debian 13,
    -d 31). The node and its page come from the unfiltered capture, read
    with drgn alone."""
    dump, vmlinux, _ = gen_fixture_paths("v7.3/kdump_mdf_memadd")
    prog = dwarf_program(dump, vmlinux)
    node = prog["iomem_resource"].child
    address = node.value_()
    pfn = (address - prog["page_offset_base"].value_()) >> 12
    out = tmp_path_factory.mktemp("filtered") / "iomem-dropped.kdump"
    out.write_bytes(drop_pages(dump.read_bytes(), [pfn]))
    return {
        "dump": out,
        "vmlinux": vmlinux,
        "address": address,
        "pfn": pfn,
        "name": node.name.string_().decode(),
        "size": prog.type("struct resource").size,
    }


@pytest.mark.parametrize("mode", MODES)
def test_a_filtered_iomem_node_is_named_with_its_page(
    mode: str, iomem_dropped: Dict[str, Any]
) -> None:
    t = iomem_dropped
    assert t["name"]  # a real resource ("Reserved" on x86)
    doc = _report(t["dump"], t["vmlinux"], mode)
    # the walk stops at its first node: no System RAM, CHP090 says why
    assert doc["state"]["system_ram"] == []
    unknown = {u["what"]: u for u in doc["state"]["unknown"]}
    u = unknown["system_ram"]
    assert (u["kind"], u["address"], u["size"]) == (
        "not-in-target",
        t["address"],
        t["size"],
    )
    assert f"iomem node at {t['address']:#x} unreadable" in u["reason"]
    [f] = _chp072(doc)
    objects = {o["object"]: o for o in f["details"]["objects"]}
    o = objects["an iomem tree node (struct resource; the System RAM walk stops there)"]
    assert (o["address"], o["pfn"], o["physical"]) == (
        t["address"],
        t["pfn"],
        t["pfn"] << 12,
    )
    assert f"stops there) at {t['address']:#x} (pfn {t['pfn']:#x})" in f["message"]
    assert doc["exit_status"] == 3
