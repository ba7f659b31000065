#!/usr/bin/env bash
# Builds every function for deployment, then runs `sam build`.
#
#   bash scripts/build.sh [--arch arm64|x86_64] [--profile release|fast]
#
# One `cargo lambda build` of the workspace's nine function binaries writes
# target/lambda/<function>/bootstrap (the CodeUri of each function in template.yaml); the
# functions carry `SkipBuild` metadata, so `sam build` packages those binaries as they are
# instead of compiling each function's dependency tree again. No Docker is needed.
#
# --arch defaults to arm64 (Graviton: cheaper per GB-second) when the aarch64-unknown-linux-gnu
# target is installed, x86_64 otherwise; deploy with the same value for the Architecture
# parameter (the script prints the command). Binaries are linked by zig (cargo lambda's
# default) against the glibc of Lambda's provided.al2023 runtime, whatever this machine has.
# --profile fast skips fat LTO (a quicker build for a trial stack; larger, slightly slower
# binaries).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FUNCTIONS=(settle-begin settle-shard settle-finish render-shard dispatch-slot send-email send-sms
  record-failure admin-api)

arch=""
profile=release
while (($#)); do
  case "$1" in
    --arch) arch="${2:?--arch needs arm64 or x86_64}"; shift 2 ;;
    --profile) profile="${2:?--profile needs release or fast}"; shift 2 ;;
    -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in release | fast) ;; *) echo "build.sh: --profile is release or fast" >&2; exit 2 ;; esac

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
cargo lambda build --profile "$profile" --target "$target" --lambda-dir target/lambda "${bins[@]}"
echo "build.sh: cargo lambda build ($profile, $arch) took $((SECONDS - start)) s"

# What each function weighs, unpacked and as the zip Lambda receives (sizes in bytes).
printf '%-16s %12s %12s\n' function bootstrap zip
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
  printf '%-16s %12s %12s\n' "$f" "$(stat -c %s "$bin")" "$zipped"
done

sam build --parameter-overrides "Architecture=$arch"

echo
echo "build.sh: built for $arch. Deploy with:"
if [[ "$arch" == arm64 ]]; then
  echo "  sam deploy --guided"
else
  echo "  sam deploy --guided --parameter-overrides Architecture=x86_64"
fi
