#!/usr/bin/env bash
# Spool benchmark: what the durable spool (docs/spool.md) costs an EA. The
# shipped ingest routes are measured with the database up (stored directly)
# and stopped (answered from the spool: append + group-committed fdatasync),
# in one run, on one throw-away PostgreSQL cluster with fsync on (pg.sh
# start, durable), the spool on the same disk:
#   single: one new candle per POST /ingest, CLIENTS keep-alive clients (wrk)
#   batch:  BATCH new candles per POST /ingest_batch, CLIENTS clients
# then the database is started again and the time the replayer takes to
# drain what was spooled is measured. ROUNDS rounds; the best of each side
# is kept. Prints a markdown table; never asserts on timings.
#   bench/spool_bench.sh             (or: make bench BENCH_ONLY=spool)
#   SECONDS_RUN=5 ROUNDS=1 bench/spool_bench.sh   (a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
TF_BIN=${TF_BIN:-$PWD/$BUILD/tickforge}
CLIENTS=${CLIENTS:-8}
BATCH=${BATCH:-100}
SECONDS_RUN=${SECONDS_RUN:-10}
ROUNDS=${ROUNDS:-2}
WORKERS=${WORKERS:-$(nproc)}
POOL=${POOL:-$(nproc)}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
KEY=bench-ingest-key-0001

work=$(mktemp -d /tmp/tickforge-spool-bench.XXXXXX)
mkdir -p "$work/pg/scripts" "$work/plugins"
cp scripts/pg.sh "$work/pg/scripts/"
chmod -R a+rwX "$work/pg" # pg.sh runs PostgreSQL as postgres when we are root
pgport=$((30000 + RANDOM % 20000))
pg() { TF_PGPORT=$pgport "$work/pg/scripts/pg.sh" "$@"; }
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    pg stop >/dev/null 2>&1 || true
    if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

pg start >/dev/null # durable: fsync on
url=$(pg url)
DATABASE_URL=$url "$TF_BIN" migrate 2>/dev/null

port=$((30000 + RANDOM % 20000))
cat >"$work/tickforge.lua" <<CFG
return {
  listen = "127.0.0.1:$port",
  http = { workers = $WORKERS, max_connections_per_ip = 0 },
  database = { pool_size = $POOL, migrations = "$PWD/sql", checkout_timeout_ms = 1000, connect_timeout_s = 1 },
  plugins = { dir = "$work/plugins" },
  spool = { dir = "$work/spool", max_bytes = "8GB" },
  log = { level = "${LOG_LEVEL:-warn}" },
}
CFG
cp plugins/mt5_ingest.lua "$work/plugins/"
DATABASE_URL=$url TICKFORGE_API_KEY=$KEY "$TF_BIN" serve --config "$work/tickforge.lua" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done

now() { date +%s.%N; }
max() { echo "if ($1 > $2) $1 else $2" | bc -l; }
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }
psql_q() { "$PG_BIN/psql" "$url" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# run SIZE SYMBOL -> requests per second; fails on any non-2xx answer
run() {
    local out
    out=$(BENCH_KEY=$KEY BENCH_BATCH=$1 BENCH_SYMBOL=$2 wrk -t 2 -c "$CLIENTS" -d "${SECONDS_RUN}s" \
        -s bench/spool_wrk.lua "http://127.0.0.1:$port" 2>&1)
    if echo "$out" | grep -q Non-2xx; then echo "wrk saw non-2xx answers: $out" >&2; tail -5 "$work/server.log" >&2; exit 1; fi
    echo "$out" | awk '/Requests\/sec/ {print $2}'
}

up1=0 up_b=0 sp1=0 sp_b=0 drain_rate=0 drain_s=0 spooled_max=0 per_sync=0
for round in $(seq "$ROUNDS"); do
    echo "round $round: database up ..." >&2
    up1=$(max "$up1" "$(run 1 "U1R$round")")
    up_b=$(max "$up_b" "$(run "$BATCH" "UBR$round")")
    pg stop >/dev/null
    sleep 1
    echo "round $round: database stopped: answered from the spool ..." >&2
    sp1=$(max "$sp1" "$(run 1 "S1R$round")")
    sp_b=$(max "$sp_b" "$(run "$BATCH" "SBR$round")")
    records=$(metric tf_spool_records)
    per_sync=$(max "$per_sync" "$(echo "$(metric tf_spool_appended_total) / $(metric tf_spool_syncs_total)" | bc -l)")
    spooled_max=$(max "$spooled_max" "$records")
    echo "round $round: database started: draining $records batches ..." >&2
    t0=$(now)
    pg start >/dev/null
    while [ "$(metric tf_spool_records)" != 0 ]; do sleep 0.05; done
    t1=$(now)
    secs=$(echo "$t1 - $t0" | bc -l)
    rate=$(echo "$records / $secs" | bc -l)
    drain_rate=$(max "$drain_rate" "$rate")
    drain_s=$(if [ "$drain_s" = 0 ]; then echo "$secs"; else min "$drain_s" "$secs"; fi)
    stored=$(psql_q "SELECT count(*) FROM market_data WHERE symbol IN ('S1R$round', 'SBR$round')")
    echo "round $round: $stored spooled candles stored" >&2
done

f() { printf '%.0f' "$1"; }
r() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
echo
echo "| ingest ($CLIENTS clients, $WORKERS workers, fsync on) | database up (stored) | database stopped (spooled) | spooled / stored |"
echo "|---|---|---|---|"
echo "| single candle, POST /ingest (requests/s) | $(f "$up1") | $(f "$sp1") | $(r "$sp1" "$up1") |"
echo "| batch of $BATCH, POST /ingest_batch (requests/s) | $(f "$up_b") | $(f "$sp_b") | $(r "$sp_b" "$up_b") |"
echo "| batch of $BATCH (candles/s) | $(f "$(echo "$up_b * $BATCH" | bc -l)") | $(f "$(echo "$sp_b * $BATCH" | bc -l)") | |"
echo
echo "Group commit: $(printf '%.1f' "$per_sync") appends per fdatasync (tf_spool_appended_total / tf_spool_syncs_total, whole run)."
echo "Replay after the database came back: up to $(f "$spooled_max") batches, best $(f "$drain_rate") batches/s (fastest drain $(printf '%.1f' "$drain_s") s, start of PostgreSQL included)."
echo
echo "command: CLIENTS=$CLIENTS BATCH=$BATCH SECONDS_RUN=$SECONDS_RUN ROUNDS=$ROUNDS bench/spool_bench.sh"
