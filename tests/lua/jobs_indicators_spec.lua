-- The indicators job: after runs over growing history (new bars, a changed
-- forming bar), the stored values equal a batch computation over the full
-- history, for a set stored in market_data's columns and one stored in
-- indicator_values; a run with nothing new writes nothing.
local S = require("tests.lua.jobs_support")
local job = require("tickforge.jobs.indicators")

local ctx = function(wm) return { name = "indicators", watermark = wm, log = tf.log } end

local function pg_array(s)
  local parts = {}
  for i = 1, #s do parts[i] = s[i] ~= s[i] and "NULL" or string.format("%.17g", s[i]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Rows where the stored value differs from the batch value (NaN = NULL), as
-- the column type stores it, and the number of bars compared.
local function mismatches(set_name, symbol)
  local set = tf.indicators.get(set_name)
  local res = tf.indicators.compute(set, symbol, "M1")
  local bad, total = 0, 0
  for _, col in ipairs(set.columns) do
    local stored
    if set.target == "market_data" then
      stored = string.format("(SELECT %s FROM market_data WHERE symbol = $1 AND timeframe = 'M1' AND ts = to_timestamp(u.t))", col)
    else
      stored = string.format("(SELECT value FROM indicator_values WHERE symbol = $1 AND timeframe = 'M1' AND set_name = '%s' AND name = '%s' AND ts = to_timestamp(u.t))", set_name, col)
    end
    local cast = set.target == "market_data" and "::numeric(18,8)" or ""
    local r = tf.db.query(string.format([[SELECT count(*) FILTER (WHERE %s IS DISTINCT FROM u.v%s) AS bad, count(*) AS n
      FROM unnest($2::float8[], $3::float8[]) AS u(t, v)]], stored, cast), symbol, pg_array(res.time), pg_array(res.values[col]))[1]
    bad, total = bad + r.bad, total + r.n
  end
  return bad, total
end

describe("indicators job", function()
  local syms = {}
  setup(function()
    S.migrate()
    tf.indicators.set("t_jobs_custom", { { "ema", 10 }, { "rsi", 5, as = "rsi5" }, { "bbands", 12, 2, 2, as = "bb12" } })
  end)
  teardown(function() S.cleanup(syms) end)

  it("stores values equal to a full-history batch, run after run", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local cfg = { targets = { { symbols = { sym }, timeframes = { "M1" }, sets = { "mt5_default", "t_jobs_custom" } } } }
    local t = S.bars(sym, "M1", 1759000020 - 1759000020 % 60, 400, 60)
    local r = job.run(ctx(nil), cfg)
    assert.is_true(r.rows > 0)
    for _, set in ipairs({ "mt5_default", "t_jobs_custom" }) do
      local bad, n = mismatches(set, sym)
      assert.are.equal(0, bad, set); assert.is_true(n >= 400)
    end
    -- nothing new: nothing written
    assert.are.equal(0, job.run(ctx(r.watermark), cfg).rows)
    -- the forming bar changes and new bars arrive, three times
    local wm = r.watermark
    for _ = 1, 3 do
      tf.db.exec([[UPDATE market_data SET close = close + 0.0013, high = high + 0.0013
        WHERE symbol = $1 AND timeframe = 'M1' AND ts = to_timestamp($2)]], sym, t)
      t = S.bars(sym, "M1", t + 60, math.random(1, 40), 60)
      r = job.run(ctx(wm), cfg); wm = r.watermark
      assert.is_true(r.rows > 0)
      for _, set in ipairs({ "mt5_default", "t_jobs_custom" }) do
        assert.are.equal(0, (mismatches(set, sym)), set)
      end
    end
    -- only the forming bar changed
    tf.db.exec([[UPDATE market_data SET close = close - 0.002, low = low - 0.002
      WHERE symbol = $1 AND timeframe = 'M1' AND ts = to_timestamp($2)]], sym, t)
    r = job.run(ctx(wm), cfg)
    assert.is_true(r.rows > 0)
    assert.are.equal(0, (mismatches("mt5_default", sym)))
  end)

  it("names the key of a wrong setting", function()
    local ok, err = pcall(job.run, ctx(nil), { targets = { { sets = { "nope" } } } })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):match("jobs%.indicators%.targets%[1%]%.sets"))
    ok, err = pcall(job.run, ctx(nil), { warmup = 0 })
    assert.is_truthy(tostring(err):match("jobs%.indicators%.warmup"))
  end)
end)
