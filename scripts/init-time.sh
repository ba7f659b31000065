#!/usr/bin/env bash
# The cold-start init time of each function's bootstrap, measured locally: what Lambda reports
# as `Init Duration`, from the start of the process until its runtime asks the Runtime API for
# its first event (`GET /2018-06-01/runtime/invocation/next`).
#
#   bash scripts/init-time.sh [--runs N] [--dir DIR] [FUNCTION ...]
#
# Measures the bootstraps scripts/build.sh left in target/lambda/<function>/bootstrap (or
# DIR/<function>/bootstrap), every function there unless some are named, each started --runs
# times (7 by default) one after the other; prints the median, minimum and maximum per
# function. The tool is `init-time` (tools/lambda-runner/src/bin/init_time.rs): a stub of the
# Runtime API that notes the first `invocation/next` and then stops the process.
#
# The init is the whole cold start of `runtime::run`: the log subscriber, the SDK
# configuration, the function's `Deps::load`. The functions that open contact data or sign
# links fetch their keys from Secrets Manager there (`GetSecretValue`), so the emulator is
# used (started if none runs) with two such secrets; every other variable a function reads is
# given a placeholder value, since no function calls AWS at init beyond those secrets.
# Loopback calls to the emulator are faster than Secrets Manager in a region, so for those
# functions the figure is a floor.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

runs=7
dir=target/lambda
functions=()
while (($#)); do
  case "$1" in
    --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
    --dir) dir="${2:?--dir needs a directory}"; shift 2 ;;
    -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "init-time.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    *) functions+=("$1"); shift ;;
  esac
done
if ((${#functions[@]} == 0)); then
  for b in "$dir"/*/bootstrap; do
    [[ -x "$b" ]] && functions+=("$(basename "$(dirname "$b")")")
  done
fi
((${#functions[@]})) || { echo "init-time.sh: no $dir/<function>/bootstrap: run scripts/build.sh first" >&2; exit 1; }
bootstraps=()
for f in "${functions[@]}"; do
  [[ -x "$dir/$f/bootstrap" ]] || { echo "init-time.sh: $dir/$f/bootstrap is missing" >&2; exit 1; }
  # Absolute: the tool starts each one in a directory of its own.
  bootstraps+=("$(cd "$dir/$f" && pwd)/bootstrap")
done

bash scripts/setup.sh >/dev/null
source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH"
cargo build -q --bin init-time
use_emulator
export AWS_DEFAULT_REGION="$AWS_REGION"

# The two secrets read at cold start, with fresh keys (id:base64 of 32 bytes).
put_secret() {
  local name="$1" value="$2"
  if aws --endpoint-url "$AWS_ENDPOINT_URL" secretsmanager describe-secret --secret-id "$name" >/dev/null 2>&1; then
    aws --endpoint-url "$AWS_ENDPOINT_URL" secretsmanager put-secret-value --secret-id "$name" \
      --secret-string "$value" >/dev/null
  else
    aws --endpoint-url "$AWS_ENDPOINT_URL" secretsmanager create-secret --name "$name" \
      --secret-string "$value" >/dev/null
  fi
}
put_secret init-time-pii-keys "k1:$(head -c 32 /dev/urandom | base64 -w0)"
put_secret init-time-link-keys "l1:$(head -c 32 /dev/urandom | base64 -w0)"

queue="$AWS_ENDPOINT_URL/000000000000/init-time"
queue_arn="arn:aws:sqs:$AWS_REGION:000000000000:init-time"
env=(
  AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL"
  RUST_LOG=info
  STACK_NAME=init-time
  CATALOG_VERSION=2026-v1
  TEMPLATE_VERSION=v1
  CHANNEL_POLICY=email,sms
  EMAIL_PROVIDER=mock
  SES_FROM_ADDRESS=billing@example.com
  LINK_BASE_URL=https://link.example.com/
  PII_KEYS_SECRET=init-time-pii-keys
  LINK_KEYS_SECRET=init-time-link-keys
  ADMIN_BOOTSTRAP_PRINCIPAL="arn:aws:iam::000000000000:role/init-time-admin"
  DATA_BUCKET=init-time-data
)
for t in ADMIN BILLS CATALOG CORRECTIONS CUSTOMERS CYCLES DELIVERIES EVIDENCE FAILURES MOCK_QUOTA \
  MOCK_SENDS PACING SUPPRESSION; do
  env+=("${t}_TABLE=init-time-${t,,}")
done
for q in CONTINUATION_QUEUE DEAD_LETTER_QUEUE DELIVERY_DLQ DISPATCH_DLQ EMAIL_QUEUE EVIDENCE_QUEUE SMS_QUEUE; do
  env+=("${q}_URL=$queue")
done
for a in DELIVERY_DLQ DISPATCH_CONTINUATION_QUEUE DISPATCH_DLQ; do
  env+=("${a}_ARN=$queue_arn")
done
args=()
for e in "${env[@]}"; do args+=(--env "$e"); done

echo "init-time.sh: $runs cold starts of each of ${#bootstraps[@]} bootstraps in $dir"
"$CARGO_TARGET_DIR/debug/init-time" --runs "$runs" --log-dir "${TMPDIR:-/tmp}/init-time-logs" "${args[@]}" \
  "${bootstraps[@]}"
