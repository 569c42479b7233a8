#!/usr/bin/env bash
# The test command of the README: every test of the workspace, doctests
# included. Tests of the Redis store need Redis at 127.0.0.1:6379; this
# script starts one (nothing saved to disk) if none answers. The edge tests
# run a real nginx as their upstream; this script installs it if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-redis.sh
scripts/ensure-nginx.sh

cargo test --workspace --locked "$@"
