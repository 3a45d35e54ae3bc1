#!/bin/sh
# mmdebstrap customize hook of lab/debian12-guest.sh: $1 is the root of the
# Debian 12 image. Adds the -dbg package of bookworm's 6.1 cloud kernel
# (installed by --include; dpkg leaves the module debug files out) and lists
# its version in /etc/crashhp-kernels.
set -eu
root=$1
ch() { chroot "$root" "$@"; }
export DEBIAN_FRONTEND=noninteractive
k61=$(ch apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -1)
[ -n "$k61" ] || { echo "cannot resolve bookworm's cloud kernel" >&2; exit 1; }
ch apt-get install -y --no-install-recommends "$k61-dbg"
printf '%s\n' "${k61#linux-image-}" > "$root/etc/crashhp-kernels"
