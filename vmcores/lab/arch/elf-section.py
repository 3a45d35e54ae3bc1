#!/usr/bin/env python3
"""Copy one section of an ELF64 little-endian file (any machine) to a file:
elf-section.py ELF SECTION OUT (e.g. the kernel's .BTF; host objcopy knows only x86)."""

import struct
import sys


def main() -> None:
    path, want, out = sys.argv[1:4]
    with open(path, "rb") as f:
        eh = f.read(64)
        assert eh[:4] == b"\x7fELF" and eh[4] == 2 and eh[5] == 1, "ELF64 LE only"
        (shoff,) = struct.unpack_from("<Q", eh, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", eh, 0x3A)
        f.seek(shoff)
        raw = f.read(shentsize * shnum)
        secs = [struct.unpack_from("<IIQQQQ", raw, i * shentsize) for i in range(shnum)]
        f.seek(secs[shstrndx][4])
        names = f.read(secs[shstrndx][5])
        for name, _typ, _flags, _addr, off, size in secs:
            if names[name : names.index(b"\0", name)].decode() == want:
                f.seek(off)
                data = f.read(size)
                open(out, "wb").write(data)
                print("%s: %s %d bytes" % (out, want, len(data)))
                return
    sys.exit("%s: no section %s" % (path, want))


if __name__ == "__main__":
    main()
