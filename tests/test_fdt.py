"""
The FDT: the bounded decoder on real DTBs (kexec-tools' on ppc64le and
arm64, tests/seeds/fdt-*.bin.xz) and on hand-built and broken ones, and the
08x checks on facts built by hand and, where the lab's dumps are in the
cache, on the real fixtures.
"""

from __future__ import annotations

import dataclasses
import json
import lzma
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import pytest

from drgn_crashhp.checks.fdt import check_fdt
from drgn_crashhp.facts import (
    Facts,
    FdtRead,
    HotplugFields,
    KImage,
    Layout,
    MachineState,
    Role,
    Segment,
    Unread,
    UnreadKind,
)
from drgn_crashhp.kernel.fdt import (
    MAX_DEPTH,
    MAX_FDT,
    MAX_NODES,
    Malformed,
    cpu_hw_ids,
    decode_fdt,
    dynamic_memory_v2,
    is_fdt,
    reg_ranges,
)
from tests.support.fdt import Tree, build_fdt, u32, u64

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "tests" / "seeds"


def seed(name: str) -> bytes:
    return lzma.decompress((SEEDS / f"fdt-{name}.bin.xz").read_bytes())


# -- the decoder on real DTBs ---------------------------------------------------


def test_ppc64_dtb_as_kexec_tools_wrote_it() -> None:
    fdt = decode_fdt(seed("ppc_load_cpuadd"))
    assert fdt.header.version == 17 and fdt.header.totalsize == 24432
    # kexec-tools reserves the backup region, elfcorehdr, initrd, RTAS, DTB.
    assert (0x2288F000, 0x400) in fdt.memreserve and len(fdt.memreserve) == 6
    assert cpu_hw_ids(fdt) == {"/cpus/PowerPC,POWER10@0": (0,)}
    memory = fdt.node("/memory@0")
    assert memory is not None
    assert reg_ranges(fdt, memory) == ((0, 0x80000000),)
    assert reg_ranges(fdt, memory, "linux,usable-memory") == ((0, 0x40000000),)
    # The boot memory's LMBs are reserved, the hotplug area unassigned.
    assert dynamic_memory_v2(fdt) == ((0, 0x80000000, 0xA0), (0x80000000, 1 << 32, 0))


def test_ppc64_dtb_after_the_kernel_added_a_cpu() -> None:
    # kexec -p --hotplug, then +1 core: update_cpus_node() rewrote /cpus.
    fdt = decode_fdt(seed("ppc_hp_cpuadd"))
    assert cpu_hw_ids(fdt) == {
        "/cpus/PowerPC,POWER10@0": (0,),
        "/cpus/PowerPC,POWER10@1": (1,),
    }


def test_arm64_dtb_points_at_the_elfcorehdr() -> None:
    fdt = decode_fdt(seed("arm_base"))
    chosen = fdt.node("/chosen")
    assert chosen is not None
    assert reg_ranges(fdt, chosen, "linux,elfcorehdr") == ((0x7ABFF000, 0x400),)
    assert reg_ranges(fdt, chosen, "linux,usable-memory-range") == (
        (0x6AC00000, 0x10000000),
    )
    assert cpu_hw_ids(fdt) == {"/cpus/cpu@0": (0,), "/cpus/cpu@1": (1,)}
    assert fdt.memreserve == () and dynamic_memory_v2(fdt) is None


def test_trailing_bytes_past_totalsize_are_ignored() -> None:
    data = seed("arm_base")
    assert decode_fdt(data + b"\xff" * 4096) == decode_fdt(data)


# -- hand-built trees --------------------------------------------------------


CPU: Tree = {"device_type": b"cpu\0", "reg": u32(8)}


def _tree(**chosen: bytes) -> Tree:
    return {
        "#address-cells": u32(2),
        "#size-cells": u32(2),
        "cpus": {"#address-cells": u32(1), "#size-cells": u32(0), "cpu@8": CPU},
        "memory@0": {"device_type": b"memory\0", "reg": u64(0, 1 << 30)},
        "chosen": dict(chosen),
    }


def test_built_tree_round_trips() -> None:
    fdt = decode_fdt(build_fdt(_tree(bootargs=b"x\0"), memreserve=[(1, 2)]))
    assert [n.path for n in fdt.nodes] == [
        "/",
        "/cpus",
        "/cpus/cpu@8",
        "/memory@0",
        "/chosen",
    ]
    assert fdt.memreserve == ((1, 2),)
    assert cpu_hw_ids(fdt) == {"/cpus/cpu@8": (8,)}
    assert [n.path for n in fdt.children("/")] == ["/cpus", "/memory@0", "/chosen"]
    assert is_fdt(build_fdt({})) and not is_fdt(None) and not is_fdt(b"\x7fELF")


def test_interrupt_servers_name_every_thread() -> None:
    cpu: Tree = {
        "device_type": b"cpu\0",
        "reg": u32(8),
        "ibm,ppc-interrupt-server#s": u32(8, 9, 10, 11),
    }
    tree: Tree = {"cpus": {"#address-cells": u32(1), "PowerPC,POWER9@8": cpu}}
    assert cpu_hw_ids(decode_fdt(build_fdt(tree))) == {
        "/cpus/PowerPC,POWER9@8": (8, 9, 10, 11)
    }


def _patched(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack(">I", value) + data[offset + 4 :]


GOOD = build_fdt(_tree(bootargs=b"console=hvc0\0"))
OFF_STRUCT = struct.unpack_from(">I", GOOD, 8)[0]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "shorter than an FDT header"),
        (b"\x7fELF" + bytes(60), "bad magic"),
        (GOOD[:100], "past the"),
        (_patched(GOOD, 4, MAX_FDT + 1), "over the"),
        (_patched(GOOD, 20, 15), "not 16/17"),
        (_patched(GOOD, 8, 0x10_0000), "structure block"),
        (_patched(GOOD, 12, 0x10_0000), "strings block"),
        (_patched(GOOD, 16, 3), "reserve map offset"),
        (_patched(GOOD, OFF_STRUCT, 7), "unknown token"),
        (_patched(GOOD, OFF_STRUCT, 9), "no root node"),
        (_patched(GOOD, OFF_STRUCT, 2), "without an open node"),
        (_patched(GOOD, OFF_STRUCT, 3), "outside every node"),
        (_patched(GOOD, OFF_STRUCT + 12, 0xFFFFFFF0), "runs past its block"),
        (_patched(GOOD, OFF_STRUCT + 16, 0xFFFFFF), "name offset"),
    ],
)
def test_malformed_blobs_give_one_reason(data: bytes, reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        decode_fdt(data)


def test_a_blob_without_its_end_token() -> None:
    total = len(GOOD)
    struct_size = struct.unpack_from(">I", GOOD, 36)[0]
    # Shrink the structure block by the FDT_END token.
    data = _patched(GOOD, 36, struct_size - 4)
    assert len(data) == total
    with pytest.raises(Malformed, match="without FDT_END"):
        decode_fdt(data)


def test_bounds_on_depth_and_nodes() -> None:
    deep: Tree = {}
    node = deep
    for _ in range(MAX_DEPTH + 1):
        child: Tree = {}
        node["n"] = child
        node = child
    with pytest.raises(Malformed, match="nested over"):
        decode_fdt(build_fdt(deep))
    wide: Tree = {f"n{i}": {} for i in range(MAX_NODES)}
    with pytest.raises(Malformed, match="nodes"):
        decode_fdt(build_fdt(wide))


def test_unprintable_names_and_bad_cells() -> None:
    with pytest.raises(Malformed, match="printable"):
        decode_fdt(build_fdt({"bad\x01": {}}))
    fdt = decode_fdt(
        build_fdt({"cpus": {"c": {"device_type": b"cpu\0", "reg": b"\1"}}})
    )
    with pytest.raises(Malformed, match="cells"):
        cpu_hw_ids(fdt)


# -- the 08x checks on facts built by hand ------------------------------------

ELFCOREHDR = 0x7ABFF000


def _facts(
    blob: Optional[bytes],
    present: Sequence[int] = (0, 1),
    hw: Sequence[Tuple[int, int]] = (),
    crashk: Tuple[int, int] = (0x6AC00000, 0x7ABFFFFF),
    unread: Optional[Unread] = None,
) -> Facts:
    segments = (
        Segment(0, 0x6AC00000, 0x1E70000, 0x1E70000, Role.KERNEL),
        Segment(1, 0x6CC68000, 0x2000, 0x2000, Role.FDT),
        Segment(2, ELFCOREHDR, 0x1000, 0x400, Role.ELFCOREHDR),
    )
    image = KImage(
        symbol="kexec_crash_image",
        address=0,
        start=0,
        type=1,
        file_mode=False,
        nr_segments=3,
        segments=segments,
        elf_load_addr=None,
        elf_headers_sz=None,
        hotplug=HotplugFields(Layout.PRE_HOTPLUG, False, "test"),
        elfcorehdr_index=2,
        elfcorehdr_source="test",
    )
    state = MachineState(
        arch="AARCH64",
        present_cpus=tuple(present),
        crashk_res=crashk,
        system_ram=((0x40000000, 0x7FFFFFFF),),
    )
    read = FdtRead(
        segments[1],
        fdt=decode_fdt(blob) if blob is not None else None,
        unread=unread,
        hw_cpu_ids=tuple(hw),
        hw_cpu_ids_source="test",
    )
    return Facts("test", "kexec_crash_image", state, image=image, fdt=read)


def _codes(facts: Facts) -> List[str]:
    return sorted(f.code for f in check_fdt(facts, None))  # type: ignore[arg-type]


def test_the_real_arm64_dtb_is_consistent() -> None:
    assert _codes(_facts(seed("arm_base"))) == ["CHP084"]


def test_a_present_cpu_missing_from_cpus_is_an_error() -> None:
    out = check_fdt(_facts(seed("arm_base"), present=(0, 1, 2)), None)  # type: ignore[arg-type]
    (missing,) = [f for f in out if f.code == "CHP080"]
    assert missing.message == (
        "present CPU 2 (hardware id 0x2) is not in the FDT's /cpus: a panic on "
        "CPU 2 would hang the capture kernel"
    )
    # By hardware id, not by CPU number.
    assert (
        _codes(_facts(seed("arm_base"), present=(0, 1), hw=[(0, 0), (1, 0x100)]))[0]
        == "CHP080"
    )


def test_elfcorehdr_elsewhere_or_missing() -> None:
    fdt = decode_fdt(seed("arm_base"))
    facts = _facts(seed("arm_base"))
    seg = dataclasses.replace(facts.image.segments[2], mem=ELFCOREHDR + 0x1000)  # type: ignore[union-attr]
    moved = dataclasses.replace(
        facts,
        image=dataclasses.replace(
            facts.image,
            segments=facts.image.segments[:2] + (seg,),  # type: ignore[union-attr]
        ),
    )
    assert "CHP081" in _codes(moved)
    assert fdt.node("/chosen") is not None
    bare = build_fdt({"chosen": {"bootargs": b"console=ttyAMA0\0"}, "cpus": {}})
    assert "CHP081" in _codes(_facts(bare, present=()))
    # ppc64: elfcorehdr= in bootargs, kexec-tools' <N>K form.
    ppc = build_fdt({"chosen": {"bootargs": b"irqpoll elfcorehdr=2011132K\0"}})
    assert "CHP081" not in _codes(_facts(ppc, present=()))


def test_usable_memory_outside_the_reservation() -> None:
    codes = _codes(_facts(seed("arm_base"), crashk=(0x6AC00000, 0x6FFFFFFF)))
    assert "CHP082" in codes


def test_malformed_or_absent_dtb() -> None:
    bad = Unread("fdt", UnreadKind.MALFORMED, "bad magic d00dfeee")
    assert _codes(_facts(None, unread=bad)) == ["CHP083"]
    gone = Unread("fdt", UnreadKind.NOT_IN_TARGET, "not in this target")
    assert _codes(_facts(None, unread=gone)) == ["CHP090"]
    facts = dataclasses.replace(_facts(seed("arm_base")), fdt=None)
    assert _codes(facts) == ["CHP090"]


# -- the real fixtures, where the lab's dumps are in the cache -------------------

LAB = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "drgn-crashhp"
    / "lab"
    / "arch"
)

#: Scenario -> the 08x error codes its ground truth implies
#: (vmcores/ppc64le/*.json "present_cpus_missing_from_fdt").
FIXTURES = {
    ("ppc64le", "ppc_load_cpuadd"): ["CHP080"],
    ("ppc64le", "ppc_hp_cpuadd"): [],
    ("ppc64le", "ppc_hp_base"): [],
    ("ppc64le", "ppc_hp_memadd"): [],
    ("ppc64le", "ppc_load_memadd"): [],
    ("ppc64le", "ppc_corrupt"): [],
    ("arm64", "arm_base"): [],
    ("arm64", "arm_vmem_grow"): [],
    ("arm64", "arm_corrupt"): [],
}


@pytest.mark.parametrize("arch, scenario", sorted(FIXTURES))
def test_real_fixture(arch: str, scenario: str) -> None:
    dump = LAB / arch / "dumps" / f"{scenario}.elf"
    vmlinux = LAB / arch / "vmlinux.dbg"
    if not dump.exists() or not vmlinux.exists():
        pytest.skip(f"{dump.name} not in the lab cache")
    run = subprocess.run(
        [sys.executable, "-m", "drgn_crashhp", "-c", str(dump), "-s", str(vmlinux)]
        + ["--no-default-symbols", "--no-digest", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    doc = json.loads(run.stdout)
    codes = [f["code"] for f in doc["findings"]]
    errors = [c for c in codes if c.startswith("CHP08") and c != "CHP084"]
    assert errors == FIXTURES[arch, scenario]
    assert "CHP084" in codes
    if errors:
        (f,) = [f for f in doc["findings"] if f["code"] == "CHP080"]
        assert f["details"]["cpu"] == 1


def test_fuzz_seeds_reach_the_decoded_path() -> None:
    """Unmutated seeds decode and pass the checks, so mutations start deep."""
    from tests.support import fuzzing

    assert len(fuzzing.FDT_SEEDS) >= 5
    for data in fuzzing.FDT_SEEDS:
        assert fuzzing.run_decode_fdt(data).startswith("value")
