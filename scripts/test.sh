#!/usr/bin/env bash
# The project's test command: lints the infrastructure and runs every test, the emulator
# tests included, against one shared AWS emulator. Exits non-zero if anything failed.
#
# CARGO_TARGET_DIR defaults to a directory outside the checkout so that fresh clones reuse
# earlier builds; set it to override.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH"   # cargo lambda, sam, cfn-lint
export SAM_CLI_TELEMETRY=0

failed=()
step() {
  local name="$1"
  shift
  printf '\n== %s\n' "$name"
  if "$@"; then
    printf -- '-- %s: ok\n' "$name"
  else
    printf -- '-- %s: FAILED\n' "$name"
    failed+=("$name")
  fi
}

# --- infrastructure lint -----------------------------------------------------------------
step "cfn-lint" cfn-lint template.yaml
step "sam validate --lint" sam validate --lint --region ap-northeast-2
# sam build needs no Docker: every function is prebuilt (SkipBuild), so this proves the
# template builds; scripts/build.sh is what compiles the functions for a deployment.
sam_build_dir="$(mktemp -d)"
step "sam build" sam build --build-dir "$sam_build_dir/build" --cache-dir "$sam_build_dir/cache"
rm -rf "$sam_build_dir"
shopt -s nullglob
asl_files=(infra/statemachines/*.asl.json)
shopt -u nullglob
if ((${#asl_files[@]})); then
  asl_args=()
  for f in "${asl_files[@]}"; do asl_args+=(--json-path "$f"); done
  step "asl-validator" node_modules/.bin/asl-validator "${asl_args[@]}"
fi

# --- invoice templates: every embedded version parses, uses only known variables and keeps
# its text message within the limit (also checked by the tests and at every cold start)
step "invoice templates" cargo run -q -p invoice --bin preview -- validate

# --- the functions `cargo lambda watch` runs in the tests ----------------------------------
# The sample-events test serves the functions with `cargo lambda watch`, which starts each one
# with `cargo run --bin <function>` from this directory: on an empty build cache that compiled
# the function inside the test's time limit. Build them here, before any test starts, with
# exactly that command's configuration (dev profile, host target, the features a `--bin`
# selection at the workspace root resolves, this CARGO_TARGET_DIR), so that watch finds them
# fresh. One build of them all (in parallel), then each on its own as `cargo run --bin` selects
# it: a no-op unless a function's feature set differs from their union. The binaries that
# tests start through `CARGO_BIN_EXE_*` (billingctl, local-run, datagen, preview) are built by
# the test build itself, before any test runs.
# The functions are the folders of events/ (one per function the session invokes).
build_watched_functions() {
  local d f functions=() bins=() start=$SECONDS
  for d in events/*/; do functions+=("$(basename "$d")"); done
  ((${#functions[@]})) || { echo "no function folders in events/" >&2; return 1; }
  for f in "${functions[@]}"; do bins+=(--bin "$f"); done
  cargo build "${bins[@]}" || return
  for f in "${functions[@]}"; do cargo build -q --bin "$f" || return; done
  echo "${#functions[@]} functions built in $((SECONDS - start)) s"
}
step "functions for cargo lambda watch" build_watched_functions
# tests/tests/lambda_runner.rs runs lambda-runner and packages the functions' debug binaries
# (built just above) from the target directory, by path: build the runner here too.
step "lambda-runner, datagen, billingctl" cargo build --bin lambda-runner --bin datagen --bin billingctl

# --- one emulator for every test process -------------------------------------------------
# Reuse an emulator the developer already runs (and leave it running); otherwise start one
# and stop it on exit.
use_emulator
echo "emulator: $AWS_ENDPOINT_URL"

# --- tests -------------------------------------------------------------------------------
step "doc tests" cargo test --doc --workspace
if cargo nextest --version >/dev/null 2>&1; then
  profile=()
  [[ "${CI:-}" == "true" ]] && profile=(--profile ci)
  step "tests (nextest)" cargo nextest run --workspace --no-fail-fast "${profile[@]}"
else
  step "tests" cargo test --workspace --no-fail-fast
fi

printf '\n'
if ((${#failed[@]})); then
  printf 'test.sh: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')"
  exit 1
fi
printf 'test.sh: all checks passed\n'
