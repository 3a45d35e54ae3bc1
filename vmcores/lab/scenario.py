#!/usr/bin/env python3
"""Run the drgn-crashhp vmcore scenarios and write their ground truth.  Stdlib only.

    scenario.py [--dump-dir DIR] [--json-dir DIR] [--kernel bzImage] [--initrd cpio] [SCENARIO...]

Every scenario boots a fresh TCG guest (lab/guest.py), loads (or not) a crash kernel,
hot-plugs through QMP, records the guest's own view of the state, then takes a QEMU
`dump-guest-memory` (ELF, paging=false) into DUMP_DIR/<scenario>.elf and writes
JSON_DIR/<scenario>.json.  Nothing here uses the project's own package (drgn_crashhp):
the ELF reading below is the recipe's own minimal parser (struct module).
"""

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import Guest, GuestError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VMCORES = os.path.dirname(HERE)
BUILD = os.environ.get("BUILD", "/work/lab-build")

GUEST_MEM = "128M,slots=4,maxmem=1G"  # 80M: crashkernel=24M not reserved in 5/12 KASLR boots, 96M: 1/25 fails, 128M: 37/37 ok
GUEST_SMP = "2,sockets=4,maxcpus=4"
APPEND = "console=ttyS0 crashkernel=24M memhp_default_state=online_movable"
CAPTURE_APPEND = "console=ttyS0 acpi_no_memhotplug irqpoll nr_cpus=1 reset_devices"
KEXEC_FILE_CMD = 'kexec -s -p -d /bzImage --initrd=/capture.cpio --append="%s"' % CAPTURE_APPEND
KEXEC_LOAD_CMD = 'kexec -c -p -d /bzImage --initrd=/capture.cpio --append="%s"' % CAPTURE_APPEND
KEXEC_LOAD_HP_CMD = 'kexec -c -p -d --hotplug /bzImage --initrd=/capture.cpio --append="%s"' % CAPTURE_APPEND
DIMM_SIZE = 128 << 20
MiB = 1 << 20

# ------------------------------------------------------------------ tiny ELF reader

PT_LOAD, PT_NOTE = 1, 4


def parse_elf64(read):
    """read(offset, size) -> bytes.  Returns (ehdr dict, [phdr dicts])."""
    eh = read(0, 64)
    if eh[:4] != b"\x7fELF" or eh[4] != 2 or eh[5] != 1:
        raise ValueError("not a little-endian ELF64 header: %r" % eh[:16])
    (e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize,
     e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", eh, 16)
    ehdr = dict(e_type=e_type, e_machine=e_machine, e_phoff=e_phoff, e_phnum=e_phnum,
                e_phentsize=e_phentsize, e_ehsize=e_ehsize)
    phdrs = []
    raw = read(e_phoff, e_phnum * e_phentsize)
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align = \
            struct.unpack_from("<IIQQQQQQ", raw, i * e_phentsize)
        phdrs.append(dict(p_type=p_type, p_flags=p_flags, p_offset=p_offset, p_vaddr=p_vaddr,
                          p_paddr=p_paddr, p_filesz=p_filesz, p_memsz=p_memsz))
    return ehdr, phdrs


class DumpFile:
    """Physical-memory access to an ELF vmcore (QEMU dump-guest-memory or kdump)."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")
        self.ehdr, self.phdrs = parse_elf64(self._read_file)
        self.loads = [p for p in self.phdrs if p["p_type"] == PT_LOAD]

    def _read_file(self, off, size):
        self.f.seek(off)
        return self.f.read(size)

    def phys_to_offset(self, paddr):
        for p in self.loads:
            if p["p_paddr"] <= paddr < p["p_paddr"] + p["p_filesz"]:
                return p["p_offset"] + paddr - p["p_paddr"]
        return None

    def read_phys(self, paddr, size):
        out = b""
        while size:
            off = self.phys_to_offset(paddr)
            if off is None:
                raise ValueError("physical 0x%x not in dump" % paddr)
            p = next(p for p in self.loads if p["p_paddr"] <= paddr < p["p_paddr"] + p["p_filesz"])
            n = min(size, p["p_paddr"] + p["p_filesz"] - paddr)
            out += self._read_file(off, n)
            paddr += n
            size -= n
        return out

    def end_of_segments(self):
        return max(p["p_offset"] + p["p_filesz"] for p in self.phdrs)

    def close(self):
        self.f.close()


KERNEL_MAP_START = 0xffffffff80000000


def parse_elfcorehdr(dump, paddr):
    ehdr, phdrs = parse_elf64(lambda off, size: dump.read_phys(paddr + off, size))
    notes = [[p["p_paddr"], p["p_memsz"]] for p in phdrs if p["p_type"] == PT_NOTE]
    text = [p for p in phdrs if p["p_type"] == PT_LOAD and p["p_vaddr"] >= KERNEL_MAP_START]
    ram = [[p["p_paddr"], p["p_paddr"] + p["p_memsz"] - 1] for p in phdrs
           if p["p_type"] == PT_LOAD and p["p_vaddr"] < KERNEL_MAP_START]
    return {
        "paddr": paddr,
        "e_phnum": ehdr["e_phnum"],
        "e_type": ehdr["e_type"],
        "size": 64 + 56 * ehdr["e_phnum"],
        "notes": notes,
        "kernel_text": [[p["p_paddr"], p["p_vaddr"], p["p_memsz"]] for p in text],
        "ram": ram,
        "phdrs": phdrs,
    }

# ------------------------------------------------------------------ /proc/iomem model


def parse_iomem(text):
    """-> list of (depth, start, end, name) in file order (pre-order)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^( *)([0-9a-f]+)-([0-9a-f]+) : (.*)$", line)
        if m:
            out.append((len(m.group(1)) // 2, int(m.group(2), 16), int(m.group(3), 16), m.group(4)))
    return out


def system_ram_walk(iomem):
    """Emulate walk_system_ram_res() on /proc/iomem text: busy 'System RAM' resources,
    pre-order, without descending into a match.  (/proc/iomem does not print flags; every
    'System RAM*' entry in this guest is IORESOURCE_SYSTEM_RAM|BUSY.)"""
    res = []
    cursor = 0
    skip_depth = None
    for depth, start, end, name in parse_iomem(iomem):
        if skip_depth is not None and depth > skip_depth:
            continue
        skip_depth = None
        if end < cursor:
            continue
        if name.startswith("System RAM"):
            res.append([max(cursor, start), end])
            cursor = end + 1
            skip_depth = depth
    return res


def subtract(ranges, cut):
    out = []
    for s, e in ranges:
        cs, ce = cut
        if ce < s or cs > e:
            out.append([s, e])
            continue
        if s < cs:
            out.append([s, cs - 1])
        if e > ce:
            out.append([ce + 1, e])
    return out


def kernel_header_ram(iomem, crash_region):
    """RAM that a header built now by the kernel (prepare_elf_headers) would describe."""
    r = system_ram_walk(iomem)
    r = subtract(r, [0, MiB - 1])
    if crash_region:
        r = subtract(r, crash_region)
    return r


def range_diff(a, b):
    """Parts of ranges a not covered by ranges b (inclusive ends)."""
    out = []
    for rng in a:
        parts = [rng]
        for c in b:
            parts = [q for p in parts for q in subtract([p], c)]
        out += parts
    return out


def clip_1m(ranges):
    return [[max(s, MiB), e] for s, e in ranges if e >= MiB]

# ------------------------------------------------------------------ guest state


def hx(v):
    return "0x%x" % v


def collect_state(g):
    st = {}
    st["proc_iomem"] = g.read("/proc/iomem")
    cpu = "/sys/devices/system/cpu"
    st["cpu"] = {k: g.read("%s/%s" % (cpu, k)).strip() for k in ("possible", "present", "online")}
    st["cpu"]["crash_hotplug"] = g.read(cpu + "/crash_hotplug").strip()
    notes = {}
    out = g.check("for d in %s/cpu[0-9]*; do echo ${d##*/} $(cat $d/crash_notes) $(cat $d/crash_notes_size)"
                  " $(cat $d/online 2>/dev/null || echo -); done" % cpu)
    for line in out.splitlines():
        name, addr, size, online = line.split()
        notes[name] = {"crash_notes": "0x" + addr, "crash_notes_size": int(size),
                       "online": None if online == "-" else online == "1"}
    st["cpu"]["cpus"] = notes
    mem = "/sys/devices/system/memory"
    st["memory"] = {"block_size_bytes": "0x" + g.read(mem + "/block_size_bytes").strip(),
                    "crash_hotplug": g.read(mem + "/crash_hotplug").strip(),
                    "auto_online_blocks": g.read(mem + "/auto_online_blocks").strip()}
    blocks = {}
    out = g.check("for d in %s/memory[0-9]*; do echo ${d##*/} $(cat $d/state) $(cat $d/phys_index); done" % mem)
    for line in out.splitlines():
        if line.strip():
            name, state, idx = line.split()
            blocks[name] = {"state": state, "phys_index": "0x" + idx}
    st["memory"]["blocks"] = blocks
    ks = "/sys/kernel"
    st["sys_kernel"] = {k: g.read("%s/%s" % (ks, k)).strip()
                        for k in ("kexec_crash_loaded", "kexec_crash_size", "crash_elfcorehdr_size",
                                  "vmcoreinfo", "kexec_loaded")}
    st["proc_cmdline"] = g.read("/proc/cmdline").strip()
    st["dmesg_kexec"] = [l for l in g.check("dmesg").splitlines()
                         if re.search(r"kexec|crash|segment\[|elfcorehdr|Crash|hot-?add|hotplug", l)]
    return st


def crash_region(iomem):
    for _depth, s, e, name in parse_iomem(iomem):
        if name == "Crash kernel":
            return [s, e]
    return None


SEG_RE = re.compile(r"kexec_file: segment\[(\d+)\]: buf=0x[0-9a-f]+ bufsz=0x([0-9a-f]+) "
                    r"mem=0x([0-9a-f]+) memsz=0x([0-9a-f]+)")


def segments_from_dmesg(lines):
    segs = []
    for l in lines:
        m = SEG_RE.search(l)
        if m:
            segs.append({"index": int(m.group(1)), "bufsz": int(m.group(2), 16),
                         "mem": int(m.group(3), 16), "memsz": int(m.group(4), 16)})
    return segs


def segments_from_kexec_tools(out):
    """kexec-tools -d prints 'segment[i].mem:0x...' style lines (format checked below)."""
    segs = {}
    for m in re.finditer(r"segment\[(\d+)\]\.(buf|bufsz|mem|memsz)\s*[:=]\s*(0x[0-9a-fA-F]+|\d+)", out):
        segs.setdefault(int(m.group(1)), {"index": int(m.group(1))})[m.group(2)] = int(m.group(3), 0)
    res = []
    for i in sorted(segs):
        s = segs[i]
        s.pop("buf", None)
        res.append(s)
    return res


def segs_hex(segs):
    return [{k: (hx(v) if k != "index" else v) for k, v in s.items()} for s in segs]

# ------------------------------------------------------------------ scenarios


class Run:
    def __init__(self, name, args):
        self.name = name
        self.args = args
        self.truth = {"scenario": name, "hotplug_actions": [], "notes": []}
        self.disk = None

    def boot(self, disk=None, tries=5):
        for attempt in range(tries):
            g = Guest(self.args.work_dir, self.args.kernel, self.args.initrd, append=APPEND,
                      mem=GUEST_MEM, smp=GUEST_SMP, disk=disk, name=self.name)
            g.start()
            g.wait_ready(300)
            if g.read("/sys/kernel/kexec_crash_size").strip() != "0":
                self.truth["boot_attempts"] = attempt + 1
                return g
            g.close()
        raise GuestError("crashkernel=24M never reserved")

    def load(self, g, mode, hotplug=False):
        cmd = {"file_load": KEXEC_FILE_CMD, "kexec_load": KEXEC_LOAD_HP_CMD if hotplug else KEXEC_LOAD_CMD}[mode]
        status, out = g.run(cmd + " 2>&1", timeout=300)
        if status != 0:
            raise GuestError("kexec failed: %s\n%s" % (cmd, out))
        self.truth["load"] = {"mode": mode, "command": cmd, "hotplug_option": hotplug,
                              "kexec_output": out.splitlines()}
        if mode == "file_load":
            lines = [l for l in g.check("dmesg").splitlines() if re.search(r"kexec", l)]
            segs = segments_from_dmesg(lines)
            self.truth["load"]["kernel_debug_lines"] = lines
        else:
            segs = segments_from_kexec_tools(out)
        if not segs:
            raise GuestError("no segment table parsed from kexec debug output")
        self.segments = segs
        self.truth["segments"] = segs_hex(segs)
        if mode == "file_load":
            m = [re.search(r"Loaded ELF headers at 0x([0-9a-f]+) bufsz=0x([0-9a-f]+) memsz=0x([0-9a-f]+)", l)
                 for l in lines]
            m = [x for x in m if x]
            if m:
                self.truth["load"]["elf_headers"] = {"mem": "0x" + m[-1].group(1), "bufsz": "0x" + m[-1].group(2),
                                                     "memsz": "0x" + m[-1].group(3)}
            for what, rx in (("purgatory", r"Loaded purgatory at 0x([0-9a-f]+)"),
                             ("boot_params", r"Loaded boot_param, command line and misc at 0x([0-9a-f]+)"),
                             ("kernel", r"Loaded 64bit kernel at 0x([0-9a-f]+)"),
                             ("initrd", r"Loaded initrd at 0x([0-9a-f]+)")):
                mm = [re.search(rx, l) for l in lines]
                mm = [x for x in mm if x]
                if mm:
                    self.truth["load"].setdefault("segment_roles", {})[what] = "0x" + mm[-1].group(1)
            mm = [re.search(r"kexec_file_load: type:(\d+), start:0x([0-9a-f]+) head:0x[0-9a-f]+ flags:0x([0-9a-f]+)", l)
                  for l in lines]
            mm = [x for x in mm if x]
            if mm:
                self.truth["load"]["entry"] = "0x" + mm[-1].group(2)
                self.truth["load"]["kexec_file_flags"] = "0x" + mm[-1].group(3)
        return segs

    def add_dimm(self, g, idx=1):
        d = g.add_dimm(idx, DIMM_SIZE)
        rng = [d["addr"], d["addr"] + d["size"] - 1]
        # wait until its memory blocks are online (memhp_default_state=online_movable)
        bs = int(g.read("/sys/devices/system/memory/block_size_bytes").strip(), 16)
        blocks = ["memory%d" % b for b in range(d["addr"] // bs, (d["addr"] + d["size"]) // bs)]
        end = time.time() + 120
        while True:
            st, out = g.run("cat " + " ".join("/sys/devices/system/memory/%s/state" % b for b in blocks) + " 2>&1")
            if st == 0 and all(x == "online" for x in out.split()):
                break
            if time.time() > end:
                raise GuestError("DIMM blocks not online: %s" % out)
            if st == 0:
                for b, s in zip(blocks, out.split()):
                    if s == "offline":
                        g.run("echo online_movable > /sys/devices/system/memory/%s/state" % b)
            time.sleep(0.5)
        act = {"action": "memory_add", "qmp": ["object-add memory-backend-ram id=mem%d size=%d" % (idx, DIMM_SIZE),
                                               "device_add pc-dimm id=dimm%d memdev=mem%d" % (idx, idx)],
               "dimm": {"id": d["id"], "addr": hx(d["addr"]), "size": hx(d["size"]), "slot": d["slot"],
                        "range": [hx(rng[0]), hx(rng[1])]},
               "memory_blocks": blocks, "onlined_by": "memhp_default_state=online_movable"}
        self.truth["hotplug_actions"].append(act)
        return rng, blocks

    def remove_dimm(self, g, idx, blocks, rng):
        for b in blocks:
            g.check("echo offline > /sys/devices/system/memory/%s/state" % b)
        states = g.check("cat " + " ".join("/sys/devices/system/memory/%s/state" % b for b in blocks)).split()
        ev = g.del_dimm(idx)
        left = [d for d in g.qmp("query-memory-devices") if d["data"].get("id") == "dimm%d" % idx]
        if left:
            raise GuestError("dimm%d still present after DEVICE_DELETED" % idx)
        self.truth["hotplug_actions"].append({
            "action": "memory_remove", "qmp": ["device_del id=dimm%d" % idx, "object-del id=mem%d" % idx],
            "guest": ["echo offline > /sys/devices/system/memory/%s/state" % b for b in blocks],
            "block_states_after_offline": states, "device_deleted_event": ev.get("data"),
            "range": [hx(rng[0]), hx(rng[1])]})

    def add_cpu(self, g, socket_id=2):
        before = set(g.check("ls /sys/devices/system/cpu").split())
        info = g.add_cpu(socket_id)
        end = time.time() + 60
        while True:
            now = set(g.check("ls /sys/devices/system/cpu").split())
            new = sorted(x for x in now - before if re.match(r"cpu\d+$", x))
            if new:
                break
            if time.time() > end:
                raise GuestError("hot-added CPU did not appear in the guest")
            time.sleep(0.5)
        name = new[0]
        online_before = g.read("/sys/devices/system/cpu/%s/online" % name).strip()
        if online_before != "1":
            g.check("echo 1 > /sys/devices/system/cpu/%s/online" % name)
        apic = [l for l in g.check("dmesg").splitlines() if "Booting Node" in l]
        self.truth["hotplug_actions"].append({
            "action": "cpu_add", "qmp": ["device_add %s socket-id=%d core-id=0 thread-id=0 id=cpu%d"
                                         % (info["type"], socket_id, socket_id)],
            "socket_id": socket_id, "qom_props": info["props"], "linux_cpu": int(name[3:]),
            "auto_online": online_before == "1",
            "guest": [] if online_before == "1" else ["echo 1 > /sys/devices/system/cpu/%s/online" % name],
            "boot_log": apic[-1:] if apic else []})
        return int(name[3:])

    def finish(self, g, expected, description):
        t = self.truth
        t["description"] = description
        t["kernel_release"] = g.check("uname -r").strip()
        t["guest_state"] = st = collect_state(g)
        t["crash_kernel_region"] = None
        cr = crash_region(st["proc_iomem"])
        if cr:
            t["crash_kernel_region"] = [hx(cr[0]), hx(cr[1])]
        t["qmp_memory_devices"] = g.qmp("query-memory-devices")
        t["qmp_hotpluggable_cpus"] = g.qmp("query-hotpluggable-cpus")
        dump = os.path.join(self.args.dump_dir, self.name + ".elf")
        g.dump(dump)
        t["dump"] = self.name + ".elf"
        t["dump_format"] = "elf"
        t["dump_producer"] = "qemu dump-guest-memory (paging=false)"
        t["dump_archive"] = "dumps.tar.zst"
        t["guest_transcript"] = [{"cmd": c, "status": s} for c, s, o in g.transcript]
        g.close()
        self.observe(dump, cr, expected)
        t["expected"] = expected
        return dump

    def observe(self, dump, cr, expected):
        """Read the elfcorehdr that is actually in guest memory (from the dump)."""
        t = self.truth
        if "segments" not in self.__dict__:
            t["observed"] = {"elfcorehdr": None}
            return
        d = DumpFile(dump)
        cands = []
        for s in self.segments:
            if d.read_phys(s["mem"], 4) == b"\x7fELF":
                cands.append(s)
        # the kernel's own rule (crash_handle_hotplug_event): last segment starting with ELFMAG
        seg = cands[-1]
        hdr = parse_elfcorehdr(d, seg["mem"])
        d.close()
        now_ram = kernel_header_ram(t["guest_state"]["proc_iomem"], cr)
        hdr_ram = hdr["ram"]
        obs = {
            "elfcorehdr_segment_index": seg["index"],
            "elfcorehdr_paddr": hx(seg["mem"]),
            "e_phnum": hdr["e_phnum"],
            "header_bytes": hdr["size"],
            "pt_note": [[hx(a), n] for a, n in hdr["notes"]],
            "kernel_text_load": [[hx(a), hx(v), hx(n)] for a, v, n in hdr["kernel_text"]],
            "observed_header_ram": [[hx(s), hx(e)] for s, e in hdr_ram],
            "iomem_ram_now": [[hx(s), hx(e)] for s, e in now_ram],
            "missing_ram_vs_iomem": [[hx(s), hx(e)] for s, e in range_diff(now_ram, clip_1m(hdr_ram))],
            "extra_ram_vs_iomem": [[hx(s), hx(e)] for s, e in range_diff(clip_1m(hdr_ram), now_ram)],
            "phdrs": [{"type": {PT_LOAD: "PT_LOAD", PT_NOTE: "PT_NOTE"}.get(p["p_type"], p["p_type"]),
                       "offset": hx(p["p_offset"]), "vaddr": hx(p["p_vaddr"]), "paddr": hx(p["p_paddr"]),
                       "filesz": hx(p["p_filesz"]), "memsz": hx(p["p_memsz"])} for p in hdr["phdrs"]],
        }
        t["observed"] = obs
        # consistency of the prediction with what the header says (ranges >= 1 MiB)
        exp_m = [[int(a, 16), int(b, 16)] for a, b in expected["missing_ram"]]
        exp_x = [[int(a, 16), int(b, 16)] for a, b in expected["extra_ram"]]
        ok = (sorted(exp_m) == sorted(range_diff(now_ram, clip_1m(hdr_ram))) and
              sorted(exp_x) == sorted(range_diff(clip_1m(hdr_ram), now_ram)))
        obs["expected_ranges_match_observed"] = ok
        if not ok:
            t["notes"].append("expected missing/extra RAM differs from the header read from the dump; "
                              "see observed.*_vs_iomem")


def exp(crash_loaded, elfcorehdr, digest, missing=(), extra=()):
    return {"crash_loaded": crash_loaded, "elfcorehdr": elfcorehdr,
            "missing_ram": [[hx(s), hx(e)] for s, e in missing],
            "extra_ram": [[hx(s), hx(e)] for s, e in extra], "digest": digest}


def sc_file_base(r):
    g = r.boot()
    r.load(g, "file_load")
    return r.finish(g, exp(True, "current", "match"),
                    "kexec_file_load (kexec -s -p -d) of the lab kernel + capture initrd; no hotplug")


def sc_file_memadd(r):
    g = r.boot()
    r.load(g, "file_load")
    r.add_dimm(g)
    return r.finish(g, exp(True, "current", "match"),
                    "kexec_file_load, then hot-add a 128 MiB pc-dimm (auto-onlined movable): the kernel "
                    "rewrote the elfcorehdr on MEM_ONLINE")


def sc_file_cpuadd(r):
    g = r.boot()
    r.load(g, "file_load")
    r.add_cpu(g, 2)
    return r.finish(g, exp(True, "current", "match"),
                    "kexec_file_load, then hot-add a CPU (socket 2) and online it; the kernel-built header "
                    "already has PT_NOTEs for all possible CPUs, so x86 does not rewrite it")


def sc_load_stale_memadd(r):
    g = r.boot()
    r.load(g, "kexec_load", hotplug=False)
    rng, _ = r.add_dimm(g)
    return r.finish(g, exp(True, "stale", "match", missing=[rng]),
                    "kexec_load (kexec -c -p -d, no --hotplug), then hot-add a 128 MiB DIMM: hotplug_support=0, "
                    "the userspace elfcorehdr is not updated and lacks the DIMM")


def sc_load_hotplug_memadd(r):
    g = r.boot()
    r.load(g, "kexec_load", hotplug=True)
    r.add_dimm(g)
    return r.finish(g, exp(True, "current", "match"),
                    "kexec_load with --hotplug (KEXEC_UPDATE_ELFCOREHDR), then hot-add a 128 MiB DIMM: the "
                    "kernel found the elfcorehdr segment and rewrote it in kernel format")


def sc_file_memremove(r):
    g = r.boot()
    r.load(g, "file_load")
    rng, blocks = r.add_dimm(g)
    r.remove_dimm(g, 1, blocks, rng)
    # Prediction (kernel-notes §3.7/§10): MEM_OFFLINE rebuilt the header while the DIMM's
    # "System RAM" resource still existed; removal fires no event -> range stays in the header.
    return r.finish(g, exp(True, "stale", "match", extra=[rng]),
                    "kexec_file_load, hot-add a 128 MiB DIMM, offline its blocks, device_del + object-del it: "
                    "on x86 the header keeps the removed range (rebuilt at MEM_OFFLINE, nothing after removal)")


def sc_noload(r):
    g = r.boot()
    r.truth["load"] = {"mode": "none", "command": None, "hotplug_option": False}
    r.truth["segments"] = []
    return r.finish(g, exp(False, "none", "n/a"), "no crash kernel loaded (crashkernel=24M reserved)")


def sc_file_corrupt(r):
    base_json = os.path.join(r.args.json_dir, "file_base.json")
    base = json.load(open(base_json))
    src = os.path.join(r.args.dump_dir, "file_base.elf")
    dst = os.path.join(r.args.dump_dir, "file_corrupt.elf")
    initrd = int(base["load"]["segment_roles"]["initrd"], 16)
    seg = [s for s in base["segments"] if int(s["mem"], 16) == initrd][0]
    target = initrd + 0x1000
    shutil.copyfile(src, dst)
    d = DumpFile(dst)
    off = d.phys_to_offset(target)
    d.close()
    with open(dst, "r+b") as f:
        f.seek(off)
        old = f.read(16)
        f.seek(off)
        f.write(bytes(b ^ 0xff for b in old))
    t = dict(base)
    t["scenario"] = "file_corrupt"
    t["description"] = ("copy of file_base's dump with 16 bytes XOR 0xff inside the initrd segment "
                        "(segment mem + 0x1000): the sha256 digest of the loaded segments no longer matches")
    t["derived_from"] = "file_base"
    t["corruption"] = {"segment_index": seg["index"], "segment_mem": seg["mem"], "phys_addr": hx(target),
                       "file_offset": hx(off), "length": 16, "xor": "0xff",
                       "original_bytes": old.hex(), "new_bytes": bytes(b ^ 0xff for b in old).hex()}
    t["dump"] = "file_corrupt.elf"
    t["dump_producer"] = "copy of file_base.elf with 16 bytes flipped by lab/scenario.py"
    t["expected"] = dict(base["expected"], digest="mismatch")
    r.truth = t
    return dst


def sc_kdump_memadd(r):
    disk = os.path.join(r.args.dump_dir, "kdump_memadd.disk")
    with open(disk, "wb") as f:
        f.truncate(512 * MiB)
    g = r.boot(disk=disk)
    r.load(g, "file_load")
    rng, _ = r.add_dimm(g)
    t = r.truth
    t["description"] = ("kexec_file_load, hot-add a 128 MiB DIMM, then panic (sysrq c); the capture kernel "
                        "copied /proc/vmcore to a raw virtio disk; the host truncated it to the end of the last "
                        "ELF segment. This is a kdump-written vmcore: it has no crash-kernel region contents")
    t["kernel_release"] = g.check("uname -r").strip()
    t["guest_state"] = st = collect_state(g)
    cr = crash_region(st["proc_iomem"])
    t["crash_kernel_region"] = [hx(cr[0]), hx(cr[1])] if cr else None
    t["qmp_memory_devices"] = g.qmp("query-memory-devices")
    t["qmp_hotpluggable_cpus"] = g.qmp("query-hotpluggable-cpus")
    g.send_raw("echo c > /proc/sysrq-trigger\n")
    g.wait_for(r"@@CAPTURE-DONE@@", 600)
    g.proc.wait(120)
    g.close()
    out = os.path.join(r.args.dump_dir, "kdump_memadd.elf")
    os.replace(disk, out)
    d = DumpFile(out)
    end = d.end_of_segments()
    d.close()
    with open(out, "r+b") as f:
        f.truncate(end)
    t["dump"] = "kdump_memadd.elf"
    t["dump_format"] = "elf"
    t["dump_producer"] = "kdump capture kernel: dd if=/proc/vmcore of=/dev/vda, truncated to the last segment"
    t["dump_archive"] = "dumps.tar.zst"
    t["dump_size"] = end
    t["capture_serial_log"] = [l for l in r_serial_tail(g) if l.startswith("capture:")]
    t["expected"] = exp(True, "current", "n/a")
    t["notes"].append("crash region (elfcorehdr, purgatory, boot params, kernel, initrd segments) is not in a "
                      "kdump vmcore; the dump's own PT_LOADs come from the elfcorehdr that was current at panic")
    d = DumpFile(out)
    ram = [[p["p_paddr"], p["p_paddr"] + p["p_memsz"] - 1] for p in d.loads if p["p_vaddr"] < KERNEL_MAP_START]
    d.close()
    t["observed"] = {"vmcore_pt_load_ram": [[hx(s), hx(e)] for s, e in ram],
                     "dimm_in_vmcore": any(s <= rng[0] and e >= rng[1] for s, e in ram)}
    return out


def r_serial_tail(g):
    return g.output_since_start().splitlines()


SCENARIOS = {
    "file_base": sc_file_base,
    "file_memadd": sc_file_memadd,
    "file_cpuadd": sc_file_cpuadd,
    "load_stale_memadd": sc_load_stale_memadd,
    "load_hotplug_memadd": sc_load_hotplug_memadd,
    "file_memremove": sc_file_memremove,
    "noload": sc_noload,
    "file_corrupt": sc_file_corrupt,
    "kdump_memadd": sc_kdump_memadd,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump-dir", default=os.environ.get("DUMP_DIR", "/var/tmp/crashhp-dumps"))
    ap.add_argument("--work-dir", default=os.environ.get("WORK_DIR", "/var/tmp/crashhp-run"))
    ap.add_argument("--json-dir", default=VMCORES)
    ap.add_argument("--kernel", default=os.path.join(BUILD, "bzImage"))
    ap.add_argument("--initrd", default=os.path.join(BUILD, "initramfs.cpio"))
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = ap.parse_args()
    os.makedirs(args.dump_dir, exist_ok=True)
    qemu_ver = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    failed = []
    for name in args.scenarios:
        t0 = time.time()
        r = Run(name, args)
        try:
            SCENARIOS[name](r)
        except Exception as e:  # keep going with the other scenarios
            print("SCENARIO %s FAILED: %s" % (name, e), file=sys.stderr)
            failed.append(name)
            continue
        r.truth.setdefault("lab", {}).update({
            "qemu": qemu_ver, "guest_memory": GUEST_MEM, "guest_smp": GUEST_SMP, "guest_append": APPEND,
            "cpu": "Skylake-Client,-hypervisor (VMware identity via vmport + SMBIOS serial)"})
        for f in ("kernel-release.txt", "source-version.txt"):
            p = os.path.join(BUILD, f)
            if os.path.exists(p):
                r.truth["lab"][f.split(".")[0].replace("-", "_")] = open(p).read().strip()
        with open(os.path.join(args.json_dir, name + ".json"), "w") as f:
            json.dump(r.truth, f, indent=1, sort_keys=False)
            f.write("\n")
        print("scenario %s done in %.1fs" % (name, time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
