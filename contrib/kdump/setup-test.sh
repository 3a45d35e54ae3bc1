#!/usr/bin/env bash
# Install what the monitoring and page tests need on a Debian machine, as root:
# Chromium (Debian's package) for the headless screenshot of the HTML report,
# makedumpfile (Debian's) to write flattened dumps as kdump-tools does
# (tests/test_flattened.py), and, with --python PY, the package's test and prometheus extras into PY's
# environment (a venv's python; never the system interpreter, PEP 668).
#   contrib/kdump/setup-test.sh [--python .venv/bin/python]
set -euo pipefail
cd "$(dirname "$0")/../.."
python=""
if [ "${1:-}" = "--python" ]; then
    python="$2"
fi
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
command -v makedumpfile >/dev/null 2>&1 || missing+=(makedumpfile)
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
chromium --version
makedumpfile -v | head -1
# 'udevadm verify' (systemd >= 253) checks the hotplug rule. Debian 12 has
# systemd 252: unpack bookworm-backports' udev (254) into the cache, without
# installing it (vmcores/lab/setup.sh adds that suite to apt's sources).
cache="${DRGN_CRASHHP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drgn-crashhp}"
if ! udevadm verify --help >/dev/null 2>&1 && [ ! -x "$cache/udevadm/bin/udevadm" ]; then
    tmp="$(mktemp -d)"
    if (cd "$tmp" && apt-get download -q udev/bookworm-backports >/dev/null 2>&1); then
        dpkg-deb -x "$tmp"/udev_*.deb "$tmp/root"
        mkdir -p "$cache/udevadm/bin"
        cp "$(find "$tmp/root" -path '*bin/udevadm' -type f | head -1)" "$cache/udevadm/bin/udevadm"
    else
        echo "setup-test: no udev package in bookworm-backports; the udevadm verify test is skipped"
    fi
    rm -rf "$tmp"
fi
if [ -x "$cache/udevadm/bin/udevadm" ]; then
    echo "udevadm $("$cache/udevadm/bin/udevadm" --version) (for 'udevadm verify') in $cache/udevadm/bin"
fi
if [ -n "$python" ]; then
    "$python" -m pip install -q -e '.[test,prometheus]'
    "$python" -c 'import prometheus_client; print("prometheus-client", prometheus_client.__version__)' 2>/dev/null \
        || "$python" -c 'import prometheus_client; print("prometheus-client ok")'
fi
