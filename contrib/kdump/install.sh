#!/usr/bin/env bash
# Install the hotplug hook, its systemd units, the udev rule and the settings
# file (kept if present), as root:
#   contrib/kdump/install.sh [--destdir DIR] [--enable] [--reload CMD]
# --enable also reloads systemd and udev and starts the timer. --reload CMD
# sets CRASHHP_RELOAD (the command that reloads a stale crash kernel). A
# reload through systemd (Debian: "systemctl restart kdump-tools", Fedora:
# "systemctl restart kdump") runs in the kdump service with its privileges and
# needs nothing more from the hardened check unit; any other command (e.g.
# "kdump-config reload", "kdumpctl reload", a kexec -p script) loads the
# kernel itself, so a drop-in gives the unit CAP_SYS_BOOT, the kexec system
# calls and write access to /var/lib/kdump and to kdump-tools' KDUMP_COREDIR.
# drgn-crashhp itself is installed separately (README: kdump integration).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
destdir=""
enable=""
reload=""
while [ $# -gt 0 ]; do
    case "$1" in
        --destdir) destdir="$2"; shift 2 ;;
        --enable) enable=1; shift ;;
        --reload) reload="$2"; shift 2 ;;
        *) echo "usage: $0 [--destdir DIR] [--enable] [--reload CMD]" >&2; exit 2 ;;
    esac
done
install -D -m 0755 "$here/drgn-crashhp-hook" "$destdir/usr/local/libexec/drgn-crashhp-hook"
install -D -m 0644 "$here/drgn-crashhp@.service" "$destdir/etc/systemd/system/drgn-crashhp@.service"
install -D -m 0644 "$here/drgn-crashhp.timer" "$destdir/etc/systemd/system/drgn-crashhp.timer"
install -D -m 0644 "$here/99-drgn-crashhp.rules" "$destdir/etc/udev/rules.d/99-drgn-crashhp.rules"
if [ ! -e "$destdir/etc/default/drgn-crashhp" ]; then
    install -D -m 0644 "$here/drgn-crashhp.default" "$destdir/etc/default/drgn-crashhp"
fi
dropin="$destdir/etc/systemd/system/drgn-crashhp@.service.d/reload.conf"
if [ -n "$reload" ]; then
    conf="$destdir/etc/default/drgn-crashhp"
    grep -v '^CRASHHP_RELOAD=' "$conf" > "$conf.new" || true
    case "$reload" in *'"'*|*'\'*|*'$'*|*'`'*)
        echo "--reload: no quotes, backslashes or \$ in the command" >&2; exit 2 ;; esac
    echo "CRASHHP_RELOAD=\"$reload\"" >> "$conf.new"
    mv "$conf.new" "$conf"
    case "$reload" in
        systemctl\ *) rm -f "$dropin" ;;
        *)
            # kdump-tools' kdump-config writes the command it loaded with to
            # $KDUMP_COREDIR/kexec_cmd ("kdump-config show" prints it).
            coredir=""
            if [ -r "$destdir/etc/default/kdump-tools" ]; then
                coredir="$(sed -n 's/^KDUMP_COREDIR="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' \
                    "$destdir/etc/default/kdump-tools" | tail -1)"
            fi
            coredir="${coredir:-/var/crash}"
            mkdir -p "$(dirname "$dropin")"
            cat > "$dropin" <<EOS
# Written by contrib/kdump/install.sh --reload: the reload command loads the
# crash kernel itself (kexec_file_load/kexec_load need CAP_SYS_BOOT; kexec
# reads /proc/iomem, whose addresses need CAP_SYS_ADMIN; kdump-tools keeps its
# links in /var/lib/kdump and the load command in $coredir/kexec_cmd).
[Service]
CapabilityBoundingSet=CAP_SYS_BOOT CAP_SYS_ADMIN CAP_DAC_OVERRIDE
SystemCallFilter=kexec_load kexec_file_load
ReadWritePaths=-/var/lib/kdump -/var/lib/kdump-tools -$coredir
EOS
            ;;
    esac
else
    rm -f "$dropin"
fi
if [ -n "$enable" ]; then
    systemctl daemon-reload
    udevadm control --reload
    systemctl enable --now drgn-crashhp.timer
fi
