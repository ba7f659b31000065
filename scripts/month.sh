#!/usr/bin/env bash
# The main job: the billing month locally, against the local AWS emulator.
#
#   scripts/month.sh [--customers N] [--cycle YYYY-MM] [--seed S] ...   (see --help)
#
# Installs the local tool chain if missing (scripts/setup.sh), starts the emulator (or reuses
# a running one), then runs `local-run month`: generate the population, provision what
# template.yaml declares, load the data, settle, report. Output goes to out/month/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH"
use_emulator

echo "building the local runner (first run compiles the workspace: a few minutes)..."
cargo build -q -p local-run
"$CARGO_TARGET_DIR/debug/local-run" month "$@"
