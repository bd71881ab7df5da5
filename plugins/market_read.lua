-- The read side: bars, indicator values, symbols and ticks over HTTP, as JSON
-- (default) or CSV (`format=csv` or `Accept: text/csv`) for pandas.read_csv.
--   GET /candles?symbol=EURUSD&timeframe=M1[&from=&to=&limit=&set=mt5_default&order=asc|desc]
--   GET /indicators?symbol=EURUSD&timeframe=M1&set=mt5_default[&from=&to=&limit=]
--   GET /symbols[?symbol=EURUSD]
--   GET /ticks?symbol=EURUSD[&from=&to=&limit=&order=]
-- Rows come from PostgreSQL as columns (tf.db.columns) and are written as
-- text by tf.rows.encode in C: no Lua loop per row. Every bad parameter is a
-- 400 naming it; an unknown symbol is an empty result. Reads only; SQL
-- carries values as $n parameters (set column names come from Lua sets).
--
-- Settings, all optional, in the config file's `read` section:
--   read = {
--     max_rows = 100000,      -- most rows one answer holds (1..10000000); a
--                             -- range holding more is a 400 naming read.max_rows
--     default_limit = 1000,   -- rows when neither `limit` nor `from` is given (1..max_rows)
--     cache_ttl = 60,         -- seconds a latest-bars answer stays in tf.cache (0: no caching)
--     page_rows = 20000,      -- a range of more rows than this is streamed (chunked),
--                             -- a page of this many rows at a time (1000..1000000)
--   }
-- Large ranges stream: the answer goes out page by page (req:stream) as
-- PostgreSQL gives each page, so the server never holds more than a page
-- and the queue the client has not taken yet, whatever the range.
local cfg = tf.config.read or {}
local MAX_ROWS = cfg.max_rows or 100000
local DEFAULT_LIMIT = cfg.default_limit or 1000
local CACHE_TTL = cfg.cache_ttl or 60
local PAGE_ROWS = cfg.page_rows or 20000

local function check(ok, msg) if not ok then error("config read." .. msg, 0) end end
check(math.type(MAX_ROWS) == "integer" and MAX_ROWS >= 1 and MAX_ROWS <= 10000000,
  "max_rows: must be an integer in 1..10000000")
check(math.type(DEFAULT_LIMIT) == "integer" and DEFAULT_LIMIT >= 1 and DEFAULT_LIMIT <= MAX_ROWS,
  "default_limit: must be an integer in 1..read.max_rows")
check(type(CACHE_TTL) == "number" and CACHE_TTL >= 0, "cache_ttl: must be a number of seconds >= 0")
check(math.type(PAGE_ROWS) == "integer" and PAGE_ROWS >= 1000 and PAGE_ROWS <= 1000000,
  "page_rows: must be an integer in 1000..1000000")

-- tf.cache arrives with the cache branch; without it every read goes to the database.
local cache = rawget(tf, "cache") and tf.cache or nil

local function bad(param, msg)
  return 400, { ok = false, error = param .. ": " .. msg, param = param }
end

-- Parameter checks. Each returns the value, or nil and a 400 answer.
local P = {}

function P.known(q, allowed)
  for k in pairs(q) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      return nil, { bad(k, "unknown parameter (known: " .. table.concat(names, ", ") .. ")") }
    end
  end
  return true
end

function P.symbol(q, required)
  local v = q.symbol
  if v == nil or v == "" then
    if required then return nil, { bad("symbol", "required, e.g. symbol=EURUSD") } end
    return nil
  end
  if #v > 64 or v:find("[%c]") then return nil, { bad("symbol", "must be 1..64 printable characters") } end
  return v
end

function P.timeframe(q)
  local v = q.timeframe
  if v == nil or v == "" then return nil, { bad("timeframe", "required, e.g. timeframe=M1") } end
  local name, err = tf.time.timeframe(v)
  if not name then return nil, { bad("timeframe", err) } end
  return name
end

-- from/to: ISO-8601, MQL "2025.10.20 03:00", or epoch seconds/milliseconds.
function P.times(q)
  local out = {}
  for _, k in ipairs({ "from", "to" }) do
    local v = q[k]
    if v ~= nil then
      local t, why = tf.time.parse(v)
      if not t then
        return nil, nil, { bad(k, "not a time (" .. tostring(why) .. "); use ISO-8601 like 2025-10-20T03:00:00Z or epoch seconds") }
      end
      out[k] = t
    end
  end
  if out.from and out.to and out.from > out.to then
    return nil, nil, { bad("from", "is after to") }
  end
  return out.from, out.to
end

function P.limit(q, default)
  local v = q.limit
  if v == nil then return default end
  local n = v:match("^%d+$") and tonumber(v)
  if not n or n < 1 or n > MAX_ROWS then
    return nil, { bad("limit", "must be an integer in 1.." .. MAX_ROWS .. " (read.max_rows)") }
  end
  return math.tointeger(n)
end

function P.order(q)
  local v = q.order or "asc"
  if v ~= "asc" and v ~= "desc" then return nil, { bad("order", "must be asc or desc") } end
  return v
end

function P.format(req)
  local v = req.query.format
  if v ~= nil then
    if v ~= "json" and v ~= "csv" then return nil, { bad("format", "must be json or csv") } end
    return v
  end
  local accept = req.headers and req.headers.accept or ""
  if accept:find("text/csv", 1, true) then return "csv" end
  return "json"
end

function P.set(q, required)
  local v = q.set
  if v == nil or v == "" then
    if required then return nil, { bad("set", "required, e.g. set=mt5_default") } end
    return nil
  end
  local s = tf.indicators.get(v)
  if not s then
    return nil, { bad("set", "no indicator set named '" .. v .. "' (defined: " .. table.concat(tf.indicators.list(), ", ") .. ")") }
  end
  return s
end

-- An identifier for a set's column name (they come from plugin code, not requests).
local function ident(name) return '"' .. name:gsub('"', '""') .. '"' end
local function literal(s) return "'" .. s:gsub("'", "''") .. "'" end

-- The SQL selecting bars (and a set's stored values) of one symbol and
-- timeframe, ascending, with the bounds the query gives. With `from` the
-- first rows from it on; without, the newest rows (up to `to`).
local function bars_sql(set, has_from, has_to, with_bars)
  local cols = { "extract(epoch FROM m.ts)::float8 AS ts" }
  if with_bars then
    for _, c in ipairs({ "open", "high", "low", "close", "volume", "spread" }) do
      -- "exact": the stored decimal without its padding zeros (the export;
      -- the same number as the float8 JSON reads, at half the cost in COPY)
      cols[#cols + 1] = string.format(with_bars == "exact" and "trim_scale(m.%s) AS %s" or "m.%s::float8 AS %s", c, c)
    end
  end
  local join = ""
  if set then
    local present = {}
    if set.target == "market_data" then
      for _, c in ipairs(set.columns) do
        cols[#cols + 1] = string.format("m.%s::float8 AS %s", ident(c), ident(c))
        present[#present + 1] = "m." .. ident(c) .. " IS NOT NULL"
      end
    else
      local agg = {}
      for _, c in ipairs(set.columns) do
        agg[#agg + 1] = string.format("max(iv.value) FILTER (WHERE iv.name = %s) AS %s", literal(c), ident(c))
        cols[#cols + 1] = "v." .. ident(c)
        present[#present + 1] = "v." .. ident(c) .. " IS NOT NULL"
      end
      join = "LEFT JOIN LATERAL (SELECT " .. table.concat(agg, ", ") ..
        " FROM indicator_values iv WHERE iv.symbol = m.symbol AND iv.timeframe = m.timeframe" ..
        " AND iv.set_name = " .. literal(set.name) .. " AND iv.ts = m.ts) v ON true"
    end
    cols[#cols + 1] = "(" .. table.concat(present, " AND ") .. ")::int AS stored_"
  end
  -- parameters: $1 symbol, $2 timeframe, then from, to (when given), then the limit
  local where, np = { "m.symbol = $1", "m.timeframe = $2" }, 2
  if has_from then np = np + 1; where[#where + 1] = "m.ts >= to_timestamp($" .. np .. "::float8)" end
  if has_to then np = np + 1; where[#where + 1] = "m.ts <= to_timestamp($" .. np .. "::float8)" end
  local inner = "SELECT m.ts AS t_, " .. table.concat(cols, ", ") .. " FROM market_data m " .. join ..
    " WHERE " .. table.concat(where, " AND ") ..
    " ORDER BY m.ts " .. (has_from and "ASC" or "DESC") .. " LIMIT $" .. (np + 1) .. "::int"
  if has_from then return inner end
  return "SELECT * FROM (" .. inner .. ") s ORDER BY t_"
end

local BAR_COLUMNS = { "ts", "open", "high", "low", "close", "volume", "spread" }

-- Bars as CSV written by PostgreSQL itself (tf.db.copy_out: COPY (...) TO
-- STDOUT, as psql's \copy): the export path, for bars without a set. Prices
-- as stored without their padding zeros (trim_scale: the numbers the JSON
-- answers read as float8); times as the API writes them (bars have no
-- fractions).
local function bars_csv_sql(has_from, has_to, desc)
  local inner = bars_sql(nil, has_from, has_to, "exact"):gsub("^SELECT %* FROM %((.*)%) s ORDER BY t_$", "%1")
  return "SELECT to_char(t_ AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"') AS ts, " ..
    "open, high, low, close, volume, spread FROM (" .. inner .. ") s ORDER BY t_" .. (desc and " DESC" or "")
end

-- The JSON head ("ok" first, keys in `keys` order) with the rows' array
-- spliced in as the last member `name`.
local function json_answer(head, keys, name, rows)
  local text = tf.json.encode(tf.json.order(head, keys))
  return text:sub(1, -2) .. ',"' .. name .. '":' .. rows .. "}"
end

local function csv_headers(source, filename)
  local h = { ["Content-Type"] = "text/csv; charset=utf-8",
              ["Content-Disposition"] = 'inline; filename="' .. filename:gsub('[^%w_.-]', "_") .. '.csv"' }
  if source then h["X-Indicators-Source"] = source end
  return h
end

-- The parameters of /candles and /indicators, checked: a table, or nil and
-- the 400 answer.
local function series_params(req, kind)
  local q = req.query or {}
  local allowed = { symbol = true, timeframe = true, from = true, to = true, limit = true,
                    set = true, order = true, format = true }
  local p, ok, e = {}, nil, nil
  ok, e = P.known(q, allowed)
  if not ok then return nil, e end
  p.symbol, e = P.symbol(q, true)
  if not p.symbol then return nil, e end
  p.timeframe, e = P.timeframe(q)
  if not p.timeframe then return nil, e end
  p.from, p.to, e = P.times(q)
  if e then return nil, e end
  -- a range without limit means all of it: one row more than allowed tells
  -- one that is too large from one that fits
  p.capped = p.from ~= nil and q.limit == nil
  p.limit, e = P.limit(q, p.from and MAX_ROWS or DEFAULT_LIMIT)
  if not p.limit then return nil, e end
  p.order, e = P.order(q)
  if not p.order then return nil, e end
  p.format, e = P.format(req)
  if not p.format then return nil, e end
  p.set, e = P.set(q, kind == "indicators")
  if e then return nil, e end
  return p
end

-- ---- streamed ranges ----

-- A page of a streamed range: $1 symbol, $2 timeframe, $3 lower and $4
-- upper bound (epoch seconds; after the first page the bound the last page
-- reached, exclusive), $5 rows; in the answer's order.
local function page_sql(set, kind, desc, csv, lower_excl, upper_excl)
  local sql = bars_sql(set, true, true, kind == "candles" and (csv and "exact" or true))
  if lower_excl then sql = sql:gsub("m%.ts >= ", "m.ts > ", 1) end
  if upper_excl then sql = sql:gsub("m%.ts <= ", "m.ts < ", 1) end
  if desc then sql = sql:gsub("ORDER BY m%.ts ASC", "ORDER BY m.ts DESC", 1) end
  if csv then -- the rows as the export writes them (bars_csv_sql)
    sql = "SELECT to_char(t_ AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"') AS ts, " ..
      "open, high, low, close, volume, spread FROM (" .. sql .. ") s ORDER BY t_" .. (desc and " DESC" or "")
  end
  return sql
end

-- Can [from, to] hold more than p.limit bars? Their times are whole bar
-- times (ingest buckets them), so the span between the range's first and
-- last bar bounds their number; a month counts as 28 days. Two index probes
-- instead of counting a large range.
local function span_fits(p)
  local _, secs = tf.time.timeframe(p.timeframe)
  if not secs or secs == 0 then secs = 28 * 86400 end
  local r = tf.db.query("SELECT extract(epoch FROM min(ts))::float8 AS lo, extract(epoch FROM max(ts))::float8 AS hi " ..
    "FROM market_data WHERE symbol = $1 AND timeframe = $2 AND ts >= to_timestamp($3::float8) " ..
    "AND ts <= to_timestamp($4::float8)", p.symbol, p.timeframe, p.from, p.to or 1e12)
  -- (NULL columns are absent from a row: an empty range leaves lo nil)
  local lo, hi = r[1].lo, r[1].hi
  return lo == nil or math.floor((hi - lo) / secs) + 1 <= p.limit
end

-- How many rows [from, to] holds, and the time of the limit-th (from `from`
-- on) when the range holds more.
local function range_extent(p)
  local where = "symbol = $1 AND timeframe = $2 AND ts >= to_timestamp($3::float8)" ..
    (p.to and " AND ts <= to_timestamp($4::float8)" or "")
  local args = { p.symbol, p.timeframe, p.from, p.to }
  local r = tf.db.query("SELECT count(*)::bigint AS n FROM (SELECT 1 FROM market_data WHERE " .. where ..
    " LIMIT " .. (p.limit + 1) .. ") s", table.unpack(args, 1, p.to and 4 or 3))
  local n = math.tointeger(r[1].n)
  if n <= p.limit then return n, p.to end
  local last = tf.db.query("SELECT extract(epoch FROM ts)::float8 AS t FROM market_data WHERE " .. where ..
    " ORDER BY ts OFFSET " .. (p.limit - 1) .. " LIMIT 1", table.unpack(args, 1, p.to and 4 or 3))
  return n, last[1].t
end

-- Streams the n rows of [p.from, upper] a page at a time, in the answer's
-- order: CSV written by PostgreSQL (bars without a set), else rows encoded
-- by tf.rows.encode. Each page is bounded by where the last one ended.
local function stream_range(req, p, kind, n, upper, source)
  local desc, csv = p.order == "desc", p.format == "csv"
  local names = kind == "candles" and { table.unpack(BAR_COLUMNS) } or { "ts" }
  if p.set then for _, c in ipairs(p.set.columns) do names[#names + 1] = c end end
  local s
  if csv then
    s = req:stream(200, csv_headers(source, p.symbol .. "_" .. p.timeframe))
    s:write(table.concat(names, ","), "\n")
  else
    s = req:stream(200, { ["Content-Type"] = "application/json" })
    local head = { ok = true, symbol = p.symbol, timeframe = p.timeframe, set = p.set and p.set.name or nil,
                   indicators_source = source, order = p.order, count = n }
    local text = tf.json.encode(tf.json.order(head,
      { "ok", "symbol", "timeframe", "set", "indicators_source", "order", "count" }))
    s:write(text:sub(1, -2), ',"', kind == "candles" and "candles" or "values", '":[')
  end
  local lower, hi, sent, first = p.from, upper, 0, true
  local copy = csv and kind == "candles" and not p.set
  while sent < n do
    local want = math.min(PAGE_ROWS, n - sent)
    local sql = page_sql(p.set, kind, desc, copy, not first and not desc, not first and desc)
    local args = { p.symbol, p.timeframe, lower, hi or 1e12, want }
    local got, edge
    if copy then
      -- PostgreSQL's CSV of the page; its last row's time is the next bound
      -- (bar times are whole seconds, as the CSV writes them)
      local text, count = tf.db.copy_out(sql, table.unpack(args))
      got = count
      if got == 0 then break end
      local body_at = text:find("\n", 1, true) + 1
      local last_at = text:find("[^\n]*\n$", math.max(body_at, #text - 512))
      edge = tf.time.parse(text:match("^[^,]*", last_at))
      s:write(text:sub(body_at))
    else
      local cols, count = tf.db.columns(sql, table.unpack(args))
      got = count
      if got == 0 then break end
      edge = cols.ts[got]
      local text = tf.rows.encode(p.format, cols, names, { time = { ts = true }, header = false, last = got })
      if csv then s:write(text)
      else s:write(first and "" or ",", text:sub(2, -2)) end
    end
    sent, first = sent + got, false
    if desc then hi = edge else lower = edge end
    if got < want then break end
  end
  if not csv then s:write("]}") end
end

-- Bars and/or indicator values: the work behind /candles and /indicators.
local function series_answer(p, kind, req)
  local symbol, timeframe, from, to, limit, set = p.symbol, p.timeframe, p.from, p.to, p.limit, p.set
  if req and from and limit > PAGE_ROWS then
    local n, upper
    if p.format == "csv" and kind == "candles" and not set and (p.order == "asc" or p.capped) then
      -- the export: no count in its head, so none is needed unless the
      -- range may hold more than allowed
      if span_fits(p) then return stream_range(req, p, kind, limit, to) end
    end
    n, upper = range_extent(p)
    if p.capped and n > limit then
      return 400, { ok = false, param = "read.max_rows",
        error = string.format("read.max_rows: the range holds more than %d rows; narrow from/to, pass limit, or raise read.max_rows", limit) }
    end
    n = math.min(n, limit)
    if n > PAGE_ROWS then
      local source
      if set then -- streamed only when stored: computing on the fly needs the whole range
        local cols = tf.db.columns(page_sql(set, kind, true, false, false, false),
          symbol, timeframe, from, upper or 1e12, 1)
        source = cols.stored_[1] == 1 and "stored" or nil
      end
      if not set or source then return stream_range(req, p, kind, n, upper, source) end
    end
  end
  local sql = bars_sql(set, from ~= nil, to ~= nil, kind == "candles")
  local args = { symbol, timeframe }
  if from then args[#args + 1] = from end
  if to then args[#args + 1] = to end
  args[#args + 1] = p.capped and limit + 1 or limit
  local too_many = { ok = false, param = "read.max_rows",
    error = string.format("read.max_rows: the range holds more than %d rows; narrow from/to, pass limit, or raise read.max_rows", limit) }
  if p.format == "csv" and kind == "candles" and not set then
    local text, count = tf.db.copy_out(bars_csv_sql(from ~= nil, to ~= nil, p.order == "desc"), table.unpack(args))
    if count > limit then return 400, too_many end
    return 200, text, csv_headers(nil, symbol .. "_" .. timeframe)
  end
  local cols, n = tf.db.columns(sql, table.unpack(args))
  if n > limit then return 400, too_many end

  local source, offset
  if set and n > 0 then
    -- the job computes bars in time order: when the newest bar of the answer
    -- has its values, so has every bar before it (warm-up bars hold NULL, as
    -- a computation gives NaN there)
    source = cols.stored_[n] == 1 and "stored" or "computed"
    if source == "computed" then
      local res
      for _ = 1, 2 do -- a bar stored between the two reads: read again once
        local r = tf.indicators.compute(set, symbol, timeframe, cols.ts[1], cols.ts[n])
        if r.n - r.first + 1 == n and r.time[r.first] == cols.ts[1] then res = r break end
      end
      if not res then
        return 503, { ok = false, error = "bars changed while reading; retry" }, { ["Retry-After"] = "1" }
      end
      offset = {}
      for _, c in ipairs(set.columns) do
        cols[c] = res.values[c]
        offset[c] = res.first - 1
      end
    end
  elseif set then
    source = "stored"
  end

  local names = { "ts" }
  if kind == "candles" then names = { table.unpack(BAR_COLUMNS) } end
  if set then for _, c in ipairs(set.columns) do names[#names + 1] = c end end
  local text = tf.rows.encode(p.format, cols, names,
    { time = { ts = true }, offset = offset, reverse = p.order == "desc", last = n })

  if p.format == "csv" then
    return 200, text, csv_headers(source, symbol .. "_" .. timeframe)
  end
  local head = { ok = true, symbol = symbol, timeframe = timeframe, set = set and set.name or nil,
                 indicators_source = source, order = p.order, count = n }
  return 200, json_answer(head, { "ok", "symbol", "timeframe", "set", "indicators_source", "order", "count" },
    kind == "candles" and "candles" or "values", text), { ["Content-Type"] = "application/json" }
end

-- The latest bars (no from/to) are what dashboards poll: their answers are
-- cached under candles:<symbol>:<timeframe>: (storing candles deletes it).
local function candles(req)
  local p, e = series_params(req, "candles")
  if not p then return table.unpack(e) end
  if not cache or CACHE_TTL <= 0 or p.from or p.to then return series_answer(p, "candles", req) end
  local key = string.format("candles:%s:%s:%d:%s:%s:%s", p.symbol, p.timeframe, p.limit,
    p.set and p.set.name or "", p.order, p.format)
  local a = cache.get_or_load(key, CACHE_TTL, function()
    local status, body, headers = series_answer(p, "candles")
    if status ~= 200 then -- (a 400 for read.max_rows cannot happen here, a 503 can): dropped below
      local h = headers or {}
      h["Content-Type"] = "application/json"
      return { status = status, body = tf.json.encode(body), headers = h }
    end
    return { status = 200, body = body, headers = headers }
  end)
  if a.status ~= 200 then cache.delete(key) end
  return a.status, a.body, a.headers
end

local function indicators(req)
  local p, e = series_params(req, "indicators")
  if not p then return table.unpack(e) end
  return series_answer(p, "indicators", req)
end

local NUM = { type = "number" }
local NUMN = { type = { "number", "null" } }
local TIME = { type = "string", description = "ISO-8601 UTC, e.g. 2025-10-20T03:05:00+00:00" }

local COMMON_PARAMS = {
  { name = "symbol", type = "string", required = true, description = "Symbol as stored, e.g. EURUSD; an unknown one gives no rows" },
  { name = "timeframe", type = "string", required = true, description = "M1 .. MN1, or the numeric ENUM_TIMEFRAMES value (16385 = H1)" },
  { name = "from", type = "string", description = "Start, inclusive: ISO-8601 (2025-10-20T03:00:00Z), MQL (2025.10.20 03:00) or epoch seconds/ms. With from: the first rows from it on" },
  { name = "to", type = "string", description = "End, inclusive (same forms). Without from: the newest rows up to it" },
  { name = "limit", type = "integer", description = "Rows, 1..read.max_rows. Default: read.default_limit (1000) without from, else every row of the range (more than read.max_rows is a 400)" },
  { name = "order", type = "string", enum = { "asc", "desc" }, description = "Row order by time (default asc)" },
  { name = "format", type = "string", enum = { "json", "csv" }, description = "json (default) or csv; Accept: text/csv also selects CSV" },
}

local function params_with(extra)
  local out = {}
  for _, p in ipairs(COMMON_PARAMS) do out[#out + 1] = p end
  out[#out + 1] = extra
  return out
end

local ROW_VALUES = { type = "object", required = { "ts" }, properties = { ts = TIME },
  additionalProperties = NUMN }

tf.route("GET", "/candles", candles, { auth = "read", doc = {
  summary = "Bars of one symbol and timeframe, optionally with an indicator set's values",
  description = "JSON by default, CSV (header row, ISO UTC times) with format=csv or Accept: text/csv. " ..
    "With set=, each bar carries the set's columns: stored values when the indicators job wrote them " ..
    "(indicators_source \"stored\"), else computed on the fly over the whole stored history (\"computed\"; " ..
    "CSV answers say it in the X-Indicators-Source header). The latest bars are cached until new candles are stored.",
  params = params_with({ name = "set", type = "string", description = "An indicator set (tf.indicators.set), e.g. mt5_default" }),
  formats = { "json", "csv" },
  response = { type = "object", required = { "ok", "symbol", "timeframe", "order", "count", "candles" },
    properties = {
      ok = { type = "boolean", enum = { true } }, symbol = { type = "string" }, timeframe = { type = "string" },
      set = { type = "string" }, indicators_source = { type = "string", enum = { "stored", "computed" } },
      order = { type = "string", enum = { "asc", "desc" } }, count = { type = "integer" },
      candles = { type = "array", items = { type = "object",
        required = { "ts", "open", "high", "low", "close", "volume", "spread" },
        properties = { ts = TIME, open = NUM, high = NUM, low = NUM, close = NUM, volume = NUMN, spread = NUMN },
        additionalProperties = NUMN } },
    } },
} })

tf.route("GET", "/indicators", indicators, { auth = "read", doc = {
  summary = "An indicator set's values for one symbol and timeframe",
  description = "Stored values when the indicators job wrote them, else computed on the fly (indicators_source). " ..
    "Values before an indicator's lookback are null. CSV as for /candles.",
  params = params_with({ name = "set", type = "string", required = true, description = "An indicator set, e.g. mt5_default" }),
  formats = { "json", "csv" },
  response = { type = "object", required = { "ok", "symbol", "timeframe", "set", "indicators_source", "count", "values" },
    properties = {
      ok = { type = "boolean", enum = { true } }, symbol = { type = "string" }, timeframe = { type = "string" },
      set = { type = "string" }, indicators_source = { type = "string", enum = { "stored", "computed" } },
      order = { type = "string", enum = { "asc", "desc" } }, count = { type = "integer" },
      values = { type = "array", items = ROW_VALUES },
    } },
} })

-- ---- /symbols ----

local TF_RANK = {}
for i, name in ipairs({ "M1", "M2", "M3", "M4", "M5", "M6", "M10", "M12", "M15", "M20", "M30", "H1", "H2", "H3",
  "H4", "H6", "H8", "H12", "D1", "W1", "MN1" }) do TF_RANK[name] = i end

local SYMBOLS_SQL = [[
SELECT symbol, timeframe, extract(epoch FROM min(ts))::float8 AS first, extract(epoch FROM max(ts))::float8 AS last,
       count(*) AS bars, extract(epoch FROM max(created_at))::float8 AS last_ingest
  FROM market_data WHERE ($1::text IS NULL OR symbol = $1) GROUP BY symbol, timeframe]]
local TICKS_SQL = [[
SELECT symbol, extract(epoch FROM min(ts))::float8 AS first, extract(epoch FROM max(ts))::float8 AS last,
       count(*) AS ticks, extract(epoch FROM max(received_at))::float8 AS last_ingest
  FROM ticks WHERE ($1::text IS NULL OR symbol = $1) GROUP BY symbol]]

local function iso(t) return t and tf.time.format(t) or tf.json.null end

tf.route("GET", "/symbols", function(req)
  local q = req.query or {}
  local ok, e = P.known(q, { symbol = true })
  if not ok then return table.unpack(e) end
  local symbol; symbol, e = P.symbol(q, false)
  if e then return table.unpack(e) end
  local rows = tf.db.query(SYMBOLS_SQL, symbol)
  local trows = tf.db.query(TICKS_SQL, symbol)
  local by, list = {}, {}
  local function entry(name)
    local s = by[name]
    if not s then
      s = tf.json.order({ symbol = name, timeframes = tf.json.array({}), ticks = tf.json.null, last_ingest = tf.json.null },
        { "symbol", "last_ingest", "timeframes", "ticks" })
      s.last_ingest_t = nil
      by[name] = s
      list[#list + 1] = s
    end
    return s
  end
  for _, r in ipairs(rows) do
    local s = entry(r.symbol)
    s.timeframes[#s.timeframes + 1] = tf.json.order({ timeframe = r.timeframe, first = iso(r.first), last = iso(r.last),
      bars = r.bars, last_ingest = iso(r.last_ingest) }, { "timeframe", "first", "last", "bars", "last_ingest" })
    if r.last_ingest and (not s.last_ingest_t or r.last_ingest > s.last_ingest_t) then s.last_ingest_t = r.last_ingest end
  end
  for _, r in ipairs(trows) do
    local s = entry(r.symbol)
    s.ticks = tf.json.order({ first = iso(r.first), last = iso(r.last), count = r.ticks, last_ingest = iso(r.last_ingest) },
      { "first", "last", "count", "last_ingest" })
    if r.last_ingest and (not s.last_ingest_t or r.last_ingest > s.last_ingest_t) then s.last_ingest_t = r.last_ingest end
  end
  table.sort(list, function(a, b) return a.symbol < b.symbol end)
  for _, s in ipairs(list) do
    table.sort(s.timeframes, function(a, b) return (TF_RANK[a.timeframe] or 99) < (TF_RANK[b.timeframe] or 99) end)
    s.last_ingest = iso(s.last_ingest_t)
    s.last_ingest_t = nil
  end
  return 200, tf.json.order({ ok = true, count = #list, symbols = tf.json.array(list) }, { "ok", "count", "symbols" })
end, { auth = "read", doc = {
  summary = "What the server holds: each symbol with its timeframes, first/last bar, bar count and last ingest time",
  description = "last_ingest is when a bar or tick of the symbol was last stored (created_at / received_at). " ..
    "ticks is null for a symbol without ticks. Scans the tables: meant for people and dashboards, not for polling.",
  params = { { name = "symbol", type = "string", description = "Only this symbol" } },
  response = { type = "object", required = { "ok", "count", "symbols" }, properties = {
    ok = { type = "boolean", enum = { true } }, count = { type = "integer" },
    symbols = { type = "array", items = { type = "object", required = { "symbol", "timeframes", "last_ingest" },
      properties = {
        symbol = { type = "string" }, last_ingest = { type = { "string", "null" } },
        timeframes = { type = "array", items = { type = "object",
          required = { "timeframe", "first", "last", "bars", "last_ingest" },
          properties = { timeframe = { type = "string" }, first = TIME, last = TIME, bars = { type = "integer" },
                         last_ingest = { type = { "string", "null" } } } } },
        ticks = { type = { "object", "null" }, properties = { first = TIME, last = TIME, count = { type = "integer" } } },
      } } },
  } },
} })

-- ---- /ticks ----

local function ticks_sql(has_from, has_to)
  local where, np = { "symbol = $1" }, 1
  if has_from then np = np + 1; where[#where + 1] = "ts >= to_timestamp($" .. np .. "::float8)" end
  if has_to then np = np + 1; where[#where + 1] = "ts <= to_timestamp($" .. np .. "::float8)" end
  local inner = "SELECT ts AS t_, seq AS s_, extract(epoch FROM ts)::float8 AS ts, bid, ask, last, volume, flags, ts_msc, spread" ..
    " FROM ticks WHERE " .. table.concat(where, " AND ") ..
    " ORDER BY ts " .. (has_from and "ASC, seq ASC" or "DESC, seq DESC") .. " LIMIT $" .. (np + 1) .. "::int"
  if has_from then return inner end
  return "SELECT * FROM (" .. inner .. ") s ORDER BY t_, s_"
end

local TICK_COLUMNS = { "ts", "bid", "ask", "last", "volume", "flags", "ts_msc", "spread" }

-- Ticks share times (several in one millisecond, or no ts_msc at all), so a
-- streamed range pages on (ts, seq), the order ticks are read in, with ts as
-- whole microseconds (exact, where epoch seconds as float8 are not).
local TICK_KEY = "(extract(epoch FROM ts) * 1000000)::bigint"
local function at_us(n) return "(timestamptz 'epoch' + $" .. n .. "::bigint * interval '1 microsecond')" end

-- How many ticks [from, to] holds (up to limit + 1), and the key (µs, seq)
-- of the limit-th from `from` on when it holds more.
local function ticks_extent(symbol, from, to, limit)
  local where = "symbol = $1 AND ts >= to_timestamp($2::float8)" .. (to and " AND ts <= to_timestamp($3::float8)" or "")
  local args = { symbol, from, to }
  local r = tf.db.query("SELECT count(*)::bigint AS n FROM (SELECT 1 FROM ticks WHERE " .. where ..
    " LIMIT " .. (limit + 1) .. ") s", table.unpack(args, 1, to and 3 or 2))
  local n = math.tointeger(r[1].n)
  if n <= limit then return n end
  local last = tf.db.query("SELECT " .. TICK_KEY .. " AS us, seq FROM ticks WHERE " .. where ..
    " ORDER BY ts, seq OFFSET " .. (limit - 1) .. " LIMIT 1", table.unpack(args, 1, to and 3 or 2))
  return n, { last[1].us, last[1].seq }
end

-- A page of a streamed tick range: $1 symbol, $2 from (epoch seconds), $3
-- and $4 the key the last page ended at (exclusive; the first page passes
-- from's µs and -1 going up), $5 and $6 the other end's key (inclusive;
-- going down, the first page starts there), $7 rows.
local function ticks_page_sql(desc)
  local cmp = desc and "<" or ">"
  return "SELECT seq AS s_, " .. TICK_KEY .. " AS us_, extract(epoch FROM ts)::float8 AS ts, " ..
    "bid, ask, last, volume, flags, ts_msc, spread FROM ticks WHERE symbol = $1 AND ts >= to_timestamp($2::float8) " ..
    "AND (ts, seq) " .. cmp .. " (" .. at_us(3) .. ", $4::bigint) " ..
    "AND (ts, seq) <= (" .. at_us(5) .. ", $6::bigint) " ..
    "ORDER BY ts " .. (desc and "DESC" or "ASC") .. ", seq " .. (desc and "DESC" or "ASC") .. " LIMIT $7::int"
end

-- Streams the n ticks from `from` up to the key `upper` ({µs, seq}, nil:
-- no bound but n), a page at a time, in the answer's order.
local function stream_ticks(req, symbol, from, n, upper, order, format)
  local desc, csv = order == "desc", format == "csv"
  local s
  if csv then
    s = req:stream(200, csv_headers(nil, symbol .. "_ticks"))
    s:write(table.concat(TICK_COLUMNS, ","), "\n")
  else
    s = req:stream(200, { ["Content-Type"] = "application/json" })
    local head = tf.json.encode(tf.json.order({ ok = true, symbol = symbol, order = order, count = n },
      { "ok", "symbol", "order", "count" }))
    s:write(head:sub(1, -2), ',"ticks":[')
  end
  local top = upper or { 9007199254740991, 9007199254740991 }
  -- the key the next page starts after (before, going down): just past the end
  local edge = desc and { top[1], top[2] + 1 } or { math.floor(from * 1e6) - 1, -1 }
  local sql, sent = ticks_page_sql(desc), 0
  while sent < n do
    local want = math.min(PAGE_ROWS, n - sent)
    local cols, got = tf.db.columns(sql, symbol, from, edge[1], edge[2], top[1], top[2], want)
    if got == 0 then break end
    local text = tf.rows.encode(format, cols, TICK_COLUMNS, { time = { ts = true }, header = false, last = got })
    if csv then s:write(text)
    else s:write(sent == 0 and "" or ",", text:sub(2, -2)) end
    sent, edge = sent + got, { cols.us_[got], cols.s_[got] }
    if got < want then break end
  end
  if not csv then s:write("]}") end
end

tf.route("GET", "/ticks", function(req)
  local q = req.query or {}
  local ok, e = P.known(q, { symbol = true, from = true, to = true, limit = true, order = true, format = true })
  if not ok then return table.unpack(e) end
  local symbol; symbol, e = P.symbol(q, true)
  if not symbol then return table.unpack(e) end
  local from, to; from, to, e = P.times(q)
  if e then return table.unpack(e) end
  -- a range without limit means all of it: one row more than allowed tells
  -- one that is too large from one that fits
  local capped = from ~= nil and q.limit == nil
  local limit; limit, e = P.limit(q, from and MAX_ROWS or DEFAULT_LIMIT)
  if not limit then return table.unpack(e) end
  local order; order, e = P.order(q)
  if not order then return table.unpack(e) end
  local format; format, e = P.format(req)
  if not format then return table.unpack(e) end
  if from and limit > PAGE_ROWS then
    local n, upper = ticks_extent(symbol, from, to, limit)
    if capped and n > limit then
      return 400, { ok = false, param = "read.max_rows",
        error = string.format("read.max_rows: the range holds more than %d ticks; narrow from/to, pass limit, or raise read.max_rows", limit) }
    end
    n = math.min(n, limit)
    if n > PAGE_ROWS then
      if not upper and to then -- the whole range: it ends at its last tick
        local r = tf.db.query("SELECT " .. TICK_KEY .. " AS us, seq FROM ticks WHERE symbol = $1 AND " ..
          "ts >= to_timestamp($2::float8) AND ts <= to_timestamp($3::float8) ORDER BY ts DESC, seq DESC LIMIT 1",
          symbol, from, to)[1]
        upper = { r.us, r.seq }
      end
      return stream_ticks(req, symbol, from, n, upper, order, format)
    end
  end
  local args = { symbol }
  if from then args[#args + 1] = from end
  if to then args[#args + 1] = to end
  args[#args + 1] = capped and limit + 1 or limit
  local cols, n = tf.db.columns(ticks_sql(from ~= nil, to ~= nil), table.unpack(args))
  if n > limit then
    return 400, { ok = false, param = "read.max_rows",
      error = string.format("read.max_rows: the range holds more than %d ticks; narrow from/to, pass limit, or raise read.max_rows", limit) }
  end
  local text = tf.rows.encode(format, cols, TICK_COLUMNS, { time = { ts = true }, reverse = order == "desc", last = n })
  if format == "csv" then return 200, text, csv_headers(nil, symbol .. "_ticks") end
  return 200, json_answer({ ok = true, symbol = symbol, order = order, count = n }, { "ok", "symbol", "order", "count" },
    "ticks", text), { ["Content-Type"] = "application/json" }
end, { auth = "read", doc = {
  summary = "Stored ticks of one symbol",
  description = "Oldest first (order=desc for newest first). With from: the first ticks from it on; without: the newest " ..
    "ticks up to `to`. bid/ask always, the rest null when the EA did not send them.",
  params = {
    { name = "symbol", type = "string", required = true, description = "Symbol as stored; an unknown one gives no rows" },
    COMMON_PARAMS[3], COMMON_PARAMS[4], COMMON_PARAMS[5], COMMON_PARAMS[6], COMMON_PARAMS[7],
  },
  formats = { "json", "csv" },
  response = { type = "object", required = { "ok", "symbol", "order", "count", "ticks" }, properties = {
    ok = { type = "boolean", enum = { true } }, symbol = { type = "string" }, order = { type = "string" },
    count = { type = "integer" },
    ticks = { type = "array", items = { type = "object", required = { "ts", "bid", "ask" }, properties = {
      ts = TIME, bid = NUM, ask = NUM, last = NUMN, volume = NUMN, flags = NUMN, ts_msc = NUMN, spread = NUMN } } },
  } },
} })
