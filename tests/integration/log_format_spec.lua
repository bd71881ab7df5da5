-- log.format = "json": every line the real server writes is one JSON object
-- (its access lines and a plugin's tf.log calls alike); a wrong value stops
-- the config with the key's name.
local H = require("tests.integration.helper")

describe("log.format", function()
  it("json writes every line as one JSON object with typed fields", function()
    local srv = H.start_server{ config = { log = { format = "json", level = "debug" } }, plugins = {
      ["x.lua"] = [[tf.route("GET", "/x", function() tf.log.info("hello \"there\"", { n = 3, who = "a b" }); return 200, { ok = true } end, { auth = "none" })]],
    } }
    local st = srv:request("GET", "/x")
    assert.are.equal(200, st)
    H.sleep(0.2)
    local log = srv:log()
    srv:stop()
    local lines, hello = 0, nil
    for line in log:gmatch("[^\n]+") do
      local v = tf.json.decode(line)
      assert.is_table(v, "not JSON: " .. line)
      assert.is_string(v.ts)
      assert.is_string(v.level)
      lines = lines + 1
      if v.msg == 'hello "there"' then hello = v end
    end
    assert.is_true(lines >= 2)
    assert.is_not_nil(hello, log)
    assert.are.equal(3, hello.n)
    assert.are.equal("a b", hello.who)
  end)

  it("writes every access line whole, buffered and at most a flush late; log.access = false keeps only failures", function()
    local plugin = [[
      tf.route("GET", "/a", function() return 200, { ok = true } end, { auth = "none" })
      tf.route("GET", "/boom", function() error("boom") end, { auth = "none" })
    ]]
    local function requests(log)
      local by_route = {}
      for line in log:gmatch("[^\n]+") do
        local v = tf.json.decode(line)
        assert.is_table(v, "not one JSON object per line: " .. line)
        if v.msg == "request" then by_route[v.route] = (by_route[v.route] or 0) + 1 end
      end
      return by_route
    end
    local srv = H.start_server{ config = { log = { format = "json", level = "info" } }, plugins = { ["a.lua"] = plugin } }
    for _ = 1, 300 do assert.are.equal(200, (srv:request("GET", "/a"))) end
    H.sleep(0.6) -- the reaper flushes the buffers every 200 ms
    local seen = requests(srv:log())
    srv:stop()
    assert.are.equal(300, seen["/a"])
    srv = H.start_server{ config = { log = { format = "json", level = "info", access = false } },
                          plugins = { ["a.lua"] = plugin } }
    for _ = 1, 20 do srv:request("GET", "/a") end
    assert.are.equal(500, (srv:request("GET", "/boom")))
    H.sleep(0.6)
    seen = requests(srv:log())
    srv:stop()
    assert.is_nil(seen["/a"])
    assert.are.equal(1, seen["/boom"])
  end)

  it("refuses a format it does not know, naming the key", function()
    local dir = H.tmpdir()
    H.write(dir .. "/cfg.lua", 'return { log = { format = "yaml" } }')
    local out = H.sh(H.BIN .. " check --config " .. dir .. "/cfg.lua 2>&1; echo rc=$?")
    H.sh("rm -rf " .. dir)
    assert.matches('log.format: must be "logfmt" or "json"', out, 1, true)
    assert.matches("rc=1", out)
  end)
end)
