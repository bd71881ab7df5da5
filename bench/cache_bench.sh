#!/usr/bin/env bash
# Shared-cache benchmark (run by bench/run.sh, or alone: bash bench/cache_bench.sh).
# 1. bench/cache_mt.c: lock contention of core/cache.c, one mutex against
#    16 independent caches picked by key hash (what sharding would give).
# 2. bench/cache_bench.lua inside `tickforge run`: get_or_load hits against
#    the tf.db queries they replace, on the real PostgreSQL (DATABASE_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-cc}
OUT=${TMPDIR:-/tmp}/tf_cache_bench
mkdir -p "$OUT"
make --no-print-directory "$BUILD/libtfcore.a" "$BUILD/tickforge" >/dev/null
$CC -std=c11 -D_GNU_SOURCE -O2 -iquote core bench/cache_mt.c "$BUILD/libtfcore.a" \
    $(pkg-config --libs lua5.4 libmicrohttpd libpq libcjson) -lm -lpthread -o "$OUT/cache_mt"
echo "command: bash bench/cache_bench.sh   ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
"$OUT/cache_mt"
echo
TF_BIN=${TF_BIN:-$PWD/$BUILD/tickforge}
DATABASE_URL=${DATABASE_URL:-$(scripts/pg.sh url)}
export DATABASE_URL
echo "command: $TF_BIN run bench/cache_bench.lua ${CACHE_BENCH_N:-5000}"
"$TF_BIN" run bench/cache_bench.lua "${CACHE_BENCH_N:-5000}"
