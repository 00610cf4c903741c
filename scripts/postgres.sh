#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks: a unix socket in a temporary directory, no TCP.
#
#   scripts/postgres.sh start DIR     initdb + pg_ctl start in DIR (created), a database "rota";
#                                     prints the URL (postgres://postgres@/rota?host=DIR)
#   scripts/postgres.sh stop DIR      stops the cluster and deletes DIR
#   scripts/postgres.sh restart DIR   pg_ctl restart -m fast (tests of a server restart)
#
# Installs Debian's postgresql package when no server binaries are found (as root, or through sudo).
# PostgreSQL refuses to run as root: as root, the cluster runs as the postgres user the package creates.
set -euo pipefail

bindir() {
  local b
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$b" ] || [ ! -x "$b/initdb" ]; then
    echo "postgres.sh: installing Debian's postgresql package" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq postgresql >&2
    # The package starts its own cluster on the default port; the throwaway one needs none of it.
    $sudo pg_ctlcluster --help >/dev/null 2>&1 && for c in $(ls -d /etc/postgresql/*/* 2>/dev/null); do
      $sudo pg_ctlcluster "$(basename "$(dirname "$c")")" "$(basename "$c")" stop >/dev/null 2>&1 || true
    done
    b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  fi
  if [ -z "$b" ] || [ ! -x "$b/initdb" ]; then
    echo "postgres.sh: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin" >&2
    exit 1
  fi
  echo "$b"
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}

cmd=${1:-}; dir=${2:-}
case "$cmd" in
  start)
    [ -n "$dir" ] || { echo "usage: postgres.sh start DIR" >&2; exit 2; }
    B=$(bindir)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    as_owner "$B/initdb -D '$dir/data' -U postgres -A trust --no-sync -E UTF8 >'$dir/initdb.log' 2>&1" \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    # fsync stays on (the server's default): the durability tests need it.
    as_owner "$B/pg_ctl -D '$dir/data' -l '$dir/log' -w -t 60 -o \"-k '$dir' -c listen_addresses='' -c max_connections=300\" start >/dev/null" \
      || { tail -20 "$dir/log" >&2; exit 1; }
    "$B/psql" -h "$dir" -U postgres -qAtX -c 'CREATE DATABASE rota' >/dev/null
    echo "postgres://postgres@/rota?host=$dir"
    ;;
  stop)
    [ -n "$dir" ] || { echo "usage: postgres.sh stop DIR" >&2; exit 2; }
    B=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [ -n "$B" ] && [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$B/pg_ctl -D '$dir/data' -m immediate -w stop >/dev/null 2>&1" || true
    fi
    rm -rf "$dir"
    ;;
  restart)
    [ -n "$dir" ] || { echo "usage: postgres.sh restart DIR" >&2; exit 2; }
    B=$(bindir)
    as_owner "$B/pg_ctl -D '$dir/data' -l '$dir/log' -w -t 60 -m fast -o \"-k '$dir' -c listen_addresses='' -c max_connections=300\" restart >/dev/null"
    ;;
  *)
    echo "usage: postgres.sh start|stop|restart DIR" >&2; exit 2 ;;
esac
