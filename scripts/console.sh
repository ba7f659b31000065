#!/usr/bin/env bash
# The operators' console on the local month job's stack (docs/console.md):
#
#   bash scripts/emulator.sh start      # an emulator that outlives the month job
#   bash scripts/month.sh               # the month, its variables in out/month/stack.env
#   bash scripts/console.sh [--cycle YYYY-MM] [--port N]
#
# Starts admin-api-local on a free loopback port (stopped when this script ends) with the
# stack's variables, then `billingctl console` against it, signing as the local
# administrator (any access key is a session of the stack's bootstrap administrator role).
# Open the address it prints; Ctrl-C stops both.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh

if ! scripts/emulator.sh url >/dev/null 2>&1; then
  echo "console.sh: no emulator is running: start one (bash scripts/emulator.sh start), run the month (bash scripts/month.sh), then this" >&2
  exit 2
fi
if [[ ! -f out/month/stack.env ]]; then
  echo "console.sh: out/month/stack.env is missing: run the month first (bash scripts/month.sh)" >&2
  exit 2
fi
set -a
# shellcheck disable=SC1091
source out/month/stack.env
set +a
AWS_ENDPOINT_URL="$(scripts/emulator.sh url)"
export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=ap-northeast-2
unset AWS_PROFILE AWS_SESSION_TOKEN

cargo build -q -p admin-local -p billingctl
log="$(mktemp)"
"$CARGO_TARGET_DIR/debug/admin-api-local" 0 >"$log" 2>&1 &
admin=$!
trap 'kill "$admin" 2>/dev/null || true; rm -f "$log"' EXIT
url=""
for _ in $(seq 1 100); do
  url="$(grep -o 'http://127.0.0.1:[0-9]*/' "$log" | head -1 || true)"
  [[ -n "$url" ]] && break
  kill -0 "$admin" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$url" ]] || { echo "console.sh: admin-api-local did not start" >&2; cat "$log" >&2; exit 1; }
echo "admin API (local) on $url"
"$CARGO_TARGET_DIR/debug/billingctl" --url "$url" console "$@"
