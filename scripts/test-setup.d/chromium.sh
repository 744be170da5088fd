#!/usr/bin/env bash
# Debian's Chromium for tests/e2e/test_browser_progress.py: Playwright drives it (no browser
# is downloaded). Installed when missing and root; otherwise that test fails under CI=true
# and is skipped elsewhere, saying so.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "== installing chromium (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium.sh: /usr/bin/chromium is missing and this is not root: apt-get install chromium" >&2
fi
