"""A real panic on the Debian 13 lab guest, and the dump kdump-tools writes.

    debian_panic.py GEN [OUT_DIR]      GEN = 6.12 | 7.3

Boots the image's GEN kernel (kdump-tools loads the crash kernel at boot, with
its defaults), hot-adds a 128 MiB DIMM, records the ground truth from the
guest's own interfaces (the DIMM from QMP, /proc/iomem, the crash hotplug
files, kdump-tools' status and journal), panics with sysrq-c and lets the
crash kernel's kdump-tools-dump.service save /var/crash/<stamp>/dump.<stamp>
with its default makedumpfile options and reboot (QEMU runs with -no-reboot,
so it exits). Then it boots the system again from the same disk, lists
/var/crash and runs drgn-crashhp and contrib/batch_triage.py there, and
copies /var/crash to OUT_DIR (default: the image's cache folder,
panic-GEN/) with truth.json. Stdlib only; the host needs debugfs (e2fsprogs)
and qemu-img.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from debian_guest import DebianGuest, image_dir, payload


def sh(g, cmd, timeout=1800):
    status, out = g.run(cmd, timeout)
    return {"command": cmd, "status": status, "output": out}


def panic(gen, out=None):
    img = image_dir()
    out = out or os.path.join(img, "panic-" + gen)
    work = os.path.join(out, "run")
    os.makedirs(work, exist_ok=True)
    disk = payload(os.path.join(work, "payload.img"))
    truth = {"gen": gen, "steps": {}}
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
    truth["total_seconds"] = round(time.time() - t0)
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: debian_panic.py GEN [OUT_DIR]")
    print(panic(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None))
