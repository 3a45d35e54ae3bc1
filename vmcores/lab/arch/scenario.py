#!/usr/bin/env python3
"""ppc64le (pseries) and arm64 (virt) scenarios on Debian's own kernels, with ground truth.

    lab/arch/scenario.py --arch ppc64le|arm64 [SCENARIO...]   (default: all of that arch)
    lab/arch/scenario.py --arch ARCH --list

Needs lab/arch/setup.sh ARCH first (kernel, initramfs.cpio in $ABUILD).  Each scenario boots
a fresh guest under QEMU TCG (lab/guest.py with the machine flags below), loads the crash
kernel with kexec-tools (kexec_load: Debian builds these kernels without KEXEC_FILE),
hot-plugs what the scenario says, records the guest's own view (/proc/iomem, /sys, the
device tree under /proc/device-tree, kexec -d output, QMP) and writes the dump
(dump-guest-memory) and <scenario>.json.  The "expected" section says what a correct checker
must conclude, derived from what the scenario did and what the guest showed, never from
drgn-crashhp.

pseries has no vmcoreinfo device, so QEMU's ELF has no VMCOREINFO note: add_vmcoreinfo_note()
appends one (the note bytes read from the dump at the physical address the guest printed in
/sys/kernel/vmcoreinfo) and a new program header table that points to it.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from guest import Guest, GuestError  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
PT_LOAD, PT_NOTE = 1, 4

ARCHES = {
    "ppc64le": dict(
        gen="ppc64le-6.12",
        qemu="qemu-system-ppc64",
        # TCG, multi-threaded; POWER10 is QEMU 10's default pseries CPU
        machine=["-M", "pseries", "-accel", "tcg,thread=multi"],
        mem="2G,slots=4,maxmem=6G",
        smp="1,maxcpus=4,threads=1",
        append="console=hvc0 crashkernel=512M",
        capture_append="console=hvc0 irqpoll nr_cpus=1 reset_devices",
        kernel_version="6.12.107+deb13-powerpc64le",
        package="linux-image-6.12.107+deb13-powerpc64le 6.12.107-1 (trixie)",
    ),
    "arm64": dict(
        gen="arm64-6.12",
        qemu="qemu-system-aarch64",
        machine=[
            "-M",
            "virt",
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "cortex-a72",
            "-device",
            "vmcoreinfo",
            "-object",
            "memory-backend-ram,id=vmem0,size=1G",
            "-device",
            "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0",
        ],
        mem="1G,maxmem=2G",
        smp="2",
        append="console=ttyAMA0 crashkernel=256M",
        capture_append="console=ttyAMA0 irqpoll nr_cpus=1 reset_devices",
        kernel_version="6.12.117+deb13-cloud-arm64",
        package="linux-image-6.12.117+deb13-cloud-arm64 6.12.117-1 (trixie)",
    ),
}
KEXEC = 'kexec -p -d%s /kernel --initrd=/capture.cpio --append="%s"'


def hx(v):
    return "0x%x" % v


def cache_root():
    return os.environ.get("ALAB") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "drgn-crashhp",
        "lab",
        "arch",
    )


# ------------------------------------------------------------------ ELF / FDT readers


def parse_elf64(read):
    eh = read(0, 64)
    if eh[:4] != b"\x7fELF" or eh[4] != 2 or eh[5] != 1:
        raise ValueError("not an ELF64 LE header: %r" % eh[:16])
    e_type, e_machine = struct.unpack_from("<HH", eh, 16)
    (e_phoff,) = struct.unpack_from("<Q", eh, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", eh, 54)
    raw = read(e_phoff, e_phnum * e_phentsize)
    phdrs = []
    for i in range(e_phnum):
        t, fl, off, va, pa, fsz, msz, al = struct.unpack_from("<IIQQQQQQ", raw, i * 56)
        phdrs.append(
            dict(
                p_type=t,
                p_flags=fl,
                p_offset=off,
                p_vaddr=va,
                p_paddr=pa,
                p_filesz=fsz,
                p_memsz=msz,
                p_align=al,
            )
        )
    return dict(
        e_type=e_type, e_machine=e_machine, e_phoff=e_phoff, e_phnum=e_phnum
    ), phdrs


class Dump:
    def __init__(self, path):
        self.f = open(path, "rb")
        self.ehdr, self.phdrs = parse_elf64(self._read)
        self.loads = [p for p in self.phdrs if p["p_type"] == PT_LOAD]

    def _read(self, off, size):
        self.f.seek(off)
        return self.f.read(size)

    def read_phys(self, paddr, size):
        out = b""
        while size:
            p = next(
                (
                    p
                    for p in self.loads
                    if p["p_paddr"] <= paddr < p["p_paddr"] + p["p_filesz"]
                ),
                None,
            )
            if p is None:
                raise ValueError("physical 0x%x not in dump" % paddr)
            n = min(size, p["p_paddr"] + p["p_filesz"] - paddr)
            out += self._read(p["p_offset"] + paddr - p["p_paddr"], n)
            paddr += n
            size -= n
        return out

    def end(self):
        return max(p["p_offset"] + p["p_filesz"] for p in self.phdrs)

    def close(self):
        self.f.close()


def parse_elfcorehdr(dump, paddr):
    ehdr, phdrs = parse_elf64(lambda off, size: dump.read_phys(paddr + off, size))
    return {
        "paddr": hx(paddr),
        "e_phnum": ehdr["e_phnum"],
        "pt_note": [
            [hx(p["p_paddr"]), p["p_memsz"]] for p in phdrs if p["p_type"] == PT_NOTE
        ],
        "pt_load": [
            [hx(p["p_paddr"]), hx(p["p_paddr"] + p["p_memsz"] - 1), hx(p["p_vaddr"])]
            for p in phdrs
            if p["p_type"] == PT_LOAD
        ],
    }


def parse_fdt(blob):
    """Minimal flattened-device-tree reader (the recipe's own, for ground truth):
    -> {"header": {...}, "memreserve": [[addr, size]], "nodes": {path: {prop: bytes}}}."""
    magic, total, off_struct, off_strings, off_rsv, version = struct.unpack_from(
        ">6I", blob, 0
    )
    if magic != 0xD00DFEED:
        raise ValueError("no FDT magic")
    size_struct = struct.unpack_from(">I", blob, 36)[0]
    rsv = []
    o = off_rsv
    while True:
        a, s = struct.unpack_from(">QQ", blob, o)
        o += 16
        if not a and not s:
            break
        rsv.append([a, s])
    nodes = {}
    path = []
    o = off_struct
    end = off_struct + size_struct
    while o < end:
        (tok,) = struct.unpack_from(">I", blob, o)
        o += 4
        if tok == 1:
            e = blob.index(b"\0", o)
            path.append(blob[o:e].decode())
            o = (e + 4) & ~3
            nodes["/" + "/".join(p for p in path if p)] = {}
        elif tok == 2:
            path.pop()
        elif tok == 3:
            ln, nameoff = struct.unpack_from(">II", blob, o)
            o += 8
            n0 = off_strings + nameoff
            name = blob[n0 : blob.index(b"\0", n0)].decode()
            nodes["/" + "/".join(p for p in path if p)][name] = blob[o : o + ln]
            o = (o + ln + 3) & ~3
        elif tok == 4:
            continue
        elif tok == 9:
            break
        else:
            raise ValueError("bad FDT token %d at %d" % (tok, o - 4))
    return {
        "header": {
            "totalsize": total,
            "version": version,
            "off_dt_struct": off_struct,
            "off_dt_strings": off_strings,
            "off_mem_rsvmap": off_rsv,
        },
        "memreserve": rsv,
        "nodes": nodes,
    }


def fdt_summary(fdt):
    """What the ground truth needs from an FDT: /cpus children, /chosen, memory nodes."""
    nodes = fdt["nodes"]

    def cells(b):
        return (
            [hx(v) for v in struct.unpack(">%dI" % (len(b) // 4), b)]
            if len(b) % 4 == 0
            else None
        )

    cpus = {}
    for p, props in nodes.items():
        if (
            p.startswith("/cpus/")
            and p.count("/") == 2
            and props.get("device_type") == b"cpu\0"
        ):
            cpus[p[len("/cpus/") :]] = {
                k: cells(v)
                for k, v in props.items()
                if k in ("reg", "ibm,ppc-interrupt-server#s")
            }
    chosen = {}
    for k, v in nodes.get("/chosen", {}).items():
        if k == "bootargs":
            chosen[k] = v.rstrip(b"\0").decode(errors="replace")
        elif (
            k.startswith("linux,")
            and k not in ("linux,initrd-start", "linux,initrd-end")
            or k in ("linux,initrd-start", "linux,initrd-end")
        ):
            chosen[k] = cells(v) if len(v) <= 64 else "%d bytes" % len(v)
    mem = {
        p: {
            k: cells(v) for k, v in props.items() if k in ("reg", "linux,usable-memory")
        }
        for p, props in nodes.items()
        if re.match(r"^/memory(@|$)", p)
    }
    drconf = {}
    d = nodes.get("/ibm,dynamic-reconfiguration-memory")
    if d:
        for k in ("ibm,lmb-size", "linux,drconf-usable-memory"):
            if k in d:
                drconf[k] = cells(d[k]) if len(d[k]) <= 64 else "%d bytes" % len(d[k])
        if "ibm,dynamic-memory-v2" in d:
            drconf["ibm,dynamic-memory-v2"] = decode_drmem_v2(
                d["ibm,dynamic-memory-v2"]
            )
    return {
        "header": fdt["header"],
        "memreserve": [[hx(a), hx(s)] for a, s in fdt["memreserve"]],
        "cpus": cpus,
        "chosen": chosen,
        "memory_nodes": mem,
        "dynamic_reconfiguration_memory": drconf,
    }


def decode_drmem_v2(b):
    """ibm,dynamic-memory-v2: u32 count, then sets of {u32 seq_lmbs, u64 base, u32 drc_index,
    u32 aa_index, u32 flags} (arch/powerpc/include/asm/drmem.h)."""
    (n,) = struct.unpack_from(">I", b, 0)
    out = []
    for i in range(n):
        seq, base, drc, aa, fl = struct.unpack_from(">IQIII", b, 4 + i * 24)
        out.append(
            {
                "seq_lmbs": seq,
                "base_addr": hx(base),
                "drc_index": hx(drc),
                "aa_index": aa,
                "flags": hx(fl),
            }
        )
    return out


# ------------------------------------------------------------------ VMCOREINFO note for pseries


def note_length(raw):
    namesz, descsz, _t = struct.unpack_from("<III", raw, 0)
    return 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)


def add_vmcoreinfo_note(path, paddr, size):
    """Append the VMCOREINFO note (read from the dump's own memory at paddr) and a copy of the
    program header table plus one PT_NOTE for it at the end of the file; point e_phoff there.
    The old table stays where it was (unused).  Returns what was done, for the JSON."""
    d = Dump(path)
    raw = d.read_phys(paddr, size)
    n = note_length(raw)
    note = raw[:n]
    if note[12:23] != b"VMCOREINFO\0":
        raise GuestError("no VMCOREINFO note at 0x%x: %r" % (paddr, raw[:32]))
    end = (os.path.getsize(path) + 7) & ~7
    phoff = end + ((len(note) + 7) & ~7)
    with open(path, "r+b") as f:
        f.seek(0)
        eh = bytearray(f.read(64))
        f.seek(d.ehdr["e_phoff"])
        old = f.read(d.ehdr["e_phnum"] * 56)
        new = struct.pack("<IIQQQQQQ", PT_NOTE, 0, end, 0, 0, len(note), len(note), 0)
        f.seek(end)
        f.write(note + b"\0" * (phoff - end - len(note)))
        f.write(new + old)
        struct.pack_into("<Q", eh, 32, phoff)
        struct.pack_into("<H", eh, 56, d.ehdr["e_phnum"] + 1)
        f.seek(0)
        f.write(eh)
    d.close()
    return {
        "vmcoreinfo_paddr": hx(paddr),
        "vmcoreinfo_size_sysfs": size,
        "note_bytes": len(note),
        "note_offset": end,
        "new_e_phoff": phoff,
        "new_e_phnum": d.ehdr["e_phnum"] + 1,
        "how": "PT_NOTE (first) + old program headers appended at the end of the file",
    }


# ------------------------------------------------------------------ guest state


def read_opt(g, path):
    st, out = g.run("cat %s 2>/dev/null" % path)
    return out.strip() if st == 0 else None


def parse_iomem(text):
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


def system_ram(iomem):
    """Emulate walk_system_ram_res() on /proc/iomem text: 'System RAM*' resources at any depth
    (virtio-mem's "System RAM (virtio_mem)" sits under its device), pre-order, without
    descending into a match (as lab/scenario.py system_ram_walk)."""
    res = []
    skip = None
    for depth, start, end, name in parse_iomem(iomem):
        if skip is not None and depth > skip:
            continue
        skip = None
        if name.startswith("System RAM"):
            res.append([start, end])
            skip = depth
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


def range_diff(a, b):
    out = []
    for rng in a:
        parts = [rng]
        for c in b:
            parts = [q for p in parts for q in subtract([p], c)]
        out += parts
    return out


def merge(ranges):
    out = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def collect_state(g, arch):
    st = {"proc_iomem": g.read("/proc/iomem")}
    cpu = "/sys/devices/system/cpu"
    st["cpu"] = {
        k: g.read("%s/%s" % (cpu, k)).strip() for k in ("possible", "present", "online")
    }
    st["cpu"]["crash_hotplug"] = read_opt(g, cpu + "/crash_hotplug")
    notes = {}
    out = g.check(
        "for d in %s/cpu[0-9]*; do echo ${d##*/} $(cat $d/crash_notes) "
        "$(cat $d/crash_notes_size) $(cat $d/online 2>/dev/null || echo -); done" % cpu
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
        "auto_online_blocks": read_opt(g, mem + "/auto_online_blocks"),
    }
    blocks = {}
    out = g.check(
        "for d in %s/memory[0-9]*; do echo ${d##*/} $(cat $d/state) "
        "$(cat $d/phys_index); done" % mem
    )
    for line in out.splitlines():
        if line.strip():
            name, state, idx = line.split()
            blocks[name] = {"state": state, "phys_index": "0x" + idx}
    st["memory"]["blocks"] = blocks
    st["sys_kernel"] = {
        k: read_opt(g, "/sys/kernel/" + k)
        for k in (
            "kexec_crash_loaded",
            "kexec_crash_size",
            "crash_elfcorehdr_size",
            "vmcoreinfo",
            "kexec_loaded",
        )
    }
    st["proc_cmdline"] = g.read("/proc/cmdline").strip()
    # the device tree as the running kernel sees it
    st["device_tree_cpus"] = g.check(
        "ls /proc/device-tree/cpus 2>/dev/null | grep -i -e '@' || true"
    ).split()
    st["device_tree_memory_nodes"] = g.check(
        "ls -d /proc/device-tree/memory* 2>/dev/null | sed 's|.*/||' || true"
    ).split()
    if arch == "ppc64le":
        out = g.check(
            "od -An -tx1 -v /proc/device-tree/rtas/linux,rtas-base "
            "/proc/device-tree/rtas/rtas-size | tr -d ' \\n'"
        )
        if len(out.strip()) == 16:
            st["rtas"] = [hx(int(out[:8], 16)), hx(int(out[8:16], 16))]
    st["dmesg_kexec"] = [
        l
        for l in g.check("dmesg").splitlines()
        if re.search(
            r"kexec|crash|elfcorehdr|Crash|hot-?add|hotplug|dlpar|DLPAR|virtio_mem|Reserving",
            l,
        )
    ]
    return st


def segments_from_kexec(out):
    segs = {}
    for m in re.finditer(
        r"segment\[(\d+)\]\.(bufsz|mem|memsz)\s*=\s*(0x[0-9a-fA-F]+)", out
    ):
        segs.setdefault(int(m.group(1)), {"index": int(m.group(1))})[m.group(2)] = int(
            m.group(3), 16
        )
    return [segs[i] for i in sorted(segs)]


def purgatory_symbols(out):
    """'sym: NAME value: V addr: A' lines of kexec -d: where kexec-tools put each symbol."""
    syms = {}
    for m in re.finditer(
        r"^sym: (\S+) value: ([0-9a-f]+) addr: ([0-9a-f]+)$", out, re.M
    ):
        syms.setdefault(m.group(1), set()).add(int(m.group(2), 16))
    return {
        k: sorted(hx(v) for v in vs)
        for k, vs in syms.items()
        if not k.startswith(".")
        and not k.startswith("_")
        and k
        not in (
            "memcpy",
            "memset",
            "sha256_process",
            "sha256_update.part.0",
            "printf",
            "putchar",
            "sprintf",
            "vsprintf",
            "setup_arch",
            "post_verification_setup_arch",
            "verify_sha256_digest",
            "sha256_starts",
            "sha256_update",
            "sha256_finish",
            "purgatory",
            "memcmp",
            "strlen",
        )
    }


# ------------------------------------------------------------------ one scenario


class Run:
    def __init__(self, arch, name, out_dir, dump_dir, work_dir):
        self.arch, self.name = arch, name
        self.cfg = ARCHES[arch]
        self.b = os.path.join(cache_root(), arch)
        self.out_dir, self.dump_dir, self.work_dir = out_dir, dump_dir, work_dir
        self.truth = {
            "scenario": name,
            "generation": self.cfg["gen"],
            "arch": arch,
            "dump": name + ".elf",
            "dump_format": "elf",
            "dump_producer": "QEMU dump-guest-memory (paging=false)",
            "dump_archive": "dumps.tar.zst",
            "hotplug_actions": [],
            "notes": [],
        }
        self.g = None

    def boot(self, disk=None, extra=()):
        c = self.cfg
        self.g = Guest(
            self.work_dir,
            os.path.join(self.b, "kernel"),
            os.path.join(self.b, "initramfs.cpio"),
            append=c["append"],
            mem=c["mem"],
            smp=c["smp"],
            qemu=c["qemu"],
            machine_args=c["machine"],
            disk=disk,
            extra_args=extra,
            name=self.name,
        )
        t = time.time()
        self.g.start()
        self.g.wait_ready(900)
        self.truth["boot_seconds"] = round(time.time() - t, 1)
        self.truth["kernel_release"] = self.g.check("uname -r").strip()
        self.truth["initial_state"] = {
            k: v
            for k, v in collect_state(self.g, self.arch).items()
            if k in ("cpu", "sys_kernel", "proc_iomem")
        }

    def load(self, hotplug):
        cmd = KEXEC % (" --hotplug" if hotplug else "", self.cfg["capture_append"])
        t = time.time()
        st, out = self.g.run(cmd + " 2>&1", 900)
        segs = segments_from_kexec(out)
        lines = out.splitlines()
        keep = [
            l for l in lines if not l.startswith("sym:") and not re.match(r"^\s*$", l)
        ]
        self.truth["load"] = {
            "mode": "kexec_load",
            "command": cmd,
            "hotplug_option": hotplug,
            "kexec_status": st,
            "kexec_seconds": round(time.time() - t, 1),
            "kexec_output": keep[-120:],
            "kexec_output_lines_total": len(lines),
            "purgatory_symbols_from_kexec_d": purgatory_symbols(out),
            "skipped_from_sha": [
                hx(int(m, 16))
                for m in re.findall(
                    r"Skipping segment mem: (0x[0-9a-f]+) from SHA", out
                )
            ],
        }
        m = re.search(r"kexec_load: entry = (0x[0-9a-f]+) flags = (0x[0-9a-f]+)", out)
        if m:
            self.truth["load"]["entry"], self.truth["load"]["flags"] = (
                m.group(1),
                m.group(2),
            )
        for key, rx in (
            ("kernel", r"kernel is ([0-9a-f]+)"),
            ("dt_offset", r"dt_offset is ([0-9a-f]+)"),
            ("backup_start", r"backup_start is ([0-9a-f]+)"),
            ("modified_cmdline", r"Modified cmdline:\s*(.*)"),
        ):
            m = re.search(rx, out)
            if m:
                self.truth["load"][key] = (
                    m.group(1) if key == "modified_cmdline" else "0x" + m.group(1)
                )
        self.truth["segments"] = [
            {k: (hx(v) if k != "index" else v) for k, v in s.items()} for s in segs
        ]
        if st != 0:
            raise GuestError("kexec failed (%d):\n%s" % (st, out[-3000:]))
        self.segs = segs
        return segs

    def add_dimm(self, idx, size):
        g = self.g
        before = g.read("/proc/iomem")
        qmp = [
            {
                "execute": "object-add",
                "arguments": {
                    "qom-type": "memory-backend-ram",
                    "id": "mem%d" % idx,
                    "size": size,
                },
            },
            {
                "execute": "device_add",
                "arguments": {
                    "driver": "pc-dimm",
                    "id": "dimm%d" % idx,
                    "memdev": "mem%d" % idx,
                },
            },
        ]
        info = g.add_dimm(idx, size)
        rng = [info["addr"], info["addr"] + info["size"] - 1]
        # pseries DLPAR: the guest onlines the LMBs itself; wait until /proc/iomem shows them
        t = time.time()
        while time.time() - t < 300:
            ram = system_ram(g.read("/proc/iomem"))
            if any(s <= rng[0] and rng[1] <= e for s, e in merge(ram)):
                break
            time.sleep(2)
        else:
            self.truth["notes"].append("DIMM range not in /proc/iomem after 300 s")
        g.run("sleep 3")
        self.truth["hotplug_actions"].append(
            {
                "action": "memory_add",
                "qmp": qmp,
                "dimm": {
                    "id": info.get("id"),
                    "addr": hx(info["addr"]),
                    "size": hx(info["size"]),
                    "slot": info.get("slot"),
                    "range": [hx(rng[0]), hx(rng[1])],
                },
                "seconds_until_in_iomem": round(time.time() - t, 1),
                "iomem_before": before,
                "onlined_by": "guest kernel (pseries DLPAR)",
            }
        )
        return rng

    def add_core(self, core_id):
        g = self.g
        cpus = g.qmp("query-hotpluggable-cpus")
        free = [
            c
            for c in cpus
            if c["props"].get("core-id") == core_id and "qom-path" not in c
        ]
        if not free:
            raise GuestError("core-id %d not free: %r" % (core_id, cpus))
        typ = free[0]["type"]
        args = {"driver": typ, "id": "core%d" % core_id, "core-id": core_id}
        g.qmp("device_add", **args)
        t = time.time()
        while time.time() - t < 300:
            online = g.read("/sys/devices/system/cpu/online").strip()
            present = g.read("/sys/devices/system/cpu/present").strip()
            if (
                present != self.truth["initial_state"]["cpu"]["present"]
                and online == present
            ):
                break
            time.sleep(2)
        g.run("sleep 3")
        self.truth["hotplug_actions"].append(
            {
                "action": "cpu_add",
                "qmp": [{"execute": "device_add", "arguments": args}],
                "core_id": core_id,
                "type": typ,
                "present_after": g.read("/sys/devices/system/cpu/present").strip(),
                "online_after": g.read("/sys/devices/system/cpu/online").strip(),
                "seconds_until_online": round(time.time() - t, 1),
                "onlined_by": "guest kernel (pseries DLPAR)",
            }
        )

    def grow_virtio_mem(self, size):
        g = self.g
        g.qmp(
            "qom-set",
            path="/machine/peripheral/vm0",
            property="requested-size",
            value=size,
        )
        t = time.time()
        while time.time() - t < 300:
            cur = g.qmp("qom-get", path="/machine/peripheral/vm0", property="size")
            if cur == size:
                break
            time.sleep(1)
        g.run("sleep 5")
        addr = g.qmp("qom-get", path="/machine/peripheral/vm0", property="memaddr")
        self.truth["hotplug_actions"].append(
            {
                "action": "virtio_mem_grow",
                "qmp": [
                    {
                        "execute": "qom-set",
                        "arguments": {
                            "path": "/machine/peripheral/vm0",
                            "property": "requested-size",
                            "value": size,
                        },
                    }
                ],
                "virtio_mem": {
                    "memaddr": hx(addr),
                    "size": hx(cur),
                    "requested": hx(size),
                    "range": [hx(addr), hx(addr + size - 1)],
                },
                "seconds": round(time.time() - t, 1),
                "onlined_by": "guest kernel (auto-online)",
            }
        )
        return [addr, addr + size - 1]

    def snapshot(self):
        g = self.g
        self.truth["guest_state"] = collect_state(g, self.arch)
        self.truth["qmp_memory_devices"] = g.qmp("query-memory-devices")
        try:
            self.truth["qmp_hotpluggable_cpus"] = g.qmp("query-hotpluggable-cpus")
        except (
            GuestError
        ) as e:  # arm64 virt: "machine does not support hot-plugging CPUs"
            self.truth["qmp_hotpluggable_cpus"] = {"error": str(e)}
        self.truth["lab"] = {
            "qemu": subprocess.run(
                [self.cfg["qemu"], "--version"], capture_output=True, text=True
            ).stdout.splitlines()[0],
            "qemu_cmdline": [a for a in g.cmdline if "/" not in a or a.startswith("-")],
            "guest_memory": self.cfg["mem"],
            "guest_smp": self.cfg["smp"],
            "guest_append": self.cfg["append"],
            "kernel_package": self.cfg["package"],
            "kexec_tools": g.check("kexec --version 2>&1").strip(),
        }

    def dump(self):
        path = os.path.join(self.dump_dir, self.name + ".elf")
        t = time.time()
        self.g.dump(path)
        self.truth["dump_seconds"] = round(time.time() - t, 1)
        if self.arch == "ppc64le":
            vi = self.truth["guest_state"]["sys_kernel"]["vmcoreinfo"].split()
            # "%pa %x": the size is printed in hex (0x1024 = VMCOREINFO_NOTE_SIZE)
            self.truth["vmcoreinfo_note_added"] = add_vmcoreinfo_note(
                path, int(vi[0], 16), int(vi[1], 16)
            )
        return path

    def close(self):
        if self.g:
            self.truth["guest_transcript"] = [[c, s] for c, s, _o in self.g.transcript]
            self.g.close()
            self.g = None

    # ---------------------------------------------------------------- observed (from the dump)
    def observe(self, path):
        d = Dump(path)
        obs = {}
        segs = self.segs
        roles = self.roles(d)
        obs["segment_roles"] = roles
        eh = segs[roles["elfcorehdr"]]
        hdr = parse_elfcorehdr(d, eh["mem"])
        obs["elfcorehdr"] = hdr
        header_ram = merge([[int(s, 16), int(e, 16)] for s, e, _v in hdr["pt_load"]])
        obs["observed_header_ram"] = [[hx(s), hx(e)] for s, e in header_ram]
        st = self.truth["guest_state"]
        crash = self.crash_region()
        self.truth["crash_kernel_region"] = (
            [hx(crash[0]), hx(crash[1])] if crash else None
        )
        ram_vs_header(self.truth)
        # CPU notes: which present CPUs' crash_notes have a PT_NOTE in the header
        notes = {int(a, 16) for a, _n in hdr["pt_note"]}
        obs["cpu_note_in_header"] = {
            c: int(v["crash_notes"], 16) in notes for c, v in st["cpu"]["cpus"].items()
        }
        if roles.get("fdt") is not None:
            f = segs[roles["fdt"]]
            fdt = parse_fdt(d.read_phys(f["mem"], f["bufsz"]))
            obs["fdt"] = fdt_summary(fdt)
        # digest: hash the hashed segments from the dump, find digest and regions in purgatory
        obs["digest"] = self.digest_facts(d, roles)
        d.close()
        self.truth["observed"] = obs
        obs["purgatory_variables"] = purgatory_variables(self.truth, path)
        return obs

    def roles(self, d):
        """Segment roles from kexec -d's own lines (entry, kernel, dt_offset, backup_start,
        elfcorehdr= on the command line) and, where it prints none, from the segment's bytes in
        the dump (FDT magic, ELF core header, cpio newc, arm64 Image magic)."""
        L = self.truth["load"]
        r = {
            "kernel": None,
            "initrd": None,
            "elfcorehdr": None,
            "purgatory": None,
            "fdt": None,
            "backup": None,
        }
        how = {}
        ent = int(L.get("entry", "0x0"), 16)
        m = re.search(r"elfcorehdr=(\d+)K", L.get("modified_cmdline", ""))
        for s in self.segs:
            i, mem = s["index"], s["mem"]
            head = d.read_phys(mem, 64)
            if mem <= ent < mem + s["memsz"]:
                r["purgatory"], how["purgatory"] = i, "contains kexec_load entry"
            elif L.get("kernel") and mem == int(L["kernel"], 16):
                r["kernel"], how["kernel"] = i, "kexec -d 'kernel is'"
            elif head[0x38:0x3C] == b"ARM\x64":
                r["kernel"], how["kernel"] = i, "arm64 Image magic at 0x38"
            elif L.get("dt_offset") and mem == int(L["dt_offset"], 16):
                r["fdt"], how["fdt"] = i, "kexec -d 'dt_offset is'"
            elif head[:4] == b"\xd0\x0d\xfe\xed":
                r["fdt"], how["fdt"] = i, "FDT magic"
            elif L.get("backup_start") and mem == int(L["backup_start"], 16):
                r["backup"], how["backup"] = i, "kexec -d 'backup_start is'"
            elif m and mem == int(m.group(1)) * 1024:
                r["elfcorehdr"], how["elfcorehdr"] = (
                    i,
                    "elfcorehdr=%sK on the capture cmdline" % m.group(1),
                )
            elif head[:4] == b"\x7fELF" and head[16] == 4:
                r["elfcorehdr"], how["elfcorehdr"] = i, "ELF ET_CORE header"
            elif head[:6] == b"070701":
                r["initrd"], how["initrd"] = i, "cpio newc magic"
        r["how_found"] = how
        return r

    def crash_region(self):
        for l in self.truth["guest_state"]["dmesg_kexec"]:
            m = re.search(r"Reserving (\d+)MB of memory at (\d+)MB for crashkernel", l)
            if m:
                return [
                    int(m.group(2)) * MiB,
                    int(m.group(2)) * MiB + int(m.group(1)) * MiB - 1,
                ]
            m = re.search(r"crashkernel reserved: (0x[0-9a-f]+) - (0x[0-9a-f]+)", l)
            if m:
                return [int(m.group(1), 16), int(m.group(2), 16) - 1]
        for _d, s, e, n in parse_iomem(self.truth["guest_state"]["proc_iomem"]):
            if n == "Crash kernel":
                return [s, e]
        return None

    def digest_facts(self, d, roles):
        skipped = {int(a, 16) for a in self.truth["load"]["skipped_from_sha"]}
        pur = self.segs[roles["purgatory"]]
        h = hashlib.sha256()
        regions = []
        for s in self.segs:
            if s["index"] == roles["purgatory"] or s["mem"] in skipped:
                continue
            h.update(d.read_phys(s["mem"], s["memsz"]))
            regions.append((s["mem"], s["memsz"]))
        dig = h.digest()
        blob = d.read_phys(pur["mem"], pur["memsz"])
        reg_bytes = b"".join(struct.pack("<QQ", a, n) for a, n in regions)
        do = blob.find(dig)
        ro = blob.find(reg_bytes)
        return {
            "hashed_segments": [hx(a) for a, _ in regions],
            "computed_sha256": dig.hex(),
            "digest_offset_in_purgatory": hx(do) if do >= 0 else None,
            "regions_offset_in_purgatory": hx(ro) if ro >= 0 else None,
            "regions_to_digest": (do - ro) if do >= 0 and ro >= 0 else None,
            "stored_digest_at_offset": blob[do : do + 32].hex() if do >= 0 else None,
            "how": "sha256 over [mem, mem+memsz) of every segment except purgatory and the ones "
            "kexec -d said it skipped, read from the dump; then bytes.find() of that digest "
            "and of the packed (u64 start, u64 len) regions in the purgatory segment",
        }

    def write(self):
        p = os.path.join(self.out_dir, self.name + ".json")
        with open(p, "w") as f:
            json.dump(self.truth, f, indent=1, sort_keys=False)
            f.write("\n")
        return p


def ram_vs_header(t):
    """observed RAM now (walk_system_ram_res emulation minus the crash region) against the
    header's PT_LOADs: missing / extra ranges."""
    obs = t["observed"]
    header_ram = [[int(a, 16), int(b, 16)] for a, b in obs["observed_header_ram"]]
    ram_now = merge(system_ram(t["guest_state"]["proc_iomem"]))
    crash = t.get("crash_kernel_region")
    if crash:
        ram_now = subtract(ram_now, [int(crash[0], 16), int(crash[1], 16)])
    obs["iomem_ram_now_minus_crash"] = [[hx(s), hx(e)] for s, e in ram_now]
    obs["missing_ram_vs_iomem"] = [
        [hx(s), hx(e)] for s, e in range_diff(ram_now, header_ram)
    ]
    obs["extra_ram_vs_iomem"] = [
        [hx(s), hx(e)] for s, e in range_diff(header_ram, ram_now)
    ]


def arm_expected(t):
    obs = t["observed"]
    missing = [[int(a, 16), int(b, 16)] for a, b in obs["missing_ram_vs_iomem"]]
    extra = [[int(a, 16), int(b, 16)] for a, b in obs["extra_ram_vs_iomem"]]
    words = []
    if missing:
        words.append(
            "header stale: missing RAM "
            + ", ".join("%s-%s" % (hx(a), hx(b)) for a, b in missing)
        )
        vm = [a for a in t["hotplug_actions"] if a["action"] == "virtio_mem_grow"]
        if vm:
            words[-1] += (
                " (the virtio-mem growth %s-%s; nothing on arm64 rewrites the header)"
                % tuple(vm[0]["virtio_mem"]["range"])
            )
    if extra:
        words.append(
            "header has RAM that is gone: "
            + ", ".join("%s-%s" % (hx(a), hx(b)) for a, b in extra)
        )
    if not missing and not extra:
        words.append("elfcorehdr current")
    words.append("digest match")
    t["expected"] = exp(
        True,
        "stale" if missing or extra else "current",
        "match",
        missing,
        extra,
        verdict_words="; ".join(words),
    )


def purgatory_variables(t, dump_path):
    """The purgatory's variables that kexec-tools set (kexec -d prints 'sym: NAME value: V'
    for each relocation against them): their offset in the purgatory segment and the u64 the
    dump holds there (ppc64: kernel, dt_offset, backup_start, stack, my_toc; arm64:
    arm64_kernel_entry, arm64_dtb_addr)."""
    syms = t["load"].get("purgatory_symbols_from_kexec_d") or {}
    roles = t["observed"]["segment_roles"]
    pur = t["segments"][roles["purgatory"]]
    pm, pz = int(pur["mem"], 16), int(pur["memsz"], 16)
    d = Dump(dump_path)
    out = {}
    for name, vals in sorted(syms.items()):
        for v in vals:
            a = int(v, 16)
            if pm <= a < pm + pz and name not in ("purgatory", "run_at_load"):
                out[name] = {
                    "addr": hx(a),
                    "offset_in_purgatory": hx(a - pm),
                    "u64_in_dump": hx(struct.unpack("<Q", d.read_phys(a, 8))[0]),
                }
    d.close()
    return out


def exp(
    crash_loaded,
    elfcorehdr,
    digest,
    missing=(),
    extra=(),
    verdict_words="",
    cpus_missing_from_fdt=None,
):
    e = {
        "crash_loaded": crash_loaded,
        "elfcorehdr": elfcorehdr,
        "missing_ram": [[hx(s), hx(t)] for s, t in missing],
        "extra_ram": [[hx(s), hx(t)] for s, t in extra],
        "digest": digest,
        "in_words": verdict_words,
    }
    if cpus_missing_from_fdt is not None:
        e["present_cpus_missing_from_fdt"] = cpus_missing_from_fdt
    return e


def cpu_fdt_gap(t):
    """Present CPUs whose node is not in the loaded FDT's /cpus (ppc64: by reg = thread id)."""
    obs = t["observed"]
    regs = set()
    for _n, p in obs.get("fdt", {}).get("cpus", {}).items():
        for v in p.get("ibm,ppc-interrupt-server#s") or p.get("reg") or []:
            regs.add(int(v, 16))
    present = parse_cpulist(t["guest_state"]["cpu"]["present"])
    return [c for c in present if c not in regs]


def parse_cpulist(text):
    out = []
    for part in text.strip().split(","):
        if "-" in part:
            a, b = part.split("-")
            out += range(int(a), int(b) + 1)
        elif part:
            out.append(int(part))
    return out


def finish(r, desc):
    """Dump, observe, close; the scenario fills expected afterwards."""
    r.truth["description"] = desc
    r.snapshot()
    path = r.dump()
    r.close()
    r.observe(path)
    return path


# ------------------------------------------------------------------ ppc64le scenarios

DIMM = 1 * GiB


def ppc_generic(r, hotplug, dimm=False, core=False):
    r.boot()
    r.load(hotplug)
    if dimm:
        r.add_dimm(1, DIMM)
    if core:
        r.add_core(1)
    what = (
        ("kexec -p %s" % ("--hotplug" if hotplug else "(no --hotplug)"))
        + (", +1 GiB pc-dimm" if dimm else "")
        + (", +1 core (core-id 1)" if core else "")
    )
    finish(r, what)
    ppc_expected(r.truth)
    return r


def ppc_expected(t):
    """expected of a ppc64le scenario, from its observed and guest_state sections only (so
    --reexpect can recompute it from the JSON)."""
    obs = t["observed"]
    rtas = rtas_ranges(t)
    missing = [[int(a, 16), int(b, 16)] for a, b in obs["missing_ram_vs_iomem"]]
    extra = range_diff(
        [[int(a, 16), int(b, 16)] for a, b in obs["extra_ram_vs_iomem"]], rtas
    )
    gap = cpu_fdt_gap(t)
    words = []
    if missing:
        words.append(
            "header stale: missing RAM "
            + ", ".join("%s-%s" % (hx(a), hx(b)) for a, b in missing)
        )
    else:
        words.append("elfcorehdr current")
    if extra:
        words.append(
            "header has RAM that is gone: "
            + ", ".join("%s-%s" % (hx(a), hx(b)) for a, b in extra)
        )
    if gap:
        words.append(
            "present CPU %s missing from FDT /cpus (a panic there hangs the capture kernel)"
            % ",".join(map(str, gap))
        )
    else:
        words.append("FDT /cpus has every present CPU")
    words.append("digest match")
    t["expected"] = exp(
        True,
        "stale" if missing or extra else "current",
        "match",
        missing,
        extra,
        verdict_words="; ".join(words),
        cpus_missing_from_fdt=gap,
    )
    t["expected"]["included_ram"] = [
        {
            "what": "RTAS region (kexec-tools and the kernel add it on purpose; inside the crash "
            "region; kexec-tools rounds its end up to a page, the kernel does not)",
            "range": [hx(a), hx(b)],
        }
        for a, b in rtas
    ]


def rtas_ranges(t):
    """RTAS from the booted device tree (/proc/device-tree/rtas linux,rtas-base + rtas-size),
    page-rounded as kexec-tools' ppc64 header has it."""
    rt = t["guest_state"].get("rtas")
    if not rt:
        return []
    base, size = int(rt[0], 16), int(rt[1], 16)
    return [[base, base + ((size + 0xFFF) & ~0xFFF) - 1]]


def sc_ppc_hp_base(r):
    return ppc_generic(r, True)


def sc_ppc_hp_memadd(r):
    return ppc_generic(r, True, dimm=True)


def sc_ppc_hp_cpuadd(r):
    return ppc_generic(r, True, core=True)


def sc_ppc_load_memadd(r):
    return ppc_generic(r, False, dimm=True)


def sc_ppc_load_cpuadd(r):
    return ppc_generic(r, False, core=True)


def sc_noload(r):
    r.boot()
    r.truth["load"] = {"mode": "none", "command": None, "hotplug_option": False}
    r.truth["segments"] = []
    r.truth["description"] = "nothing loaded (kexec_crash_image NULL)"
    r.snapshot()
    r.dump()
    r.close()
    r.truth["observed"] = {"elfcorehdr": None}
    r.truth["expected"] = exp(
        False, "none", "n/a", verdict_words="no crash kernel loaded"
    )
    return r


def corrupt_from(r, base_name, seg_role):
    """Copy base dump, flip 16 bytes in a hashed segment."""
    base_json = json.load(open(os.path.join(r.out_dir, base_name + ".json")))
    src = os.path.join(r.dump_dir, base_name + ".elf")
    dst = os.path.join(r.dump_dir, r.name + ".elf")
    shutil.copyfile(src, dst)
    idx = base_json["observed"]["segment_roles"][seg_role]
    seg = base_json["segments"][idx]
    paddr = int(seg["mem"], 16) + 0x1000
    d = Dump(dst)
    p = next(p for p in d.loads if p["p_paddr"] <= paddr < p["p_paddr"] + p["p_filesz"])
    off = p["p_offset"] + paddr - p["p_paddr"]
    d.close()
    with open(dst, "r+b") as f:
        f.seek(off)
        orig = f.read(16)
        new = bytes(b ^ 0xFF for b in orig)
        f.seek(off)
        f.write(new)
    t = dict(base_json)
    t.update(
        {
            "scenario": r.name,
            "dump": r.name + ".elf",
            "derived_from": base_name,
            "description": "copy of %s.elf with 16 bytes XOR 0xff at %s segment mem + 0x1000"
            % (base_name, seg_role),
            "corruption": {
                "segment_index": idx,
                "segment_role": seg_role,
                "segment_mem": seg["mem"],
                "phys_addr": hx(paddr),
                "file_offset": off,
                "length": 16,
                "xor": "0xff",
                "original_bytes": orig.hex(),
                "new_bytes": new.hex(),
            },
        }
    )
    # the digest as a checker would recompute it now, from the corrupted file
    d = Dump(dst)
    pur = base_json["observed"]["segment_roles"]["purgatory"]
    hashed = base_json["observed"]["digest"]["hashed_segments"]
    h = hashlib.sha256()
    for sg in base_json["segments"]:
        if sg["mem"] in hashed and sg["index"] != pur:
            h.update(d.read_phys(int(sg["mem"], 16), int(sg["memsz"], 16)))
    d.close()
    t["observed"] = dict(base_json["observed"])
    t["observed"]["digest_recomputed_after_corruption"] = h.hexdigest()
    t["observed"]["digest_stored_in_purgatory"] = base_json["observed"]["digest"][
        "stored_digest_at_offset"
    ]
    e = dict(base_json["expected"])
    e["digest"] = "mismatch"
    e["in_words"] = e["in_words"].replace(
        "digest match", "digest MISMATCH (%s segment changed)" % seg_role
    )
    t["expected"] = e
    r.truth = t
    return r


def sc_ppc_corrupt(r):
    return corrupt_from(r, "ppc_hp_base", "initrd")


def sc_ppc_kdump(r):
    """--hotplug, +DIMM, +core, then panic (sysrq c) on CPU 0; capture kernel dd's /proc/vmcore
    to a raw virtio disk."""
    disk = os.path.join(r.work_dir, r.name + ".disk")
    with open(disk, "wb") as f:
        f.truncate(4 * GiB)
    r.boot(disk=disk)
    r.load(True)
    rng = r.add_dimm(1, DIMM)
    r.add_core(1)
    r.truth["description"] = (
        "kexec -p --hotplug, +1 GiB DIMM, +1 core, echo c > "
        "/proc/sysrq-trigger on CPU 0; the capture kernel dd's /proc/vmcore "
        "to a raw virtio disk"
    )
    r.snapshot()
    g = r.g
    g.send_raw(
        "taskset -c 0 sh -c 'echo c > /proc/sysrq-trigger' 2>/dev/null || echo c > /proc/sysrq-trigger\n"
    )
    t = time.time()
    try:
        g.wait_for(r"@@CAPTURE-DONE@@", 1800)
    finally:
        r.truth["capture_seconds"] = round(time.time() - t, 1)
        full = g.output_since_start()
        r.truth["capture_serial_log"] = [
            l
            for l in full[full.rfind("Kernel panic") - 3000 :].splitlines()
            if l.strip()
        ][-150:]
        r.close()
    # truncate the raw disk to the ELF's last segment end
    d = Dump(disk)
    size = d.end()
    d.close()
    dst = os.path.join(r.dump_dir, r.name + ".elf")
    with open(disk, "rb") as src, open(dst, "wb") as out:
        left = size
        while left:
            chunk = src.read(min(left, 16 * MiB))
            if chunk.count(0) == len(chunk):
                out.seek(len(chunk), 1)
            else:
                out.write(chunk)
            left -= len(chunk)
        out.truncate(size)
    os.unlink(disk)
    r.truth["dump_format"] = "elf"
    r.truth["dump_producer"] = (
        "kdump: the capture kernel's /proc/vmcore (dd to a raw virtio disk)"
    )
    r.truth["dump_size"] = size
    d = Dump(dst)
    ram = merge([[p["p_paddr"], p["p_paddr"] + p["p_memsz"] - 1] for p in d.loads])
    r.truth["observed"] = {
        "vmcore_e_phnum": d.ehdr["e_phnum"],
        "vmcore_pt_load_ram": [[hx(a), hx(b)] for a, b in ram],
        "vmcore_pt_note": [
            [hx(p["p_paddr"]), p["p_filesz"]] for p in d.phdrs if p["p_type"] == PT_NOTE
        ],
        "dimm_in_vmcore": any(a <= rng[0] and rng[1] <= b for a, b in ram),
    }
    d.close()
    # as x86 kdump_memadd: the header that was in effect (now /proc/vmcore's) is judged
    r.truth["expected"] = exp(
        True,
        "current" if r.truth["observed"]["dimm_in_vmcore"] else "stale",
        "n/a",
        verdict_words="kdump capture after --hotplug +DIMM +core: the header "
        "in effect at panic %s the DIMM; digest n/a (the crash region is "
        "not in a kdump vmcore)"
        % ("had" if r.truth["observed"]["dimm_in_vmcore"] else "LACKED"),
    )
    return r


# ------------------------------------------------------------------ arm64 scenarios

VMEM_GROW = 512 * MiB


def sc_arm_base(r):
    r.boot()
    r.load(False)
    finish(r, "kexec -p (arm64 virt), no hotplug")
    arm_expected(r.truth)
    return r


def sc_arm_vmem_grow(r):
    r.boot()
    r.load(False)
    r.grow_virtio_mem(VMEM_GROW)
    finish(r, "kexec -p (arm64 virt), then virtio-mem requested-size 0 -> 512 MiB")
    arm_expected(r.truth)
    return r


def sc_arm_corrupt(r):
    return corrupt_from(r, "arm_base", "initrd")


SCENARIOS = {
    "ppc64le": {
        "ppc_hp_base": sc_ppc_hp_base,
        "ppc_hp_memadd": sc_ppc_hp_memadd,
        "ppc_hp_cpuadd": sc_ppc_hp_cpuadd,
        "ppc_load_memadd": sc_ppc_load_memadd,
        "ppc_load_cpuadd": sc_ppc_load_cpuadd,
        "ppc_noload": sc_noload,
        "ppc_corrupt": sc_ppc_corrupt,
        "ppc_kdump": sc_ppc_kdump,
    },
    "arm64": {
        "arm_base": sc_arm_base,
        "arm_vmem_grow": sc_arm_vmem_grow,
        "arm_corrupt": sc_arm_corrupt,
    },
}


# Order of the dumps in the archive: similar memory next to each other, so zstd's long-range
# window finds the repeats (a corrupt copy right after its base, CPU adds before DIMM adds).
ARCHIVE_ORDER = {
    "ppc64le": [
        "ppc_hp_base",
        "ppc_corrupt",
        "ppc_hp_cpuadd",
        "ppc_load_cpuadd",
        "ppc_noload",
        "ppc_hp_memadd",
        "ppc_load_memadd",
        "ppc_kdump",
    ],
    "arm64": ["arm_base", "arm_corrupt", "arm_vmem_grow"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=sorted(ARCHES))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--list-dumps", action="store_true")
    ap.add_argument("--print-json-dir", action="store_true")
    ap.add_argument(
        "--purgatory-vars",
        action="store_true",
        help="(re)compute observed.purgatory_variables of existing JSONs from dumps",
    )
    ap.add_argument(
        "--reexpect",
        action="store_true",
        help="recompute observed RAM diff and 'expected' of existing JSONs from "
        "their recorded data (no guest)",
    )
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    out_dir = os.path.join(os.path.dirname(os.path.dirname(HERE)), a.arch)
    if a.list:
        print("\n".join(SCENARIOS[a.arch]))
        return
    if a.list_dumps:
        print(" ".join(n + ".elf" for n in ARCHIVE_ORDER[a.arch]))
        return
    if a.print_json_dir:
        print(out_dir)
        return
    if a.purgatory_vars:
        dd = os.environ.get("DUMP_DIR") or os.path.join(cache_root(), a.arch, "dumps")
        for name in a.names or list(SCENARIOS[a.arch]):
            p = os.path.join(out_dir, name + ".json")
            t = json.load(open(p))
            if (
                t["load"].get("mode") != "kexec_load"
                or "segment_roles" not in t["observed"]
            ):
                continue
            t["observed"]["purgatory_variables"] = purgatory_variables(
                t, os.path.join(dd, t["dump"])
            )
            with open(p, "w") as f:
                json.dump(t, f, indent=1)
                f.write("\n")
            print(name, t["observed"]["purgatory_variables"])
        return
    if a.reexpect:
        for name in a.names or list(SCENARIOS[a.arch]):
            p = os.path.join(out_dir, name + ".json")
            t = json.load(open(p))
            if (
                t["load"]["mode"] != "kexec_load"
                or t.get("derived_from")
                or "kdump" in name
            ):
                continue
            if "crash_kernel_region" not in t:
                r = Run(a.arch, name, out_dir, "", "")
                r.truth = t
                crash = r.crash_region()
                t["crash_kernel_region"] = (
                    [hx(crash[0]), hx(crash[1])] if crash else None
                )
            ram_vs_header(t)
            (ppc_expected if a.arch == "ppc64le" else arm_expected)(t)
            with open(p, "w") as f:
                json.dump(t, f, indent=1)
                f.write("\n")
            print(name, t["expected"]["in_words"])
        return
    b = os.path.join(cache_root(), a.arch)
    dump_dir = os.environ.get("DUMP_DIR") or os.path.join(b, "dumps")
    work_dir = os.environ.get("WORK_DIR") or os.path.join(b, "run")
    for d in (out_dir, dump_dir, work_dir):
        os.makedirs(d, exist_ok=True)
    for name in a.names or list(SCENARIOS[a.arch]):
        r = Run(a.arch, name, out_dir, dump_dir, work_dir)
        t = time.time()
        try:
            SCENARIOS[a.arch][name](r)
        finally:
            r.close()
        r.truth["scenario_seconds"] = round(time.time() - t, 1)
        if name.endswith("corrupt"):
            r.truth["scenario_seconds_note"] = "file copy only"
        print(
            "%s: %.0f s -> %s; expected: %s"
            % (name, time.time() - t, r.write(), r.truth["expected"]["in_words"]),
            flush=True,
        )


if __name__ == "__main__":
    main()
