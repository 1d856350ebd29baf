#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, the lock-core purity rule, one
# version per dependency, and every test of the workspace. Works on a fresh Debian machine
# that has only Rust (rustup).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust first (https://rustup.rs), then run $0 again" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    step "installing the $component component"
    rustup component add "$component"
  fi
done

# Debian packages the build and the live checks need: python3 (schemathesis, scripts),
# protoc (etcd-client, the load generator's etcd target, compiles etcd's protos), Redis
# and Prometheus.
missing=()
if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# Prometheus and promtool: the metrics tests scrape a cluster with a real Prometheus.
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
if ((${#missing[@]})); then
  step "installing ${missing[*]} (Debian)"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
  $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (clippy, warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "lock-core stays pure"
scripts/check-core-purity.sh

step "one version of every dependency"
allowed=$(sed 's/#.*//; /^[[:space:]]*$/d; s/[[:space:]]//g' scripts/allowed-duplicates)
# Names built in two or more versions (the same version listed twice is one crate built
# for the host and the target, not a duplicate).
duplicated=$(cargo tree --locked --workspace --duplicates -e normal,build,dev 2>/dev/null \
  | grep -E '^[a-z]' | awk '{print $1, $2}' | sort -u | awk '{print $1}' | uniq -d)
unexpected=$(comm -23 <(echo "$duplicated" | sed '/^$/d') <(echo "$allowed" | sort -u))
if [[ -n "$unexpected" ]]; then
  echo "built in more than one version (see docs/decisions/0005 and scripts/allowed-duplicates):" >&2
  echo "$unexpected" | sed 's/^/  /' >&2
  cargo tree --locked --workspace --duplicates -e normal,build,dev >&2
  exit 1
fi

step "alert rules (promtool check rules; promtool test rules fires and clears each alert)"
promtool check rules infra/prometheus/alerts.yml
(cd infra/prometheus && promtool test rules alerts_test.yml)

step "dashboards (dashboards/*.json are what dashboards/generate.py makes)"
scripts/dashboards.sh check

# Redis for the status-cache tests: the machine's server on 6379 (started if down), and a
# 3-master Redis Cluster of the suite's own on free ports, stopped (by PID) on exit.
step "Redis (127.0.0.1:6379) and a throwaway Redis Cluster"
scripts/ensure-redis.sh
redis_cluster_dir=$(mktemp -d /tmp/lockplane-redis-cluster.XXXXXX)
trap 'scripts/redis-cluster.sh stop "$redis_cluster_dir"' EXIT
LOCKPLANE_TEST_REDIS=redis://127.0.0.1:6379
LOCKPLANE_TEST_REDIS_CLUSTER=$(scripts/redis-cluster.sh start "$redis_cluster_dir")
export LOCKPLANE_TEST_REDIS LOCKPLANE_TEST_REDIS_CLUSTER
echo "Redis Cluster: $LOCKPLANE_TEST_REDIS_CLUSTER"

# PostgreSQL for the audit consumer's tests (each test creates a database of its own).
step "PostgreSQL (127.0.0.1:5432)"
scripts/ensure-postgres.sh
LOCKPLANE_TEST_POSTGRES=${LOCKPLANE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432}
export LOCKPLANE_TEST_POSTGRES

# The Kafka-protocol broker of the audit tests: tansu 0.6.0, installed once and cached
# (scripts/ensure-tansu.sh); each test starts its own on a free port and stops it by PID.
step "Kafka-protocol broker (tansu 0.6.0, installed once)"
LOCKPLANE_TEST_TANSU=$(scripts/ensure-tansu.sh)
export LOCKPLANE_TEST_TANSU
echo "tansu: $LOCKPLANE_TEST_TANSU"

step "tests (lock-core model: ${LOCKPLANE_MODEL_CASES:-10000} cases)"
cargo test --locked --workspace

step "live checks (schemathesis against lockplane dev; load generator smoke runs)"
scripts/live-checks.sh

# A short fault run over real processes on separate network hosts (about three minutes:
# long enough for every kind of fault once; see docs/reliability.md). LOCKPLANE_FAULT_SEED
# replays another seed.
step "fault run (lockplane-faults, seed ${LOCKPLANE_FAULT_SEED:-12})"
scripts/faults.sh --duration 150 --seed "${LOCKPLANE_FAULT_SEED:-12}"
