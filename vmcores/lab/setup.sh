#!/bin/sh
# Idempotent host setup for the drgn-crashhp vmcore lab (Debian 12 bookworm, root).
#   setup.sh [GEN]   GEN = 6.1 | 6.12 | 7.3 | all (default all): build tools + that kernel's source
#   setup.sh --live  what the tests need (CI): QEMU 10 (x86, ppc, arm), pahole (dwarves), binutils
# The Debian mirror is read from this machine's own apt sources (sources.list or
# sources.list.d/*.sources/*.list); nothing here names an archive host.
set -eu
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
GEN=${1:-all}

# --- the mirror this machine already uses for bookworm (first match wins) ---
mirror() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        [ "$(basename "$f")" = crashhp-lab.sources ] && continue
        # deb822 stanzas: print URIs of a stanza whose Suites list has "bookworm"
        awk 'BEGIN{RS="";FS="\n"}
             { u="";s="";for(i=1;i<=NF;i++){ if($i~/^URIs:/){u=$i;sub(/^URIs:[ \t]*/,"",u)}
                                         if($i~/^Suites:/){s=" "$i" "} }
               if(s ~ /[ \t]bookworm[ \t]/ && u!=""){split(u,a," ");print a[1];exit} }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1=="deb" { i=2; if($2 ~ /^\[/){ while($i !~ /\]$/) i++; i++ }
                         if($(i+1)=="bookworm"){print $i; exit} }' "$f"
    done
}
MIRROR=${DEBIAN_MIRROR:-$(mirror | head -1)}
[ -n "$MIRROR" ] || { echo "no bookworm mirror found in the apt sources; set DEBIAN_MIRROR" >&2; exit 1; }
echo "Debian mirror (from apt sources): $MIRROR"

# bookworm-backports (QEMU 10), trixie (kexec-tools 2.0.29, makedumpfile for the guest),
# trixie-backports (linux-source-7.3). trixie* pinned low: nothing is upgraded from them unless asked.
rm -f /etc/apt/sources.list.d/extra.sources   # older name of this file
cat > /etc/apt/sources.list.d/crashhp-lab.sources <<EOS
Types: deb
URIs: $MIRROR
Suites: bookworm-backports trixie trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
mkdir -p /etc/apt/preferences.d
cat > /etc/apt/preferences.d/99-crashhp-lab <<'EOS'
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=trixie-backports
Pin-Priority: 100
EOS
rm -f /etc/apt/preferences.d/99-pin   # older name of this file

export DEBIAN_FRONTEND=noninteractive
apt-get update
if [ "$GEN" = "--live" ]; then
    # What the tests need besides the fixtures (CI runs this): QEMU 10 for
    # the live tests (bookworm's 7.2 TCG corrupts 6.12 guests); pahole
    # (dwarves) for the BTF tests; binutils (as, ld, objcopy, readelf) for the
    # purgatory, BTF and batch tests; qemu-system-ppc and -arm (18 MB) for the
    # live pseries and virt guests (tests/test_live_other_arches.py). The
    # kernels and initramfs come from vmcores/ (vmcores/ppc64le and
    # vmcores/arm64 ship Debian's). A test that skips for want of one of these
    # fails a CI run (tests/conftest.py, CI_TOOLS).
    apt-get install -y --no-install-recommends binutils
    apt-get install -y --no-install-recommends -t bookworm-backports qemu-system-x86 \
        qemu-system-ppc qemu-system-arm dwarves
    qemu-system-x86_64 --version | head -1
    qemu-system-ppc64 --version | head -1
    qemu-system-aarch64 --version | head -1
    pahole --version
    exit 0
fi
# dwarves: pahole for CONFIG_DEBUG_INFO_BTF (bookworm-backports' 1.27+ knows DWARF 5 / new BTF kinds)
apt-get install -y --no-install-recommends \
    build-essential flex bison bc libelf-dev libssl-dev dwz xz-utils zstd \
    python3 cpio busybox-static binutils rsync kmod
apt-get install -y --no-install-recommends -t bookworm-backports qemu-system-x86 dwarves
case "$GEN" in
    6.1)  apt-get install -y --no-install-recommends linux-source-6.1 ;;
    6.12) apt-get install -y --no-install-recommends linux-source-6.12 ;;
    # pkg/suite, not -t: -t would also pull trixie-backports' linux-libc-dev onto the host
    7.3)  apt-get install -y --no-install-recommends linux-source-7.3/trixie-backports ;;
    all)  apt-get install -y --no-install-recommends linux-source-6.1 linux-source-6.12 \
              linux-source-7.3/trixie-backports ;;
    *) echo "unknown kernel generation $GEN (6.1, 6.12, 7.3, all)" >&2; exit 1 ;;
esac
qemu-system-x86_64 --version | head -1
pahole --version
