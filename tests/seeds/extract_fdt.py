#!/usr/bin/env python3
"""
Cut the FDT fuzzing seeds out of real ppc64le and arm64 fixture dumps:

    python3 tests/seeds/extract_fdt.py DUMP VMLINUX NAME [DUMP VMLINUX NAME ...]

For each dump, the loaded crash image's FDT segment (kexec-tools' DTB,
found by its magic), cut to its ``totalsize``, is written xz-compressed to
``fdt-NAME.bin.xz`` in this directory. The seeds in the repository came
from the lab's ``ppc_hp_cpuadd`` (6.12.107 ppc64el, /cpus rewritten by the
kernel's crash hotplug) and ``arm_base`` (6.12.117 arm64 cloud) dumps.
"""

from __future__ import annotations

import lzma
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from drgn_crashhp.facts import Role  # noqa: E402
from drgn_crashhp.read import read_facts  # noqa: E402
from drgn_crashhp.target import open_program  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv or len(argv) % 3:
        print(__doc__, file=sys.stderr)
        return 2
    for i in range(0, len(argv), 3):
        dump, vmlinux, name = argv[i : i + 3]
        prog = open_program(core=dump, symbols=[vmlinux], default_symbols=False)
        facts = read_facts(prog, digest=False)
        seg = facts.image.by_role(Role.FDT) if facts.image else None
        if seg is None:
            print(f"{dump}: no FDT segment", file=sys.stderr)
            return 1
        head = prog.read(seg.mem, 8, True)
        (total,) = struct.unpack_from(">I", head, 4)
        data = prog.read(seg.mem, min(total, seg.memsz), True)
        out = HERE / f"fdt-{name}.bin.xz"
        out.write_bytes(lzma.compress(data))
        print(f"{out.name}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
