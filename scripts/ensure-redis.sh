#!/usr/bin/env bash
# Makes sure a Redis answers on 127.0.0.1:6379: installs Debian's redis-server when it is
# missing and starts one (no persistence) when none answers. A Redis already running is
# used as it is.
set -euo pipefail

ping() {
  python3 - <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", 6379), timeout=1)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

if ping; then exit 0; fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian)"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
  $sudo apt-get update -q && $sudo apt-get install -y -q redis-server
fi
if ! ping; then
  echo "starting redis-server on 127.0.0.1:6379"
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes
  for _ in $(seq 1 50); do
    if ping; then exit 0; fi
    sleep 0.1
  done
  echo "redis-server did not answer on 127.0.0.1:6379" >&2
  exit 1
fi
