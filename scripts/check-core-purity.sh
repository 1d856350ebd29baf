#!/usr/bin/env bash
# The pure crates must stay pure: lock-core (the lock state machine) on std, serde and
# thiserror only; shard-map (the shard map) on those plus hashring and sha2 with their own
# dependencies (pure hashing) — and the proc-macro crates they are built with. Any other crate in their
# dependency trees fails this check, with the runtime crates the rule exists for (tokio,
# openraft, tonic, axum, ...) named first.
set -euo pipefail
cd "$(dirname "$0")/.."

base='serde|serde_core|serde_derive|thiserror|thiserror-impl|proc-macro2|quote|syn|unicode-ident'
declare -A allowed=(
  [lock-core]="^(lock-core|$base)\$"
  [shard-map]="^(shard-map|hashring|siphasher|sha2|digest|block-buffer|crypto-common|generic-array|typenum|cpufeatures|cfg-if|version_check|$base)\$"
)
for crate in lock-core shard-map; do
  crates=$(cargo tree --locked -p "$crate" -e normal,build --prefix none --format '{p}' \
    | awk '{print $1}' | sort -u)
  forbidden=$(grep -E '^(tokio|openraft|tonic|axum|hyper|mio|redis|rdkafka|sqlx)' <<<"$crates" || true)
  unexpected=$(grep -vE "${allowed[$crate]}" <<<"$crates" || true)
  if [[ -n "$forbidden$unexpected" ]]; then
    echo "$crate must stay pure; it pulls in:" >&2
    sort -u <<<"$forbidden"$'\n'"$unexpected" | sed '/^$/d; s/^/  /' >&2
    exit 1
  fi
  echo "$crate depends only on: $(grep -v "^$crate\$" <<<"$crates" | tr '\n' ' ')"
done
