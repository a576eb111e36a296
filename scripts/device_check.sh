#!/usr/bin/env bash
# The one script to run on a borrowed GPU machine (after
# scripts/device_prepare.sh here, with .device carried): builds normopt with
# its CUDA kernels against the machine's CUDA PyTorch, runs the whole C++
# suite (the CUDA tests included, which skip on CPU machines) and the CUDA
# benchmarks, and writes everything to $OUT (default out/device).
#   device tool: command "bash scripts/device_check.sh", carry [".device"]
# NORMOPT_CUDA_KERNELS=OFF makes a dry run of the script on a CPU machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/device}"
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
PY="${PYTHON:-python3}"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'

# cmake and ninja: the machine's, else the carried wheels.
TOOLS="$PWD/.device/tools"
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
  "$PY" -m pip install -q --no-index --target "$TOOLS" .device/wheels/*.whl
  export PATH="$TOOLS/bin:$PATH" PYTHONPATH="$TOOLS${PYTHONPATH:+:$PYTHONPATH}"
fi
cmake --version | head -1
TORCH_PREFIX="$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
DEPS="$PWD/.device/root/usr"
export LD_LIBRARY_PATH="$DEPS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

start=$SECONDS
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS" \
  -DNORMOPT_CUDA_KERNELS="${NORMOPT_CUDA_KERNELS:-ON}" -DTORCH_CUDA_ARCH_LIST=9.0 \
  -DNORMOPT_BUILD_TESTS=ON -DNORMOPT_BUILD_EXAMPLES=OFF -DNORMOPT_BUILD_BENCHMARKS=ON \
  && cmake --build build-cuda -j "$(nproc)"
build_rc=$?
echo "build: rc $build_rc in $((SECONDS - start)) s"
[ $build_rc -eq 0 ] || exit $build_rc

# The benchmarks first (about 30 s), so that a crashing test cannot cost
# them; then the whole suite once, the CUDA tests included. A crash prints
# the test and a stack (tests/cpp/crash_report.cpp).
if [ -x build-cuda/benchmarks/bench_cuda ]; then
  build-cuda/benchmarks/bench_cuda --benchmark_format=json --benchmark_repetitions=3 \
    --benchmark_report_aggregates_only=true > "$OUT/bench_cuda.json"
  "$PY" benchmarks/compare_cuda.py < "$OUT/bench_cuda.json" | tee "$OUT/bench_cuda.md"
else
  echo "bench_cuda not built (NORMOPT_CUDA_KERNELS=${NORMOPT_CUDA_KERNELS:-ON})"
fi
echo "benchmarks done at $((SECONDS - start)) s"

# std::filesystem on this machine's toolchain, alone: the CSV file tests
# (the first to use it) crashed here, the same calls pass on CPU machines.
CXX_USED="$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' build-cuda/CMakeCache.txt)"
cat > "$OUT/fs_probe.cpp" <<'CPP'
#include <filesystem>
#include <fstream>
#include <iostream>
int main() {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "normopt_fs_probe";
  fs::create_directory(dir);
  std::ofstream(dir / "a.csv", std::ios::binary) << "a,y\n1,2\n";
  std::cout << "fs probe ok: " << dir << ", " << fs::file_size(dir / "a.csv") << " bytes\n";
  fs::remove_all(dir);
}
CPP
for std in 17 20; do
  "$CXX_USED" -std=c++$std -O2 "$OUT/fs_probe.cpp" -o "$OUT/fs_probe$std" && "$OUT/fs_probe$std"
  echo "fs probe (C++$std, $CXX_USED): rc $?"
done
# The crash seen before, alone, with the crash report (pc, return address).
build-cuda/tests/normopt_tests --gtest_filter='ReadCsv.*' 2>&1 | tail -40
echo "ReadCsv alone: rc ${PIPESTATUS[0]}"

# The whole suite under ctest, one process per test, so that a crash costs
# only its own test; the CUDA tests included.
"$(dirname "$(command -v cmake)")/ctest" --test-dir build-cuda -j "$(nproc)" --timeout 300 \
  --output-on-failure -E '^Package\.' --output-junit "$PWD/$OUT/ctest.xml" 2>&1 | tail -150
all_rc=${PIPESTATUS[0]}
echo "ctest rc $all_rc at $((SECONDS - start)) s"

# The Python package's tests against this build (pytest carried in .device).
if [ -d .device/wheels ] && ls .device/wheels/pytest-*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --find-links .device/wheels --target "$TOOLS" pytest
  PYTHONPATH="$TOOLS${PYTHONPATH:+:$PYTHONPATH}" NORMOPT_LIBRARY="$PWD/build-cuda/libnormopt.so" \
    timeout 200 "$PY" -m pytest -q -p no:cacheprovider tests/python/test_package_optim.py \
    tests/python/test_ops.py tests/python/test_package_nn.py tests/python/test_package.py \
    tests/python/test_export.py tests/python/test_classes.py 2>&1 | tail -40
  echo "pytest rc ${PIPESTATUS[0]} at $((SECONDS - start)) s"
fi
exit $all_rc
