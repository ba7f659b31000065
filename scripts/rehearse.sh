#!/usr/bin/env bash
# The deployment path rehearsed against the local emulator with the real tools, as a user
# takes it against AWS (docs/deploy.md):
#
#   bash scripts/rehearse.sh [--stack NAME] [--profile dev|release|fast] [--customers N]
#                            [--shard-size N] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--keep]
#
#  1. the emulator (scripts/emulator.sh, Step Functions execution enabled);
#  2. scripts/build.sh --profile P (dev: the test suite's debug binaries, no release build),
#     which ends with `sam build`;
#  3. the keyring secret (aws secretsmanager create-secret), then the SAM CLI's own
#     `sam deploy --resolve-s3` of stack NAME;
#  4. `lambda-runner serve --stack NAME`: the stack's functions run from their deployed
#     packages (the emulator stores functions but runs no code; this is the one stand-in for
#     the Lambda service, and it gives the functions AWS_ENDPOINT_URL);
#  5. a generated population (`datagen generate --drop-zone`) uploaded with
#     `billingctl --stack NAME upload ...` through the drop zone;
#  6. the settlement started with the AWS CLI exactly as from the console:
#     `aws stepfunctions start-execution --input '{"cycle":"2026-11"}'`, then
#     `aws stepfunctions describe-execution` until it ends;
#  7. the month's dispatch and sends: `lambda-runner slots` plays every two-hour slot from
#     --from to --to on the functions' virtual clock (libfaketime);
#  8. a reconciliation: the cycle record, the deliveries by state, the mock provider's sends.
#
# The stack stays in the emulator for inspection with --keep (the emulator keeps running if
# it was running before); otherwise the runner is stopped and, if this script started the
# emulator, the emulator too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

stack=rehearsal
profile=dev
customers=200
shard_size=100
cycle=2026-11
from=2026-12-01
to=2026-12-31
keep=false
while (($#)); do
  case "$1" in
    --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
    --profile) profile="${2:?--profile needs dev, release or fast}"; shift 2 ;;
    --customers) customers="${2:?--customers needs a number}"; shift 2 ;;
    --shard-size) shard_size="${2:?--shard-size needs a number}"; shift 2 ;;
    --from) from="${2:?--from needs YYYY-MM-DD}"; shift 2 ;;
    --to) to="${2:?--to needs YYYY-MM-DD}"; shift 2 ;;
    --keep) keep=true; shift ;;
    -h | --help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "rehearse.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n== rehearse: %s\n' "$*"; }
die() { printf 'rehearse.sh: %s\n' "$*" >&2; exit 1; }
started=$SECONDS

bash scripts/setup.sh >/dev/null
source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0

# --- 1. the emulator ----------------------------------------------------------------------
say "emulator"
OWN_EMULATOR=""
scripts/emulator.sh url >/dev/null 2>&1 || OWN_EMULATOR=1
use_emulator
trap - EXIT
# A reused emulator may have been started without Step Functions execution.
.venv/bin/python - "$AWS_ENDPOINT_URL" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/moto-api/config",
    data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
    headers={"Content-Type": "application/json"}, method="POST")
urllib.request.urlopen(req, timeout=10).read()
PY
export AWS_DEFAULT_REGION="$AWS_REGION"
echo "emulator: $AWS_ENDPOINT_URL"
work="$(mktemp -d)"

# --- 2. build -----------------------------------------------------------------------------
say "build ($profile)"
arch_args=()
[[ "$profile" == dev ]] || arch_args=(--arch x86_64)
bash scripts/build.sh --profile "$profile" "${arch_args[@]}"
cargo build -q --bin lambda-runner --bin datagen --bin billingctl
bin="$CARGO_TARGET_DIR/debug"

# --- 3. deploy ----------------------------------------------------------------------------
say "deploy stack $stack"
secret="$stack-pii-keys"
if ! aws secretsmanager describe-secret --secret-id "$secret" >/dev/null 2>&1; then
  key="$(.venv/bin/python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
  aws secretsmanager create-secret --name "$secret" --secret-string "k1:$key" >/dev/null
fi
sam deploy --stack-name "$stack" --resolve-s3 --capabilities CAPABILITY_IAM --no-confirm-changeset \
  --no-fail-on-empty-changeset \
  --parameter-overrides Architecture=x86_64 "PiiKeysSecretName=$secret" Stage="$stack" MockLatencyMs=0
output() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
state_machine="$(output SettlementStateMachineArn)"
[[ -n "$state_machine" && "$state_machine" != None ]] || die "the stack has no SettlementStateMachineArn output"

# --- 4. the functions ---------------------------------------------------------------------
say "lambda-runner serve --stack $stack"
clock="$work/clock"
"$bin/lambda-runner" serve --stack "$stack" --clock-file "$clock" --work-dir "$work/runner" \
  >"$work/runner.out" 2>"$work/runner.err" &
runner=$!
stop_runner() { kill "$runner" 2>/dev/null || true; wait "$runner" 2>/dev/null || true; }
if [[ "$keep" == true ]]; then
  trap 'echo "rehearse: lambda-runner (pid $runner) keeps serving $stack; logs in $work/runner"' EXIT
else
  trap 'stop_runner; if [[ -n "$OWN_EMULATOR" ]]; then scripts/emulator.sh stop >/dev/null 2>&1 || true; fi' EXIT
fi
for _ in $(seq 600); do
  grep -qx ready "$work/runner.out" 2>/dev/null && break
  kill -0 "$runner" 2>/dev/null || { cat "$work/runner.err" >&2; die "lambda-runner exited"; }
  sleep 0.5
done
grep -qx ready "$work/runner.out" || die "lambda-runner was not ready in 5 minutes"
cat "$work/runner.err"

# --- 5. data through the drop zone --------------------------------------------------------
say "upload $customers customers and their usage through the drop zone"
"$bin/datagen" generate --customers "$customers" --shard-size "$shard_size" --cycle "$cycle" \
  --drop-zone "$work/drop-zone" --quiet
.venv/bin/python - "$work/drop-zone/drop-zone.json" >"$work/uploads" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
files = doc["files"] if isinstance(doc, dict) else doc
for f in files:
    print(f["kind"], f["path"])
PY
while read -r kind path; do
  "$bin/billingctl" --stack "$stack" upload "$kind" "$work/drop-zone/$path" >"$work/upload.out" ||
    { cat "$work/upload.out" >&2; die "billingctl upload $kind $path failed"; }
  echo "uploaded $kind $path"
done <"$work/uploads"

# --- 6. the settlement, as from the console -----------------------------------------------
say "aws stepfunctions start-execution --input '{\"cycle\":\"$cycle\"}'"
# The settlement runs at the start of the month after the cycle (the functions' clock).
printf '%+.3f\n' "$(.venv/bin/python -c "
import datetime, time
t = datetime.datetime.fromisoformat('${from}T00:05:00+09:00').timestamp()
print(t - time.time())")" >"$clock"
execution="$(aws stepfunctions start-execution --state-machine-arn "$state_machine" \
  --name "settle-$cycle" --input "{\"cycle\":\"$cycle\"}" --query executionArn --output text)"
echo "execution: $execution"
status=RUNNING
for _ in $(seq 1800); do
  status="$(aws stepfunctions describe-execution --execution-arn "$execution" --query status --output text)"
  [[ "$status" == RUNNING ]] || break
  sleep 1
done
echo "settlement: $status"
[[ "$status" == SUCCEEDED ]] || {
  aws stepfunctions describe-execution --execution-arn "$execution" --query '[error,cause]' --output text >&2 || true
  die "the settlement ended $status"
}

# --- 7. the month's dispatch and sends ----------------------------------------------------
say "lambda-runner slots --from $from --to $to"
"$bin/lambda-runner" slots --stack "$stack" --from "$from" --to "$to" --clock-file "$clock"

# --- 8. reconciliation --------------------------------------------------------------------
say "reconciliation"
cycles_table="$(output CyclesTableName)"
deliveries_table="$(output DeliveriesTableName)"
sends_table="$(output MockSendsTableName)"
aws dynamodb get-item --table-name "$cycles_table" --key "{\"cycle\":{\"S\":\"$cycle\"},\"item\":{\"S\":\"CYCLE\"}}" \
  --query 'Item.{status:status.S,bills:bills.N,customers:customers.N,checksum:checksum.N,run:run_id.S}' \
  --output table || true
echo "deliveries by state:"
aws dynamodb scan --table-name "$deliveries_table" --projection-expression '#s' \
  --expression-attribute-names '{"#s":"state"}' --query 'Items[].state.S' --output text |
  tr '\t' '\n' | sort | uniq -c
echo "accepted sends at the mock providers: $(aws dynamodb scan --table-name "$sends_table" --select COUNT --query Count --output text)"
echo
echo "rehearse: stack $stack rehearsed in $((SECONDS - started)) s (runner logs in $work/runner/logs)"
