#!/usr/bin/env bash
# Fuzzes the CSV reader (tests/fuzz/csv_fuzzer.cpp) with libFuzzer.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60; scripts/test.sh runs 60)
#
# Installs what is missing and builds build-fuzz/ with clang
# (scripts/setup.sh --fuzz: clang, libFuzzer, .venv with LibTorch), fuzzes a
# fresh copy of the seed corpus tests/fuzz/corpus in build-fuzz/corpus (the
# source corpus is never written), then prints executions and coverage.
# Exits non-zero on any crash, sanitizer report, leak, timeout or
# out-of-memory; the input that caused it is kept under build-fuzz/artifacts/
# and its path printed.
# Reproduce one with: build-fuzz/csv_fuzzer build-fuzz/artifacts/crash-...
# and turn it into a regression test in tests/cpp/data/test_csv.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_SECONDS="${1:-60}"
if ! [[ "$RUN_SECONDS" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS]   (SECONDS >= 1)" >&2
  exit 2
fi

BUILD_DIR=build-fuzz
NORMOPT_BUILD_DIR="$BUILD_DIR" scripts/setup.sh --fuzz

CORPUS="$BUILD_DIR/corpus"
ARTIFACTS="$BUILD_DIR/artifacts"
LOG="$BUILD_DIR/fuzz.log"
rm -rf "$CORPUS" "$ARTIFACTS"
mkdir -p "$CORPUS" "$ARTIFACTS"
cp tests/fuzz/corpus/* "$CORPUS/"
seeds=$(find "$CORPUS" -type f | wc -l)

# -max_len: CSV structure shows in a few KB; longer inputs only run slower.
# -timeout: seconds per input (a hang is a finding). -artifact_prefix keeps
# crash-*/leak-*/timeout-*/oom-* files out of the working directory.
echo "fuzz: csv_fuzzer for ${RUN_SECONDS} s from ${seeds} seeds (log: $LOG)"
status=0
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  "$BUILD_DIR/csv_fuzzer" "$CORPUS" \
  -dict=tests/fuzz/csv.dict -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -max_total_time="$RUN_SECONDS" -print_final_stats=1 \
  -artifact_prefix="$ARTIFACTS/" >"$LOG" 2>&1 || status=$?

# libFuzzer's last status line ("#N DONE cov: C ft: F corp: U/S ...") and
# its final stats.
grep -E '^#[0-9]+[[:space:]]+DONE' "$LOG" | tail -n 1 || true
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|slowest_unit_time_sec|peak_rss_mb)' "$LOG" || true
echo "fuzz: corpus $(find "$CORPUS" -type f | wc -l) inputs (${seeds} seeds)"

findings=$(find "$ARTIFACTS" -type f)
if [ "$status" -ne 0 ] || [ -n "$findings" ]; then
  tail -n 60 "$LOG"
  echo "fuzz: FAILED (libFuzzer exit status $status)" >&2
  for f in $findings; do
    echo "fuzz: finding kept at $f" >&2
  done
  exit 1
fi
echo "fuzz: OK, no crash in ${RUN_SECONDS} s"
