"""
A file_load crash image laid out as bzImage64_load() lays it out, for the
synthetic kernels of the tests: the segment addresses, the boot params, the
elfcorehdr and ``machine(layout)``, a Machine of one hotplug layout.
"""

from __future__ import annotations

import struct

from tests.support.synth import (
    Machine,
    Seg,
    elf_core_header,
    note,
    ram,
    text,
)

CRASHK = (0x2F000000, 0x3EFFFFFF)
ELF_MEM = 0x2F000000
PURG_MEM = 0x3E000000
PARAMS_MEM = 0x3E010000
KERNEL_MEM = 0x30000000
INITRD_MEM = 0x3D000000


def boot_params() -> bytes:
    """struct boot_params with the command line after it, as the kernel's
    bzImage64_load() lays them out."""
    data = bytearray(0x2000)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<I", data, 0x228, PARAMS_MEM + 0x1000)  # cmd_line_ptr
    cmdline = f"elfcorehdr={ELF_MEM:#x} console=ttyS0\0".encode()
    data[0x1000 : 0x1000 + len(cmdline)] = cmdline
    return bytes(data)


def header(cpus=(0, 1, 2, 3)) -> bytes:
    m = Machine()
    return elf_core_header(
        [note(m.crash_notes_phys(c)) for c in cpus]
        + [
            note(0x3020000, 4132),
            text(),
            ram(0x100000, 0x2EFFFFFF),
            ram(0x3F000000, 0x3FFDFFFF),
        ]
    )


def file_segments(hdr: bytes | None = None) -> list[Seg]:
    """bzImage64_load()'s order: elfcorehdr, purgatory, params, kernel, initrd."""
    return [
        Seg(ELF_MEM, 0x71000, hdr if hdr is not None else header()),
        Seg(PURG_MEM, 0x5000, b"\xcc" * 0x100),
        Seg(PARAMS_MEM, 0x3000, boot_params()),
        Seg(KERNEL_MEM, 0x1000000, b"\x90" * 0x100),
        Seg(INITRD_MEM, 0x100000, b"070701" + bytes(100)),
    ]


def machine(layout: str, **kw) -> Machine:
    defaults = dict(
        layout=layout,
        segments=file_segments(),
        start=PURG_MEM + 0x40,
        elfcorehdr_index=0 if layout in ("6.6", "6.10") else -1,
        elf_load_addr=ELF_MEM,
    )
    defaults.update(kw)
    return Machine(**defaults)
