#!/usr/bin/env bash
# Read-side benchmark, in one run on one server and one database:
#  1. GET /candles, the newest 500 M1 bars with set=mt5_default (stored
#     values): served from tf.cache (a server with read.cache_ttl = 3600) vs
#     read from PostgreSQL every time (the same request to a second server
#     with read.cache_ttl = 0) vs pgbench running the route's own SELECT (no
#     HTTP, no JSON; -M simple, as a plain client sends it, and -M prepared,
#     planned once per connection), all with the same client concurrency.
#  2. A 1M-bar CSV export (GET /candles?...&format=csv) vs
#     psql \copy (SELECT ...) TO STDOUT WITH CSV HEADER of the same columns.
#   BENCH_SECONDS=10 BENCH_CONNS=16 BENCH_BARS=1000000 bash bench/read_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TF_BIN:-build/tickforge}
URL=${DATABASE_URL:?set DATABASE_URL (make bench does)}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNS:-16}
bars=${BENCH_BARS:-1000000}
port=$((30000 + RANDOM % 20000))
key=bench-read-key-0001
dir=$(mktemp -d)
psql() { command psql "$URL" -qAt -v ON_ERROR_STOP=1 "$@"; }

"$BIN" migrate >/dev/null 2>&1
# data: BENCHRD (10000 M1 bars, mt5_default stored) and BENCHCSV (bars M1 bars)
psql -c "DELETE FROM market_data WHERE symbol IN ('BENCHRD', 'BENCHCSV')"
gen() { # symbol n
    psql -c "INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread)
      SELECT '$1', 'M1', timestamptz '2024-01-01' + make_interval(mins => i),
             1.08 + 0.002 * sin(i / 7.0), 1.0806 + 0.002 * sin(i / 7.0), 1.0795 + 0.002 * sin(i / 7.0),
             1.0802 + 0.002 * sin(i / 7.0), 100 + i % 50, 10 + i % 3
        FROM generate_series(0, $2 - 1) AS i"
}
gen BENCHRD 10000
gen BENCHCSV "$bars"
echo 'tf.indicators.update("mt5_default", "BENCHRD", "M1")' >"$dir/upd.lua"
"$BIN" run "$dir/upd.lua" >/dev/null
psql -c "ANALYZE market_data" >/dev/null

serve() { # port cache_ttl -> pid
    cat >"$dir/tf$1.lua" <<LUA
return { listen = "127.0.0.1:$1", http = { threads = $conns }, plugins = { dir = "$PWD/plugins" },
         lua = { path = { "$PWD/lua" }, memory_limit = "2GB", handler_timeout_ms = 120000 },
         database = { url = "$URL", pool_size = $conns },
         auth = { keys = { { key = "$key", roles = { "read", "ingest" }, name = "bench" } } },
         jobs = { enabled = false }, log = { level = "warn" }, spool = { dir = "$dir/spool$1" },
         read = { max_rows = $((bars + 1)), cache_ttl = $2 } }
LUA
    "$BIN" serve --config "$dir/tf$1.lua" >"$dir/out$1" 2>"$dir/log$1" &
    echo $!
}
uport=$((port + 1))
pid=$(serve "$port" 3600)
upid=$(serve "$uport" 0)
trap 'kill $pid $upid 2>/dev/null; rm -rf "$dir"' EXIT
for p in "$port" "$uport"; do
    for _ in $(seq 600); do curl -sf "http://127.0.0.1:$p/health" >/dev/null && break; sleep 0.1; done
done

q='/candles?symbol=BENCHRD&timeframe=M1&limit=500&set=mt5_default'
n=$(curl -sS -H "X-API-Key: $key" "http://127.0.0.1:$port$q" | grep -o '"count":[0-9]*' || true)
src=$(curl -sS -H "X-API-Key: $key" "http://127.0.0.1:$uport$q" | grep -o '"indicators_source":"[a-z]*"' || true)
[ "$n" = '"count":500' ] && [ "$src" = '"indicators_source":"stored"' ] || {
    echo "bad answer: $n $src" >&2
    tail -n 5 "$dir/log$port" "$dir/log$uport" >&2
    exit 1
}

wrk_rps() { # port path
    wrk -t2 -c"$conns" -d"${secs}s" -H "X-API-Key: $key" "http://127.0.0.1:$1$2" >"$dir/wrk.out" 2>&1
    if grep -qE 'Non-2xx|Socket errors' "$dir/wrk.out"; then grep -E 'Non-2xx|Socket errors' "$dir/wrk.out" >&2; fi
    awk '/Requests\/sec/ {print $2}' "$dir/wrk.out"
}
# the route's SELECT for this request (plugins/market_read.lua bars_sql)
cat >"$dir/select.sql" <<'SQL'
SELECT * FROM (SELECT m.ts AS t_, extract(epoch FROM m.ts)::float8 AS ts, m.open::float8 AS open, m.high::float8 AS high,
  m.low::float8 AS low, m.close::float8 AS close, m.volume::float8 AS volume, m.spread::float8 AS spread,
  m."rsi"::float8 AS "rsi", m."macd"::float8 AS "macd", m."macd_signal"::float8 AS "macd_signal",
  m."macd_hist"::float8 AS "macd_hist", m."atr"::float8 AS "atr", m."bb_upper"::float8 AS "bb_upper",
  m."bb_middle"::float8 AS "bb_middle", m."bb_lower"::float8 AS "bb_lower",
  (m."rsi" IS NOT NULL AND m."macd" IS NOT NULL AND m."macd_signal" IS NOT NULL AND m."macd_hist" IS NOT NULL
   AND m."atr" IS NOT NULL AND m."bb_upper" IS NOT NULL AND m."bb_middle" IS NOT NULL AND m."bb_lower" IS NOT NULL)::int AS stored_
  FROM market_data m WHERE m.symbol = 'BENCHRD' AND m.timeframe = 'M1' ORDER BY m.ts DESC LIMIT 500) s ORDER BY t_;
SQL
pgbench_tps() { # [-M prepared]
    command pgbench "$URL" -n "$@" -f "$dir/select.sql" -c "$conns" -j 2 -T "$secs" 2>/dev/null |
        awk '/^tps/ {print $3; exit}'
}
# warm-up, then alternate so drift on a shared machine hits all four alike
wrk_rps "$port" "$q" >/dev/null
c1=$(wrk_rps "$port" "$q"); u1=$(wrk_rps "$uport" "$q"); p1=$(pgbench_tps); m1=$(pgbench_tps -M prepared)
c2=$(wrk_rps "$port" "$q"); u2=$(wrk_rps "$uport" "$q"); p2=$(pgbench_tps); m2=$(pgbench_tps -M prepared)
c=$(echo "($c1 + $c2) / 2" | bc -l); u=$(echo "($u1 + $u2) / 2" | bc -l); p=$(echo "($p1 + $p2) / 2" | bc -l)
m=$(echo "($m1 + $m2) / 2" | bc -l)

# CSV export: best of 2 each, alternating
csvq="/candles?symbol=BENCHCSV&timeframe=M1&from=2000-01-01&format=csv"
copy="\\copy (SELECT ts, open, high, low, close, volume, spread FROM market_data WHERE symbol = 'BENCHCSV' AND timeframe = 'M1' ORDER BY ts) TO STDOUT WITH CSV HEADER"
t_api() { curl -sf -H "X-API-Key: $key" -o "$dir/api.csv" -w '%{time_total}' "http://127.0.0.1:$port$csvq"; }
t_psql() { local s e; s=$(date +%s.%N); command psql "$URL" -qAt -c "$copy" >"$dir/psql.csv"; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
a1=$(t_api); s1=$(t_psql); a2=$(t_api); s2=$(t_psql)
a=$(printf '%s\n%s\n' "$a1" "$a2" | sort -g | head -1); s=$(printf '%s\n%s\n' "$s1" "$s2" | sort -g | head -1)
rows_api=$(($(wc -l <"$dir/api.csv") - 1)); rows_psql=$(($(wc -l <"$dir/psql.csv") - 1))
[ "$rows_api" = "$bars" ] && [ "$rows_psql" = "$bars" ] || { echo "CSV rows: api $rows_api psql $rows_psql, want $bars" >&2; exit 1; }

psql -c "DELETE FROM market_data WHERE symbol IN ('BENCHRD', 'BENCHCSV')"

echo "$conns client connections, ${secs}s x 2 runs each (alternating), servers http.threads=$conns pool_size=$conns, $(nproc) cores shared with the clients"
echo
echo "| GET /candles, newest 500 M1 bars + mt5_default (stored) | req/s | vs pgbench |"
echo "|---|---|---|"
printf '| cached (tf.cache) | %.0f | %.2f |\n' "$c" "$(echo "$c / $p" | bc -l)"
printf '| uncached (PostgreSQL every request) | %.0f | %.2f |\n' "$u" "$(echo "$u / $p" | bc -l)"
printf '| pgbench -M simple, the same SELECT (no HTTP, no JSON) | %.0f | 1.00 |\n' "$p"
printf '| pgbench -M prepared, the same SELECT planned once per connection | %.0f | %.2f |\n' "$m" "$(echo "$m / $p" | bc -l)"
echo
echo "| $bars-bar CSV export (best of 2) | seconds | MB | speed vs psql |"
echo "|---|---|---|---|"
printf '| GET /candles?format=csv | %.2f | %.1f | %.2f |\n' "$a" "$(echo "$(stat -c %s "$dir/api.csv") / 1048576" | bc -l)" "$(echo "$s / $a" | bc -l)"
printf '| psql \\copy (SELECT ...) TO STDOUT CSV | %.2f | %.1f | 1.00 |\n' "$s" "$(echo "$(stat -c %s "$dir/psql.csv") / 1048576" | bc -l)"
