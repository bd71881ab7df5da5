#!/bin/sh
# Container entrypoint: `serve` (the default) applies migrations, then execs
# `tickforge serve` so the server is PID 1 and receives SIGTERM/SIGHUP
# directly. Any other argument list is passed to tickforge unchanged.
#
# Migrations use TICKFORGE_MIGRATE_DATABASE_URL when set (docker-compose points
# it at PostgreSQL directly: DDL and its locks do not belong behind PgBouncer's
# transaction pooling), else DATABASE_URL. They are retried while the database
# comes up; migrations are idempotent, so several replicas starting together
# is safe. TICKFORGE_SKIP_MIGRATE=1 skips them.
set -eu

if [ "${1:-serve}" != serve ]; then
    exec tickforge "$@"
fi
[ $# -gt 0 ] && shift

if [ "${TICKFORGE_SKIP_MIGRATE:-0}" != 1 ]; then
    tries=${TICKFORGE_MIGRATE_RETRIES:-10}
    n=1
    until DATABASE_URL="${TICKFORGE_MIGRATE_DATABASE_URL:-${DATABASE_URL:-}}" tickforge migrate; do
        if [ "$n" -ge "$tries" ]; then
            echo "entrypoint: tickforge migrate failed $n times; giving up" >&2
            exit 1
        fi
        echo "entrypoint: tickforge migrate failed (attempt $n/$tries); retrying in 3s" >&2
        n=$((n + 1))
        sleep 3
    done
fi

exec tickforge serve "$@"
