-- Every shipped JSON route answers with a stable key order, "ok" first:
-- the same request sent again and again (answered by different worker VMs,
-- whose Lua tables hash in different orders) gives the keys in the same
-- order every time, so logs and diffs stay readable and naive EA parsers
-- keep working. Real binary with the shipped plugins, real HTTP.
local H = require("tests.integration.helper")

-- The object keys of a JSON text in the order they appear.
local function keys(text)
  local out = {}
  for k in text:gmatch('"([^"\\]*)"%s*:') do out[#out + 1] = k end
  return table.concat(out, ",")
end

describe("JSON answers", function()
  local srv, sym
  setup(function()
    H.migrate()
    sym = string.format("KO_%d_%d", os.time() % 100000, math.random(1e6))
    srv = H.start_server{ shipped = true, config = { http = { threads = 4 } } }
    tf.db.exec([[INSERT INTO signals (strategy, symbol, timeframe, ts, side, strength, price, comment)
      VALUES ('key_order', $1, 'M1', now(), 'buy', 0.5, 1.1, 'c')]], sym)
  end)
  teardown(function()
    if srv then srv:stop() end
    tf.db.exec("DELETE FROM signals WHERE symbol = $1", sym)
    tf.db.exec("DELETE FROM market_data WHERE symbol = $1", sym)
    tf.db.exec("DELETE FROM ticks WHERE symbol = $1", sym)
  end)

  it("keep their key order from one identical request to the next, on every shipped route, ok first", function()
    local candle = string.format('{"symbol":"%s","timeframe":"M1","ts":"2025-10-20T03:00:00Z","open":1.1,' ..
      '"high":1.2,"low":1.0,"close":1.15,"volume":10,"spread":2}', sym)
    local admin, ingest = H.admin_headers(), H.ingest_headers()
    local read = { ["X-API-Key"] = H.READ_KEY }
    local requests = {
      { "GET", "/health" },
      { "GET", "/admin/status", nil, admin },
      { "GET", "/admin/jobs", nil, admin },
      { "POST", "/admin/reload", nil, admin },
      { "POST", "/admin/jobs/no_such_job/run", "{}", admin },
      { "GET", "/hello/world" },
      { "POST", "/ingest", candle, ingest },
      { "POST", "/ingest", '{"items":[' .. candle .. "]}", ingest },
      { "POST", "/ingest_batch", "[" .. candle .. "]", ingest },
      { "POST", "/ingest_batch", '[{"symbol":"' .. sym .. '","timeframe":"M7"}]', ingest },
      { "POST", "/ingest_batch", "[", ingest },
      { "POST", "/ingest/tick", string.format('{"ticks":[{"symbol":"%s","ts":"2025-10-20T03:00:01Z","bid":1.1,"ask":1.2}]}', sym), ingest },
      { "GET", "/signals?symbol=" .. sym, nil, read },
      { "GET", "/signals?since=abc", nil, read },
      { "GET", "/no/such/route", nil, read },
      { "GET", "/signals", nil, {} },
    }
    for _, rq in ipairs(requests) do
      local first
      for i = 1, 8 do
        local st, body = srv:request(rq[1], rq[2], rq[3], rq[4])
        assert.is_number(st, rq[2])
        local k = keys(body)
        assert.is_true(#k > 0, rq[1] .. " " .. rq[2] .. ": " .. body)
        if i == 1 then
          first = k
          if rq[2] ~= "/health" then -- /health keeps the inherited contract: {"status":...}
            assert.matches("^ok,", k, nil, nil, rq[1] .. " " .. rq[2] .. ": " .. body)
          end
        else
          assert.are.equal(first, k, rq[1] .. " " .. rq[2] .. " answer " .. i .. ": " .. body)
        end
      end
    end
  end)
end)
