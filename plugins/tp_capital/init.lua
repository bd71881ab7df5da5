-- TP Capital: trading signals from Telegram channels. A gateway forwards
-- each channel message to POST /tp-capital/ingest; the grammar in
-- parser.lua (documented in docs/tp_capital.md) turns its text into a
-- signal, a half-signal or chatter, stored in the tp_capital schema
-- (sql/040_tp_capital.sql). Never builds SQL from values; chatter is never
-- an error; a resend changes nothing, an edit keeps the history.
--
-- Settings, all optional, in the config file's `tp_capital` section:
--   tp_capital = {
--     enabled = true,      -- false: register no route
--     max_batch = 500,     -- messages per request (1..10000); more is 413
--     max_text = 16384,    -- bytes of text per message (1..1048576)
--     cache = true,        -- false: every listing reads the database (for comparison)
--     cache_ttl = 30,      -- seconds GET /tp-capital/signals answers stay cached (0..86400)
--   }
local parser = require("tp_capital.parser")

local cfg = tf.config.tp_capital or {}
local function check(ok, msg) if not ok then error("config tp_capital." .. msg, 0) end end
local function int_in(v, lo, hi) return math.type(v) == "integer" and v >= lo and v <= hi end
local ENABLED = cfg.enabled ~= false
local MAX_BATCH = cfg.max_batch or 500
local MAX_TEXT = cfg.max_text or 16384
local TTL = cfg.cache_ttl or 30
check(type(cfg.enabled) == "boolean" or cfg.enabled == nil, "enabled: must be true or false")
check(type(cfg.cache) == "boolean" or cfg.cache == nil, "cache: must be true or false")
check(int_in(MAX_BATCH, 1, 10000), "max_batch: must be an integer 1..10000")
check(int_in(MAX_TEXT, 1, 1048576), "max_text: must be an integer 1..1048576")
check(int_in(TTL, 0, 86400), "cache_ttl: must be an integer 0..86400 (seconds)")
if not ENABLED then return end

local MAX_LIMIT = 1000
local json = tf.json

-- Stable key order in every answer: "ok" first.
local TOP_KEYS = { "ok", "error", "field", "received", "inserted", "updated", "duplicates", "rejected",
  "status", "database", "count", "messages", "signals", "last_message_at", "cache", "details" }
local DETAIL_KEYS = { "status", "channel", "message_id", "kind", "signal_id", "version", "symbol", "side",
  "missing", "flags", "error", "field" }
local SIGNAL_KEYS = { "id", "channel", "message_id", "ts", "kind", "symbol", "side", "order_type", "market",
  "entry_low", "entry_high", "sl", "tps", "missing", "flags", "version", "updated_at" }
local function answer(t) return json.order(t, TOP_KEYS) end

local function db_down(e)
  return type(e) == "table" and (e.code == "unavailable" or e.code == "timeout")
end
local function unavailable(e)
  tf.log.warn("tp_capital: database " .. tostring(e.code), { error = e.message })
  return 503, answer({ ok = false, error = "database unavailable" }), { ["Retry-After"] = "1" }
end

---------------------------------------------------------------- cache
-- Listing answers are cached (lua/tickforge/cache_ns.lua) in groups
--   signals:<symbol|*>:<channel|*>     keyed by kind, limit and since
-- so a stored signal of (symbol, channel) drops exactly the listings that
-- can contain it: the four groups of {symbol, *} x {channel, *} (and those
-- of its old symbol when an edit changed it).
local NS = require("tickforge.cache_ns")
local ns = NS.new("tpcapital", cfg.cache ~= false)
local esc = NS.esc

local function list_group(symbol, channel) return "signals:" .. esc(symbol) .. ":" .. esc(channel) end

-- Collects the groups a request's stored messages change (into the set
-- `changed`); flush bumps them once, after the last commit.
local function touch(changed, symbols, channel)
  for _, sym in ipairs(symbols) do
    changed[list_group(sym, channel)] = true
    changed[list_group(sym, nil)] = true
  end
  changed[list_group(nil, channel)] = true
  changed[list_group(nil, nil)] = true
end
local function flush(changed)
  local groups = {}
  for g in pairs(changed) do groups[#groups + 1] = g end
  if #groups > 0 then ns:bump(groups) end
end

-- Metrics (declared at load; values survive reloads):
--   tpcapital_signals_total{channel,symbol,side}  signal rows created (a
--     half-signal counts; an edit of a stored signal does not)
--   tpcapital_messages_total{status}              messages by outcome
local signals_total = tf.metrics.counter("tpcapital_signals_total",
  "Signals (and half-signals) parsed from channel messages and stored", { labels = { "channel", "symbol", "side" }, max_series = 2000 })
local messages_total = tf.metrics.counter("tpcapital_messages_total",
  "Forwarded messages by outcome: inserted, updated (an edit), duplicate, rejected", { labels = { "status" }, max_series = 8 })

local function count_signals(created, counts)
  for _, l in ipairs(created) do signals_total:inc(1, l) end
  for _, status in ipairs({ "inserted", "updated", "duplicate", "rejected" }) do
    if counts[status] > 0 then messages_total:inc(counts[status], { status = status }) end
  end
end


------------------------------------------------------- route docs (OpenAPI)
local S_STR, S_INT, S_BOOL = { type = "string" }, { type = "integer" }, { type = "boolean" }
local S_NUMS = { type = "array", items = { type = "number" } }
local S_STRS = { type = "array", items = { type = "string" } }
local MESSAGE_SCHEMA = { type = "object", required = { "channel", "message_id", "date" }, properties = {
  channel = { type = { "string", "integer" }, description = "channel name or id, 1..128 characters" },
  message_id = { type = { "string", "integer" }, description = "the message's id in its channel" },
  date = { type = { "string", "number" }, description = "ISO-8601, or epoch seconds (milliseconds above 1e11)" },
  text = { type = { "string", "null" }, description = "the message text; missing or null is chatter" } } }
local DETAIL_SCHEMA = { type = "object", required = { "status" }, properties = {
  status = { type = "string", enum = { "inserted", "updated", "duplicate", "rejected" } },
  channel = { type = { "string", "integer" } }, message_id = { type = { "string", "integer" } },
  kind = { type = "string", enum = { "signal", "partial", "chatter" } }, signal_id = S_INT, version = S_INT,
  symbol = S_STR, side = { type = "string", enum = { "buy", "sell" } }, missing = S_STRS, flags = S_STRS,
  error = S_STR, field = S_STR } }
local SIGNAL_SCHEMA = { type = "object",
  required = { "id", "channel", "message_id", "ts", "kind", "symbol", "side", "order_type", "market", "tps", "version" },
  properties = { id = S_INT, channel = S_STR, message_id = S_STR, ts = S_STR,
    kind = { type = "string", enum = { "signal", "partial" } }, symbol = S_STR,
    side = { type = "string", enum = { "buy", "sell" } }, order_type = { type = "string", enum = { "market", "limit", "stop" } },
    market = S_BOOL, entry_low = { type = { "number", "null" } }, entry_high = { type = { "number", "null" } },
    sl = { type = { "number", "null" } }, tps = S_NUMS, missing = S_STRS, flags = S_STRS, version = S_INT, updated_at = S_STR } }

------------------------------------------------------------------ ingest
local function bad(field, msg) return { field = field, error = field .. ": " .. msg } end

-- A time as the gateway sends it: ISO-8601 text, or epoch seconds
-- (milliseconds when above 1e11). Returns text for ::timestamptz or nil, why.
local function parse_date(v)
  if math.type(v) == "integer" or math.type(v) == "float" then
    if v ~= v or v < 0 or v > 1e14 then return nil, "must be epoch seconds or milliseconds" end
    local s = v > 1e11 and v / 1000 or v
    return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(s)) .. string.format(".%03dZ", math.floor((s % 1) * 1000))
  end
  if type(v) == "string" and #v <= 40 and v:match("^%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d") then
    -- without a zone it is UTC (never the database session's time zone)
    if v:match("[Zz]$") or v:match("[+-]%d%d:?%d%d$") or v:match("%d%d:%d%d[:%d.]*[+-]%d%d$") then return v end
    return v .. "Z"
  end
  return nil, "must be ISO-8601 text like 2025-10-20T09:30:00Z or epoch seconds"
end

-- Checks one message; returns the cleaned fields or nil, { field, error }.
local function validate(m)
  if type(m) ~= "table" or m[1] ~= nil then return nil, bad("message", "must be an object") end
  local channel = m.channel
  if math.type(channel) == "integer" then channel = tostring(channel) end
  if type(channel) ~= "string" or #channel < 1 or #channel > 128 or channel:find("%c") then
    return nil, bad("channel", "required, 1..128 printable characters or a channel id")
  end
  local id = m.message_id
  if math.type(id) == "integer" then id = tostring(id) end
  if type(id) ~= "string" or #id < 1 or #id > 64 or id:find("%c") then
    return nil, bad("message_id", "required, an integer or 1..64 printable characters")
  end
  if m.date == nil then return nil, bad("date", "required") end
  local date, why = parse_date(m.date)
  if not date then return nil, bad("date", why) end
  local text = m.text
  if text == nil or text == json.null then text = "" end -- a photo without caption: chatter
  if type(text) ~= "string" then return nil, bad("text", "must be a string") end
  if #text > MAX_TEXT then return nil, bad("text", "longer than " .. MAX_TEXT .. " bytes") end
  if text:find("\0", 1, true) then return nil, bad("text", "must not contain NUL characters") end
  if not utf8.len(text) then return nil, bad("text", "must be valid UTF-8") end
  return { channel = channel, message_id = id, date = date, text = text }
end

local UPSERT_MESSAGE = [[
INSERT INTO tp_capital.forwarded_messages AS m (channel, message_id, posted_at, text, kind)
VALUES ($1, $2, $3::timestamptz, $4, $5)
ON CONFLICT (channel, message_id) DO UPDATE
   SET text = EXCLUDED.text, kind = EXCLUDED.kind, version = m.version + 1, updated_at = now()
 WHERE m.text IS DISTINCT FROM EXCLUDED.text
RETURNING id, version, posted_at::text AS posted_at, (xmax = 0) AS inserted]]

local EXISTING = [[
SELECT m.kind, m.version, s.id AS signal_id, s.symbol, s.side
  FROM tp_capital.forwarded_messages m LEFT JOIN tp_capital.signals s ON s.message_ref = m.id
 WHERE m.channel = $1 AND m.message_id = $2]]

local OLD_SIGNAL = "SELECT symbol FROM tp_capital.signals WHERE message_ref = $1"

local UPSERT_SIGNAL = [[
INSERT INTO tp_capital.signals AS s (message_ref, channel, message_id, ts, kind, symbol, side, order_type,
                                     market, entry_low, entry_high, sl, tps, missing, flags, version)
VALUES ($1, $2, $3, $4::timestamptz, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14::jsonb, $15::jsonb, $16)
ON CONFLICT (message_ref) DO UPDATE
   SET kind = EXCLUDED.kind, symbol = EXCLUDED.symbol, side = EXCLUDED.side, order_type = EXCLUDED.order_type,
       market = EXCLUDED.market, entry_low = EXCLUDED.entry_low, entry_high = EXCLUDED.entry_high,
       sl = EXCLUDED.sl, tps = EXCLUDED.tps, missing = EXCLUDED.missing, flags = EXCLUDED.flags,
       version = EXCLUDED.version, updated_at = now()
RETURNING id, (xmax = 0) AS inserted]]

local HISTORY = [[
INSERT INTO tp_capital.signal_history (message_ref, version, text, kind, parsed)
VALUES ($1, $2, $3, $4, $5::jsonb)]]

local function jarray(t) return json.encode(json.array(t or {})) end

-- Stores one valid message (in its own transaction). Returns the detail
-- table and, for a signal row created, the labels to count.
local function store(m)
  local p = parser.parse(m.text)
  return tf.db.tx(function()
    local rows = tf.db.query(UPSERT_MESSAGE, m.channel, m.message_id, m.date, m.text, p.kind)
    local d = { channel = m.channel, message_id = m.message_id, kind = p.kind }
    if #rows == 0 then -- same text again: nothing changes
      local e = tf.db.query(EXISTING, m.channel, m.message_id)[1]
      d.status, d.kind, d.version, d.signal_id, d.symbol, d.side = "duplicate", e.kind, e.version, e.signal_id, e.symbol, e.side
      return d
    end
    local msg = rows[1]
    d.status = msg.inserted and "inserted" or "updated"
    d.version = msg.version
    local old = not msg.inserted and tf.db.query(OLD_SIGNAL, msg.id)[1]
    local created
    if p.kind == "chatter" then
      if old then tf.db.exec("DELETE FROM tp_capital.signals WHERE message_ref = $1", msg.id) end
    else
      local s = tf.db.query(UPSERT_SIGNAL, msg.id, m.channel, m.message_id, msg.posted_at, p.kind, p.symbol,
        p.side, p.order_type, p.market, p.entry_low, p.entry_high, p.sl, jarray(p.tps), jarray(p.missing),
        jarray(p.flags), msg.version)[1]
      d.signal_id, d.symbol, d.side = s.id, p.symbol, p.side
      d.missing, d.flags = json.array(p.missing), json.array(p.flags)
      if s.inserted then created = { channel = m.channel, symbol = p.symbol, side = p.side } end
    end
    local parsed = json.encode(json.order({ kind = p.kind, symbol = p.symbol, side = p.side,
      order_type = p.order_type, market = p.market, entry_low = p.entry_low, entry_high = p.entry_high,
      sl = p.sl, tps = json.array(p.tps), missing = json.array(p.missing), flags = json.array(p.flags) },
      { "kind", "symbol", "side" }))
    tf.db.exec(HISTORY, msg.id, msg.version, m.text, p.kind, parsed)
    d.changed = {} -- the symbols whose listings change
    if old then d.changed[1] = old.symbol end
    if p.symbol then d.changed[#d.changed + 1] = p.symbol end
    d.created = created
    return d
  end)
end

-- Maps a statement's own failure (not an outage) to the field at fault.
local function item_error(e)
  local state = type(e) == "table" and e.sqlstate or ""
  if state == "22007" or state == "22008" then return bad("date", "not a valid time") end
  if state:sub(1, 2) == "22" then return bad("text", type(e) == "table" and e.message or tostring(e)) end
  return nil
end

local function ingest_one(m, counts)
  local clean, err = validate(m)
  if not clean then
    counts.rejected = counts.rejected + 1
    local d = { status = "rejected", error = err.error, field = err.field }
    if type(m) == "table" then d.channel, d.message_id = m.channel, m.message_id end
    return json.order(d, DETAIL_KEYS), err
  end
  local ok, d = pcall(store, clean)
  if not ok then
    if db_down(d) then error(d, 0) end
    local e = item_error(d)
    if not e then error(d, 0) end
    counts.rejected = counts.rejected + 1
    return json.order({ status = "rejected", channel = clean.channel, message_id = clean.message_id,
      error = e.error, field = e.field }, DETAIL_KEYS), e
  end
  counts[d.status] = counts[d.status] + 1
  if d.changed and #d.changed > 0 then touch(counts.changed, d.changed, clean.channel) end
  if d.created then counts.created[#counts.created + 1] = d.created end
  d.changed, d.created = nil, nil
  return json.order(d, DETAIL_KEYS)
end

tf.route("POST", "/tp-capital/ingest", function(req)
  local body, err = json.decode(req.body or "")
  if body == nil then return 400, answer({ ok = false, error = "body: invalid JSON (" .. tostring(err) .. ")", field = "body" }) end
  local list, single
  if type(body) == "table" and body[1] ~= nil then list = body
  elseif type(body) == "table" and type(body.messages) == "table" then list = body.messages
  elseif type(body) == "table" and next(body) ~= nil and body.messages == nil then list, single = { body }, true
  else
    return 400, answer({ ok = false, error = "body: must be a message object, an array of them or {\"messages\": [...]}", field = "body" })
  end
  if #list > MAX_BATCH then
    return 413, answer({ ok = false, error = "messages: more than " .. MAX_BATCH .. " in one request (split it)", field = "messages" })
  end
  local counts = { inserted = 0, updated = 0, duplicate = 0, rejected = 0, created = {}, changed = {} }
  local details = {}
  local ok, e = pcall(function()
    for i, m in ipairs(list) do
      local d, bad_item = ingest_one(m, counts)
      if single and bad_item then
        return { status = 400, body = answer({ ok = false, error = bad_item.error, field = bad_item.field }) }
      end
      details[i] = d
    end
  end)
  -- what was stored stays stored, even when a later message failed
  flush(counts.changed)
  count_signals(counts.created, counts)
  if not ok then
    if db_down(e) then return unavailable(e) end
    error(e, 0)
  end
  if e then return e.status, e.body end
  return 200, answer({ ok = true, received = #list, inserted = counts.inserted, updated = counts.updated,
    duplicates = counts.duplicate, rejected = counts.rejected, details = json.array(details) })
end, { auth = "ingest", max_body = "4MB", doc = {
  summary = "Store forwarded channel messages and the signals parsed from them",
  description = "One message, an array of them or {\"messages\": [...]}. Idempotent on (channel, message_id): "
    .. "the same text again is a duplicate, a new text an edit (signal updated, history kept). Chatter is stored, "
    .. "never an error. A bad message in a batch is rejected by field and its neighbours stored; a bad single message is 400.",
  body = { oneOf = { MESSAGE_SCHEMA, { type = "array", items = MESSAGE_SCHEMA },
    { type = "object", required = { "messages" }, properties = { messages = { type = "array", items = MESSAGE_SCHEMA } } } } },
  response = { type = "object", required = { "ok", "received", "inserted", "updated", "duplicates", "rejected", "details" },
    properties = { ok = { type = "boolean", enum = { true } }, received = S_INT, inserted = S_INT, updated = S_INT,
      duplicates = S_INT, rejected = S_INT, details = { type = "array", items = DETAIL_SCHEMA } } },
  tags = { "tp_capital" } } })

------------------------------------------------------------------- reads
local LIST = [[
SELECT id, channel, message_id,
       to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS ts,
       kind, symbol, side, order_type, market, entry_low, entry_high, sl,
       tps::text AS tps, missing::text AS missing, flags::text AS flags, version,
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS updated_at
  FROM tp_capital.signals
 WHERE ($1::text IS NULL OR symbol = $1) AND ($2::text IS NULL OR channel = $2)
   AND ($3::text IS NULL OR kind = $3) AND ($4::timestamptz IS NULL OR ts >= $4::timestamptz)
 ORDER BY ts DESC, id DESC
 LIMIT $5::int]]

local function qerr(param, msg)
  return 400, answer({ ok = false, error = param .. ": " .. msg, field = param })
end

local function load_list(symbol, channel, kind, limit, since)
  local rows = tf.db.query(LIST, symbol, channel, kind, since, limit)
  local out = {}
  for i, r in ipairs(rows) do
    r.tps, r.missing, r.flags = json.decode(r.tps), json.decode(r.missing), json.decode(r.flags)
    for _, k in ipairs({ "entry_low", "entry_high", "sl" }) do
      if r[k] == nil then r[k] = json.null end
    end
    out[i] = json.order(r, SIGNAL_KEYS)
  end
  return json.encode(answer({ ok = true, count = #out, signals = json.array(out) }))
end

tf.route("GET", "/tp-capital/signals", function(req)
  local q = req.query or {}
  local limit = q.limit or "10"
  if not limit:match("^%d+$") or #limit > 5 or tonumber(limit) < 1 or tonumber(limit) > MAX_LIMIT then
    return qerr("limit", "must be an integer 1.." .. MAX_LIMIT)
  end
  local symbol = q.symbol
  if symbol ~= nil then
    if symbol == "" or #symbol > 32 or not symbol:match("^[%w%.#_/]+$") then
      return qerr("symbol", "must be 1..32 letters or digits")
    end
    local u = symbol:upper():gsub("/", "")
    symbol = parser.ALIASES[u] or u -- gold -> XAUUSD, eur/usd -> EURUSD
  end
  local channel = q.channel
  if channel ~= nil and (channel == "" or #channel > 128 or channel:find("%c")) then
    return qerr("channel", "must be 1..128 printable characters")
  end
  local kind = q.kind
  if kind ~= nil and kind ~= "signal" and kind ~= "partial" then
    return qerr("kind", "must be signal or partial")
  end
  local since = q.since
  if since ~= nil then
    local d, why = parse_date(since:match("^%d+$") and tonumber(since) or since)
    if not d then return qerr("since", why) end
    since = d
  end
  local rest = table.concat({ esc(kind), limit, esc(since) }, ":")
  local ok, body = pcall(ns.get_or_load, ns, list_group(symbol, channel), rest, TTL, function()
    return load_list(symbol, channel, kind, limit, since)
  end)
  if not ok then
    if db_down(body) then return unavailable(body) end
    if type(body) == "table" and (body.sqlstate == "22007" or body.sqlstate == "22008") then
      return qerr("since", "not a valid time")
    end
    error(body, 0)
  end
  return 200, body, { ["Content-Type"] = "application/json" }
end, { auth = "read", doc = {
  summary = "Signals parsed from channel messages, newest first (cached)",
  params = {
    { name = "limit", type = "integer", description = "1.." .. MAX_LIMIT .. " (default 10)" },
    { name = "symbol", type = "string", description = "EURUSD, XAUUSD, or an alias such as gold" },
    { name = "channel", type = "string", description = "Only this channel" },
    { name = "kind", type = "string", enum = { "signal", "partial" }, description = "Only complete or only half-signals" },
    { name = "since", type = "string", description = "ISO-8601 time or epoch seconds: posted at or after" },
  },
  response = { type = "object", required = { "ok", "count", "signals" }, properties = {
    ok = { type = "boolean", enum = { true } }, count = S_INT, signals = { type = "array", items = SIGNAL_SCHEMA } } },
  tags = { "tp_capital" } } })

local HEALTH = [[
SELECT (SELECT count(*) FROM tp_capital.forwarded_messages) AS messages,
       (SELECT count(*) FROM tp_capital.signals) AS signals,
       (SELECT to_char(max(received_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
          FROM tp_capital.forwarded_messages) AS last_message_at]]

tf.route("GET", "/tp-capital/health", function()
  local ok, rows = pcall(tf.db.query, HEALTH)
  if not ok then
    if db_down(rows) then
      return 503, answer({ ok = false, status = "unhealthy", database = "unavailable" })
    end
    error(rows, 0)
  end
  local r = rows[1]
  local c = ns:stats()
  return 200, answer({ ok = true, status = "healthy", database = "connected", messages = r.messages,
    signals = r.signals, last_message_at = r.last_message_at or json.null,
    cache = json.order({ hits = c.hits, misses = c.misses, hit_rate = c.hit_rate, entries = c.entries, ttl = TTL },
      { "hits", "misses", "hit_rate", "entries", "ttl" }) })
end, { auth = "none", doc = {
  summary = "TP Capital health: database reachable, message and signal counts, cache figures",
  response = { type = "object", required = { "ok", "status", "database", "messages", "signals" }, properties = {
    ok = S_BOOL, status = S_STR, database = S_STR, messages = S_INT, signals = S_INT,
    last_message_at = { type = { "string", "null" } },
    cache = { type = "object", properties = { hits = S_INT, misses = S_INT, hit_rate = { type = "number" },
      entries = S_INT, ttl = S_INT } } } },
  tags = { "tp_capital" } } })
