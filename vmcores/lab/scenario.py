#!/usr/bin/env python3
"""Run the drgn-crashhp vmcore scenarios and write their ground truth.  Stdlib only.

    scenario.py [--gen 6.1|6.12|7.3] [--dump-dir DIR] [--json-dir DIR] [--kernel bzImage]
                [--initrd cpio] [SCENARIO...]
    scenario.py --gen GEN --list | --list-dumps | --print-json-dir

Kernel generations: 6.12 (default; JSON at the top of vmcores/), 6.1 and 7.3 (JSON in
vmcores/v6.1/, vmcores/v7.3/).  The build folder of a generation is $BUILD or
${XDG_CACHE_HOME:-~/.cache}/drgn-crashhp/lab/GEN (see lab-env.sh).

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
GENERATIONS = ("6.1", "6.12", "7.3")


def lab_root():
    if os.environ.get("LAB"):
        return os.environ["LAB"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache, "drgn-crashhp", "lab")


def build_dir(gen):
    """The build folder of one generation: $BUILD if the caller set it, else LAB/GEN."""
    return os.environ.get("BUILD") or os.path.join(lab_root(), gen)


def json_dir_for(gen):
    return VMCORES if gen == "6.12" else os.path.join(VMCORES, "v" + gen)


GEN = os.environ.get("GEN") or "6.12"  # set by main() from --gen
BUILD = build_dir(GEN)

GUEST_MEM = "128M,slots=4,maxmem=1G"  # 80M: crashkernel=24M not reserved in 5/12 KASLR boots, 96M: 1/25 fails, 128M: 37/37 ok
GUEST_SMP = "2,sockets=4,maxcpus=4"
APPEND = "console=ttyS0 crashkernel=24M memhp_default_state=online_movable"
CAPTURE_APPEND = "console=ttyS0 acpi_no_memhotplug irqpoll nr_cpus=1 reset_devices"
KEXEC_FILE_CMD = (
    'kexec -s -p -d /bzImage --initrd=/capture.cpio --append="%s"' % CAPTURE_APPEND
)
KEXEC_LOAD_CMD = (
    'kexec -c -p -d /bzImage --initrd=/capture.cpio --append="%s"' % CAPTURE_APPEND
)
KEXEC_LOAD_HP_CMD = (
    'kexec -c -p -d --hotplug /bzImage --initrd=/capture.cpio --append="%s"'
    % CAPTURE_APPEND
)
# 6.1: kexec_file_load rejects KEXEC_FILE_DEBUG (the flag kexec-tools 2.0.29 sets for -s -d, 6.8+),
# and prints its segment table only through pr_debug -> dynamic debug switched on at boot
KEXEC_FILE_CMD_61 = (
    'kexec -s -p /bzImage --initrd=/capture.cpio --append="%s"' % CAPTURE_APPEND
)
DYNDBG_61 = 'dyndbg="file kexec_file.c +p; file kexec-bzimage64.c +p; file crash.c +p"'
# 7.3 crashkernel=SIZE,cma: an extra CMA reservation the capture kernel may use, excluded from the
# elfcorehdr (crashk_cma_ranges); the main 24M reservation still holds the segments
CMA_SIZE = "32M"
# makedumpfile page compression: 6.1 -l (lzo, what Debian's kdump-tools writes); 7.3 none (same
# kdump-compressed format and -d 31 filtering): lzo pages neither compress nor dedupe in the
# archive (6.6 MB on 6.1, 9.9 MB on 7.3; raw pages cost 1-3 MB) and the 64 MiB budget holds one.
MDF_MODE = {"6.1": "makedumpfile", "7.3": "makedumpfile-nocomp", "6.12": "makedumpfile"}
MDF_CAPTURE_APPEND = CAPTURE_APPEND + " crashhp_capture=%s"
KEXEC_FILE_MDF_CMD = 'kexec -s -p -d /bzImage --initrd=/capture-mdf.cpio --append="%s"'
KEXEC_FILE_MDF_CMD_61 = 'kexec -s -p /bzImage --initrd=/capture-mdf.cpio --append="%s"'
MDF_CRASHKERNEL = "40M"
DMCRYPT_KEY_DESC = "cryptsetup:crashhp-lab-key"
DMCRYPT_KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def append_for(gen, extra=""):
    a = APPEND + (" " + DYNDBG_61 if gen == "6.1" else "")
    return a + (" " + extra if extra else "")


DIMM_SIZE = 128 << 20
MiB = 1 << 20

# ------------------------------------------------------------------ tiny ELF reader

PT_LOAD, PT_NOTE = 1, 4


def parse_elf64(read):
    """read(offset, size) -> bytes.  Returns (ehdr dict, [phdr dicts])."""
    eh = read(0, 64)
    if eh[:4] != b"\x7fELF" or eh[4] != 2 or eh[5] != 1:
        raise ValueError("not a little-endian ELF64 header: %r" % eh[:16])
    (
        e_type,
        e_machine,
        e_version,
        e_entry,
        e_phoff,
        e_shoff,
        e_flags,
        e_ehsize,
        e_phentsize,
        e_phnum,
        e_shentsize,
        e_shnum,
        e_shstrndx,
    ) = struct.unpack_from("<HHIQQQIHHHHHH", eh, 16)
    ehdr = dict(
        e_type=e_type,
        e_machine=e_machine,
        e_phoff=e_phoff,
        e_phnum=e_phnum,
        e_phentsize=e_phentsize,
        e_ehsize=e_ehsize,
    )
    phdrs = []
    raw = read(e_phoff, e_phnum * e_phentsize)
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align = (
            struct.unpack_from("<IIQQQQQQ", raw, i * e_phentsize)
        )
        phdrs.append(
            dict(
                p_type=p_type,
                p_flags=p_flags,
                p_offset=p_offset,
                p_vaddr=p_vaddr,
                p_paddr=p_paddr,
                p_filesz=p_filesz,
                p_memsz=p_memsz,
            )
        )
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
            p = next(
                p
                for p in self.loads
                if p["p_paddr"] <= paddr < p["p_paddr"] + p["p_filesz"]
            )
            n = min(size, p["p_paddr"] + p["p_filesz"] - paddr)
            out += self._read_file(off, n)
            paddr += n
            size -= n
        return out

    def end_of_segments(self):
        return max(p["p_offset"] + p["p_filesz"] for p in self.phdrs)

    def close(self):
        self.f.close()


KERNEL_MAP_START = 0xFFFFFFFF80000000


def parse_elfcorehdr(dump, paddr):
    ehdr, phdrs = parse_elf64(lambda off, size: dump.read_phys(paddr + off, size))
    notes = [[p["p_paddr"], p["p_memsz"]] for p in phdrs if p["p_type"] == PT_NOTE]
    text = [
        p for p in phdrs if p["p_type"] == PT_LOAD and p["p_vaddr"] >= KERNEL_MAP_START
    ]
    ram = [
        [p["p_paddr"], p["p_paddr"] + p["p_memsz"] - 1]
        for p in phdrs
        if p["p_type"] == PT_LOAD and p["p_vaddr"] < KERNEL_MAP_START
    ]
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
            out.append(
                (
                    len(m.group(1)) // 2,
                    int(m.group(2), 16),
                    int(m.group(3), 16),
                    m.group(4),
                )
            )
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


def read_opt(g, path):
    """Contents of a guest file, stripped, or None if it does not exist (older kernels)."""
    st, out = g.run("cat %s 2>/dev/null" % path)
    return out.strip() if st == 0 else None


def collect_state(g):
    st = {}
    st["proc_iomem"] = g.read("/proc/iomem")
    cpu = "/sys/devices/system/cpu"
    st["cpu"] = {
        k: g.read("%s/%s" % (cpu, k)).strip() for k in ("possible", "present", "online")
    }
    st["cpu"]["crash_hotplug"] = read_opt(
        g, cpu + "/crash_hotplug"
    )  # None: no such file (< 6.6)
    notes = {}
    out = g.check(
        "for d in %s/cpu[0-9]*; do echo ${d##*/} $(cat $d/crash_notes) $(cat $d/crash_notes_size)"
        " $(cat $d/online 2>/dev/null || echo -); done" % cpu
    )
    for line in out.splitlines():
        name, addr, size, online = line.split()
        notes[name] = {
            "crash_notes": "0x" + addr,
            "crash_notes_size": int(size),
            "online": None if online == "-" else online == "1",
        }
    st["cpu"]["cpus"] = notes
    mem = "/sys/devices/system/memory"
    st["memory"] = {
        "block_size_bytes": "0x" + g.read(mem + "/block_size_bytes").strip(),
        "crash_hotplug": read_opt(g, mem + "/crash_hotplug"),
        "auto_online_blocks": g.read(mem + "/auto_online_blocks").strip(),
    }
    blocks = {}
    out = g.check(
        "for d in %s/memory[0-9]*; do echo ${d##*/} $(cat $d/state) $(cat $d/phys_index); done"
        % mem
    )
    for line in out.splitlines():
        if line.strip():
            name, state, idx = line.split()
            blocks[name] = {"state": state, "phys_index": "0x" + idx}
    st["memory"]["blocks"] = blocks
    ks = "/sys/kernel"
    st["sys_kernel"] = {
        k: read_opt(g, "%s/%s" % (ks, k))
        for k in (
            "kexec_crash_loaded",
            "kexec_crash_size",
            "crash_elfcorehdr_size",
            "vmcoreinfo",
            "kexec_loaded",
        )
    }
    st["proc_cmdline"] = g.read("/proc/cmdline").strip()
    st["dmesg_kexec"] = [
        l
        for l in g.check("dmesg").splitlines()
        if re.search(r"kexec|crash|segment\[|elfcorehdr|Crash|hot-?add|hotplug", l)
    ]
    return st


def crash_region(iomem):
    for _depth, s, e, name in parse_iomem(iomem):
        if name == "Crash kernel":
            return [s, e]
    return None


SEG_RE = re.compile(
    r"kexec_file: (?:segment\[(\d+)\]:|Loading segment (\d+):) buf=0x\S+ "
    r"bufsz=0x([0-9a-f]+) mem=0x([0-9a-f]+) memsz=0x([0-9a-f]+)"
)


def segments_from_dmesg(lines):
    segs = []
    for l in lines:
        m = SEG_RE.search(l)
        if m:
            segs.append(
                {
                    "index": int(m.group(1) or m.group(2)),
                    "bufsz": int(m.group(3), 16),
                    "mem": int(m.group(4), 16),
                    "memsz": int(m.group(5), 16),
                }
            )
    return segs


def segments_from_kexec_tools(out):
    """kexec-tools -d prints 'segment[i].mem:0x...' style lines (format checked below)."""
    segs = {}
    for m in re.finditer(
        r"segment\[(\d+)\]\.(buf|bufsz|mem|memsz)\s*[:=]\s*(0x[0-9a-fA-F]+|\d+)", out
    ):
        segs.setdefault(int(m.group(1)), {"index": int(m.group(1))})[m.group(2)] = int(
            m.group(3), 0
        )
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
        self.guests = []
        self.disk = None

    def boot(self, disk=None, tries=5, extra_append=""):
        self.append = append_for(GEN, extra_append)
        for attempt in range(tries):
            g = Guest(
                self.args.work_dir,
                self.args.kernel,
                self.args.initrd,
                append=self.append,
                mem=GUEST_MEM,
                smp=GUEST_SMP,
                disk=disk,
                name=self.name.replace("/", "_"),
            )
            self.guests.append(g)
            g.start()
            g.wait_ready(300)
            if g.read("/sys/kernel/kexec_crash_size").strip() != "0":
                self.truth["boot_attempts"] = attempt + 1
                return g
            g.close()
        raise GuestError("crashkernel=24M never reserved")

    def load(self, g, mode, hotplug=False, cmd=None, may_fail=False):
        file_cmd = KEXEC_FILE_CMD_61 if GEN == "6.1" else KEXEC_FILE_CMD
        cmd = (
            cmd
            or {
                "file_load": file_cmd,
                "kexec_load": KEXEC_LOAD_HP_CMD if hotplug else KEXEC_LOAD_CMD,
            }[mode]
        )
        status, out = g.run(cmd + " 2>&1", timeout=300)
        self.truth["load"] = {
            "mode": mode,
            "command": cmd,
            "hotplug_option": hotplug,
            "kexec_output": out.splitlines(),
            "kexec_status": status,
        }
        if status != 0:
            if not may_fail:
                raise GuestError("kexec failed: %s\n%s" % (cmd, out))
            self.truth["load"]["failed"] = True
            self.truth["load"]["kernel_log_after_failure"] = [
                l for l in g.check("dmesg").splitlines() if re.search(r"kexec|crash", l)
            ][-20:]
            self.truth["segments"] = []
            return []
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
            m = [
                re.search(
                    r"Loaded ELF headers at 0x([0-9a-f]+) bufsz=0x([0-9a-f]+) memsz=0x([0-9a-f]+)",
                    l,
                )
                for l in lines
            ]
            m = [x for x in m if x]
            if m:
                self.truth["load"]["elf_headers"] = {
                    "mem": "0x" + m[-1].group(1),
                    "bufsz": "0x" + m[-1].group(2),
                    "memsz": "0x" + m[-1].group(3),
                }
            for what, rx in (
                ("purgatory", r"Loaded purgatory at 0x([0-9a-f]+)"),
                (
                    "boot_params",
                    r"Loaded boot_param, command line and misc at 0x([0-9a-f]+)",
                ),
                ("kernel", r"Loaded 64bit kernel at 0x([0-9a-f]+)"),
                ("initrd", r"Loaded initrd at 0x([0-9a-f]+)"),
            ):
                mm = [re.search(rx, l) for l in lines]
                mm = [x for x in mm if x]
                if mm:
                    self.truth["load"].setdefault("segment_roles", {})[what] = (
                        "0x" + mm[-1].group(1)
                    )
            mm = [
                re.search(
                    r"kexec_file_load: type:(\d+), start:0x([0-9a-f]+) head:0x[0-9a-f]+ flags:0x([0-9a-f]+)",
                    l,
                )
                for l in lines
            ]
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
        blocks = [
            "memory%d" % b
            for b in range(d["addr"] // bs, (d["addr"] + d["size"]) // bs)
        ]
        end = time.time() + 120
        while True:
            st, out = g.run(
                "cat "
                + " ".join("/sys/devices/system/memory/%s/state" % b for b in blocks)
                + " 2>&1"
            )
            if st == 0 and all(x == "online" for x in out.split()):
                break
            if time.time() > end:
                raise GuestError("DIMM blocks not online: %s" % out)
            if st == 0:
                for b, s in zip(blocks, out.split()):
                    if s == "offline":
                        g.run(
                            "echo online_movable > /sys/devices/system/memory/%s/state"
                            % b
                        )
            time.sleep(0.5)
        act = {
            "action": "memory_add",
            "qmp": [
                "object-add memory-backend-ram id=mem%d size=%d" % (idx, DIMM_SIZE),
                "device_add pc-dimm id=dimm%d memdev=mem%d" % (idx, idx),
            ],
            "dimm": {
                "id": d["id"],
                "addr": hx(d["addr"]),
                "size": hx(d["size"]),
                "slot": d["slot"],
                "range": [hx(rng[0]), hx(rng[1])],
            },
            "memory_blocks": blocks,
            "onlined_by": "memhp_default_state=online_movable",
        }
        self.truth["hotplug_actions"].append(act)
        return rng, blocks

    def remove_dimm(self, g, idx, blocks, rng):
        for b in blocks:
            g.check("echo offline > /sys/devices/system/memory/%s/state" % b)
        states = g.check(
            "cat " + " ".join("/sys/devices/system/memory/%s/state" % b for b in blocks)
        ).split()
        ev = g.del_dimm(idx)
        left = [
            d
            for d in g.qmp("query-memory-devices")
            if d["data"].get("id") == "dimm%d" % idx
        ]
        if left:
            raise GuestError("dimm%d still present after DEVICE_DELETED" % idx)
        self.truth["hotplug_actions"].append(
            {
                "action": "memory_remove",
                "qmp": ["device_del id=dimm%d" % idx, "object-del id=mem%d" % idx],
                "guest": [
                    "echo offline > /sys/devices/system/memory/%s/state" % b
                    for b in blocks
                ],
                "block_states_after_offline": states,
                "device_deleted_event": ev.get("data"),
                "range": [hx(rng[0]), hx(rng[1])],
            }
        )

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
        self.truth["hotplug_actions"].append(
            {
                "action": "cpu_add",
                "qmp": [
                    "device_add %s socket-id=%d core-id=0 thread-id=0 id=cpu%d"
                    % (info["type"], socket_id, socket_id)
                ],
                "socket_id": socket_id,
                "qom_props": info["props"],
                "linux_cpu": int(name[3:]),
                "auto_online": online_before == "1",
                "guest": []
                if online_before == "1"
                else ["echo 1 > /sys/devices/system/cpu/%s/online" % name],
                "boot_log": apic[-1:] if apic else [],
            }
        )
        return int(name[3:])

    def finish(self, g, expected, description):
        t = self.truth
        t["description"] = description
        t["generation"] = GEN
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
        # ranges the kernel leaves out of the header on purpose (7.x crashk_cma_ranges)
        for x in expected.get("excluded_ram", []):
            now_ram = subtract(now_ram, [int(v, 16) for v in x["range"]])
        hdr_ram = hdr["ram"]
        obs = {
            "elfcorehdr_segment_index": seg["index"],
            "elfcorehdr_paddr": hx(seg["mem"]),
            "e_phnum": hdr["e_phnum"],
            "header_bytes": hdr["size"],
            "pt_note": [[hx(a), n] for a, n in hdr["notes"]],
            "kernel_text_load": [
                [hx(a), hx(v), hx(n)] for a, v, n in hdr["kernel_text"]
            ],
            "observed_header_ram": [[hx(s), hx(e)] for s, e in hdr_ram],
            "iomem_ram_now": [[hx(s), hx(e)] for s, e in now_ram],
            "missing_ram_vs_iomem": [
                [hx(s), hx(e)] for s, e in range_diff(now_ram, clip_1m(hdr_ram))
            ],
            "extra_ram_vs_iomem": [
                [hx(s), hx(e)] for s, e in range_diff(clip_1m(hdr_ram), now_ram)
            ],
            "phdrs": [
                {
                    "type": {PT_LOAD: "PT_LOAD", PT_NOTE: "PT_NOTE"}.get(
                        p["p_type"], p["p_type"]
                    ),
                    "offset": hx(p["p_offset"]),
                    "vaddr": hx(p["p_vaddr"]),
                    "paddr": hx(p["p_paddr"]),
                    "filesz": hx(p["p_filesz"]),
                    "memsz": hx(p["p_memsz"]),
                }
                for p in hdr["phdrs"]
            ],
        }
        t["observed"] = obs
        # consistency of the prediction with what the header says (ranges >= 1 MiB)
        exp_m = [[int(a, 16), int(b, 16)] for a, b in expected["missing_ram"]]
        exp_x = [[int(a, 16), int(b, 16)] for a, b in expected["extra_ram"]]
        ok = sorted(exp_m) == sorted(range_diff(now_ram, clip_1m(hdr_ram))) and sorted(
            exp_x
        ) == sorted(range_diff(clip_1m(hdr_ram), now_ram))
        # CPU notes: which CPUs the guest has (sysfs crash_notes, physical) have a PT_NOTE
        note_set = {a for a, _n in hdr["notes"]}
        present = parse_cpulist(t["guest_state"]["cpu"]["present"])
        cpus = t["guest_state"]["cpu"]["cpus"]
        obs["cpu_note_in_header"] = {
            n: int(c["crash_notes"], 16) in note_set for n, c in sorted(cpus.items())
        }
        obs["present_cpus_without_note"] = sorted(
            int(n[3:])
            for n, c in cpus.items()
            if int(n[3:]) in present and int(c["crash_notes"], 16) not in note_set
        )
        if "cpus_without_note" in expected:
            ok = (
                ok and expected["cpus_without_note"] == obs["present_cpus_without_note"]
            )
        obs["expected_ranges_match_observed"] = ok
        if not ok:
            t["notes"].append(
                "expected missing/extra RAM differs from the header read from the dump; "
                "see observed.*_vs_iomem"
            )


def exp(crash_loaded, elfcorehdr, digest, missing=(), extra=(), cpus_without_note=None):
    e = {
        "crash_loaded": crash_loaded,
        "elfcorehdr": elfcorehdr,
        "missing_ram": [[hx(s), hx(e)] for s, e in missing],
        "extra_ram": [[hx(s), hx(e)] for s, e in extra],
        "digest": digest,
    }
    if GEN != "6.12":  # the 6.12 JSONs predate this key; every newer set has it
        e["cpus_without_note"] = sorted(cpus_without_note or [])
    return e


def parse_cpulist(text):
    out = set()
    for part in (text or "").split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def rewrites():
    """Does this generation's kernel rewrite the elfcorehdr on hotplug (CONFIG_CRASH_HOTPLUG, 6.6+)?"""
    return GEN != "6.1"


def sc_file_base(r):
    g = r.boot()
    r.load(g, "file_load")
    return r.finish(
        g,
        exp(True, "current", "match"),
        "kexec_file_load (kexec -s -p -d) of the lab kernel + capture initrd; no hotplug",
    )


def sc_file_memadd(r):
    g = r.boot()
    r.load(g, "file_load")
    rng, _ = r.add_dimm(g)
    if not rewrites():
        return r.finish(
            g,
            exp(True, "stale", "match", missing=[rng]),
            "kexec_file_load, then hot-add a 128 MiB pc-dimm (auto-onlined movable): 6.1 has no "
            "crash hotplug, the elfcorehdr built at load lacks the DIMM",
        )
    return r.finish(
        g,
        exp(True, "current", "match"),
        "kexec_file_load, then hot-add a 128 MiB pc-dimm (auto-onlined movable): the kernel "
        "rewrote the elfcorehdr on MEM_ONLINE",
    )


def sc_file_cpuadd(r):
    g = r.boot()
    r.load(g, "file_load")
    cpu = r.add_cpu(g, 2)
    if not rewrites():
        return r.finish(
            g,
            exp(True, "stale", "match", cpus_without_note=[cpu]),
            "kexec_file_load, then hot-add a CPU (socket 2) and online it: before 6.6 the header has "
            "PT_NOTEs for the CPUs present at load only (for_each_present_cpu), so the new CPU has none",
        )
    return r.finish(
        g,
        exp(True, "current", "match"),
        "kexec_file_load, then hot-add a CPU (socket 2) and online it; the kernel-built header "
        "already has PT_NOTEs for all possible CPUs, so x86 does not rewrite it",
    )


def sc_load_stale_memadd(r):
    g = r.boot()
    r.load(g, "kexec_load", hotplug=False)
    rng, _ = r.add_dimm(g)
    return r.finish(
        g,
        exp(True, "stale", "match", missing=[rng]),
        "kexec_load (kexec -c -p -d, no --hotplug), then hot-add a 128 MiB DIMM: hotplug_support=0, "
        "the userspace elfcorehdr is not updated and lacks the DIMM",
    )


def sc_load_hotplug_memadd(r):
    g = r.boot()
    segs = r.load(g, "kexec_load", hotplug=True, may_fail=not rewrites())
    rng, _ = r.add_dimm(g)
    if not segs:
        # 6.1 rejects the unknown KEXEC_UPDATE_ELFCOREHDR flag: nothing is loaded
        loaded = read_opt(g, "/sys/kernel/kexec_crash_loaded") == "1"
        return r.finish(
            g,
            exp(loaded, "none", "n/a"),
            "kexec_load with --hotplug (KEXEC_UPDATE_ELFCOREHDR): this kernel does not know the flag "
            "and the load failed (see load.kexec_output); then hot-add a DIMM. No crash kernel loaded",
        )
    if not rewrites():
        return r.finish(
            g,
            exp(True, "stale", "match", missing=[rng]),
            "kexec_load with --hotplug, then hot-add a DIMM: loaded, but this kernel has no crash "
            "hotplug, the userspace header lacks the DIMM",
        )
    return r.finish(
        g,
        exp(True, "current", "match"),
        "kexec_load with --hotplug (KEXEC_UPDATE_ELFCOREHDR), then hot-add a 128 MiB DIMM: the "
        "kernel found the elfcorehdr segment and rewrote it in kernel format",
    )


def sc_file_memremove(r):
    g = r.boot()
    r.load(g, "file_load")
    rng, blocks = r.add_dimm(g)
    r.remove_dimm(g, 1, blocks, rng)
    if not rewrites():
        return r.finish(
            g,
            exp(True, "current", "match"),
            "kexec_file_load, hot-add a 128 MiB DIMM, offline and remove it: 6.1 never rewrote the "
            "header, which still describes the boot RAM only, which is again the RAM now",
        )
    # Prediction (kernel-notes §3.7/§10): MEM_OFFLINE rebuilt the header while the DIMM's
    # "System RAM" resource still existed; removal fires no event -> range stays in the header.
    return r.finish(
        g,
        exp(True, "stale", "match", extra=[rng]),
        "kexec_file_load, hot-add a 128 MiB DIMM, offline its blocks, device_del + object-del it: "
        "on x86 the header keeps the removed range (rebuilt at MEM_OFFLINE, nothing after removal)",
    )


def sc_noload(r):
    g = r.boot()
    r.truth["load"] = {"mode": "none", "command": None, "hotplug_option": False}
    r.truth["segments"] = []
    return r.finish(
        g,
        exp(False, "none", "n/a"),
        "no crash kernel loaded (crashkernel=24M reserved)",
    )


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
        f.write(bytes(b ^ 0xFF for b in old))
    t = dict(base)
    t["scenario"] = "file_corrupt"
    t["description"] = (
        "copy of file_base's dump with 16 bytes XOR 0xff inside the initrd segment "
        "(segment mem + 0x1000): the sha256 digest of the loaded segments no longer matches"
    )
    t["derived_from"] = "file_base"
    t["corruption"] = {
        "segment_index": seg["index"],
        "segment_mem": seg["mem"],
        "phys_addr": hx(target),
        "file_offset": hx(off),
        "length": 16,
        "xor": "0xff",
        "original_bytes": old.hex(),
        "new_bytes": bytes(b ^ 0xFF for b in old).hex(),
    }
    t["dump"] = "file_corrupt.elf"
    t["dump_producer"] = (
        "copy of file_base.elf with 16 bytes flipped by lab/scenario.py"
    )
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
    t["description"] = (
        "kexec_file_load, hot-add a 128 MiB DIMM, then panic (sysrq c); the capture kernel "
        "copied /proc/vmcore to a raw virtio disk; the host truncated it to the end of the last "
        "ELF segment. This is a kdump-written vmcore: it has no crash-kernel region contents"
    )
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
    t["dump_producer"] = (
        "kdump capture kernel: dd if=/proc/vmcore of=/dev/vda, truncated to the last segment"
    )
    t["dump_archive"] = "dumps.tar.zst"
    t["dump_size"] = end
    t["capture_serial_log"] = [l for l in r_serial_tail(g) if l.startswith("capture:")]
    t["expected"] = exp(True, "current", "n/a")
    t["notes"].append(
        "crash region (elfcorehdr, purgatory, boot params, kernel, initrd segments) is not in a "
        "kdump vmcore; the dump's own PT_LOADs come from the elfcorehdr that was current at panic"
    )
    d = DumpFile(out)
    ram = [
        [p["p_paddr"], p["p_paddr"] + p["p_memsz"] - 1]
        for p in d.loads
        if p["p_vaddr"] < KERNEL_MAP_START
    ]
    d.close()
    t["observed"] = {
        "vmcore_pt_load_ram": [[hx(s), hx(e)] for s, e in ram],
        "dimm_in_vmcore": any(s <= rng[0] and e >= rng[1] for s, e in ram),
    }
    return out


def sc_kdump_mdf_memadd(r):
    """A postmortem dump as Debian's kdump-tools writes it: makedumpfile -l -d 31 in the capture
    kernel (flattened to the raw disk, then makedumpfile -R on the host)."""
    disk = os.path.join(r.args.dump_dir, "kdump_mdf_memadd.disk")
    with open(disk, "wb") as f:
        f.truncate(512 * MiB)
    # the capture kernel needs room for makedumpfile and its libraries (the last crashkernel= wins)
    g = r.boot(disk=disk, extra_append="crashkernel=%s" % MDF_CRASHKERNEL)
    cmd = (KEXEC_FILE_MDF_CMD_61 if GEN == "6.1" else KEXEC_FILE_MDF_CMD) % (
        MDF_CAPTURE_APPEND % MDF_MODE[GEN]
    )
    lzo = MDF_MODE[GEN] == "makedumpfile"
    r.load(g, "file_load", cmd=cmd)
    rng, _ = r.add_dimm(g)
    t = r.truth
    t["description"] = (
        "kexec_file_load of a capture initrd with Debian's makedumpfile, hot-add a 128 MiB DIMM, "
        "panic (sysrq c); the capture kernel ran makedumpfile -F [-l] -d 31 /proc/vmcore to a raw "
        "virtio disk, the host ran makedumpfile -R into a kdump-compressed file (what /var/crash "
        "holds). No crash-region contents; pages of -d 31 (zero, cache, private cache, user, free) "
        "are filtered, so absent from the file although they were RAM"
    )
    t["generation"] = GEN
    t["kernel_release"] = g.check("uname -r").strip()
    t["guest_state"] = st = collect_state(g)
    cr = crash_region(st["proc_iomem"])
    t["crash_kernel_region"] = [hx(cr[0]), hx(cr[1])] if cr else None
    t["qmp_memory_devices"] = g.qmp("query-memory-devices")
    t["qmp_hotpluggable_cpus"] = g.qmp("query-hotpluggable-cpus")
    # the capture kernel also stores /proc/vmcore's own ELF headers (its PT_LOADs = the
    # elfcorehdr that was current at panic) at 500 MiB on the disk, for the ground truth
    g.send_raw("echo c > /proc/sysrq-trigger\n")
    g.wait_for(r"@@CAPTURE-DONE@@", 900)
    g.proc.wait(120)
    g.close()
    out = os.path.join(r.args.dump_dir, "kdump_mdf_memadd.kdump")
    if os.path.exists(out + ".tmp"):
        os.unlink(out + ".tmp")
    with open(disk, "rb") as src:
        p = subprocess.run(
            ["makedumpfile", "-R", out + ".tmp"],
            stdin=src,
            capture_output=True,
            text=True,
        )
    if p.returncode != 0:
        raise GuestError("makedumpfile -R failed: %s %s" % (p.stdout, p.stderr))
    os.replace(out + ".tmp", out)
    with open(disk, "rb") as f:
        f.seek(500 * MiB)
        hdrbytes = f.read(64 * 1024)
    os.unlink(disk)
    ehdr, phdrs = parse_elf64(lambda off, size: hdrbytes[off : off + size])
    ram = [
        [p["p_paddr"], p["p_paddr"] + p["p_memsz"] - 1]
        for p in phdrs
        if p["p_type"] == PT_LOAD and p["p_vaddr"] < KERNEL_MAP_START
    ]
    log = r_serial_tail(g)
    mdf = [line for line in log if line.startswith("capture:")]
    t["dump"] = "kdump_mdf_memadd.kdump"
    t["dump_format"] = "kdump-compressed"
    t["dump_producer"] = (
        "makedumpfile -F %s-d 31 /proc/vmcore in the capture kernel (%s), makedumpfile -R on "
        "the host"
        % (
            "-l " if lzo else "",
            next((x.split(": ", 1)[1] for x in mdf if "version" in x), "makedumpfile"),
        )
    )
    t["dump_archive"] = "dumps.tar.zst"
    t["dump_size"] = os.path.getsize(out)
    t["capture_serial_log"] = mdf
    t["makedumpfile"] = {
        "dump_level": 31,
        "compression": "lzo (-l)" if lzo else "none (pages stored raw)",
        "filtered": "zero pages, non-private cache, private cache, user data, free pages",
        "report": [x for x in mdf if "mdf:" in x],
    }
    now_ram = kernel_header_ram(st["proc_iomem"], cr)
    missing = range_diff(now_ram, clip_1m(ram))
    extra = range_diff(clip_1m(ram), now_ram)
    t["observed"] = {
        "vmcore_pt_load_ram": [[hx(s), hx(e)] for s, e in ram],
        "vmcore_e_phnum": ehdr["e_phnum"],
        "dimm_in_vmcore": any(s <= rng[0] and e >= rng[1] for s, e in ram),
        "iomem_ram_now": [[hx(s), hx(e)] for s, e in now_ram],
        "missing_ram_vs_iomem": [[hx(s), hx(e)] for s, e in missing],
        "extra_ram_vs_iomem": [[hx(s), hx(e)] for s, e in extra],
    }
    if rewrites():
        t["expected"] = exp(True, "current", "n/a")
    else:
        t["expected"] = exp(True, "stale", "n/a", missing=[rng])
    t["observed"]["expected_ranges_match_observed"] = [
        [hx(s), hx(e)] for s, e in missing
    ] == t["expected"]["missing_ram"] and [[hx(s), hx(e)] for s, e in extra] == t[
        "expected"
    ]["extra_ram"]
    t["notes"].append(
        "filtered pages (makedumpfile -d 31) are RAM that is in the header but not in the file: "
        "they are not missing RAM; the DIMM is %s the vmcore's PT_LOADs"
        % ("in" if t["observed"]["dimm_in_vmcore"] else "NOT in")
    )
    return out


def sc_file_cma(r):
    """7.x crashkernel=SIZE,cma: CMA ranges the capture kernel may use, not in the elfcorehdr."""
    g = r.boot(extra_append="crashkernel=%s,cma memblock=debug" % CMA_SIZE)
    log = g.check("dmesg").splitlines()
    cma_lines = [
        l
        for l in log
        if re.search(r"crashkernel CMA|cma: Reserved|Reserved .* MiB in", l)
    ]
    want = int(CMA_SIZE[:-1]) << 20
    reserves = []
    for l in log:
        m = re.search(r"memblock_reserve: \[0x([0-9a-f]+)-0x([0-9a-f]+)\] .* (\S+)$", l)
        if m and int(m.group(2), 16) - int(m.group(1), 16) + 1 == want:
            reserves.append(
                {
                    "range": [hx(int(m.group(1), 16)), hx(int(m.group(2), 16))],
                    "caller": m.group(3),
                    "line": l,
                }
            )
    meminfo = [
        l for l in g.check("cat /proc/meminfo").splitlines() if l.startswith("Cma")
    ]
    r.truth["cma"] = {
        "append": "crashkernel=%s,cma" % CMA_SIZE,
        "kernel_log": cma_lines,
        "memblock_reserve_of_cma_size": reserves,
        "meminfo": meminfo,
    }
    r.load(g, "file_load")
    cma_ranges = []
    if len(reserves) == 1:
        cma_ranges = [[int(x, 16) for x in reserves[0]["range"]]]
    r.truth["cma"]["crashk_cma_ranges"] = [[hx(s), hx(e)] for s, e in cma_ranges]
    e = exp(True, "current", "match")
    e["excluded_ram"] = [
        {"what": "crashk_cma_ranges", "range": [hx(s), hx(e_)]} for s, e_ in cma_ranges
    ]
    return r.finish(
        g,
        e,
        "crashkernel=24M plus crashkernel=%s,cma; kexec_file_load: the kernel excludes "
        "crashk_cma_ranges from the elfcorehdr (kernel/crash_core.c, crash_prepare_headers -> "
        "arch_crash_exclude_mem_range) and hands them to the capture kernel as usable RAM"
        % CMA_SIZE,
    )


def sc_file_dmcrypt(r):
    """7.x CONFIG_CRASH_DM_CRYPT: a logon key named in configfs crash_dm_crypt_keys is copied
    into a kexec segment at kexec_file_load (dmcryptkeys= on the capture command line)."""
    g = r.boot()
    cfg = "/sys/kernel/config"
    steps = [
        "mkdir -p %s" % cfg,
        "mount -t configfs none %s" % cfg,
        "mkdir %s/crash_dm_crypt_keys/k0" % cfg,
        "echo -n %s > %s/crash_dm_crypt_keys/k0/description" % (DMCRYPT_KEY_DESC, cfg),
        "addkey logon %s %s" % (DMCRYPT_KEY_DESC, DMCRYPT_KEY_HEX),
    ]
    outs = []
    for c in steps:
        st_, o = g.run(c + " 2>&1")
        outs.append({"cmd": c, "status": st_, "output": o.strip()})
        if st_ != 0:
            raise GuestError("dm-crypt key setup failed: %s: %s" % (c, o))
    count = read_opt(g, "%s/crash_dm_crypt_keys/count" % cfg)
    r.load(g, "file_load")
    lines = r.truth["load"]["kernel_debug_lines"]
    m = [re.search(r"dmcryptkeys=0x([0-9a-f]+)", l) for l in lines]
    m = [x for x in m if x]
    k = [
        re.search(
            r"Loaded dm crypt keys to kexec_buffer bufsz=0x([0-9a-f]+) memsz=0x([0-9a-f]+)",
            l,
        )
        for l in lines
    ]
    k = [x for x in k if x]
    keys = {
        "setup": outs,
        "configfs_count": count,
        "key_type": "logon",
        "key_description": DMCRYPT_KEY_DESC,
        "key_size": len(DMCRYPT_KEY_HEX) // 2,
        "dm_crypt_keys_addr": "0x" + m[-1].group(1) if m else None,
        "bufsz": "0x" + k[-1].group(1) if k else None,
        "memsz": "0x" + k[-1].group(2) if k else None,
    }
    r.truth["dm_crypt_keys"] = keys
    if keys["dm_crypt_keys_addr"]:
        r.truth["load"].setdefault("segment_roles", {})["dm_crypt_keys"] = keys[
            "dm_crypt_keys_addr"
        ]
    return r.finish(
        g,
        exp(True, "current", "match"),
        "configfs crash_dm_crypt_keys/k0 names a 32-byte logon key added with add_key(2); "
        "kexec_file_load copies the key into its own segment (crash_load_dm_crypt_keys) and passes "
        "dmcryptkeys=ADDR to the capture kernel; the range is left out of the capture memmap",
    )


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
    "kdump_mdf_memadd": sc_kdump_mdf_memadd,
    "file_cma": sc_file_cma,
    "file_dmcrypt": sc_file_dmcrypt,
}
_COMMON = [
    "file_base",
    "file_corrupt",
    "noload",
    "file_cpuadd",
    "file_memremove",
    "file_memadd",
    "load_stale_memadd",
    "load_hotplug_memadd",
]
# scenario names of each generation, in archive order (similar dumps adjacent)
BY_GEN = {
    "6.12": _COMMON + ["kdump_memadd"],
    "6.1": _COMMON + ["kdump_mdf_memadd"],
    "7.3": _COMMON + ["file_cma", "file_dmcrypt", "kdump_mdf_memadd"],
}
# 6.1 and 7.3 have no `noload` (not in their brief, and 6.1's load_hotplug_memadd ends with
# nothing loaded anyway): the 64 MiB budget of three kernels
for _g in ("6.1", "7.3"):
    BY_GEN[_g] = [n for n in BY_GEN[_g] if n != "noload"]


def dump_name(name):
    return name + (".kdump" if name.startswith("kdump_mdf") else ".elf")


def main():
    global GEN, BUILD
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--gen", default=os.environ.get("GEN") or "6.12", choices=GENERATIONS
    )
    ap.add_argument("--dump-dir")
    ap.add_argument("--work-dir")
    ap.add_argument("--json-dir")
    ap.add_argument("--kernel")
    ap.add_argument("--initrd")
    ap.add_argument(
        "--list", action="store_true", help="print this generation's scenario names"
    )
    ap.add_argument(
        "--list-dumps",
        action="store_true",
        help="print its dump file names (archive order)",
    )
    ap.add_argument(
        "--print-json-dir", action="store_true", help="print where its JSON files go"
    )
    ap.add_argument("scenarios", nargs="*")
    args = ap.parse_args()
    GEN = args.gen
    BUILD = build_dir(GEN)
    args.dump_dir = (
        args.dump_dir or os.environ.get("DUMP_DIR") or os.path.join(BUILD, "dumps")
    )
    args.work_dir = (
        args.work_dir or os.environ.get("WORK_DIR") or os.path.join(BUILD, "run")
    )
    args.json_dir = args.json_dir or json_dir_for(GEN)
    args.kernel = args.kernel or os.path.join(BUILD, "bzImage")
    args.initrd = args.initrd or os.path.join(BUILD, "initramfs.cpio")
    names = BY_GEN[GEN]
    if args.list:
        print("\n".join(names))
        return 0
    if args.list_dumps:
        print("\n".join(dump_name(n) for n in names))
        return 0
    if args.print_json_dir:
        print(args.json_dir)
        return 0
    args.scenarios = args.scenarios or names
    os.makedirs(args.dump_dir, exist_ok=True)
    os.makedirs(args.json_dir, exist_ok=True)
    qemu_ver = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True
    ).stdout.splitlines()[0]
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
        finally:
            for g in r.guests:  # a failed scenario must not leave its QEMU running
                g.close()
        r.truth.setdefault("generation", GEN)
        r.truth.setdefault("lab", {}).update(
            {
                "qemu": qemu_ver,
                "guest_memory": GUEST_MEM,
                "guest_smp": GUEST_SMP,
                "guest_append": getattr(r, "append", None)
                or r.truth.get("lab", {}).get("guest_append")
                or APPEND,
                "cpu": "Skylake-Client,-hypervisor (VMware identity via vmport + SMBIOS serial)",
            }
        )
        for f in ("kernel-release.txt", "source-version.txt"):
            p = os.path.join(BUILD, f)
            if os.path.exists(p):
                r.truth["lab"][f.split(".")[0].replace("-", "_")] = (
                    open(p).read().strip()
                )
        with open(os.path.join(args.json_dir, name + ".json"), "w") as f:
            json.dump(r.truth, f, indent=1, sort_keys=False)
            f.write("\n")
        print("scenario %s done in %.1fs" % (name, time.time() - t0))
    if failed:
        print("FAILED: %s" % " ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
