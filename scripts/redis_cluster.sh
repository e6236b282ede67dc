#!/usr/bin/env bash
# A Redis Cluster of 3 masters (and REPLICAS replicas per master) from plain redis-server processes on
# ports PORT_BASE .. PORT_BASE+3*(1+REPLICAS)-1 of 127.0.0.1, each with its files under DIR/<port>/.
# It never touches the machine's Redis (6379); scale-out mode points REDIS_URL at any of its nodes
# with REDIS_CLUSTER=1 (docs/scaling.md, "Where each Redis key lives").
#
#   scripts/redis_cluster.sh start  DIR PORT_BASE [REPLICAS]   start the nodes, create the cluster, wait for cluster_state:ok
#   scripts/redis_cluster.sh status DIR PORT_BASE [REPLICAS]   cluster_state and the nodes (exit 1 unless ok)
#   scripts/redis_cluster.sh stop   DIR PORT_BASE [REPLICAS]   stop every node of DIR (files kept)
#
# REPLICAS defaults to 0 (3 masters); the rehearsal uses 1 (3 masters + 3 replicas). Nodes are started
# without persistence (no RDB, no AOF): the cluster is for tests and rehearsals.
set -euo pipefail

usage() {
  echo "usage: scripts/redis_cluster.sh start|stop|status DIR PORT_BASE [REPLICAS]" >&2
  exit 2
}
[[ $# -ge 3 ]] || usage
action=$1
dir=$2
base=$3
replicas=${4:-0}
[[ $base =~ ^[0-9]+$ && $replicas =~ ^[0-9]+$ ]] || usage
masters=3
count=$((masters * (1 + replicas)))
ports=()
for ((i = 0; i < count; i++)); do ports+=($((base + i))); done

for tool in redis-server redis-cli; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "redis_cluster.sh: $tool is not installed (Debian: apt-get install redis-server)" >&2
    exit 3
  fi
done

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

cluster_ok() {
  # every node agrees the cluster is ok (a node that just joined may still say fail)
  local port
  for port in "${ports[@]}"; do
    cli "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
}

start() {
  mkdir -p "$dir"
  local port
  for port in "${ports[@]}"; do
    if cli "$port" ping >/dev/null 2>&1; then
      echo "redis_cluster.sh: port $port already answers; refusing to start over it" >&2
      exit 1
    fi
  done
  for port in "${ports[@]}"; do
    mkdir -p "$dir/$port"
    rm -f "$dir/$port/nodes.conf"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --save "" --appendonly no --daemonize yes \
      --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log"
  done
  local deadline=$((SECONDS + 20))
  for port in "${ports[@]}"; do
    until cli "$port" ping >/dev/null 2>&1; do
      if ((SECONDS > deadline)); then
        echo "redis_cluster.sh: node $port did not start (see $dir/$port/redis.log)" >&2
        exit 1
      fi
      sleep 0.1
    done
  done
  local nodes=()
  for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1 || {
    cat "$dir/create.log" >&2
    exit 1
  }
  deadline=$((SECONDS + 30))
  until cluster_ok; do
    if ((SECONDS > deadline)); then
      echo "redis_cluster.sh: cluster_state did not reach ok within 30 s" >&2
      cli "$base" cluster info >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  # a replica answers cluster_state:ok before its first sync; wait for every replica's link to be up
  if ((replicas > 0)); then
    for port in "${ports[@]}"; do
      until ! cli "$port" info replication | grep -q '^role:slave' \
        || cli "$port" info replication | grep -q '^master_link_status:up'; do
        if ((SECONDS > deadline)); then
          echo "redis_cluster.sh: replica $port did not sync within 30 s" >&2
          exit 1
        fi
        sleep 0.2
      done
    done
  fi
  echo "redis cluster ok: ${nodes[*]} (REDIS_URL=redis://127.0.0.1:$base/0 REDIS_CLUSTER=1)"
}

stop() {
  local port pid
  for port in "${ports[@]}"; do
    if [[ -f $dir/$port/redis.pid ]]; then
      pid=$(cat "$dir/$port/redis.pid")
      # only a redis-server that this script started (its pidfile) is stopped
      if kill -0 "$pid" 2>/dev/null && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
      fi
    fi
  done
  local deadline=$((SECONDS + 10))
  for port in "${ports[@]}"; do
    [[ -f $dir/$port/redis.pid ]] || continue
    pid=$(cat "$dir/$port/redis.pid")
    while kill -0 "$pid" 2>/dev/null && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; do
      if ((SECONDS > deadline)); then
        kill -9 "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
    rm -f "$dir/$port/redis.pid"
  done
  echo "redis cluster stopped ($dir)"
}

status() {
  cli "$base" cluster info | grep -E '^cluster_(state|known_nodes|size)' || true
  cli "$base" cluster nodes 2>/dev/null | awk '{print $2, $3}' || true
  cluster_ok
}

case $action in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
