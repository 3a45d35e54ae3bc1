#!/usr/bin/env bash
# Install the hotplug hook, its systemd units, the udev rule and the settings
# file (kept if present), as root:
#   contrib/kdump/install.sh [--destdir DIR] [--enable]
# --enable also reloads systemd and udev and starts the timer. drgn-crashhp
# itself is installed separately (README: kdump integration).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
destdir=""
enable=""
while [ $# -gt 0 ]; do
    case "$1" in
        --destdir) destdir="$2"; shift 2 ;;
        --enable) enable=1; shift ;;
        *) echo "usage: $0 [--destdir DIR] [--enable]" >&2; exit 2 ;;
    esac
done
install -D -m 0755 "$here/drgn-crashhp-hook" "$destdir/usr/local/libexec/drgn-crashhp-hook"
install -D -m 0644 "$here/drgn-crashhp@.service" "$destdir/etc/systemd/system/drgn-crashhp@.service"
install -D -m 0644 "$here/drgn-crashhp.timer" "$destdir/etc/systemd/system/drgn-crashhp.timer"
install -D -m 0644 "$here/99-drgn-crashhp.rules" "$destdir/etc/udev/rules.d/99-drgn-crashhp.rules"
if [ ! -e "$destdir/etc/default/drgn-crashhp" ]; then
    install -D -m 0644 "$here/drgn-crashhp.default" "$destdir/etc/default/drgn-crashhp"
fi
if [ -n "$enable" ]; then
    systemctl daemon-reload
    udevadm control --reload
    systemctl enable --now drgn-crashhp.timer
fi
