-- A strict parser of the Prometheus text exposition format (0.0.4), for the
-- specs: every line is checked, and anything a scraper could misread is an
-- error "line N: why". Stricter than Prometheus where our output has no
-- reason to differ: every family has a TYPE, no blank lines, no timestamps.
--
--   local prom = require("tests.integration.prom")
--   local fams, err = prom.parse(text)
--   fams["http_requests_total"] = { type = "counter", help = "...",
--     samples = { { name = ..., labels = { route = "/x" }, value = 3 }, ... } }
--   prom.value(fams, "name", { route = "/x" })  -- one sample's value, or nil
local M = {}

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"
local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }

-- A float as Go's strconv.ParseFloat reads it in this format.
local function number(s)
  if s == "+Inf" or s == "Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if s == "NaN" then return 0 / 0 end
  if not s:match("^[-+]?%d*%.?%d*[eE]?[-+]?%d*$") or not s:match("%d") then return nil end
  if s:match("[eE]$") or s:match("[eE][-+]$") then return nil end
  return tonumber(s)
end

-- Parses the label block starting after "{" at position i of line; returns
-- labels, the position after "}", or nil, why.
local function labels(line, i)
  local out, order = {}, {}
  while true do
    local c = line:sub(i, i)
    if c == "}" then return out, i + 1, order end
    local name, j = line:match("^([a-zA-Z_][a-zA-Z0-9_]*)=\"()", i)
    if not name then return nil, "bad label name or missing =\" at column " .. i end
    if out[name] then return nil, "label " .. name .. " given twice" end
    local buf = {}
    i = j
    while true do
      c = line:sub(i, i)
      if c == "" then return nil, "unterminated label value of " .. name end
      if c == "\"" then break end
      if c == "\\" then
        local e = line:sub(i + 1, i + 1)
        if e == "\\" then buf[#buf + 1] = "\\"
        elseif e == "\"" then buf[#buf + 1] = "\""
        elseif e == "n" then buf[#buf + 1] = "\n"
        else return nil, "bad escape \\" .. e .. " in label " .. name end
        i = i + 2
      else
        buf[#buf + 1] = c
        i = i + 1
      end
    end
    out[name] = table.concat(buf)
    order[#order + 1] = name
    i = i + 1
    c = line:sub(i, i)
    if c == "," then i = i + 1
    elseif c ~= "}" then return nil, "expected , or } after label " .. name end
  end
end

-- The family a sample name belongs to, given the families typed so far.
local function family_of(fams, name)
  for _, suffix in ipairs({ "_bucket", "_sum", "_count" }) do
    local base = name:sub(1, #name - #suffix)
    if name:sub(-#suffix) == suffix and fams[base] and (fams[base].type == "histogram" or
        (fams[base].type == "summary" and suffix ~= "_bucket")) then
      return base, suffix
    end
  end
  return name, ""
end

local function series_key(name, ls)
  local keys = {}
  for k in pairs(ls) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = { name }
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. string.format("%q", ls[k]) end
  return table.concat(parts, ",")
end

-- Histogram checks: per label set, increasing le, cumulative counts, +Inf
-- equal to _count, a _sum.
local function check_histogram(f)
  local sets = {}
  for _, s in ipairs(f.samples) do
    local ls = {}
    for k, v in pairs(s.labels) do if k ~= "le" then ls[k] = v end end
    local key = series_key("", ls)
    local set = sets[key] or { buckets = {} }
    sets[key] = set
    if s.suffix == "_bucket" then
      if not s.labels.le then return "line " .. s.line .. ": a _bucket sample without le" end
      local le = number(s.labels.le)
      if not le then return "line " .. s.line .. ": le=\"" .. s.labels.le .. "\" is not a number" end
      set.buckets[#set.buckets + 1] = { le = le, v = s.value, line = s.line }
    elseif s.suffix == "_sum" then set.sum = s.value
    elseif s.suffix == "_count" then set.count = s.value
    else return "line " .. s.line .. ": sample " .. s.name .. " in histogram " .. f.name end
    if s.suffix ~= "_bucket" and s.labels.le then return "line " .. s.line .. ": le on " .. s.name end
  end
  for key, set in pairs(sets) do
    local where = f.name .. "{" .. key:sub(2) .. "}"
    if #set.buckets == 0 then return where .. ": no buckets" end
    for i = 2, #set.buckets do
      local a, b = set.buckets[i - 1], set.buckets[i]
      if not (b.le > a.le) then return "line " .. b.line .. ": le not increasing in " .. where end
      if b.v < a.v then return "line " .. b.line .. ": bucket counts not cumulative in " .. where end
    end
    local last = set.buckets[#set.buckets]
    if last.le ~= math.huge then return where .. ": no le=\"+Inf\" bucket" end
    if set.count == nil then return where .. ": no _count" end
    if set.sum == nil then return where .. ": no _sum" end
    if set.count ~= last.v then
      return where .. ": _count " .. set.count .. " differs from the +Inf bucket " .. last.v
    end
  end
end

function M.parse(text)
  if text == "" then return {} end
  if text:sub(-1) ~= "\n" then return nil, "the text does not end with a newline" end
  local fams, seen, current, closed = {}, {}, nil, {}
  local n = 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    local function fail(why) return nil, "line " .. n .. ": " .. why .. "\n  " .. line end
    if line == "" then return fail("blank line") end
    if line:sub(1, 1) == "#" then
      local kw, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
      if kw == "HELP" or kw == "TYPE" then
        if not name:match(NAME) then return fail("bad metric name " .. name) end
        if closed[name] then return fail(kw .. " for " .. name .. " after its samples ended") end
        local f = fams[name]
        if not f then
          f = { name = name, samples = {}, line = n }
          fams[name] = f
        end
        if #f.samples > 0 then return fail(kw .. " for " .. name .. " after its samples") end
        if current and current ~= name then closed[current] = true end
        current = name
        if kw == "HELP" then
          if f.help then return fail("second HELP for " .. name) end
          local bad = rest:gsub("\\\\", ""):gsub("\\n", ""):match("\\.?")
          if bad then return fail("bad escape in HELP text") end
          f.help = rest:gsub("\\n", "\n"):gsub("\\\\", "\\")
        else
          if f.type then return fail("second TYPE for " .. name) end
          if not TYPES[rest] then return fail("unknown type " .. rest) end
          f.type = rest
        end
      elseif not line:match("^#") then
        return fail("not a comment")
      end -- other comments are allowed
    else
      local name, i = line:match("^([a-zA-Z_:][a-zA-Z0-9_:]*)()")
      if not name then return fail("bad metric name") end
      local ls, order = {}, {}
      if line:sub(i, i) == "{" then
        local why
        ls, why, order = labels(line, i + 1)
        if not ls then return fail(why) end
        i = why
      end
      local rest = line:sub(i)
      local v = rest:match("^ (%S+)$")
      if not v then return fail("expected one space and a value (no timestamps)") end
      local value = number(v)
      if not value then return fail("bad value " .. v) end
      local base, suffix = family_of(fams, name)
      local f = fams[base]
      if not f or not f.type then return fail("sample of " .. base .. " before its TYPE") end
      if closed[base] then return fail("samples of " .. base .. " are not contiguous") end
      if current and current ~= base then closed[current] = true end
      current = base
      local key = series_key(name, ls)
      if seen[key] then return fail("duplicate series " .. key) end
      seen[key] = true
      if f.type == "counter" and (value < 0 or value ~= value) then return fail("counter below 0 or NaN") end
      f.samples[#f.samples + 1] = { name = name, suffix = suffix, labels = ls, order = order, value = value, line = n }
    end
  end
  for name, f in pairs(fams) do
    if not f.type then return nil, "line " .. f.line .. ": " .. name .. " has HELP but no TYPE" end
    if f.type == "histogram" then
      local why = check_histogram(f)
      if why then return nil, why end
    end
  end
  return fams
end

-- The value of the sample name{labels} (labels must match exactly), or nil.
function M.value(fams, name, ls)
  ls = ls or {}
  local want = series_key(name, ls)
  local base = family_of(fams, name)
  local f = fams[base]
  for _, s in ipairs(f and f.samples or {}) do
    if series_key(s.name, s.labels) == want then return s.value end
  end
  return nil
end

return M
