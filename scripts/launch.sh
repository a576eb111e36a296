#!/usr/bin/env bash
# N ranks of a normopt program on this machine, through torchrun (it ships
# with the torch wheel in .venv):
#   scripts/launch.sh -n N [--timeout SECONDS] program [args...]
# is
#   torchrun --no-python --standalone --nproc-per-node N program [args...]
# with the cores shared between the ranks (OMP_NUM_THREADS = cores / N unless
# set) and the whole job bounded by --timeout (default 600 s). torchrun sets
# RANK, WORLD_SIZE, MASTER_ADDR=localhost and MASTER_PORT; it ends the other
# ranks when one fails and exits non-zero. For restarts and several machines
# call torchrun itself (README: Several processes and machines).
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
root="$(cd "$(dirname "$0")/.." && pwd)"
torchrun="${TORCHRUN:-$root/.venv/bin/torchrun}"
[ -x "$torchrun" ] || torchrun="$(command -v torchrun || true)"
if [ -z "$torchrun" ]; then
  echo "launch.sh: torchrun not found; run scripts/setup.sh (it installs torch in .venv)" >&2
  exit 2
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / n > 0 ? $(nproc) / n : 1 ))}
exec timeout "$timeout_s" "$torchrun" --no-python --standalone --nproc-per-node "$n" "$@"
