#!/usr/bin/env bash
# Install what the monitoring and page tests need on a Debian machine, as root:
# Chromium (Debian's package) for the headless screenshot of the HTML report,
# and, with --python PY, the package's test and prometheus extras into PY's
# environment (a venv's python; never the system interpreter, PEP 668).
#   contrib/kdump/setup-test.sh [--python .venv/bin/python]
set -euo pipefail
cd "$(dirname "$0")/../.."
python=""
if [ "${1:-}" = "--python" ]; then
    python="$2"
fi
if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version
if [ -n "$python" ]; then
    "$python" -m pip install -q -e '.[test,prometheus]'
    "$python" -c 'import prometheus_client; print("prometheus-client", prometheus_client.__version__)' 2>/dev/null \
        || "$python" -c 'import prometheus_client; print("prometheus-client ok")'
fi
