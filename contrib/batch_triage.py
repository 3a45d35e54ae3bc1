#!/usr/bin/env python3
"""
Batch triage: run drgn-crashhp over many vmcores on every core.

    python3 contrib/batch_triage.py DIR_OR_FILES... [-s VMLINUX]... [-j N]
        [--jsonl OUT] [--no-digest] [--no-reuse]

Prints one JSON line per dump (to --jsonl, default stdout), then a summary
table and the throughput (dumps per second) on stderr: which dumps would have
hung in purgatory, which miss memory or CPUs, which cannot be verified. Every
file in a directory that starts like an ELF core file or a kdump file is
taken; the rest (vmlinux, JSON) is skipped. Exit status: the worst of the
dumps' statuses (1 before 2 before 3), 2 if no dump was found.

Debug info is resolved once per kernel build, not once per dump: the build ID
of each dump is read from its VMCOREINFO note (a few KiB of headers), the
build ID of each ``-s`` file from its ``.note.gnu.build-id``, and dumps are
grouped by build ID. Each worker process imports the package once, and
each dump is then opened with exactly its build's debug file (no search, no
logging of misses), with one DWARF indexing thread per worker when the
workers already fill the cores. drgn 0.3.0 cannot share a loaded DWARF index
between two Programs (a Program has one core dump, set before its debug
info, and its KASLR bias is fixed then), so each dump still indexes its
vmlinux once; what is shared is everything around that. ``--no-reuse``
opens each dump the way ``drgn-crashhp -c DUMP -s ...`` does (every -s file
offered, drgn's default search on), for comparison.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import struct
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from tabulate import tabulate

HANG = {"CHP020", "CHP023", "CHP024"}
MISSING_MEMORY = {"CHP050", "CHP051", "CHP052", "CHP070"}
MISSING_CPUS = {"CHP040", "CHP042"}

PT_NOTE = 4
SHT_NOTE = 7
NT_GNU_BUILD_ID = 3
HEAD_LIMIT = 1 << 20  # notes and headers larger than this are not a dump's


def is_dump(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError:
        return False
    elf_core = head[:4] == b"\x7fELF" and int.from_bytes(head[16:18], "little") == 4
    return elf_core or head[:8] in (b"KDUMP   ", b"makedump")


def find_dumps(paths: Iterable[str]) -> List[Path]:
    out: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            # Recursively: kdump-tools saves /var/crash/<stamp>/dump.<stamp>.
            out += sorted(c for c in p.rglob("*") if c.is_file() and is_dump(c))
        else:
            out.append(p)
    return out


# ------------------------------------------------------------------ build IDs
def _notes(data: bytes) -> Iterable[Tuple[bytes, int, bytes]]:
    """(name, type, desc) of each ELF note in *data* (4-byte aligned)."""
    off = 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, off)
        name_at = off + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        end = desc_at + (descsz + 3) // 4 * 4
        if end > len(data):
            return
        yield (
            data[name_at : name_at + namesz].rstrip(b"\0"),
            ntype,
            data[desc_at : desc_at + descsz],
        )
        off = end


def _vmcoreinfo_build_id(text: bytes) -> Optional[str]:
    m = re.search(rb"^BUILD-ID=([0-9a-f]+)$", text, re.M)
    return m.group(1).decode() if m else None


def _elf_header(f: Any) -> Tuple[int, int, int, int, int, int, int]:
    """e_type, e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum."""
    ehdr = f.read(64)
    if ehdr[:4] != b"\x7fELF" or ehdr[4] != 2 or ehdr[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (e_type,) = struct.unpack_from("<H", ehdr, 16)
    e_phoff, e_shoff = struct.unpack_from("<QQ", ehdr, 32)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", ehdr, 54)
    return e_type, e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum


def dump_build_id(path: Path) -> Optional[str]:
    """
    The kernel build ID in a dump's VMCOREINFO (``BUILD-ID=``, since Linux
    5.9's crash_save_vmcoreinfo_init()), read from the ELF PT_NOTEs or the
    kdump sub-header's vmcoreinfo blob; None when the dump does not say.
    """
    try:
        with open(path, "rb") as f:
            if f.read(8) == b"KDUMP   ":
                # disk_dump_header: block_size after signature, version,
                # new_utsname (6 x 65) and an 8-aligned struct timeval.
                f.seek(428)
                (block_size,) = struct.unpack("<i", f.read(4))
                # kdump_sub_header (64-bit): phys_base, dump_level, split,
                # start_pfn, end_pfn, offset_vmcoreinfo, size_vmcoreinfo.
                f.seek(block_size + 32)
                off, size = struct.unpack("<QQ", f.read(16))
                if not 0 < size <= HEAD_LIMIT:
                    return None
                f.seek(off)
                return _vmcoreinfo_build_id(f.read(size))
            f.seek(0)
            e_type, e_phoff, _, e_phentsize, e_phnum, _, _ = _elf_header(f)
            f.seek(e_phoff)
            phdrs = f.read(e_phentsize * e_phnum)
            for i in range(e_phnum):
                p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
                    "<IIQQQQ", phdrs, i * e_phentsize
                )
                if p_type != PT_NOTE or p_filesz > HEAD_LIMIT:
                    continue
                f.seek(p_offset)
                for name, _, desc in _notes(f.read(p_filesz)):
                    if name == b"VMCOREINFO":
                        return _vmcoreinfo_build_id(desc)
    except (OSError, ValueError, struct.error):
        return None
    return None


def file_build_id(path: str) -> Optional[str]:
    """The GNU build ID of an ELF file (vmlinux or debug file), from its
    section headers and note sections only."""
    try:
        with open(path, "rb") as f:
            _, _, e_shoff, _, _, e_shentsize, e_shnum = _elf_header(f)
            f.seek(e_shoff)
            shdrs = f.read(e_shentsize * e_shnum)
            for i in range(e_shnum):
                _, sh_type, _, _, sh_offset, sh_size = struct.unpack_from(
                    "<IIQQQQ", shdrs, i * e_shentsize
                )
                if sh_type != SHT_NOTE or sh_size > HEAD_LIMIT:
                    continue
                f.seek(sh_offset)
                for name, ntype, desc in _notes(f.read(sh_size)):
                    if name == b"GNU" and ntype == NT_GNU_BUILD_ID:
                        return desc.hex()
    except (OSError, ValueError, struct.error):
        return None
    return None


def plan(
    dumps: Sequence[Path], symbols: Sequence[str]
) -> List[Tuple[str, Tuple[str, ...], bool]]:
    """
    (dump, debug files, drgn default search) for each dump, ordered by build
    ID so consecutive dumps of one worker's chunk share a kernel build. A dump
    whose build ID matches a -s file gets exactly that file; otherwise it
    gets every -s file and drgn's default search, like the CLI.
    """
    by_id = {}
    for s in symbols:
        bid = file_build_id(s)
        if bid:
            by_id.setdefault(bid, s)
    jobs = []
    for d in dumps:
        bid = dump_build_id(d)
        if bid in by_id:
            jobs.append((bid, (str(d), (by_id[bid],), False)))
        else:
            jobs.append((bid or "", (str(d), tuple(symbols), not symbols)))
    return [job for _, job in sorted(jobs, key=lambda j: j[0])]


# ------------------------------------------------------------------ workers
def _worker_init(threads: int) -> None:
    """Once per worker process: DWARF indexing threads (read by libgomp
    when drgn loads), then the package import."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    import drgn_crashhp  # noqa: F401


def triage(
    path: str, symbols: Sequence[str], default_symbols: bool, digest: bool
) -> Dict[str, Any]:
    """Run in a worker process: one dump, one JSON document."""
    from drgn_crashhp import TargetError, build_report, open_program, report_json

    try:
        prog = open_program(core=path, symbols=symbols, default_symbols=default_symbols)
    except TargetError as e:
        return {
            "dump": path,
            "verdict": "ERROR",
            "exit_status": 2,
            "error": str(e),
            "findings": [],
        }
    doc = report_json(build_report(prog, digest=digest))
    doc["dump"] = path
    return doc


def summary_row(doc: Dict[str, Any]) -> List[Any]:
    codes = {
        f["code"]
        for f in doc.get("findings", [])
        if f["severity"] in ("error", "unverified")
    }

    def flag(group: set) -> str:
        return ",".join(sorted(codes & group)) or "-"

    return [
        os.path.basename(doc["dump"]),
        doc["verdict"],
        flag(HANG),
        flag(MISSING_MEMORY),
        flag(MISSING_CPUS),
        ",".join(
            sorted(c for c in codes if c not in HANG | MISSING_MEMORY | MISSING_CPUS)
        )
        or "-",
    ]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("paths", nargs="+", help="vmcore files or directories")
    p.add_argument(
        "-s",
        "--symbols",
        action="append",
        default=[],
        help="vmlinux with debug info (else drgn's default search); "
        "may be repeated, one per kernel build",
    )
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--jsonl", help="write JSON lines here instead of stdout")
    p.add_argument("--no-digest", action="store_true")
    p.add_argument(
        "--no-reuse",
        action="store_true",
        help="open every dump like the CLI does (for comparison)",
    )
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    start = time.monotonic()
    dumps = find_dumps(args.paths)
    if not dumps:
        print("batch_triage: no dumps found", file=sys.stderr)
        return 2
    if args.no_reuse:
        jobs = [(str(d), tuple(args.symbols), not args.symbols) for d in dumps]
        threads = 0
    else:
        jobs = plan(dumps, args.symbols)
        # drgn indexes DWARF with one OpenMP thread per core by default:
        # with a worker on every core that only adds contention.
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
    workers = min(args.jobs, len(jobs))
    docs: Dict[str, Dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.jsonl, "w")) if args.jsonl else sys.stdout
        pool = stack.enter_context(
            concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, initializer=_worker_init, initargs=(threads,)
            )
        )
        # Chunks keep a worker on consecutive dumps of one build.
        chunk = 1 if args.no_reuse else max(1, len(jobs) // (4 * workers))
        results = pool.map(
            triage,
            *zip(*jobs),
            [not args.no_digest] * len(jobs),
            chunksize=chunk,
        )
        for doc in results:
            docs[doc["dump"]] = doc
            out.write(json.dumps(doc, sort_keys=True) + "\n")
    elapsed = time.monotonic() - start
    ordered = [docs[str(d)] for d in dumps]
    print(
        tabulate(
            [summary_row(d) for d in ordered],
            headers=(
                "dump",
                "verdict",
                "purgatory hang",
                "missing memory",
                "missing CPUs",
                "other problems",
            ),
        ),
        file=sys.stderr,
    )
    print(
        f"{len(dumps)} dumps in {elapsed:.1f} s: {len(dumps) / elapsed:.2f} dumps/s "
        f"with {workers} workers"
        + ("" if args.no_reuse else f", {len({j[1] for j in jobs})} debug-file sets"),
        file=sys.stderr,
    )
    statuses = {d["exit_status"] for d in ordered}
    return next((s for s in (1, 2, 3) if s in statuses), 0)


if __name__ == "__main__":
    sys.exit(main())
