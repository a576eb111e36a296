#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: C++ via ctest, Python
# via pytest, then a fuzz smoke of the CSV reader (scripts/fuzz.sh). Exits
# non-zero on any failure.
# Usage: scripts/test.sh [--sanitize | --cuda]
#   --sanitize  instead: builds build-asan/ (Debug, -DNORMOPT_SANITIZE=ON, i.e.
#               ASan + UBSan over normopt's own code; LibTorch uninstrumented)
#               and runs the whole C++ suite (ctest) under it. pytest is not
#               run there: the Python interpreter and torch's extension
#               modules are not instrumented, and loading an ASan libnormopt
#               into them needs the runtime LD_PRELOADed, which tests Python
#               rather than normopt.
#   --cuda      instead: the CUDA build (scripts/setup.sh --cuda: the CUDA
#               LibTorch pinned in requirements-cuda.txt, C++20, the CUDA
#               kernels from the registry's nvcc) with the benchmarks, a check that no binary
#               needs a GPU driver to start, then ctest and pytest against
#               it. The CUDA tests run where a GPU is and skip elsewhere.
# NORMOPT_FUZZ_SECONDS: length of the fuzz smoke (default 60; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=0 cuda=0
case "${1:-}" in
  "") ;;
  --sanitize) sanitize=1 ;;
  --cuda) cuda=1 ;;
  *) echo "usage: scripts/test.sh [--sanitize | --cuda]" >&2; exit 2 ;;
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

if ((cuda)); then
  scripts/setup.sh --cuda -DNORMOPT_BUILD_BENCHMARKS=ON
  BUILD=build-cuda VENV=.venv-cuda CTEST=.venv-cuda/bin/ctest
  # Every binary must start on a machine without a GPU: none may need the
  # driver library (libcuda.so.1), and the kernels must be in the library.
  for bin in build-cuda/libnormopt.so build-cuda/tests/normopt_tests \
    build-cuda/examples/* build-cuda/benchmarks/bench_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    if ldd "$bin" | grep -E 'libcuda\.so|not found'; then
      echo "test: $bin needs a library this machine lacks (above)" >&2
      exit 1
    fi
  done
  # grep without -q reads all of readelf's output: with -q it could exit
  # first and, under pipefail, readelf's SIGPIPE would fail the pipeline.
  if ! readelf -S build-cuda/libnormopt.so | grep nv_fatbin >/dev/null; then
    echo "test: build-cuda/libnormopt.so holds no CUDA device code" >&2
    exit 1
  fi
else
  scripts/setup.sh
  BUILD=build VENV=.venv CTEST=ctest
  # The Python package as users install it (pyproject.toml; build-py/ keeps
  # its objects between runs); tests/python/test_package.py checks it.
  CCACHE_BASEDIR="$PWD" .venv/bin/pip install -q --disable-pip-version-check \
    --no-build-isolation .
fi
status=0
"$CTEST" --test-dir "$BUILD" --output-on-failure -j "$(nproc)" || status=1
if ls tests/python/test_*.py >/dev/null 2>&1; then
  NORMOPT_LIBRARY="$(ls "$BUILD"/libnormopt.so* | head -n1)" \
    "$VENV/bin/python" -m pytest -q tests/python || status=1
fi
if ((!cuda)); then
  # Formatting: every C++ and CUDA file as .clang-format says (comments,
  # and so the headers' \code examples, are never reflowed).
  if ! git ls-files -z '*.h' '*.cpp' '*.cu' | xargs -0 clang-format --dry-run -Werror; then
    echo "test: run clang-format -i on the files above" >&2
    status=1
  fi
  # No std::filesystem in normopt's code: the PyTorch wheels export a copy
  # of it that crashes with torch 2.11+cu130 (csrc/util/files.h says more).
  if git grep -nE '#include <filesystem>|std::filesystem::\w+\(|\bfs::\w+\(' -- \
    csrc include examples tests benchmarks; then
    echo "test: std::filesystem above; use POSIX (csrc/util/files.h)" >&2
    status=1
  fi
fi
if ((!cuda)) && [ "${NORMOPT_FUZZ_SECONDS:-60}" != 0 ]; then
  scripts/fuzz.sh "${NORMOPT_FUZZ_SECONDS:-60}" || status=1
fi
exit $status
