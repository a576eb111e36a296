#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job on the built-in
# synthetic income data (pass --data FILE --target COL for your own CSV).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/examples/quickstart "$@"
