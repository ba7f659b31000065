#!/usr/bin/env bash
# The main job: the billing month locally, against the local AWS emulator.
#
#   scripts/month.sh [--fast] [--customers N] [--cycle YYYY-MM] [--seed S] ...   (see --help)
#
#   --fast   for large months (100,000 customers: BENCHMARKS.md): the runner built optimised
#            (cargo profile `fast`, a longer first build) and, when this script starts the
#            emulator, DynamoDB answered in processes of its own, the deliveries table in one,
#            the other tables in another (shared/local-aws/processes.py), so the emulator works
#            on more than one core; the senders drain a slot with up to 50 invocations each, the
#            deployed event source's maximum (SenderMaxConcurrency), instead of 16.
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
PROFILE=debug
EMULATOR_ARGS=()
ARGS=()
for a in "$@"; do
  if [[ "$a" == "--fast" ]]; then
    PROFILE=fast
    EMULATOR_ARGS=(--dynamodb-process DeliveriesTable)
  else
    ARGS+=("$a")
  fi
done
# --fast: the deployed 50 sender invocations, unless the command line names a number.
if [[ "$PROFILE" == fast && " ${ARGS[*]} " != *" --sender-workers"* ]]; then
  ARGS+=(--sender-workers 50)
fi
use_emulator "${EMULATOR_ARGS[@]}"

if [[ "$PROFILE" == fast ]]; then
  echo "building the local runner optimised (first run: about ten minutes)..."
  cargo build -q --profile fast -p local-run
else
  echo "building the local runner (first run compiles the workspace: a few minutes)..."
  cargo build -q -p local-run
fi
"$CARGO_TARGET_DIR/$PROFILE/local-run" month "${ARGS[@]}"
