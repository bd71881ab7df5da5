#!/usr/bin/env bash
# Backtest benchmark, in one run on one cluster (database tf_bench_backtest,
# recreated): BARS stored M1 bars of one symbol, then
#   1. the floor: read those bars and compute the mt5_default set
#      (tf.indicators.compute, what any backtest must do), best of ROUNDS;
#   2. tf.backtest.run of the shipped rsi_reversal over the same bars (the
#      same read and compute, plus the spreads, the replay through the Lua
#      strategy and the fills), best of ROUNDS; ratio 2 / 1, target <= 2;
#   3. a 27-point sweep (low x high x target_atr, 3 values each) by
#      `tickforge backtest --param ...` over all of them (or the last
#      SWEEP_FROM_DAYS days, earlier bars being warm-up), with --jobs 1 and
#      --jobs 2 (both cores; each child reads and computes once).
# Prints a markdown table; never asserts on timings. Drops the database at
# the end unless KEEP=1 (a later run then reuses the bars).
#   bench/backtest_bench.sh          (or: make bench BENCH_ONLY=backtest)
#   BARS=100000 ROUNDS=1 bench/backtest_bench.sh   (a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
TF_BIN=${TF_BIN:-$PWD/$BUILD/tickforge}
BARS=${BARS:-1000000}
ROUNDS=${ROUNDS:-3}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DATABASE_URL=${DATABASE_URL:-$(scripts/pg.sh url)}
DB=tf_bench_backtest
SYM=BTBENCH

url_for() { # DATABASE_URL with another database name
    local rest=${DATABASE_URL#postgresql://}
    local auth=${rest%%/*} q=
    [[ $rest == *\?* ]] && q="?${rest#*\?}"
    echo "postgresql://$auth/$1$q"
}
URL=$(url_for $DB)
psql_q() { "$PG_BIN/psql" "$URL" -qAtX -v ON_ERROR_STOP=1 "$@"; }
drop_db() { PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null; }
[ -n "${KEEP:-}" ] || trap drop_db EXIT
have=$(psql_q -c "SELECT count(*) FROM market_data WHERE symbol = '$SYM'" 2>/dev/null || echo 0)
if [ "$have" != "$BARS" ]; then # KEEP=1 keeps the database, and a second run reuses its bars
drop_db
"$PG_BIN/psql" "$DATABASE_URL" -qAtX -c "CREATE DATABASE $DB" >/dev/null
DATABASE_URL=$URL "$TF_BIN" migrate 2>/dev/null
echo "generating $BARS M1 bars ..." >&2
psql_q -c "
INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread)
SELECT '$SYM', 'M1', timestamptz '2020-01-01' + i * interval '1 minute', o, o + 0.0002 + r * 0.0004,
       o - 0.0002 - (1 - r) * 0.0004, o + (r - 0.5) * 0.0004, 10, 12
  FROM (SELECT i, random() AS r, 1.1 + sin(i / 900.0) * 0.004 + sin(i / 47.0) * 0.0015 + sin(i / 13000.0) * 0.02 AS o
          FROM generate_series(0, $BARS - 1) i) x;
TRUNCATE rollup_queue;" -c "VACUUM ANALYZE market_data"
fi

run() { DATABASE_URL=$URL "$TF_BIN" run bench/backtest_bench.lua "$@" 2>/dev/null; }
read -r _ read_s nbars < <(run read $SYM "$ROUNDS")
read -r _ bt_s bt_bars trades < <(run backtest $SYM "$ROUNDS")

days=${SWEEP_FROM_DAYS:-0} # 0: the sweep replays every bar
from_arg=() sweep_where=
if [ "$days" != 0 ]; then
    from=$(psql_q -c "SELECT to_char(max(ts) - interval '$days days', 'YYYY-MM-DD\"T\"HH24:MI') FROM market_data WHERE symbol = '$SYM'")
    from_arg=(--from "$from") sweep_where="AND ts >= '$from'"
fi
sweep() { # prints "wall cpu" seconds (cpu: user + sys of the command and its children)
    local TIMEFORMAT='%R %U %S'
    { time DATABASE_URL=$URL "$TF_BIN" backtest rsi_reversal --symbol $SYM --timeframe M1 "${from_arg[@]}" \
        --param low=20,25,30 --param high=70,75,80 --param target_atr=1.5,2,3 --jobs "$1" --quiet --json /dev/null; } 2>&1 |
        awk '{printf "%.1f %.1f", $1, $2 + $3}'
}
sweep_bars=$(psql_q -c "SELECT count(*) FROM market_data WHERE symbol = '$SYM' $sweep_where")
read -r sw1 cpu1 < <(sweep 1)
read -r sw2 cpu2 < <(sweep 2)
load=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "Command: \`bash bench/backtest_bench.sh\` (BARS=$BARS ROUNDS=$ROUNDS SWEEP_FROM_DAYS=$days), $(nproc) CPUs, PostgreSQL $("$PG_BIN/psql" --version | awk '{print $3}')"
echo
echo "| measure | value |"
echo "|---|--:|"
echo "| read $nbars M1 bars + compute mt5_default (best of $ROUNDS) | ${read_s} s |"
echo "| tf.backtest.run rsi_reversal over them: $bt_bars bars, $trades trades (best of $ROUNDS) | ${bt_s} s |"
echo "| backtest bars/s | $(awk -v n="$bt_bars" -v s="$bt_s" 'BEGIN {printf "%.0f", n / s}') |"
echo "| ratio backtest / read+compute (target <= 2) | $(awk -v a="$bt_s" -v b="$read_s" 'BEGIN {printf "%.2f", a / b}') |"
echo "| 27-point sweep, $sweep_bars bars replayed per point, --jobs 1: wall (CPU) | ${sw1} s (${cpu1} s) |"
echo "| same, --jobs 2 (both cores): wall (CPU) | ${sw2} s (${cpu2} s) |"
echo "| speed-up jobs 2 / jobs 1 (wall); CPU / wall with --jobs 2 | $(awk -v a="$sw1" -v b="$sw2" 'BEGIN {printf "%.2f", a / b}'); $(awk -v a="$cpu2" -v b="$sw2" 'BEGIN {printf "%.2f", a / b}') |"
echo "| load average at the end (1, 5, 15 min) | $load |"
