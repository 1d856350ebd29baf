#!/usr/bin/env bash
# Prints the path of the Kafka-protocol broker the audit tests run against: tansu 0.6.0
# (crates.io; newer versions need a newer rustc), installed once into
# ${LOCKPLANE_TOOLS_DIR:-~/.cache/lockplane}/tansu-0.6.0 and reused after that. The first
# install compiles it: about 11 minutes on 2 idle cores, up to 25 when they are busy.
set -euo pipefail
tools=${LOCKPLANE_TOOLS_DIR:-$HOME/.cache/lockplane}
root=$tools/tansu-0.6.0
bin=$root/bin/tansu
if [[ ! -x $bin ]]; then
  echo "installing tansu 0.6.0 into $root (once; cargo install takes 11-25 minutes on 2 cores)" >&2
  mkdir -p "$tools"
  # Only these features give it a storage engine that survives a restart (sqlite).
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql \
    --root "$root" --target-dir "$tools/tansu-build" >&2
  rm -rf "$tools/tansu-build"
fi
"$bin" --version >/dev/null
echo "$bin"
