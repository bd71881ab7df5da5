-- Config reading shared by the shipped jobs: each job reads its section
-- `jobs.<name>` of the config file (or a table a test hands it) through these
-- checks, so a wrong value is an error naming the full key, raised when the
-- job runs (and when plugins/jobs.lua loads, so a reload refuses it). Never
-- touches the database and never guesses a value it cannot read.
local M = {}

-- The job's section: `override` when given (tests), else tf.config's jobs.<name>.
function M.section(name, override)
  local sec = override
  if sec == nil then sec = tf.config.get("jobs." .. name, {}) end
  if type(sec) ~= "table" then
    error(string.format("jobs.%s: must be a table, got %s", name, type(sec)), 0)
  end
  return setmetatable({ _job = name, _t = sec }, { __index = M })
end

function M:key(k) return "jobs." .. self._job .. "." .. k end

function M:fail(k, fmt, ...)
  error(self:key(k) .. ": " .. string.format(fmt, ...), 0)
end

-- A duration: a number of seconds or "500ms" "5s" "2m" "1h" "30d", read by
-- the core's one parser (tf.duration, as the config and tf.job read theirs).
-- Returns seconds.
function M:duration(k, default)
  local v = self._t[k]
  if v == nil then v = default end
  local s, err = tf.duration(v)
  if not s then self:fail(k, "%s", err) end
  return s
end

function M:number(k, default, lo, hi)
  local v = self._t[k]
  if v == nil then v = default end
  if type(v) ~= "number" or v < lo or v > hi then
    self:fail(k, "must be a number in %s..%s, got %s", tostring(lo), tostring(hi), tostring(v))
  end
  return v
end

function M:choice(k, default, allowed)
  local v = self._t[k]
  if v == nil then v = default end
  for _, a in ipairs(allowed) do if v == a then return v end end
  self:fail(k, "must be one of %s, got %s", table.concat(allowed, ", "), tostring(v))
end

-- A list of strings, or nil when absent (meaning "all").
function M:strings(k, default)
  local v = self._t[k]
  if v == nil then v = default end
  if v == nil then return nil end
  if type(v) ~= "table" then self:fail(k, "must be a list of strings, got %s", type(v)) end
  for i, s in ipairs(v) do
    if type(s) ~= "string" or s == "" then self:fail(k, "entry %d must be a non-empty string", i) end
  end
  return v
end

function M:table(k, default)
  local v = self._t[k]
  if v == nil then v = default end
  if type(v) ~= "table" then self:fail(k, "must be a table, got %s", type(v)) end
  return v
end

-- A PostgreSQL memory size: "64MB", "512kB", "1GB". Returns the text.
function M:memory(k, default)
  local v = self._t[k]
  if v == nil then v = default end
  if type(v) ~= "string" or not v:match("^%d+[kMG]B$") then
    self:fail(k, "must be a size like \"64MB\", \"512kB\" or \"1GB\", got %s", tostring(v))
  end
  return v
end

function M:raw(k) return self._t[k] end

-- Inside a job's transaction: no JIT (compiling a large plan costs more than
-- it saves for these one-pass statements) and the job's work_mem.
function M.tune_transaction(work_mem)
  tf.db.query("SELECT set_config('jit', 'off', true), set_config('work_mem', $1, true)", work_mem)
end

-- A Lua list of strings as a PostgreSQL text[] literal parameter, or nil.
function M.text_array(list)
  if list == nil then return nil end
  local parts = {}
  for i, s in ipairs(list) do parts[i] = '"' .. s:gsub('[\\"]', '\\%0') .. '"' end
  return "{" .. table.concat(parts, ",") .. "}"
end

return M
