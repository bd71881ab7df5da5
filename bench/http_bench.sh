#!/usr/bin/env bash
# HTTP host benchmark: wrk against /health (answered in C) and a trivial Lua
# route returning a small JSON table, in the same run, same server; req/s,
# p50/p99, the ratio Lua/C, and the server's RSS idle and under load.
#   BENCH_SECONDS=10 BENCH_CONNS=32 BENCH_THREADS=2 bash bench/http_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TF_BIN:-build/tickforge}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNS:-32}
threads=${BENCH_THREADS:-2}
port=$((30000 + RANDOM % 20000))
dir=$(mktemp -d)
mkdir -p "$dir/plugins"
cat >"$dir/plugins/bench.lua" <<'LUA'
tf.route("GET", "/bench", function(req)
  return 200, { ok = true, symbol = "EURUSD", n = 42 }
end, { auth = "none" })
LUA
cat >"$dir/tf.lua" <<LUA
return { listen = "127.0.0.1:$port", http = { workers = $threads }, plugins = { dir = "$dir/plugins" },
         log = { level = "warn" } }
LUA
$BIN serve --config "$dir/tf.lua" 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }

rss_idle=$(rss)
run() { # path -> "req/s p50 p99"
    wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port$1" >"$dir/wrk.out" 2>&1 &
    local w=$!
    sleep $((secs / 2))
    rss >"$dir/rss.load"
    wait $w
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.out")
    p50=$(awk '$1=="50%" {print $2}' "$dir/wrk.out")
    p99=$(awk '$1=="99%" {print $2}' "$dir/wrk.out")
    if grep -qE 'Non-2xx|Socket errors' "$dir/wrk.out"; then grep -E 'Non-2xx|Socket errors' "$dir/wrk.out" >&2; fi
    echo "$rps $p50 $p99"
}
# warm-up, then alternate so drift on a shared machine hits both alike
run /health >/dev/null
read -r c1 c50 c99 < <(run /health)
rss_c=$(cat "$dir/rss.load")
read -r l1 l50 l99 < <(run /bench)
rss_l=$(cat "$dir/rss.load")
read -r c2 _ _ < <(run /health)
read -r l2 _ _ < <(run /bench)
c=$(echo "($c1 + $c2) / 2" | bc -l)
l=$(echo "($l1 + $l2) / 2" | bc -l)

echo "wrk -t1 -c$conns -d${secs}s, server http.workers=$threads, log.level=warn, $(nproc) cores shared with wrk"
echo
echo "| route | req/s (mean of 2 runs) | p50 | p99 | RSS under load |"
echo "|---|---|---|---|---|"
printf '| GET /health (C) | %.0f | %s | %s | %s kB |\n' "$c" "$c50" "$c99" "$rss_c"
printf '| GET /bench (Lua, small JSON) | %.0f | %s | %s | %s kB |\n' "$l" "$l50" "$l99" "$rss_l"
echo
printf 'Lua route / C route throughput: %.2f   (RSS idle: %s kB)\n' "$(echo "$l / $c" | bc -l)" "$rss_idle"
