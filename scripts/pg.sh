#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for development and tests.
#   scripts/pg.sh init|start|stop|status|url|psql [args]
# Data lives in var/pg (a link to a folder the postgres user can reach when
# the checkout itself is not reachable by it); its own port, derived from the
# checkout's path so two clones never collide, and its own unix socket.
# Every command is idempotent: a second start is a no-op.
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
    as_pg "$bin/initdb" -D "$data/db" -U postgres -A trust -E UTF8 --no-locale >"$data/initdb.log" 2>&1 ||
        { cat "$data/initdb.log" >&2; exit 1; }
    as_pg tee -a "$data/db/postgresql.conf" >/dev/null <<EOF
# tickforge private cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
log_min_messages = warning
EOF
}

start() {
    init
    if ! running; then
        as_pg mkdir -p "$sock"
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
start) start ;;
stop) stop ;;
status) if running; then echo "running on port $port ($sock)"; else echo "stopped"; exit 3; fi ;;
url) url ;;
port) echo "$port" ;;
psql) shift; exec "$bin/psql" "$(url)" "$@" ;;
*) echo "usage: $0 init|start|stop|status|url|port|psql" >&2; exit 2 ;;
esac
