#!/usr/bin/env bash
# Makes sure a PostgreSQL answers on 127.0.0.1:5432 for user postgres without a password
# (the audit tests create and drop a database each): installs Debian's postgresql when it
# is missing (and then trusts loopback connections, as the machines we test on do) and
# starts the cluster when it is down. A server already answering is used as it is.
set -euo pipefail

ready() { pg_isready -h 127.0.0.1 -p 5432 -q >/dev/null 2>&1; }

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
if command -v pg_isready >/dev/null 2>&1 && ready; then exit 0; fi
installed=0
if ! ls -d /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "installing postgresql (Debian)"
  $sudo apt-get update -q && $sudo apt-get install -y -q postgresql
  installed=1
fi
version=$(ls /etc/postgresql | sort -V | tail -1)
if ((installed)); then
  hba=/etc/postgresql/$version/main/pg_hba.conf
  $sudo sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
fi
echo "starting PostgreSQL $version (main) on 127.0.0.1:5432"
$sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
if ((installed)); then $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true; fi
for _ in $(seq 1 60); do
  if ready; then exit 0; fi
  sleep 0.5
done
echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2
exit 1
