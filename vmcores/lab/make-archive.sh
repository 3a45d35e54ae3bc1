#!/bin/bash
# Pack the guest initramfs and all dumps of one generation ($DUMP_DIR) into its dumps.tar.zst
# (vmcores/dumps.tar.zst for 6.12, vmcores/vGEN/dumps.tar.zst otherwise):
#   make-archive.sh 6.1|6.12|7.3
# Zero pages become holes (fallocate --dig-holes) and tar stores sparse members; similar dumps
# are adjacent so zstd --long (window below) dedupes them across files.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lab-env.sh"
OUT=$(python3 "$HERE/scenario.py" --gen "$GEN" --print-json-dir)
ORDER=$(python3 "$HERE/scenario.py" --gen "$GEN" --list-dumps)
# zstd window: 29 (512 MiB), so similar dumps dedupe across files
LONG=${LONG:-29}
# the guest initramfs goes first: live tests boot the bzImage with it (its content is also
# inside every dump, so it costs almost nothing after dedup)
cp "$BUILD/initramfs.cpio" "$DUMP_DIR/initramfs.cpio"
files=(initramfs.cpio)
# the kernel's BTF (issue 13's BTF mode): beside the dumps it dedupes to nothing
cp "$BUILD/vmlinux.btf" "$DUMP_DIR/kernel.btf"
files+=(kernel.btf)
for f in $ORDER; do
    [ -f "$DUMP_DIR/$f" ] || { echo "missing dump $DUMP_DIR/$f" >&2; exit 1; }
    fallocate --dig-holes "$DUMP_DIR/$f"
    files+=("$f")
done
tar -C "$DUMP_DIR" --sparse --format=gnu --owner=0 --group=0 --numeric-owner \
    -cf "$DUMP_DIR/dumps.tar" "${files[@]}"
# --ultra -22 (a few % smaller than -19, slower) for the 64 MiB budget
LEVEL=${ZSTD_LEVEL:---ultra -22}
zstd $LEVEL --long=$LONG -T0 -q -f "$DUMP_DIR/dumps.tar" -o "$OUT/dumps.tar.zst.tmp"
mv "$OUT/dumps.tar.zst.tmp" "$OUT/dumps.tar.zst"
rm -f "$DUMP_DIR/dumps.tar"
ls -la "$OUT/dumps.tar.zst"
