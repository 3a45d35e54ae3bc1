#!/bin/sh
# After mmdebstrap (lab/debian-guest.sh): $1 is the root of the image. Only
# what a lab needs on top of Debian's defaults: fstab, the command loop on
# ttyS0, and no timers or gettys competing for the console and the TCG CPUs.
# Idempotent.
set -eu
root=$1
here=$(dirname "$0")
ch() { chroot "$root" "$@"; }
# kdump-tools' defaults as its postinst leaves them: USE_KDUMP=1 on trixie.
grep -q '^USE_KDUMP=1' "$root/etc/default/kdump-tools" ||
    { echo "kdump-tools: USE_KDUMP is not 1 by default" >&2; exit 1; }
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' > "$root/etc/fstab"
echo crashhp-debian > "$root/etc/hostname"
install -m 0755 "$here/crashhp-console" "$root/usr/local/sbin/crashhp-console"
install -m 0644 "$here/crashhp-console.service" "$root/etc/systemd/system/crashhp-console.service"
ch systemctl enable crashhp-console.service
for u in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer \
         apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
         dpkg-db-backup.timer systemd-tmpfiles-clean.timer; do
    ch systemctl mask "$u" 2>/dev/null || true
done
