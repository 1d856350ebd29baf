#!/usr/bin/env bash
# Lockplane side by side with etcd and Redis, in one run.
#
# Starts, each on loopback with its own data directory: a 3-member etcd cluster (Debian's
# etcd-server, installed when missing), one Redis (no persistence, like the usual
# deployment of the lock recipe; redis-server installed when missing), and a 3-node
# Lockplane cluster (fsync per commit) with a gateway whose status cache is a second Redis
# of its own (so W4's default reads are cached reads). Runs the same workloads against each,
# one system at a time, then prints one Markdown table of every run and Lockplane's ratio
# to each peer. Measures the disk's fsync latency first. Stops every process it started,
# by PID, on exit.
#
# Each system's server PIDs are given to the load generator, which reports their CPU per
# operation and resident memory.
#
#   loadtest/compare.sh     # W1, W2, W4 (both read kinds) at 1,16,64,256 clients, 10 s each;
#                           # then W5 (10,000 sessions) and W3 (1,000,000 locks) at 64 clients
#   CLIENTS=64 DURATION=5 WORKLOADS="w1" LOCKS=0 SESSIONS=0 loadtest/compare.sh
#
# LOCKS=0 skips W3, SESSIONS=0 skips W5; ETCD_LOCKS caps etcd's W3 (its acquires are slow);
# SYSTEMS="lockplane" runs one system alone (while tuning it); READ_PERCENT (default 70) sets
# W4's share of status reads (100: the read path alone). AUDIT=1 also runs a Kafka-protocol
# broker (tansu, scripts/ensure-tansu.sh) and has Lockplane publish its audit trail to it
# (`--kafka`): what the outbox costs. AUDIT=2 adds an audit consumer storing the trail in
# a fresh database of the machine's PostgreSQL (dropped at the end), and prints how many
# rows arrived and how long after the load: the whole pipeline. The broker's and the
# consumer's CPU are counted with Lockplane's (here they share its two cores).
set -euo pipefail
cd "$(dirname "$0")/.."

clients=${CLIENTS:-1,16,64,256}
duration=${DURATION:-10}
warmup=${WARMUP:-2}
read -r -a workloads <<<"${WORKLOADS-w1 w2 w4 w4-linearizable}"
locks=${LOCKS:-1000000}
etcd_locks=${ETCD_LOCKS:-100000}
sessions=${SESSIONS:-10000}
session_ttl=${SESSION_TTL:-15}
big_clients=${BIG_CLIENTS:-64}
read_percent=${READ_PERCENT:-70}
systems=${SYSTEMS:-etcd redis lockplane}
audit=${AUDIT:-0}

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
if ((${#need[@]})); then
  echo "installing ${need[*]} (Debian)"
  $sudo apt-get update -q && $sudo apt-get install -y -q "${need[@]}"
fi

echo "building (release)"
cargo build --release --locked --quiet -p lockplane -p lockplane-loadtest
bin="${CARGO_TARGET_DIR:-target}/release"

work=$(mktemp -d /tmp/lockplane-compare.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n ${audit_db:-} ]]; then
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $audit_db WITH (FORCE)" postgres || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

read -r -a port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(10)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)

echo "disk: fsync latency in $work"
fsync_ms=$(python3 - "$work" <<'PY'
import os, sys, time, statistics
path = os.path.join(sys.argv[1], "fsync-probe")
samples = []
with open(path, "wb") as f:
    for _ in range(200):
        f.write(b"x" * 4096)
        t = time.perf_counter()
        os.fsync(f.fileno())
        samples.append((time.perf_counter() - t) * 1000)
os.remove(path)
samples.sort()
print(f"p50 {statistics.median(samples):.3f} ms, p99 {samples[int(len(samples) * 0.99) - 1]:.3f} ms")
PY
)
echo "  $fsync_ms"

wait_for_port() {
  local port=$1 what=$2
  for _ in $(seq 1 300); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$port" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$what did not come up on port $port" >&2
  exit 1
}

wants() { [[ " $systems " == *" $1 "* ]]; }

# A Redis without persistence on port $1, logging to $2; its PID in $redis_started.
start_redis() {
  redis-server --bind 127.0.0.1 --port "$1" --save '' --appendonly no >"$2" 2>&1 &
  pids+=($!)
  redis_started=$!
  wait_for_port "$1" "redis on $1"
}

if wants etcd; then
echo "starting a 3-member etcd"
cluster="e1=http://127.0.0.1:${port[3]},e2=http://127.0.0.1:${port[4]},e3=http://127.0.0.1:${port[5]}"
etcd_endpoints=()
for i in 0 1 2; do
  client=${port[$i]} peer=${port[$((i + 3))]}
  etcd --name "e$((i + 1))" --data-dir "$work/etcd-$i" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$cluster" --initial-cluster-state new --log-level error \
    >"$work/etcd-$i.log" 2>&1 &
  pids+=($!)
  etcd_endpoints+=("http://127.0.0.1:$client")
done
for i in 0 1 2; do wait_for_port "${port[$i]}" "etcd member $((i + 1))"; done
etcd_pids=$(IFS=,; echo "${pids[*]}")
fi

if wants redis; then
echo "starting a Redis"
start_redis "${port[6]}" "$work/redis.log"
redis_pid=$redis_started
fi

if wants lockplane; then
echo "starting the status cache's Redis"
start_redis "${port[8]}" "$work/cache-redis.log"
cache_redis_pid=$redis_started
audit_flags=()
audit_pid=""
if ((audit >= 1)); then
  tansu=$(scripts/ensure-tansu.sh)
  echo "starting a Kafka-protocol broker (tansu) for the audit trail"
  mkdir -p "$work/tansu"
  (cd "$work/tansu" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:${port[9]}" \
    --advertised-listener-url "tcp://127.0.0.1:${port[9]}" --storage-engine sqlite://broker.db \
    >"$work/tansu.log" 2>&1) &
  audit_pid=$!
  pids+=("$audit_pid")
  wait_for_port "${port[9]}" "tansu"
  audit_flags=(--kafka "127.0.0.1:${port[9]}")
fi
if ((audit >= 2)); then
  scripts/ensure-postgres.sh
  audit_db="lockplane_bench_$$"
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $audit_db" postgres
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $audit_db" postgres
  audit_url="postgres://postgres@127.0.0.1:5432/$audit_db"
fi
echo "starting a 3-node Lockplane cluster with a gateway"
key="compare-$(date +%s%N)"
# The gateway's per-tenant rate limit would cap the load: lifted for the comparison.
LOCKPLANE_RATE_LIMIT=100000000 "$bin/lockplane" cluster up --nodes 3 \
  --data-dir "$work/lockplane" --http "127.0.0.1:${port[7]}" --api-key "$key" \
  --redis "redis://127.0.0.1:${port[8]}" "${audit_flags[@]}" \
  >"$work/lockplane.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
  if grep -q "gateway: http" "$work/lockplane.log" && grep -q "gateway serving" "$work/lockplane.log"; then break; fi
  sleep 0.1
done
wait_for_port "${port[7]}" "the Lockplane gateway"
# `cluster up` supervises; the nodes and the gateway are its children.
mapfile -t lockplane_children < <(pgrep -P "${pids[-1]}")
lockplane_pids=$(IFS=,; echo "${pids[-1]},${lockplane_children[*]},$cache_redis_pid${audit_pid:+,$audit_pid}")
if ((audit >= 2)); then
  LOCKPLANE_POSTGRES_URL=$audit_url "$bin/lockplane" audit-consumer \
    --kafka "127.0.0.1:${port[9]}" --metrics-listen "127.0.0.1:0" >"$work/consumer.log" 2>&1 &
  pids+=($!)
  lockplane_pids="$lockplane_pids,$!"
fi
fi

results="$work/results.jsonl"
timed=(--clients "$clients" --duration-s "$duration" --warmup-s "$warmup" --read-percent "$read_percent")
for w in "${workloads[@]}"; do timed+=(--workload "$w"); done
load() {
  local name=$1
  shift
  "$bin/lockplane-loadtest" "$@" | tee -a "$work/$name.out" | grep '^{' >>"$results" || {
    echo "the $name run failed:" >&2
    cat "$work/$name.out" >&2
    exit 1
  }
}
# One system after another: the timed workloads, then W5, then W3 (whose locks are
# released at its end).
run() {
  local name=$1 w3_locks=$2
  shift 2
  echo "running against $name"
  if ((${#workloads[@]})); then load "$name" "$@" "${timed[@]}"; fi
  if ((sessions > 0)); then
    load "$name" "$@" --workload w5 --clients "$big_clients" --duration-s "$duration" \
      --warmup-s "$warmup" --sessions "$sessions" --session-ttl-s "$session_ttl"
  fi
  if ((w3_locks > 0)); then
    load "$name" "$@" --workload w3 --clients "$big_clients" --locks "$w3_locks"
  fi
}
if wants etcd; then
  run etcd "$((etcd_locks < locks ? etcd_locks : locks))" --target etcd \
    --etcd "$(IFS=,; echo "${etcd_endpoints[*]}")" --server-pid "$etcd_pids"
fi
if wants redis; then
  run redis "$locks" --target redis --redis "127.0.0.1:${port[6]}" --server-pid "$redis_pid"
fi
if wants lockplane; then
  run lockplane "$locks" --target lockplane --url "http://127.0.0.1:${port[7]}" \
    --api-key "$key" --server-pid "$lockplane_pids"
  if ((audit >= 2)); then
    # Rows still arriving after the load: wait until the count holds for 6 s (longer than
    # the consumer's longest pause between retries).
    load_end=$(date +%s.%N)
    last=-1 same=0
    while ((same < 12)); do
      rows=$(psql -qtA -h 127.0.0.1 -U postgres -c "SELECT count(*) FROM lock_audit" "$audit_db" 2>/dev/null || echo 0)
      if [[ $rows == "$last" ]]; then same=$((same + 1)); else same=0 last_change=$(date +%s.%N); fi
      last=$rows
      sleep 0.5
    done
    audit_summary=$(psql -qtA -h 127.0.0.1 -U postgres -F ' ' -c "SELECT count(*), count(DISTINCT (group_id, log_index, position)), round(extract(epoch FROM max(\"timestamp\") - min(\"timestamp\"))::numeric, 1) FROM lock_audit" "$audit_db")
    read -r audit_rows audit_distinct audit_span <<<"$audit_summary"
    audit_lag=$(python3 -c "print(f'{max(0.0, $last_change - $load_end):.1f}')")
    echo "audit: $audit_rows rows ($audit_distinct distinct events) over ${audit_span} s of commits; the last arrived ${audit_lag} s after the load ended"
  fi
fi

echo
echo "machine: $(nproc) cores, $(uname -m), $(free -g | awk '/^Mem:/ {print $2}') GiB; disk fsync $fsync_ms; etcd $(etcd --version | head -1 | awk '{print $3}'), redis $(redis-server --version | awk '{print $3}')"
if [[ -n ${audit_rows:-} ]]; then
  echo "audit trail: $audit_rows rows, $audit_distinct distinct, over ${audit_span} s of commits; last row ${audit_lag} s after the load"
fi
echo "command: SYSTEMS=\"$systems\" AUDIT=$audit CLIENTS=$clients DURATION=$duration WARMUP=$warmup WORKLOADS=\"${workloads[*]}\" READ_PERCENT=$read_percent LOCKS=$locks ETCD_LOCKS=$etcd_locks SESSIONS=$sessions SESSION_TTL=$session_ttl BIG_CLIENTS=$big_clients loadtest/compare.sh"
echo "server PIDs: etcd ${etcd_pids:-–}; redis ${redis_pid:-–}; lockplane ${lockplane_pids:-–} (cluster up, then its nodes and gateway, then the cache's Redis)"
python3 - "$results" <<'PY'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
print()
print("| workload | clients | system | per s | acquire p50 / p99 / p999 ms | read p50 / p99 ms | failures | overlaps | non-increasing tokens | versions back | Jain | server CPU µs/op (cores) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in sorted(runs, key=lambda r: (r["workload"], r.get("read_percent") or 0, r["clients"], r["target"])):
    a = r["acquire_ms"]
    jain = "–" if r["jain"] is None else f'{r["jain"]:.3f}'
    reads = "–" if r["read_ms"] is None else f'{r["read_ms"]["p50"]:.2f} / {r["read_ms"]["p99"]:.2f}'
    cpu = "–" if not r.get("server") else f'{r["server"]["cpu_us_per_op"]:.0f} ({r["server"]["cores"]:.2f})'
    workload = r["workload"] if r.get("read_percent") in (None, 70) else f'{r["workload"]} ({r["read_percent"]}% reads)'
    print(f'| {workload} | {r["clients"]} | {r["target"]} | {r["per_second"]:.0f} | '
          f'{a["p50"]:.2f} / {a["p99"]:.2f} / {a["p999"]:.2f} | {reads} | {r["failures"]} | {r["overlaps"]} | '
          f'{r["non_increasing_tokens"]} | {r.get("versions_backwards", 0)} | {jain} | {cpu} |')
shown = [r for r in runs if r.get("change_shown_ms")]
if shown:
    print()
    print("| W4 (Lockplane, cheapest reads) | clients | a grant or release shown to a status read after p50 / p99 / p999 ms |")
    print("|---|---|---|")
    for r in sorted(shown, key=lambda r: r["clients"]):
        c = r["change_shown_ms"]
        print(f'| {r["workload"]} | {r["clients"]} | {c["p50"]:.1f} / {c["p99"]:.1f} / {c["p999"]:.1f} |')
held = [r for r in runs if r.get("held")]
if held:
    print()
    print("| W3 | locks held | acquires/s | resident MiB per process after | bytes per held lock per process |")
    print("|---|---|---|---|---|")
    for r in held:
        rss = " / ".join(f"{m:.0f}" for m in r["server"]["rss_mib"]) if r.get("server") else "–"
        per = " / ".join(f"{b:.0f}" for b in r["held"]["bytes_per_lock"]) or "–"
        print(f'| {r["target"]} | {r["held"]["locks"]} | {r["per_second"]:.0f} | {rss} | {per} |')
beats = [r for r in runs if r.get("keepalives")]
if beats:
    print()
    print("| W5 | sessions | opened/s | keepalives/s | keepalive p50 / p99 ms | lost | W1 cycles/s beside them | acquire p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in beats:
        k = r["keepalives"]
        print(f'| {r["target"]} | {k["sessions"]} | {k["opened_per_second"]:.0f} | {k["per_second"]:.0f} | '
              f'{k["latency_ms"]["p50"]:.2f} / {k["latency_ms"]["p99"]:.2f} | {k["sessions_lost"]} | '
              f'{r["per_second"]:.0f} | {r["acquire_ms"]["p99"]:.2f} |')
print()
print("| workload | clients | Lockplane per s | × etcd | × Redis |")
print("|---|---|---|---|---|")
by = {(r["workload"], r["clients"], r["target"]): r["per_second"] for r in runs}
for (w, c) in sorted({(r["workload"], r["clients"]) for r in runs}):
    lp = by.get((w, c, "lockplane"))
    if lp is None:
        continue
    ratio = lambda peer: "–" if not by.get((w, c, peer)) else f"{lp / by[(w, c, peer)]:.2f}"
    print(f"| {w} | {c} | {lp:.0f} | {ratio('etcd')} | {ratio('redis')} |")
PY
