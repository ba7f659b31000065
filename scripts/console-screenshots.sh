#!/usr/bin/env bash
# Takes the console's screenshots for docs/console.md and the README: runs the console's
# browser test (tools/billingctl/tests/console.rs) with CONSOLE_SCREENSHOTS=docs/console, which
# saves each page at 1280×800 and the Customer page at 390×844 as it goes.
#
#   scripts/console-screenshots.sh
#
# Installs Chromium, chromedriver and a Korean font (Debian packages chromium, chromium-driver,
# fonts-noto-cjk) when missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]] || ! fc-list 2>/dev/null | grep -qi 'noto.*cjk'; then
  sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q chromium chromium-driver fonts-noto-cjk
fi

use_emulator
out="docs/console"
mkdir -p "$out"
CONSOLE_SCREENSHOTS="$ROOT/$out" cargo nextest run -p billingctl --test console --no-fail-fast
for png in "$out"/*.png; do
  echo "wrote $png"
done
