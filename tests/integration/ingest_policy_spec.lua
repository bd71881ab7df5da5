-- The conflict policies, table-driven, through both ways a candle is
-- stored: alone in a request (core/candles.c's shared single-candle
-- statements) and inside a batch (one tf_put_candles call for the batch).
-- Both must give the same status at every step and leave the same row.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")

local T0 = 1760929200
local SNAP = {
  s1 = { open = 1.10, high = 1.20, low = 1.00, close = 1.15, volume = 10 },
  s2 = { open = 1.12, high = 1.30, low = 0.95, close = 1.25, volume = 12 }, -- a more complete bar
  s3 = { open = 1.10, high = 1.25, low = 1.00, close = 1.25, volume = 11 }, -- an older, less complete one
}
local STEPS = { "s1", "s1", "s2", "s3" }
local CASES = {
  merge = { statuses = { "inserted", "duplicate", "updated", "duplicate" },
            row = "1.10000000|1.30000000|0.95000000|1.25000000|12.00" },
  replace = { statuses = { "inserted", "duplicate", "updated", "updated" },
              row = "1.10000000|1.25000000|1.00000000|1.25000000|11.00" },
  ignore = { statuses = { "inserted", "duplicate", "duplicate", "duplicate" },
             row = "1.10000000|1.20000000|1.00000000|1.15000000|10.00" },
}

local function candle(sym, minute, snap)
  local c = { symbol = sym, timeframe = "M1", ts = T0 + 60 * minute }
  for k, v in pairs(SNAP[snap]) do c[k] = v end
  return c
end

local function row(sym, minute)
  return H.psql(string.format("SELECT open, high, low, close, volume FROM market_data WHERE symbol = '%s' AND ts = to_timestamp(%d)",
    sym, T0 + 60 * minute))
end

for _, policy in ipairs({ "merge", "replace", "ignore" }) do
  describe("policy " .. policy, function()
    local srv
    setup(function()
      H.migrate()
      srv = H.start_server{ plugins = S.plugin(), config = { ingest = { policy = policy } } }
    end)
    teardown(function() srv:stop() end)

    it("gives a candle alone and a candle in a batch the same status at every step, and the same row", function()
      local sym = "POL" .. math.random(1, 1e8)
      for step, snap in ipairs(STEPS) do
        local st, alone = srv:json("POST", "/ingest", tf.json.encode(candle(sym, 0, snap)), H.ingest_headers())
        assert.are.equal(200, st)
        -- minute 1 in a batch, with a new neighbour so the batch has two rows to send
        local st2, batch = srv:json("POST", "/ingest_batch",
          tf.json.encode({ candle(sym, 1, snap), candle(sym, 100 + step, "s1") }), H.ingest_headers())
        assert.are.equal(200, st2)
        local want = CASES[policy].statuses[step]
        assert.are.equal(want, alone.details[1].status, "alone, step " .. step)
        assert.are.equal(want, batch.details[1].status, "in a batch, step " .. step)
        assert.are.equal("inserted", batch.details[2].status)
      end
      assert.are.equal(CASES[policy].row, row(sym, 0))
      assert.are.equal(CASES[policy].row, row(sym, 1))
    end)

    if policy == "merge" then
      it("lets an EA candle replace a job-built bar whole, alone and in a batch", function()
        local sym = "POL" .. math.random(1, 1e8)
        H.psql(string.format([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, source)
          SELECT '%s', 'M1', to_timestamp(%d + 60 * m), 1.0, 1.5, 0.5, 1.4, 99, 'ticks' FROM generate_series(0, 1) m]], sym, T0))
        local _, alone = srv:json("POST", "/ingest", tf.json.encode(candle(sym, 0, "s1")), H.ingest_headers())
        local _, batch = srv:json("POST", "/ingest_batch",
          tf.json.encode({ candle(sym, 1, "s1"), candle(sym, 2, "s1") }), H.ingest_headers())
        assert.are.equal("updated", alone.details[1].status)
        assert.are.equal("updated", batch.details[1].status)
        for m = 0, 1 do
          assert.are.equal("1.10000000|1.20000000|1.00000000|1.15000000|10.00", row(sym, m))
        end
        assert.are.equal("ea|ea", H.psql(string.format(
          "SELECT string_agg(source, '|' ORDER BY ts) FROM market_data WHERE symbol = '%s' AND ts < to_timestamp(%d)", sym, T0 + 120)))
      end)
    end
  end)
end
