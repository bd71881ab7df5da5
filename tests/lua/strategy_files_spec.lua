-- Strategies as a quant meets them: a file dropped into plugins/strategies/
-- runs without editing init.lua (the config's strategies.disabled still
-- applies), and a strategy reading an output its set does not have fails
-- naming the set's outputs, not with "attempt to index a nil value".
local S = require("tests.lua.jobs_support")
local job = require("tickforge.jobs.strategies")

local M5 = 300

describe("a strategy reading a missing output", function()
  local syms = {}
  setup(function() S.migrate() end)
  teardown(function() S.cleanup(syms) end)

  it("fails with the set's name and outputs, at the strategy's line", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local set = "ema_pair_" .. math.random(1e6)
    tf.indicators.set(set, { { "ema", 5, as = "fast" }, { "ema", 20, as = "slow" } })
    local name = "t_typo_" .. math.random(1e6)
    tf.strategy(name, { symbols = { sym }, timeframe = "M5", set = set, history = 30 }, function(s)
      local fast = s.values.fastt -- the typo
      return fast[s.n] > 0 and { side = "buy" } or nil
    end)
    S.bars(sym, "M5", 1759000200, 60, M5)
    local ok, err = pcall(job.run, { name = "strategies", log = tf.log }, { only = { name } })
    assert.is_false(ok)
    assert.matches(name .. " on " .. sym .. ": [^\n]*strategy_files_spec.lua:21: set " .. set ..
      " has no output fastt %(outputs: fast, slow%)", tostring(err))
  end)
end)

describe("a strategy file dropped into plugins/strategies/", function()
  local H, srv, sym
  setup(function()
    H = S.migrate()
    sym = S.symbol()
    srv = H.start_server{ plugins = { ["x.lua"] = "" }, config = {
      jobs = { enabled = true, tick_aggregator = { enabled = false }, rollups = { enabled = false },
               indicators = { enabled = false }, maintenance = { enabled = false }, strategies = { every = "1h" } },
      strategies = { disabled = { "zz_off" } },
    } }
    local d = srv.dir .. "/plugins"
    H.sh("mkdir -p " .. d .. "/strategies")
    for _, f in ipairs({ "jobs.lua", "signals.lua", "strategies/init.lua" }) do
      H.write(d .. "/" .. f, H.read(H.ROOT .. "/plugins/" .. f))
    end
  end)
  teardown(function()
    if srv then srv:stop() end
    S.cleanup({ sym })
  end)

  it("runs at the next reload without editing init.lua; a disabled one does not", function()
    local strat = [[
tf.strategy(%q, { symbols = { %q }, timeframe = "M5", history = 50 }, function(s)
  return { side = "buy", strength = 0.5, comment = "dropped in" }
end)
]]
    srv:write_plugin("strategies/zz_drop.lua", string.format(strat, "zz_drop", sym))
    srv:write_plugin("strategies/zz_off.lua", string.format(strat, "zz_off", sym))
    local st, r = srv:reload()
    assert.are.equal(200, st, tf.json.encode(r))
    S.bars(sym, "M5", 1759000200, 60, M5)
    local st2, rec = srv:json("POST", "/admin/jobs/strategies/run", nil, H.admin_headers())
    assert.are.equal(200, st2)
    assert.are.equal("ok", rec.result, tf.json.encode(rec))
    assert.are.equal("1 bars evaluated, 1 signals", rec.note)
    local _, v = srv:json("GET", "/signals?symbol=" .. sym, nil, { ["X-API-Key"] = H.READ_KEY })
    assert.are.equal(1, #v.signals)
    assert.are.equal("zz_drop", v.signals[1].strategy)
    assert.are.equal("dropped in", v.signals[1].comment)
  end)
end)
