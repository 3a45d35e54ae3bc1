#!/bin/bash
# Build one minimal lab kernel (x86_64) from Debian's linux-source-GEN outside the repo.
#   build-kernel.sh 6.1|6.12|7.3
# Config: make tinyconfig + kernel.config (common) + kernel-GEN.config (this generation's
# renamed/new options) + make olddefconfig; every line of both fragments is verified in .config.
# Outputs in $BUILD (lab-env.sh): bzImage, vmlinux.debug (+ .xz), kernel-release.txt,
# source-version.txt, config.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lab-env.sh"
JOBS=${JOBS:-$(nproc)}
SRC=$BUILD/linux-source-$GEN
TARBALL=/usr/src/linux-source-$GEN.tar.xz
[ -f "$TARBALL" ] || { echo "$TARBALL missing: run setup.sh $GEN" >&2; exit 1; }
mkdir -p "$BUILD"
if [ ! -f "$SRC/Makefile" ]; then
    tar -C "$BUILD" -xf "$TARBALL"
fi
cd "$SRC"
FRAGS=("$HERE/kernel.config" "$HERE/kernel-$GEN.config")
make tinyconfig >/dev/null
./scripts/kconfig/merge_config.sh -m .config "${FRAGS[@]}" >/dev/null
make olddefconfig >/dev/null
# verify that every option the fragments ask for really is set (the last fragment wins)
missing=0
declare -A want
for f in "${FRAGS[@]}"; do
    while IFS= read -r line; do
        case "$line" in ''|'#'*) continue;; esac
        want[${line%%=*}]=${line#*=}
    done < "$f"
done
for opt in "${!want[@]}"; do
    val=${want[$opt]}
    case "$val" in
        n) if grep -q "^$opt=" .config; then echo "UNWANTED: $(grep "^$opt=" .config)"; missing=1; fi;;
        *) if ! grep -qx "$opt=$val" .config; then
               echo "MISSING: $opt=$val (have: $(grep "^$opt=\|^# $opt is" .config || echo none))"; missing=1; fi;;
    esac
done
[ $missing = 0 ] || { echo "kernel config check failed" >&2; exit 1; }
cp .config "$BUILD/config"
# No variable tracking: gcc then emits no location lists and no DW_TAG_call_site parameter
# info (debug info only, the code is the same); .debug_info is ~40% smaller, which is what
# lets three kernels' debug files fit the 64 MiB budget. drgn keeps types/globals/symbols.
KCFLAGS=${KCFLAGS--fno-var-tracking-assignments -fno-var-tracking}
make -j"$JOBS" KCFLAGS="$KCFLAGS" bzImage
echo "KCFLAGS=$KCFLAGS" > "$BUILD/kcflags.txt"
make -s kernelrelease > "$BUILD/kernel-release.txt"
dpkg-query -W -f='${Package} ${Version}\n' "linux-source-$GEN" > "$BUILD/source-version.txt"
cp arch/x86/boot/bzImage "$BUILD/bzImage"
# the built vmlinux must carry BTF (CONFIG_DEBUG_INFO_BTF): issue 13 reads it from the dumps
# (no "grep -q" in a pipeline: with pipefail, readelf's SIGPIPE would fail the test)
[ "$(readelf -SW vmlinux | grep -c ' \.BTF ')" -ge 1 ] || { echo "vmlinux has no .BTF section" >&2; exit 1; }
# debug file: keep debug sections, decompress them so dwz can work, then xz; the BTF blob is
# saved as vmlinux.btf (make-archive.sh ships it as kernel.btf)
objcopy --dump-section .BTF="$BUILD/vmlinux.btf" vmlinux
objcopy --only-keep-debug vmlinux "$BUILD/vmlinux.debug"
objcopy --decompress-debug-sections "$BUILD/vmlinux.debug" "$BUILD/vmlinux.debug.tmp"
mv "$BUILD/vmlinux.debug.tmp" "$BUILD/vmlinux.debug"
if dwz -L none "$BUILD/vmlinux.debug" 2>"$BUILD/dwz.log"; then echo "dwz ok"; else echo "dwz failed (see dwz.log), continuing"; fi
# Dropped to fit three kernels in the 64 MiB budget (after dwz: dwz refuses DW_AT_location
# loclist refs without .debug_loclists); drgn keeps types, globals, per-CPU variables and symbols:
#   .debug_loclists/.debug_loc  locations of local variables/parameters (stack-trace locals)
#   .debug_line/.debug_line_str line tables (source lines in stack traces)
#   .debug_frame                CFI (drgn unwinds x86_64 kernels with ORC)
# (6.1's vmlinux keeps its --emit-relocs relocations (.rela.text, .rela.debug_*, ...; 7.x strips
# them), which pin the symbols of the sections removed below; drgn does not apply relocations of
# an ET_EXEC file: drop them all first)
objcopy --remove-relocations='*' "$BUILD/vmlinux.debug"
objcopy --remove-section=.debug_loclists --remove-section=.debug_loc "$BUILD/vmlinux.debug"
objcopy --remove-section=.debug_line --remove-section=.debug_line_str \
    --remove-section=.debug_frame "$BUILD/vmlinux.debug"
# .BTF stays NOBITS in the debug file (as --only-keep-debug leaves it: its symbols
# __start_BTF/__stop_BTF stay, its bytes are not in the file): the blob ships as kernel.btf inside
# dumps.tar.zst, where it costs nothing (the same bytes are in every dump's kernel image)
xz -9 -T1 -k -f "$BUILD/vmlinux.debug"
ls -la "$BUILD/bzImage" "$BUILD/vmlinux.debug.xz" "$BUILD/vmlinux.btf"
cat "$BUILD/kernel-release.txt" "$BUILD/source-version.txt"
