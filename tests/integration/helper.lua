-- Integration test helper: starts the real binary on a free port with an
-- inline config and inline plugins in a fresh temporary directory, speaks
-- real HTTP to it (LuaSocket), and stops it. Runs inside `tickforge run`, so
-- tf.db reaches the same real PostgreSQL (DATABASE_URL) the server uses.
--
--   local H = require("tests.integration.helper")
--   local srv = H.start_server{ plugins = { ["x.lua"] = [[ tf.route(...) ]] },
--                               config = { lua = { handler_timeout_ms = 200 } } }
--   local status, body, headers = srv:request("GET", "/x", nil, { ["X-API-Key"] = H.INGEST_KEY })
--   local status, obj = srv:json("POST", "/x", { a = 1 }, H.ingest_headers())
--   srv:stop()
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")

local H = {}

H.ROOT = os.getenv("PWD")
H.BIN = os.getenv("TF_BIN") or (H.ROOT .. "/build/tickforge")
H.INGEST_KEY = "test-ingest-key-0001"
H.ADMIN_KEY = "test-admin-key-0001"
H.READ_KEY = "test-read-key-0001"

function H.ingest_headers(extra)
  local h = { ["X-API-Key"] = H.INGEST_KEY, ["Content-Type"] = "application/json" }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

function H.admin_headers() return { ["X-API-Key"] = H.ADMIN_KEY } end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end
H.sh = sh

function H.sleep(s) socket.sleep(s) end

function H.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

function H.tmpdir()
  return (sh("mktemp -d /tmp/tickforge-test.XXXXXX"):gsub("%s+$", ""))
end

function H.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

function H.read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Serialises a plain Lua value as Lua source (for the config file).
local function lua_literal(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t ~= "table" then return tostring(v) end
  local parts, n = {}, #v
  for i = 1, n do parts[#parts + 1] = indent .. "  " .. lua_literal(v[i], indent .. "  ") end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    parts[#parts + 1] = string.format("%s  [%s] = %s", indent, lua_literal(k), lua_literal(v[k], indent .. "  "))
  end
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end
H.lua_literal = lua_literal

local function merge(into, from)
  for k, v in pairs(from or {}) do
    if type(v) == "table" and type(into[k]) == "table" and #v == 0 then merge(into[k], v) else into[k] = v end
  end
  return into
end

local Server = {}
Server.__index = Server

-- opts.plugins: { ["name.lua"] = source } (default: none)
-- opts.config: table merged over the test defaults
-- opts.shipped: true to serve the repository's own plugins/ instead
-- opts.env: extra environment, { NAME = value }
-- opts.wait: false to return without waiting for /health
function H.start_server(opts)
  opts = opts or {}
  local dir = H.tmpdir()
  local port = opts.port or H.free_port()
  sh("mkdir -p " .. dir .. "/plugins")
  for name, src in pairs(opts.plugins or {}) do H.write(dir .. "/plugins/" .. name, src) end
  local cfg = merge({
    listen = "127.0.0.1:" .. port,
    http = { workers = 2 },
    plugins = { dir = opts.shipped and (H.ROOT .. "/plugins") or (dir .. "/plugins") },
    lua = { path = { H.ROOT .. "/lua" } },
    database = { migrations = H.ROOT .. "/sql" },
    auth = { keys = {
      { key = H.INGEST_KEY, roles = { "ingest", "read" }, name = "test-ingest" },
      { key = H.READ_KEY, roles = { "read" }, name = "test-read" },
      { key = H.ADMIN_KEY, roles = { "admin", "read" }, name = "test-admin" },
    } },
    log = { level = "info" },
    -- the shipped jobs would run against the shared test database: off
    -- unless a test turns them on (config = { jobs = { enabled = true } })
    jobs = { enabled = false },
  }, opts.config)
  local cfg_path = dir .. "/tickforge.lua"
  H.write(cfg_path, "return " .. lua_literal(cfg) .. "\n")
  local env = ""
  for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. string.format("%q", v) .. " " end
  local pid = sh(string.format("cd %s && env -u TICKFORGE_API_KEY -u API_KEY -u TICKFORGE_ADMIN_KEY %s %s serve --config %s >%s/server.log 2>&1 & echo $!",
    dir, env, H.BIN, cfg_path, dir)):gsub("%s+$", "")
  local srv = setmetatable({ dir = dir, port = port, pid = tonumber(pid), config_path = cfg_path,
    base = "http://127.0.0.1:" .. port }, Server)
  if opts.wait ~= false then assert(srv:wait_healthy(10), "server did not start:\n" .. (srv:log() or "")) end
  return srv
end

-- A Server object for a process started some other way (make run).
function H.attach(port, pid)
  return setmetatable({ port = port, pid = pid, base = "http://127.0.0.1:" .. port, dir = "" }, Server)
end

function Server:alive()
  return os.execute("kill -0 " .. self.pid .. " 2>/dev/null") == true
end

function Server:wait_healthy(seconds)
  local deadline = socket.gettime() + (seconds or 10)
  while socket.gettime() < deadline do
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", self.port)
    c:close()
    if ok then
      local st = self:request("GET", "/health")
      if st == 200 or st == 503 then return true end
    end
    if not self:alive() then return false end
    socket.sleep(0.05)
  end
  return false
end

-- Returns status, body (string), headers (lower-case names). Status is nil
-- and body the error text when the connection failed.
function Server:request(method, path, body, headers)
  local chunks = {}
  headers = headers or {}
  local h = {}
  for k, v in pairs(headers) do h[k:lower()] = v end
  if body then h["content-length"] = tostring(#body) end
  local ok, status, rh = http.request{
    url = self.base .. path, method = method, headers = h,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  }
  if not ok then return nil, status end
  return status, table.concat(chunks), rh
end

-- Encodes body (unless it is already a string), decodes the answer.
function Server:json(method, path, body, headers)
  if type(body) == "table" then body = tf.json.encode(body) end
  local st, text, rh = self:request(method, path, body, headers)
  if not st then return nil, text end
  local v = tf.json.decode(text)
  return st, v or text, rh
end

function Server:reload()
  return self:json("POST", "/admin/reload", nil, H.admin_headers())
end

function Server:signal(sig)
  os.execute("kill -" .. sig .. " " .. self.pid)
end

function Server:write_plugin(name, src)
  H.write(self.dir .. "/plugins/" .. name, src)
end

function Server:remove_plugin(name)
  os.remove(self.dir .. "/plugins/" .. name)
end

function Server:log() return H.read(self.dir .. "/server.log") end

-- Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its folder.
function Server:stop()
  if self:alive() then
    self:signal("TERM")
    local deadline = socket.gettime() + 5
    while self:alive() and socket.gettime() < deadline do socket.sleep(0.02) end
    if self:alive() then self:signal("KILL") end
  end
  if not os.getenv("TF_KEEP_TEST_DIRS") then os.execute("rm -rf " .. self.dir) end
end

-- A raw TCP exchange, for requests LuaSocket's http client cannot make
-- (cut bodies, wrong lengths). Returns whatever the server sent back.
function Server:raw(bytes, read_timeout)
  local c = assert(socket.tcp())
  c:settimeout(read_timeout or 2)
  assert(c:connect("127.0.0.1", self.port))
  c:send(bytes)
  local out = {}
  while true do
    local data, err, partial = c:receive(4096)
    if data then out[#out + 1] = data end
    if partial and #partial > 0 then out[#out + 1] = partial end
    if not data then break end
  end
  c:close()
  return table.concat(out)
end

-- Runs psql against the test database; returns stdout (trimmed).
function H.psql(sql)
  local url = os.getenv("DATABASE_URL")
  local f = os.tmpname()
  H.write(f, sql)
  local out = sh(string.format("psql %q -qAt -v ON_ERROR_STOP=1 -f %s 2>&1", url, f))
  os.remove(f)
  return (out:gsub("%s+$", ""))
end

-- Applies the migrations to the test database once per process.
local migrated = false
function H.migrate()
  if migrated then return end
  local out = sh(string.format("%s migrate 2>&1; echo rc=$?", H.BIN))
  assert(out:match("rc=0"), "migrate failed:\n" .. out)
  migrated = true
end

return H
