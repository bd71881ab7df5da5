-- tf.indicators: sets over candles stored in market_data (real PostgreSQL,
-- inside `tickforge run`). Each test uses its own symbol and removes it.
local function seed(symbol, n)
  local t0 = 1704067200
  local ts, o, h, l, c, v = {}, {}, {}, {}, {}, {}
  local p = 1.1
  for i = 1, n do
    local x = p * (1 + (math.sin(i * 0.37) + math.cos(i * 0.11)) * 0.001)
    ts[i], o[i], c[i] = t0 + (i - 1) * 3600, p, x
    h[i], l[i], v[i] = math.max(p, x) + 0.0003, math.min(p, x) - 0.0002, 100 + i % 17
    p = x
  end
  local function arr(t)
    local s = {}
    for i = 1, #t do s[i] = string.format("%.17g", t[i]) end
    return "{" .. table.concat(s, ",") .. "}"
  end
  tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume)
    SELECT $1, 'H1', to_timestamp(t), o, h, l, c, v
    FROM unnest($2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[]) AS u(t, o, h, l, c, v)]],
    symbol, arr(ts), arr(o), arr(h), arr(l), arr(c), arr(v))
  return t0
end

local function cleanup(symbol)
  tf.db.exec("DELETE FROM market_data WHERE symbol = $1", symbol)
  pcall(tf.db.exec, "DELETE FROM indicator_values WHERE symbol = $1", symbol)
end

describe("tf.indicators", function()
  it("defines sets, names their columns, and rejects clashes", function()
    local s = tf.indicators.get("mt5_default")
    assert.are.equal("market_data", s.target)
    assert.are.same({ "rsi", "macd", "macd_signal", "macd_hist", "atr", "bb_upper", "bb_middle", "bb_lower" },
      s.columns)
    local x = tf.indicators.set("spec_x", { { "rsi", 14 }, { "rsi", 7, as = "rsi7" }, { "stoch" } })
    assert.are.equal("indicator_values", x.target)
    assert.are.same({ "rsi", "rsi7", "stoch_k", "stoch_d" }, x.columns)
    assert.has_error(function() tf.indicators.set("bad", { { "rsi", 14 }, { "rsi", 7 } }) end)
    assert.has_error(function() tf.indicators.set("bad", { { "nope" } }) end)
    assert.has_error(function() tf.indicators.set("bad", { { "rsi", 1 } }) end)
  end)

  it("computes the default set over stored candles exactly as tf.ind does", function()
    local sym = "SPEC_IND_A"
    cleanup(sym)
    local t0 = seed(sym, 800)
    local res = tf.indicators.compute("mt5_default", sym, "H1", t0 + 400 * 3600, nil)
    assert.are.equal(800, res.n)
    assert.are.equal(401, res.first)
    local bars = tf.db.columns("SELECT high::float8 AS high, low::float8 AS low, close::float8 AS close " ..
      "FROM market_data WHERE symbol = $1 ORDER BY ts", sym)
    local rsi = tf.ind.rsi(bars.close, { 14, convention = "mt5" })
    local atr = tf.ind.atr(bars, { 14, convention = "mt5" })
    assert.are.equal(rsi[800], res.values.rsi[800])
    assert.are.equal(atr[800], res.values.atr[800])
    cleanup(sym)
  end)

  it("stores the default set into market_data's indicator columns for [from, to] only", function()
    local sym = "SPEC_IND_B"
    cleanup(sym)
    local t0 = seed(sym, 500)
    local written = tf.indicators.update("mt5_default", sym, "H1", t0 + 300 * 3600, t0 + 399 * 3600)
    assert.are.equal(100, written)
    local n = tf.db.query("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND rsi IS NOT NULL " ..
      "AND bb_upper IS NOT NULL AND macd_hist IS NOT NULL", sym)[1].n
    assert.are.equal(100, n)
    local row = tf.db.query("SELECT rsi::float8 AS rsi FROM market_data WHERE symbol = $1 AND ts = to_timestamp($2)",
      sym, t0 + 399 * 3600)[1]
    local full = tf.indicators.compute("mt5_default", sym, "H1", nil, nil)
    assert.is_true(math.abs(row.rsi - full.values.rsi[400]) < 1e-8) -- NUMERIC(18,8)
    cleanup(sym)
  end)

  it("stores other sets in indicator_values, one row per bar and column, idempotently", function()
    local sym = "SPEC_IND_C"
    cleanup(sym)
    local t0 = seed(sym, 300)
    tf.indicators.set("spec_other", { { "adx", 14 }, { "vwap" }, convention = "mt5" })
    assert.are.equal(20, (tf.indicators.update("spec_other", sym, "H1", t0 + 290 * 3600, nil)))
    assert.are.equal(20, (tf.indicators.update("spec_other", sym, "H1", t0 + 290 * 3600, nil)))
    local rows = tf.db.query("SELECT name, count(*) AS n FROM indicator_values WHERE symbol = $1 " ..
      "GROUP BY name ORDER BY name", sym)
    assert.are.same({ { name = "adx", n = 10 }, { name = "vwap", n = 10 } }, rows)
    cleanup(sym)
  end)

  it("warms up from fewer bars when asked, and still fills every requested bar", function()
    local sym = "SPEC_IND_D"
    cleanup(sym)
    local t0 = seed(sym, 600)
    local res = tf.indicators.compute("mt5_default", sym, "H1", t0 + 500 * 3600, nil, { warmup = 50 })
    assert.are.equal(51, res.first) -- lookback 33 < 50 bars of warm-up
    assert.are.equal(150, res.n)
    for i = res.first, res.n do assert.is_true(res.values.macd_signal[i] == res.values.macd_signal[i]) end
    -- more warm-up than history: everything before `from` is loaded
    local all = tf.indicators.compute("mt5_default", sym, "H1", t0 + 500 * 3600, nil, { warmup = 10000 })
    assert.are.equal(501, all.first)
    assert.are.equal(600, all.n)
    cleanup(sym)
  end)
end)
