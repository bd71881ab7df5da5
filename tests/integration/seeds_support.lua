-- Shared by the tp_capital and catalog specs: a server with the shipped
-- plugins (catalog enabled), unique names per run, and a burst of parallel
-- requests from curl processes (real concurrent clients).
local H = require("tests.integration.helper")
local S = {}

-- A name no earlier run used, so specs can share the test database.
function S.unique(prefix)
  return string.format("%s-%d-%d", prefix, os.time(), math.random(1, 1e9))
end

function S.start(config)
  H.migrate()
  return H.start_server{ shipped = true, config = config or { catalog = { enabled = true } } }
end

-- Sends reqs[i] = { method, path, body } at once from parallel curl
-- processes with key; returns { { status = N, body = decoded }, ... }.
function S.burst(srv, reqs, key)
  local dir = H.tmpdir()
  local script = {}
  for i, r in ipairs(reqs) do
    H.write(string.format("%s/b%d.json", dir, i), r[3] or "")
    script[#script + 1] = string.format(
      "curl -s -o %s/a%d.json -w '%%{http_code}' -X %s -H 'X-API-Key: %s' -H 'Content-Type: application/json' %s '%s%s' > %s/s%d &",
      dir, i, r[1], key or H.INGEST_KEY, r[3] and string.format("--data-binary @%s/b%d.json", dir, i) or "",
      srv.base, r[2], dir, i)
  end
  script[#script + 1] = "wait"
  H.write(dir .. "/run.sh", table.concat(script, "\n"))
  H.sh("sh " .. dir .. "/run.sh")
  local out = {}
  for i = 1, #reqs do
    out[i] = { status = tonumber(H.read(string.format("%s/s%d", dir, i))),
               body = tf.json.decode(H.read(string.format("%s/a%d.json", dir, i)) or "") }
  end
  os.execute("rm -rf " .. dir)
  return out
end

return S
