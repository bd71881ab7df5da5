#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for development and tests.
#   scripts/pg.sh init|start [--fast]|stop|status|url|psql [args]
# Data lives in var/pg (a link to a folder the postgres user can reach when
# the checkout itself is not reachable by it); its own port, derived from the
# checkout's path so two clones never collide, and its own unix socket.
# Every command is idempotent: a second start is a no-op.
# Durable by default (fsync on: `make run` serves from it as it is);
# `start --fast` turns fsync off for tests, `start` turns it back on.
# No TCP: clients come through the socket directory, which only the
# cluster's owner (and root) can enter, so no other local user gets in.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
port=${TF_PGPORT:-$((20000 + $(printf '%s' "$root" | cksum | cut -d' ' -f1) % 20000))}
db=${TF_PGDATABASE:-tickforge}
link=$root/var/pg

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Where the cluster lives: var/pg itself when the cluster's owner can reach
# it, otherwise a private folder under /var/tmp that var/pg points to.
datadir() {
    mkdir -p "$root/var"
    if [ -L "$link" ] || [ -d "$link" ]; then
        readlink -f "$link"
        return
    fi
    if [ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$root/var" 2>/dev/null; then
        mkdir -p "$link"
        [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$link"
        echo "$link"
    else
        local d
        d=/var/tmp/tickforge-pg-$(printf '%s' "$root" | cksum | cut -d' ' -f1)
        mkdir -p "$d"
        chown postgres:postgres "$d"
        chmod 700 "$d"
        ln -sfn "$d" "$link"
        echo "$d"
    fi
}

data=$(datadir)
sock=$data/run

url() { echo "postgresql://postgres@/$db?host=$sock&port=$port"; }

running() { as_pg "$bin/pg_ctl" -D "$data/db" status >/dev/null 2>&1; }

init() {
    [ -f "$data/db/PG_VERSION" ] && return 0
    as_pg mkdir -p "$data/db" "$sock"
    as_pg "$bin/initdb" -D "$data/db" -U postgres --auth-local=trust --auth-host=reject -E UTF8 --no-locale >"$data/initdb.log" 2>&1 ||
        { cat "$data/initdb.log" >&2; exit 1; }
    as_pg tee -a "$data/db/postgresql.conf" >/dev/null <<EOF
# tickforge private cluster
port = $port
unix_socket_directories = '$sock'
max_connections = 200
shared_buffers = 256MB
max_wal_size = 4GB
log_min_messages = warning
EOF
}

# Settings pg.sh owns, rewritten on every start (so a cluster made by an older
# pg.sh gets them too): the later include wins over postgresql.conf.
secure() {
    local mode=$1 f=on
    grep -q "^include_if_exists = 'tickforge.conf'" "$data/db/postgresql.conf" ||
        echo "include_if_exists = 'tickforge.conf'" | as_pg tee -a "$data/db/postgresql.conf" >/dev/null
    [ "$mode" = fast ] && f=off
    as_pg tee "$data/db/tickforge.conf" >/dev/null <<EOF
# written by scripts/pg.sh start ($mode): do not edit
listen_addresses = ''
fsync = $f
synchronous_commit = $f
full_page_writes = $f
# room for the benchmarks' peers: pgbench -c 512 beside the server's pool
max_connections = 600
EOF
    as_pg tee "$data/db/pg_hba.conf" >/dev/null <<EOF
# scripts/pg.sh: the unix socket only (its directory is mode 0700)
local all all trust
EOF
    as_pg mkdir -p "$sock"
    as_pg chmod 700 "$sock"
}

start() {
    init
    secure "$1"
    if running; then
        # fsync and pg_hba take a reload; listen_addresses of a cluster
        # started by an older pg.sh changes at its next restart
        as_pg "$bin/pg_ctl" -D "$data/db" reload >/dev/null
    else
        as_pg "$bin/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w -t 60 start >/dev/null ||
            { tail -20 "$data/postgres.log" >&2; exit 1; }
    fi
    "$bin/psql" "postgresql://postgres@/postgres?host=$sock&port=$port" -qAtc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
        "$bin/createdb" -h "$sock" -p "$port" -U postgres "$db"
}

stop() {
    running && as_pg "$bin/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null
    return 0
}

case "${1:-}" in
init) init ;;
start)
    case "${2:-}" in
    --fast) start fast ;;
    "") start durable ;;
    *) echo "usage: $0 start [--fast]" >&2; exit 2 ;;
    esac ;;
stop) stop ;;
status) if running; then echo "running on port $port ($sock)"; else echo "stopped"; exit 3; fi ;;
url) url ;;
port) echo "$port" ;;
psql) shift; exec "$bin/psql" "$(url)" "$@" ;;
*) echo "usage: $0 init|start [--fast]|stop|status|url|port|psql" >&2; exit 2 ;;
esac
