#!/usr/bin/env python3
"""Write the member lists of the kexec/crash structures of one kernel, read from its DWARF
with drgn, so that synthetic layouts can be built from what the kernel really had.

    dump-layouts.py VMLINUX_DEBUG CORE OUT.json

CORE is any dump of that kernel (drgn 0.3.0 binds a vmlinux debug file to the kernel of a
core; the core only identifies the kernel, the types come from the debug file).

For each struct: size and members (name, offset in bytes, bit_offset when not byte aligned,
type name, size; members of anonymous structs/unions are listed with their absolute offset and
the path of the anonymous member in "via"). Also the type of each global that the crash
checks read (null when the kernel does not have it) and a few enums/constants."""

import json
import sys

import drgn

STRUCTS = [
    "kimage",
    "kimage_arch",
    "kexec_segment",
    "kexec_sha_region",
    "purgatory_info",
    "kexec_buf",
    "crash_mem",
    "crash_mem_range",
    "range",
    "resource",
    "elf64_hdr",
    "elf64_phdr",
    "kexec_file_ops",
    "kimage_hotplug",
    "kho_in",
    "kho_out",
    "kimage_kho",
    "memory_notify",
    "cma",
    "dm_crypt_key",
    "keys_header",
    "crash_hotplug_info",
    "note_buf_t",
    "elf_prstatus",
    "vmcoreinfo_data",
]
VARIABLES = [
    "kexec_crash_image",
    "kexec_image",
    "crashk_res",
    "crashk_low_res",
    "crashk_cma_ranges",
    "crashk_cma_cnt",
    "kexec_purgatory",
    "kexec_purgatory_size",
    "crash_notes",
    "vmcoreinfo_note",
    "vmcoreinfo_data",
    "vmcoreinfo_size",
    "kexec_lock",
    "__kexec_lock",
    "kexec_in_progress",
    "kexec_file_dbg_print",
    "crash_hotplug_lock",
    "kexec_trylock",
    "memory_blocks",
    "iomem_resource",
    "elfcorehdr_addr",
    "elfcorehdr_size",
    "kexec_crash_loaded",
    "crash_cpuhp_state",
    "is_dm_key_reused",
    "key_count",
    "keys_header",
    "kho_out",
    "kho_in",
]
ENUMS = ["kexec_file_image_type", "kexec_type", "crash_hotplug_action", "kho_ser_flags"]


def tname(t):
    try:
        return t.type_name()
    except Exception:
        return str(t.kind)


def tsize(t):
    try:
        return drgn.sizeof(t)
    except Exception:
        return None


def members(t, base=0, via=""):
    out = []
    for m in t.members:
        off_bits = base + m.bit_offset
        mt = m.type
        ut = mt.unqualified()
        while ut.kind == drgn.TypeKind.TYPEDEF:
            ut = ut.type
        if m.name is None and ut.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            out += members(
                ut,
                off_bits,
                via
                + ("." if via else "")
                + ("<anon %s @%d>" % (ut.kind.name.lower(), off_bits // 8)),
            )
            continue
        e = {
            "name": m.name,
            "offset": off_bits // 8,
            "type": tname(mt),
            "size": tsize(mt),
        }
        if ut.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION) and ut.tag is None:
            e["members"] = members(
                ut
            )  # a named member of an anonymous struct type (7.x kimage.kho)
        if off_bits % 8 or m.bit_field_size:
            e["bit_offset"] = off_bits
            e["bit_field_size"] = m.bit_field_size
        if via:
            e["via"] = via
        out.append(e)
    return out


def main():
    vmlinux, core, out = sys.argv[1], sys.argv[2], sys.argv[3]
    prog = drgn.Program()
    prog.set_core_dump(core)
    prog.load_debug_info([vmlinux])
    res = {
        "release": prog["init_uts_ns"].name.release.string_().decode(),
        "source": "DWARF of the lab kernel's vmlinux (drgn %s)" % drgn.__version__,
        "structs": {},
        "variables": {},
        "enums": {},
    }
    for s in STRUCTS:
        try:
            t = prog.type("struct " + s) if s not in ("note_buf_t",) else prog.type(s)
        except LookupError:
            res["structs"][s] = None
            continue
        if not t.is_complete():
            res["structs"][s] = {"incomplete": True}
            continue
        ut = t
        while ut.kind == drgn.TypeKind.TYPEDEF:
            ut = ut.type
        res["structs"][s] = {
            "size": tsize(ut),
            "kind": ut.kind.name.lower(),
            "members": members(ut)
            if ut.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION)
            else None,
        }
    for v in VARIABLES:
        try:
            o = prog.variable(v)
            res["variables"][v] = {"type": tname(o.type_), "size": tsize(o.type_)}
        except (LookupError, KeyError):
            res["variables"][v] = None
    for e in ENUMS:
        try:
            t = prog.type("enum " + e)
            res["enums"][e] = (
                {name: val for name, val in t.enumerators} if t.enumerators else None
            )
        except LookupError:
            res["enums"][e] = None
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
