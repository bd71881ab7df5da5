#!/usr/bin/env bash
# Installs the Debian packages tickforge needs to build, test and run, and
# only those that are missing: a second run does nothing and needs no network.
# Used by `make deps` (and so by `make run` and `make test`).
set -euo pipefail

pkgs=(
    build-essential pkg-config
    liblua5.4-dev lua5.4 libmicrohttpd-dev libpq-dev libcjson-dev
    postgresql-15 postgresql-client-15 pgbouncer
    lua-busted lua-socket
    wrk curl bc docker-compose cppcheck
    clang libclang-rt-14-dev
)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
