#!/usr/bin/env bash
# Jobs benchmark, in one run on one cluster (database tf_bench_jobs, recreated):
#   1. TICKS random ticks over SYMBOLS symbols -> M1: the tick_aggregator job
#      (one run from an empty watermark, inside `tickforge run`) vs the
#      equivalent single INSERT ... SELECT ... GROUP BY run by psql (with the
#      jobs' session settings: jit off, work_mem 64MB), ROUNDS times
#      alternating from an empty M1, best of each; the results are checked
#      equal once;
#   2. BARS M1 bars -> M5 M15 M30 H1 H4 D1 W1 MN1: one rollups run (and the
#      cost of the market_data trigger that queues them, from EXPLAIN ANALYZE),
#      then one run after one new M1 bar per symbol (the steady state);
#   3. steady state: each job run with nothing new to do (mean of IDLE runs).
# Prints a markdown table; never asserts on timings. Drops the database at
# the end unless KEEP=1.
#   bench/jobs_bench.sh          (or: make bench BENCH_ONLY=jobs)
#   TICKS=200000 BARS=100000 bench/jobs_bench.sh   (a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
TF_BIN=${TF_BIN:-$PWD/$BUILD/tickforge}
TICKS=${TICKS:-2000000}
BARS=${BARS:-1000000}
SYMBOLS=${SYMBOLS:-10}
ROUNDS=${ROUNDS:-3}
IDLE=${IDLE:-50}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DATABASE_URL=${DATABASE_URL:-$(scripts/pg.sh url)}
DB=tf_bench_jobs

url_for() { # DATABASE_URL with another database name
    local rest=${DATABASE_URL#postgresql://}
    local auth=${rest%%/*} q=
    [[ $rest == *\?* ]] && q="?${rest#*\?}"
    echo "postgresql://$auth/$1$q"
}
URL=$(url_for $DB)
psql_q() { "$PG_BIN/psql" "$URL" -qAtX -v ON_ERROR_STOP=1 "$@"; }
# psql_ms SQL: runs SQL with \timing, prints its milliseconds; the same
# session settings the jobs give themselves (no JIT, work_mem 64MB)
psql_ms() { PGOPTIONS="-c jit=off -c work_mem=64MB" "$PG_BIN/psql" "$URL" -qAtX -v ON_ERROR_STOP=1 -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1; }
job() { DATABASE_URL=$URL "$TF_BIN" run bench/jobs_bench.lua "$@" 2>/dev/null; }

drop_db() { PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null; }
drop_db
[ -n "${KEEP:-}" ] || trap drop_db EXIT # KEEP=1 keeps tf_bench_jobs for a look
"$PG_BIN/psql" "$DATABASE_URL" -qAtX -c "CREATE DATABASE $DB" >/dev/null
DATABASE_URL=$URL "$TF_BIN" migrate 2>/dev/null

echo "generating $TICKS ticks over $SYMBOLS symbols ..." >&2
psql_q -c "
INSERT INTO ticks (symbol, ts, bid, ask, last)
SELECT 'B' || (i % $SYMBOLS), date_trunc('month', now()) + (i / $SYMBOLS) * interval '750 milliseconds'
         + (random() * 700) * interval '1 millisecond',
       b, b + 0.00001 * (1 + floor(random() * 20)), CASE WHEN random() < 0.8 THEN b END
  FROM (SELECT i, 1.1 + sin(i / 50000.0) * 0.01 + random() * 0.0005 AS b
          FROM generate_series(0, $TICKS - 1) i) x;
ANALYZE ticks;"

REF_SQL="INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
SELECT symbol, 'M1', date_bin('1 minute', ts, timestamptz 'epoch'),
       (array_agg((bid + ask) / 2 ORDER BY ts, seq))[1], max((bid + ask) / 2), min((bid + ask) / 2),
       (array_agg((bid + ask) / 2 ORDER BY ts DESC, seq DESC))[1], count(*), avg((ask - bid)::numeric), 'ticks'
  FROM ticks GROUP BY symbol, 3"
clear() { psql_q -c "DELETE FROM market_data WHERE timeframe = 'M1'; TRUNCATE rollup_queue" -c "VACUUM ANALYZE market_data"; }

best_job= best_ref=
for r in $(seq "$ROUNDS"); do
    clear
    read -r _ s rows < <(job agg)
    best_job=$(echo "${best_job:-$s} $s" | awk '{print ($2 < $1) ? $2 : $1}')
    if [ "$r" = 1 ]; then
        psql_q -c "CREATE TABLE bench_job_m1 AS SELECT symbol, ts, open, high, low, close, volume, spread FROM market_data WHERE timeframe = 'M1'"
        job_rows=$rows
    fi
    clear
    ms=$(psql_ms "$REF_SQL")
    s=$(echo "$ms" | awk '{printf "%.4f", $1 / 1000}')
    best_ref=$(echo "${best_ref:-$s} $s" | awk '{print ($2 < $1) ? $2 : $1}')
    echo "round $r: job ${best_job}s best, psql ${best_ref}s best" >&2
done
diff=$(psql_q -c "SELECT count(*) FROM ((SELECT * FROM bench_job_m1 EXCEPT ALL SELECT symbol, ts, open, high, low, close, volume, spread FROM market_data WHERE timeframe = 'M1')
  UNION ALL (SELECT symbol, ts, open, high, low, close, volume, spread FROM market_data WHERE timeframe = 'M1' EXCEPT ALL SELECT * FROM bench_job_m1)) d")

echo "generating $BARS M1 bars ..." >&2
clear
per=$((BARS / SYMBOLS))
trig=$(psql_q -c "EXPLAIN (ANALYZE, FORMAT TEXT)
INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread)
SELECT 'R' || s, 'M1', timestamptz '2020-01-01' + i * interval '1 minute', o, o + 0.0005, o - 0.0005, o + 0.0001, 10, 0.0001
  FROM generate_series(0, $SYMBOLS - 1) s, generate_series(0, $per - 1) i,
       LATERAL (SELECT 1.1 + sin(i / 1000.0) * 0.01 AS o) x" | awk '/^Trigger market_data_rollup_ins/ {t=$0} /Execution Time/ {e=$3} END {sub(/.*time=/, "", t); sub(/ .*/, "", t); print t, e}')
read -r trig_ms insert_ms <<<"$trig"
psql_q -c "ANALYZE market_data; ANALYZE rollup_queue"
read -r _ roll_s roll_rows < <(job rollup)
psql_q -c "VACUUM ANALYZE rollup_queue"
read -r _ step_s step_rows < <(job rollup_step)

idle=$(job idle "$IDLE")
idle_ms() { echo "$idle" | awk -v n="$1" '$1 == n {printf "%.2f", $2 * 1000}'; }

ratio=$(awk -v j="$best_job" -v r="$best_ref" 'BEGIN {printf "%.2f", r / j}')
echo
echo "Command: \`bash bench/jobs_bench.sh\` (TICKS=$TICKS BARS=$BARS SYMBOLS=$SYMBOLS ROUNDS=$ROUNDS IDLE=$IDLE), $(nproc) CPUs, PostgreSQL $("$PG_BIN/psql" --version | awk '{print $3}')"
echo
echo "| measure | value |"
echo "|---|--:|"
echo "| $TICKS ticks -> $job_rows M1 bars, tick_aggregator job (best of $ROUNDS) | ${best_job} s |"
echo "| same, single INSERT ... SELECT ... GROUP BY by psql (best of $ROUNDS) | ${best_ref} s |"
echo "| ratio psql / job (target >= 0.8) | $ratio |"
echo "| job result vs psql result, differing rows | $diff |"
echo "| $BARS M1 bars -> M5..MN1 ($roll_rows bars), one rollups run | ${roll_s} s |"
echo "| then one new M1 bar per symbol ($SYMBOLS): one rollups run ($step_rows bars) | $(awk -v s="$step_s" 'BEGIN {printf "%.3f", s}') s |"
echo "| inserting those $BARS M1 bars (one INSERT ... SELECT) | $(awk -v m="$insert_ms" 'BEGIN {printf "%.2f", m / 1000}') s |"
echo "| of which the rollup-queue trigger | $(awk -v m="$trig_ms" 'BEGIN {printf "%.2f", m / 1000}') s |"
echo "| idle run, tick_aggregator (mean of $IDLE) | $(idle_ms idle_tick_aggregator) ms |"
echo "| idle run, rollups | $(idle_ms idle_rollups) ms |"
echo "| idle run, indicators (one series) | $(idle_ms idle_indicators_1_series) ms |"
