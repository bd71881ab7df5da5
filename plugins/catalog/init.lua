-- Product catalog: the seed's products REST API (PostgreSQL + cache-aside)
-- as a plugin. Reads go through tf.cache (TTL catalog.cache_ttl); each
-- write deletes exactly the cached answers it can change: the product's own
-- key and the listings of its old and new category and of "all categories".
-- Schema: sql/041_catalog.sql. Guide: docs/catalog.md. Off unless enabled:
--
--   catalog = {
--     enabled = false,       -- true: serve the routes below
--     cache = true,          -- false: every read goes to the database (for comparison)
--     cache_ttl = 300,       -- seconds a cached product or listing lives (0..86400; 0 = no expiry)
--     max_limit = 100,       -- largest ?limit= of GET /products (1..1000)
--     write_role = "ingest", -- role POST/PUT/PATCH/DELETE need: "ingest" | "admin"
--   }
local V = require("catalog.validate")

local cfg = tf.config.catalog or {}
local function check(ok, msg) if not ok then error("config catalog." .. msg, 0) end end
local function int_in(v, lo, hi) return math.type(v) == "integer" and v >= lo and v <= hi end
local TTL = cfg.cache_ttl or 300
local MAX_LIMIT = cfg.max_limit or 100
local WRITE_ROLE = cfg.write_role or "ingest"
check(cfg.enabled == nil or type(cfg.enabled) == "boolean", "enabled: must be true or false")
check(cfg.cache == nil or type(cfg.cache) == "boolean", "cache: must be true or false")
check(int_in(TTL, 0, 86400), "cache_ttl: must be an integer 0..86400 (seconds)")
check(int_in(MAX_LIMIT, 1, 1000), "max_limit: must be an integer 1..1000")
check(WRITE_ROLE == "ingest" or WRITE_ROLE == "admin", "write_role: must be \"ingest\" or \"admin\"")
if cfg.enabled ~= true then return end

local json = tf.json
local TOP = { "ok", "error", "field", "status", "product", "total", "limit", "offset", "products",
  "deleted", "cache", "database", "services" }
local PRODUCT = { "id", "name", "description", "price", "stock", "category", "version", "created_at", "updated_at" }
local function answer(t) return json.order(t, TOP) end
local function bad(status, e) return status, answer({ ok = false, error = e.error, field = e.field }) end
local function not_found(id)
  return 404, answer({ ok = false, error = "id: no product " .. id, field = "id" })
end

local function db_down(e) return type(e) == "table" and (e.code == "unavailable" or e.code == "timeout") end
local function unavailable(e)
  tf.log.warn("catalog: database " .. tostring(e.code), { error = e.message })
  return 503, answer({ ok = false, error = "database unavailable" }), { ["Retry-After"] = "1" }
end

------------------------------------------------------------------- cache
-- Groups (lua/tickforge/cache_ns.lua puts a generation in every key):
--   product:<id>          one product (its JSON)
--   list:<category|*>     GET /products answers, keyed by the rest of the filters
-- A write bumps its product and the listings of its old and new category
-- and of "all categories", after it commits: nothing else is dropped.
local NS = require("tickforge.cache_ns")
local ns = NS.new("catalog", cfg.cache ~= false)
local esc = NS.esc

local function list_rest(f)
  return table.concat({ esc(f.min_price), esc(f.max_price), esc(f.q), f.limit, f.offset }, ":")
end

local function invalidate(id, ...)
  local groups = { "list:*" }
  if id then groups[#groups + 1] = "product:" .. id end
  local seen = {}
  for _, cat in ipairs({ ... }) do
    if not seen[cat] then
      seen[cat] = true
      groups[#groups + 1] = "list:" .. esc(cat)
    end
  end
  ns:bump(groups)
end

local function cache_stats()
  local s = ns:stats()
  s.ttl, s.max_bytes = TTL, nil
  return s
end

local function cache_status()
  local s = tf.cache.stats()
  return json.order({ status = "connected", entries = s.entries, bytes = s.bytes, max_bytes = s.max_bytes },
    { "status", "entries", "bytes", "max_bytes" })
end

--------------------------------------------------------------------- SQL
local COLS = [[id, name, description, price::float8 AS price, stock, category, version,
  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS updated_at]]
local GET = "SELECT " .. COLS .. " FROM catalog.products WHERE id = $1::int8"
local INSERT = "INSERT INTO catalog.products (name, description, price, stock, category) VALUES ($1, $2, $3::numeric, $4::int, $5) RETURNING " .. COLS
local REPLACE = [[UPDATE catalog.products SET name = $2, description = $3, price = $4::numeric, stock = $5::int,
  category = $6, version = version + 1, updated_at = now() WHERE id = $1::int8 RETURNING ]] .. COLS
-- PATCH: NULL keeps a column; stock_delta adds (the CHECK refuses < 0)
local PATCH = [[UPDATE catalog.products SET name = COALESCE($2, name), description = COALESCE($3, description),
  price = COALESCE($4::numeric, price), stock = COALESCE($5::int, stock + $7::int, stock),
  category = COALESCE($6, category), version = version + 1, updated_at = now()
  WHERE id = $1::int8 RETURNING ]] .. COLS
local OLD_CATEGORY = "SELECT category FROM catalog.products WHERE id = $1::int8 FOR UPDATE"
local DELETE = "DELETE FROM catalog.products WHERE id = $1::int8 RETURNING category"
local WHERE = [[WHERE ($1::text IS NULL OR category = $1) AND ($2::numeric IS NULL OR price >= $2::numeric)
  AND ($3::numeric IS NULL OR price <= $3::numeric)
  AND ($4::text IS NULL OR name ILIKE $4 ESCAPE '\' OR description ILIKE $4 ESCAPE '\')]]
local LIST = "SELECT " .. COLS .. " FROM catalog.products " .. WHERE .. " ORDER BY id LIMIT $5::int OFFSET $6::int"
local COUNT = "SELECT count(*) AS n FROM catalog.products " .. WHERE

local function product(r) return json.order(r, PRODUCT) end
local function encode_product(r) return json.encode(product(r)) end
local function with_product(encoded) -- {"ok":true,"product":{...}} around a cached product
  return '{"ok":true,"product":' .. encoded .. "}"
end
local JSON = { ["Content-Type"] = "application/json" }

-- A statement's own failure mapped to an answer (nil: not ours to map).
local function write_error(e, fields)
  local state = type(e) == "table" and e.sqlstate
  if state == "23505" then
    local msg = fields.name and fields.category
      and string.format("name: a product named %q already exists in category %q", fields.name, fields.category)
      or "name: another product of this category has this name"
    return 409, answer({ ok = false, field = "name", error = msg })
  end
  if state == "23514" then
    local what = tostring(e.message or "")
    if what:find("stock") then
      return 409, answer({ ok = false, field = "stock_delta", error = "stock_delta: stock would go below 0" })
    end
    return 400, answer({ ok = false, error = what })
  end
end

local function run(fn)
  local ok, a, b, c = pcall(fn)
  if ok then return a, b, c end
  if db_down(a) then return unavailable(a) end
  error(a, 0)
end

local function id_of(req)
  local id = req.params.id
  if not id:match("^%d+$") or #id > 18 or tonumber(id) < 1 then
    return nil, { field = "id", error = "id: must be a positive integer" }
  end
  return tostring(math.tointeger(tonumber(id))) -- "007" and "7" are one product, one cache key
end

local function body_of(req)
  local v, err = json.decode(req.body or "")
  if v == nil then return nil, { field = "body", error = "body: invalid JSON (" .. tostring(err) .. ")" } end
  return v
end


------------------------------------------------------- route docs (OpenAPI)
local S_STR, S_INT = { type = "string" }, { type = "integer" }
local PRODUCT_SCHEMA = { type = "object", required = PRODUCT, properties = {
  id = S_INT, name = S_STR, description = S_STR, price = { type = "number" }, stock = S_INT, category = S_STR,
  version = S_INT, created_at = S_STR, updated_at = S_STR } }
local FIELDS_SCHEMA = { type = "object", properties = {
  name = { type = "string", description = "1..200 characters; unique (any case) within its category" },
  description = { type = "string", description = "0..5000 characters (default empty)" },
  price = { type = "number", description = ">= 0, at most two decimals" },
  stock = { type = "integer", description = ">= 0" },
  category = { type = "string", description = "1..64 characters" } } }
local NEW_SCHEMA = { type = "object", required = { "name", "price", "stock", "category" }, properties = FIELDS_SCHEMA.properties }
local PATCH_SCHEMA = { type = "object", properties = { stock_delta = { type = "integer",
  description = "added to stock (negative for a sale); 409 when stock would go below 0" } } }
for k, v in pairs(FIELDS_SCHEMA.properties) do PATCH_SCHEMA.properties[k] = v end
local ONE_SCHEMA = { type = "object", required = { "ok", "product" }, properties = {
  ok = { type = "boolean", enum = { true } }, product = PRODUCT_SCHEMA } }
local ID_PARAM = { { name = "id", type = "integer", required = true, description = "The product's id" } }
local TAGS = { "catalog" }

------------------------------------------------------------------ routes
local R = { auth = "read" }
local W = { auth = WRITE_ROLE, max_body = "64KB" }
local function opts(base, doc)
  local o = { doc = doc }
  doc.tags = TAGS
  for k, v in pairs(base) do o[k] = v end
  return o
end

tf.route("GET", "/products", function(req)
  local f, err = V.query(req.query or {}, MAX_LIMIT)
  if not f then return bad(400, err) end
  local like = f.q and ("%" .. f.q:gsub("[\\%%_]", "\\%0") .. "%")
  return run(function()
    local body = ns:get_or_load("list:" .. esc(f.category), list_rest(f), TTL, function()
      local rows = tf.db.query(LIST, f.category, f.min_price, f.max_price, like, f.limit, f.offset)
      local total = tf.db.query(COUNT, f.category, f.min_price, f.max_price, like)[1].n
      for i, r in ipairs(rows) do rows[i] = product(r) end
      return json.encode(answer({ ok = true, total = total, limit = f.limit, offset = f.offset, products = json.array(rows) }))
    end)
    return 200, body, JSON
  end)
end, opts(R, { summary = "List products, filtered and paginated, with the total (cached)",
  params = {
    { name = "category", type = "string", description = "Only this category" },
    { name = "min_price", type = "number", description = "Price at least this" },
    { name = "max_price", type = "number", description = "Price at most this" },
    { name = "q", type = "string", description = "Text in the name or description (1..100 characters, any case)" },
    { name = "limit", type = "integer", description = "1.." .. MAX_LIMIT .. " (default 20)" },
    { name = "offset", type = "integer", description = "Products to skip (default 0)" },
  },
  response = { type = "object", required = { "ok", "total", "limit", "offset", "products" }, properties = {
    ok = { type = "boolean", enum = { true } }, total = S_INT, limit = S_INT, offset = S_INT,
    products = { type = "array", items = PRODUCT_SCHEMA } } } }))

tf.route("GET", "/products/{id}", function(req)
  local id, err = id_of(req)
  if not id then return bad(400, err) end
  return run(function()
    local p = ns:get_or_load("product:" .. id, "", TTL, function()
      local r = tf.db.query(GET, id)[1]
      return r and encode_product(r) -- nil: a miss is not cached
    end)
    if not p then return not_found(id) end
    return 200, with_product(p), JSON
  end)
end, opts(R, { summary = "One product (cached); 404 when there is none", params = ID_PARAM, response = ONE_SCHEMA }))

tf.route("POST", "/products", function(req)
  local body, err = body_of(req)
  if not body then return bad(400, err) end
  local p, verr = V.product(body, "create")
  if not p then return bad(400, verr) end
  return run(function()
    local ok, r = pcall(tf.db.query, INSERT, p.name, p.description, p.price, p.stock, p.category)
    if not ok then
      local st, a = write_error(r, p)
      if st then return st, a end
      error(r, 0)
    end
    r = r[1]
    invalidate(nil, r.category)
    return 201, answer({ ok = true, product = product(r) }), { Location = "/products/" .. r.id }
  end)
end, opts(W, { summary = "Create a product (201 with Location); 409 for a duplicate name in its category",
  body = NEW_SCHEMA, response = ONE_SCHEMA }))

-- PUT replaces every field, PATCH the ones given; both in one transaction
-- that locks the row, so concurrent writes to one product queue up.
local function update(mode)
  return function(req)
    local id, ierr = id_of(req)
    if not id then return bad(400, ierr) end
    local body, err = body_of(req)
    if not body then return bad(400, err) end
    local p, verr = V.product(body, mode)
    if not p then return bad(400, verr) end
    return run(function()
      local ok, res = pcall(tf.db.tx, function()
        local old = tf.db.query(OLD_CATEGORY, id)[1]
        if not old then return nil end
        local r
        if mode == "replace" then
          r = tf.db.query(REPLACE, id, p.name, p.description, p.price, p.stock, p.category)[1]
        else
          r = tf.db.query(PATCH, id, p.name, p.description, p.price, p.stock, p.category, p.stock_delta)[1]
        end
        return { old = old.category, row = r }
      end)
      if not ok then
        local st, a = write_error(res, p)
        if st then return st, a end
        error(res, 0)
      end
      if not res then return not_found(id) end
      invalidate(id, res.old, res.row.category)
      return 200, answer({ ok = true, product = product(res.row) })
    end)
  end
end

tf.route("PUT", "/products/{id}", update("replace"), opts(W, { summary = "Replace every field of a product",
  params = ID_PARAM, body = NEW_SCHEMA, response = ONE_SCHEMA }))
tf.route("PATCH", "/products/{id}", update("patch"), opts(W, {
  summary = "Change some fields of a product; stock_delta adds to the stock atomically",
  params = ID_PARAM, body = PATCH_SCHEMA, response = ONE_SCHEMA }))

tf.route("DELETE", "/products/{id}", function(req)
  local id, err = id_of(req)
  if not id then return bad(400, err) end
  return run(function()
    local r = tf.db.query(DELETE, id)[1]
    if not r then return not_found(id) end
    invalidate(id, r.category)
    return 200, answer({ ok = true, deleted = math.tointeger(tonumber(id)) })
  end)
end, opts(W, { summary = "Delete a product", params = ID_PARAM, response = { type = "object",
  required = { "ok", "deleted" }, properties = { ok = { type = "boolean", enum = { true } }, deleted = S_INT } } }))

------------------------------------------------------- stats and services
local COUNTS = [[SELECT count(*) AS products, count(DISTINCT category) AS categories,
  COALESCE(sum(stock), 0)::int8 AS stock_units FROM catalog.products]]

tf.route("GET", "/catalog/stats", function()
  return run(function()
    local db = tf.db.query(COUNTS)[1]
    return 200, answer({ ok = true, cache = json.order(cache_stats(), { "hits", "misses", "hit_rate", "entries", "bytes", "ttl" }),
      database = json.order(db, { "products", "categories", "stock_units" }) })
  end)
end, opts(R, { summary = "The catalog's cache hits, misses and hit rate, and database row counts",
  response = { type = "object", required = { "ok", "cache", "database" }, properties = {
    ok = { type = "boolean" },
    cache = { type = "object", required = { "hits", "misses", "hit_rate" }, properties = { hits = S_INT, misses = S_INT,
      hit_rate = { type = "number" }, entries = S_INT, bytes = S_INT, ttl = S_INT } },
    database = { type = "object", properties = { products = S_INT, categories = S_INT, stock_units = S_INT } } } } }))

tf.route("GET", "/services", function()
  local ok, e = pcall(tf.db.query, "SELECT current_setting('server_version') AS version")
  local database
  if ok then
    database = json.order({ status = "connected", version = e[1].version }, { "status" })
  elseif db_down(e) then
    database = json.order({ status = "unavailable", error = e.message }, { "status" })
  else
    error(e, 0)
  end
  local cache = cache_status()
  local healthy = ok and cache.status == "connected"
  return healthy and 200 or 503, answer({ ok = healthy, status = healthy and "healthy" or "degraded",
    services = json.order({ database = database, cache = cache }, { "database", "cache" }) })
end, opts(R, { summary = "Status of what the catalog depends on: the database and the cache (503 when one is down)",
  response = { type = "object", required = { "ok", "status", "services" }, properties = {
    ok = { type = "boolean" }, status = S_STR, services = { type = "object", properties = {
      database = { type = "object", required = { "status" }, properties = { status = S_STR, version = S_STR } },
      cache = { type = "object", required = { "status" }, properties = { status = S_STR, entries = S_INT, bytes = S_INT,
        max_bytes = S_INT } } } } } } }))

tf.route("DELETE", "/catalog/cache", function()
  return 200, answer({ ok = true, deleted = ns:clear() })
end, opts({ auth = "admin" }, { summary = "Drop every cached catalog answer (the seed's DELETE /cache/clear)",
  response = { type = "object", required = { "ok", "deleted" }, properties = { ok = { type = "boolean" }, deleted = S_INT } } }))
