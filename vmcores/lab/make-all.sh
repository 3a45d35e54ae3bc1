#!/bin/bash
# Regenerate every fixture of one kernel generation under vmcores/ from a clean clone:
#   make-all.sh 6.1|6.12|7.3
#   setup (apt) -> kernel build -> initramfs -> all scenarios -> dumps.tar.zst -> drgn check.
# Large outputs stay outside the repo (lab-env.sh): $BUILD (kernel tree, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/drgn-crashhp/lab/GEN), $DUMP_DIR (raw dumps, $BUILD/dumps),
# $WORK_DIR (QEMU sockets and serial logs, $BUILD/run).
# Committed outputs: 6.12 at the top of vmcores/ (bzImage-6.12, vmlinux-6.12.debug.xz,
# dumps.tar.zst, *.json), the others in vmcores/vGEN/ (vmlinux.debug.xz, dumps.tar.zst, *.json;
# their bzImage is inside the archived initramfs).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lab-env.sh"
VMCORES=$(dirname "$HERE")
OUT=$(python3 "$HERE/scenario.py" --gen "$GEN" --print-json-dir)
export PYTHONDONTWRITEBYTECODE=1
start=$(date +%s)
step() { echo "=== [$(( $(date +%s) - start ))s] $*"; }

step setup;            "$HERE/setup.sh" "$GEN"
step build-kernel;     "$HERE/build-kernel.sh" "$GEN"
step make-initramfs;   "$HERE/make-initramfs.sh" "$GEN"
step scenarios
rm -rf "$DUMP_DIR"; mkdir -p "$DUMP_DIR" "$OUT"
python3 "$HERE/scenario.py" --gen "$GEN"

step archive;         "$HERE/make-archive.sh" "$GEN"
if [ "$GEN" = 6.12 ]; then
    cp "$BUILD/bzImage" "$VMCORES/bzImage-6.12"
    cp "$BUILD/vmlinux.debug.xz" "$VMCORES/vmlinux-6.12.debug.xz"
else
    # no separate bzImage: it is /bzImage inside the archived initramfs.cpio (unpack.py
    # bzimage_path() takes it out), which saves its size in the 64 MiB budget
    rm -f "$OUT/bzImage"
    cp "$BUILD/vmlinux.debug.xz" "$OUT/vmlinux.debug.xz"
fi

step drgn-check
python3 "$HERE/check-drgn.py" "$GEN"

step done
ls -la "$OUT"
du -sh "$VMCORES"
size=$(du -sb "$VMCORES" | cut -f1)
# 96 MiB since issue 19 (ppc64le/ and arm64/ added about 35 MB)
[ "$size" -le $((96 << 20)) ] || { echo "vmcores/ exceeds 96 MiB" >&2; exit 1; }
echo "make-all.sh $GEN finished in $(( $(date +%s) - start ))s"
