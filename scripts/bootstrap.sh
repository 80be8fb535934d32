#!/usr/bin/env bash
# Set up a fresh machine: a .venv with facegate, the embedded Triton and the test tools.
# Usage: scripts/bootstrap.sh            (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
echo "==> installing facegate[embedded,test] (numpy 1.26 pinned: see constraints.txt)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[embedded,test]'

# Debian's docker-compose validates docker-compose.yml without a Docker engine (tests/deploy).
if ! command -v docker-compose >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing Debian's docker-compose (compose file validation only)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    else
        echo "warning: docker-compose not found; install Debian's docker-compose package (sudo apt-get install docker-compose) for the compose tests" >&2
    fi
fi
echo "==> ready: .venv/bin/facegate --help"
