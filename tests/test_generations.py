"""Every scenario of the Linux 6.1 and 7.3 lab kernels, from the committed files.

The dumps, debug files and ground truth are in vmcores/v6.1 and vmcores/v7.3
(made by vmcores/lab: the JSON records what the guest itself reported, never
what this package says). Each scenario goes through the public API, and its
JSON report is compared with the ground truth: layout, segments and their
roles, CPU notes, header RAM, exclusions (CMA ranges, dm-crypt keys), sha
regions, capacity, verdict and finding codes.

Where the package gives a wrong answer on a kernel fact, the test is marked
``xfail(strict=True)`` with the fact (see ``KNOWN`` below), so it turns into
an XPASS failure once the package learns it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

from tests.conftest import gen_fixture_paths, generation_scenarios, unpack

SCENARIOS = generation_scenarios() or ["v7.3/file_base"]
LAYOUTS = Path(__file__).resolve().parent / "layouts"

#: (scenario, test) -> reason: wrong answers of the package on a real kernel,
#: each with the kernel fact it misses. Filled from real runs, see the report
#: of issue 12.
KNOWN: Dict[Tuple[str, str], str] = {}


def h(x: Any) -> int:
    return int(x, 16) if isinstance(x, str) else int(x)


def ranges(pairs: List[List[Any]]) -> List[Tuple[int, int]]:
    return [(h(a), h(b)) for a, b in pairs]


def cpulist(text: Optional[str]) -> Set[int]:
    out: Set[int] = set()
    for part in (text or "").split(","):
        if part:
            a, _, b = part.partition("-")
            out.update(range(int(a), int(b or a) + 1))
    return out


@functools.cache
def _report(name: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    from drgn_crashhp import build_report, open_program, report_json

    dump, vmlinux, truth = gen_fixture_paths(name)
    prog = open_program(core=str(dump), symbols=[str(vmlinux)], default_symbols=False)
    doc = report_json(build_report(prog, target=name))
    # the JSON the CLI prints: round-trip it so only JSON types remain
    return json.loads(json.dumps(doc)), truth


def codes(doc: Dict[str, Any]) -> Set[str]:
    return {f["code"] for f in doc["findings"]}


def finding(doc: Dict[str, Any], code: str) -> Dict[str, Any]:
    [f] = [f for f in doc["findings"] if f["code"] == code]
    return f


def is_kdump(truth: Dict[str, Any]) -> bool:
    return truth["scenario"].startswith("kdump")


def loaded(truth: Dict[str, Any]) -> bool:
    return bool(truth["expected"]["crash_loaded"])


def hotplug_kernel(truth: Dict[str, Any]) -> bool:
    """A CONFIG_CRASH_HOTPLUG kernel: the guest has .../cpu/crash_hotplug."""
    return truth["guest_state"]["cpu"]["crash_hotplug"] is not None


def marks(test: str) -> List[Any]:
    out = []
    for name in SCENARIOS:
        reason = KNOWN.get((name, test))
        m = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(name, marks=m, id=name))
    return out


# -- image: layout, segments, roles --------------------------------------------


@pytest.mark.parametrize("name", marks("layout"))
def test_layout_and_segments(name: str) -> None:
    doc, truth = _report(name)
    image = doc["image"]
    if not loaded(truth):
        assert image is None or image.get("address") in (0, None)
        assert "CHP001" in codes(doc)
        return
    assert image is not None
    # 6.1 has none of the crash hotplug members; 7.3 has the 6.10+ ones
    # (hotplug_support, elfcorehdr_index, elfcorehdr_updated, hp_action)
    want = "6.10" if hotplug_kernel(truth) else "pre-hotplug"
    assert image["hotplug"]["layout"] == want
    assert image["file_mode"] == (truth["load"]["mode"] == "file_load")
    got = [(s["index"], s["mem"], s["memsz"]) for s in image["segments"]]
    want_segs = [(s["index"], h(s["mem"]), h(s["memsz"])) for s in truth["segments"]]
    if is_kdump(truth):
        # the kimage is in the dump; its table is what the kernel logged
        assert sorted(got) == sorted(want_segs)
    else:
        assert got == want_segs
    for seg, t in zip(image["segments"], truth["segments"]):
        if t.get("bufsz") is not None:
            assert seg["bufsz"] == h(t["bufsz"])


@pytest.mark.parametrize("name", marks("roles"))
def test_segment_roles(name: str) -> None:
    doc, truth = _report(name)
    if not loaded(truth) or truth["load"]["mode"] != "file_load":
        pytest.skip("roles are logged by the kernel for kexec_file_load only")
    by_mem = {s["mem"]: s["role"] for s in doc["image"]["segments"]}
    roles = {r: h(a) for r, a in truth["load"]["segment_roles"].items()}
    roles["elfcorehdr"] = h(truth["load"]["elf_headers"]["mem"])
    for role, mem in roles.items():
        assert by_mem.get(mem) == role, role
    # every segment of a kexec_file_load has a known role
    assert "unknown" not in by_mem.values()


# -- elfcorehdr: notes, RAM, capacity ---------------------------------------


@pytest.mark.parametrize("name", marks("header"))
def test_elfcorehdr_matches_the_recipes_own_parse(name: str) -> None:
    doc, truth = _report(name)
    obs = truth.get("observed", {})
    if "pt_note" not in obs:
        pytest.skip("the dump holds no elfcorehdr")
    hdr = doc["elfcorehdr"]["header"]
    assert hdr is not None, doc["elfcorehdr"]["unread"]
    assert doc["image"]["elfcorehdr_index"] == obs["elfcorehdr_segment_index"]
    assert hdr["phnum"] == obs["e_phnum"]
    assert hdr["used"] == obs["header_bytes"]
    assert [(n["paddr"], n["size"]) for n in hdr["notes"]] == [
        (h(a), n) for a, n in obs["pt_note"]
    ]
    ram = [(ld["paddr"], ld["paddr"] + ld["size"] - 1) for ld in hdr["loads"][1:]]
    assert ram == ranges(obs["observed_header_ram"])


@pytest.mark.parametrize("name", marks("cpus"))
def test_cpu_masks_and_notes(name: str) -> None:
    doc, truth = _report(name)
    st = doc["state"]
    cpu = truth["guest_state"]["cpu"]
    assert set(st["present_cpus"]) == cpulist(cpu["present"])
    assert set(st["online_cpus"]) == cpulist(cpu["online"])
    assert set(st["possible_cpus"]) == cpulist(cpu["possible"])
    notes = {n["cpu"]: n["paddr"] for n in st["cpu_notes"]}
    for cname, c in cpu["cpus"].items():
        assert notes[int(cname[3:])] == h(c["crash_notes"]), cname
    if not loaded(truth) or "cpus_without_note" not in truth["expected"]:
        return
    missing = truth["expected"]["cpus_without_note"]
    if missing:
        f = finding(doc, "CHP040")
        assert f["details"]["cpus"] == missing
    elif not is_kdump(truth):
        assert "CHP040" not in codes(doc)


@pytest.mark.parametrize("name", marks("ram"))
def test_ram_verdict(name: str) -> None:
    doc, truth = _report(name)
    exp = truth["expected"]
    if not loaded(truth):
        return
    if is_kdump(truth):
        assert "CHP071" in codes(doc)
        if exp["missing_ram"]:
            f = finding(doc, "CHP070")
            assert ranges(f["details"]["ranges"]) == ranges(exp["missing_ram"])
        else:
            assert "CHP070" not in codes(doc)
        return
    if exp["missing_ram"]:
        f = finding(doc, "CHP050")
        assert ranges(f["details"]["ranges"]) == ranges(exp["missing_ram"])
    else:
        assert "CHP050" not in codes(doc)
    if exp["extra_ram"]:
        f = finding(doc, "CHP051")
        assert ranges(f["details"]["ranges"]) == ranges(exp["extra_ram"])
    else:
        assert "CHP051" not in codes(doc)
    assert "CHP052" not in codes(doc)


@pytest.mark.parametrize("name", marks("exclusions"))
def test_exclusion_rules(name: str) -> None:
    """What the kernel leaves out of the header is not reported missing:
    the crash reservation, the low 1 MiB, crashk_cma_ranges (7.x), and the
    dm-crypt keys are a segment inside crashk_res."""
    doc, truth = _report(name)
    st = doc["state"]
    cr = truth["crash_kernel_region"]
    if cr:
        assert tuple(st["crashk_res"]) == tuple(h(x) for x in cr)
    cma = truth.get("cma", {}).get("crashk_cma_ranges")
    if cma is not None:
        got = st.get("crashk_cma")
        assert got is not None, "crashk_cma_ranges not read"
        assert [tuple(r) for r in got] == ranges(cma)
    keys = truth.get("dm_crypt_keys")
    if keys and keys.get("dm_crypt_keys_addr"):
        addr = h(keys["dm_crypt_keys_addr"])
        [seg] = [s for s in doc["image"]["segments"] if s["mem"] == addr]
        assert seg["role"] == "dm_crypt_keys"
        assert seg["bufsz"] == h(keys["bufsz"])


@pytest.mark.parametrize("name", marks("sha"))
def test_sha_regions_follow_the_kernel_rule(name: str) -> None:
    """kexec_calculate_store_digests(): every segment except purgatory, the
    elfcorehdr on CONFIG_CRASH_HOTPLUG kernels (6.6+), and IMA; dm-crypt
    keys are hashed."""
    doc, truth = _report(name)
    if not loaded(truth) or truth["load"]["mode"] != "file_load" or is_kdump(truth):
        pytest.skip("sha regions of a kexec_file_load image in a full dump")
    pur = doc["purgatory"]
    assert pur["unread"] is None, pur["unread"]
    skip = {h(truth["load"]["segment_roles"]["purgatory"])}
    if hotplug_kernel(truth):
        skip.add(h(truth["load"]["elf_headers"]["mem"]))
    want = [
        (h(s["mem"]), h(s["memsz"]))
        for s in truth["segments"]
        if h(s["mem"]) not in skip
    ]
    got = [(r["start"], r["len"]) for r in pur["regions"] if r["len"]]
    assert got == want
    digest = truth["expected"]["digest"]
    assert doc["digest"]["status"] == digest
    assert ("CHP021" if digest == "match" else "CHP020") in codes(doc)


@pytest.mark.parametrize("name", marks("capacity"))
def test_capacity(name: str) -> None:
    doc, truth = _report(name)
    obs = truth.get("observed", {})
    if "pt_note" not in obs:
        pytest.skip("no elfcorehdr in the dump")
    seg = [
        s for s in truth["segments"] if s["index"] == obs["elfcorehdr_segment_index"]
    ][0]
    f = finding(doc, "CHP065")
    assert f["details"]["memsz"] == h(seg["memsz"])
    size = truth["guest_state"]["sys_kernel"]["crash_elfcorehdr_size"]
    if size is not None and truth["load"]["mode"] == "file_load":
        # the kernel sizes the hotplug header for CONFIG_NR_CPUS_DEFAULT notes
        # and CONFIG_CRASH_MAX_MEMORY_RANGES loads; the segment is page-rounded
        assert h(seg["memsz"]) == (int(size) + 4095) // 4096 * 4096
    assert "CHP060" not in codes(doc)


@pytest.mark.parametrize("name", marks("verdict"))
def test_verdict_and_exit_status(name: str) -> None:
    doc, truth = _report(name)
    exp = truth["expected"]
    problem = (
        not exp["crash_loaded"]
        or exp["elfcorehdr"] == "stale"
        or exp["digest"] == "mismatch"
        or bool(exp.get("cpus_without_note"))
    )
    if problem:
        assert doc["exit_status"] == 1, sorted(codes(doc))
    elif is_kdump(truth):
        # the crash region is not in a kdump dump: cannot verify the digest
        assert doc["exit_status"] == 3, sorted(codes(doc))
    else:
        assert doc["exit_status"] == 0, sorted(codes(doc))
    errors = {f["code"] for f in doc["findings"] if f["severity"] == "error"}
    if not problem:
        assert not errors


# -- BTF ----------------------------------------------------------------------


@pytest.mark.parametrize("gen", ["6.1", "7.3"])
def test_shipped_btf_is_the_kernels(gen: str) -> None:
    """kernel.btf (the build's .BTF section) is the BTF the dumped kernel has
    in memory between __start_BTF and __stop_BTF."""
    from drgn_crashhp import open_program

    if gen not in unpack.generations():
        pytest.skip(f"no {gen} fixtures")
    dump, vmlinux, _ = gen_fixture_paths(f"v{gen}/file_base")
    blob = unpack.btf_path(gen).read_bytes()
    assert blob[:2] == b"\x9f\xeb"  # BTF_MAGIC, little endian
    prog = open_program(core=str(dump), symbols=[str(vmlinux)], default_symbols=False)
    start = prog.symbol("__start_BTF").address
    end = prog.symbol("__stop_BTF").address
    assert end - start == len(blob)
    assert prog.read(start, end - start) == blob


# -- member lists from DWARF ------------------------------------------------


@pytest.mark.parametrize("gen", ["6.1", "6.12", "7.3"])
def test_layout_files_match_the_real_kernel(gen: str) -> None:
    """tests/layouts/GEN.json was extracted from the kernel's DWARF; the
    members the tool reads are where the dump's kimage has them."""
    path = LAYOUTS / f"{gen}.json"
    if not path.exists():
        pytest.skip(f"{path.name} not extracted")
    lay = json.loads(path.read_text())
    kimage = {m["name"]: m for m in lay["structs"]["kimage"]["members"]}
    seg = {m["name"]: m for m in lay["structs"]["kexec_segment"]["members"]}
    assert lay["release"].startswith(gen + ".")
    assert kimage["segment"]["type"] == "struct kexec_segment [16]"
    assert [seg[n]["offset"] for n in ("bufsz", "mem", "memsz")] == [8, 16, 24]
    hotplug = {"hotplug_support", "elfcorehdr_index", "elfcorehdr_updated", "hp_action"}
    if gen == "6.1":
        assert not hotplug & set(kimage)
    else:
        assert hotplug <= set(kimage)
    if gen == "7.3":
        assert {"dm_crypt_keys_addr", "dm_crypt_keys_sz", "segment_cma"} <= set(kimage)
        assert lay["variables"]["crashk_cma_ranges"] is not None
