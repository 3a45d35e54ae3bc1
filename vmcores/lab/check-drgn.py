#!/usr/bin/env python3
"""Open every dump of one kernel generation with drgn and print kexec_crash_image's hotplug
fields (sanity check of the fixtures, independent of drgn_crashhp).

    check-drgn.py GEN [DUMP_DIR [VMLINUX]]

GEN is 6.1, 6.12 or 7.3; DUMP_DIR and VMLINUX default to the lab build folder of GEN
($DUMP_DIR / $BUILD/vmlinux.debug, see lab-env.sh)."""

import json
import os
import sys

import drgn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from scenario import BY_GEN, build_dir, json_dir_for  # noqa: E402

gen = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GEN", "6.12")
build = build_dir(gen)
dump_dir = (
    sys.argv[2]
    if len(sys.argv) > 2
    else (os.environ.get("DUMP_DIR") or os.path.join(build, "dumps"))
)
vmlinux = sys.argv[3] if len(sys.argv) > 3 else os.path.join(build, "vmlinux.debug")
jdir = json_dir_for(gen)
bad = 0
# this generation's scenarios (not every JSON lying in the folder: a stale one has no dump)
for name in sorted(BY_GEN[gen]):
    t = json.load(open(os.path.join(jdir, name + ".json")))
    path = os.path.join(dump_dir, t["dump"])
    prog = drgn.Program()
    prog.set_core_dump(path)
    prog.load_debug_info([vmlinux])
    img = prog["kexec_crash_image"]
    line = "%-24s release=%s " % (
        t["scenario"],
        prog["init_uts_ns"].name.release.string_().decode(),
    )
    if img.value_() == 0:
        line += "kexec_crash_image=NULL"
        ok = not t["expected"]["crash_loaded"]
    else:
        extra = []
        for f in (
            "hotplug_support",
            "elfcorehdr_index",
            "elfcorehdr_updated",
            "hp_action",
            "dm_crypt_keys_addr",
            "dm_crypt_keys_sz",
        ):
            try:
                extra.append("%s=%#x" % (f, int(getattr(img, f).value_())))
            except (AttributeError, LookupError):
                pass
        line += "nr_segments=%d file_mode=%d elf_load_addr=%#x %s" % (
            img.nr_segments.value_(),
            img.file_mode.value_(),
            img.elf_load_addr.value_(),
            " ".join(extra),
        )
        segs = [
            (int(img.segment[i].mem), int(img.segment[i].memsz))
            for i in range(int(img.nr_segments))
        ]
        want = sorted((int(s["mem"], 16), int(s["memsz"], 16)) for s in t["segments"])
        ok = t["expected"]["crash_loaded"] and sorted(segs) == want
        if not ok:
            line += " SEGMENTS DIFFER: %s vs %s" % (segs, want)
    print(line, "OK" if ok else "MISMATCH")
    bad += not ok
sys.exit(1 if bad else 0)
