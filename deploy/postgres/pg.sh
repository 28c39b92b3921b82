#!/usr/bin/env bash
# Installs (from Debian's packages) and starts a local PostgreSQL for tests and CI, and creates
# the herald role and databases. Usage: deploy/postgres/pg.sh install|start|stop|url
# Settings: PG_PORT (5432), PG_PASSWORD (herald).
set -euo pipefail
PORT="${PG_PORT:-5432}"
PASS="${PG_PASSWORD:-herald}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

as_postgres() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$*"; else sudo -u postgres bash -c "$*"; fi; }

install() {
  if command -v pg_ctlcluster >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    return 0
  fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q postgresql postgresql-contrib >/dev/null
}

start() {
  install
  local ver; ver="$(ls /usr/lib/postgresql | sort -n | tail -1)"
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$ver main$"; then
    $SUDO pg_createcluster "$ver" main -p "$PORT" >/dev/null
  fi
  $SUDO pg_ctlcluster "$ver" main start 2>/dev/null || true
  for _ in $(seq 1 100); do
    as_postgres "psql -p $PORT -qAtc 'select 1'" >/dev/null 2>&1 && break; sleep 0.2
  done
  as_postgres "psql -p $PORT -qAtc \"select 1 from pg_roles where rolname='herald'\"" | grep -q 1 ||
    as_postgres "psql -p $PORT -qc \"create role herald login createdb password '$PASS'\""
  for db in herald herald_test; do
    as_postgres "psql -p $PORT -qAtc \"select 1 from pg_database where datname='$db'\"" | grep -q 1 ||
      as_postgres "createdb -p $PORT -O herald $db"
  done
  echo "postgres: up on 127.0.0.1:$PORT ($(url))"
}

stop() {
  local ver; ver="$(ls /usr/lib/postgresql | sort -n | tail -1)"
  $SUDO pg_ctlcluster "$ver" main stop || true
}

url() { echo "postgresql+psycopg://herald:$PASS@127.0.0.1:$PORT/herald_test"; }

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 install|start|stop|url" >&2; exit 2 ;;
esac
