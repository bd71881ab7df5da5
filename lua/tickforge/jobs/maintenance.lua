-- Maintenance job: creates time partitions ahead and applies retention.
-- plugins/jobs.lua schedules run(ctx) daily at 03:17 UTC; tests call run(ctx, cfg).
-- Partitions come from tf_ensure_partitions (sql/001); retention drops whole
-- partitions that lie before the cutoff (tf_drop_partitions_before) and then
-- deletes the remaining older rows in one statement per table and timeframe.
-- It must never touch a table or timeframe the config does not name, and
-- never a row newer than its cutoff. Deleting M1 bars leaves the rollups be.
--
-- Config (jobs.maintenance, all optional; each table named replaces its default):
--   partitions = {                     -- natively partitioned tables (skipped otherwise)
--     ticks       = { step = "month", ahead = "90d" },
--     market_data = { step = "year",  ahead = "400d" },
--   },
--   retention = {                      -- a duration: rows older (by ts) go;
--     ticks       = "30d",             -- a table of timeframe -> duration for
--     market_data = { M1 = "90d" },    -- tables with a timeframe column;
--   },                                 -- false or absent: kept for ever
--   symbols = nil                      -- only these symbols (tests); partitions
--                                      -- are then never dropped
local config = require("tickforge.jobs.config")

local M = {}

M.DEFAULT_PARTITIONS = {
  ticks = { step = "month", ahead = "90d" },
  market_data = { step = "year", ahead = "400d" },
}
M.DEFAULT_RETENTION = { ticks = "30d", market_data = { M1 = "90d" } }

local function merged(defaults, given)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(given or {}) do out[k] = v end
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function settings(override)
  local c = config.section("maintenance", override)
  local s = { partitions = {}, retention = {}, symbols = config.text_array(c:strings("symbols")) }
  local function check_table(key, name)
    if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
      c:fail(key, "table name %s must be a plain identifier", tostring(name))
    end
  end
  local parts = merged(M.DEFAULT_PARTITIONS, c:table("partitions", {}))
  for _, name in ipairs(sorted_keys(parts)) do
    local p = parts[name]
    if p then
      check_table("partitions", name)
      if type(p) ~= "table" then c:fail("partitions", "%s: must be { step = ..., ahead = ... }", name) end
      local sub = config.section("maintenance.partitions." .. name, p)
      s.partitions[#s.partitions + 1] = { table = name, step = sub:choice("step", "month", { "month", "year" }),
                                          ahead = sub:duration("ahead", "90d") }
    end
  end
  local ret = merged(M.DEFAULT_RETENTION, c:table("retention", {}))
  local rsec = config.section("maintenance.retention", ret)
  for _, name in ipairs(sorted_keys(ret)) do
    local r = ret[name]
    if r then
      check_table("retention", name)
      if type(r) == "table" then
        local tsec = config.section("maintenance.retention." .. name, r)
        for _, tfname in ipairs(sorted_keys(r)) do
          if r[tfname] then
            s.retention[#s.retention + 1] = { table = name, timeframe = tfname, keep = tsec:duration(tfname) }
          end
        end
      else
        s.retention[#s.retention + 1] = { table = name, keep = rsec:duration(name) }
      end
    end
  end
  return s
end
M.settings = settings

-- "native" for a natively partitioned table, "plain" for any other, nil if missing.
local function kind(name)
  local r = tf.db.query([[SELECT c.relkind::text AS k FROM pg_class c
    WHERE c.oid = to_regclass($1)]], name)[1]
  return r and (r.k == "p" and "native" or "plain") or nil
end

-- run(ctx [, cfg]) -> { rows = rows deleted, note = what was done }
function M.run(ctx, override)
  local s = settings(override)
  local created, dropped, deleted, notes = 0, 0, 0, {}
  for _, p in ipairs(s.partitions) do
    if kind(p.table) == "native" then
      created = created + tf.db.query([[SELECT tf_ensure_partitions($1::regclass, $2, now(),
        now() + make_interval(secs => $3::float8)) AS n]], p.table, p.step, p.ahead)[1].n
    end
  end
  for _, r in ipairs(s.retention) do
    local k = kind(r.table)
    if not k then
      notes[#notes + 1] = "no table " .. r.table
    else
      local cutoff = tf.db.query("SELECT now() - make_interval(secs => $1::float8) AS t", r.keep)[1].t
      if k == "native" and not r.timeframe and not s.symbols then
        dropped = dropped + tf.db.query("SELECT tf_drop_partitions_before($1::regclass, $2::timestamptz) AS n",
          r.table, cutoff)[1].n
      end
      -- r.table is a checked identifier of an existing table; values go as parameters
      local sql, args = "DELETE FROM " .. r.table .. " WHERE ts < $1::timestamptz", { cutoff }
      if r.timeframe then args[#args + 1] = r.timeframe; sql = sql .. " AND timeframe = $" .. #args end
      if s.symbols then args[#args + 1] = s.symbols; sql = sql .. " AND symbol = ANY($" .. #args .. "::text[])" end
      deleted = deleted + tf.db.exec(sql, table.unpack(args))
    end
  end
  notes[#notes + 1] = string.format("partitions created %d, dropped %d", created, dropped)
  return { rows = deleted, note = table.concat(notes, "; ") }
end

return M
