#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (C++ via ctest, Python
# via pytest). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -z "${NORMOPT_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export NORMOPT_DATA_DIR="$(cd ../shared/data && pwd)"
fi
status=0
ctest --test-dir build --output-on-failure -j "$(nproc)" || status=1
if ls tests/python/test_*.py >/dev/null 2>&1; then
  NORMOPT_LIBRARY="$(ls build/libnormopt.so* | head -n1)" \
    .venv/bin/python -m pytest -q tests/python || status=1
fi
exit $status
