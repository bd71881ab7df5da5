-- The soak (make soak; not in CI): SOAK_SECONDS (600) of mixed load on the
-- real binary with the shipped plugins and a private PostgreSQL cluster of
-- its own: 4 clients posting one candle per request to /ingest, 2 posting
-- one tick per request to /ingest/tick, 2 reading /candles; a reload every
-- 10 s; PostgreSQL stopped for SOAK_DOWN seconds (10) in the middle. Every
-- client records each answer's status, so at the end the items acknowledged
-- (2xx: inserted, updated, duplicate or queued) are compared with the rows
-- stored, which must be equal. Prints a markdown report (requests and
-- errors by kind, RSS every SOAK_SAMPLE seconds) to stdout.
--   build/tickforge run bench/soak.lua        (make soak)
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")
local socket = require("socket")

local SECONDS = tonumber(os.getenv("SOAK_SECONDS") or "600")
local DOWN = tonumber(os.getenv("SOAK_DOWN") or "10")
local SAMPLE = tonumber(os.getenv("SOAK_SAMPLE") or "30")
local CANDLE_CLIENTS, TICK_CLIENTS, READ_CLIENTS = 4, 2, 2
local RUN = string.format("SOAK%d", os.time() % 100000)
local BASE = os.time{ year = 2024, month = 1, day = 1, hour = 0 }

local pg = S.cluster()
pg.migrate()
local srv = H.start_server{ shipped = true, config = {
  database = { url = pg.url, pool_size = 8 }, log = { level = "warn" },
  http = { max_connections_per_ip = 0 },
} }
local dir = H.tmpdir()
H.sh("mkdir -p " .. dir)

-- A client: a bash loop of curl requests until dir/stop exists; `make`
-- prints the request's method, url and body from n (the request's number);
-- one line "n status" per request in dir/<name>.log.
local function client(name, make)
  H.write(dir .. "/" .. name .. ".sh", string.format([[
n=0
while [ ! -e %s/stop ]; do
  n=$((n+1))
%s
  code=$(curl -s -o /dev/null -m 10 -w '%%{http_code}' -X "$method" -H "X-API-Key: $key" \
    -H 'Content-Type: application/json' ${body:+--data-binary "$body"} "$url")
  echo "$n $code" >> %s/%s.log
done
]], dir, make, dir, name))
  H.sh("(bash " .. dir .. "/" .. name .. ".sh >/dev/null 2>&1 &)")
end

for c = 1, CANDLE_CLIENTS do -- candle n: minute n after BASE, a new row each
  client("candles" .. c, string.format([[
  method=POST key=%s url=%s/ingest
  body="{\"symbol\":\"%s_C%d\",\"timeframe\":\"M1\",\"ts\":$((%d + n * 60)),\"open\":1.1,\"high\":1.2,\"low\":1.0,\"close\":1.15,\"volume\":$n}"]],
    H.INGEST_KEY, srv.base, RUN, c, BASE))
end
for c = 1, TICK_CLIENTS do -- tick n: second n after BASE
  client("ticks" .. c, string.format([[
  method=POST key=%s url=%s/ingest/tick
  body="{\"ticks\":[{\"symbol\":\"%s_T%d\",\"ts\":$((%d + n)),\"bid\":1.1,\"ask\":1.1002}]}"]],
    H.INGEST_KEY, srv.base, RUN, c, BASE))
end
for c = 1, READ_CLIENTS do
  client("reads" .. c, string.format([[
  method=GET key=%s url="%s/candles?symbol=%s_C%d&timeframe=M1&limit=100" body=]],
    H.READ_KEY, srv.base, RUN, c))
end

local function rss_kb()
  local status = H.read("/proc/" .. srv.pid .. "/status") or ""
  return tonumber(status:match("VmRSS:%s+(%d+)")) or 0
end

-- statuses per kind so far: { kind = { ["200"] = n, ... } }
local function counts()
  local out = {}
  for _, f in ipairs{ "candles", "ticks", "reads" } do out[f] = {} end
  for name in (H.sh("ls " .. dir) or ""):gmatch("[^\n]+") do
    local kind = name:match("^(%a+)%d+%.log$")
    if kind then
      for code in (H.read(dir .. "/" .. name) or ""):gmatch("%d+ (%d+)") do
        out[kind][code] = (out[kind][code] or 0) + 1
      end
    end
  end
  return out
end

local function total(t)
  local n = 0
  for _, v in pairs(t) do n = n + v end
  return n
end

local t0 = socket.gettime()
local samples, reloads, reload_fail = {}, 0, 0
local next_reload, next_sample, down_at = t0 + 10, t0, t0 + SECONDS / 2
local was_down = false
samples[1] = { t = 0, rss = rss_kb(), requests = 0 }
while socket.gettime() - t0 < SECONDS do
  local now = socket.gettime()
  if now >= next_reload then
    reloads = reloads + 1
    if srv:reload() ~= 200 then reload_fail = reload_fail + 1 end
    next_reload = next_reload + 10
  end
  if not was_down and now >= down_at then
    was_down = true
    pg.kill() -- every backend dies at once
    socket.sleep(DOWN)
    pg.start()
  end
  if now >= next_sample + SAMPLE then
    next_sample = next_sample + SAMPLE
    local c = counts()
    samples[#samples + 1] = { t = math.floor(now - t0), rss = rss_kb(),
                              requests = total(c.candles) + total(c.ticks) + total(c.reads) }
  end
  socket.sleep(0.2)
end
H.write(dir .. "/stop", "")
socket.sleep(12) -- the last requests end (curl -m 10)
-- a spooled batch is stored once the database is back: wait for the replay
local function stored(sql)
  return tonumber(pg.psql(sql)) or -1
end
local function acked(kind)
  local n = 0
  for code, k in pairs(counts()[kind]) do
    if code:match("^2") then n = n + k end
  end
  return n
end
local cand_sql = string.format("SELECT count(*) FROM market_data WHERE symbol LIKE '%s_C%%'", RUN)
local tick_sql = string.format("SELECT count(*) FROM ticks WHERE symbol LIKE '%s_T%%'", RUN)
for _ = 1, 120 do
  if stored(cand_sql) == acked("candles") and stored(tick_sql) == acked("ticks") then break end
  socket.sleep(0.5)
end
local c = counts()
local alive = srv:alive()

print(string.format("Soak: %d s, %d candle + %d tick + %d read clients (curl, one request each), a reload every 10 s " ..
  "(%d, %d failed), PostgreSQL killed (immediate) at %d s and started again %d s later; server %s at the end.",
  SECONDS, CANDLE_CLIENTS, TICK_CLIENTS, READ_CLIENTS, reloads, reload_fail, math.floor(SECONDS / 2), DOWN,
  alive and "alive" or "DEAD"))
print()
print("| kind | requests | answers by status | acknowledged (2xx) | rows stored | equal |")
print("|---|--:|---|--:|--:|---|")
for _, kind in ipairs{ "candles", "ticks", "reads" } do
  local parts = {}
  for code, n in pairs(c[kind]) do parts[#parts + 1] = code .. ": " .. n end
  table.sort(parts)
  local ack = acked(kind)
  local rows = kind == "candles" and stored(cand_sql) or kind == "ticks" and stored(tick_sql) or nil
  print(string.format("| %s | %d | %s | %d | %s | %s |", kind, total(c[kind]), table.concat(parts, ", "), ack,
    rows and tostring(rows) or "-", rows and (rows == ack and "yes" or "**NO**") or "-"))
end
print()
print("| time (s) | requests so far | RSS |")
print("|--:|--:|--:|")
for _, s in ipairs(samples) do print(string.format("| %d | %d | %.1f MB |", s.t, s.requests, s.rss / 1024)) end
print(string.format("| end | %d | %.1f MB |", total(c.candles) + total(c.ticks) + total(c.reads), rss_kb() / 1024))
srv:stop()
pg.stop()
os.execute("rm -rf " .. dir)
