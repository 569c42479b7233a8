#!/usr/bin/env bash
# Makes sure Debian's Chromium and its WebDriver are installed
# (/usr/bin/chromium, /usr/bin/chromedriver): the operator's page is tested
# in a real headless browser (crates/quota-gateway/tests/ui_browser.rs,
# driven by selenium from scripts/python-requirements.txt). Installs the
# packages `chromium` and `chromium-driver` if either is missing (running
# `apt-get update` first only when the install fails without it); quiet
# when both are there. Prints their versions on stderr. Nothing is started.
set -euo pipefail

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "ensure-chromium: installing chromium and chromium-driver (Debian packages)" >&2
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  install() {
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq \
      --no-install-recommends chromium chromium-driver >/dev/null
  }
  if ! install; then
    "${SUDO[@]}" apt-get update -qq
    install
  fi
fi
for bin in /usr/bin/chromium /usr/bin/chromedriver; do
  [ -x "$bin" ] || { echo "ensure-chromium: $bin is missing" >&2; exit 1; }
done
# Versions, for the log of a failing run (no profile, no network).
echo "ensure-chromium: $(/usr/bin/chromium --headless=new --no-sandbox --version 2>/dev/null || echo 'chromium: version unknown')" >&2
echo "ensure-chromium: $(/usr/bin/chromedriver --version 2>/dev/null || echo 'chromedriver: version unknown')" >&2
