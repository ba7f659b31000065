#!/usr/bin/env bash
# Installs the local tool chain into the project (idempotent; fast when already done):
#   .venv/          moto server (AWS emulator), cargo-lambda, AWS SAM CLI, cfn-lint, AWS CLI (pinned)
#   node_modules/   asl-validator (pinned in package.json / package-lock.json)
#   libfaketime     the virtual clock lambda-runner runs deployed functions on (apt: faketime)
# and checks that cargo is there. No Docker, no global installs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The one place the Python tool versions are pinned.
PINS=(
  "moto[server]==5.2.5"
  "cargo-lambda==1.9.2"
  "aws-sam-cli==1.170.0"
  "cfn-lint==1.58.0"
  # v1, matched to the botocore the SAM CLI brings; the rehearsal drives the stack with it
  "awscli==1.46.2"
)
ASL_VALIDATOR_VERSION=4.0.0

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- cargo -------------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust toolchain (rustup) first"

# --- Python venv -------------------------------------------------------------------------
VENV="$ROOT/.venv"
PIN_HASH="$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-16)"
STAMP="$VENV/.setup-$PIN_HASH"
TOOLS=(moto_server cargo-lambda sam cfn-lint aws)

tools_present() {
  local t
  for t in "${TOOLS[@]}"; do [[ -x "$VENV/bin/$t" ]] || return 1; done
}

# The installed distributions match the pins (one python start, no network).
versions_match() {
  "$VENV/bin/python" - "${PINS[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    name = name.split("[")[0]
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if have != want:
        sys.exit(1)
PY
}

ensure_python_venv_module() {
  command -v python3 >/dev/null 2>&1 || {
    say "python3 missing: installing it with apt-get"
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
  }
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    say "python3 venv module missing: installing python3-venv with apt-get"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  fi
}

if [[ -f "$STAMP" ]] && tools_present; then
  say "python tools up to date (.venv)"
else
  if [[ ! -x "$VENV/bin/python" ]]; then
    ensure_python_venv_module
    say "creating .venv"
    python3 -m venv "$VENV"
  fi
  if tools_present && versions_match; then
    say "python tools already at the pinned versions"
  else
    say "installing ${PINS[*]} into .venv (about a minute on a fresh machine)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
    tools_present || die "pip finished but ${TOOLS[*]} are not all in .venv/bin"
  fi
  rm -f "$VENV"/.setup-*
  touch "$STAMP"
fi

# --- asl-validator -----------------------------------------------------------------------
installed_asl_version() {
  local pkg="$ROOT/node_modules/asl-validator/package.json"
  [[ -f "$pkg" ]] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg" 2>/dev/null || true
}

if [[ -x node_modules/.bin/asl-validator && "$(installed_asl_version)" == "$ASL_VALIDATOR_VERSION" ]]; then
  say "asl-validator $ASL_VALIDATOR_VERSION up to date (node_modules)"
else
  command -v npm >/dev/null 2>&1 || {
    say "npm missing: installing nodejs and npm with apt-get"
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  }
  say "installing asl-validator $ASL_VALIDATOR_VERSION into node_modules"
  if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-save --no-audit --no-fund --loglevel=error "asl-validator@$ASL_VALIDATOR_VERSION"
  fi
fi

# --- libfaketime ---------------------------------------------------------------------------
# lambda-runner starts each deployed function under libfaketime to put it on the rehearsal's
# virtual clock (tools/lambda-runner/src/clock.rs).
faketime_present() {
  local lib
  for lib in /usr/lib/*-linux-gnu/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    [[ -f "$lib" ]] && return 0
  done
  return 1
}
if faketime_present; then
  say "libfaketime present"
elif command -v apt-get >/dev/null 2>&1; then
  say "installing faketime (libfaketime) with apt-get"
  apt-get install -y -qq faketime >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq faketime >/dev/null; }
  faketime_present || die "apt-get installed faketime but libfaketime.so.1 is not where expected"
else
  say "warning: libfaketime is missing and apt-get is not available: install faketime for lambda-runner"
fi

# --- Chromium, chromedriver, a Korean font -------------------------------------------------
# The console's browser test (tools/billingctl/tests/console.rs) drives headless Chromium
# through chromedriver; the screenshots need a font with Hangul (apt: chromium,
# chromium-driver, fonts-noto-cjk).
browser_present() {
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || return 1
  fc-list 2>/dev/null | grep -i 'noto.*cjk' >/dev/null  # not -q: an early exit of grep fails the pipe (pipefail)
}
if browser_present; then
  say "chromium, chromedriver and fonts-noto-cjk present"
elif command -v apt-get >/dev/null 2>&1; then
  say "installing chromium, chromium-driver and fonts-noto-cjk with apt-get"
  BROWSER_PACKAGES=(chromium chromium-driver fonts-noto-cjk)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${BROWSER_PACKAGES[@]}" >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${BROWSER_PACKAGES[@]}" >/dev/null
  }
  browser_present || die "apt-get installed ${BROWSER_PACKAGES[*]} but /usr/bin/chromium, /usr/bin/chromedriver or the font is missing"
else
  say "warning: chromium or chromedriver is missing and apt-get is not available: install chromium, chromium-driver and fonts-noto-cjk for the console's browser test"
fi

say "done"
