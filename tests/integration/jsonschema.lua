-- A small JSON-schema validator for the specs: the subset the route docs use
-- (type, including a list of types; properties; required; items; enum;
-- additionalProperties given as a schema; oneOf; $ref into the document's
-- components). validate(value, schema, root) -> true | false, "path: why".
-- Values are decoded with tf.json.decode (null is tf.json.null; a decoded
-- array keeps its arrayness in its metatable, so an empty [] is an array).
local M = {}

local function is_array(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt and mt.__jsontype == "array" then return true end
  return next(v) ~= nil and #v > 0 and next(v, #v) == nil
end

local function json_type(v)
  if v == tf.json.null then return "null" end
  local t = type(v)
  if t == "boolean" then return "boolean" end
  if t == "string" then return "string" end
  if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
  if t == "table" then return is_array(v) and "array" or "object" end
  return t
end

local function type_ok(v, want)
  local got = json_type(v)
  if got == want then return true end
  if want == "number" and got == "integer" then return true end
  if want == "integer" and got == "number" and v == math.floor(v) then return true end
  if got == "object" and want == "array" and next(v) == nil then return true end
  if got == "array" and want == "object" and next(v) == nil then return true end
  return false
end

local function check(v, s, root, path)
  if s["$ref"] then
    local node = root
    for part in s["$ref"]:gsub("^#/", ""):gmatch("[^/]+") do node = node and node[part] end
    if not node then return false, path .. ": unresolved $ref " .. s["$ref"] end
    return check(v, node, root, path)
  end
  if s.oneOf then
    local n = 0
    for _, alt in ipairs(s.oneOf) do if check(v, alt, root, path) then n = n + 1 end end
    if n ~= 1 then return false, path .. ": matches " .. n .. " of the oneOf alternatives, not exactly one" end
  end
  if s.type then
    local types = type(s.type) == "table" and s.type or { s.type }
    local ok = false
    for _, t in ipairs(types) do if type_ok(v, t) then ok = true end end
    if not ok then
      return false, string.format("%s: is %s, want %s", path, json_type(v), table.concat(types, "|"))
    end
  end
  if s.enum then
    local ok = false
    for _, e in ipairs(s.enum) do if e == v then ok = true end end
    if not ok then return false, path .. ": " .. tostring(v) .. " is not one of the enum values" end
  end
  local jt = json_type(v)
  if jt == "object" then
    for _, k in ipairs(s.required or {}) do
      if v[k] == nil then return false, path .. ": missing required '" .. k .. "'" end
    end
    for k, sub in pairs(s.properties or {}) do
      if v[k] ~= nil then
        local ok, why = check(v[k], sub, root, path .. "." .. k)
        if not ok then return false, why end
      end
    end
    if type(s.additionalProperties) == "table" then
      for k, x in pairs(v) do
        if not (s.properties and s.properties[k]) then
          local ok, why = check(x, s.additionalProperties, root, path .. "." .. tostring(k))
          if not ok then return false, why end
        end
      end
    elseif s.additionalProperties == false then
      for k in pairs(v) do
        if not (s.properties and s.properties[k]) then return false, path .. ": unexpected '" .. tostring(k) .. "'" end
      end
    end
  elseif jt == "array" and s.items then
    for i, x in ipairs(v) do
      local ok, why = check(x, s.items, root, path .. "[" .. i .. "]")
      if not ok then return false, why end
    end
  end
  return true
end

function M.validate(value, schema, root)
  return check(value, schema, root or schema, "$")
end

return M
