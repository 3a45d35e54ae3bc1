#!/bin/bash
# A Debian 12 (bookworm) guest for the postmortem test on 6.1 (issue 18), the
# same layout as debian-guest.sh's Debian 13 image so lab/debian_guest.py
# boots it (generation "6.1"):
#   debian12-guest.sh image            build (or find) the cached disk image; print its folder
#   debian12-guest.sh payload OUT.img  the payload disk with wheels for Python 3.11
# The image (mmdebstrap, as root): systemd, udev, kdump-tools 1.8.1 with its
# defaults, makedumpfile, python3-venv, bookworm's 6.1 cloud kernel with its
# -dbg package (module debug files left out), and debian-guest.sh's command
# loop on ttyS0 (lab/debian/finish.sh).
# Cache: ${DRGN_CRASHHP_CACHE:-${XDG_CACHE_HOME:-~/.cache}/drgn-crashhp}/debian-guest/bookworm-KEY,
# KEY = hash of this script, lab/debian12/* and the lab/debian/ files it uses
# (debian-guest.sh's own key covers only the Debian 13 inputs, so neither
# image is rebuilt for the other's edits). The mirror comes from this
# machine's apt sources (setup.sh), or DEBIAN_MIRROR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${DRGN_CRASHHP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drgn-crashhp}
SHARED=("$HERE/debian/finish.sh" "$HERE/debian/crashhp-console" "$HERE/debian/crashhp-console.service")

need() {  # install host tools with the machine's own apt
    local missing=()
    for t in "$@"; do command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}"); done
    if [ ${#missing[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

image_dir() {
    local key
    key=$(cat "$0" "$HERE"/debian12/* "${SHARED[@]}" | sha256sum | cut -c1-16)
    echo "$CACHE/debian-guest/bookworm-$key"
}

build_image() {
    local out tmp start mirror rootdir size_mb v
    out=$(image_dir)
    if [ -e "$out/.complete" ]; then echo "$out"; return; fi
    [ "$(id -u)" = 0 ] || { echo "building the image needs root (mmdebstrap --mode=root)" >&2; exit 1; }
    need mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs qemu-img:qemu-utils
    # setup.sh's mirror(): the first bookworm mirror of the apt sources
    mirror=${DEBIAN_MIRROR:-$(sed -n '/^mirror()/,/^}/p' "$HERE/setup.sh" | bash -c '. /dev/stdin; mirror' | head -1)}
    [ -n "$mirror" ] || { echo "no Debian mirror in the apt sources; set DEBIAN_MIRROR" >&2; exit 1; }
    start=$(date +%s)
    tmp="$out.tmp"
    rootdir="$tmp/root"
    # Stage 1 (the long one, kept if a later stage fails): mmdebstrap.
    if [ ! -e "$tmp/.strapped" ]; then
        rm -rf "$tmp"; mkdir -p "$tmp"
        echo "debian12-guest: mmdebstrap bookworm from $mirror into $rootdir" >&2
        nice -n 10 mmdebstrap --mode=root --variant=apt --format=directory \
            --include=systemd,systemd-sysv,udev,dbus,kmod,procps,less,iproute2,e2fsprogs,util-linux \
            --include=kdump-tools,makedumpfile,kexec-tools,python3-venv,linux-image-cloud-amd64 \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/lib/debug/lib/modules/*/kernel/*' \
            --customize-hook="sh '$HERE/debian12/customize.sh' \"\$1\"" \
            bookworm "$rootdir" \
            "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
            >"$tmp/mmdebstrap.log" 2>&1 ||
            { tail -40 "$tmp/mmdebstrap.log" >&2; exit 1; }
        echo "$(( $(date +%s) - start ))" > "$tmp/.strapped"
    fi
    # Stage 2: the lab's few additions (the Debian 13 image's), the host's
    # copies, the disk image.
    sh "$HERE/debian/finish.sh" "$rootdir"
    while read -r v; do
        cp "$rootdir/boot/vmlinuz-$v" "$rootdir/boot/initrd.img-$v" "$tmp/"
        cp "$rootdir/usr/lib/debug/boot/vmlinux-$v" "$tmp/"
    done < "$rootdir/etc/crashhp-kernels"
    cp "$rootdir/etc/crashhp-kernels" "$tmp/kernels"
    # kdump-tools' crashkernel= (its grub snippet; no bootloader here)
    sed -n 's/.*\(crashkernel=[^ "]*\).*/\1/p' "$rootdir/etc/default/grub.d/kdump-tools.cfg" | head -1 > "$tmp/crashkernel"
    [ -s "$tmp/crashkernel" ] || { echo "no crashkernel= in kdump-tools' grub snippet" >&2; exit 1; }
    chroot "$rootdir" dpkg-query -W -f '${Package} ${Version}\n' \
        systemd udev kdump-tools makedumpfile kexec-tools python3 'linux-image-*' > "$tmp/packages"
    local tree_mb
    tree_mb=$(du -sm "$rootdir" | cut -f1)
    size_mb=$(( tree_mb + 2048 ))
    rm -f "$tmp/rootfs.img"
    mkfs.ext4 -q -L crashhp-root -d "$rootdir" "$tmp/rootfs.img" "${size_mb}M"
    local t_mkfs=$(( $(date +%s) - start ))
    # Stage 3: the first boot, where kdump-tools builds its initrd and loads
    # the crash kernel (it skips that in a chroot).
    local t_boot
    t_boot=$(date +%s)
    nice -n 10 python3 "$HERE/debian_guest.py" firstboot "$tmp" >&2
    t_boot=$(( $(date +%s) - t_boot ))
    {
        echo "built $(date -u +%FT%TZ) from $mirror"
        echo "mmdebstrap $(cat "$tmp/.strapped")s; up to mkfs ${t_mkfs}s; first boots ${t_boot}s; total $(( $(date +%s) - start ))s"
        echo "root tree ${tree_mb} MiB; rootfs.img ${size_mb} MiB apparent, $(du -sm "$tmp/rootfs.img" | cut -f1) MiB allocated; folder $(du -sm --exclude=root "$tmp" | cut -f1) MiB"
    } > "$tmp/manifest"
    rm -rf "$rootdir"
    echo "debian12-guest: $(cat "$tmp/manifest")" >&2
    touch "$tmp/.complete"
    rm -rf "$out"; mv "$tmp" "$out"
    echo "$out"
}

# debian-guest.sh's payload disk, with the wheels for bookworm's Python 3.11
# (debian-guest.sh stays as it is: its text is the Debian 13 image's key).
build_payload() {
    local img=$1 tmp py
    need mkfs.ext4:e2fsprogs
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    py=${PYTHON:-python3}
    mkdir -p "$tmp/p/wheels"
    local dl="$CACHE/debian-guest/wheels-cp311"
    if [ ! -e "$dl/.complete" ]; then
        mkdir -p "$dl"
        "$py" -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp \
            --abi cp311 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
            --platform manylinux_2_17_x86_64 -d "$dl" 'drgn>=0.3.0' 'pyelftools>=0.29' 'tabulate>=0.9'
        touch "$dl/.complete"
    fi
    cp "$dl"/*.whl "$tmp/p/wheels/"
    mkdir -p "$tmp/src"
    cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/drgn_crashhp" "$tmp/src/"
    cp "$ROOT"/LICENSE* "$tmp/src/" 2>/dev/null || true
    "$py" -m pip wheel -q --no-deps -w "$tmp/p/wheels" "$tmp/src" >/dev/null
    cp -r "$ROOT/contrib" "$tmp/p/contrib"
    find "$tmp/p" -name __pycache__ -prune -exec rm -rf {} +
    rm -f "$img"
    mkfs.ext4 -q -L crashhp-payload -d "$tmp/p" "$img" 96M
}

case "${1:-}" in
    image) build_image ;;
    payload) [ $# = 2 ] || { echo "usage: $0 payload OUT.img" >&2; exit 2; }; build_payload "$2" ;;
    *) echo "usage: $0 image | payload OUT.img" >&2; exit 2 ;;
esac
