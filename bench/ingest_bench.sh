#!/usr/bin/env bash
# Ingest benchmark: tickforge's MT5 routes against PostgreSQL's own bulk and
# single-row paths, measured side by side in one run on the same cluster:
#   1. CANDLES candles via POST /ingest_batch (batches of BATCH, CLIENTS
#      concurrent clients) into an empty market_data vs psql \copy of the same
#      rows into an identical empty market_data (a second, identically
#      migrated database);
#   2. single-candle POST /ingest with CLIENTS keep-alive clients (wrk) vs
#      pgbench -c CLIENTS running the equivalent INSERT ... ON CONFLICT (merge),
#      and the same with one client each (part single1: nothing to share a
#      statement with, so this is the cost of a request against a row);
#   3. TICKS ticks via POST /ingest/tick (batches of TICK_BATCH) vs \copy.
# Each side runs ROUNDS times, alternating, from empty tables; the best of
# each is kept. Prints a markdown table; never asserts on timings. Uses databases
# tf_bench_api and tf_bench_copy on the cluster of DATABASE_URL (recreated).
#   bench/ingest_bench.sh            (or: make bench BENCH_ONLY=ingest)
#   CANDLES=100000 TICKS=200000 bench/ingest_bench.sh   (a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
TF_BIN=${TF_BIN:-$PWD/$BUILD/tickforge}
CANDLES=${CANDLES:-1000000}
BATCH=${BATCH:-1000}
TICKS=${TICKS:-2000000}
TICK_BATCH=${TICK_BATCH:-5000}
CLIENTS=${CLIENTS:-8}
SECONDS_SINGLE=${SECONDS_SINGLE:-10}
WORKERS=${WORKERS:-$(nproc)}
PARTS=${PARTS:-candles single single1 ticks} # a subset for quick looks
ROUNDS=${ROUNDS:-3}                  # best of ROUNDS for each side
POOL=${POOL:-$(nproc)}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DATABASE_URL=${DATABASE_URL:-$(scripts/pg.sh url)}
KEY=bench-ingest-key-0001

work=$(mktemp -d /tmp/tickforge-bench.XXXXXX)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    if [ -n "${KEEP:-}" ]; then
        echo "kept $work and the databases tf_bench_api, tf_bench_copy" >&2
    else
        rm -rf "$work"
        for db in tf_bench_api tf_bench_copy; do
            PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" "$DATABASE_URL" -qAtX \
                -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
        done
    fi
}
trap cleanup EXIT

url_for() { # DATABASE_URL with another database name
    local rest=${DATABASE_URL#postgresql://}
    local auth=${rest%%/*} q=
    [[ $rest == *\?* ]] && q="?${rest#*\?}"
    echo "postgresql://$auth/$1$q"
}
API_URL=$(url_for tf_bench_api)
COPY_URL=$(url_for tf_bench_copy)
now() { date +%s.%N; }
psql_q() { "$PG_BIN/psql" "$1" -qAtX -v ON_ERROR_STOP=1 -c "$2"; }

for db in tf_bench_api tf_bench_copy; do
    PGOPTIONS="-c client_min_messages=warning" psql_q "$DATABASE_URL" "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    psql_q "$DATABASE_URL" "CREATE DATABASE $db" >/dev/null
    DATABASE_URL=$(url_for $db) "$TF_BIN" migrate 2>/dev/null
done

echo "generating $CANDLES candles and $TICKS ticks in $work ..." >&2
"$TF_BIN" run bench/ingest_gen.lua "$work" "$CANDLES" "$BATCH" "$TICKS" "$TICK_BATCH" >&2

port=$((30000 + RANDOM % 20000))
cat >"$work/tickforge.lua" <<CFG
return {
  listen = "127.0.0.1:$port",
  http = { workers = $WORKERS, max_body = "64MB", max_connections_per_ip = 0 },
  database = { pool_size = $POOL, migrations = "$PWD/sql" },
  plugins = { dir = "$work/plugins" },
  log = { level = "${LOG_LEVEL:-warn}" },
  ingest = { max_items = 100000, max_ticks = 100000 },
  spool = { dir = "$work/spool" },
}
CFG
mkdir -p "$work/plugins"
cp plugins/mt5_ingest.lua "$work/plugins/"
DATABASE_URL=$API_URL TICKFORGE_API_KEY=$KEY "$TF_BIN" serve --config "$work/tickforge.lua" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

# curl_config PREFIX PATH: one POST per body file, for curl -Z -K
curl_config() {
    local sep=
    for f in "$work"/$1_*.json; do
        printf '%surl = "http://127.0.0.1:%s%s"\nheader = "X-API-Key: %s"\nheader = "Content-Type: application/json"\n' "$sep" "$port" "$2" "$KEY"
        printf 'data-binary = "@%s"\noutput = "%s.out"\nwrite-out = "%%{http_code} %s\\n"\n' "$f" "$f" "$f"
        sep=$'next\n'
    done >"$work/$1.curl"
}
curl_config c /ingest_batch
curl_config t /ingest/tick

run_api() { # PREFIX -> seconds; fails unless every answer is 200
    local t0 t1 codes
    t0=$(now)
    codes=$(curl -sS --no-progress-meter -Z --parallel-max "$CLIENTS" -K "$work/$1.curl")
    t1=$(now)
    local bad
    bad=$(echo "$codes" | awk '$1 != 200' | head -1)
    if [ -n "$bad" ]; then
        echo "non-200 answers ($(echo "$codes" | awk '$1 != 200' | wc -l)), first: $bad" >&2
        head -c 400 "${bad#* }.out" >&2
        tail -5 "$work/server.log" >&2
        exit 1
    fi
    echo "$t1 - $t0" | bc -l
}
run_copy() { # TABLE COLUMNS CSV -> seconds
    local t0 t1
    t0=$(now)
    "$PG_BIN/psql" "$COPY_URL" -qX -v ON_ERROR_STOP=1 -c "\\copy $1 ($2) FROM '$3'" >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}

has() { [[ " $PARTS " == *" $1 "* ]]; }
cat >"$work/pgbench.sql" <<'SQL'
\set t random(1, 2000000)
INSERT INTO market_data AS m (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
VALUES ('PGB', 'M1', timestamptz '2020-01-01 00:00:00+00' + :t * interval '1 minute', 1.1, 1.2, 1.0, 1.15, 10, 2, 'ea')
ON CONFLICT (symbol, timeframe, ts) DO UPDATE SET high = GREATEST(m.high, EXCLUDED.high),
  low = LEAST(m.low, EXCLUDED.low), close = EXCLUDED.close, volume = GREATEST(m.volume, EXCLUDED.volume),
  spread = COALESCE(EXCLUDED.spread, m.spread)
WHERE (m.high, m.low, m.close, m.volume, m.spread) IS DISTINCT FROM
  (GREATEST(m.high, EXCLUDED.high), LEAST(m.low, EXCLUDED.low), EXCLUDED.close,
   GREATEST(m.volume, EXCLUDED.volume), COALESCE(EXCLUDED.spread, m.spread))
RETURNING symbol, timeframe, ts, (created_at = now());
SQL
truncate_both() { psql_q "$API_URL" "TRUNCATE $1"; psql_q "$COPY_URL" "TRUNCATE $1"; }
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }
max() { echo "if ($1 > $2) $1 else $2" | bc -l; }
check_rows() { # URL TABLE WANT
    local got
    got=$(psql_q "$1" "SELECT count(*) FROM $2")
    [ "$got" -eq "$3" ] || { echo "$2: $got rows stored, want $3" >&2; exit 1; }
}

# ROUNDS rounds, each side by side (ours, then PostgreSQL's, from empty
# tables); the best of each side is kept, so a burst of load from elsewhere
# on a shared machine costs neither side more than the other.
c_api=999999 c_copy=999999 t_api=999999 t_copy=999999 single_api=0 single_pg=0 single_pgx=0
one_api=0 one_pg=0
c_rows=$(wc -l <"$work/candles.csv") t_rows=$(wc -l <"$work/ticks.csv")
for round in $(seq "$ROUNDS"); do
    if has candles; then
        truncate_both market_data
        echo "round $round: candles API ..." >&2
        c_api=$(min "$c_api" "$(run_api c)")
        check_rows "$API_URL" market_data "$c_rows"
        echo "round $round: candles \\copy ..." >&2
        c_copy=$(min "$c_copy" "$(run_copy market_data "symbol, timeframe, ts, open, high, low, close, volume, spread, source" "$work/candles.csv")")
        check_rows "$COPY_URL" market_data "$c_rows"
    fi
    if has ticks; then
        truncate_both ticks
        echo "round $round: ticks API ..." >&2
        t_api=$(min "$t_api" "$(run_api t)")
        check_rows "$API_URL" ticks "$t_rows"
        echo "round $round: ticks \\copy ..." >&2
        t_copy=$(min "$t_copy" "$(run_copy ticks "symbol, ts, bid, ask, last, volume, flags, ts_msc" "$work/ticks.csv")")
        check_rows "$COPY_URL" ticks "$t_rows"
    fi
    if has single; then
        truncate_both market_data
        echo "round $round: single candles, wrk ..." >&2
        wrk_out=$(BENCH_KEY=$KEY wrk -t 2 -c "$CLIENTS" -d "${SECONDS_SINGLE}s" -s bench/ingest_wrk.lua "http://127.0.0.1:$port" 2>&1)
        if echo "$wrk_out" | grep -q Non-2xx; then echo "wrk saw non-2xx answers: $wrk_out" >&2; exit 1; fi
        single_api=$(max "$single_api" "$(echo "$wrk_out" | awk '/Requests\/sec/ {print $2}')")
        echo "round $round: single candles, pgbench ..." >&2
        pgb_out=$("$PG_BIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$SECONDS_SINGLE" -f "$work/pgbench.sql" "$COPY_URL" 2>&1)
        single_pg=$(max "$single_pg" "$(echo "$pgb_out" | awk '/^tps/ {print $3; exit}')")
        # the same with the extended protocol, which libpq's PQexecParams speaks
        truncate_both market_data
        pgb_out=$("$PG_BIN/pgbench" -n -M extended -c "$CLIENTS" -j 2 -T "$SECONDS_SINGLE" -f "$work/pgbench.sql" "$COPY_URL" 2>&1)
        single_pgx=$(max "$single_pgx" "$(echo "$pgb_out" | awk '/^tps/ {print $3; exit}')")
    fi
    if has single1; then
        truncate_both market_data
        echo "round $round: single candles, one client, wrk ..." >&2
        wrk_out=$(BENCH_KEY=$KEY wrk -t 1 -c 1 -d "${SECONDS_SINGLE}s" -s bench/ingest_wrk.lua "http://127.0.0.1:$port" 2>&1)
        if echo "$wrk_out" | grep -q Non-2xx; then echo "wrk saw non-2xx answers: $wrk_out" >&2; exit 1; fi
        one_api=$(max "$one_api" "$(echo "$wrk_out" | awk '/Requests\/sec/ {print $2}')")
        echo "round $round: single candles, one client, pgbench ..." >&2
        pgb_out=$("$PG_BIN/pgbench" -n -c 1 -j 1 -T "$SECONDS_SINGLE" -f "$work/pgbench.sql" "$COPY_URL" 2>&1)
        one_pg=$(max "$one_pg" "$(echo "$pgb_out" | awk '/^tps/ {print $3; exit}')")
    fi
done
c_api_rows=$c_rows c_copy_rows=$c_rows t_api_rows=$t_rows t_copy_rows=$t_rows

rate() { echo "$1 / $2" | bc -l | xargs printf '%.0f'; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
c_api_rate=$(rate "$c_api_rows" "$c_api")
c_copy_rate=$(rate "$c_copy_rows" "$c_copy")
t_api_rate=$(rate "$t_api_rows" "$t_api")
t_copy_rate=$(rate "$t_copy_rows" "$t_copy")

cat <<TABLE
| workload | tickforge | PostgreSQL baseline | ratio |
|---|---|---|---|
| $c_api_rows candles, /ingest_batch x$BATCH, $CLIENTS clients vs \\copy | $c_api_rate candles/s ($(printf '%.1f' "$c_api") s) | $c_copy_rate rows/s ($(printf '%.1f' "$c_copy") s) | $(ratio "$c_api_rate" "$c_copy_rate") |
| single candle /ingest, $CLIENTS keep-alive clients vs pgbench -c $CLIENTS | $(printf '%.0f' "$single_api") req/s | $(printf '%.0f' "$single_pg") tps | $(ratio "$single_api" "$single_pg") |
| the same vs pgbench -M extended (the protocol of PQexecParams) | $(printf '%.0f' "$single_api") req/s | $(printf '%.0f' "$single_pgx") tps | $(ratio "$single_api" "$single_pgx") |
| single candle /ingest, 1 client vs pgbench -c 1 | $(printf '%.0f' "$one_api") req/s | $(printf '%.0f' "$one_pg") tps | $(ratio "$one_api" "$one_pg") |
| $t_api_rows ticks, /ingest/tick x$TICK_BATCH, $CLIENTS clients vs \\copy | $t_api_rate ticks/s ($(printf '%.1f' "$t_api") s) | $t_copy_rate rows/s ($(printf '%.1f' "$t_copy") s) | $(ratio "$t_api_rate" "$t_copy_rate") |
TABLE
echo
echo "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GB; server: $WORKERS HTTP workers, pool $POOL; PostgreSQL: fsync $(psql_q "$DATABASE_URL" "SHOW fsync"), synchronous_commit $(psql_q "$DATABASE_URL" "SHOW synchronous_commit"); best of $ROUNDS rounds; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
