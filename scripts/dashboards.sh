#!/usr/bin/env bash
# The Grafana dashboards are generated from dashboards/generate.py with Grafana's
# foundation SDK (PyPI, the version in dashboards/requirements.txt), installed once in a
# venv under ${LOCKPLANE_TOOLS_DIR:-~/.cache/lockplane}.
#
#   scripts/dashboards.sh          regenerate dashboards/*.json
#   scripts/dashboards.sh check    fail if the committed JSON is not what the script makes
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${LOCKPLANE_TOOLS_DIR:-$HOME/.cache/lockplane}
sdk=$(grep -v '^#' dashboards/requirements.txt | tr -d '[:space:]')
venv=$tools/dashboards-venv-${sdk//[^A-Za-z0-9.]/_}
if ! "$venv/bin/python" -c 'import grafana_foundation_sdk' >/dev/null 2>&1; then
  echo "installing $sdk into $venv (once)" >&2
  # Built aside and moved into place whole: a failed install leaves nothing half-made.
  rm -rf "$venv" "$venv.partial"
  mkdir -p "$tools"
  python3 -m venv "$venv.partial"
  "$venv.partial/bin/pip" install -q -r dashboards/requirements.txt
  mv "$venv.partial" "$venv"
fi
case "${1:-generate}" in
  generate)
    "$venv/bin/python" dashboards/generate.py dashboards
    ;;
  check)
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    "$venv/bin/python" dashboards/generate.py "$out"
    for file in "$out"/*.json; do
      if ! diff -u "dashboards/$(basename "$file")" "$file"; then
        echo "dashboards/$(basename "$file") is not what dashboards/generate.py makes: run scripts/dashboards.sh" >&2
        exit 1
      fi
    done
    extra=$(comm -23 <(cd dashboards && ls *.json | sort) <(cd "$out" && ls *.json | sort))
    if [[ -n $extra ]]; then
      echo "dashboards/ holds JSON the generator does not make: $extra" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 [generate|check]" >&2
    exit 64
    ;;
esac
