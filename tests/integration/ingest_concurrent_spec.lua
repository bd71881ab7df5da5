-- Single-candle requests arriving together from many clients: each keeps
-- its own answer; distinct candles are all inserted, the same candle sent by
-- many clients at once is stored once with one "inserted" and the rest
-- "duplicate", and nothing is lost.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")

-- Sends bodies[i] to /ingest from parallel curl processes; returns answers.
local function burst(srv, bodies)
  local dir = H.tmpdir()
  local script = {}
  for i, body in ipairs(bodies) do
    H.write(string.format("%s/b%d.json", dir, i), body)
    script[#script + 1] = string.format(
      "curl -s -H 'X-API-Key: %s' --data-binary @%s/b%d.json %s/ingest > %s/a%d.json &",
      H.INGEST_KEY, dir, i, srv.base, dir, i)
  end
  script[#script + 1] = "wait"
  H.write(dir .. "/run.sh", table.concat(script, "\n"))
  H.sh("sh " .. dir .. "/run.sh")
  local answers = {}
  for i = 1, #bodies do answers[i] = tf.json.decode(H.read(string.format("%s/a%d.json", dir, i)) or "") end
  os.execute("rm -rf " .. dir)
  return answers
end

describe("single-candle requests arriving together", function()
  local srv
  setup(function()
    H.migrate()
    srv = H.start_server{ plugins = S.plugin(), config = { http = { threads = 8 } } }
  end)
  teardown(function() srv:stop() end)

  it("answers each request for its own candle and loses none", function()
    local sym = "CMB" .. math.random(1, 1e8)
    local bodies = {}
    for i = 1, 60 do
      bodies[i] = tf.json.encode({ symbol = sym, timeframe = "M1", ts = 1760929200 + 60 * i,
        open = 1.1, high = 1.2, low = 1.0, close = 1.15, volume = i })
    end
    for round = 1, 3 do
      local answers = burst(srv, bodies)
      for i, a in ipairs(answers) do
        assert.is_table(a, "request " .. i)
        assert.are.equal(1, a.received)
        assert.are.equal(round == 1 and "inserted" or "duplicate", a.details[1].status, "request " .. i)
      end
    end
    assert.are.equal("60", H.psql(string.format("SELECT count(*) FROM market_data WHERE symbol = '%s'", sym)))
    assert.are.equal("1830", H.psql(string.format("SELECT sum(volume)::int FROM market_data WHERE symbol = '%s'", sym)))
  end)

  it("stores one candle sent by many clients at once once, with one inserted", function()
    local sym = "CMB" .. math.random(1, 1e8)
    local bodies = {}
    for i = 1, 40 do
      bodies[i] = tf.json.encode({ symbol = sym, timeframe = "M5", ts = "2025-10-20T03:05:00Z",
        open = 1.1, high = 1.2, low = 1.0, close = 1.15, volume = 7 })
    end
    local n = { inserted = 0, duplicate = 0 }
    for _, a in ipairs(burst(srv, bodies)) do
      n[a.details[1].status] = (n[a.details[1].status] or 0) + 1
    end
    assert.are.same({ inserted = 1, duplicate = 39 }, n)
    assert.are.equal("1", H.psql(string.format("SELECT count(*) FROM market_data WHERE symbol = '%s'", sym)))
  end)
end)
