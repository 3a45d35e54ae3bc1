"""
A real panic on the Debian 13 guest (issue 18, deliverable 5).

vmcores/lab/debian_panic.py boots the image, lets kdump-tools load the crash
kernel with its defaults, hot-adds a 128 MiB DIMM, panics with sysrq-c, lets
kdump-tools-dump.service save /var/crash/<stamp>/dump.<stamp> and reboot,
and copies /var/crash out with the ground truth (truth.json). This test runs
it (once per image; the result is cached) and checks what kdump-tools wrote.
drgn-crashhp's verdict on the dump is not asserted until the package reads
makedumpfile's flattened format: kdump-tools writes it with -F.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.debian import image_or_skip

pytestmark = pytest.mark.slow

FLAT_SIGNATURE = b"makedumpfile\0\0\0\0"  # MAKEDUMPFILE_SIGNATURE, 16 bytes


@pytest.mark.parametrize("gen", ["6.12", "7.3"])
def test_kdump_tools_writes_a_flattened_dump(gen: str) -> None:
    img = image_or_skip()
    out = Path(img) / f"panic-{gen}"
    if not (out / "truth.json").exists():
        subprocess.run(
            [sys.executable, str(ROOT / "vmcores" / "lab" / "debian_panic.py"), gen],
            check=True,
            timeout=7200,
        )
    truth = json.loads((out / "truth.json").read_text())
    dumps = sorted((out / "var-crash").rglob("dump.*"))
    assert dumps, truth["files"]
    with open(dumps[0], "rb") as f:
        head = f.read(16)
    # kdump-tools' default MAKEDUMP_ARGS "-c -d 31", written with -F.
    assert head == FLAT_SIGNATURE, head
    assert truth["dimm"]["range"][0] >= 1 << 32
    assert os.path.getsize(dumps[0]) > 1 << 20
