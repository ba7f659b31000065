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

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/billing-platform/target}"
export PATH="$ROOT/.venv/bin:$PATH"

if scripts/emulator.sh url >/dev/null 2>&1; then
  AWS_ENDPOINT_URL="$(scripts/emulator.sh url)"
else
  AWS_ENDPOINT_URL="$(scripts/emulator.sh start)"
  trap 'scripts/emulator.sh stop >/dev/null 2>&1 || true' EXIT
fi
export AWS_ENDPOINT_URL
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=ap-northeast-2
unset AWS_PROFILE AWS_SESSION_TOKEN

echo "building the local runner (first run compiles the workspace: a few minutes)..."
cargo build -q -p local-run
"$CARGO_TARGET_DIR/debug/local-run" month "$@"
