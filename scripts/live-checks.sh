#!/usr/bin/env bash
# Checks against live servers:
# - fuzzes the REST API with schemathesis against a live `lockplane dev`, from the OpenAPI
#   document it serves: no 5xx, and every answer's status, content type and body conform to
#   the document (LOCKPLANE_FUZZ_SEED and LOCKPLANE_FUZZ_EXAMPLES change the run);
# - a short smoke run of the load generator (W1, W2, W4, W5 for a second each, W3 with 200
#   locks) against that server (with its PID, so CPU and memory are read) and against Redis,
#   failing on any overlap of holders or non-increasing token in Lockplane, so the tool
#   never rots (the real comparison is `loadtest/compare.sh`, not CI).
# schemathesis (PyPI) is installed once into a cached virtualenv; Redis is installed or
# started when missing (scripts/ensure-redis.sh). The dev server runs on free loopback
# ports with a throwaway data directory and is stopped (by its PID) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
venv="${LOCKPLANE_CACHE:-$HOME/.cache/lockplane}/schemathesis-$version"
if [[ ! -x "$venv/bin/schemathesis" ]]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "installing python3-venv (Debian) for schemathesis"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
    $sudo apt-get update -q && $sudo apt-get install -y -q python3-venv
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

cargo build --locked --quiet -p lockplane -p lockplane-loadtest
data=$(mktemp -d)
read -r http node < <(python3 - <<'PY'
import socket
ports = []
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
    ports.append(str(s.getsockname()[1]))
print(" ".join(ports))
PY
)
key="api-fuzz-$(date +%s%N)"
scripts/ensure-redis.sh
"${CARGO_TARGET_DIR:-target}/debug/lockplane" dev --http "127.0.0.1:$http" --node-listen "127.0.0.1:$node" \
  --data-dir "$data" --api-key "$key" \
  --redis "${LOCKPLANE_TEST_REDIS:-redis://127.0.0.1:6379}" --cache-prefix "live-checks-$key:" \
  >"$data.log" 2>&1 &
dev=$!
cleanup() {
  kill -TERM "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  rm -rf "$data" "$data.log"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
  if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "http://127.0.0.1:$http/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$dev" 2>/dev/null; then
    echo "lockplane dev exited:" >&2
    cat "$data.log" >&2
    exit 1
  fi
  sleep 0.1
done

echo "schemathesis against lockplane dev"
SCHEMATHESIS_HOOKS=hooks PYTHONPATH=scripts/api-fuzz "$venv/bin/schemathesis" run \
  "http://127.0.0.1:$http/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${LOCKPLANE_FUZZ_EXAMPLES:-100}" \
  --seed "${LOCKPLANE_FUZZ_SEED:-20261122}" \
  --request-timeout 20 \
  --warnings off

bin="${CARGO_TARGET_DIR:-target}/debug"
smoke=(--workload w1 --workload w2 --workload w4 --workload w5 --workload w3 --clients 1,4
  --duration-s 1 --warmup-s 0.2 --locks 200 --sessions 20 --session-ttl-s 3)
echo "load generator smoke run: lockplane dev"
"$bin/lockplane-loadtest" --target lockplane --url "http://127.0.0.1:$http" --api-key "$key" \
  "${smoke[@]}" --server-pid "$dev" --require-safe
echo "load generator smoke run: redis"
"$bin/lockplane-loadtest" --target redis --redis 127.0.0.1:6379 "${smoke[@]}"
