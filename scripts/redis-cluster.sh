#!/usr/bin/env bash
# A throwaway 3-master Redis Cluster on free loopback ports, for the cache tests.
#   scripts/redis-cluster.sh start DIR   starts it (data, logs and PIDs in DIR) and prints
#                                        its URL: redis-cluster://127.0.0.1:P1,…
#   scripts/redis-cluster.sh stop DIR    stops the servers it started (by PID) and removes DIR
set -euo pipefail

# A free port P below 55536 whose cluster bus port (P + 10000) is free too.
free_port() {
  python3 - <<'PY'
import random, socket
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    port = random.randint(20000, 55535)
    if free(port) and free(port + 10000):
        print(port)
        break
PY
}

case "${1:-}" in
  start)
    dir=$2
    mkdir -p "$dir"
    nodes=()
    for i in 1 2 3; do
      port=$(free_port)
      mkdir -p "$dir/$port"
      redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$dir/$port/nodes.conf" --dir "$dir/$port" \
        --save "" --appendonly no --daemonize yes --pidfile "$dir/$port/redis.pid" \
        --logfile "$dir/$port/redis.log" >/dev/null
      nodes+=("127.0.0.1:$port")
    done
    for node in "${nodes[@]}"; do
      for _ in $(seq 100); do
        redis-cli -p "${node#*:}" ping >/dev/null 2>&1 && break
        sleep 0.05
      done
    done
    if ! redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1; then
      echo "redis-cli --cluster create failed:" >&2
      cat "$dir/create.log" >&2
      exit 1
    fi
    for _ in $(seq 200); do
      if redis-cli -p "${nodes[0]#*:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
        (IFS=,; echo "redis-cluster://${nodes[*]}")
        exit 0
      fi
      sleep 0.05
    done
    echo "the Redis Cluster in $dir did not reach cluster_state:ok" >&2
    exit 1
    ;;
  stop)
    dir=$2
    for pidfile in "$dir"/*/redis.pid; do
      [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
    ;;
esac
