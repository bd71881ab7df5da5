-- Product validation for plugins/catalog: pure Lua (no tf.*, no I/O), so
-- tests/lua/catalog_validate_spec.lua checks it without a server. Every
-- failure names its field: nil, { field = "price", error = "price: ..." }.
local V = {}

V.FIELDS = { "name", "description", "price", "stock", "category" }
local KNOWN = { name = true, description = true, price = true, stock = true, category = true }
local IGNORED = { id = true, created_at = true, updated_at = true, version = true } -- echoed back by clients
local MAX_PRICE = 9999999999.99 -- NUMERIC(12, 2)
local MAX_STOCK = 2147483647

local function fail(field, msg) return nil, { field = field, error = field .. ": " .. msg } end

local function text(v, field, lo, hi)
  if type(v) ~= "string" then return fail(field, "must be a string") end
  local n = utf8.len(v)
  if not n then return fail(field, "must be valid UTF-8") end
  if v:find("%c") and field ~= "description" then return fail(field, "must not contain control characters") end
  if v:find("\0", 1, true) then return fail(field, "must not contain NUL characters") end
  if lo > 0 and not v:find("%S") then return fail(field, "must not be empty") end
  if n < lo or n > hi then return fail(field, string.format("must be %d..%d characters, got %d", lo, hi, n)) end
  return v
end

local CHECK = {
  name = function(v) return text(v, "name", 1, 200) end,
  description = function(v) return text(v, "description", 0, 5000) end,
  category = function(v) return text(v, "category", 1, 64) end,
  price = function(v)
    if type(v) ~= "number" then return fail("price", "must be a number") end
    if v ~= v or v < 0 then return fail("price", "must be >= 0") end
    if v > MAX_PRICE then return fail("price", "must be at most 9999999999.99") end
    -- at most two decimals: 19.99 is, 19.999 is not
    if tonumber(string.format("%.2f", v)) ~= v then return fail("price", "must have at most two decimals") end
    return v
  end,
  stock = function(v)
    local i = math.type(v) == "float" and math.tointeger(v) or v
    if math.type(i) ~= "integer" then return fail("stock", "must be an integer") end
    if i < 0 then return fail("stock", "must be >= 0") end
    if i > MAX_STOCK then return fail("stock", "must be at most " .. MAX_STOCK) end
    return i
  end,
}

-- V.product(body, mode) -> clean fields | nil, err. mode "create" and
-- "replace" need name, price, stock, category (description defaults to "");
-- "patch" takes any of them, at least one, plus stock_delta (an integer
-- added to stock, for sales and restocks; not with stock).
function V.product(body, mode)
  if type(body) ~= "table" or body[1] ~= nil then return fail("body", "must be a JSON object") end
  local out = {}
  for k, v in pairs(body) do
    if KNOWN[k] then
      local clean, err = CHECK[k](v)
      if clean == nil then return nil, err end
      out[k] = clean
    elseif k == "stock_delta" and mode == "patch" then
      if math.type(v) ~= "integer" or v < -MAX_STOCK or v > MAX_STOCK then
        return fail("stock_delta", "must be an integer")
      end
      out.stock_delta = v
    elseif not IGNORED[tostring(k)] then
      return fail(tostring(k), "unknown field (name, description, price, stock, category"
        .. (mode == "patch" and ", stock_delta)" or ")"))
    end
  end
  if mode == "patch" then
    if next(out) == nil then return fail("body", "nothing to change: give at least one of name, description, price, stock, category, stock_delta") end
    if out.stock and out.stock_delta then return fail("stock_delta", "give stock or stock_delta, not both") end
  else
    for _, f in ipairs({ "name", "price", "stock", "category" }) do
      if out[f] == nil then return fail(f, "required") end
    end
    out.description = out.description or ""
  end
  return out
end

-- V.query(q) -> { category, min_price, max_price, q, limit, offset } | nil, err
function V.query(q, max_limit)
  local out = { limit = 20, offset = 0 }
  local function int(name, lo, hi)
    local v = q[name]
    if v == nil then return true end
    if not v:match("^%d+$") or #v > 9 or tonumber(v) < lo or tonumber(v) > hi then
      return fail(name, string.format("must be an integer %d..%d", lo, hi))
    end
    out[name] = math.tointeger(tonumber(v))
    return true
  end
  local ok, err = int("limit", 1, max_limit)
  if not ok then return nil, err end
  ok, err = int("offset", 0, 100000000)
  if not ok then return nil, err end
  for _, name in ipairs({ "min_price", "max_price" }) do
    local v = q[name]
    if v ~= nil then
      local n = v:match("^%d+%.?%d*$") and tonumber(v)
      if not n or n > MAX_PRICE then return fail(name, "must be a number >= 0") end
      out[name] = n
    end
  end
  if out.min_price and out.max_price and out.min_price > out.max_price then
    return fail("min_price", "must not be above max_price")
  end
  if q.category ~= nil then
    local c, e = text(q.category, "category", 1, 64)
    if not c then return nil, e end
    out.category = c
  end
  if q.q ~= nil then
    local s, e = text(q.q, "q", 1, 100)
    if not s then return nil, e end
    out.q = s
  end
  return out
end

return V
