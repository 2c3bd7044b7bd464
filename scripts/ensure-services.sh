#!/usr/bin/env bash
# Make sure the services of the multi-process tests run: Redis on 127.0.0.1:6379 and
# PostgreSQL on 127.0.0.1:5432 with a database "test" the current user may use.
# Starts them where installed but stopped; installs them (Debian) where missing.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
apt_updated=""
install() {
  [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

wait_for() {  # wait_for <what> <command...>
  local what=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "$what did not come up" >&2; return 1
}

# -- Redis ------------------------------------------------------------------------------
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  command -v redis-server >/dev/null 2>&1 || install redis-server
  echo "starting Redis on 127.0.0.1:6379"
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis-cli -h 127.0.0.1 ping
fi

# -- PostgreSQL -------------------------------------------------------------------------
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  command -v pg_ctlcluster >/dev/null 2>&1 || install postgresql
  echo "starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
fi
if ! psql -h 127.0.0.1 -d test -c 'select 1' >/dev/null 2>&1; then
  echo "creating PostgreSQL role $(id -un) and database test"
  as_postgres psql -q -c "CREATE ROLE \"$(id -un)\" SUPERUSER LOGIN" 2>/dev/null || true
  as_postgres createdb -O "$(id -un)" test 2>/dev/null || true
  psql -h 127.0.0.1 -d test -c 'select 1' >/dev/null || {
    echo "cannot reach PostgreSQL database 'test' on 127.0.0.1:5432 as $(id -un)" >&2; exit 1; }
fi
