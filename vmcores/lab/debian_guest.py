"""The Debian lab guests (debian-guest.sh: Debian 13; debian12-guest.sh:
Debian 12) booted under QEMU TCG.  Stdlib only.

`DebianGuest` is a `guest.Guest` that boots one of the image's cloud kernels
(6.12 from trixie, 7.3 from trixie-backports, 6.1 from bookworm) from a copy-on-write overlay of
the cached image, with the payload disk (wheels and contrib/, /dev/vdb), a
second QMP socket for drgn (``qmp_drgn``) and kdump-tools' own crashkernel=.
The image runs a command loop on ttyS0 (debian/crashhp-console) with the same
protocol as the lab initramfs, so `run`, `check`, `qmp`, `add_dimm`,
`del_dimm` and `add_cpu` work as they do for the fixture guests.

    img = image_dir()                       # builds the image once (root, minutes)
    payload(work / "payload.img")
    with DebianGuest(work, img, "6.12", payload=work / "payload.img") as g:
        g.wait_ready()
        g.install_package()                 # python3 -m venv + pip from /dev/vdb
        print(g.check("drgn-crashhp --json"))
"""

import os
import subprocess
import time

from guest import Guest

HERE = os.path.dirname(os.path.abspath(__file__))
# Each Debian release's image has its own script (and cache key): Debian 13
# (trixie: 6.12 and trixie-backports' 7.3), Debian 12 (bookworm: 6.1).
SCRIPTS = {
    "trixie": os.path.join(HERE, "debian-guest.sh"),
    "bookworm": os.path.join(HERE, "debian12-guest.sh"),
}
SCRIPT = SCRIPTS["trixie"]


def suite(gen):
    """The Debian release whose image has kernel generation *gen*."""
    return "bookworm" if gen == "6.1" else "trixie"


# Room for hotplug: 8 DIMM slots up to 8 GiB, and 2 of 4 sockets to add.
MEM = "1G,slots=8,maxmem=8G"
SMP = "2,sockets=4,maxcpus=4"
# Removable hot-added memory (ZONE_MOVABLE), as in the fixture lab.
APPEND = "console=ttyS0 memhp_default_state=online_movable"
VENV = "/opt/drgn-crashhp"


def host_tsc_khz():
    """The host's TSC rate in kHz, or None.  Under TCG the guest's RDTSC
    counts the host's TSC (QEMU's cpu_get_host_ticks()), but the guest
    kernel measures its rate against the emulated PIT, and on a loaded host
    a descheduled vCPU makes that measurement wrong (a 6.12 guest once found
    106 MHz instead of 2445 and never finished booting).  Giving the guest
    tsc_early_khz= skips the measurement; the kernel's later refinement
    against the HPET may still move it by less than 1 %.
    CRASHHP_GUEST_TSC_KHZ overrides (0: leave the guest to calibrate)."""
    import re

    env = os.environ.get("CRASHHP_GUEST_TSC_KHZ")
    if env is not None:
        return int(env) or None
    try:
        log = subprocess.run(
            ["dmesg"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        ).stdout
    except OSError:
        log = ""
    for pattern in (
        r"tsc: Refined TSC clocksource calibration: (\d+)\.(\d{3}) MHz",
        r"tsc: Detected (\d+)\.(\d{3}) MHz processor",
    ):
        found = re.findall(pattern, log)
        if found:
            mhz, khz = found[-1]
            return int(mhz) * 1000 + int(khz)
    # No kernel log: a TSC the CPU says runs at a constant rate is the
    # frequency /proc/cpuinfo shows.
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return None
    flags = re.search(r"^flags\s*:(.*)$", info, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", info, re.M)
    if flags and mhz and "constant_tsc" in flags.group(1).split():
        return round(float(mhz.group(1)) * 1000)
    return None


def image_dir(log=None, suite="trixie"):
    """Folder of the cached image (built on first use: as root, minutes)."""
    proc = subprocess.run(
        [SCRIPTS[suite], "image"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        check=True,
    )
    return proc.stdout.strip().splitlines()[-1]


def payload(path, suite="trixie"):
    """The wheels-and-contrib disk for the guest's /dev/vdb (wheels for the
    release's Python: 3.13 on trixie, 3.11 on bookworm)."""
    subprocess.run([SCRIPTS[suite], "payload", str(path)], check=True)
    return str(path)


def kernels(img):
    """{'6.12': '6.12.117+deb13-cloud-amd64', '7.3': ...} of the image
    ({'6.1': '6.1.0-N-cloud-amd64'} for bookworm's)."""
    with open(os.path.join(img, "kernels")) as f:
        vs = f.read().split()
    return {".".join(v.split(".")[:2]): v for v in vs}


class DebianGuest(Guest):
    def __init__(
        self,
        workdir,
        img,
        gen="6.12",
        payload=None,
        append="",
        mem=MEM,
        smp=SMP,
        name="debian",
        fresh=True,
        direct=False,
        overlay=None,
    ):
        self.img = img
        self.release = kernels(img)[gen]
        workdir = os.path.abspath(str(workdir))
        os.makedirs(workdir, exist_ok=True)
        self.overlay = overlay or os.path.join(workdir, name + ".qcow2")
        if direct:
            # The image itself, written to (its first boot, at build time).
            drive = "file=%s,format=raw,if=virtio" % os.path.join(img, "rootfs.img")
        else:
            drive = "file=%s,format=qcow2,if=virtio" % self.overlay
        if not direct and (fresh or not os.path.exists(self.overlay)):
            if os.path.exists(self.overlay):
                os.unlink(self.overlay)
            subprocess.run(
                [
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-F",
                    "raw",
                    "-b",
                    os.path.join(img, "rootfs.img"),
                    self.overlay,
                ],
                check=True,
            )
        with open(os.path.join(img, "crashkernel")) as f:
            self.crashkernel = f.read().strip()
        self.qmp_drgn = os.path.join(workdir, name + ".drgn.qmp.sock")
        if os.path.exists(self.qmp_drgn):
            os.unlink(self.qmp_drgn)
        extra = [
            "-drive",
            drive,
            "-qmp",
            "unix:%s,server=on,wait=off" % self.qmp_drgn,
        ]
        khz = host_tsc_khz()
        tsc = "tsc_early_khz=%d" % khz if khz else ""
        if payload:
            extra += ["-drive", "file=%s,format=raw,if=virtio,readonly=on" % payload]
        super().__init__(
            workdir,
            os.path.join(img, "vmlinuz-" + self.release),
            os.path.join(img, "initrd.img-" + self.release),
            append=" ".join(
                x for x in ("root=/dev/vda", APPEND, tsc, self.crashkernel, append) if x
            ),
            mem=mem,
            smp=smp,
            extra_args=extra,
            name=name,
        )
        self.booted_at = None

    @property
    def vmlinux(self):
        """The -dbg package's vmlinux of the booted kernel, on the host."""
        return os.path.join(self.img, "vmlinux-" + self.release)

    def start(self):
        t = time.time()
        super().start()
        self.started_at = t
        return self

    def wait_ready(self, timeout=900):
        super().wait_ready(timeout)
        self.boot_seconds = time.time() - self.started_at

    def install_package(self, timeout=900):
        """Install drgn-crashhp the way the README says (a venv), from the
        payload disk's wheels: the guest's HTTPS to PyPI fails."""
        self.check("mkdir -p /mnt/payload && mount -o ro /dev/vdb /mnt/payload")
        self.check(
            "[ -x %s/bin/drgn-crashhp ] || { python3 -m venv %s && "
            "%s/bin/pip install -q --no-index --find-links /mnt/payload/wheels "
            "drgn-crashhp; }" % (VENV, VENV, VENV),
            timeout,
        )
        return self.check(
            "%s/bin/pip list 2>/dev/null | grep -E '^(drgn|pyelftools|tabulate)'" % VENV
        )

    def journal(self, *args):
        """journalctl -o json lines as dicts."""
        import json

        # No colours: the console is a terminal, and journalctl (systemd 257)
        # colours its JSON on one.
        out = self.check(
            "SYSTEMD_COLORS=0 journalctl --no-pager -o json %s" % " ".join(args)
        )
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def poweroff(self, timeout=300):
        """A clean shutdown; waits for QEMU to exit."""
        self.send_raw("sync; systemctl poweroff\n")
        self.proc.wait(timeout)


def firstboot(img):
    """Boot each kernel of the image once, writing to the image: kdump-tools
    builds its initrd for the running kernel at boot (it skips that in a
    chroot) and loads the crash kernel. Fails if it did not."""
    for gen, release in sorted(kernels(img).items()):
        work = os.path.join(img, "firstboot")
        t = time.time()
        g = DebianGuest(work, img, gen, name="firstboot-" + gen, direct=True)
        with g:
            g.wait_ready()
            loaded = g.check("cat /sys/kernel/kexec_crash_loaded").strip()
            initrd = g.run("ls -l /var/lib/kdump/")[1]
            log = g.check("journalctl -b --no-pager -o cat -u kdump-tools | tail -15")
            print(
                "first boot %s: %.0f s; kexec_crash_loaded=%s\n%s%s"
                % (release, time.time() - t, loaded, initrd, log)
            )
            if loaded != "1" or ("initrd.img-" + release) not in initrd:
                raise SystemExit(
                    "kdump-tools did not load %s at its first boot" % release
                )
            g.poweroff()


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "firstboot":
        firstboot(sys.argv[2])
    else:
        raise SystemExit("usage: debian_guest.py firstboot IMAGE_DIR")
