#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: C++ via ctest, Python
# via pytest, then a fuzz smoke of the CSV reader (scripts/fuzz.sh). Exits
# non-zero on any failure.
# Usage: scripts/test.sh [--sanitize]
#   --sanitize  instead: builds build-asan/ (Debug, -DNORMOPT_SANITIZE=ON, i.e.
#               ASan + UBSan over normopt's own code; LibTorch uninstrumented)
#               and runs the whole C++ suite (ctest) under it. pytest is not
#               run there: the Python interpreter and torch's extension
#               modules are not instrumented, and loading an ASan libnormopt
#               into them needs the runtime LD_PRELOADed, which tests Python
#               rather than normopt.
# NORMOPT_FUZZ_SECONDS: length of the fuzz smoke (default 60; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=0
case "${1:-}" in
  "") ;;
  --sanitize) sanitize=1 ;;
  *) echo "usage: scripts/test.sh [--sanitize]" >&2; exit 2 ;;
esac

if [ -z "${NORMOPT_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export NORMOPT_DATA_DIR="$(cd ../shared/data && pwd)"
fi

if ((sanitize)); then
  NORMOPT_BUILD_DIR=build-asan scripts/setup.sh -DCMAKE_BUILD_TYPE=Debug -DNORMOPT_SANITIZE=ON
  # Stop at the first report, with a stack; check static initialization order
  # and leaks (LeakSanitizer is on by default with ASan on Linux).
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  exec ctest --test-dir build-asan --output-on-failure -j "$(nproc)"
fi

scripts/setup.sh
status=0
ctest --test-dir build --output-on-failure -j "$(nproc)" || status=1
if ls tests/python/test_*.py >/dev/null 2>&1; then
  NORMOPT_LIBRARY="$(ls build/libnormopt.so* | head -n1)" \
    .venv/bin/python -m pytest -q tests/python || status=1
fi
if [ "${NORMOPT_FUZZ_SECONDS:-60}" != 0 ]; then
  scripts/fuzz.sh "${NORMOPT_FUZZ_SECONDS:-60}" || status=1
fi
exit $status
