#!/usr/bin/env bash
# The project's shared AWS emulator on a free loopback port: moto server from .venv with the
# Lambda router of shared/local-aws/emulator.py in front (Step Functions' Lambda tasks reach
# handlers registered by local_aws::lambda::LambdaHost).
#
#   scripts/emulator.sh start [--dynamodb-process PATTERN ...]
#                               start it (or reuse a healthy one) and print its URL; with
#                               --dynamodb-process, DynamoDB is answered in processes of its own
#                               (shared/local-aws/processes.py: the month job on more cores)
#   scripts/emulator.sh url     print the URL of the running emulator (exit 1 if none)
#   scripts/emulator.sh stop    stop it
#
# Use it with:  export AWS_ENDPOINT_URL="$(scripts/emulator.sh start)"
# State (pid, url, log) lives in .emulator/ at the project root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.emulator"
PY="$ROOT/.venv/bin/python"
SERVER="$ROOT/shared/local-aws/emulator.py"
READY_TIMEOUT_S=60

log() { printf 'emulator: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Answers moto's admin API (GET /moto-api/config: 201) and has the Lambda router?
healthy() {
  local url="$1"
  "$PY" - "$url" <<'PY' >/dev/null 2>&1
import sys, urllib.request
for path in ("/moto-api/config", "/_local/lambda"):
    with urllib.request.urlopen(sys.argv[1] + path, timeout=2) as r:
        if not 200 <= r.status < 300:
            sys.exit(1)
PY
}

running_url() {
  [[ -f "$STATE/pid" && -f "$STATE/url" ]] || return 1
  local pid url
  pid="$(cat "$STATE/pid")"
  url="$(cat "$STATE/url")"
  kill -0 "$pid" 2>/dev/null || return 1
  healthy "$url" || return 1
  printf '%s\n' "$url"
}

enable_stepfunctions() {
  "$PY" - "$1" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(
    sys.argv[1] + "/moto-api/config",
    data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
)
urllib.request.urlopen(req, timeout=10).read()
PY
}

stop() {
  if [[ -f "$STATE/pid" ]]; then
    local pid
    pid="$(cat "$STATE/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
      log "stopped (pid $pid)"
    fi
  fi
  rm -f "$STATE/pid" "$STATE/url" "$STATE/args"
}

start() {
  [[ -x "$PY" && -x "$ROOT/.venv/bin/moto_server" ]] || die "moto is not installed in .venv: run scripts/setup.sh"
  local url
  if url="$(running_url)"; then
    if [[ "$*" != "$(cat "$STATE/args" 2>/dev/null || true)" ]]; then
      log "reusing $url, started with options '$(cat "$STATE/args" 2>/dev/null || true)' (not '$*'): stop it to change them"
    fi
    log "reusing $url"
    printf '%s\n' "$url"
    return 0
  fi
  stop >/dev/null 2>&1 || true
  mkdir -p "$STATE"

  local port pid started
  port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  url="http://127.0.0.1:$port"
  started="$(date +%s.%N)"
  # setsid: the server outlives this script and the shell that ran it.
  setsid "$PY" "$SERVER" -H 127.0.0.1 -p "$port" "$@" >"$STATE/moto.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$STATE/pid"
  printf '%s\n' "$*" >"$STATE/args"
  printf '%s\n' "$url" >"$STATE/url"

  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until healthy "$url"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 5 "$STATE/moto.log" >&2 || true
      rm -f "$STATE/pid" "$STATE/url"
      die "moto exited while starting (log: .emulator/moto.log)"
    fi
    if ((SECONDS >= deadline)); then
      stop
      die "moto did not answer within ${READY_TIMEOUT_S}s (log: .emulator/moto.log)"
    fi
    sleep 0.1
  done
  enable_stepfunctions "$url"
  log "started $url (pid $pid) in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s"
  printf '%s\n' "$url"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  url) running_url || { log "not running"; exit 1; } ;;
  *) printf 'usage: %s start|stop|url\n' "$0" >&2; exit 2 ;;
esac
