#!/usr/bin/env bash
# Run the whole flowcoord test suite on a fresh Debian machine.
# Installs what the tests need (ZooKeeper, PostgreSQL, Chromium from Debian; the package and its
# dev extra into ./.venv) and runs pytest. The tests start their own servers on loopback.
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
if [ "${FLOWCOORD_SKIP_BROWSER:-0}" != 1 ]; then
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian packages: ${need[*]} (run as root, or install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null
    }
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
if [ "${FLOWCOORD_SKIP_LINT:-0}" != 1 ]; then
    .venv/bin/ruff check src tests benchmarks examples
    .venv/bin/ruff format --check -q src tests benchmarks examples
    .venv/bin/mypy --strict src tests
    .venv/bin/lint-imports
    NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict -q -d site
fi
exec .venv/bin/python -m pytest "$@"
