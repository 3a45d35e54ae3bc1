#!/bin/sh
# mmdebstrap customize hook of lab/debian-guest.sh: $1 is the root of the
# Debian 13 image. Adds the 7.3 cloud kernel from trixie-backports next to
# trixie's 6.12 (each with its -dbg package, whose module debug files dpkg
# leaves out), and the lab console; the rest is Debian's defaults.
set -eu
root=$1
here=$(dirname "$0")
in() { chroot "$root" "$@"; }
export DEBIAN_FRONTEND=noninteractive
# The versioned kernel packages the cloud metapackages of trixie and
# trixie-backports name (trixie's is already installed by --include).
flavour() {
    in apt-cache depends "linux-image-cloud-amd64/$1" 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -1
}
k612=$(flavour trixie)
k73=$(flavour trixie-backports)
[ -n "$k612" ] && [ -n "$k73" ] || { echo "cannot resolve the cloud kernels ($k612, $k73)" >&2; exit 1; }
in apt-get install -y --no-install-recommends "$k612-dbg/trixie" \
    "$k73/trixie-backports" "$k73-dbg/trixie-backports"

# kdump-tools' defaults, as its postinst leaves them (USE_KDUMP=1 on trixie);
# the crashkernel= of its grub snippet goes on QEMU's -append (no bootloader).
if ! grep -q '^USE_KDUMP=1' "$root/etc/default/kdump-tools"; then
    echo "note: kdump-tools did not set USE_KDUMP=1; setting it" >&2
    sed -i 's/^#* *USE_KDUMP=.*/USE_KDUMP=1/' "$root/etc/default/kdump-tools"
fi
# kdump-tools builds its initrds from the kernel's postinst hook; make sure
# both kernels have one (the hook is skipped when the kernel came first).
for k in "$k612" "$k73"; do
    v=${k#linux-image-}
    [ -e "$root/var/lib/kdump/initrd.img-$v" ] || in /etc/kernel/postinst.d/kdump-tools "$v"
done

cat > "$root/etc/fstab" <<EOS
/dev/vda / ext4 defaults,errors=remount-ro 0 1
EOS
echo crashhp-debian > "$root/etc/hostname"
install -m 0755 "$here/crashhp-console" "$root/usr/local/sbin/crashhp-console"
install -m 0644 "$here/crashhp-console.service" "$root/etc/systemd/system/crashhp-console.service"
in systemctl enable crashhp-console.service
# Nothing on the console but the command loop; no timers that compete with
# the tests for a TCG CPU.
in systemctl mask serial-getty@ttyS0.service getty@tty1.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    man-db.timer dpkg-db-backup.timer systemd-tmpfiles-clean.timer >/dev/null 2>&1 || true
in passwd -d root >/dev/null
# The image's kernels and their versions, for the host (vmlinuz, initrd, the
# -dbg vmlinux of --qemu -s).
printf '%s\n' "${k612#linux-image-}" "${k73#linux-image-}" > "$root/etc/crashhp-kernels"
