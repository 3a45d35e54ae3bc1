"""A real panic on a Debian lab guest, and the dump kdump-tools writes.

    debian_panic.py GEN [OUT_DIR] [--makedump-args ARGS] [--name NAME]
        GEN = 6.1 (Debian 12) | 6.12 | 7.3 (Debian 13)

Boots the image's GEN kernel (kdump-tools loads the crash kernel at boot, with
its defaults), hot-adds a 128 MiB DIMM, records the ground truth from the
guest's own interfaces (the DIMM from QMP, /proc/iomem, the crash hotplug
files, kdump-tools' status and journal), panics with sysrq-c and lets the
crash kernel's kdump-tools-dump.service save /var/crash/<stamp>/dump.<stamp>
with its default makedumpfile options and reboot (QEMU runs with -no-reboot,
so it exits). Then it boots the system again from the same disk, lists
/var/crash and runs drgn-crashhp and contrib/batch_triage.py there, and
copies /var/crash to OUT_DIR (default: the image's cache folder,
panic-GEN/, or NAME) with truth.json. Before the panic it installs a probe
that the capture kernel runs before kdump-tools saves the dump: the PT_LOAD
ranges of its /proc/vmcore go to /var/crash/crashhp-vmcore.json
(truth["capture_vmcore"]), the ground truth of what the capture had.
--makedump-args sets MAKEDUMP_ARGS in /etc/default/kdump-tools and restarts
kdump-tools first. Stdlib only; the host needs debugfs (e2fsprogs) and
qemu-img.
"""

import base64
import json
import os
import shutil
import subprocess
import time

from debian_guest import DebianGuest, image_dir, payload, suite

#: Run by the crash kernel before kdump-tools saves the dump (a drop-in of
#: kdump-tools-dump.service): the PT_LOAD ranges of its /proc/vmcore, i.e.
#: the RAM the elfcorehdr it was given describes, and the file's size, to
#: /var/crash/crashhp-vmcore.json. The ground truth of what the capture
#: could save, from the capture kernel itself.
VMCORE_PROBE = r"""import json, os, struct
f = open("/proc/vmcore", "rb")
eh = f.read(64)
phoff, = struct.unpack_from("<Q", eh, 32)
phentsize, phnum = struct.unpack_from("<HH", eh, 54)
f.seek(phoff)
loads = []
for i in range(phnum):
    p_type, _, _, vaddr, paddr, filesz, memsz = struct.unpack_from(
        "<IIQQQQQ", f.read(phentsize))
    if p_type == 1:
        loads.append([paddr, memsz, vaddr])
with open("/var/crash/crashhp-vmcore.json", "w") as out:
    json.dump({"loads": loads, "size": os.stat("/proc/vmcore").st_size,
               "uname": os.uname().release}, out)
"""

VMCORE_PROBE_UNIT = """[Service]
ExecStartPre=-/usr/bin/python3 /usr/local/sbin/crashhp-vmcore-probe
"""


def sh(g, cmd, timeout=1800):
    status, out = g.run(cmd, timeout)
    return {"command": cmd, "status": status, "output": out}


def panic(gen, out=None, makedump_args=None, name=None):
    """*makedump_args*: set MAKEDUMP_ARGS in /etc/default/kdump-tools (and
    restart kdump-tools, as its comment says) before the DIMM and the panic.
    *name*: the result folder's name (default panic-GEN)."""
    img = image_dir(suite=suite(gen))
    out = out or os.path.join(img, name or "panic-" + gen)
    work = os.path.join(out, "run")
    os.makedirs(work, exist_ok=True)
    disk = payload(os.path.join(work, "payload.img"), suite=suite(gen))
    truth = {"gen": gen, "steps": {}, "makedump_args": makedump_args}
    t0 = time.time()
    g = DebianGuest(work, img, gen, payload=disk, name="panic")
    truth["release"] = g.release
    truth["append"] = g.cmdline[g.cmdline.index("-append") + 1]
    with g:
        g.wait_ready()
        truth["boot_seconds"] = round(g.boot_seconds)
        truth["installed"] = g.install_package()
        truth["kexec_crash_loaded_at_boot"] = g.check(
            "cat /sys/kernel/kexec_crash_loaded"
        ).strip()
        truth["kdump_config_status_at_boot"] = sh(g, "kdump-config status")
        if makedump_args is not None:
            # What a user does after reading CHP072: the dump level in
            # kdump-tools' defaults file, then kdump-tools reloaded.
            g.check(
                "sed -i '/^#* *MAKEDUMP_ARGS=/d' /etc/default/kdump-tools && "
                "echo 'MAKEDUMP_ARGS=\"%s\"' >> /etc/default/kdump-tools"
                % makedump_args
            )
            truth["makedump_args_set"] = sh(
                g,
                "grep -n MAKEDUMP_ARGS /etc/default/kdump-tools; "
                "systemctl restart kdump-tools; echo restart=$?; "
                "cat /sys/kernel/kexec_crash_loaded",
            )
        dimm = g.add_dimm(1)
        truth["dimm"] = {
            "addr": dimm["addr"],
            "size": dimm["size"],
            "range": [dimm["addr"], dimm["addr"] + dimm["size"] - 1],
        }
        g.check("sleep 10; udevadm settle")
        for name, cmd in [
            ("iomem", "cat /proc/iomem"),
            ("memory_blocks", "grep -H . /sys/devices/system/memory/memory*/state"),
            (
                "crash_hotplug",
                "cat /sys/devices/system/memory/crash_hotplug "
                "/sys/devices/system/cpu/crash_hotplug",
            ),
            ("crash_elfcorehdr_size", "cat /sys/kernel/crash_elfcorehdr_size"),
            ("kexec_crash_loaded", "cat /sys/kernel/kexec_crash_loaded"),
            ("kexec_crash_size", "cat /sys/kernel/kexec_crash_size"),
            ("cpus", "grep -H . /sys/devices/system/cpu/{possible,present,online}"),
            (
                "kdump_config_journal",
                "journalctl -b --no-pager -o short-monotonic "
                "-t kdump-config -t kdump-tools",
            ),
            ("kdump_tools_defaults", "grep -v '^#' /etc/default/kdump-tools | grep ."),
            ("makedumpfile", "makedumpfile -v 2>&1 | head -2"),
            ("cmdline", "cat /proc/cmdline"),
            (
                "live_report",
                "drgn-crashhp --json --no-digest 2>&1 | python3 -c "
                '\'import json,sys; d=json.load(sys.stdin); print(d["verdict"], '
                '[f["code"] for f in d["findings"]])\'',
            ),
        ]:
            truth["steps"][name] = sh(g, cmd)
        # The probe of the capture's /proc/vmcore (see VMCORE_PROBE).
        for path, text in [
            ("/usr/local/sbin/crashhp-vmcore-probe", VMCORE_PROBE),
            (
                "/etc/systemd/system/kdump-tools-dump.service.d/crashhp-probe.conf",
                VMCORE_PROBE_UNIT,
            ),
        ]:
            g.check(
                "mkdir -p %s && echo %s | base64 -d > %s"
                % (
                    os.path.dirname(path),
                    base64.b64encode(text.encode()).decode(),
                    path,
                )
            )
        truth["panic_at"] = time.time()
        g.send_raw("sync; echo c > /proc/sysrq-trigger\n")
        # The crash kernel boots, kdump-tools-dump.service saves the dump and
        # reboots: QEMU (-no-reboot) exits.
        g.proc.wait(3600)
        truth["panic_to_exit_seconds"] = round(time.time() - truth["panic_at"])
    serial = open(g.serial_log, errors="replace").read()
    truth["capture_serial_tail"] = serial[serial.rfind("sysrq") - 200 :][-6000:]
    # The system again, from the same disk.
    g = DebianGuest(
        work,
        img,
        gen,
        payload=disk,
        name="after",
        fresh=False,
        overlay=g.overlay,
        # The postmortem reads files only: this boot also shows the live
        # error under kernel lockdown.
        append="lockdown=confidentiality",
    )
    with g:
        g.wait_ready()
        g.check("mkdir -p /mnt/payload && mount -o ro /dev/vdb /mnt/payload")
        truth["after"] = {
            "ls": sh(g, "ls -lR /var/crash"),
            "lockdown": sh(g, "cat /sys/kernel/security/lockdown"),
            "live_under_lockdown": sh(g, "drgn-crashhp; echo rc=$?"),
            "report": sh(
                g, "drgn-crashhp -c /var/crash/*/dump.* --json 2>&1 | tail -c 20000"
            ),
            "report_text": sh(g, "drgn-crashhp -c /var/crash/*/dump.* 2>&1 | head -60"),
            "batch_triage": sh(
                g,
                "/opt/drgn-crashhp/bin/python3 /mnt/payload/contrib/batch_triage.py "
                "/var/crash 2>&1 | tail -40",
            ),
        }
        g.poweroff()
    # /var/crash out of the disk: the overlay to raw, then debugfs.
    raw = os.path.join(work, "disk.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", g.overlay, raw], check=True)
    dest = os.path.join(out, "var-crash")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    subprocess.run(
        ["debugfs", "-R", "rdump /var/crash %s" % dest, raw],
        check=True,
        capture_output=True,
    )
    os.unlink(raw)
    truth["files"] = {
        os.path.relpath(os.path.join(d, f), dest): os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(dest)
        for f in fs
    }
    probe = os.path.join(dest, "crash", "crashhp-vmcore.json")
    if os.path.exists(probe):
        with open(probe) as f:
            truth["capture_vmcore"] = json.load(f)
    truth["total_seconds"] = round(time.time() - t0)
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gen", choices=["6.1", "6.12", "7.3"])
    ap.add_argument("out", nargs="?", help="result folder (default: the image's)")
    ap.add_argument("--makedump-args", help='e.g. "-c -d 23"')
    ap.add_argument("--name", help="result folder name in the image's folder")
    a = ap.parse_args()
    print(panic(a.gen, a.out, makedump_args=a.makedump_args, name=a.name))
