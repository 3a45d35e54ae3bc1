#!/bin/sh
# mmdebstrap customize hook of lab/debian-guest.sh: $1 is the root of the
# Debian 13 image. Adds trixie-backports' 7.3 cloud kernel next to trixie's
# 6.12 (installed by --include), each with its -dbg package (dpkg leaves the
# module debug files out), and lists their versions in /etc/crashhp-kernels.
set -eu
root=$1
ch() { chroot "$root" "$@"; }
export DEBIAN_FRONTEND=noninteractive
# The versioned kernel packages the cloud metapackages of trixie and
# trixie-backports name.
flavour() {
    ch apt-cache depends "linux-image-cloud-amd64/$1" 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -1
}
k612=$(flavour trixie)
k73=$(flavour trixie-backports)
[ -n "$k612" ] && [ -n "$k73" ] || { echo "cannot resolve the cloud kernels ($k612, $k73)" >&2; exit 1; }
ch apt-get install -y --no-install-recommends "$k612-dbg/trixie" \
    "$k73/trixie-backports" "$k73-dbg/trixie-backports"
printf '%s\n' "${k612#linux-image-}" "${k73#linux-image-}" > "$root/etc/crashhp-kernels"
