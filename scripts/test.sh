#!/usr/bin/env bash
# The test command of the README: every test of the workspace, doctests
# included. Tests of the Redis store need Redis at 127.0.0.1:6379; this
# script starts one (nothing saved to disk) if none answers. The edge tests
# run a real nginx as their upstream; this script installs it if missing.
# The gateway's end-to-end suite (crates/quota-gateway/tests) runs twice:
# with its own HTTP/1.1 path (the default) and with hyper's server for every
# request (QUOTA_TEST_HTTP1=hyper), the two settings of `--http1`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-redis.sh
scripts/ensure-nginx.sh

cargo test --workspace --locked "$@"
echo "== the gateway's end-to-end suite again, HTTP/1.1 served by hyper (--http1 hyper)"
QUOTA_TEST_HTTP1=hyper cargo test -p quota-gateway --tests --locked "$@"
