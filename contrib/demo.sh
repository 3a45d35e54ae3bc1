#!/usr/bin/env bash
# Run drgn-crashhp on one bundled real-kernel vmcore (default: file_memadd,
# a 6.12 guest that hot-added a 128 MiB DIMM after loading its crash kernel).
#   contrib/demo.sh [SCENARIO] [drgn-crashhp options...]
# Scenarios: python3 vmcores/unpack.py --list
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
scenario="${1:-file_memadd}"
shift || true
dump="$(python3 "$here/vmcores/unpack.py" --path "$scenario")"
vmlinux="$(python3 "$here/vmcores/unpack.py" --vmlinux)"
status=0
drgn-crashhp -c "$dump" -s "$vmlinux" --no-default-symbols "$@" || status=$?
echo "(drgn-crashhp exit status $status)"
