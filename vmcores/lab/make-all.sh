#!/bin/bash
# Regenerate every fixture under vmcores/ from a clean clone:
#   setup (apt) -> kernel build -> initramfs -> all scenarios -> dumps.tar.zst -> drgn check.
# Large outputs stay outside the repo: $BUILD (kernel tree, default /work/lab-build),
# $DUMP_DIR (raw dumps, default /var/tmp/crashhp-dumps), $WORK_DIR (QEMU sockets/logs).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VMCORES=$(dirname "$HERE")
export BUILD=${BUILD:-/work/lab-build}
export DUMP_DIR=${DUMP_DIR:-/var/tmp/crashhp-dumps}
export WORK_DIR=${WORK_DIR:-/var/tmp/crashhp-run}
export PYTHONDONTWRITEBYTECODE=1
start=$(date +%s)
step() { echo "=== [$(( $(date +%s) - start ))s] $*"; }

step setup;            "$HERE/setup.sh"
step build-kernel;     "$HERE/build-kernel.sh"
step make-initramfs;   "$HERE/make-initramfs.sh"
step scenarios
rm -rf "$DUMP_DIR"; mkdir -p "$DUMP_DIR"
python3 "$HERE/scenario.py" --dump-dir "$DUMP_DIR" --work-dir "$WORK_DIR" --json-dir "$VMCORES"

step archive;         "$HERE/make-archive.sh"
cp "$BUILD/bzImage" "$VMCORES/bzImage-6.12"
cp "$BUILD/vmlinux.debug.xz" "$VMCORES/vmlinux-6.12.debug.xz"

step drgn-check
python3 "$HERE/check-drgn.py" "$DUMP_DIR" "$BUILD/vmlinux.debug"

step done
ls -la "$VMCORES"
du -sh "$VMCORES"
size=$(du -sb "$VMCORES" | cut -f1)
[ "$size" -le $((40 << 20)) ] || { echo "vmcores/ exceeds 40 MiB" >&2; exit 1; }
echo "make-all.sh finished in $(( $(date +%s) - start ))s"
