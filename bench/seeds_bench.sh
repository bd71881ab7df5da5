#!/usr/bin/env bash
# The seed plugins under wrk: GET /products/{id} with the catalog's cache on
# and off (two servers on one database, same product), against the seed's
# claims (003: Redis hit 2-5 ms, miss 50-100 ms; 002: ~20 ms dashboard
# latency), and GET /tp-capital/signals?limit=10 under 64 clients, cached
# and uncached. p50/p99 from wrk --latency; the ratio is what to keep.
#   BENCH_SECONDS=10 BENCH_THREADS=4 bash bench/seeds_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TF_BIN:-build/tickforge}
export DATABASE_URL=${DATABASE_URL:-$(scripts/pg.sh url)}
secs=${BENCH_SECONDS:-10}
threads=${BENCH_THREADS:-4}
key=bench-seeds-key-0001
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT

$BIN migrate >/dev/null 2>&1

# serve NAME CACHE(true|false): sets $port; the shipped plugins, catalog
# enabled. Tries other ports when one is taken (the machine is shared).
serve() {
    local attempt pid
    for attempt in 1 2 3 4 5; do
        port=$((30000 + RANDOM % 20000))
        cat >"$dir/$1.lua" <<LUA
return { listen = "127.0.0.1:$port", http = { threads = $threads }, plugins = { dir = "$PWD/plugins" },
  lua = { path = { "$PWD/lua" } }, log = { level = "warn" }, scheduler = { enabled = false },
  database = { url = os.getenv("DATABASE_URL"), pool_size = $threads },
  auth = { keys = { { key = "$key", roles = { "ingest", "read" } } } },
  catalog = { enabled = true, cache = $2 }, tp_capital = { cache = $2 }, jobs = { enabled = false },
  spool = { dir = "$dir/spool$port" } }
LUA
        $BIN serve --config "$dir/$1.lua" >"$dir/$1.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            if curl -sf "http://127.0.0.1:$port/health" >/dev/null; then pids+=("$pid"); return; fi
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
    done
    echo "server $1 did not start:" >&2
    cat "$dir/$1.log" >&2
    exit 1
}
serve cached true
cached=$port
serve uncached false
uncached=$port

H=(-H "X-API-Key: $key" -H "Content-Type: application/json")
run=$RANDOM$RANDOM
id=$(curl -sf "${H[@]}" "http://127.0.0.1:$cached/products" \
    -d "{\"name\":\"Bench $run\",\"description\":\"Fone de ouvido\",\"price\":199.9,\"stock\":50,\"category\":\"bench-$run\"}" |
    sed -E 's/.*"product":\{"id":([0-9]+).*/\1/')
# 200 signals in one channel for the dashboard query
msgs=$(for i in $(seq 200); do
    printf '{"channel":"bench-%s","message_id":%d,"date":"2025-10-20T%02d:%02d:00Z","text":"BUY EURUSD @ 1.08%02d SL 1.0800 TP1 1.0900 TP2 1.0950"}' \
        "$run" "$i" $((i / 60)) $((i % 60)) $((i % 100))
    if [ "$i" -lt 200 ]; then printf ','; fi
done)
curl -sf "${H[@]}" "http://127.0.0.1:$cached/tp-capital/ingest" -d "[$msgs]" >/dev/null

wrkrun() { # conns port path -> "req/s p50 p99"
    wrk -t2 -c"$1" -d"${secs}s" --latency -H "X-API-Key: $key" "http://127.0.0.1:$2$3" >"$dir/wrk.out" 2>&1
    if grep -qE 'Non-2xx|Socket errors' "$dir/wrk.out"; then grep -E 'Non-2xx|Socket errors' "$dir/wrk.out" >&2; fi
    echo "$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.out") $(awk '$1=="50%" {print $2}' "$dir/wrk.out") $(awk '$1=="99%" {print $2}' "$dir/wrk.out")"
}
# warm-up, then alternate so drift on a shared machine hits both alike
wrkrun 8 "$cached" "/products/$id" >/dev/null
read -r pc pc50 pc99 < <(wrkrun 8 "$cached" "/products/$id")
read -r pu pu50 pu99 < <(wrkrun 8 "$uncached" "/products/$id")
read -r sc sc50 sc99 < <(wrkrun 64 "$cached" "/tp-capital/signals?limit=10&channel=bench-$run")
read -r su su50 su99 < <(wrkrun 64 "$uncached" "/tp-capital/signals?limit=10&channel=bench-$run")
stats=$(curl -sf -H "X-API-Key: $key" "http://127.0.0.1:$cached/catalog/stats")

echo "wrk -t2 -d${secs}s --latency; two servers (catalog.cache / tp_capital.cache true and false) on one"
echo "PostgreSQL, http.threads=$threads, log.level=warn, $(nproc) cores shared with wrk and other work"
echo
echo "| request | clients | cache | req/s | p50 | p99 |"
echo "|---|---|---|---|---|---|"
printf '| GET /products/{id} | 8 | on | %.0f | %s | %s |\n' "$pc" "$pc50" "$pc99"
printf '| GET /products/{id} | 8 | off | %.0f | %s | %s |\n' "$pu" "$pu50" "$pu99"
printf '| GET /tp-capital/signals?limit=10 | 64 | on | %.0f | %s | %s |\n' "$sc" "$sc50" "$sc99"
printf '| GET /tp-capital/signals?limit=10 | 64 | off | %.0f | %s | %s |\n' "$su" "$su50" "$su99"
echo
printf 'products cached/uncached req/s: %.2f; signals cached/uncached req/s: %.2f\n' \
    "$(echo "$pc / $pu" | bc -l)" "$(echo "$sc / $su" | bc -l)"
echo "seed claims: Redis hit 2-5 ms, miss 50-100 ms (003); dashboard ~20 ms with its cache (002)"
echo "catalog stats after the run: $stats"
