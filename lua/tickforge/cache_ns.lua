-- Cache-aside with invalidation that a racing read cannot undo. A plugin
-- caches answers under named groups ("product:12", "list:books"); a write
-- calls bump(group) after its commit. Each group has a generation token
-- (under "<prefix>_gen:<group>", no expiry) that is part of every data key,
-- so a read that loaded the old row before the commit and stores it after
-- the bump stores it under a key nobody asks for again. Old entries are
-- deleted at once too (they only would have aged out). Used by
-- plugins/catalog and plugins/tp_capital.
--
--   local ns = require("tickforge.cache_ns").new("catalog")
--   local v = ns:get_or_load("product:12", "", 300, loader)   -- tf.cache.get_or_load semantics
--   ns:bump("product:12")                                     -- after the write commits
local NS = {}
NS.__index = NS

-- Escapes a value for use inside a key (":" separates key parts, "*" means all).
function NS.esc(v)
  if v == nil then return "*" end
  return (tostring(v):gsub("[%%:*]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- enabled = false: every read loads (for comparison and debugging); bumps
-- still drop what is cached.
function NS.new(prefix, enabled)
  assert(type(prefix) == "string" and prefix:match("^[%w_]+$"), "cache_ns: prefix must be letters, digits or _")
  return setmetatable({ prefix = prefix, gen_prefix = prefix .. "_gen:", enabled = enabled ~= false }, NS)
end

local function token()
  return string.format("%x%07x", math.random(0, 0x7fffffff), math.random(0, 0xfffffff))
end

-- The group's current generation; a group never seen (or evicted) gets a
-- fresh one, so it can never meet entries stored under an earlier one.
function NS:gen(group)
  local k = self.gen_prefix .. group
  local g = tf.cache.get(k)
  if g == nil then
    g = token()
    tf.cache.set(k, g)
  end
  return g
end

-- tf.cache.get_or_load on <prefix>:<group>:<generation>:<rest>.
function NS:get_or_load(group, rest, ttl, loader)
  if not self.enabled then return loader() end
  local key = table.concat({ self.prefix, group, self:gen(group), rest }, ":")
  return tf.cache.get_or_load(key, ttl, loader)
end

-- After a write committed: a new generation for each group named (as
-- arguments or in one list), and the entries of the old one dropped.
-- Returns the entries dropped.
function NS:bump(...)
  local groups = ...
  if type(groups) ~= "table" then groups = { ... } end
  local n = 0
  for _, group in ipairs(groups) do
    tf.cache.set(self.gen_prefix .. group, token())
    n = n + tf.cache.delete_prefix(self.prefix .. ":" .. group .. ":")
  end
  return n
end

-- Drops every entry and generation of this prefix.
function NS:clear()
  return tf.cache.delete_prefix(self.prefix .. ":") + tf.cache.delete_prefix(self.gen_prefix)
end

-- Hits, misses, hit rate, entries and bytes of this prefix's data keys.
function NS:stats()
  local s = tf.cache.stats()
  local p = (s.prefixes or {})[self.prefix] or {}
  local hits, misses = p.hits or 0, p.misses or 0
  return { hits = hits, misses = misses, hit_rate = (hits + misses) > 0 and hits / (hits + misses) or 0,
           entries = p.entries or 0, bytes = p.bytes or 0, max_bytes = s.max_bytes }
end

return NS
