#!/usr/bin/env python3
"""
Unpack the bundled real-kernel fixtures into a cache directory (never into
the repository) and print paths.

    python3 vmcores/unpack.py                 # unpack, print the cache dir
    python3 vmcores/unpack.py --path NAME     # path of a dump (scenario name)
    python3 vmcores/unpack.py --vmlinux       # path of the vmlinux debug file
    python3 vmcores/unpack.py --list          # scenario names
    python3 vmcores/unpack.py --gen 7.3 ...   # the same for another kernel generation
    python3 vmcores/unpack.py --all           # every generation's scenarios

Generations: 6.12 (files at the top of vmcores/, scenario names without prefix), 6.1
and 7.3 (vmcores/v6.1/, vmcores/v7.3/; full names "v6.1/file_base"). Each has its
own archive, debug file (``vmlinux*.debug.xz``) and cache directory.

Other architectures (Debian's own kernels, lab/arch/): ``ppc64le-6.12`` in
vmcores/ppc64le/ and ``arm64-6.12`` in vmcores/arm64/, full names
"ppc64le/ppc_hp_base", "arm64/arm_base".  Their distro debug info is too big to
commit: ``vmlinux_path()`` finds it in the lab cache, where
``lab/arch/setup.sh ARCH`` puts it (FileNotFoundError otherwise); with no debug
info drgn-crashhp uses the BTF + kallsyms in the dump (``kernel.btf`` is also in
the archive).  ``kernel_path(gen)`` gives the guest kernel (``/kernel`` of the
archived initramfs).

The cache lives in ``$DRGN_CRASHHP_CACHE`` or ``$XDG_CACHE_HOME/drgn-crashhp``
(``~/.cache/drgn-crashhp``), keyed by the SHA-256 of the archive and the
debug file, so a changed one is unpacked again.
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
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ARCHIVE = HERE / "dumps.tar.zst"
DEFAULT_GEN = "6.12"
# other architectures: generation -> folder under vmcores/ (and scenario-name prefix)
ARCH_GENS = {"ppc64le-6.12": "ppc64le", "arm64-6.12": "arm64"}


def generations() -> List[str]:
    """Kernel generations with fixtures in this checkout (6.12 first)."""
    gens = [DEFAULT_GEN] if ARCHIVE.exists() else []
    for d in sorted(HERE.glob("v*/dumps.tar.zst")):
        gens.append(d.parent.name[1:])
    for gen, folder in ARCH_GENS.items():
        if (HERE / folder / "dumps.tar.zst").exists():
            gens.append(gen)
    return gens


def gen_dir(gen: str = DEFAULT_GEN) -> Path:
    if gen in ARCH_GENS:
        return HERE / ARCH_GENS[gen]
    return HERE if gen == DEFAULT_GEN else HERE / f"v{gen}"


def _prefix(gen: str) -> str:
    """Scenario-name prefix of a generation: '' (6.12), 'v7.3/', 'ppc64le/'."""
    if gen == DEFAULT_GEN:
        return ""
    return ARCH_GENS[gen] + "/" if gen in ARCH_GENS else f"v{gen}/"


def split_name(name: str, gen: Optional[str] = None) -> Tuple[str, str]:
    """'v7.3/file_base' -> ('7.3', 'file_base'), 'ppc64le/ppc_hp_base' ->
    ('ppc64le-6.12', 'ppc_hp_base'); a plain name is of *gen* (6.12)."""
    if "/" in name:
        g, _, n = name.partition("/")
        for arch_gen, folder in ARCH_GENS.items():
            if g == folder:
                return arch_gen, n
        if g.startswith("v"):
            return g[1:], n
    return gen or DEFAULT_GEN, name


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


def scenarios(gen: str = DEFAULT_GEN) -> Dict[str, dict]:
    """Ground truth of every scenario of one generation, by (unprefixed) name."""
    out = {}
    for path in sorted(gen_dir(gen).glob("*.json")):
        with open(path) as f:
            truth = json.load(f)
        out[truth.get("scenario", path.stem)] = truth
    return out


def all_scenarios() -> Dict[str, dict]:
    """Every generation's scenarios: 6.12 by plain name, the others as 'vGEN/NAME'
    (other architectures: 'ppc64le/NAME', 'arm64/NAME')."""
    out = {}
    for gen in generations():
        for name, truth in scenarios(gen).items():
            out[_prefix(gen) + name] = truth
    return out


def unpack(gen: str = DEFAULT_GEN) -> Path:
    """Unpack one generation's archive and debug info once; return the directory."""
    archive = gen_dir(gen) / "dumps.tar.zst"
    if not archive.exists():
        raise FileNotFoundError(f"{archive} is missing")
    tag = _prefix(gen).replace("/", "-")
    # keyed by the archive and the debug file: a changed one is unpacked again
    debug = sorted(gen_dir(gen).glob("vmlinux*.xz"))
    parts = [_digest(archive)] + [_digest(p) for p in debug]
    key = hashlib.sha256(" ".join(parts).encode()).hexdigest()[:16]
    dest = cache_root() / f"vmcores-{tag}{key}"
    stamp = dest / ".complete"
    if stamp.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Several processes (test runs, helpers) may unpack at once: one does the
    # work under the lock, the others wait for it and find the stamp.
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            _unpack_into(dest, archive, gen_dir(gen))
    return dest


def _unpack_into(dest: Path, archive: Path = ARCHIVE, src_dir: Path = HERE) -> None:
    import zstandard

    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
    with (
        open(archive, "rb") as raw,
        dctx.stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for member in tar:
            name = os.path.basename(member.name)
            if not member.isfile() or not name:
                continue
            src = tar.extractfile(member)
            assert src is not None
            with open(tmp / name, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    for xz in src_dir.glob("vmlinux*.xz"):
        with lzma.open(xz) as src, open(tmp / xz.stem, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def vmlinux_path(gen: str = DEFAULT_GEN) -> Path:
    if gen in ARCH_GENS and not list(gen_dir(gen).glob("vmlinux*.xz")):
        # Debian's -dbg vmlinux, fetched by lab/arch/setup.sh into the lab cache
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        lab = Path(os.environ.get("ALAB") or Path(base) / "drgn-crashhp/lab/arch")
        debug = lab / ARCH_GENS[gen] / "vmlinux.dbg"
        if not debug.exists():
            raise FileNotFoundError(
                f"{debug} is missing: run vmcores/lab/arch/setup.sh {ARCH_GENS[gen]}"
            )
        return debug
    [debug] = [p for p in unpack(gen).iterdir() if p.name.startswith("vmlinux")]
    return debug


def kernel_path(gen: str) -> Path:
    """The guest kernel of another architecture: /kernel of the archived initramfs
    (vmlinux on ppc64le, Image on arm64), taken out once into the cache."""
    dest = unpack(gen)
    out = dest / "kernel"
    if not out.exists():
        data = cpio_member(dest / "initramfs.cpio", "kernel")
        tmp = dest / ".kernel.tmp"
        tmp.write_bytes(data)
        tmp.rename(out)
    return out


def dump_path(name: str, gen: Optional[str] = None) -> Path:
    """Dump of *name*: 'file_base', 'v7.3/file_base', or a name and gen='7.3'."""
    gen, name = split_name(name, gen)
    truth = scenarios(gen)[name]
    return unpack(gen) / os.path.basename(truth.get("dump", f"{name}.elf"))


def bzimage_path(gen: str = DEFAULT_GEN) -> Path:
    """The lab kernel of a generation: bzImage-6.12 is committed; for the other
    generations it is the /bzImage of the archived guest initramfs (the very
    file the guest loaded with kexec), taken out once into the cache."""
    if gen == DEFAULT_GEN:
        return HERE / "bzImage-6.12"
    if (gen_dir(gen) / "bzImage").exists():
        return gen_dir(gen) / "bzImage"
    dest = unpack(gen)
    out = dest / "bzImage"
    if not out.exists():
        data = cpio_member(dest / "initramfs.cpio", "bzImage")
        tmp = dest / ".bzImage.tmp"
        tmp.write_bytes(data)
        tmp.rename(out)
    return out


def btf_path(gen: str) -> Path:
    """The kernel's raw BTF (its .BTF section), shipped in the archive."""
    return unpack(gen) / "kernel.btf"


def cpio_member(path: Path, name: str) -> bytes:
    """One regular file of an uncompressed newc cpio archive."""
    with open(path, "rb") as f:
        while True:
            hdr = f.read(110)
            if len(hdr) < 110 or hdr[:6] not in (b"070701", b"070702"):
                break
            size = int(hdr[54:62], 16)
            namesize = int(hdr[94:102], 16)
            member = f.read(namesize)[:-1].decode()
            f.read((-(110 + namesize)) % 4)
            data = f.read(size)
            f.read((-size) % 4)
            if member == "TRAILER!!!":
                break
            if member.lstrip("./") == name:
                return data
    raise FileNotFoundError(f"{name} not in {path}")


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--path", metavar="NAME", help="print the dump path of NAME")
    p.add_argument("--vmlinux", action="store_true", help="print the vmlinux path")
    p.add_argument("--bzimage", action="store_true", help="print the bzImage path")
    p.add_argument("--list", action="store_true", help="list scenarios")
    p.add_argument(
        "--all", action="store_true", help="list every generation's scenarios"
    )
    p.add_argument(
        "--gen",
        default=DEFAULT_GEN,
        help="kernel generation (6.1, 6.12, 7.3, ppc64le-6.12, arm64-6.12)",
    )
    args = p.parse_args(argv)
    if args.all:
        print("\n".join(all_scenarios()))
    elif args.list:
        print("\n".join(scenarios(args.gen)))
    elif args.path:
        print(dump_path(args.path, None if "/" in args.path else args.gen))
    elif args.vmlinux:
        print(vmlinux_path(args.gen))
    elif args.bzimage:
        print(
            kernel_path(args.gen) if args.gen in ARCH_GENS else bzimage_path(args.gen)
        )
    else:
        print(unpack(args.gen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
