#!/usr/bin/env bash
# Create (or reuse) .venv and install the project with the given extras (default: dev,offline).
# Usage: bash scripts/setup_env.sh [extras]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev,offline}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=".venv/.mesm-installed-${EXTRAS//,/_}"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install --disable-pip-version-check -q -e ".[${EXTRAS}]"
  touch "$STAMP"
fi
