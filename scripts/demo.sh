#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: the Adam-vs-SGD,
# raw-vs-standardized comparison on the built-in synthetic income data (pass
# --data FILE --target COL for your own CSV; --help for every option), then
# plots the histories.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out="out/compare"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "--out" ] && out="${args[$((i + 1))]:-$out}"
  [ "${args[$i]}" = "--help" ] && exec build/examples/compare_optimizers --help
done
build/examples/compare_optimizers "$@"
.venv/bin/python scripts/plot_history.py "$out"
