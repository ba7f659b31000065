# Shared by scripts/month.sh and scripts/test.sh (sourced, not run).

# The shared cargo target directory: outside the checkout, so fresh clones reuse builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/billing-platform/target}"

# Points this shell at the emulator: reuses one the developer already runs (and leaves it
# running), otherwise starts one and stops it when the calling script exits. Exports
# AWS_ENDPOINT_URL and the dummy credentials and region the emulator takes. Arguments go to
# `scripts/emulator.sh start` (e.g. --dynamodb-process PATTERN).
use_emulator() {
  local reused=0
  scripts/emulator.sh url >/dev/null 2>&1 && reused=1
  AWS_ENDPOINT_URL="$(scripts/emulator.sh start "$@")"
  if ((reused == 0)); then
    trap 'scripts/emulator.sh stop >/dev/null 2>&1 || true' EXIT
  fi
  export AWS_ENDPOINT_URL
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=ap-northeast-2
  unset AWS_PROFILE AWS_SESSION_TOKEN
}
