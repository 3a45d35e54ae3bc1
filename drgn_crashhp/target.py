"""
Targets
-------

Open a target the way ``drgn`` does (a vmcore, /proc/kcore, or a QEMU guest
over QMP) and load its kernel debug info, failing with one line instead of a
traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import struct
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import drgn

__all__ = (
    "DEBUGINFO_KEY",
    "TargetError",
    "debuginfo_source",
    "fall_back_to_btf",
    "open_program",
    "parse_vmcoreinfo_location",
    "use_btf",
)


class TargetError(Exception):
    """A one-line reason the target cannot be opened (exit status 2)."""


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _build_id_hint(prog: drgn.Program, logged: Sequence[str]) -> str:
    try:
        build_id = prog.main_module().build_id
    except (LookupError, ValueError):
        build_id = None
    m = re.search(r"for kernel (\S+)", " ".join(logged))
    release = m.group(1) if m else "$(uname -r)"
    looked = f" for kernel {release}"
    if build_id:
        looked += f" (build ID {build_id.hex()})"
    return (
        f"{looked}; pass -s path/to/vmlinux or --debug-directory DIR, or "
        f"install the distro's debug package (Debian: linux-image-{release}-dbg"
        f", Fedora/RHEL: kernel-debuginfo-{release})"
    )


KCORE = "/proc/kcore"
#: securityfs file of the lockdown LSM: "none integrity [confidentiality]".
LOCKDOWN = "/sys/kernel/security/lockdown"


def _lockdown_level() -> Optional[str]:
    """The kernel's lockdown level (the bracketed word), None if unknown."""
    try:
        with open(LOCKDOWN) as f:
            m = re.search(r"\[(\w+)\]", f.read())
    except OSError:
        return None
    return m.group(1) if m else None


def _kcore_denied(e: OSError) -> str:
    """Why /proc/kcore could not be opened, in one line: not root, or (as
    root) kernel lockdown, which forbids /proc/kcore at "confidentiality"
    (security/lockdown: LOCKDOWN_KCORE)."""
    why = e.strerror or str(e)
    if os.geteuid() != 0:
        return f"no permission to read {KCORE}: {why} (run as root)"
    level = _lockdown_level()
    if level == "confidentiality":
        return (
            f"cannot read {KCORE}: the kernel is locked down "
            "(lockdown=confidentiality), which forbids /proc/kcore even to "
            "root; check the crash kernel from the host (--qemu) or from a dump"
        )
    return f"cannot read {KCORE} as root: {why} (lockdown: {level or 'unknown'})"


#: ``prog.cache`` key naming the debug info a program was opened with.
DEBUGINFO_KEY = "drgn_crashhp.debuginfo"


def debuginfo_source(prog: drgn.Program) -> str:
    """ "dwarf" or "btf+kallsyms": what the program's types and symbols are."""
    return str(prog.cache.get(DEBUGINFO_KEY, "dwarf"))


def use_btf(
    prog: drgn.Program, btf: Optional[str] = None, system_map: Optional[str] = None
) -> str:
    """
    Give *prog* types from the target's BTF and symbols from kallsyms (or
    *system_map*) instead of DWARF (:mod:`drgn_crashhp.debuginfo`).

    :return: one line saying what was loaded.
    :raises TargetError: if BTF or symbols cannot be had.
    """
    from drgn_crashhp.debuginfo import DebugInfoError, load_btf_debuginfo

    try:
        line = load_btf_debuginfo(prog, btf_path=btf, system_map=system_map)
    except (DebugInfoError, OSError) as e:
        raise TargetError(f"no BTF and kallsyms either: {e}") from e
    prog.cache[DEBUGINFO_KEY] = "btf+kallsyms"
    return line


def _has_debug_info(prog: drgn.Program) -> bool:
    if DEBUGINFO_KEY in prog.cache:
        return True  # use_btf() already gave it types and symbols
    try:
        return prog.main_module().debug_file_path is not None
    except LookupError:
        return False


def fall_back_to_btf(
    prog: drgn.Program, say: Callable[[str], None], hint: str = ""
) -> None:
    """
    The debug-info fallback of every entry point: when *prog* has no kernel
    debug info (and has not been given BTF already), give it the target's BTF
    and kallsyms, and *say* so in one line. Nothing happens when it has debug
    info.

    :param hint: where the debug info was looked for, for the error.
    :raises TargetError: if there is no BTF and kallsyms either.
    """
    if _has_debug_info(prog):
        return
    try:
        line = use_btf(prog)
    except TargetError as e:
        raise TargetError(f"no kernel debug info found{hint}; {e}") from e
    say(f"no kernel debug info found; {line}")


#: Where the guest's VMCOREINFO note is: ``/sys/kernel/vmcoreinfo``.
VMCOREINFO_SYSFS = "/sys/kernel/vmcoreinfo"
#: The most ``--vmcoreinfo`` reads (the kernel's VMCOREINFO_NOTE_SIZE is
#: 0x1024 with 4 KiB pages).
VMCOREINFO_MAX = 1 << 20
_VMCOREINFO_NAME = b"VMCOREINFO\0"


def parse_vmcoreinfo_location(text: str) -> Tuple[int, Optional[int]]:
    """
    The physical address and size of the guest's VMCOREINFO note from what
    its ``/sys/kernel/vmcoreinfo`` prints: two hex numbers (kernel/ksysfs.c
    ``"%pa %x"``: ``0x0000000006fe8000 1024`` is 0x1024 bytes at 0x6fe8000),
    with or without ``0x``, separated by a space or a comma. The size may be
    left out (the note's own header says how long it is).

    :raises ValueError: with a one-line reason.
    """
    words = text.replace(",", " ").split()
    try:
        if not 1 <= len(words) <= 2:
            raise ValueError
        addr = int(words[0], 16)
        size = int(words[1], 16) if len(words) == 2 else None
    except ValueError:
        raise ValueError(
            f"--vmcoreinfo {text.strip()!r}: give what the guest's "
            f"{VMCOREINFO_SYSFS} prints, a physical address and a size in hex "
            "(e.g. '0x6fe8000 1024'), or scan"
        ) from None
    if size is not None and not 24 <= size <= VMCOREINFO_MAX:
        raise ValueError(
            f"--vmcoreinfo {text.strip()!r}: size 0x{size:x} is not that of a "
            f"VMCOREINFO note (the kernel prints it in hex: 1024 is 0x1024)"
        )
    return addr, size


def _vmcoreinfo_desc(raw: bytes, addr: int, where: str) -> bytes:
    """The text of the VMCOREINFO ELF note in *raw* (read at *addr*)."""
    namesz, descsz, _type = struct.unpack_from("<III", raw.ljust(12, b"\0"))
    name_end = 12 + ((namesz + 3) & ~3)
    if namesz != len(_VMCOREINFO_NAME) or raw[12 : 12 + namesz] != _VMCOREINFO_NAME:
        # a big-endian guest would have the sizes swapped; none is supported
        head = raw[:24].hex()
        raise TargetError(
            f"no VMCOREINFO note at physical 0x{addr:x} in {where} (it starts "
            f"{head}); it moves at every boot: read the guest's "
            f"{VMCOREINFO_SYSFS} again"
        )
    desc = raw[name_end : name_end + descsz]
    if len(desc) < descsz:
        raise TargetError(
            f"the VMCOREINFO note at physical 0x{addr:x} in {where} has "
            f"{descsz} bytes of text, more than the 0x{len(raw):x} bytes given: "
            f"give the size the guest's {VMCOREINFO_SYSFS} prints (in hex)"
        )
    if not desc.startswith(b"OSRELEASE="):
        raise TargetError(
            f"the note at physical 0x{addr:x} in {where} is named VMCOREINFO "
            "but its text does not start with OSRELEASE=: not the kernel's"
        )
    return desc


#: ``--vmcoreinfo scan``: the most guest RAM searched, SCAN_CHUNK at a time.
SCAN = "scan"
SCAN_LIMIT = 64 << 30
SCAN_CHUNK = 2 << 20
_MTREE_RAM = re.compile(
    r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, ram\): ", re.MULTILINE
)


def qemu_ram(qemu: str, timeout: float = 30.0) -> List[Tuple[int, int]]:
    """
    The guest-physical RAM of a QEMU guest, ``[start, end]`` ranges, from
    QEMU's own memory map (``info mtree -f`` through QMP's
    human-monitor-command, which only reads): the only addresses
    ``--vmcoreinfo`` may read. Anything else is device memory, and reading
    it over QMP runs the device's read handler outside a vCPU (QEMU 10's
    arm64 virt segfaults).

    :raises OSError: if QMP cannot be reached.
    :raises ValueError: if QEMU's answer is not a memory map.
    """
    m = re.match(r"^([^/.][^:]*)?:(\d+)$", qemu)
    if m:
        sock = socket.create_connection((m.group(1) or "localhost", int(m.group(2))))
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(qemu)
    sock.settimeout(timeout)
    with sock, sock.makefile("rwb", buffering=0) as f:

        def execute(command: str, **arguments: str) -> object:
            msg = {
                "execute": command,
                **({"arguments": arguments} if arguments else {}),
            }
            f.write(json.dumps(msg).encode() + b"\n")
            while True:
                line = f.readline()
                if not line:
                    raise ValueError("QMP closed the connection")
                reply = json.loads(line)
                if "error" in reply:
                    raise ValueError(reply["error"].get("desc", str(reply["error"])))
                if "return" in reply:
                    return reply["return"]

        if "QMP" not in json.loads(f.readline()):
            raise ValueError("no QMP greeting")
        execute("qmp_capabilities")
        text = execute("human-monitor-command", **{"command-line": "info mtree -f"})
    if not isinstance(text, str):
        raise ValueError("no memory map")
    # the flat view of the "memory" address space: the CPUs' physical memory
    for view in text.split("FlatView #"):
        if re.search(r'^ AS "memory"', view, re.MULTILINE):
            return [(int(a, 16), int(b, 16)) for a, b in _MTREE_RAM.findall(view)]
    raise ValueError("no flat view of the system memory in info mtree -f")


#: An ELF note named VMCOREINFO whose text starts with OSRELEASE= (crash_core.c
#: append_elf_note() and the first line crash_save_vmcoreinfo_init() writes).
_NOTE_HEAD = b"\x0b\x00\x00\x00"
_NOTE_NAME = b"VMCOREINFO\0\0OSRELEASE="


def _read_physical(
    reader: drgn.Program,
) -> Callable[[int, int, int, bool], bytes]:
    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        return reader.read(address, count, True)

    return read


def _kernel(
    reader: drgn.Program, desc: bytes, ram: List[Tuple[int, int]]
) -> drgn.Program:
    """A custom Linux kernel target on *reader*'s physical memory: only its
    RAM (*ram*), so that a wrong address in what the report follows faults
    instead of reaching device memory."""
    prog = drgn.Program(reader.platform)
    read = _read_physical(reader)
    for start, end in ram:
        prog.add_memory_segment(start, end - start + 1, read, physical=True)
    prog.set_linux_kernel_custom(desc, True)
    return prog


def _release_matches(prog: drgn.Program, desc: bytes) -> bool:
    """Whether the running kernel's init_uts_ns, found and translated with
    *desc*'s own SYMBOL, OFFSET and page-table facts, holds its OSRELEASE: a
    note left by an earlier boot (other KASLR offsets) fails this."""
    info = dict(
        line.split("=", 1)
        for line in desc.decode(errors="replace").splitlines()
        if "=" in line
    )
    try:
        uts = int(info["SYMBOL(init_uts_ns)"], 16)
        name = int(info.get("OFFSET(uts_namespace.name)", "4"))
        # struct new_utsname: sysname[65], nodename[65], release[65]
        release = prog.read(uts + name + 2 * 65, 65)
    except (KeyError, ValueError, drgn.FaultError):
        return False
    return release.split(b"\0")[0].decode(errors="replace") == info.get("OSRELEASE")


def _scan(
    reader: drgn.Program, ram: List[Tuple[int, int]], where: str
) -> Tuple[int, bytes]:
    """The guest's VMCOREINFO note, searched for in its RAM (*ram*, at most
    SCAN_LIMIT bytes): the text of every note found (copies with the same
    text are one answer), kept when it reads the running kernel's release
    through its own symbols."""
    found: Dict[bytes, List[int]] = {}
    budget = SCAN_LIMIT
    for start, end in ram:
        for chunk in range(start, end + 1, SCAN_CHUNK):
            n = min(SCAN_CHUNK, end + 1 - chunk, budget)
            if n <= 0:
                break
            budget -= n
            try:
                buf = reader.read(chunk, n, True)
            except drgn.FaultError:
                continue
            i = buf.find(_NOTE_NAME, 12)
            while i >= 0:
                at = i - 12
                if at % 4 == 0 and buf[at : at + 4] == _NOTE_HEAD:
                    addr = chunk + at
                    (descsz,) = struct.unpack_from("<I", buf, at + 4)
                    try:
                        raw = reader.read(addr, 24 + descsz, True)
                        desc = _vmcoreinfo_desc(raw, addr, where)
                    except (drgn.FaultError, TargetError):
                        pass
                    else:
                        found.setdefault(desc, []).append(addr)
                i = buf.find(_NOTE_NAME, i + 1)
    good = [
        (d, a) for d, a in found.items() if _release_matches(_kernel(reader, d, ram), d)
    ]
    if len(good) == 1:
        desc, addrs = good[0]
        return addrs[0], desc
    every = sorted(a for _d, addrs in found.items() for a in addrs)
    if not good:
        raise TargetError(
            f"--vmcoreinfo scan: no VMCOREINFO note of the running kernel in "
            f"{where}'s RAM (at most {SCAN_LIMIT >> 30} GiB searched)"
            + (
                f" (notes at {', '.join(hex(a) for a in every)} do not match it)"
                if every
                else ""
            )
            + f"; give what the guest's {VMCOREINFO_SYSFS} prints"
        )
    raise TargetError(
        f"--vmcoreinfo scan: {len(good)} different VMCOREINFO notes in {where} "
        f"read as the running kernel (at {', '.join(hex(a) for a in every)}); "
        f"give the one the guest's {VMCOREINFO_SYSFS} names"
    )


def _qemu_with_vmcoreinfo(qemu: str, location: str) -> drgn.Program:
    """
    A QEMU guest whose memory gives drgn no VMCOREINFO (pseries has no
    ``-device vmcoreinfo``; other machines without ``qemu_fw_cfg`` loaded
    in the guest): read the note at the physical address the user read from
    the guest's ``/sys/kernel/vmcoreinfo`` (or search for it: *location*
    ``scan``) over QMP, then open the guest as a custom Linux kernel target
    whose physical memory is read over that same QMP connection (QEMU's QMP
    socket takes one client at a time).
    """
    where = f"QEMU guest {qemu}"
    scan = location.strip() == SCAN
    if not scan:
        try:
            addr, size = parse_vmcoreinfo_location(location)
        except ValueError as e:
            raise TargetError(str(e)) from e
    try:
        ram = qemu_ram(qemu)
    except (OSError, ValueError) as e:
        # before drgn's own connection: QMP takes one client at a time
        raise TargetError(f"cannot read the memory map of {where}: {e}") from e
    ram_text = ", ".join(f"0x{s:x}-0x{e:x}" for s, e in ram)
    if not scan:
        end = addr + (size or 24) - 1
        if not any(s <= addr and end <= e for s, e in ram):
            raise TargetError(
                f"--vmcoreinfo: physical 0x{addr:x}-0x{end:x} is not RAM of "
                f"{where} (QEMU's memory map: {ram_text or 'none'}); give "
                f"what the guest's {VMCOREINFO_SYSFS} prints"
            )
    reader = drgn.Program()
    reader.set_qemu_qmp(qemu)
    if scan:
        _addr, desc = _scan(reader, ram, where)
        return _kernel(reader, desc, ram)
    try:
        if size is None:  # the note's header: 12 bytes, then "VMCOREINFO\0"
            namesz, descsz = struct.unpack("<II", reader.read(addr, 8, True))
            size = min(12 + ((namesz + 3) & ~3) + descsz, VMCOREINFO_MAX)
            if not any(s <= addr and addr + size - 1 <= e for s, e in ram):
                raise TargetError(
                    f"--vmcoreinfo: the note at physical 0x{addr:x} would "
                    f"run past the RAM of {where}; give the size the guest's "
                    f"{VMCOREINFO_SYSFS} prints"
                )
        raw = reader.read(addr, size, True)
    except drgn.FaultError as e:
        raise TargetError(
            f"--vmcoreinfo: physical 0x{addr:x} is not in the memory of "
            f"{where} ({e}); give what the guest's "
            f"{VMCOREINFO_SYSFS} prints"
        ) from e
    return _kernel(reader, _vmcoreinfo_desc(raw, addr, where), ram)


def _no_vmcoreinfo(qemu: str) -> str:
    return (
        f"QEMU guest {qemu}: drgn found no VMCOREINFO in its memory, so it "
        "cannot read it as a Linux kernel (QEMU fills it only with -device "
        "vmcoreinfo and the guest's qemu_fw_cfg module loaded; pseries has no "
        f'such device); pass --vmcoreinfo "$(cat {VMCOREINFO_SYSFS})" as '
        "read in the guest, or --vmcoreinfo scan to search its memory"
    )


def open_program(
    core: Optional[str] = None,
    qemu: Optional[str] = None,
    symbols: Sequence[str] = (),
    debug_directories: Sequence[str] = (),
    default_symbols: bool = True,
    btf: Union[bool, str] = False,
    system_map: Optional[str] = None,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    vmcoreinfo: Optional[str] = None,
) -> drgn.Program:
    """
    Open a target like ``drgn`` does: *core* (a vmcore or /proc/kcore), a QEMU
    guest over QMP (*qemu*), or the running kernel. When no kernel debug info
    is found and none was named in *symbols*, fall back to the target's BTF
    and kallsyms, and *say* so in one line.

    :param btf: True to use BTF and kallsyms without looking for DWARF; a
        path to read BTF from that file (a raw blob or a vmlinux's .BTF).
    :param system_map: symbols from a ``System.map`` (or a vmlinux symbol
        table) instead of kallsyms, for kernels before 6.0.
    :param vmcoreinfo: for *qemu*: where the guest's VMCOREINFO note is, as
        its ``/sys/kernel/vmcoreinfo`` prints it (physical address and size
        in hex), for guests whose memory gives drgn none (pseries; machines
        without ``-device vmcoreinfo`` or the guest's ``qemu_fw_cfg``).
    :raises TargetError: with a one-line reason.
    """
    prog = drgn.Program()
    try:
        if core is not None:
            try:
                prog.set_core_dump(core)
            except Exception as e:
                if "ARCH_NAME" not in str(e):
                    raise
                # QEMU 10's kdump-* files leave the utsname empty and
                # libkdumpfile cannot tell the architecture: take the host's.
                prog = drgn.Program(drgn.host_platform)
                prog.set_core_dump(core)
        elif qemu is not None and vmcoreinfo is not None:
            prog = _qemu_with_vmcoreinfo(qemu, vmcoreinfo)
        elif qemu is not None:
            prog.set_qemu_qmp(qemu)
            if not prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
                raise TargetError(_no_vmcoreinfo(qemu))
        else:
            prog.set_kernel()
    except TargetError:
        raise
    except PermissionError as e:
        what = core or ("QEMU socket " + qemu if qemu else "/proc/kcore")
        if qemu is None and (core is None or core == KCORE):
            raise TargetError(_kcore_denied(e)) from e
        raise TargetError(
            f"no permission to read {what}: {e.strerror or e} (run as root)"
        ) from e
    except FileNotFoundError as e:
        if qemu is None and core is None:
            raise TargetError(
                f"{KCORE}: no such file; this kernel has no /proc/kcore "
                "(CONFIG_PROC_KCORE) or /proc is not mounted: check the crash "
                "kernel from the host (--qemu) or from a dump"
            ) from e
        raise TargetError(f"{core or qemu or KCORE}: no such file") from e
    except Exception as e:
        # OSError, ValueError, and libelf errors (a truncated or corrupt
        # vmcore), which drgn raises as a plain Exception.
        raise TargetError(
            f"cannot open {core or qemu or 'the running kernel'}: {e}"
        ) from e
    if btf or system_map:
        line = use_btf(prog, btf if isinstance(btf, str) else None, system_map)
        say(f"drgn-crashhp: {line}")
        return prog
    if debug_directories:
        opts = prog.debug_info_options
        opts.directories = tuple(debug_directories) + tuple(opts.directories)
    # drgn logs what it could not find; keep it for a one-line error instead.
    drgn_log = logging.getLogger("drgn")
    collect = _Collect()
    propagate = drgn_log.propagate
    drgn_log.addHandler(collect)
    drgn_log.propagate = False
    try:
        prog.load_debug_info(list(symbols), default=default_symbols, main=True)
    except drgn.MissingDebugInfoError as e:
        try:
            critical = prog.main_module().wants_debug_file()
        except LookupError:
            critical = True
        if critical:
            hint = _build_id_hint(prog, collect.messages)
            if symbols:
                # The user named the debug info: a wrong file is their
                # mistake to hear about, not a reason to switch to BTF.
                raise TargetError(
                    f"no kernel debug info in {', '.join(symbols)}{hint}; "
                    "or use the kernel's BTF and kallsyms with --btf"
                ) from e
            fall_back_to_btf(prog, lambda line: say(f"drgn-crashhp: {line}"), hint)
    except (OSError, ValueError, drgn.BadDataError) as e:
        raise TargetError(f"cannot load debug info: {e}") from e
    finally:
        drgn_log.removeHandler(collect)
        drgn_log.propagate = propagate
    return prog
