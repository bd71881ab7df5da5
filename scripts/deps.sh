#!/usr/bin/env bash
# Installs the Debian packages tickforge needs to build, test and run, and
# only those that are missing: a second run does nothing and needs no network.
# Used by `make deps` (and so by `make run` and `make test`). Also fetches
# the status page's chart library from the npm registry into build/ui/ (never
# committed); `scripts/deps.sh --browser` (make test) adds Debian's chromium
# for the headless-browser test of /ui.
set -euo pipefail
cd "$(dirname "$0")/.."

# TradingView lightweight-charts (Apache-2.0), served by plugins/ui as /ui/lightweight-charts.js
CHARTS_VERSION=4.2.3
CHARTS_JS=build/ui/lightweight-charts.standalone.production.js
fetch_charts() {
    [ -s "$CHARTS_JS" ] && grep -q "$CHARTS_VERSION" build/ui/VERSION 2>/dev/null && return 0
    if ! command -v npm >/dev/null; then
        echo "deps: npm not found: /ui works without its chart until lightweight-charts is in $CHARTS_JS" >&2
        return 0
    fi
    echo "deps: fetching lightweight-charts@$CHARTS_VERSION from the npm registry into build/ui/" >&2
    mkdir -p build/ui
    if npm install --silent --no-save --no-audit --no-fund --prefix build/ui "lightweight-charts@$CHARTS_VERSION" >&2; then
        cp build/ui/node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js "$CHARTS_JS"
        cp build/ui/node_modules/lightweight-charts/LICENSE build/ui/LICENSE.lightweight-charts 2>/dev/null || true
        echo "lightweight-charts $CHARTS_VERSION" >build/ui/VERSION
    else
        echo "deps: npm install lightweight-charts failed: /ui shows no chart until it succeeds" >&2
    fi
}

# --browser: chromium for tests/integration/ui_spec.lua (skipped there with a
# clear line when it cannot be installed)
if [ "${1:-}" = "--browser" ]; then
    command -v chromium >/dev/null && exit 0
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "deps: installing chromium for the headless-browser test" >&2
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; } ||
        echo "deps: chromium not installable: the browser test of /ui will be skipped" >&2
    exit 0
fi

fetch_charts

pkgs=(
    build-essential pkg-config
    liblua5.4-dev lua5.4 libmicrohttpd-dev libpq-dev libcjson-dev
    postgresql-15 postgresql-client-15 pgbouncer
    lua-busted lua-socket
    lua-check
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
