-- The kill test (issue 11): under a steady load of 8 clients sending candles
-- (batches and single candles) and ticks, the server is killed with SIGKILL
-- three times and PostgreSQL is stopped and started in between; after the
-- last restart the spool is replayed, and then every item that was answered
-- 2xx (inserted, updated, duplicate or queued) is in the database exactly
-- once, and no request is half stored (all of its items or none). Bounded to
-- well under a minute. A throw-away cluster and a spool directory that
-- outlives each server process.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")

local T0 = 1760929200
local CLIENTS = {
  { kind = "batch", path = "/ingest_batch" }, { kind = "batch", path = "/ingest_batch" },
  { kind = "batch", path = "/ingest_batch" }, { kind = "single", path = "/ingest" },
  { kind = "single", path = "/ingest" }, { kind = "ticks", path = "/ingest/tick" },
  { kind = "ticks", path = "/ingest/tick" }, { kind = "ticks", path = "/ingest/tick" },
}

-- How many items request i of a client of this kind sends.
local function items_of(kind, i)
  if kind == "single" then return 1 end
  if kind == "batch" then return 1 + i % 3 end
  return 1 + i % 4
end

-- A client: a shell loop that posts request 1, 2, ... until <dir>/stop
-- exists, and logs "i status answer" per request (status 000: no answer).
local CLIENT_SH = [[
#!/bin/sh
kind=$1 path=$2 sym=$3 url=$4 key=$5 log=$6 dir=$7
i=0
while [ ! -e "$dir/stop" ]; do
  i=$((i + 1))
  k=0; body=""
  case $kind in single) n=1 ;; batch) n=$((1 + i % 3)) ;; *) n=$((1 + i % 4)) ;; esac
  while [ $k -lt $n ]; do
    if [ $kind = ticks ]; then
      item="{\"symbol\":\"$sym\",\"ts\":]] .. T0 .. [[,\"ts_msc\":$((]] .. T0 .. [[000 + i * 10 + k)),\"bid\":1.1,\"ask\":1.2}"
    else
      item="{\"symbol\":\"$sym\",\"timeframe\":\"M1\",\"ts\":$((]] .. T0 .. [[ + 60 * (i * 3 + k))),\"open\":1.1,\"high\":1.2,\"low\":1.0,\"close\":1.15,\"volume\":$i}"
    fi
    if [ -z "$body" ]; then body=$item; else body="$body,$item"; fi
    k=$((k + 1))
  done
  case $kind in single) ;; batch) body="[$body]" ;; *) body="{\"ticks\":[$body]}" ;; esac
  out=$(curl -s -m 5 -w '\n%{http_code}' -H "X-API-Key: $key" --data-binary "$body" "$url$path" 2>/dev/null)
  code=$(printf '%s' "$out" | tail -n 1)
  answer=$(printf '%s' "$out" | head -n 1)
  echo "$i ${code:-000} $answer" >> "$log"
  sleep 0.02
done
]]

describe("killing the server under load", function()
  local pg, dir, srv
  setup(function()
    pg = S.cluster() -- durable: commits survive its immediate stops
    pg.migrate()
    -- a restart after an immediate stop syncs the data folder: one syncfs, not an fsync per file
    pg.psql("ALTER SYSTEM SET recovery_init_sync_method = 'syncfs'")
    dir = H.tmpdir()
    H.write(dir .. "/client.sh", CLIENT_SH)
  end)
  teardown(function()
    H.write(dir .. "/stop", "")
    if srv then srv:stop() end
    if pg then pg.stop() end
    os.execute("rm -rf " .. dir)
  end)

  it("loses and doubles nothing that was answered 2xx, and half-stores nothing", function()
    local port = H.free_port()
    local function start()
      srv = H.start_server{ port = port, plugins = S.plugin(), env = { DATABASE_URL = pg.url },
        config = { spool = { dir = dir .. "/spool" },
                   database = { checkout_timeout_ms = 1000, connect_timeout_s = 1, pool_size = 4 } } }
    end
    local function kill9()
      srv:signal("KILL")
      while srv:alive() and not H.sh("ps -o stat= -p " .. srv.pid):match("Z") do H.sleep(0.02) end
      os.execute("rm -rf " .. srv.dir)
    end
    start()
    local tag = S.symbol("K")
    local syms = {}
    for c, cl in ipairs(CLIENTS) do
      syms[c] = tag .. "_" .. c
      H.sh(string.format("sh %s/client.sh %s %s %s %s %s %s/c%d.log %s >/dev/null 2>&1 &",
        dir, cl.kind, cl.path, syms[c], srv.base, H.INGEST_KEY, dir, c, dir))
    end
    local t0 = os.time()
    H.sleep(2)
    kill9()                 -- 1: with the database up
    pg.kill()
    start()                 -- comes up with the database down: everything is spooled
    H.sleep(2)
    pg.start()
    H.sleep(0.7)            -- the replay is under way
    kill9()                 -- 2: mid-replay
    start()
    H.sleep(1.5)
    pg.kill()
    H.sleep(1)
    kill9()                 -- 3: with the database down and the spool filling
    start()
    H.sleep(0.5)
    pg.start()
    H.sleep(2)
    H.write(dir .. "/stop", "")
    H.sleep(1.5)            -- the clients finish their last request (curl -m 5 at worst)

    -- replayed
    local deadline, sp = os.time() + 20, nil
    repeat
      local st, v = srv:json("GET", "/admin/status", nil, H.admin_headers())
      sp = st == 200 and v.spool or nil
      if not (sp and sp.records == 0) then H.sleep(0.2) end
    until (sp and sp.records == 0) or os.time() > deadline
    assert.are.equal(0, sp and sp.records)
    assert.is_true(os.time() - t0 < 55, "bounded")

    -- what the database holds, per client
    local stored = {}
    for c, cl in ipairs(CLIENTS) do
      stored[c] = {}
      local sql = cl.kind == "ticks"
        and string.format("SELECT ts_msc, count(*) FROM ticks WHERE symbol = '%s' GROUP BY ts_msc", syms[c])
        or string.format("SELECT extract(epoch FROM ts)::bigint, count(*) FROM market_data WHERE symbol = '%s' GROUP BY 1", syms[c])
      for key, n in pg.psql(sql):gmatch("(%d+)|(%d+)") do
        stored[c][tonumber(key)] = tonumber(n)
      end
    end
    local acked, requests, queued, lost, doubled, half = 0, 0, 0, {}, {}, {}
    for c, cl in ipairs(CLIENTS) do
      for line in (H.read(dir .. "/c" .. c .. ".log") or ""):gmatch("[^\n]+") do
        local i, code, answer = line:match("^(%d+) (%d+) ?(.*)$")
        i = tonumber(i)
        requests = requests + 1
        local n = items_of(cl.kind, i)
        local keys = {}
        for k = 0, n - 1 do
          keys[#keys + 1] = cl.kind == "ticks" and (T0 * 1000 + i * 10 + k) or (T0 + 60 * (i * 3 + k))
        end
        local found = 0
        for _, key in ipairs(keys) do
          local m = stored[c][key] or 0
          if m > 1 then doubled[#doubled + 1] = string.format("client %d request %d key %d: %d rows", c, i, key, m) end
          found = found + (m > 0 and 1 or 0)
        end
        if found ~= 0 and found ~= n then
          half[#half + 1] = string.format("client %d request %d: %d of %d items (%s)", c, i, found, n, code)
        end
        if code:match("^2") then
          local a = tf.json.decode(answer)
          assert.is_true(a.ok, line)
          for _, d in ipairs(a.details) do
            assert.is_truthy(({ inserted = 1, updated = 1, duplicate = 1, queued = 1 })[d.status], line)
            queued = queued + (d.status == "queued" and 1 or 0)
          end
          acked = acked + n
          if found ~= n then lost[#lost + 1] = string.format("client %d request %d: %d of %d stored", c, i, found, n) end
        end
      end
    end
    assert.are.same({}, lost)
    assert.are.same({}, doubled)
    assert.are.same({}, half)
    assert.is_true(requests > 200, "load: " .. requests .. " requests")
    assert.is_true(acked > 200, "acknowledged items: " .. acked)
    assert.is_true(queued > 0, "some items went through the spool")
    print(string.format("# kill test: %d requests, %d items acknowledged (%d queued), %d s",
      requests, acked, queued, os.time() - t0))
  end)
end)
