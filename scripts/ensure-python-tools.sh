#!/usr/bin/env bash
# The Python tools some tests run as checkers and clients quota did not
# write, pinned in scripts/python-requirements.txt: openapi-spec-validator
# and jsonschema (the admin API's OpenAPI document and the live answers),
# grpcio and grpcio-tools (Envoy's rate limit service, on stubs compiled
# from envoy-types' protos), PyYAML (docs/envoy/envoy.yaml), selenium (the
# operator's page in a headless Chromium, scripts/ensure-chromium.sh).
# Installed from PyPI into a virtual environment of their own, $QUOTA_VENV or
# ~/.cache/quota-venv, the first time and whenever the pins change.
# Prints the environment's python on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${QUOTA_VENV:-${HOME:-/root}/.cache/quota-venv}"
requirements="$here/python-requirements.txt"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  echo "ensure-python-tools: installing scripts/python-requirements.txt into $venv" >&2
  command -v python3 >/dev/null || { echo "ensure-python-tools: python3 is missing" >&2; exit 1; }
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$venv/bin/python"
