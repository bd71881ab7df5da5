#!/bin/sh
# Runs once, when the postgres image initialises an empty volume: creates the
# role tickforge uses, which owns its database but is not a superuser (the
# image's POSTGRES_USER stays the only superuser). TimescaleDB, when the
# image has it, is created here because only a superuser may.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_user="$TICKFORGE_DB_USER" -v app_password="$TICKFORGE_DB_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER DATABASE :"db" OWNER TO :"app_user";
ALTER SCHEMA public OWNER TO :"app_user";
SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS has_tsdb \gset
\if :has_tsdb
CREATE EXTENSION IF NOT EXISTS timescaledb;
\endif
SQL
