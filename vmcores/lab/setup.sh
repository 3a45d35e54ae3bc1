#!/bin/sh
# Idempotent host setup for the drgn-crashhp vmcore lab (Debian 12 bookworm, root).
# setup.sh --live: only QEMU 10, for tests/test_live_qemu.py.
set -eu
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

# apt sources: bookworm-backports (QEMU 10) and trixie (kexec-tools 2.0.29, pinned low)
cat > /etc/apt/sources.list.d/extra.sources <<'EOS'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
mkdir -p /etc/apt/preferences.d
cat > /etc/apt/preferences.d/99-pin <<'EOS'
Package: *
Pin: release n=trixie
Pin-Priority: 100
EOS

export DEBIAN_FRONTEND=noninteractive
apt-get update
if [ "${1:-}" = "--live" ]; then
    # Only what the live test needs: QEMU 10 (bookworm's 7.2 TCG corrupts
    # 6.12 guests). The kernel and initramfs come from vmcores/.
    apt-get install -y --no-install-recommends -t bookworm-backports qemu-system-x86
    qemu-system-x86_64 --version | head -1
    exit 0
fi
apt-get install -y --no-install-recommends \
    build-essential flex bison bc libelf-dev libssl-dev dwz xz-utils zstd \
    python3 cpio busybox-static linux-source-6.12 binutils
apt-get install -y --no-install-recommends -t bookworm-backports qemu-system-x86
qemu-system-x86_64 --version | head -1
