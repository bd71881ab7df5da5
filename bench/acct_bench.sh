#!/usr/bin/env bash
# What per-plugin accounting (and the coroutine reuse that came with it)
# costs a request: this build against an older one (BEFORE_BIN, e.g. built
# from commit afee15e, the event core before accounting), side by side in
# one run, alternating, best of ROUNDS, wrk -t2 -cCONNS keep-alive, both
# with the same workers and no per-request logging:
#   1. POST /candle: decode + validate one candle in Lua (as http_peer_bench)
#   2. GET /q: one tf.db.query (the accounting of a wait and a statement)
# Prints markdown; never asserts on timings.
#   git worktree add /tmp/tf_before afee15e && make -C /tmp/tf_before all
#   BEFORE_BIN=/tmp/tf_before/build/tickforge bash bench/acct_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TF_BIN:-build/tickforge}
BEFORE=${BEFORE_BIN:?set BEFORE_BIN to the older build}
SECS=${BENCH_SECONDS:-6}
CONNS=${BENCH_CONNS:-64}
WORKERS=${WORKERS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
DB=${DATABASE_URL:-$(scripts/pg.sh url)}

dir=$(mktemp -d /tmp/tickforge-acct.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/plugins"
{
    cat bench/candle_validate.lua bench/candle_route.lua
    cat <<'LUA'
tf.route("GET", "/q", function() return 200, tf.db.query("SELECT 1 AS one")[1] end, { auth = "none" })
LUA
} >"$dir/plugins/bench.lua"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # start NAME BIN: a server on a free port; prints the port
    local p
    p=$(port)
    cat >"$dir/$1.lua" <<LUA
return { listen = "127.0.0.1:$p", plugins = { dir = "$dir/plugins" }, log = { level = "warn" },
         http = { workers = $WORKERS, max_connections_per_ip = 0 },
         database = { url = "$DB", pool_size = 16 }, spool = { dir = "$dir/$1.spool" } }
LUA
    "$2" serve --config "$dir/$1.lua" >"$dir/$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$p/health" >/dev/null && break; sleep 0.1; done
    echo "$p"
}
new=$(start new "$BIN")
old=$(start old "$BEFORE")
body='{"symbol":"EURUSD","timeframe":"M1","ts":"2025-10-20T10:01:00Z","open":1.1001,"high":1.1012,"low":1.0995,"close":1.1008}'
printf 'wrk.method = "POST"\nwrk.body = [[%s]]\nwrk.headers["Content-Type"] = "application/json"\n' "$body" >"$dir/post.lua"

rps() { # rps URL [wrk args]: requests/s of one wrk run
    local url=$1
    shift
    wrk -t2 -c"$CONNS" -d"${SECS}s" "$@" "$url" | awk '/Requests\/sec/ {print $2}'
}
best() { # best A B: the larger
    awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'
}

echo "wrk -t2 -c$CONNS -d${SECS}s keep-alive, best of $ROUNDS alternating runs; both servers $WORKERS workers,"
echo "no per-request logging; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| route | before (req/s) | now, with accounting (req/s) | now / before |"
echo "|---|--:|--:|--:|"
for route in candle q; do
    b=0 n=0
    for _ in $(seq "$ROUNDS"); do
        if [ "$route" = candle ]; then
            b=$(best "$b" "$(rps "http://127.0.0.1:$old/candle" -s "$dir/post.lua")")
            n=$(best "$n" "$(rps "http://127.0.0.1:$new/candle" -s "$dir/post.lua")")
        else
            b=$(best "$b" "$(rps "http://127.0.0.1:$old/q")")
            n=$(best "$n" "$(rps "http://127.0.0.1:$new/q")")
        fi
    done
    label=$([ "$route" = candle ] && echo 'POST /candle (decode + validate in Lua)' || echo 'GET /q (one tf.db.query)')
    echo "| $label | $b | $n | $(awk -v a="$n" -v b="$b" 'BEGIN { printf "%.2f", a / b }') |"
done
