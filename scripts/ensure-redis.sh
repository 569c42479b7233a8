#!/usr/bin/env bash
# Makes sure a Redis answers at 127.0.0.1:6379, starting one if needed
# (installing Debian's redis-server first on a machine that has none).
set -euo pipefail

ping() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! command -v redis-server >/dev/null 2>&1; then
  echo "ensure-redis: installing redis-server (Debian package)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ! ping; then
  echo "ensure-redis: starting redis-server on 127.0.0.1:6379" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do ping && break; sleep 0.1; done
fi
ping || { echo "ensure-redis: Redis does not answer at 127.0.0.1:6379" >&2; exit 1; }
