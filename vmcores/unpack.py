#!/usr/bin/env python3
"""
Unpack the bundled real-kernel fixtures into a cache directory (never into
the repository) and print paths.

    python3 vmcores/unpack.py                 # unpack, print the cache dir
    python3 vmcores/unpack.py --path NAME     # path of a dump (scenario name)
    python3 vmcores/unpack.py --vmlinux       # path of the vmlinux debug file
    python3 vmcores/unpack.py --list          # scenario names

The cache lives in ``$DRGN_CRASHHP_CACHE`` or ``$XDG_CACHE_HOME/drgn-crashhp``
(``~/.cache/drgn-crashhp``), keyed by the archive's SHA-256, so a changed
archive is unpacked again.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import lzma
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
ARCHIVE = HERE / "dumps.tar.zst"


def cache_root() -> Path:
    env = os.environ.get("DRGN_CRASHHP_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "drgn-crashhp"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def scenarios() -> Dict[str, dict]:
    """Ground truth of every scenario, by name."""
    out = {}
    for path in sorted(HERE.glob("*.json")):
        with open(path) as f:
            truth = json.load(f)
        out[truth.get("scenario", path.stem)] = truth
    return out


def unpack() -> Path:
    """Unpack the archive and the debug info once; return the directory."""
    if not ARCHIVE.exists():
        raise FileNotFoundError(f"{ARCHIVE} is missing")
    dest = cache_root() / f"vmcores-{_digest(ARCHIVE)}"
    stamp = dest / ".complete"
    if stamp.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Several processes (test runs, helpers) may unpack at once: one does the
    # work under the lock, the others wait for it and find the stamp.
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            _unpack_into(dest)
    return dest


def _unpack_into(dest: Path) -> None:
    import zstandard

    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
    with open(ARCHIVE, "rb") as raw, dctx.stream_reader(raw) as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = os.path.basename(member.name)
            if not member.isfile() or not name:
                continue
            src = tar.extractfile(member)
            assert src is not None
            with open(tmp / name, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    for xz in HERE.glob("vmlinux*.xz"):
        with lzma.open(xz) as src, open(tmp / xz.stem, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def vmlinux_path() -> Path:
    [debug] = [p for p in unpack().iterdir() if p.name.startswith("vmlinux")]
    return debug


def dump_path(name: str) -> Path:
    truth = scenarios()[name]
    return unpack() / os.path.basename(truth.get("dump", f"{name}.elf"))


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--path", metavar="NAME", help="print the dump path of NAME")
    p.add_argument("--vmlinux", action="store_true", help="print the vmlinux path")
    p.add_argument("--list", action="store_true", help="list scenarios")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(scenarios()))
    elif args.path:
        print(dump_path(args.path))
    elif args.vmlinux:
        print(vmlinux_path())
    else:
        print(unpack())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
