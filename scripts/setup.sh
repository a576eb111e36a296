#!/usr/bin/env bash
# Idempotent setup: system packages, .venv with LibTorch, configure, build.
# Usage: scripts/setup.sh [--deps-only | extra cmake -D options...]
#   --deps-only   only the system packages and .venv (no configure, no build)
# The build folder is $NORMOPT_BUILD_DIR, build/ by default (scripts/test.sh
# --sanitize uses build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."

# libgloo-dev: headers only, for normopt::distributed (the wheel lacks them).
# clang, libclang-rt-14-dev (libFuzzer, the clang sanitizer runtimes): the CSV
# fuzzer (scripts/fuzz.sh; the main build uses g++).
APT_PACKAGES=(cmake ninja-build g++ libgtest-dev libgmock-dev libbenchmark-dev ccache libgloo-dev
  clang libclang-rt-14-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
want = {"torch": "2.13.0"}
for name in ("torch", "numpy", "pytest", "matplotlib"):
    v = m.version(name)
    if name in want and not v.startswith(want[name]):
        sys.exit(1)
PY
then
  echo "setup: installing Python packages (requirements.txt)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
fi

if [ "${1:-}" = "--deps-only" ]; then
  exit 0
fi

BUILD_DIR="${NORMOPT_BUILD_DIR:-build}"
GENERATOR=()
command -v ninja >/dev/null && [ ! -f "$BUILD_DIR/CMakeCache.txt" ] && GENERATOR=(-G Ninja)
cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DNORMOPT_BUILD_TESTS=ON -DNORMOPT_BUILD_EXAMPLES=ON "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
