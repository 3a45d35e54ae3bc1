#!/usr/bin/env python3
"""Open every dump with drgn and print kexec_crash_image's hotplug fields (sanity check of
the fixtures, independent of drgn_crashhp)."""
import json
import os
import sys

import drgn

dump_dir = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/crashhp-dumps"
vmlinux = sys.argv[2] if len(sys.argv) > 2 else "/work/lab-build/vmlinux.debug"
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bad = 0
for j in sorted(f for f in os.listdir(here) if f.endswith(".json")):
    t = json.load(open(os.path.join(here, j)))
    path = os.path.join(dump_dir, t["dump"])
    prog = drgn.Program()
    prog.set_core_dump(path)
    prog.load_debug_info([vmlinux])
    img = prog["kexec_crash_image"]
    line = "%-20s release=%s " % (t["scenario"], prog["init_uts_ns"].name.release.string_().decode())
    if img.value_() == 0:
        line += "kexec_crash_image=NULL"
        ok = not t["expected"]["crash_loaded"]
    else:
        line += ("nr_segments=%d file_mode=%d hotplug_support=%d elfcorehdr_index=%d "
                 "elfcorehdr_updated=%d hp_action=%d elf_load_addr=%#x" % (
                     img.nr_segments.value_(), img.file_mode.value_(), img.hotplug_support.value_(),
                     img.elfcorehdr_index.value_(), int(img.elfcorehdr_updated.value_()),
                     img.hp_action.value_(), img.elf_load_addr.value_()))
        segs = [(int(img.segment[i].mem), int(img.segment[i].memsz)) for i in range(int(img.nr_segments))]
        want = sorted((int(s["mem"], 16), int(s["memsz"], 16)) for s in t["segments"])
        ok = t["expected"]["crash_loaded"] and sorted(segs) == want
        if not ok:
            line += " SEGMENTS DIFFER: %s vs %s" % (segs, want)
    print(line, "OK" if ok else "MISMATCH")
    bad += not ok
sys.exit(1 if bad else 0)
