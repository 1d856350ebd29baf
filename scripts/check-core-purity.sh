#!/usr/bin/env bash
# The pure crates — lock-core (the lock state machine) and ring (the shard map) — must stay
# pure: std, serde and thiserror only (and the proc-macro crates they are built with). Any
# other crate in their dependency trees fails this check, with the runtime crates the rule
# exists for (tokio, openraft, tonic, axum, ...) named first.
set -euo pipefail
cd "$(dirname "$0")/.."

allowed='^(lock-core|ring|serde|serde_core|serde_derive|thiserror|thiserror-impl|proc-macro2|quote|syn|unicode-ident)$'
for crate in lock-core ring; do
  crates=$(cargo tree --locked -p "$crate" -e normal,build --prefix none --format '{p}' \
    | awk '{print $1}' | sort -u)
  forbidden=$(grep -E '^(tokio|openraft|tonic|axum|hyper|mio|redis|rdkafka|sqlx)' <<<"$crates" || true)
  unexpected=$(grep -vE "$allowed" <<<"$crates" || true)
  if [[ -n "$forbidden$unexpected" ]]; then
    echo "$crate must depend on std, serde and thiserror only; it pulls in:" >&2
    sort -u <<<"$forbidden"$'\n'"$unexpected" | sed '/^$/d; s/^/  /' >&2
    exit 1
  fi
  echo "$crate depends only on: $(grep -v "^$crate\$" <<<"$crates" | tr '\n' ' ')"
done
