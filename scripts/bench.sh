#!/usr/bin/env bash
# Builds the benchmarks and prints the comparison table (benchmarks/RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh -DNORMOPT_BUILD_BENCHMARKS=ON
.venv/bin/python benchmarks/compare.py build/benchmarks/bench_optim
# CSV readers: normopt vs pandas and pyarrow (benchmark-only dependencies).
.venv/bin/pip install -q -r requirements-bench.txt
.venv/bin/python benchmarks/csv_readers.py --bench-csv build/benchmarks/bench_csv
