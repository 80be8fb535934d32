#!/usr/bin/env bash
# The one command that runs every check: set-up, lint, format, types, the import contracts,
# the unit tests (no Triton, seconds), then the integration and slow tests (which start the
# real embedded Triton themselves). Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
echo "==> ruff"
.venv/bin/ruff check gateway tests scripts
.venv/bin/ruff format --check gateway tests scripts
echo "==> mypy (strict)"
.venv/bin/mypy
echo "==> import contracts (lint-imports; see [tool.importlinter] in pyproject.toml)"
.venv/bin/lint-imports
echo "==> unit tests (no Triton, no process, seconds)"
.venv/bin/python -m pytest -m "not integration and not slow" "$@"
echo "==> integration and slow tests (the real embedded Triton, processes, realistic models)"
.venv/bin/python -m pytest -m "integration or slow" "$@"
