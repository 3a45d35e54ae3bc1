"""The crash image reader and elfcorehdr decoder on real 6.12 vmcores."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest

from drgn_crashhp.facts import Layout, Role
from drgn_crashhp.read.elfcorehdr import read_elfcorehdr
from drgn_crashhp.read.image import read_kimage
from drgn_crashhp.render.text import render_text
from drgn_crashhp.report import build_report
from tests.conftest import real_fixture, scenario_names

SCENARIOS = scenario_names() or ["file_base"]


def h(x: Any) -> int:
    return int(x, 16) if isinstance(x, str) else int(x)


def ranges(pairs: List[List[Any]]) -> List[Tuple[int, ...]]:
    return [tuple(h(v) for v in p) for p in pairs]


@pytest.mark.parametrize("name", SCENARIOS)
def test_segments_match_what_the_kernel_logged(name: str) -> None:
    prog, truth = real_fixture(name)
    image = read_kimage(prog)
    if not truth["expected"]["crash_loaded"]:
        assert image is None
        assert [f.code for f in build_report(prog).findings] == ["CHP001"]
        return
    assert image is not None
    assert image.hotplug.layout == Layout.MAINLINE_6_10
    assert image.file_mode == (truth["load"]["mode"] == "file_load")
    assert image.nr_segments == len(truth["segments"])
    got = [(s.index, s.mem, s.memsz) for s in image.segments]
    want = [(s["index"], h(s["mem"]), h(s["memsz"])) for s in truth["segments"]]
    assert got == want
    for seg, t in zip(image.segments, truth["segments"]):
        if t.get("bufsz") is not None:
            assert seg.bufsz == h(t["bufsz"])
    if image.file_mode:
        roles = {r: h(a) for r, a in truth["load"]["segment_roles"].items()}
        for role, mem in roles.items():
            seg = image.by_role(Role(role))
            assert seg is not None and seg.mem == mem, role
        assert image.elfcorehdr is not None
        assert image.elfcorehdr.mem == h(truth["load"]["elf_headers"]["mem"])
        assert image.hotplug.support


@pytest.mark.parametrize("name", SCENARIOS)
def test_elfcorehdr_matches_the_recipes_own_parse(name: str) -> None:
    prog, truth = real_fixture(name)
    observed: Dict[str, Any] = truth.get("observed", {})
    if "pt_note" not in observed:
        pytest.skip(f"{name}: the dump holds no elfcorehdr")
    image = read_kimage(prog)
    assert image is not None
    assert image.elfcorehdr_index == observed["elfcorehdr_segment_index"]
    read = read_elfcorehdr(prog, image)
    assert read.header is not None, read.unread
    hdr = read.header
    assert hdr.phnum == observed["e_phnum"]
    assert hdr.used == observed["header_bytes"]
    assert [(n.paddr, n.size) for n in hdr.notes] == ranges(observed["pt_note"])
    [text_load] = ranges(observed["kernel_text_load"])
    assert (hdr.loads[0].paddr, hdr.loads[0].vaddr, hdr.loads[0].size) == text_load
    assert [(ld.paddr, ld.end) for ld in hdr.loads[1:]] == ranges(
        observed["observed_header_ram"]
    )
    # CPU notes: one per possible CPU for a kernel-written header (6.6+), one
    # per CPU present at load for a kexec-tools header.
    cpus = truth["guest_state"]["cpu"]["cpus"]
    note_addrs = {n.paddr for n in hdr.notes}
    for cpu in cpus.values():
        assert h(cpu["crash_notes"]) in note_addrs


@pytest.mark.parametrize("name", ["file_cpuadd", "load_stale_memadd"])
def test_notes_are_named_by_the_cpu_the_guest_reported(name: str) -> None:
    prog, truth = real_fixture(name)
    text = render_text(build_report(prog, digest=False), ["elfcorehdr"])
    rows = {line.split()[2]: line for line in text.splitlines() if "PT_NOTE" in line}
    for cpu, info in truth["guest_state"]["cpu"]["cpus"].items():
        assert f"{cpu} crash_notes" in rows[info["crash_notes"]]
    vmcoreinfo = truth["guest_state"]["sys_kernel"]["vmcoreinfo"].split()[0]
    assert "vmcoreinfo" in rows[hex(int(vmcoreinfo, 16))]


@pytest.mark.parametrize("name", ["load_stale_memadd", "load_hotplug_memadd"])
def test_kexec_load_kernel_and_backup_segments_are_named(name: str) -> None:
    prog, truth = real_fixture(name)
    image = build_report(prog, digest=False).facts.image
    assert image is not None
    # kexec-tools said where it put the backup region; its header points
    # there, until the kernel rewrites the header in its own format (which
    # has no backup range) on the first hotplug event.
    [line] = [
        x
        for x in truth["load"]["kexec_output"]
        if x.startswith("Created backup segment at ")
    ]
    backup = image.by_role(Role.BACKUP)
    if truth["load"]["hotplug_option"]:
        assert backup is None
    else:
        assert backup is not None and backup.mem == h(line.split()[-1])
    # ... and the kernel is the same bzImage the kexec_file_load scenario
    # loaded, whose kernel segment the kernel itself logged.
    _, file_truth = real_fixture("file_base")
    kernel_mem = h(file_truth["load"]["segment_roles"]["kernel"])
    [file_kernel] = [s for s in file_truth["segments"] if h(s["mem"]) == kernel_mem]
    kernel = image.by_role(Role.KERNEL)
    assert kernel is not None and kernel.bufsz == h(file_kernel["bufsz"])
