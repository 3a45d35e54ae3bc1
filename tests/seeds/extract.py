#!/usr/bin/env python3
"""
Cut the fuzzing seeds in this directory out of the real fixture dumps
(vmcores/dumps.tar.zst, a 6.12.117 guest under QEMU):

    python3 tests/seeds/extract.py

- ``elfcorehdr-<scenario>.bin``: the used bytes of the loaded elfcorehdr
  (kernel-written for kexec_file_load, kexec-tools-written for kexec_load),
  and ``elfcorehdr-kdump_memadd-vmcore.bin``, the ELF header and program
  headers of the kdump-written vmcore itself.
- ``purgatory-blob.bin.xz``: the kernel's ``kexec_purgatory`` ELF.
- ``purgatory-<scenario>.bin.xz``, ``boot-params-<scenario>.bin.xz``: the
  first ``bufsz`` bytes of those segments (file_base: loaded by the kernel;
  load_hotplug_memadd: by kexec-tools with --hotplug).
- ``vmcore-head-<scenario>.bin.xz``: the ELF header, program headers and
  notes of a kdump-written (kdump_memadd) and a QEMU-written (file_base)
  vmcore, up to the end of the last note.
- ``image-<scenario>.json``: the crash image those segments belong to, as
  drgn_crashhp's reader saw it, so the fuzz harness can rebuild it.
- ``flattened-v6.1-kdump_mdf_memadd.bin.xz`` (only where makedumpfile is
  installed): the 6.1 makedumpfile capture made flattened by makedumpfile
  itself (``makedumpfile -F -c -d 31``, kdump-tools' command), cut to its
  flat header and the records of the kdump header, sub-header, notes and
  both bitmaps (page data dropped), in their stream order, with the end
  marker.

xz keeps each file at a few KiB.
"""

from __future__ import annotations

import json
import lzma
import sys
from pathlib import Path

import drgn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "vmcores"))

import unpack  # noqa: E402

from drgn_crashhp.facts import Role  # noqa: E402
from drgn_crashhp.kernel.elfcorehdr import decode_elfcorehdr  # noqa: E402
from drgn_crashhp.read.image import read_kimage  # noqa: E402
from drgn_crashhp.render.json import jsonable  # noqa: E402
from tests.support import flat  # noqa: E402


def _program(name: str) -> drgn.Program:
    prog = drgn.Program()
    prog.set_core_dump(str(unpack.dump_path(name)))
    prog.load_debug_info([str(unpack.vmlinux_path())])
    return prog


def _xz(path: Path, data: bytes) -> None:
    path.write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def main() -> int:
    for name in ("file_base", "file_memadd", "load_hotplug_memadd"):
        prog = _program(name)
        image = read_kimage(prog)
        assert image is not None and image.elfcorehdr is not None
        seg = image.elfcorehdr
        data = prog.read(seg.mem, min(seg.memsz, 0x10000), True)
        hdr = decode_elfcorehdr(data, seg.memsz)
        (HERE / f"elfcorehdr-{name}.bin").write_bytes(data[: hdr.used])
        if name == "file_memadd":
            continue
        for role, stem in (
            (Role.PURGATORY, "purgatory"),
            (Role.BOOT_PARAMS, "boot-params"),
        ):
            s = image.by_role(role)
            assert s is not None
            _xz(HERE / f"{stem}-{name}.bin.xz", prog.read(s.mem, s.bufsz, True))
        (HERE / f"image-{name}.json").write_text(
            json.dumps(jsonable(image), indent=1) + "\n"
        )
        if name == "file_base":
            size_at = prog.symbol("kexec_purgatory_size").address
            size = int.from_bytes(prog.read(size_at, 8), "little")
            _xz(
                HERE / "purgatory-blob.bin.xz",
                prog.read(prog.symbol("kexec_purgatory").address, size),
            )
    for name in ("kdump_memadd", "file_base"):
        with open(unpack.dump_path(name), "rb") as f:
            head = f.read(0x10000)
        hdr = decode_elfcorehdr(head)
        if name == "kdump_memadd":
            (HERE / "elfcorehdr-kdump_memadd-vmcore.bin").write_bytes(head[: hdr.used])
        # The dump file's own headers and notes, for vmcore.read_dump_headers.
        end = max(n.offset + n.size for n in hdr.notes)
        _xz(HERE / f"vmcore-head-{name}.bin.xz", head[:end])
    if flat.makedumpfile():
        _flattened_seed("v6.1/kdump_mdf_memadd")
    return 0


def _flattened_seed(name: str) -> None:
    import struct
    import tempfile

    gen, scenario = unpack.split_name(name)
    with tempfile.TemporaryDirectory() as tmp:
        stream = flat.make_flattened(
            unpack.dump_path(scenario, gen), Path(tmp) / "dump.flat"
        ).read_bytes()
    image = flat.rearranged(stream, 0, 1 << 20)
    block_size, sub_hdr_size, bitmap_blocks = struct.unpack_from("<iiI", image, 428)
    below = (1 + sub_hdr_size + bitmap_blocks) * block_size
    stem = name.replace("/", "-")
    _xz(HERE / f"flattened-{stem}.bin.xz", flat.metadata_seed(stream, below))


if __name__ == "__main__":
    sys.exit(main())
