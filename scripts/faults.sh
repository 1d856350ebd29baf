#!/usr/bin/env bash
# A fault run over real processes (lockplane-faults): three nodes and a gateway, each on its
# own network host (Linux network namespaces), with partitions, pauses, kill -9, full disks
# (each node's data on its own tmpfs), clock jumps and a paused client; the history is
# checked for linearizability and fencing. Needs root (directly or
# through sudo) and iproute2, which it installs from Debian when missing. Arguments go to
# lockplane-faults (`--duration`, `--seed`, `--faults`, `--strict`; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "faults.sh: network namespaces need root; run as root or install sudo" >&2
    exit 1
  fi
  sudo=sudo
fi
if ! command -v ip >/dev/null 2>&1; then
  echo "==> installing iproute2 (Debian)"
  $sudo apt-get update -q && $sudo apt-get install -y -q iproute2
fi

# Namespaces left by a run that was killed before it could delete them (`lpf<pid>-…`).
for ns in $($sudo ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^lpf[0-9]+-' || true); do
  pid=${ns#lpf}
  pid=${pid%%-*}
  if [[ ! -d /proc/$pid ]]; then
    # Processes of that run still in it (a node it had paused, say) go with it.
    for left in $($sudo ip netns pids "$ns" 2>/dev/null); do
      $sudo kill -CONT "$left" 2>/dev/null || true
      $sudo kill -9 "$left" 2>/dev/null || true
    done
    $sudo ip netns del "$ns" 2>/dev/null || true
  fi
done

# Node data directories (each a tmpfs) left mounted by a killed run
# (`…/lockplane-faults-<seed>-<pid>/node-<id>`).
while read -r _ mnt fstype _; do
  [[ $fstype == tmpfs && $mnt =~ lockplane-faults-[0-9]+-([0-9]+)/node-[0-9]+$ ]] || continue
  if [[ ! -d /proc/${BASH_REMATCH[1]} ]]; then
    $sudo umount -l "$mnt" || true
  fi
done </proc/mounts

cargo build --locked -q -p lockplane -p lockplane-faults
$sudo target/debug/lockplane-faults --lockplane target/debug/lockplane "$@"
