-- `tickforge backtest STRATEGY ...`: runs tf.backtest over stored bars and
-- prints MT5-style figures; --json/--html write the report; --param with
-- several values sweeps the grid: the points are dealt round-robin to
-- --jobs child `tickforge backtest --points` processes (default: one per
-- core), each reading the bars and computing the set once, and a table
-- sorted by --sort is printed. Exit status: 0 done, 1 failed (database, strategy
-- error, no bars), 2 bad arguments. core/main.c calls the returned function.
local common = require("tickforge.cli.common")
local bt = require("tickforge.backtest")

local USAGE = [==[
usage: tickforge backtest [--config FILE] STRATEGY [options]

Replays stored bars through a strategy registered by the plugins
(tf.strategy) and prints the figures of MT5's Strategy Tester.

  --symbol S[,S...]     symbols (repeatable; default: the strategy's)
  --timeframe TF        M1 .. MN1 (default: the strategy's)
  --from D, --to D      range, YYYY-MM-DD[THH:MM[:SS]] UTC, inclusive
                        (default: every stored bar)
  --set NAME            indicator set (default: the strategy's)
  --cash N              initial deposit (10000)
  --commission N        money per lot on each fill, entry and exit (0)
  --slippage N          points against every market fill (0)
  --spread N            points; default: each bar's stored spread
  --spread-unit U       how stored spreads read: auto|points|price (auto)
  --point N             price of one point (0.00001)
  --lot N               lots per trade, or at strength 1 with --sizing strength (0.1)
  --lot-step N          volume step (0.01)
  --sizing fixed|strength   fixed lots, or lot x the signal's strength
  --contract N          units per lot (100000)
  --mode netting|hedging    one position per symbol, or one per signal
  --history N           bars the strategy sees (default: the strategy's)
  --param k=v[,v...]    strategy parameter (repeatable); several values sweep
  --sort FIGURE         sweep table order (net_profit); drawdowns sort lowest first
  --jobs N              sweep processes at once (default: number of cores)
  --json FILE           write the report as JSON (a sweep: every point's figures)
  --html FILE           write a self-contained HTML report (single runs)
  --trades              print the trade list
  --quiet               print nothing on success
  --points FILE         (a sweep's children) run the params listed in FILE, reading the bars once
]==]

local SPEC = {
  symbol = "multi", timeframe = "string", from = "string", to = "string", set = "string", cash = "number",
  commission = "number", slippage = "number", spread = "number", ["spread-unit"] = "string", point = "number",
  lot = "number", ["lot-step"] = "number", sizing = "string", contract = "number", mode = "string",
  history = "number", param = "multi", sort = "string", jobs = "number", json = "string", html = "string",
  trades = "flag", quiet = "flag", help = "flag", points = "string",
}

local ASCENDING = { max_drawdown = true, max_drawdown_pct = true, drawdown_absolute = true,
                    balance_max_drawdown = true, balance_max_drawdown_pct = true }

local function fmt(v)
  if v == nil then return "-" end
  if type(v) ~= "number" then return tostring(v) end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%.2f", v)
end
local FMT_INT = { trades = true, long_trades = true, short_trades = true, wins = true, losses = true,
                  max_consecutive_wins = true, max_consecutive_losses = true }

local function write_file(path, text)
  local f, err = io.open(path, "w")
  if not f then error(string.format("cannot write %s: %s", path, tostring(err)), 0) end
  f:write(text)
  f:close()
end

-- The engine's options from the command line (params: one value each).
local function engine_options(strategy, o, params)
  local symbols = common.list(o.symbol)
  return {
    strategy = strategy, symbols = #symbols > 0 and symbols or nil, timeframe = o.timeframe,
    from = o.from, to = o.to, set = o.set, cash = o.cash, commission = o.commission, slippage = o.slippage,
    spread = o.spread, spread_unit = o["spread-unit"], point = o.point, lot = o.lot, lot_step = o["lot-step"],
    sizing = o.sizing, contract = o.contract, mode = o.mode,
    history = o.history and math.tointeger(o.history) or o.history, params = params,
  }
end

-- --param k=v1,v2 ... -> { {name, {values}} } in order, checked.
local function parse_params(list)
  local out, seen = {}, {}
  for _, p in ipairs(list or {}) do
    local k, vs = p:match("^([%w_]+)=(.+)$")
    if not k then common.usage_error("--param: '%s' must be name=value[,value...]", p) end
    if seen[k] then common.usage_error("--param: %s given twice", k) end
    seen[k] = true
    local values = {}
    for v in vs:gmatch("[^,]+") do
      local n = tonumber(v)
      if not n or n ~= n then common.usage_error("--param %s: '%s' is not a number", k, v) end
      values[#values + 1] = n
    end
    out[#out + 1] = { k, values }
  end
  return out
end

local function print_summary(r, o)
  local s = r.summary
  print(string.format("%s on %s %s, %s .. %s: %d bars, %d signals, %.2f s", r.strategy,
    table.concat(r.symbols, ","), r.timeframe, r.from or "first bar", r.to or "last bar", r.bars, #r.signals, r.elapsed_s))
  local keys = {}
  for k, v in pairs(r.params) do keys[#keys + 1] = k .. "=" .. fmt(v) end
  table.sort(keys)
  if #keys > 0 then print("params: " .. table.concat(keys, " ")) end
  local rows = bt.FIGURES
  local half = math.ceil(#rows / 2)
  for i = 1, half do
    local a, b = rows[i], rows[i + half]
    local va = FMT_INT[a[1]] and tostring(math.tointeger(s[a[1]]) or s[a[1]]) or fmt(s[a[1]])
    local line = string.format("  %-28s %14s", a[2], va)
    if b then
      local vb = FMT_INT[b[1]] and tostring(math.tointeger(s[b[1]]) or s[b[1]]) or fmt(s[b[1]])
      line = line .. string.format("    %-30s %14s", b[2], vb)
    end
    print(line)
  end
  if o.trades then
    print(string.format("\n  %4s %-10s %-4s %6s %-20s %12s %-20s %12s %-7s %12s", "#", "symbol", "side", "lots",
      "entry", "price", "exit", "price", "reason", "net"))
    for _, t in ipairs(r.trades) do
      print(string.format("  %4d %-10s %-4s %6.2f %-20s %12.5f %-20s %12.5f %-7s %12.2f", t.id, t.symbol, t.side,
        t.volume, bt.iso(t.entry_time), t.entry_price, bt.iso(t.exit_time), t.exit_price, t.exit_reason, t.net))
    end
  end
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The sweep: every grid point as a child process, `jobs` at a time.
local function sweep(strategy, o, grid, argv)
  local sort = o.sort or "net_profit"
  local known = {}
  for _, f in ipairs(bt.FIGURES) do known[f[1]] = true end
  if not known[sort] then common.usage_error("--sort: '%s' is not a figure (net_profit, profit_factor, sharpe_ratio, ...)", sort) end
  if o.html then common.usage_error("--html writes one run's report; drop it for a sweep, or give one value per --param") end
  local jobs = o.jobs and math.tointeger(o.jobs)
  if o.jobs and (not jobs or jobs < 1 or jobs > 64) then common.usage_error("--jobs must be an integer in 1..64") end
  if not jobs then
    local p = io.popen("nproc 2>/dev/null")
    jobs = tonumber(p:read("l") or "") or 2
    p:close()
  end
  -- the arguments every child shares: ours minus the sweep's own
  local base, skip = {}, { param = true, json = true, html = true, sort = true, jobs = true, trades = true, quiet = true,
                         points = true }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, value = a:match("^%-%-([%w_%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w_%-]+)$")
    if name and skip[name] then
      if not value and SPEC[name] ~= "flag" then i = i + 1 end
    else
      base[#base + 1] = q(a)
    end
    i = i + 1
  end
  -- the grid's points
  local points = { {} }
  for _, pv in ipairs(grid) do
    local next_points = {}
    for _, p in ipairs(points) do
      for _, v in ipairs(pv[2]) do
        local np = {}
        for k, x in pairs(p) do np[k] = x end
        np[pv[1]] = v
        next_points[#next_points + 1] = np
      end
    end
    points = next_points
  end
  if #points > 10000 then common.usage_error("the grid has %d points; at most 10000", #points) end
  -- round-robin into `jobs` children; each reads the bars and computes the
  -- set once, then replays its points (tf.backtest.run's cache)
  local tmp = os.tmpname()
  local exe = arg and arg.exe or "tickforge"
  local cfg = arg and arg.config and ("--config " .. q(arg.config) .. " ") or ""
  local results, failed = {}, {}
  local t0 = os.time()
  local chunks = {}
  for k, p in ipairs(points) do
    local c = (k - 1) % jobs + 1
    chunks[c] = chunks[c] or {}
    table.insert(chunks[c], p)
  end
  local running = {}
  for c, list in ipairs(chunks) do
    local pfile, out = string.format("%s.%d.points.json", tmp, c), string.format("%s.%d.json", tmp, c)
    write_file(pfile, tf.json.encode(tf.json.array(list)))
    local cmd = string.format("%s backtest %s%s --points %s --quiet --json %s 2>&1; echo \"exit=$?\"", q(exe), cfg,
      table.concat(base, " "), q(pfile), q(out))
    running[#running + 1] = { pfile = pfile, out = out, n = #list, pipe = io.popen(cmd) }
  end
  for _, r in ipairs(running) do
    local text = r.pipe:read("a")
    r.pipe:close()
    local f = io.open(r.out)
    if f and text:match("exit=0%s*$") then
      local rep = tf.json.decode(f:read("a"))
      f:close()
      for _, x in ipairs(rep.results) do
        for k, v in pairs(x.summary) do -- JSON has no infinity: a child's inf (no loss: profit factor) came back null
          if v == tf.json.null then x.summary[k] = math.huge end
        end
        results[#results + 1] = x
      end
      for _, x in ipairs(rep.failed) do failed[#failed + 1] = x end
    else
      if f then f:close() end
      failed[#failed + 1] = string.format("%d points: %s", r.n, (text:gsub("exit=%d+%s*$", ""):gsub("%s+$", "")))
    end
    os.remove(r.out)
    os.remove(r.pfile)
  end
  os.remove(tmp)
  local asc = ASCENDING[sort]
  table.sort(results, function(a, b)
    local x, y = a.summary[sort] or -math.huge, b.summary[sort] or -math.huge
    if x == y then return false end
    if asc then return x < y end
    return x > y
  end)
  if o.json then
    for _, r in ipairs(results) do
      tf.json.order(r, { "params", "summary" })
    end
    write_file(o.json, tf.json.encode({ ok = #failed == 0, strategy = strategy, sort = sort, points = #points,
      results = tf.json.array(results), failed = tf.json.array(failed) }))
  end
  if not o.quiet then
    print(string.format("%s: %d points, %d at a time, %d s, sorted by %s%s", strategy, #points, math.min(jobs, #points),
      os.time() - t0, sort, asc and " (lowest first)" or ""))
    local cols = { "net_profit", "profit_factor", "expected_payoff", "max_drawdown_pct", "recovery_factor",
                   "sharpe_ratio", "trades", "win_rate" }
    local present = {}
    for _, c in ipairs(cols) do present[c] = true end
    if not present[sort] then cols[#cols + 1] = sort end
    local head = {}
    for _, pv in ipairs(grid) do head[#head + 1] = string.format("%10s", pv[1]) end
    for _, c in ipairs(cols) do head[#head + 1] = string.format("%16s", c) end
    print(table.concat(head, " "))
    for _, r in ipairs(results) do
      local line = {}
      for _, pv in ipairs(grid) do line[#line + 1] = string.format("%10s", fmt(r.params[pv[1]])) end
      for _, c in ipairs(cols) do line[#line + 1] = string.format("%16s", fmt(r.summary[c])) end
      print(table.concat(line, " "))
    end
  end
  if #failed > 0 then
    error(string.format("%d of %d points failed:\n  %s", #failed, #points, table.concat(failed, "\n  ")), 0)
  end
  return 0
end

-- A sweep's child: the points in the JSON file o.points, one load for all.
local function run_points(opts, o)
  local f = io.open(o.points)
  if not f then common.usage_error("--points: cannot read %s", o.points) end
  local list = tf.json.decode(f:read("a") or "")
  f:close()
  if type(list) ~= "table" then common.usage_error("--points: %s is not a JSON list of params", o.points) end
  local cache, results, failed = {}, {}, {}
  for _, p in ipairs(list) do
    opts.params = p
    local ok, r = pcall(bt.run, opts, cache)
    if ok then
      local x = { params = p, summary = r.summary }
      tf.json.order(x, { "params", "summary" })
      results[#results + 1] = x
    else
      failed[#failed + 1] = tf.json.encode(p) .. ": " .. tostring(r)
    end
  end
  if o.json then
    write_file(o.json, tf.json.encode({ results = tf.json.array(results), failed = tf.json.array(failed) }))
  end
  return 0
end

local function main(...)
  local argv = { ... }
  local o, pos = common.parse(argv, SPEC)
  if o.help then
    io.write(USAGE)
    return 0
  end
  if #pos ~= 1 then common.usage_error("give exactly one STRATEGY name (see --help), got %d", #pos) end
  local strategy = pos[1]
  for _, e in ipairs(common.load_plugins()) do io.stderr:write("tickforge backtest: warning: plugin: " .. e .. "\n") end
  local grid = parse_params(o.param)
  local params, is_sweep = {}, false
  for _, pv in ipairs(grid) do
    params[pv[1]] = pv[2][1]
    if #pv[2] > 1 then is_sweep = true end
  end
  local opts = engine_options(strategy, o, params)
  local ok, err = pcall(bt.options, opts)
  if not ok then common.usage_error("%s", tostring(err):gsub("^backtest: ", "")) end
  if o.points then return run_points(opts, o) end
  if is_sweep then return sweep(strategy, o, grid, argv) end
  local r = bt.run(opts)
  if r.bars == 0 then
    error(string.format("no stored %s bars of %s%s%s", r.timeframe, table.concat(r.symbols, ","),
      r.from and (" from " .. r.from) or "", r.to and (" to " .. r.to) or ""), 0)
  end
  if o.json then write_file(o.json, bt.to_json(r)) end
  if o.html then write_file(o.html, require("tickforge.backtest_html").render(r)) end
  if not o.quiet then print_summary(r, o) end
  return 0
end

return function(...) return common.run(main, "backtest", ...) end
