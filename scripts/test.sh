#!/usr/bin/env bash
# The test command of the README: every test of the workspace, doctests
# included. Tests of the Redis store need Redis at 127.0.0.1:6379; this
# script starts one (nothing saved to disk) if none answers. The edge tests
# run a real nginx as their upstream; this script installs it if missing.
# Some tests run Python checkers and clients quota did not write (the admin
# API's OpenAPI document, Envoy's rate limit service through grpcio; pinned
# in scripts/python-requirements.txt); this script installs them into a
# venv if missing. The operator's page is tested in a real headless
# Chromium (Debian's chromium and chromium-driver), installed if missing
# (scripts/ensure-chromium.sh).
# The gateway's end-to-end suite (crates/quota-gateway/tests) runs twice:
# with its own HTTP/1.1 path (the default) and with hyper's server for every
# request (QUOTA_TEST_HTTP1=hyper), the two settings of `--http1`.
# The Redis Cluster tests run on a cluster of six nodes (three masters, three
# replicas) on 127.0.0.1:7101..7106 that this script starts and stops
# (scripts/ensure-redis-cluster.sh); QUOTA_REDIS_CLUSTER tells the tests it
# is there, so they fail rather than skip if it is not. The failover test
# starts and stops a cluster of its own on 7111..7116.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-redis.sh
scripts/ensure-nginx.sh
scripts/ensure-chromium.sh
scripts/ensure-redis-cluster.sh 7101
trap 'scripts/stop-redis-cluster.sh 7101' EXIT
export QUOTA_REDIS_CLUSTER="${QUOTA_REDIS_CLUSTER:-redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103}"
scripts/ensure-python-tools.sh >/dev/null

cargo test --workspace --locked "$@"
echo "== the gateway's end-to-end suite again, HTTP/1.1 served by hyper (--http1 hyper)"
QUOTA_TEST_HTTP1=hyper cargo test -p quota-gateway --tests --locked "$@"
