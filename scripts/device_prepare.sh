#!/usr/bin/env bash
# Run on a CPU machine before borrowing a GPU: fills .device/ with what
# scripts/device_check.sh needs on a machine that reaches no registry —
# GoogleTest, Google Benchmark, nlohmann-json, CLI11, zlib and fast_float
# unpacked from Debian's packages, and the cmake and ninja wheels from PyPI.
# Pass .device as `carry` to the device tool.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device
mkdir -p .device/debs .device/root .device/wheels
(cd .device/debs && apt-get download libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev \
  libbenchmark1debian libcli11-dev zlib1g-dev zlib1g libfast-float-dev >/dev/null)
for deb in .device/debs/*.deb; do
  dpkg -x "$deb" .device/root
done
# zlib1g-dev's libz.so links to /lib/...: to the unpacked copy instead, so
# CMake finds a zlib to link where the machine has no zlib1g-dev.
libz=.device/root/usr/lib/x86_64-linux-gnu/libz.so
ln -sfn "$(realpath -m --relative-to="$(dirname "$libz")" ".device/root$(readlink "$libz")")" "$libz"
rm -rf .device/debs
.venv/bin/pip download -q --disable-pip-version-check --only-binary=:all: \
  -d .device/wheels cmake ninja pytest
du -sh .device
