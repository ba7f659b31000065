#!/usr/bin/env bash
# The deployment path rehearsed against the local emulator with the real tools, as a user
# takes it against AWS (docs/deploy.md):
#
#   bash scripts/rehearse.sh [--stack NAME] [--profile dev|release|fast] [--no-build]
#                            [--customers N] [--shard-size N] [--seed N]
#                            [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--instances N] [--keep]
#
# The defaults (stack `billing`, 300 customers in shards of 200, seed 7) are the population the
# sample events in events/ name, so that they can be sent to the rehearsed stack afterwards.
# With AWS_ENDPOINT_URL set, that emulator is used (and left running); otherwise the project's
# emulator is started or reused. --no-build deploys what target/lambda already holds.
# --instances caps the instances lambda-runner runs of each function (4 by default). The dev
# profile deploys the test suite's debug builds: right for the default population; one of
# thousands needs --profile fast or release (with 10,000 customers, the emulator and a debug
# build took a shard's megabyte pages past the functions' 25 s operation timeout on 2 cores).
# The script exits non-zero unless the month reconciles: the cycle SETTLED with one bill per
# billable customer, and, when the slots played reach the month's last day, every delivery sent
# once (SENT_EMAIL or SENT_SMS) with as many accepted sends at the mock providers.
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

stack=billing
profile=dev
build=true
customers=300
shard_size=200
seed=7
cycle=2026-11
from=2026-12-01
to=2026-12-31
keep=false
instances=4
while (($#)); do
  case "$1" in
    --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
    --profile) profile="${2:?--profile needs dev, release or fast}"; shift 2 ;;
    --no-build) build=false; shift ;;
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    --customers) customers="${2:?--customers needs a number}"; shift 2 ;;
    --shard-size) shard_size="${2:?--shard-size needs a number}"; shift 2 ;;
    --from) from="${2:?--from needs YYYY-MM-DD}"; shift 2 ;;
    --to) to="${2:?--to needs YYYY-MM-DD}"; shift 2 ;;
    --instances) instances="${2:?--instances needs a number}"; shift 2 ;;
    --keep) keep=true; shift ;;
    -h | --help) sed -n '2,40p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION="${AWS_REGION:-ap-northeast-2}"
  unset AWS_PROFILE AWS_SESSION_TOKEN
else
  scripts/emulator.sh url >/dev/null 2>&1 || OWN_EMULATOR=1
  use_emulator
  trap - EXIT
fi
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
if [[ "$build" == true ]]; then
  bash scripts/build.sh --profile "$profile" "${arch_args[@]}"
else
  [[ -f .aws-sam/build/template.yaml ]] || die "--no-build: nothing built yet (run scripts/build.sh)"
fi
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
"$bin/lambda-runner" serve --stack "$stack" --instances "$instances" --clock-file "$clock" --work-dir "$work/runner" \
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
"$bin/datagen" generate --customers "$customers" --shard-size "$shard_size" --seed "$seed" --cycle "$cycle" \
  --drop-zone "$work/drop-zone" --quiet
.venv/bin/python - "$work/drop-zone/drop-zone.json" >"$work/uploads" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
files = doc["files"] if isinstance(doc, dict) else doc
for f in files:
    print(f["kind"], f["path"])
PY
uploads_started=$SECONDS
while read -r kind path; do
  t0=$(date +%s%N)
  "$bin/billingctl" --stack "$stack" upload "$kind" "$work/drop-zone/$path" >"$work/upload.out" ||
    { cat "$work/upload.out" >&2; die "billingctl upload $kind $path failed"; }
  ms=$((($(date +%s%N) - t0) / 1000000))
  printf 'uploaded %s %s in %d.%03d s (upload to report): %s\n' "$kind" "$path" $((ms / 1000)) $((ms % 1000)) \
    "$(head -1 "$work/upload.out")"
done <"$work/uploads"
echo "uploads: $((SECONDS - uploads_started)) s"

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
.venv/bin/python - "$stack" "$cycle" "$to" "$work/drop-zone/drop-zone.json" <<'PY'
"""The month reconciles, or the rehearsal fails: read with boto3, a client nobody here wrote."""
import calendar, collections, datetime, json, sys
import boto3

stack, cycle, to, zone = sys.argv[1:5]
outputs = {o["OutputKey"]: o["OutputValue"] for o in
           boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
ddb = boto3.client("dynamodb")

def scan(table, **kw):
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True, **kw):
        yield from page["Items"]

problems = []
record = ddb.get_item(TableName=outputs["CyclesTableName"], ConsistentRead=True,
                      Key={"cycle": {"S": cycle}, "item": {"S": "CYCLE"}}).get("Item", {})
status = record.get("status", {}).get("S")
bills = int(record.get("bills", {}).get("N", "0"))
billable = json.load(open(zone))["billable_customers"]
print(f"cycle {cycle}: {status}, {bills} bills for {billable} billable customers, "
      f"checksum {int(record.get('checksum', {}).get('N', '0')):,} won")
if status != "SETTLED":
    problems.append(f"the cycle is {status}, not SETTLED")
if bills != billable:
    problems.append(f"{bills} bills for {billable} billable customers")

states = collections.Counter(i["state"]["S"] for i in scan(
    outputs["DeliveriesTableName"], ProjectionExpression="#s", ExpressionAttributeNames={"#s": "state"}))
print("deliveries: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
sent = states["SENT_EMAIL"] + states["SENT_SMS"]
keys = collections.Counter(i["pk"]["S"] for i in scan(outputs["MockSendsTableName"], ProjectionExpression="pk"))
twice = sum(1 for n in keys.values() if n > 1)
print(f"accepted sends at the mock providers: {sum(keys.values())}, keys accepted more than once: {twice}")
if twice:
    problems.append(f"{twice} sends accepted more than once")
if sum(states.values()) != bills:
    problems.append(f"{sum(states.values())} deliveries for {bills} bills")
year, month = map(int, cycle.split("-"))
send_month = datetime.date(year + month // 12, month % 12 + 1, 1)
last = send_month.replace(day=calendar.monthrange(send_month.year, send_month.month)[1])
if datetime.date.fromisoformat(to) >= last:
    ended = sent + states["DEAD"]
    if ended != bills:
        problems.append(f"{bills - ended} deliveries neither sent nor dead after the month's last slot")
    if sum(keys.values()) != sent:
        problems.append(f"{sum(keys.values())} accepted sends for {sent} sent deliveries")
for p in problems:
    print(f"rehearse: does not reconcile: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
echo
echo "rehearse: stack $stack rehearsed in $((SECONDS - started)) s (runner logs in $work/runner/logs)"
