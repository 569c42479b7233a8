#!/usr/bin/env bash
# Makes sure a Redis Cluster of three masters and three replicas answers on
# 127.0.0.1, ports BASE..BASE+5 (BASE is the first argument, 7101 by
# default), starting one if needed. Idempotent: a healthy cluster on those
# ports is reused as it is. Each node runs in its own directory under
# ${TMPDIR:-/tmp}/quota-redis-cluster/PORT (nodes.conf, pid file, log).
# Nothing is saved to disk unless QUOTA_CLUSTER_PERSIST=1 (then every node
# keeps an append-only file, fsynced on every write).
# Stop it with scripts/stop-redis-cluster.sh BASE.
set -euo pipefail

base="${1:-7101}"
case "$base" in '' | *[!0-9]*) echo "ensure-redis-cluster: the base port must be a number, not $base" >&2; exit 2 ;; esac
ports=$(seq "$base" $((base + 5)))
root="${TMPDIR:-/tmp}/quota-redis-cluster"
node_timeout="${QUOTA_CLUSTER_NODE_TIMEOUT_MS:-1000}"

say() { echo "ensure-redis-cluster: $*" >&2; }
healthy() {
  local port
  for port in $ports; do
    redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
  # Three masters with one replica each (a node left over from another
  # layout is not healthy enough).
  [ "$(redis-cli -h 127.0.0.1 -p "$base" cluster nodes 2>/dev/null | grep -c 'master' || true)" -ge 3 ]
}

if ! command -v redis-server >/dev/null 2>&1; then
  say "installing redis-server (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi

if healthy; then
  say "reusing the healthy cluster on 127.0.0.1:$base..$((base + 5))"
  exit 0
fi

# Anything half-started on these ports goes first, with its state.
"$(dirname "$0")/stop-redis-cluster.sh" "$base"

if [ "${QUOTA_CLUSTER_PERSIST:-0}" = 1 ]; then
  persist=(--appendonly yes --appendfsync always --save "")
else
  persist=(--appendonly no --save "")
fi
for port in $ports; do
  dir="$root/$port"
  rm -rf "$dir" && mkdir -p "$dir"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout "$node_timeout" "${persist[@]}"
done
for port in $ports; do
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
done

say "creating the cluster on 127.0.0.1:$base..$((base + 5)) (3 masters, 3 replicas)"
nodes=()
for port in $ports; do nodes+=("127.0.0.1:$port"); done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$root/create-$base.log" 2>&1 || {
  say "redis-cli --cluster create failed:"; cat "$root/create-$base.log" >&2; exit 1
}
for _ in $(seq 1 300); do
  healthy && break
  sleep 0.1
done
healthy || { say "the cluster on 127.0.0.1:$base..$((base + 5)) is not ok after 30 s"; exit 1; }
# Every node must see every replica attached before the cluster is used: a
# client reads the slot map from any node (and must learn of the replicas to
# load scripts on them), and a failover test needs a replica in sync.
replicas_seen() {
  local port
  for port in $ports; do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" cluster nodes 2>/dev/null | grep -c 'slave.*connected' || true)" -ge 3 ] || return 1
    # CLUSTER SLOTS names each slot range's master and replica.
    [ "$(redis-cli -h 127.0.0.1 -p "$port" cluster slots 2>/dev/null | grep -c '^127\.0\.0\.1$' || true)" -ge 6 ] || return 1
  done
}
for _ in $(seq 1 300); do
  replicas_seen && break
  sleep 0.1
done
replicas_seen || { say "the replicas on 127.0.0.1:$base..$((base + 5)) are not attached after 30 s"; exit 1; }
say "cluster ok on 127.0.0.1:$base..$((base + 5))"
