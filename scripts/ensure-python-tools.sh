#!/usr/bin/env bash
# The Python tools some tests run as clients quota did not write (grpcio
# for Envoy's rate limit service), pinned, in a virtual environment of their
# own: ${QUOTA_VENV:-$HOME/.cache/quota-venv}. Idempotent: a venv that
# already has these versions is kept. Prints the venv's python.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${QUOTA_VENV:-$HOME/.cache/quota-venv}"
requirements="$here/python-requirements.txt"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$venv/bin/python"
