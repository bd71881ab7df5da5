-- GET /signals: the signals strategies stored, for EAs to poll.
--   GET /signals?since=<last id seen>&symbol=EURUSD[&strategy=rsi_reversal][&limit=100]
--   -> {"ok":true,"signals":[{"id":..,"strategy":..,"symbol":..,"timeframe":..,"ts":..,
--        "side":"buy","strength":..,"price":..,"stop":..,"target":..,"comment":..}],"last_id":N}
-- Signals come oldest first with ids above `since`; ids only grow, so an EA
-- keeps the last id it saw and asks for more. last_id is the highest id
-- returned (or `since` when none). A bad parameter is 400 naming it; a
-- database outage is 503. Auth role "read". Reads only; never builds SQL
-- from values.
local MAX_LIMIT = 1000

local SQL = [[
SELECT id, strategy, symbol, timeframe,
       to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"') AS ts,
       side, strength, price, stop, target, comment,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS created_at
  FROM signals
 WHERE id > $1::int8 AND ($2::text IS NULL OR symbol = $2) AND ($3::text IS NULL OR strategy = $3)
 ORDER BY id
 LIMIT $4::int]]

local function bad(param, msg)
  return 400, { ok = false, error = param .. ": " .. msg, param = param }
end

tf.route("GET", "/signals", function(req)
  local q = req.query or {}
  local since = q.since or "0"
  if not since:match("^%d+$") or #since > 18 then return bad("since", "must be a non-negative integer (the last id seen)") end
  local limit = q.limit or "100"
  if not limit:match("^%d+$") or tonumber(limit) < 1 or tonumber(limit) > MAX_LIMIT then
    return bad("limit", "must be an integer in 1.." .. MAX_LIMIT)
  end
  for _, p in ipairs({ "symbol", "strategy" }) do
    local v = q[p]
    if v ~= nil and (v == "" or #v > 64 or v:find("[%c]")) then return bad(p, "must be 1..64 printable characters") end
  end
  local rows = tf.db.query(SQL, since, q.symbol, q.strategy, limit) -- an outage raises: the host answers 503
  local last = math.tointeger(tonumber(since))
  for _, r in ipairs(rows) do
    last = r.id
    for _, k in ipairs({ "strength", "price", "stop", "target", "comment" }) do
      if r[k] == nil then r[k] = tf.json.null end -- a stable shape for EAs
    end
  end
  return 200, { ok = true, signals = tf.json.array(rows), last_id = last }
end, { auth = "read", doc = {
  summary = "Signals the strategies stored, oldest first, for EAs to poll",
  description = "Keep the last id seen and pass it as since: ids only grow. last_id is the highest id returned (since when none).",
  params = {
    { name = "since", type = "integer", description = "The last id seen (default 0)" },
    { name = "symbol", type = "string", description = "Only this symbol" },
    { name = "strategy", type = "string", description = "Only this strategy" },
    { name = "limit", type = "integer", description = "1.." .. MAX_LIMIT .. " (default 100)" },
  },
  response = { type = "object", required = { "ok", "signals", "last_id" }, properties = {
    ok = { type = "boolean", enum = { true } }, last_id = { type = "integer" },
    signals = { type = "array", items = { type = "object",
      required = { "id", "strategy", "symbol", "timeframe", "ts", "side" },
      properties = { id = { type = "integer" }, strategy = { type = "string" }, symbol = { type = "string" },
        timeframe = { type = "string" }, ts = { type = "string" }, side = { type = "string" },
        strength = { type = { "number", "null" } }, price = { type = { "number", "null" } },
        stop = { type = { "number", "null" } }, target = { type = { "number", "null" } },
        comment = { type = { "string", "null" } }, created_at = { type = "string" } } } },
  } },
} })
