-- Support for the ingest specs (not a spec itself): a throw-away PostgreSQL
-- cluster that a test may kill, and a PgBouncer in transaction mode in front
-- of a cluster. Both run as the postgres user when the tests run as root
-- (neither server runs as root), in their own folders, on free ports.
local H = require("tests.integration.helper")

local S = {}

local is_root = H.sh("id -u"):match("^0") ~= nil
local function as_pg(cmd)
  if is_root then return "runuser -u postgres -- " .. cmd end
  return cmd
end

S.PG_BIN = os.getenv("PG_BIN") or "/usr/lib/postgresql/15/bin"

-- Reads a file of the repository.
function S.repo_file(path)
  return assert(H.read(H.ROOT .. "/" .. path), "cannot read " .. path)
end

-- The shipped ingest plugin, for H.start_server{ plugins = ... }.
function S.plugin()
  return { ["mt5_ingest.lua"] = S.repo_file("plugins/mt5_ingest.lua") }
end

-- A private cluster: { url, stop(), kill(), start() }. Uses a copy of
-- scripts/pg.sh rooted in a temporary folder, on its own port.
function S.cluster()
  local dir = H.tmpdir()
  H.sh("mkdir -p " .. dir .. "/scripts && cp " .. H.ROOT .. "/scripts/pg.sh " .. dir .. "/scripts/")
  local port = H.free_port()
  local c = { dir = dir, port = port }
  local env = "TF_PGPORT=" .. port .. " "
  function c.start()
    local out = H.sh(env .. dir .. "/scripts/pg.sh start 2>&1; echo rc=$?")
    assert(out:match("rc=0"), "private cluster did not start:\n" .. out)
  end
  c.start()
  c.url = (H.sh(env .. dir .. "/scripts/pg.sh url"):gsub("%s+$", ""))
  local data = (H.sh("readlink -f " .. dir .. "/var/pg"):gsub("%s+$", ""))
  -- immediate shutdown: every backend dies at once, like a crash
  function c.kill()
    H.sh(as_pg(S.PG_BIN .. "/pg_ctl -D " .. data .. "/db -m immediate -w stop") .. " >/dev/null 2>&1")
  end
  function c.stop()
    H.sh(env .. dir .. "/scripts/pg.sh stop >/dev/null 2>&1")
    H.sh("rm -rf " .. data .. " " .. dir)
  end
  function c.psql(sql)
    local f = os.tmpname()
    H.write(f, sql)
    local out = H.sh(string.format("psql %q -qAt -v ON_ERROR_STOP=1 -f %s 2>&1", c.url, f))
    os.remove(f)
    return (out:gsub("%s+$", ""))
  end
  function c.migrate()
    local out = H.sh(string.format("DATABASE_URL=%q %s migrate 2>&1; echo rc=$?", c.url, H.BIN))
    assert(out:match("rc=0"), "migrate failed:\n" .. out)
  end
  return c
end

-- PgBouncer in transaction mode in front of the cluster at url (a libpq
-- URL with host= and port= query parameters, as scripts/pg.sh prints).
-- Returns { url, stop() }.
function S.pgbouncer(url)
  local host = url:match("host=([^&]+)")
  local port = url:match("port=(%d+)")
  local db = url:match("^postgresql://[^/]*/([^?]+)")
  assert(host and port and db, "cannot read host/port/db from " .. url)
  local dir = H.tmpdir()
  local lport = H.free_port()
  H.write(dir .. "/pgbouncer.ini", table.concat({
    "[databases]",
    string.format("%s = host=%s port=%s dbname=%s user=postgres", db, host, port, db),
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    "listen_port = " .. lport,
    "unix_socket_dir =",
    "auth_type = any",
    "pool_mode = transaction",
    "max_client_conn = 200",
    "default_pool_size = 4",
    "ignore_startup_parameters = extra_float_digits,application_name",
    "logfile = " .. dir .. "/pgbouncer.log",
    "pidfile = " .. dir .. "/pgbouncer.pid",
    "",
  }, "\n"))
  H.sh("chmod -R a+rwX " .. dir)
  local out = H.sh(as_pg("pgbouncer -d " .. dir .. "/pgbouncer.ini") .. " 2>&1; echo rc=$?")
  assert(out:match("rc=0"), "pgbouncer did not start:\n" .. out)
  local b = { dir = dir, port = lport,
              url = string.format("postgresql://postgres@127.0.0.1:%d/%s", lport, db) }
  -- wait until it accepts connections
  for _ = 1, 50 do
    if H.sh(string.format("psql %q -qAtc 'SELECT 1' 2>&1", b.url)):match("^1") then break end
    H.sleep(0.1)
  end
  function b.stop()
    local pid = H.read(dir .. "/pgbouncer.pid")
    if pid then os.execute("kill " .. pid:gsub("%s+$", "") .. " 2>/dev/null") end
    H.sleep(0.2)
    os.execute("rm -rf " .. dir)
  end
  function b.log() return H.read(dir .. "/pgbouncer.log") end
  return b
end

-- A symbol no earlier run has used (symbols are at most 32 characters).
local seq = 0
function S.symbol(prefix)
  seq = seq + 1
  return string.format("%s%d_%d", prefix or "IT", os.time() % 1000000, seq)
end

-- POSTs body to path with the ingest key from a background curl; returns a
-- function that waits for the answer and returns its status and decoded body.
function S.post_background(srv, path, body)
  local f = os.tmpname()
  H.write(f .. ".json", body)
  H.sh(string.format("curl -s -o %s.out -w '%%{http_code}' -H 'X-API-Key: %s' --data-binary @%s.json %s%s > %s.st &",
    f, H.INGEST_KEY, f, srv.base, path, f))
  return function()
    local status
    for _ = 1, 200 do
      status = H.read(f .. ".st")
      if status and #status == 3 then break end
      H.sleep(0.05)
    end
    local answer = tf.json.decode(H.read(f .. ".out") or "null")
    H.sh(string.format("rm -f %s %s.json %s.out %s.st", f, f, f, f))
    return tonumber(status), answer
  end
end

return S
