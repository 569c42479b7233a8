#!/usr/bin/env bash
# Makes sure nginx is installed (Debian's nginx-light): the end-to-end tests
# of the gateway's edge use a real nginx as the upstream, because nginx
# resolves `%2F` and dot-segments as most servers do. The tests start their
# own nginx on a free loopback port; nothing is started here.
set -euo pipefail

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "ensure-nginx: installing nginx-light (Debian package)" >&2
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq nginx-light >/dev/null
  # The package starts a system nginx on port 80; the tests do not need it.
  "${SUDO[@]}" systemctl stop nginx >/dev/null 2>&1 || "${SUDO[@]}" nginx -s stop >/dev/null 2>&1 || true
fi
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || { echo "ensure-nginx: nginx is missing" >&2; exit 1; }
