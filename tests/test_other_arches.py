"""
ppc64le (pseries) and arm64 (virt): Debian's own 6.12 kernels under QEMU
TCG, kexec_load images loaded by kexec-tools 2.0.29 (vmcores/lab/arch/).
Each scenario's verdict and codes against the ground truth the lab
recorded from the guest's own interfaces:

- a stale header (ppc64 without --hotplug after a DIMM add; arm64 after a
  virtio-mem growth, which nothing on arm64 rewrites) is PROBLEM, with
  CHP050 on exactly the RAM the guest added;
- a present CPU missing from the FDT's /cpus (ppc64 without --hotplug after
  a core add) is PROBLEM: a panic on it would hang the capture kernel;
- kexec-tools' purgatory digest, recomputed from the dump, matches where the
  lab's own hash matched and is CHP020 where it flipped 16 bytes of the
  initrd; the entry variables are those the lab found in the purgatory
  segment, and point at their segments;
- a consistent image is OK, every family of checks implemented (no CHP091);
  a header the ppc64 kernel rewrote after a DIMM add (--hotplug) is byte
  for byte the package's rebuild (CHP055);
- no crash kernel is CHP001.

Run without debug info (the dumps' own BTF and kallsyms, always) and with
Debian's -dbg vmlinux when vmcores/lab/arch/setup.sh has fetched it into
the lab cache; both must give the same answers.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional, Tuple

import pytest

from drgn_crashhp import build_report, report_json
from drgn_crashhp.target import open_program
from tests.conftest import dwarf_program, unpack

GENS = ("ppc64le-6.12", "arm64-6.12")


def _scenarios() -> List[str]:
    have = set(unpack.generations())
    return [f"{g}:{n}" for g in GENS if g in have for n in sorted(unpack.scenarios(g))]


def _range(pair: List[str]) -> Tuple[int, int]:
    return int(pair[0], 16), int(pair[1], 16)


@functools.cache
def _report(gen: str, name: str, dwarf: bool) -> Dict[str, Any]:
    dump = str(unpack.dump_path(name, gen))
    if dwarf:
        try:
            vmlinux = unpack.vmlinux_path(gen)
        except FileNotFoundError as e:
            pytest.skip(f"Debian's -dbg vmlinux is not in the lab cache: {e}")
        prog = dwarf_program(dump, vmlinux)
    else:
        prog = open_program(dump, default_symbols=False, say=lambda line: None)
    return report_json(build_report(prog))


def _codes(doc: Dict[str, Any], severity: Optional[str] = None) -> List[str]:
    return sorted(
        f["code"]
        for f in doc["findings"]
        if severity is None or f["severity"] == severity
    )


@pytest.mark.parametrize("dwarf", [False, True], ids=["btf", "dwarf"])
@pytest.mark.parametrize("scenario", _scenarios())
def test_verdict_matches_the_ground_truth(scenario: str, dwarf: bool) -> None:
    gen, name = scenario.split(":")
    truth = unpack.scenarios(gen)[name]
    exp = truth["expected"]
    doc = _report(gen, name, dwarf)
    errors = _codes(doc, "error")
    if not exp["crash_loaded"]:
        assert errors == ["CHP001"], doc["findings"]
        return
    missing_cpus = exp.get("present_cpus_missing_from_fdt") or []
    # "n/a": a kdump capture lacks the crash region the segments are in.
    digest_codes = {"match": ["CHP021"], "mismatch": ["CHP020"], "n/a": ["CHP022"]}
    assert [c for c in _codes(doc) if c.startswith("CHP02")] == digest_codes[
        exp["digest"]
    ], doc["findings"]
    if exp["digest"] != "n/a":
        # The lab hashed the segments kexec -d said it hashed, from the dump,
        # and found where purgatory stores the digest and its variables.
        lab = truth["observed"]
        purg = doc["purgatory"]
        start = int(truth["segments"][purg["segment"]]["mem"], 16)
        assert purg["regions_address"] - start == int(
            lab["digest"]["regions_offset_in_purgatory"], 16
        )
        assert purg["stored_digest"] == lab["digest"]["stored_digest_at_offset"]
        assert [f"{r['start']:#x}" for r in purg["regions"]] == lab["digest"][
            "hashed_segments"
        ]
        got = {v["name"]: (v["address"], v["value"]) for v in purg["variables"]}
        want = {
            name: (int(v["addr"], 16), int(v["u64_in_dump"], 16))
            for name, v in lab["purgatory_variables"].items()
            if name in got
        }
        assert got == want and len(got) >= 2
    if exp["digest"] == "mismatch":
        assert doc["verdict"] == "PROBLEM"
        assert set(errors) == {"CHP020"}
        [chp020] = [f for f in doc["findings"] if f["code"] == "CHP020"]
        assert chp020["details"]["computed"] != lab["digest"]["computed_sha256"]
    elif exp["elfcorehdr"] == "stale":
        assert doc["verdict"] == "PROBLEM"
        [chp050] = [f for f in doc["findings"] if f["code"] == "CHP050"]
        assert [tuple(r) for r in chp050["details"]["ranges"]] == [
            _range(r) for r in exp["missing_ram"]
        ]
        assert set(errors) == {"CHP050"}
    elif missing_cpus:
        assert doc["verdict"] == "PROBLEM"
        assert set(errors) == {"CHP080"}
        cpus = [f["details"]["cpu"] for f in doc["findings"] if f["code"] == "CHP080"]
        assert cpus == missing_cpus
    elif exp["digest"] == "n/a":
        # A kdump capture: the crash image's segments are not in it.
        assert errors == [], doc["findings"]
        assert doc["verdict"] == "CANNOT VERIFY"
    else:
        assert errors == [], doc["findings"]
        assert doc["verdict"] == "OK"
        assert "CHP056" in _codes(doc)
    assert "CHP091" not in _codes(doc)
    # With --hotplug, a DIMM added after the load made the kernel rewrite the
    # header (ppc64 update_crash_elfcorehdr()): it must be byte for byte what
    # the package rebuilds from the memory map now.
    added_memory = any(a["action"] == "memory_add" for a in truth["hotplug_actions"])
    rewritten = truth["load"]["hotplug_option"] and added_memory
    if exp["digest"] != "n/a" and exp["crash_loaded"]:
        assert ("CHP055" in _codes(doc)) == bool(rewritten), doc["findings"]


@pytest.mark.parametrize("scenario", _scenarios())
def test_no_debug_info_gives_the_dwarf_answers(scenario: str) -> None:
    gen, name = scenario.split(":")
    dwarf = _report(gen, name, True)
    btf = _report(gen, name, False)
    assert btf["debuginfo"] == "btf+kallsyms"
    assert (btf["verdict"], _codes(btf)) == (dwarf["verdict"], _codes(dwarf))
    for key in ("memory_rows", "cpu_rows", "header_ram"):
        assert btf["analysis"][key] == dwarf["analysis"][key], key
