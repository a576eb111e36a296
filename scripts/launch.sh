#!/usr/bin/env bash
# Runs N ranks of a normopt program on this machine over 127.0.0.1:
#   scripts/launch.sh -n N [--timeout SECONDS] program [args...]
# Each rank gets RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free
# MASTER_PORT. Exits 0 when every rank does, else with the status of the
# first rank (in rank order) that failed.
set -uo pipefail
n="" timeout_s=600
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n="$2"; shift 2 ;;
    --timeout) timeout_s="$2"; shift 2 ;;
    *) break ;;
  esac
done
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ $# -lt 1 ]; then
  echo "usage: scripts/launch.sh -n N [--timeout SECONDS] program [args...]" >&2
  exit 2
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
# Share the cores between the ranks (as torchrun does), unless told otherwise:
# N ranks each running nproc OpenMP threads would oversubscribe the machine.
threads=${OMP_NUM_THREADS:-$(( $(nproc) / n > 0 ? $(nproc) / n : 1 ))}
pids=()
for ((r = 0; r < n; r++)); do
  OMP_NUM_THREADS=$threads RANK=$r WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    timeout "$timeout_s" "$@" &
  pids+=($!)
done
# Every rank is waited for: a failed rank makes the others fail within the
# process group's timeout, never hang (and `timeout` bounds each rank).
status=0
for pid in "${pids[@]}"; do
  wait "$pid"
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$rc
  fi
  [ "$rc" -ne 0 ] && echo "launch.sh: rank pid $pid exited with status $rc" >&2
done
exit $status
