#!/usr/bin/env bash
# The test command of the README: every test of the workspace, doctests
# included. Tests of the Redis store need Redis at 127.0.0.1:6379; this
# script starts one (nothing saved to disk) if none answers.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-redis.sh

cargo test --workspace --locked "$@"
