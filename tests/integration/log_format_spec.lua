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

  it("refuses a format it does not know, naming the key", function()
    local dir = H.tmpdir()
    H.write(dir .. "/cfg.lua", 'return { log = { format = "yaml" } }')
    local out = H.sh(H.BIN .. " check --config " .. dir .. "/cfg.lua 2>&1; echo rc=$?")
    H.sh("rm -rf " .. dir)
    assert.matches('log.format: must be "logfmt" or "json"', out, 1, true)
    assert.matches("rc=1", out)
  end)
end)
