#!/bin/bash
# Idempotent host setup + guest initramfs for the ppc64le / arm64 lab (Debian 12, root):
#   lab/arch/setup.sh ppc64le|arm64 [--no-dbg]
# 1. lab/setup.sh's apt sources (bookworm-backports, trixie; mirror read from this machine's
#    apt sources), the foreign dpkg architecture (ppc64el / arm64: only so that apt-get download
#    can fetch its packages; nothing of it is installed), QEMU 10 from bookworm-backports.
# 2. apt-get download (pinned versions, into $DEBS): Debian's kernel image and its -dbg,
#    kexec-tools 2.0.29, busybox-static and kexec's library closure.
# 3. $ABUILD/initramfs.cpio: busybox /init command loop (lab/arch/init), kexec + libs, the
#    kernel as /kernel, /capture.cpio (busybox + virtio_blk) for kexec -p.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
DBG=1; [ "${2:-}" = --no-dbg ] && DBG=0
export DEBIAN_FRONTEND=noninteractive

# --- 1. apt: sources of the x86 lab, the foreign architecture, QEMU 10 ---
if [ ! -f /etc/apt/sources.list.d/crashhp-lab.sources ] \
   || ! dpkg --print-foreign-architectures | grep -qx "$DEBARCH"; then
    [ -f /etc/apt/sources.list.d/crashhp-lab.sources ] || "$HERE/../setup.sh" --live
    dpkg --add-architecture "$DEBARCH"
    apt-get update -q
fi
case "$ARCH" in
    ppc64le) QPKG=qemu-system-ppc; QBIN=qemu-system-ppc64 ;;
    arm64)   QPKG=qemu-system-arm; QBIN=qemu-system-aarch64 ;;
esac
command -v "$QBIN" >/dev/null \
    || apt-get install -y --no-install-recommends -t bookworm-backports "$QPKG"
"$QBIN" --version | head -1
command -v zstd xz cpio readelf >/dev/null \
    || apt-get install -y --no-install-recommends zstd xz-utils cpio binutils

# --- 2. packages (versions pinned: these download from the archive this machine reaches) ---
mkdir -p "$DEBS"; chown _apt "$DEBS" 2>/dev/null || true
case "$ARCH" in
    # trixie's ppc64el libc6 is listed but not served by the archive this lab reaches (404):
    # bookworm's 2.36 + unversion-isoc23.py on the kexec binary (see there)
    ppc64le) KEXEC_VER=1:2.0.29-2; LIBC=libc6/bookworm ;;
    arm64)   KEXEC_VER=1:2.0.29-2+b1; LIBC=libc6/trixie ;;
esac
# kexec's library closure (arm64: libxenmisc and what it needs, zlib)
PKGS="$KPKG=$KPKGVER kexec-tools=$KEXEC_VER busybox-static/trixie $LIBC"
[ "$ARCH" = arm64 ] && PKGS="$PKGS zlib1g/trixie libxenmisc4.20/trixie libxentoollog1/trixie
      libxencall1/trixie libxenevtchn1/trixie libxengnttab1/trixie libxenforeignmemory1/trixie
      libxendevicemodel1/trixie libxentoolcore1/trixie"
fetch() {  # $1 = pkg=ver or pkg/suite (for $DEBARCH)
    local name=${1%%[=/]*}
    ls "$DEBS/${name}_"*"_$DEBARCH.deb" >/dev/null 2>&1 && return 0
    local spec=${1/=/:$DEBARCH=}; [ "$spec" = "$1" ] && spec=${1/\//:$DEBARCH/}
    (cd "$DEBS" && apt-get download -q "$spec")
}
for p in $PKGS; do fetch "$p"; done
if [ $DBG = 1 ]; then   # ~0.9 GB (ppc64el) / 0.3 GB (arm64): once, into the cache
    t0=$(date +%s); fetch "$KPKG-dbg=$KPKGVER"; echo "-dbg: $(( $(date +%s) - t0 )) s"
fi

# --- unpack ---
R=$ABUILD/root
if [ ! -f "$R/.done" ]; then
    rm -rf "$R"; mkdir -p "$R"
    for d in "$DEBS"/*_"$DEBARCH".deb; do
        case "$d" in *-dbg_*) continue ;; esac
        dpkg-deb -x "$d" "$R"
    done
    touch "$R/.done"
fi
if [ $DBG = 1 ] && [ ! -f "$ABUILD/vmlinux.dbg" ]; then
    # only the vmlinux of the -dbg package (the modules' debug files are not needed)
    dpkg-deb --fsys-tarfile "$DEBS/$KPKG-dbg_"*"_$DEBARCH.deb" \
        | tar -xO --wildcards "./usr/lib/debug/boot/vmlinux-$KVER" > "$ABUILD/vmlinux.dbg.tmp"
    mv "$ABUILD/vmlinux.dbg.tmp" "$ABUILD/vmlinux.dbg"
fi
# the kernel's raw BTF (for the archive, like the x86 generations)
# (host binutils do not know ppc64/arm64 ELF: a small Python section reader)
if [ ! -f "$ABUILD/vmlinux.btf" ]; then
    if [ "$ARCH" = ppc64le ]; then src="$R/$KIMAGE"; else src="$ABUILD/vmlinux.dbg"; fi
    [ -f "$src" ] && python3 "$HERE/elf-section.py" "$src" .BTF "$ABUILD/vmlinux.btf"
fi

# --- 3. initramfs ---
L=usr/lib/$TRIPLET
mkroot() {  # $1 = dir: busybox skeleton
    local r=$1
    rm -rf "$r"; mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,root,lib,lib64}
    cp "$R/bin/busybox" "$r/bin/busybox" 2>/dev/null || cp "$R/usr/bin/busybox" "$r/bin/busybox"
    # the host cannot run the guest's busybox: the applet list comes from the host's busybox
    # (same upstream, 1.35 vs 1.37); a missing applet is only a dangling link
    for a in $(busybox --list); do
        [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
    done
}
closure() {  # $1 = root to fill, rest = ELF files (inside $R): copy their NEEDED libs from $R
    local dst=$1; shift
    local todo=("$@") seen=" " f lib p
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}; todo=("${todo[@]:1}")
        for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; \
                     readelf -l "$f" | sed -n 's/.*interpreter: .*\/\(.*\)\]/\1/p'); do
            case "$seen" in *" $lib "*) continue ;; esac
            seen="$seen$lib "
            p=$(find "$R/usr/lib/$TRIPLET" "$R/lib/$TRIPLET" "$R/usr/lib64" "$R/lib64" \
                     -name "$lib" 2>/dev/null | head -1 || true)
            [ -n "$p" ] || { echo "library $lib of $f not found" >&2; exit 1; }
            mkdir -p "$dst/$L"; cp -L "$p" "$dst/$L/$lib"
            todo+=("$p")
        done
    done
    # the dynamic loader's path: /lib64/ld64.so.2 (ppc64el), /lib/ld-linux-aarch64.so.1 (arm64)
    for ld in ld64.so.2 ld-linux-aarch64.so.1; do
        [ -f "$dst/$L/$ld" ] && { ln -sf ../$L/$ld "$dst/lib64/$ld"; ln -sf ../$L/$ld "$dst/lib/$ld"; }
    done
    return 0
}
MODDIR=$R/usr/lib/modules/$KVER/kernel
mods() {  # $1 = root, rest = module names: uncompressed into /lib/modules (insmod by /init)
    local dst=$1; shift
    mkdir -p "$dst/lib/modules"
    for m in "$@"; do
        f=$(find "$MODDIR" -name "$m.ko.xz" | head -1)
        [ -n "$f" ] || { echo "module $m not found" >&2; exit 1; }
        xz -dc "$f" > "$dst/lib/modules/$m.ko"
    done
}
# arm64: virtio_mem for the growth scenario, qemu_fw_cfg so that -device vmcoreinfo learns
# where VMCOREINFO is (both are modules in Debian's cloud config)
case "$ARCH" in ppc64le) MODS="virtio_blk" ;; arm64) MODS="virtio_blk virtio_mem qemu_fw_cfg" ;; esac

C=$ABUILD/capture-root
mkroot "$C"
install -m 755 "$HERE/capture-init" "$C/init"
mods "$C" virtio_blk
(cd "$C" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$ABUILD/capture.cpio"

M=$ABUILD/initramfs-root
mkroot "$M"
install -m 755 "$HERE/init" "$M/init"
if [ "$ARCH" = ppc64le ]; then
    python3 "$HERE/unversion-isoc23.py" "$R/usr/sbin/kexec" "$M/sbin/kexec"; chmod 755 "$M/sbin/kexec"
else
    cp "$R/usr/sbin/kexec" "$M/sbin/kexec"
fi
closure "$M" "$R/usr/sbin/kexec"
mods "$M" $MODS
cp "$R/$KIMAGE" "$M/kernel"
cp "$ABUILD/capture.cpio" "$M/capture.cpio"
(cd "$M" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$ABUILD/initramfs.cpio"
cp "$R/$KIMAGE" "$ABUILD/kernel"
ls -la "$ABUILD/kernel" "$ABUILD/capture.cpio" "$ABUILD/initramfs.cpio"
{
    echo "kernel $KPKG $KPKGVER"
    for d in "$DEBS"/*_"$DEBARCH".deb; do echo "$(basename "$d")"; done
} > "$ABUILD/versions.txt"
