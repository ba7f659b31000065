#!/usr/bin/env bash
# Builds every function for deployment, then runs `sam build`.
#
#   bash scripts/build.sh [--arch arm64|x86_64] [--profile release|fast|dev] [--enforce-budget]
#
# One `cargo lambda build` of the workspace's function binaries writes
# target/lambda/<function>/bootstrap (the CodeUri of each function in template.yaml, which is
# where the list of functions is read from); the functions carry `SkipBuild` metadata, so
# `sam build` packages those binaries as they are instead of compiling each function's
# dependency tree again. No Docker is needed.
#
# --arch defaults to arm64 (Graviton: cheaper per GB-second) when the aarch64-unknown-linux-gnu
# target is installed, x86_64 otherwise; deploy with the same value for the Architecture
# parameter (the script prints the command). Binaries are linked by zig (cargo lambda's
# default) against the glibc of Lambda's provided.al2023 runtime, whatever this machine has.
# --profile fast skips fat LTO (a quicker build for a trial stack; larger, slightly slower
# binaries).
# --profile dev packages the debug binaries the test suite builds (`cargo build --bin <function>`
# in the shared target directory, host architecture and glibc, stripped when strip or objcopy is
# there): no release build, for a rehearsal against the local emulator (scripts/rehearse.sh),
# never for AWS.
#
# Every bootstrap has a size budget, BOOTSTRAP_BUDGET_BYTES (8,000,000 bytes unless set): the
# script prints each function's bootstrap and zip sizes against it and warns about every
# bootstrap over it; with --enforce-budget a release build with a bootstrap over it fails
# before `sam build` (fast and dev builds are larger by design and only warn).
# docs/benchmarks/deployment.md has the figures and what each bootstrap is made of.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Every function of the template: the <function> of each `CodeUri: target/lambda/<function>/`.
mapfile -t FUNCTIONS < <(grep -oE 'CodeUri: target/lambda/[A-Za-z0-9_-]+/' template.yaml |
  sed -E 's|.*target/lambda/([^/]+)/|\1|' | sort -u)
((${#FUNCTIONS[@]})) || { echo "build.sh: no CodeUri: target/lambda/<function>/ in template.yaml" >&2; exit 1; }

arch=""
profile=release
enforce_budget=0
while (($#)); do
  case "$1" in
    --arch) arch="${2:?--arch needs arm64 or x86_64}"; shift 2 ;;
    --profile) profile="${2:?--profile needs release, fast or dev}"; shift 2 ;;
    --enforce-budget) enforce_budget=1; shift ;;
    -h | --help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in release | fast | dev) ;; *) echo "build.sh: --profile is release, fast or dev" >&2; exit 2 ;; esac

host_arch() {
  case "$(uname -m)" in
    x86_64) echo x86_64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) uname -m ;;
  esac
}
if [[ "$profile" == dev ]]; then
  # Debug binaries are built for this machine only.
  if [[ -n "$arch" && "$arch" != "$(host_arch)" ]]; then
    echo "build.sh: --profile dev builds for this machine ($(host_arch)), not $arch" >&2
    exit 2
  fi
  arch="$(host_arch)"
fi

if [[ -z "$arch" ]]; then
  if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    arch=arm64
  else
    arch=x86_64
    echo "build.sh: the aarch64-unknown-linux-gnu target is not installed; building x86_64" >&2
    echo "          (rustup target add aarch64-unknown-linux-gnu, then --arch arm64)" >&2
  fi
fi
case "$arch" in
  arm64) target=aarch64-unknown-linux-gnu ;;
  x86_64) target=x86_64-unknown-linux-gnu ;;
  *) echo "build.sh: --arch is arm64 or x86_64" >&2; exit 2 ;;
esac

bash scripts/setup.sh >/dev/null
source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0

bins=()
for f in "${FUNCTIONS[@]}"; do bins+=(--bin "$f"); done
rm -rf target/lambda
start=$SECONDS
if [[ "$profile" == dev ]]; then
  # The same build as the test suite's (scripts/test.sh): dev profile, host target, the shared
  # CARGO_TARGET_DIR, so that after the tests it compiles nothing.
  cargo build "${bins[@]}"
  strip_tool=()
  if command -v strip >/dev/null 2>&1; then
    strip_tool=(strip --strip-debug)
  elif command -v objcopy >/dev/null 2>&1; then
    strip_tool=(objcopy --strip-debug)
  fi
  for f in "${FUNCTIONS[@]}"; do
    mkdir -p "target/lambda/$f"
    if ((${#strip_tool[@]})); then
      "${strip_tool[@]}" -o "target/lambda/$f/bootstrap" "$CARGO_TARGET_DIR/debug/$f"
    else
      cp "$CARGO_TARGET_DIR/debug/$f" "target/lambda/$f/bootstrap"
    fi
  done
  echo "build.sh: cargo build (dev, $arch${strip_tool:+, ${strip_tool[0]} --strip-debug}) took $((SECONDS - start)) s"
else
  cargo lambda build --profile "$profile" --target "$target" --lambda-dir target/lambda "${bins[@]}"
  echo "build.sh: cargo lambda build ($profile, $arch) took $((SECONDS - start)) s"
fi

# What each function weighs, unpacked and as the zip Lambda receives (sizes in bytes), against
# the budget.
budget="${BOOTSTRAP_BUDGET_BYTES:-8000000}"
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "build.sh: BOOTSTRAP_BUDGET_BYTES is a number of bytes" >&2; exit 2; }
over=()
printf '%-16s %12s %8s %12s  %s\n' function bootstrap MB zip "budget $budget"
for f in "${FUNCTIONS[@]}"; do
  bin="target/lambda/$f/bootstrap"
  [[ -x "$bin" ]] || { echo "build.sh: $bin was not built" >&2; exit 1; }
  zipped=$(python3 - "$bin" <<'EOF'
import io, sys, zipfile
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(sys.argv[1], "bootstrap")
print(len(buf.getvalue()))
EOF
)
  size=$(stat -c %s "$bin")
  verdict=ok
  if ((size > budget)); then
    verdict="OVER by $((size - budget))"
    over+=("$f")
  fi
  printf '%-16s %12s %8s %12s  %s\n' "$f" "$size" "$(awk -v b="$size" 'BEGIN { printf "%.2f", b / 1e6 }')" "$zipped" "$verdict"
done
if ((${#over[@]})); then
  echo "build.sh: WARNING: ${#over[@]} bootstrap(s) over the budget of $budget bytes: ${over[*]}" >&2
  if [[ "$profile" == release ]] && ((enforce_budget)); then
    echo "build.sh: --enforce-budget: failing (docs/benchmarks/deployment.md)" >&2
    exit 1
  fi
fi

sam build --parameter-overrides "Architecture=$arch"

echo
if [[ "$profile" == dev ]]; then
  echo "build.sh: debug build for $arch: for the local emulator only (scripts/rehearse.sh), not for AWS."
  exit 0
fi
echo "build.sh: built for $arch. Deploy with:"
if [[ "$arch" == arm64 ]]; then
  echo "  sam deploy --guided"
else
  echo "  sam deploy --guided --parameter-overrides Architecture=x86_64"
fi
