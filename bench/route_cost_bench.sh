#!/usr/bin/env bash
# What one request costs the server in instructions, counted by valgrind's
# callgrind: repeatable to a fraction of a percent on a shared, noisy
# machine where req/s move by 10% between runs. The server (1 worker) serves
# N1 and then N2 keep-alive requests from one client in two runs; the
# difference of the two totals over N2 - N1 leaves start-up and shutdown
# out. Routes: GET /health (C) and POST /candle, the candle-validating Lua
# route of bench/http_peer_bench.sh (bench/candle_validate.lua and
# candle_route.lua: tf.json.decode, validation, an answer encoded by
# tf.json.encode).
#   bash bench/route_cost_bench.sh        (BASE_BIN=/other/tickforge adds a column)
# Note: callgrind counts a `rep stosb` memset byte by byte, so libmicrohttpd's
# clearing of its per-connection buffer (8 KB) weighs more here than in time.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TF_BIN:-build/tickforge}
N1=${N1:-300}
N2=${N2:-1500}
command -v valgrind >/dev/null || { echo "valgrind not installed: skipped"; exit 0; }
dir=$(mktemp -d /tmp/tickforge-cost.XXXXXX)
trap 'rm -rf "$dir"' EXIT
port=$((30000 + RANDOM % 15000))
mkdir -p "$dir/plugins"
cat bench/candle_validate.lua bench/candle_route.lua >"$dir/plugins/bench.lua"
cat >"$dir/tf.lua" <<LUA
return { listen = "127.0.0.1:$port", plugins = { dir = "$dir/plugins" }, log = { level = "warn" },
         http = { workers = 1, max_connections_per_ip = 0 } }
LUA
cat >"$dir/client.py" <<'PY'
import http.client, sys
port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = '{"symbol":"EURUSD","timeframe":"M1","ts":"2025-10-20T10:01:00Z","open":1.1001,"high":1.1012,"low":1.0995,"close":1.1008,"volume":120,"spread":12}'
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(n):
    if path == "/health":
        c.request("GET", path)
    else:
        c.request("POST", path, body, {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
total() { # bin path n -> instructions of the whole run
    rm -f "$dir"/cg.*
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" "$1" serve --config "$dir/tf.lua" 2>/dev/null &
    local vp=$!
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
    python3 "$dir/client.py" "$port" "$3" "$2"
    kill -INT "$vp"
    wait "$vp" 2>/dev/null || true
    callgrind_annotate "$dir"/cg.* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
per() { # bin path
    local a b
    a=$(total "$1" "$2" "$N1")
    b=$(total "$1" "$2" "$N2")
    echo $(((b - a) / (N2 - N1)))
}
echo "command: N1=$N1 N2=$N2 bash bench/route_cost_bench.sh${BASE_BIN:+ (BASE_BIN=$BASE_BIN)}"
echo
if [ -n "${BASE_BIN:-}" ]; then
    echo "| route | instructions per request | base ($BASE_BIN) | ratio |"
    echo "|---|--:|--:|--:|"
    for p in /health /candle; do
        ours=$(per "$BIN" "$p")
        base=$(per "$BASE_BIN" "$p")
        echo "| $p | $ours | $base | $(echo "scale=2; $ours / $base" | bc) |"
    done
else
    echo "| route | instructions per request |"
    echo "|---|--:|"
    for p in /health /candle; do echo "| $p | $(per "$BIN" "$p") |"; done
fi
