# Sourced by the lab/arch scripts.  ARCH = ppc64le | arm64 (first argument or $ARCH).
#   ALAB = ${XDG_CACHE_HOME:-$HOME/.cache}/drgn-crashhp/lab/arch unless set: debs/ (downloaded
#   packages, shared), $ALAB/$ARCH/{root,initramfs-root,capture-root} (unpacked), kernel image,
#   initramfs.cpio, dumps/ (DUMP_DIR), run/ (WORK_DIR: QEMU sockets, serial logs)
ARCH=${1:-${ARCH:-}}
case "$ARCH" in
    ppc64le) DEBARCH=ppc64el; TRIPLET=powerpc64le-linux-gnu
             KVER=6.12.107+deb13-powerpc64le; KPKGVER=6.12.107-1
             KPKG=linux-image-$KVER; KIMAGE=boot/vmlinux-$KVER ;;
    arm64)   DEBARCH=arm64; TRIPLET=aarch64-linux-gnu
             KVER=6.12.117+deb13-cloud-arm64; KPKGVER=6.12.117-1
             KPKG=linux-image-$KVER; KIMAGE=boot/vmlinuz-$KVER ;;
    *) echo "usage: $(basename "$0") ppc64le|arm64" >&2; exit 2 ;;
esac
ALAB=${ALAB:-${XDG_CACHE_HOME:-$HOME/.cache}/drgn-crashhp/lab/arch}
DEBS=$ALAB/debs
ABUILD=$ALAB/$ARCH
DUMP_DIR=${DUMP_DIR:-$ABUILD/dumps}
WORK_DIR=${WORK_DIR:-$ABUILD/run}
export ARCH DEBARCH TRIPLET KVER KPKGVER KPKG KIMAGE ALAB DEBS ABUILD DUMP_DIR WORK_DIR
