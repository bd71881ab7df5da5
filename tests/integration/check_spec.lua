-- `tickforge check` and each reload check plugins statically: luacheck's
-- undefined globals (warnings, file:line), tickforge's own knowledge (a
-- strategy naming a missing set, a set naming an unknown indicator or
-- parameter, an unknown tf.route option: errors that reject the reload),
-- and check lists indicator sets and strategies. Real binary, real files.
local H = require("tests.integration.helper")

local LUACHECK = H.sh("command -v luacheck"):match("%S+")

-- Writes plugins (name -> source) into a fresh folder with a config, runs
-- check on it with env; returns its output (stdout and stderr) and status.
local function check(plugins, env, config)
  local dir = H.tmpdir()
  H.sh("mkdir -p " .. dir .. "/plugins")
  for name, src in pairs(plugins) do
    H.sh("mkdir -p " .. (dir .. "/plugins/" .. name):match("^(.*)/"))
    H.write(dir .. "/plugins/" .. name, src)
  end
  local cfg = { plugins = { dir = dir .. "/plugins" }, lua = { path = { H.ROOT .. "/lua" } } }
  for k, v in pairs(config or {}) do cfg[k] = v end
  H.write(dir .. "/tf.lua", "return " .. H.lua_literal(cfg))
  local out = H.sh(string.format("cd %s && %s %s check --config tf.lua 2>&1; echo rc=$?", dir, env or "", H.BIN))
  os.execute("rm -rf " .. dir)
  return out, tonumber(out:match("rc=(%d+)%s*$"))
end

local TYPO = [[
tf.route("GET", "/typo", function(req)
  local x = undefined_var.y
  return 200, { ok = true, x = x }
end, { auth = "none" })
]]

describe("tickforge check", function()
  it("warns about an undefined global with file:line, and still passes", function()
    local out, rc = check({ ["typo.lua"] = TYPO })
    assert.are.equal(0, rc, out)
    if LUACHECK then
      assert.matches("plugins/typo.lua:2: warning: accessing undefined variable 'undefined_var' %(luacheck W113%)", out)
      assert.matches("1 warning\n", out)
    else
      assert.matches("note: luacheck not found: undefined globals were not checked", out)
    end
  end)

  it("declares exactly the sandbox's globals: tf and the allowed library functions pass, os.execute does not", function()
    if not LUACHECK then return pending("luacheck is not installed") end
    local out, rc = check({ ["p.lua"] = [[
tf.route("GET", "/p", function(req)
  return 200, { ok = true, t = os.time(), s = string.format("%d", 1), m = math.floor(1.5), j = tf.json.encode({}) }
end)
local run = os.execute
return run
]] })
    assert.are.equal(0, rc, out)
    assert.matches("plugins/p.lua:4: warning: accessing undefined field 'execute' of global 'os'", out)
    assert.matches("1 warning\n", out)
  end)

  it("says so when luacheck is not installed", function()
    local out, rc = check({ ["typo.lua"] = TYPO }, "TICKFORGE_LUACHECK=/nonexistent/luacheck")
    assert.are.equal(0, rc, out)
    assert.matches("note: /nonexistent/luacheck not found: undefined globals were not checked %(install Debian's lua%-check%)", out)
    assert.not_matches("undefined_var", out)
  end)

  it("rejects a strategy that names a missing set, naming the strategy, the set and the line", function()
    local out, rc = check({ ["s.lua"] = [[
tf.indicators.set("ema_pair", { { "ema", 5, as = "fast" }, { "ema", 20, as = "slow" } })

tf.strategy("cross", { symbols = { "EURUSD" }, timeframe = "M5", set = "ema_pairs" }, function(s) end)
]] })
    assert.are.equal(1, rc, out)
    assert.matches("plugins/s.lua:3: strategy 'cross': no indicator set named 'ema_pairs' %(sets: ema_pair, mt5_default%)", out)
  end)

  it("accepts a strategy whose set a later plugin defines", function()
    local out, rc = check({
      ["a_strategy.lua"] = 'tf.strategy("later", { symbols = "EURUSD", set = "z_set" }, function(s) end)\n',
      ["z_sets.lua"] = 'tf.indicators.set("z_set", { { "sma", 10 } })\n',
    })
    assert.are.equal(0, rc, out)
    assert.matches("strategy later: EURUSD M1, set z_set", out)
  end)

  it("warns when a strategy reads an output its set does not have", function()
    local out, rc = check({ ["s.lua"] = [[
tf.indicators.set("ema_pair", { { "ema", 5, as = "fast" }, { "ema", 20, as = "slow" } })
tf.strategy("cross", { symbols = { "EURUSD" }, set = "ema_pair" }, function(s)
  local f = s.values.fastt
  local g = s.values["slow"]
  return f[s.n] > g[s.n] and { side = "buy" } or nil
end)
]] })
    assert.are.equal(0, rc, out)
    assert.matches("plugins/s.lua:3: warning: strategy 'cross' reads values.fastt, but set ema_pair has no output fastt %(outputs: fast, slow%)", out)
    assert.not_matches("values.slow", out)
  end)

  it("loads jobs registered in the old order (schedule first) and says how to rewrite each call", function()
    local out, rc = check({ ["j.lua"] = [[
tf.job.every("5s", "old_every", function() end)
tf.job.cron("*/5 * * * *", "old_cron", function() end)
tf.job.every("new_every", "1m", function() end)
tf.job.cron("new_cron", "17 3 * * *", function() end)
]] }, "TICKFORGE_LUACHECK=off")
    assert.are.equal(0, rc, out)
    assert.matches('plugins/j.lua:1: warning: tf.job.every%("5s", "old_every", ...%) has the old argument order; ' ..
      'write tf.job.every%("old_every", "5s", fn, opts%)', out)
    assert.matches('plugins/j.lua:2: warning: tf.job.cron%("%*/5 %* %* %* %*", "old_cron", ...%) has the old argument order; ' ..
      'write tf.job.cron%("old_cron", "%*/5 %* %* %* %*", fn, opts%)', out)
    assert.not_matches("j.lua:[34]:", out)
    assert.matches("2 warnings", out)
    assert.matches("job +old_every every 5000 ms", out)
    assert.matches('job +old_cron cron "%*/5 %* %* %* %*"', out)
    assert.matches("job +new_every every 60000 ms", out)
  end)

  it("rejects a set naming an unknown indicator or parameter, with file:line and the choices", function()
    local out, rc = check({ ["s.lua"] = 'tf.indicators.set("x", { { "rsii", 14 } })\n' })
    assert.are.equal(1, rc, out)
    assert.matches("plugins/s.lua:1: indicator set 'x': unknown indicator 'rsii', did you mean 'rsi'%?", out)
    out, rc = check({ ["s.lua"] = 'tf.indicators.set("x", { { "rsi", periodd = 14 } })\n' })
    assert.are.equal(1, rc, out)
    assert.matches("plugins/s.lua:1: indicator set 'x': rsi has no parameter 'periodd' %(parameters: period, smoothing, as, convention%)", out)
    out, rc = check({ ["s.lua"] = 'tf.indicators.set("x", { { "rsi", 14, 0.5, 3 } })\n' })
    assert.are.equal(1, rc, out)
    assert.matches("plugins/s.lua:1: indicator set 'x': rsi takes at most 2 parameters %(period, smoothing%), got 3", out)
  end)

  it("rejects a tf.route option that is not one, and accepts auth, max_body and doc", function()
    local out, rc = check({ ["r.lua"] = 'tf.route("GET", "/r", function() end, { auht = "none" })\n' })
    assert.are.equal(1, rc, out)
    assert.matches("plugins/r.lua:1: tf.route: unknown option 'auht' %(options: auth, max_body, doc%)", out)
    out, rc = check({ ["r.lua"] = 'tf.route("GET", "/r", function() end, { auth = "none", max_body = "1KB", doc = { summary = "d" } })\n' })
    assert.are.equal(0, rc, out)
  end)

  it("rejects the indicators job's settings naming a set no plugin defines, once every plugin has loaded", function()
    local jobs = H.read(H.ROOT .. "/plugins/jobs.lua")
    local cfg = { jobs = { indicators = { targets = { { sets = { "zz_set" } } } } } }
    local out, rc = check({ ["jobs.lua"] = jobs }, nil, cfg)
    assert.are.equal(1, rc, out)
    assert.matches("jobs.indicators.targets%[1%].sets: no indicator set named 'zz_set'", out)
    out, rc = check({ ["jobs.lua"] = jobs, ["zz_sets.lua"] = 'tf.indicators.set("zz_set", { { "sma", 10 } })\n' }, nil, cfg)
    assert.are.equal(0, rc, out)
  end)

  it("lists indicator sets and strategies with their symbols, timeframe and set", function()
    local out, rc = check({ ["s.lua"] = [[
tf.indicators.set("ema_pair", { { "ema", 5, as = "fast" }, { "ema", 20, as = "slow" } })
tf.strategy("cross", { symbols = { "EURUSD", "GBPUSD" }, timeframe = "H1", set = "ema_pair" }, function(s) end)
]] })
    assert.are.equal(0, rc, out)
    assert.matches("2 indicator sets, 1 strategy;", out)
    assert.matches("\n  set      ema_pair: ema%(5%) ema%(20%), talib %-> indicator_values %(fast, slow%)", out)
    assert.matches("\n  set      mt5_default: rsi%(14%) macd%(12,26,9%)", out)
    assert.matches("\n  strategy cross: EURUSD,GBPUSD H1, set ema_pair %(.*plugins/s.lua:2%)", out)
  end)

  it("picks up a strategy file dropped into plugins/strategies/ without editing init.lua", function()
    local init = H.read(H.ROOT .. "/plugins/strategies/init.lua")
    local out, rc = check({
      ["strategies/init.lua"] = init,
      ["strategies/zz_mine.lua"] = 'tf.strategy("zz_mine", { symbols = "USDJPY", timeframe = "M15" }, function(s) end)\n',
      ["strategies/rsi_reversal.lua"] = H.read(H.ROOT .. "/plugins/strategies/rsi_reversal.lua"),
    })
    assert.are.equal(0, rc, out)
    assert.matches("strategy rsi_reversal: EURUSD M5, set mt5_default", out)
    assert.matches("strategy zz_mine: USDJPY M15, set mt5_default", out)
  end)
end)

describe("reload's static check", function()
  local srv
  setup(function() srv = H.start_server{ plugins = { ["ok.lua"] = 'tf.route("GET", "/ok", function() return 200, { ok = true } end)\n' } } end)
  teardown(function() if srv then srv:stop() end end)

  it("rejects a strategy naming a missing set; the old generation keeps serving", function()
    srv:write_plugin("s.lua", 'tf.strategy("cross", { symbols = "EURUSD", set = "nope" }, function(s) end)\n')
    local st, r = srv:reload()
    assert.are.equal(422, st)
    assert.matches("s.lua:1: strategy 'cross': no indicator set named 'nope'", r.error)
    assert.are.equal(200, (srv:request("GET", "/ok", nil, H.admin_headers())))
    srv:remove_plugin("s.lua")
  end)

  it("keeps luacheck's warnings for /admin/status and the log, and publishes the generation", function()
    if not LUACHECK then return pending("luacheck is not installed") end
    srv:write_plugin("typo.lua", TYPO)
    local st = srv:reload()
    assert.are.equal(200, st)
    local st2, status = srv:json("GET", "/admin/status", nil, H.admin_headers())
    assert.are.equal(200, st2)
    assert.are.equal(1, #status.warnings)
    assert.matches("typo.lua:2: warning: accessing undefined variable 'undefined_var'", status.warnings[1])
    assert.matches('msg="plugin warning"[^\n]*typo.lua:2: warning: accessing undefined variable', srv:log())
    srv:remove_plugin("typo.lua")
    assert.are.equal(200, (srv:reload()))
    status = select(2, srv:json("GET", "/admin/status", nil, H.admin_headers()))
    assert.are.equal(0, #status.warnings)
  end)
end)
