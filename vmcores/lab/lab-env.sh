# Sourced by the lab scripts: one kernel generation per build folder.
#   GEN  = 6.1 | 6.12 | 7.3 (first argument of build-kernel.sh / make-all.sh, or $GEN)
#   LAB  = root of the big outputs, default ${XDG_CACHE_HOME:-$HOME/.cache}/drgn-crashhp/lab
#   BUILD = $LAB/$GEN (kernel tree, bzImage, vmlinux.debug*, initramfs), DUMP_DIR = $BUILD/dumps,
#   WORK_DIR = $BUILD/run (QEMU sockets, serial logs). Any of them can be set by the caller.
GEN=${1:-${GEN:-}}
case "$GEN" in
    6.1|6.12|7.3) ;;
    *) echo "usage: $(basename "$0") 6.1|6.12|7.3   (kernel generation)" >&2; exit 2 ;;
esac
LAB=${LAB:-${XDG_CACHE_HOME:-$HOME/.cache}/drgn-crashhp/lab}
BUILD=${BUILD:-$LAB/$GEN}
DUMP_DIR=${DUMP_DIR:-$BUILD/dumps}
WORK_DIR=${WORK_DIR:-$BUILD/run}
export GEN LAB BUILD DUMP_DIR WORK_DIR
