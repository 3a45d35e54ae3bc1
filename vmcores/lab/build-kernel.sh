#!/bin/bash
# Build the minimal lab kernel (x86_64, Debian linux-source-6.12) outside the repo.
# Outputs in $BUILD (default /work/lab-build): linux-source-6.12/arch/x86/boot/bzImage, vmlinux,
# vmlinux.debug.xz, kernel-release.txt, source-version.txt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-/work/lab-build}
JOBS=${JOBS:-$(nproc)}
SRC=$BUILD/linux-source-6.12
mkdir -p "$BUILD"
if [ ! -f "$SRC/Makefile" ]; then
    tar -C "$BUILD" -xf /usr/src/linux-source-6.12.tar.xz
fi
cd "$SRC"
make tinyconfig >/dev/null
./scripts/kconfig/merge_config.sh -m .config "$HERE/kernel.config" >/dev/null
make olddefconfig >/dev/null
# verify that every option the fragment asks for really is set
missing=0
while IFS= read -r line; do
    case "$line" in ''|'#'*) continue;; esac
    opt=${line%%=*}; val=${line#*=}
    case "$val" in
        n) if grep -q "^$opt=" .config; then echo "UNWANTED: $(grep "^$opt=" .config)"; missing=1; fi;;
        *) if ! grep -qx "$opt=$val" .config; then echo "MISSING: $line (have: $(grep "^$opt=\|^# $opt is" .config || echo none))"; missing=1; fi;;
    esac
done < "$HERE/kernel.config"
[ $missing = 0 ] || { echo "kernel config check failed" >&2; exit 1; }
make -j"$JOBS" bzImage
make -s kernelrelease > "$BUILD/kernel-release.txt"
dpkg-query -W -f='${Package} ${Version}\n' linux-source-6.12 > "$BUILD/source-version.txt"
cp arch/x86/boot/bzImage "$BUILD/bzImage"
# debug file: keep debug sections, decompress them so dwz can work, then xz
objcopy --only-keep-debug vmlinux "$BUILD/vmlinux.debug"
objcopy --decompress-debug-sections "$BUILD/vmlinux.debug" "$BUILD/vmlinux.debug.tmp"
mv "$BUILD/vmlinux.debug.tmp" "$BUILD/vmlinux.debug"
if dwz -L none "$BUILD/vmlinux.debug" 2>"$BUILD/dwz.log"; then echo "dwz ok"; else echo "dwz failed (see dwz.log), continuing"; fi
# .debug_loclists (~5 MB: locations of local variables/parameters) is dropped to fit the
# 10 MB budget; drgn only loses local-variable values in stack traces, not types/globals.
# (after dwz: dwz refuses DW_AT_location loclist refs without the section)
objcopy --remove-section=.debug_loclists "$BUILD/vmlinux.debug"
xz -9 -T1 -k -f "$BUILD/vmlinux.debug"
ls -la "$BUILD/bzImage" "$BUILD/vmlinux.debug.xz"
[ "$(stat -c %s "$BUILD/vmlinux.debug.xz")" -le $((10 << 20)) ] || echo "WARNING: vmlinux.debug.xz is over 10 MiB"
cat "$BUILD/kernel-release.txt" "$BUILD/source-version.txt"
