#!/usr/bin/env python3
"""
Cut the ppc64le and arm64 kexec-tools purgatory seeds out of the real
fixture dumps (vmcores/ppc64le, vmcores/arm64; Debian 6.12 kernels,
kexec-tools 2.0.29):

    python3 tests/seeds/extract_kexec_tools.py

For ``ppc_hp_base`` (loaded with ``kexec -p --hotplug``) and ``arm_base``:
``purgatory-<scenario>.bin.xz``, the purgatory segment's first ``bufsz``
bytes (its sha256_regions, sha256_digest and entry variables as the loader
wrote them), and ``image-<scenario>.json``, the crash image as
drgn_crashhp's reader saw it, so the fuzz harness can rebuild both.
"""

from __future__ import annotations

import json
import lzma
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from drgn_crashhp.read import read_facts  # noqa: E402
from drgn_crashhp.render.json import jsonable  # noqa: E402
from drgn_crashhp.target import open_program  # noqa: E402
from vmcores import unpack  # noqa: E402

SCENARIOS = (("ppc64le-6.12", "ppc_hp_base"), ("arm64-6.12", "arm_base"))


def main() -> int:
    for gen, name in SCENARIOS:
        prog = open_program(
            str(unpack.dump_path(name, gen)),
            default_symbols=False,
            say=lambda _: None,
        )
        facts = read_facts(prog, digest=False)
        image, p = facts.image, facts.purgatory
        if image is None or p is None or p.segment is None:
            print(f"{name}: no crash image or purgatory", file=sys.stderr)
            return 1
        seg = image.segments[p.segment]
        data = prog.read(seg.mem, seg.bufsz, True)
        (HERE / f"purgatory-{name}.bin.xz").write_bytes(lzma.compress(data))
        (HERE / f"image-{name}.json").write_text(
            json.dumps(jsonable(image), indent=1) + "\n"
        )
        print(f"{name}: purgatory {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
