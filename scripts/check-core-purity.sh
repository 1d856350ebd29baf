#!/usr/bin/env bash
# lock-core must stay pure: std, serde and thiserror only (and the proc-macro crates they
# are built with). Any other crate in its dependency tree fails this check, with the
# runtime crates the rule exists for (tokio, openraft, tonic, axum, ...) named first.
set -euo pipefail
cd "$(dirname "$0")/.."

allowed='^(lock-core|serde|serde_core|serde_derive|thiserror|thiserror-impl|proc-macro2|quote|syn|unicode-ident)$'
crates=$(cargo tree --locked -p lock-core -e normal,build --prefix none --format '{p}' \
  | awk '{print $1}' | sort -u)

forbidden=$(grep -E '^(tokio|openraft|tonic|axum|hyper|mio|redis|rdkafka|sqlx)' <<<"$crates" || true)
unexpected=$(grep -vE "$allowed" <<<"$crates" || true)
if [[ -n "$forbidden$unexpected" ]]; then
  echo "lock-core must depend on std, serde and thiserror only; it pulls in:" >&2
  sort -u <<<"$forbidden"$'\n'"$unexpected" | sed '/^$/d; s/^/  /' >&2
  exit 1
fi
echo "lock-core depends only on: $(grep -v '^lock-core$' <<<"$crates" | tr '\n' ' ')"
