#!/usr/bin/env bash
# tickforge against its peer, side by side in one run on the same machine:
# nginx + its Lua module (LuaJIT) + lua-cjson from Debian, installed here if
# missing and configured in a temporary folder (never shipped). Both sides
# get the same number of workers (WORKERS), log nothing per request, and are
# driven by the same wrk (-t2 -cCONNS, keep-alive), alternating, best of ROUNDS:
#   1. GET /health (C) vs nginx `return 200`
#   2. POST /candle: decode one candle's JSON and validate it in Lua (the same
#      Lua code on both sides: tf.json vs cjson), answer a small JSON
#   3. 10,000 idle keep-alive connections (IDLE) held open: tickforge's RSS,
#      and GET /health p99 from wrk meanwhile
#   4. reload under load: wrk on a Lua route while POST /admin/reload runs
#      RELOADS times; the count of non-2xx answers and socket errors
# Single-candle /ingest against pgbench at 8, 64 and 512 clients is
# bench/ingest_bench.sh (PARTS=single CLIENTS=...); see BENCHMARKS.md.
# Prints markdown; never asserts on timings.
#   bash bench/http_peer_bench.sh          (or: make bench BENCH_ONLY=http_peer)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TF_BIN:-build/tickforge}
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-64}
WORKERS=${WORKERS:-$(nproc)}
ROUNDS=${ROUNDS:-2}
IDLE=${IDLE:-10000}
RELOADS=${RELOADS:-10}

if ! command -v nginx >/dev/null || [ ! -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] ||
    [ ! -e /usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so ]; then
    echo "installing nginx, libnginx-mod-http-lua and lua-cjson (bench only)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-core \
        libnginx-mod-http-lua lua-cjson >/dev/null
fi
ulimit -n "$(ulimit -Hn)"

dir=$(mktemp -d /tmp/tickforge-peer.XXXXXX)
tf_pid= ng_pid=
cleanup() {
    [ -n "$tf_pid" ] && kill "$tf_pid" 2>/dev/null
    [ -n "$ng_pid" ] && kill "$ng_pid" 2>/dev/null
    sleep 0.2
    rm -rf "$dir"
}
trap cleanup EXIT
tf_port=$((30000 + RANDOM % 15000))
ng_port=$((tf_port + 1))
mkdir -p "$dir/plugins" "$dir/nginx/logs"

# The validation both sides run (bench/candle_validate.lua): the same Lua,
# only the JSON library differs; tickforge's route is bench/candle_route.lua.
cp bench/candle_validate.lua "$dir/validate.lua"

{
    cat "$dir/validate.lua" bench/candle_route.lua
    cat <<'LUA'
tf.route("GET", "/v", function() return 200, { v = 1 } end, { auth = "none" })
LUA
} >"$dir/plugins/bench.lua"
cat >"$dir/tf.lua" <<LUA
return { listen = "127.0.0.1:$tf_port", plugins = { dir = "$dir/plugins" }, log = { level = "warn" },
         http = { workers = $WORKERS, max_connections = $((IDLE + 1000)), max_connections_per_ip = 0 },
         auth = { keys = { { key = "bench-admin-key-0001", roles = { "admin", "read" } } } } }
LUA

{
    echo "local cjson = require('cjson.safe')"
    cat "$dir/validate.lua"
    cat <<'LUA'
return function()
  ngx.req.read_body()
  local c = cjson.decode(ngx.req.get_body_data() or "")
  if c == nil then ngx.status = 400 ngx.say('{"ok":false,"error":"invalid JSON"}') return end
  local answer, err = validate(c)
  ngx.header["Content-Type"] = "application/json"
  if not answer then ngx.status = 400 ngx.print(cjson.encode({ ok = false, error = err })) return end
  ngx.print(cjson.encode(answer))
end
LUA
} >"$dir/nginx/candle.lua"
cat >"$dir/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes $WORKERS;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/logs/error.log warn;
worker_rlimit_nofile $((IDLE * 2 + 1000));
events { worker_connections $((IDLE + 1000)); }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  lua_package_path "$dir/nginx/?.lua;;";
  lua_package_cpath "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";
  init_by_lua_block { candle = require("candle") }
  server {
    listen 127.0.0.1:$ng_port;
    location = /health { default_type application/json; return 200 '{"status":"healthy"}'; }
    location = /candle { content_by_lua_block { candle() } }
  }
}
CONF

$BIN serve --config "$dir/tf.lua" 2>"$dir/tf.log" &
tf_pid=$!
nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" 2>"$dir/nginx/logs/start.log" &
ng_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$tf_port/health" >/dev/null && curl -sf "http://127.0.0.1:$ng_port/health" >/dev/null && break
    sleep 0.1
done

body='{"symbol":"EURUSD","timeframe":"M1","ts":"2025-10-20T10:01:00Z","open":1.1001,"high":1.1012,"low":1.0995,"close":1.1008,"volume":120,"spread":12}'
cat >"$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
for p in $tf_port $ng_port; do # both answer the candle, and agree on a bad one
    curl -sf -X POST --data-binary "$body" "http://127.0.0.1:$p/candle" >/dev/null || { echo "port $p: /candle failed" >&2; exit 1; }
done

run() { # url [wrk args] -> "req/s p99 errors"
    local url=$1
    shift
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$@" "$url" >"$dir/wrk.out" 2>&1 || true
    local rps p99 errs
    rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.out")
    p99=$(awk '$1=="99%" {print $2}' "$dir/wrk.out")
    errs=$( (grep -E 'Non-2xx|Socket errors' "$dir/wrk.out" || true) | tr '\n' ' ')
    echo "${rps:-0} ${p99:-?} ${errs:-none}"
}
best() { # name url [args]: best req/s of ROUNDS, alternating is the caller's job
    local name=$1 url=$2 r
    shift 2
    r=$(run "$url" "$@")
    echo "$r" >>"$dir/$name.runs"
}
for _ in $(seq "$ROUNDS"); do
    best tf_health "http://127.0.0.1:$tf_port/health"
    best ng_health "http://127.0.0.1:$ng_port/health"
    best tf_candle "http://127.0.0.1:$tf_port/candle" -s "$dir/post.lua"
    best ng_candle "http://127.0.0.1:$ng_port/candle" -s "$dir/post.lua"
done
top() { sort -k1 -g -r "$dir/$1.runs" | head -1; }
read -r th tp te < <(top tf_health)
read -r nh np ne < <(top ng_health)
read -r tc tcp tce < <(top tf_candle)
read -r nc ncp nce < <(top ng_candle)

# 10,000 idle keep-alive connections: each sends one request, reads the
# answer and stays open; then /health under wrk while they sit there.
tf_rss() { awk '/VmRSS/ {print $2}' /proc/"$tf_pid"/status; }
ng_rss() { ps -o rss= --ppid "$ng_pid" | awk '{s+=$1} END {print s}'; } # its workers
idle() { # port rss_fn -> "opened rss_kB p99"
    local port=$1 rss_fn=$2
    python3 - "$port" "$IDLE" "$dir/idle.ready" "$dir/idle.stop" <<'PY' &
import socket, sys, os, time
port, n, ready, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\n\r\n")
    conns.append(s)
ok = 0
for s in conns:
    s.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(rest) < length:
        rest += s.recv(4096)
    ok += head.startswith(b"HTTP/1.1 200")
open(ready, "w").write(str(ok))
while not os.path.exists(stop):
    time.sleep(0.1)
PY
    local py=$!
    for _ in $(seq 600); do [ -e "$dir/idle.ready" ] && break; sleep 0.1; done
    local opened rss r
    opened=$(cat "$dir/idle.ready" 2>/dev/null || echo 0)
    rss=$($rss_fn)
    r=$(run "http://127.0.0.1:$port/health")
    touch "$dir/idle.stop"
    wait "$py" 2>/dev/null || true
    rm -f "$dir/idle.ready" "$dir/idle.stop"
    echo "$opened $rss $(echo "$r" | awk '{print $2}')"
}
rss_tf_before=$(awk '/VmRSS/ {print $2}' /proc/$tf_pid/status)
rss_ng_before=$(ng_rss)
read -r t_open t_rss t_p99 < <(idle "$tf_port" tf_rss)
read -r n_open n_rss n_p99 < <(idle "$ng_port" ng_rss)

# reload under load
run "http://127.0.0.1:$tf_port/v" >"$dir/reload.out" &
wpid=$!
sleep 1
reload_fail=0
for i in $(seq "$RELOADS"); do
    sed -i "s/{ v = [0-9][0-9]* }/{ v = $((i + 1)) }/" "$dir/plugins/bench.lua"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-API-Key: bench-admin-key-0001' "http://127.0.0.1:$tf_port/admin/reload")
    [ "$code" = 200 ] || reload_fail=$((reload_fail + 1))
    sleep $(echo "($SECS - 2) / $RELOADS" | bc -l)
done
wait $wpid
read -r rl_rps _ rl_errs <"$dir/reload.out"

echo "wrk -t2 -c$CONNS -d${SECS}s keep-alive, best of $ROUNDS alternating runs; both servers $WORKERS workers,"
echo "no per-request logging; $(nproc) cores shared with wrk (and, on a shared machine, with others)"
echo
echo "| route | tickforge req/s | p99 | nginx+lua req/s | p99 | ratio |"
echo "|---|--:|--:|--:|--:|--:|"
printf '| GET /health vs `return 200` | %.0f | %s | %.0f | %s | %.2f |\n' "$th" "$tp" "$nh" "$np" "$(echo "$th / $nh" | bc -l)"
printf '| POST /candle (decode + validate in Lua) | %.0f | %s | %.0f | %s | %.2f |\n' "$tc" "$tcp" "$nc" "$ncp" "$(echo "$tc / $nc" | bc -l)"
[ "$te$ne$tce$nce" = "nonenonenonenone" ] || echo "errors: tf health $te; nginx health $ne; tf candle $tce; nginx candle $nce"
echo
echo "| $IDLE idle keep-alive connections | answered and held | RSS | GET /health p99 meanwhile |"
echo "|---|--:|--:|--:|"
echo "| tickforge | $t_open | $t_rss kB (idle before: $rss_tf_before kB) | $t_p99 |"
echo "| nginx+lua (workers) | $n_open | $n_rss kB (idle before: $rss_ng_before kB) | $n_p99 |"
echo
echo "reload under load: $RELOADS reloads during wrk on a Lua route: $rl_rps req/s, failed reloads: $reload_fail, wrk errors: $rl_errs"
