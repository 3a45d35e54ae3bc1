#!/bin/bash
# Pack one architecture's dumps (lab/arch/scenario.py) like the x86 generations
# (lab/make-archive.sh): the guest initramfs (its /kernel is the Debian kernel) and the kernel's
# raw BTF first, then the dumps; zero pages become holes, GNU sparse tar,
# zstd --ultra -22 --long=29|30 -> vmcores/ARCH/dumps.tar.zst; dumps in scenario.py's ARCHIVE_ORDER
#   lab/arch/make-archive.sh ppc64le|arm64
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
OUT=$(python3 "$HERE/scenario.py" --arch "$ARCH" --print-json-dir)
ORDER=$(python3 "$HERE/scenario.py" --arch "$ARCH" --list-dumps)
# zstd window: ppc64le 30 (1 GiB: each pseries dump has ~300 MB of data, so a 512 MiB window
# sees barely two of them), arm64 29 as the x86 generations. Decompress with --long=30 /
# unpack.py (max window 2 GiB).
case "$ARCH" in ppc64le) LONG=${LONG:-30} ;; *) LONG=${LONG:-29} ;; esac
cp "$ABUILD/initramfs.cpio" "$DUMP_DIR/initramfs.cpio"
files=(initramfs.cpio)
if [ -f "$ABUILD/vmlinux.btf" ]; then
    cp "$ABUILD/vmlinux.btf" "$DUMP_DIR/kernel.btf"
    files+=(kernel.btf)
fi
for f in $ORDER; do
    [ -f "$DUMP_DIR/$f" ] || { echo "missing dump $DUMP_DIR/$f" >&2; exit 1; }
    fallocate --dig-holes "$DUMP_DIR/$f"
    files+=("$f")
done
tar -C "$DUMP_DIR" --sparse --format=gnu --owner=0 --group=0 --numeric-owner \
    -cf "$DUMP_DIR/dumps.tar" "${files[@]}"
LEVEL=${ZSTD_LEVEL:---ultra -22}
t0=$(date +%s)
zstd $LEVEL --long=$LONG -T0 -q -f "$DUMP_DIR/dumps.tar" -o "$OUT/dumps.tar.zst.tmp"
mv "$OUT/dumps.tar.zst.tmp" "$OUT/dumps.tar.zst"
echo "zstd: $(( $(date +%s) - t0 )) s, tar $(stat -c %s "$DUMP_DIR/dumps.tar") B"
rm -f "$DUMP_DIR/dumps.tar"
ls -la "$OUT/dumps.tar.zst"
# the whole vmcores/ must stay within 96 MiB (issue 19)
size=$(du -sb "$(dirname "$OUT")" | cut -f1)
[ "$size" -le $((96 << 20)) ] || { echo "vmcores/ is $size B: exceeds 96 MiB" >&2; exit 1; }
echo "vmcores/: $size B (budget $((96 << 20)))"
