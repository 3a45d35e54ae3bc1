#!/usr/bin/env python3
"""Open every dump of one architecture with drgn 0.3.0 and compare kexec_crash_image's
segments with the ground truth (sanity check of the fixtures, independent of drgn_crashhp).

    lab/arch/check-drgn.py ppc64le|arm64 [DUMP_DIR [VMLINUX [SCENARIO...]]]

DUMP_DIR defaults to the lab cache ($ALAB/ARCH/dumps), VMLINUX to the Debian -dbg vmlinux
that lab/arch/setup.sh extracted ($ALAB/ARCH/vmlinux.dbg)."""

import json
import os
import sys

import drgn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from scenario import SCENARIOS, cache_root  # noqa: E402

arch = sys.argv[1]
b = os.path.join(cache_root(), arch)
dump_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(b, "dumps")
vmlinux = sys.argv[3] if len(sys.argv) > 3 else os.path.join(b, "vmlinux.dbg")
jdir = os.path.join(os.path.dirname(os.path.dirname(HERE)), arch)
bad = 0
for name in sys.argv[4:] or SCENARIOS[arch]:
    if not os.path.exists(os.path.join(jdir, name + ".json")):
        print("BAD  %-16s no ground truth JSON" % name)
        bad += 1
        continue
    t = json.load(open(os.path.join(jdir, name + ".json")))
    prog = drgn.Program()
    prog.set_core_dump(os.path.join(dump_dir, t["dump"]))
    ok = bool(prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL)
    prog.load_debug_info([vmlinux])
    rel = prog["init_uts_ns"].name.release.string_().decode()
    line = "%-16s linux=%s release=%s" % (name, ok, rel)
    if t["dump_producer"].startswith("kdump"):
        print(line + " (kdump: no crash image)")
        continue
    img = prog["kexec_crash_image"]
    if not img:
        line += " kexec_crash_image=NULL"
        ok = ok and not t["expected"]["crash_loaded"]
    else:
        segs = [
            {
                "index": i,
                "bufsz": hex(img.segment[i].bufsz),
                "mem": hex(img.segment[i].mem),
                "memsz": hex(img.segment[i].memsz),
            }
            for i in range(int(img.nr_segments))
        ]
        same = segs == t["segments"]
        ok = ok and same
        line += " segments=%s" % ("same" if same else "DIFFER")
        # arm64 (no CRASH_HOTPLUG) has no hotplug members in struct kimage
        for f in (
            "hotplug_support",
            "elfcorehdr_index",
            "elfcorehdr_updated",
            "file_mode",
        ):
            try:
                line += " %s=%d" % (f, int(img.member_(f)))
            except LookupError:
                line += " %s=absent" % f
    print(("OK   " if ok else "BAD  ") + line)
    bad += not ok
sys.exit(1 if bad else 0)
