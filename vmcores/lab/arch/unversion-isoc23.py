#!/usr/bin/env python3
"""Let trixie's kexec (ppc64el) run with bookworm's glibc 2.36.

The archive this lab reaches lists trixie's ppc64el libc6 but does not serve it, and
bookworm's libc6 lacks the C23 aliases (__isoc23_strtoul, ...) that trixie's kexec binds at
version GLIBC_2.38.  This rewrites a copy of the executable so that each undefined
`__isoc23_X` symbol names plain `X` (its .dynstr offset + 9: the tail of the same string) as
an unversioned reference, and turns the now unused GLIBC_2.38 requirement into a second
GLIBC_2.17 one (name and hash; the base version of ppc64le, which 2.36 has).  The only behaviour lost is C23's "0b" prefix in
strtol-style parsing, which kexec does not use.

    unversion-isoc23.py IN OUT
"""

import struct
import sys


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    b = bytearray(open(src, "rb").read())
    assert b[:4] == b"\x7fELF" and b[4] == 2 and b[5] == 1, "ELF64 LE only"
    (e_shoff,) = struct.unpack_from("<Q", b, 0x28)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", b, 0x3A)
    secs = []
    for i in range(e_shnum):
        name, typ, _fl, _addr, off, size, link, _info, _al, entsize = (
            struct.unpack_from("<IIQQQQIIQQ", b, e_shoff + i * e_shentsize)
        )
        secs.append((name, typ, off, size, link, entsize))
    shstr_off = secs[e_shstrndx][2]

    def sname(s: tuple) -> str:
        n = s[0]
        return bytes(b[shstr_off + n : b.index(0, shstr_off + n)]).decode()

    by = {sname(s): s for s in secs}
    dynsym, dynstr = by[".dynsym"], by[".dynstr"]
    versym, verneed = by[".gnu.version"], by[".gnu.version_r"]

    def string(off: int) -> bytes:
        p = dynstr[2] + off
        return bytes(b[p : b.index(0, p)])

    n = dynsym[3] // 24
    changed = []
    for i in range(n):
        st_name, _info, _other, shndx = struct.unpack_from(
            "<IBBH", b, dynsym[2] + i * 24
        )
        nm = string(st_name)
        if nm.startswith(b"__isoc23_") and shndx == 0:
            struct.pack_into("<I", b, dynsym[2] + i * 24, st_name + 9)
            struct.pack_into("<H", b, versym[2] + 2 * i, 1)  # VER_NDX_GLOBAL
            changed.append(nm.decode())
    # Elf64_Verneed: vn_version, vn_cnt, vn_file, vn_aux, vn_next
    # Elf64_Vernaux: vna_hash, vna_flags, vna_other, vna_name, vna_next
    base_hash = base_name = None
    off = verneed[2]
    while True:  # first pass: the GLIBC_2.17 entry
        _v, cnt, _file, aux, nxt = struct.unpack_from("<HHIII", b, off)
        a = off + aux
        for _ in range(cnt):
            h, _f, _o, name, anext = struct.unpack_from("<IHHII", b, a)
            if string(name) == b"GLIBC_2.17":
                base_hash, base_name = h, name
            a += anext
        if not nxt:
            break
        off += nxt
    assert base_name is not None, "no GLIBC_2.17 requirement"
    off = verneed[2]
    while True:
        _v, cnt, _file, aux, nxt = struct.unpack_from("<HHIII", b, off)
        a = off + aux
        for _ in range(cnt):
            _h, _flags, _o, name, anext = struct.unpack_from("<IHHII", b, a)
            if string(name) == b"GLIBC_2.38":
                struct.pack_into("<I", b, a, base_hash)
                struct.pack_into("<I", b, a + 8, base_name)
                changed.append("GLIBC_2.38 -> GLIBC_2.17")
            a += anext
        if not nxt:
            break
        off += nxt
    open(dst, "wb").write(b)
    print("patched:", ", ".join(changed))


if __name__ == "__main__":
    main()
