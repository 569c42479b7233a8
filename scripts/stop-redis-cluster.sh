#!/usr/bin/env bash
# Stops the Redis Cluster nodes that scripts/ensure-redis-cluster.sh started
# on 127.0.0.1, ports BASE..BASE+5 (BASE is the first argument, 7101 by
# default), by the pids in their pid files, and removes their directories.
set -euo pipefail

base="${1:-7101}"
case "$base" in '' | *[!0-9]*) echo "stop-redis-cluster: the base port must be a number, not $base" >&2; exit 2 ;; esac
root="${TMPDIR:-/tmp}/quota-redis-cluster"

for port in $(seq "$base" $((base + 5))); do
  dir="$root/$port"
  pidfile="$dir/redis.pid"
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    # Only a redis-server: a stale pid file may name another process by now.
    if [ -n "$pid" ] && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
done
