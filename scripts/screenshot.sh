#!/usr/bin/env bash
# Renders the sample invoices of a template version with the preview command and takes a
# screenshot of one email invoice with headless Chromium, for the README:
#
#   scripts/screenshot.sh [VERSION] [SAMPLE]      (defaults: v1 family → docs/invoice-email-v1.png)
#
# Installs Chromium and a Korean font (Debian packages chromium, fonts-noto-cjk) when missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh

version="${1:-v1}"
sample="${2:-family}"

if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -i 'noto.*cjk' >/dev/null; then
  sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q chromium fonts-noto-cjk
fi

out="out/preview/$version"
cargo run -q -p invoice --bin preview -- --version "$version" --sample "$sample" --out "$out"
mkdir -p docs
png="docs/invoice-email-$version.png"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
  --window-size=760,1120 --screenshot="$ROOT/$png" "file://$ROOT/$out/$sample.html" 2>/dev/null
echo "wrote $png"
