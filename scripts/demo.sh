#!/usr/bin/env bash
# Install flowcoord into ./.venv and run the demo on embedded defaults (no servers needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/flowcoord demo "$@"
