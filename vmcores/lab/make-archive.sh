#!/bin/bash
# Pack the guest initramfs and all dumps of $DUMP_DIR into vmcores/dumps.tar.zst.
# Zero pages become holes (fallocate --dig-holes) and tar stores sparse members; similar dumps
# are adjacent so zstd --long=27 (128 MiB window) dedupes them across files.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VMCORES=$(dirname "$HERE")
BUILD=${BUILD:-/work/lab-build}
DUMP_DIR=${DUMP_DIR:-/var/tmp/crashhp-dumps}
ORDER="file_base file_corrupt noload file_cpuadd file_memremove file_memadd load_stale_memadd
       load_hotplug_memadd kdump_memadd"
# the guest initramfs goes first: live tests boot bzImage-6.12 with it (its content is also
# inside every dump, so it costs almost nothing after dedup)
cp "$BUILD/initramfs.cpio" "$DUMP_DIR/initramfs.cpio"
files=(initramfs.cpio)
for s in $ORDER; do
    f=$DUMP_DIR/$s.elf
    [ -f "$f" ] || { echo "missing dump $f" >&2; exit 1; }
    fallocate --dig-holes "$f"
    files+=("$s.elf")
done
tar -C "$DUMP_DIR" --sparse --format=gnu --owner=0 --group=0 --numeric-owner \
    -cf "$DUMP_DIR/dumps.tar" "${files[@]}"
zstd -19 --long=27 -T0 -q -f "$DUMP_DIR/dumps.tar" -o "$VMCORES/dumps.tar.zst.tmp"
mv "$VMCORES/dumps.tar.zst.tmp" "$VMCORES/dumps.tar.zst"
rm -f "$DUMP_DIR/dumps.tar"
ls -la "$VMCORES/dumps.tar.zst"
