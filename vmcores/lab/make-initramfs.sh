#!/bin/bash
# Build the guest initramfs images of one kernel generation (make-initramfs.sh 6.1|6.12|7.3):
#   $BUILD/capture.cpio   busybox-only initrd for the crash (capture) kernel (uncompressed)
#   $BUILD/capture-mdf.cpio  capture initrd with Debian's makedumpfile (bookworm, host libs)
#   $BUILD/initramfs.cpio main guest initrd: busybox + trixie kexec-tools 2.0.29 and its trixie
#                         libs + ld.so, /bzImage (the lab kernel) and /capture.cpio (uncompressed,
#                         so identical bytes dedupe inside and across dumps), /capture-mdf.cpio
#                         and /sbin/addkey (add_key(2) helper for the dm-crypt keys scenario)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lab-env.sh"
BZIMAGE=${BZIMAGE:-$BUILD/bzImage}
DEBS=$BUILD/trixie-debs
TROOT=$BUILD/trixie-root
mkdir -p "$DEBS"
chown _apt "$DEBS" 2>/dev/null || true   # lets apt-get download fetch sandboxed

# --- kexec-tools 2.0.29 from trixie, without installing it on the host ---
# (the trixie binary needs libxenctrl and trixie's libc; closure found with readelf NEEDED)
PKGS="kexec-tools libc6 libxenmisc4.20 libxentoollog1 libxencall1 libxenevtchn1 libxengnttab1
      libxenforeignmemory1 libxendevicemodel1 libxentoolcore1"
for p in $PKGS; do
    ls "$DEBS"/${p}_*.deb >/dev/null 2>&1 || (cd "$DEBS" && apt-get download "$p/trixie")
done
rm -rf "$TROOT"; mkdir -p "$TROOT"
for d in "$DEBS"/*.deb; do dpkg-deb -x "$d" "$TROOT"; done
TL=$TROOT/usr/lib/x86_64-linux-gnu
"$TL/ld-linux-x86-64.so.2" --library-path "$TL" "$TROOT/usr/sbin/kexec" --version

mkroot() {  # $1 = dir: busybox skeleton
    local r=$1
    rm -rf "$r"; mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,root}
    cp /bin/busybox "$r/bin/busybox"
    for a in $("$r/bin/busybox" --list); do
        [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
    done
}

# --- capture initrd ---
C=$BUILD/capture-root
mkroot "$C"
install -m 755 "$HERE/initramfs/capture-init" "$C/init"
(cd "$C" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$BUILD/capture.cpio"

# --- capture initrd with makedumpfile (the host's Debian build and its library closure) ---
MDF=$(command -v makedumpfile)
C=$BUILD/capture-mdf-root
mkroot "$C"
install -m 755 "$HERE/initramfs/capture-init" "$C/init"
mkdir -p "$C/lib/x86_64-linux-gnu" "$C/lib64"
cp "$MDF" "$C/sbin/makedumpfile"
for so in $(ldd "$MDF" | awk '$3 ~ /^\// {print $3} $1 ~ /^\/lib64/ {print $1}'); do
    case "$so" in
        /lib64/*) cp -L "$so" "$C/lib64/";;
        *) cp -L "$so" "$C/lib/x86_64-linux-gnu/";;
    esac
done
(cd "$C" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$BUILD/capture-mdf.cpio"

# --- add_key(2) helper (static) ---
gcc -static -Os -s -o "$BUILD/addkey" "$HERE/initramfs/addkey.c"

# --- main initramfs ---
M=$BUILD/initramfs-root
mkroot "$M"
install -m 755 "$HERE/initramfs/init" "$M/init"
mkdir -p "$M/lib/x86_64-linux-gnu" "$M/lib64"
cp "$TROOT/usr/sbin/kexec" "$M/sbin/kexec"
for so in ld-linux-x86-64.so.2 libc.so.6 libxenctrl.so.4.20 libxentoollog.so.1 libxencall.so.1 \
          libxenevtchn.so.1 libxengnttab.so.1 libxenforeignmemory.so.1 libxendevicemodel.so.1 \
          libxentoolcore.so.1; do
    cp -L "$TL/$so" "$M/lib/x86_64-linux-gnu/$so"
done
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$M/lib64/ld-linux-x86-64.so.2"
cp "$BZIMAGE" "$M/bzImage"
cp "$BUILD/capture.cpio" "$M/capture.cpio"
cp "$BUILD/capture-mdf.cpio" "$M/capture-mdf.cpio"
install -m 755 "$BUILD/addkey" "$M/sbin/addkey"
(cd "$M" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$BUILD/initramfs.cpio"
ls -la "$BUILD/capture.cpio" "$BUILD/capture-mdf.cpio" "$BUILD/initramfs.cpio"
