#!/usr/bin/env bash
# Idempotent setup: system packages, a Python venv with LibTorch, configure,
# build.
# Usage: scripts/setup.sh [--cuda | --fuzz] [--deps-only | extra cmake -D options...]
#   --cuda        the CUDA build instead: .venv-cuda (requirements-cuda.txt
#                 pins the CUDA build of torch and the CUDA toolkit from the
#                 package registry) and build-cuda/ with the CUDA kernels.
#                 No GPU is needed to build or to run the suite (the CUDA
#                 tests then skip).
#   --fuzz        the CSV reader's libFuzzer target instead (tests/fuzz, with
#                 clang, in build-fuzz/; scripts/fuzz.sh runs it).
#   --deps-only   only the system packages and the venv (no configure, no
#                 build)
# The build folder is $NORMOPT_BUILD_DIR, build/ (build-cuda/ with --cuda) by
# default (scripts/test.sh --sanitize uses build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."

# libgloo-dev: headers only, for normopt::distributed (the wheel lacks them).
# clang, libclang-rt-14-dev (libFuzzer, the clang sanitizer runtimes): the CSV
# fuzzer (scripts/fuzz.sh; the main build uses g++).
# libcli11-dev: the examples' command lines. nlohmann-json3-dev: History's
# JSON writer (private to the library: the installed package needs neither).
# zlib1g-dev: zlib's crc32 for the checkpoints' integrity check.
# libfast-float-dev: the CSV reader's number parsing (header-only).
# clang-format: scripts/test.sh checks the formatting.
APT_PACKAGES=(cmake ninja-build g++ libgtest-dev libgmock-dev libbenchmark-dev ccache libgloo-dev
  clang libclang-rt-14-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libfast-float-dev
  clang-format)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cuda=0 fuzz=0
case "${1:-}" in
  --cuda) cuda=1; shift ;;
  --fuzz) fuzz=1; shift ;;
esac
if ((cuda)); then
  VENV=.venv-cuda REQUIREMENTS=requirements-cuda.txt DEFAULT_BUILD_DIR=build-cuda
elif ((fuzz)); then
  VENV=.venv REQUIREMENTS=requirements.txt DEFAULT_BUILD_DIR=build-fuzz
else
  VENV=.venv REQUIREMENTS=requirements.txt DEFAULT_BUILD_DIR=build
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi
# Installs only when a pinned version (==) or a package is missing.
if ! "$VENV/bin/python" - "$REQUIREMENTS" <<'PY' 2>/dev/null
import importlib.metadata as m, re, sys
for line in open(sys.argv[1]):
    req = line.split("#")[0].strip()
    if not req:
        continue
    name, op, want = re.match(r"([A-Za-z0-9_.-]+)\s*(==|>=)?\s*(\S*)", req).groups()
    have = m.version(name)
    if op == "==" and have.split("+")[0] != want:
        sys.exit(1)
PY
then
  echo "setup: installing Python packages ($REQUIREMENTS)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
fi

CMAKE=cmake
CUDA_ARGS=()
if ((cuda)); then
  # The CUDA toolkit from the registry's wheels, made usable by CMake. This
  # is the one place that knows its layout:
  # - The wheels put it in site-packages/nvidia/cu13 (bin/nvcc, include,
  #   lib, nvvm); CUDAToolkit_ROOT (CMake's FindCUDAToolkit),
  #   CUDA_TOOLKIT_ROOT_DIR (the FindCUDA that LibTorch's CMake still uses)
  #   and CMAKE_CUDA_COMPILER point there, so a system CUDA on PATH is never
  #   mixed in.
  # - bin/nvcc.profile links from lib64/, the wheels ship lib/: a lib64 link
  #   (else CMake's compiler check fails with "cannot find -lcudadevrt").
  # - FindCUDA wants unversioned libcudart.so and libnvrtc.so; the wheels
  #   have only libcudart.so.13 and libnvrtc.so.13.
  # - No GPU to probe: TORCH_CUDA_ARCH_LIST (LibTorch's variable; it ignores
  #   CMAKE_CUDA_ARCHITECTURES) defaults to 8.0;9.0;10.0+PTX in
  #   CMakeLists.txt.
  # - The driver library (libcuda.so.1) is never linked: LibTorch's CMake
  #   names it only for targets normopt does not use, and libtorch_cuda
  #   loads it lazily, so every binary starts on a machine without a GPU
  #   (scripts/test.sh --cuda checks that with ldd).
  # - torch 2.14 needs C++20 in .cu files too; CMake learned to ask nvcc 13
  #   for it after Debian's 3.25, so the venv's cmake (requirements-cuda.txt)
  #   configures this build.
  SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  TOOLKIT="$SITE/nvidia/cu13"
  [ -e "$TOOLKIT/lib64" ] || ln -s lib "$TOOLKIT/lib64"
  for lib in cudart nvrtc; do
    [ -e "$TOOLKIT/lib/lib$lib.so" ] || ln -s "lib$lib.so.13" "$TOOLKIT/lib/lib$lib.so"
  done
  CMAKE="$VENV/bin/cmake"
  CUDA_ARGS=(-DCUDAToolkit_ROOT="$TOOLKIT" -DCUDA_TOOLKIT_ROOT_DIR="$TOOLKIT"
    -DCMAKE_CUDA_COMPILER="$TOOLKIT/bin/nvcc")
fi

if [ "${1:-}" = "--deps-only" ]; then
  exit 0
fi

# ccache keys on paths relative to the checkout, so a fresh clone elsewhere
# (CI) reuses what an earlier checkout compiled.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
BUILD_DIR="${NORMOPT_BUILD_DIR:-$DEFAULT_BUILD_DIR}"
TORCH_PREFIX="$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
GENERATOR=()
command -v ninja >/dev/null && [ ! -f "$BUILD_DIR/CMakeCache.txt" ] && GENERATOR=(-G Ninja)
if ((fuzz)); then
  # tests/fuzz sets its own flags (-O1 -g, sanitizers, no NDEBUG).
  "$CMAKE" -S tests/fuzz -B "$BUILD_DIR" "${GENERATOR[@]}" \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" "$@" >/dev/null
else
  "$CMAKE" -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" "${CUDA_ARGS[@]}" \
    -DNORMOPT_BUILD_TESTS=ON -DNORMOPT_BUILD_EXAMPLES=ON "$@" >/dev/null
fi
"$CMAKE" --build "$BUILD_DIR" -j "$(nproc)"
