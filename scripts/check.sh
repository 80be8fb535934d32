#!/usr/bin/env bash
# The one command that runs every check: set-up, lint, format, types, then the test suite
# (which starts the real embedded Triton itself). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
echo "==> ruff"
.venv/bin/ruff check gateway tests scripts
.venv/bin/ruff format --check gateway tests scripts
echo "==> mypy (strict)"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/python -m pytest "$@"
