"""QEMU (TCG) guest driver for the drgn-crashhp vmcore lab.  Python 3 stdlib only.

A `Guest` starts qemu-system-x86_64 (or `qemu=` with `machine_args=`: lab/arch/) with a serial console on a unix socket and a QMP
socket.  The guest's /init (lab/initramfs/init) runs a command loop on ttyS0: it reads one
line, evals it and prints "@@END@@ <status>".  `Guest.run()` sends a command and returns
(status, output).  `Guest.qmp()` sends a QMP command; events are collected in `events`.

Reusable by tests:

    from guest import Guest
    with Guest(workdir, bzimage, initrd) as g:
        g.wait_ready()
        print(g.check("uname -r"))
        g.qmp("dump-guest-memory", paging=False, protocol="file:/tmp/x.elf")
"""

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")

# VMware identity: with the CPUID hypervisor bit off, the kernel detects VMware via the DMI
# serial number + the vmport backdoor; then legacy "Enabled=0" MADT LAPIC entries count as
# hot-pluggable CPUs (arch/x86/kernel/acpi/boot.c acpi_is_processor_usable(): on a
# "native" machine, which TCG's unknown CPUID signature is, they are ignored).
VMWARE_SERIAL = "VMware-56 4d 00 00 00 00 00 00-00 00 00 00 00 00 00 00"

SENTINEL = "@@END@@"
READY = "@@READY@@"


class GuestError(Exception):
    pass


class Guest:
    def __init__(
        self,
        workdir,
        kernel,
        initrd,
        append="",
        mem="128M,slots=4,maxmem=1G",
        smp="2,sockets=4,maxcpus=4",
        cpu="Skylake-Client,-hypervisor",
        disk=None,
        extra_args=(),
        name="guest",
        qemu=None,
        machine_args=None,
    ):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = name
        self.serial_path = os.path.join(self.workdir, name + ".serial.sock")
        self.qmp_path = os.path.join(self.workdir, name + ".qmp.sock")
        self.serial_log = os.path.join(self.workdir, name + ".serial.log")
        for p in (self.serial_path, self.qmp_path, self.serial_log):
            if os.path.exists(p):
                os.unlink(p)
        # machine_args replaces the x86 machine flags (other architectures: lab/arch/)
        if machine_args is None:
            machine_args = [
                "-accel",
                "tcg",
                "-cpu",
                cpu,
                "-machine",
                "pc,vmport=on",
                "-smbios",
                "type=1,serial=" + VMWARE_SERIAL,
                "-vga",
                "none",
                "-device",
                "vmcoreinfo",
            ]
        self.cmdline = [
            qemu or QEMU,
            *machine_args,
            "-smp",
            smp,
            "-m",
            mem,
            "-display",
            "none",
            "-no-reboot",
            "-chardev",
            "socket,id=qmp0,path=%s,server=on,wait=off" % self.qmp_path,
            "-mon",
            "chardev=qmp0,mode=control",
            "-chardev",
            "socket,id=ser0,path=%s,server=on,wait=off,logfile=%s"
            % (self.serial_path, self.serial_log),
            "-serial",
            "chardev:ser0",
            "-kernel",
            kernel,
            "-initrd",
            initrd,
            "-append",
            append,
        ]
        if disk:
            self.cmdline += ["-drive", "file=%s,format=raw,if=virtio" % disk]
        self.cmdline += list(extra_args)
        self.proc = None
        self.events = []
        self._buf = ""
        self._pos = 0
        self._cond = threading.Condition()
        self._closed = False
        self.transcript = []  # (command, status, output)

    # ---------------------------------------------------------------- lifecycle
    def start(self):
        for f in (
            self.cmdline[self.cmdline.index("-kernel") + 1],
            self.cmdline[self.cmdline.index("-initrd") + 1],
        ):
            if not os.path.isfile(f):
                raise GuestError("no such file: %s" % f)
        self.stderr = open(os.path.join(self.workdir, self.name + ".qemu.stderr"), "w")
        self.proc = subprocess.Popen(
            self.cmdline,
            stdin=subprocess.DEVNULL,
            stdout=self.stderr,
            stderr=subprocess.STDOUT,
        )
        self.ser = self._connect(self.serial_path)
        threading.Thread(target=self._reader, daemon=True).start()
        self.qmp_sock = self._connect(self.qmp_path)
        self.qmp_file = self.qmp_sock.makefile("rwb", buffering=0)
        greeting = self._qmp_read()
        if "QMP" not in greeting:
            raise GuestError("bad QMP greeting %r" % greeting)
        self.qmp("qmp_capabilities")
        return self

    def _connect(self, path, timeout=30):
        end = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise GuestError(
                    "qemu exited (%s); see %s"
                    % (self.proc.returncode, self.stderr.name)
                )
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                return s
            except OSError:
                s.close()
                if time.time() > end:
                    raise
                time.sleep(0.05)

    def _reader(self):
        while True:
            try:
                data = self.ser.recv(65536)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._closed = True
                    self._cond.notify_all()
                    return
                self._buf += data.decode("utf-8", "replace").replace("\r", "")
                self._cond.notify_all()

    def close(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            try:
                self.qmp("quit")
            except Exception:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for s in ("ser", "qmp_sock"):
            if hasattr(self, s):
                try:
                    getattr(self, s).close()
                except OSError:
                    pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- serial
    def wait_for(self, pattern, timeout=300):
        """Wait until regex `pattern` appears in serial output after the read position;
        return (text before match, match) and advance past the match."""
        rx = re.compile(pattern)
        end = time.time() + timeout
        with self._cond:
            while True:
                m = rx.search(self._buf, self._pos)
                if m:
                    before = self._buf[self._pos : m.start()]
                    self._pos = m.end()
                    return before, m
                if self._closed:
                    raise GuestError(
                        "serial closed while waiting for %r; tail: %r"
                        % (pattern, self._buf[-2000:])
                    )
                left = end - time.time()
                if left <= 0:
                    raise GuestError(
                        "timeout waiting for %r; tail: %r"
                        % (pattern, self._buf[-2000:])
                    )
                self._cond.wait(min(left, 1.0))

    def output_since_start(self):
        with self._cond:
            return self._buf

    def wait_ready(self, timeout=600):
        self.wait_for(re.escape(READY) + r"\n", timeout)

    def run(self, command, timeout=300):
        """Run one shell line in the guest; return (status, output)."""
        if "\n" in command:
            raise ValueError("one line only")
        self.ser.sendall(command.encode() + b"\n")
        out, m = self.wait_for(re.escape(SENTINEL) + r" (\d+)\n", timeout)
        status = int(m.group(1))
        self.transcript.append((command, status, out))
        return status, out

    def check(self, command, timeout=300):
        status, out = self.run(command, timeout)
        if status != 0:
            raise GuestError(
                "guest command failed (%d): %s\n%s" % (status, command, out)
            )
        return out

    def read(self, path):
        return self.check("cat %s" % path)

    def send_raw(self, data):
        self.ser.sendall(data.encode())

    # ---------------------------------------------------------------- QMP
    def _qmp_read(self):
        line = self.qmp_file.readline()
        if not line:
            raise GuestError("QMP connection closed")
        return json.loads(line)

    def qmp(self, command, **arguments):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.qmp_file.write(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._qmp_read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise GuestError("QMP %s failed: %s" % (command, r["error"]))
            return r.get("return")

    def wait_event(self, name, timeout=60, match=None):
        """Wait for a QMP event (already received ones count)."""
        end = time.time() + timeout
        while True:
            for e in self.events:
                if e["event"] == name and (match is None or match(e)):
                    self.events.remove(e)
                    return e
            left = end - time.time()
            if left <= 0:
                raise GuestError("timeout waiting for QMP event %s" % name)
            self.qmp_sock.settimeout(left)
            try:
                r = self._qmp_read()
            except socket.timeout:
                continue
            finally:
                self.qmp_sock.settimeout(None)
            if "event" in r:
                self.events.append(r)

    def dump(self, path):
        """dump-guest-memory, ELF format, paging=false, synchronous."""
        path = os.path.abspath(path)
        if os.path.exists(path):
            os.unlink(path)
        self.qmp(
            "dump-guest-memory", paging=False, protocol="file:" + path, detach=False
        )
        return path

    # ---------------------------------------------------------------- hotplug helpers
    def add_dimm(self, idx=1, size=128 << 20):
        self.qmp(
            "object-add",
            **{"qom-type": "memory-backend-ram", "id": "mem%d" % idx, "size": size},
        )
        self.qmp(
            "device_add", driver="pc-dimm", id="dimm%d" % idx, memdev="mem%d" % idx
        )
        for d in self.qmp("query-memory-devices"):
            if d["data"].get("id") == "dimm%d" % idx:
                return d["data"]
        raise GuestError("dimm%d not in query-memory-devices" % idx)

    def del_dimm(self, idx=1, timeout=120):
        self.qmp("device_del", id="dimm%d" % idx)
        ev = self.wait_event(
            "DEVICE_DELETED",
            timeout,
            match=lambda e: e.get("data", {}).get("device") == "dimm%d" % idx,
        )
        self.qmp("object-del", id="mem%d" % idx)
        return ev

    def add_cpu(self, socket_id, cpu_id=None):
        cpus = self.qmp("query-hotpluggable-cpus")
        for c in cpus:
            p = c["props"]
            if p.get("socket-id") == socket_id and "qom-path" not in c:
                args = dict(p)
                args.pop("node-id", None)
                self.qmp(
                    "device_add",
                    driver=c["type"],
                    id=cpu_id or "cpu%d" % socket_id,
                    **args,
                )
                return {"type": c["type"], "props": p}
        raise GuestError(
            "no free hotpluggable CPU with socket-id %d: %r" % (socket_id, cpus)
        )


def which_qemu():
    return shutil.which(QEMU)
