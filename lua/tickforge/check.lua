-- tickforge.check: what tickforge itself knows is wrong with a set of
-- plugins once every one of them has loaded (so a strategy may name a set
-- another plugin defines later). lvm.c runs run() in the validating VM of
-- `tickforge check` and of every reload: its errors reject the generation,
-- its warnings are printed by check, logged and shown in /admin/status.
-- summary() is the list `tickforge check` prints. Reads registries only;
-- never touches the database.
local M = {}

local function add(list, fmt, ...) list[#list + 1] = string.format(fmt, ...) end

local after = {} -- checks plugins deferred until every plugin has loaded

--- after_load(fn): runs fn once every plugin has loaded (in check and each
-- reload's validation); an error it raises rejects the generation. For
-- settings that name what other plugins define (plugins/jobs.lua checks the
-- indicators job's sets this way).
function M.after_load(fn) after[#after + 1] = fn end

-- Warnings for reads of s.values.X / s.values["X"] in a strategy's source
-- that name no column of its set (a heuristic over the text; the same read
-- raises at run time, naming the set's outputs).
local function scan_values(st, set, source_of, warnings)
  local path, line, text = source_of(st.fn)
  if not path then return end
  local columns, seen = {}, {}
  for _, c in ipairs(set.columns) do columns[c] = true end
  for l in (text .. "\n"):gmatch("(.-)\n") do
    local code = l:gsub("%-%-.*$", "")
    for _, pat in ipairs({ "values%.([%a_][%w_]*)", "values%[%s*[\"']([^\"']+)[\"']%s*%]" }) do
      for name in code:gmatch(pat) do
        if not columns[name] and not seen[line .. name] then
          seen[line .. name] = true
          add(warnings, "%s:%d: warning: strategy '%s' reads values.%s, but set %s has no output %s (outputs: %s)",
            path, line, st.name, name, set.name, name, table.concat(set.columns, ", "))
        end
      end
    end
    line = line + 1
  end
end

--- run([source_of]) -> errors, warnings (lists of "file:line: ..." strings).
-- source_of(fn) -> path, first line, source text of fn (given by lvm.c).
function M.run(source_of)
  local errors, warnings = {}, {}
  for _, fn in ipairs(after) do
    local ok, err = pcall(fn)
    if not ok then errors[#errors + 1] = tostring(err) end
  end
  local strategy = rawget(tf, "strategy") -- loaded only when a plugin used it
  if strategy then
    for _, st in ipairs(strategy.list()) do
      local set = tf.indicators.get(st.set)
      if not set then
        add(errors, "%sstrategy '%s': no indicator set named '%s' (sets: %s)", st.where or "", st.name, st.set,
          table.concat(tf.indicators.list(), ", "))
      elseif source_of then
        scan_values(st, set, source_of, warnings)
      end
    end
  end
  return errors, warnings
end

local function entry_text(en)
  local p = {}
  for i = 1, #en.params do p[i] = tostring(en.params[i]) end
  for k, v in pairs(en.params) do
    if type(k) == "string" and k ~= "convention" then p[#p + 1] = k .. "=" .. tostring(v) end
  end
  return en.ind .. "(" .. table.concat(p, ",") .. ")"
end

--- summary() -> the lines `tickforge check` prints for indicator sets and
-- strategies, and their counts.
function M.summary()
  local lines, nsets, nstrategies = {}, 0, 0
  for _, name in ipairs(tf.indicators.list()) do
    local set = tf.indicators.get(name)
    local parts = {}
    for i, en in ipairs(set.entries) do parts[i] = entry_text(en) end
    nsets = nsets + 1
    add(lines, "  set      %s: %s, %s -> %s (%s)", name, table.concat(parts, " "), set.convention, set.target,
      table.concat(set.columns, ", "))
  end
  local strategy = rawget(tf, "strategy")
  for _, st in ipairs(strategy and strategy.list() or {}) do
    nstrategies = nstrategies + 1
    add(lines, "  strategy %s: %s %s, set %s (%s)", st.name, table.concat(st.symbols, ","), st.timeframe, st.set,
      (st.where or ""):gsub(":%s*$", ""))
  end
  return table.concat(lines, "\n"), nsets, nstrategies
end

return M
