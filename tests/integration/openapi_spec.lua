-- GET /openapi.json against the real server with the shipped plugins: the
-- document lists every registered route with its auth and body limit, and
-- the real answers of every shipped route validate against the schemas the
-- routes declare (tests/integration/jsonschema.lua).
local H = require("tests.integration.helper")
local R = require("tests.integration.read_support")
local J = require("tests.integration.jsonschema")

describe("GET /openapi.json", function()
  local srv, sym, doc

  setup(function()
    H.migrate()
    sym = R.symbol("OA")
    srv = H.start_server{ shipped = true, config = { scheduler = { enabled = true } } }
    R.ingest_bars(srv, sym, "M1", 60, 60)
    R.ingest_ticks(srv, sym, { { symbol = sym, ts = "2025-10-20T05:00:01Z", bid = 1.08, ask = 1.0802 } })
    local st
    st, doc = srv:json("GET", "/openapi.json")
    assert(st == 200, "GET /openapi.json: " .. tostring(st))
  end)

  teardown(function()
    if srv then srv:stop() end
    if sym then R.cleanup(sym) end
  end)

  it("is OpenAPI 3.1 with the API key header and bearer schemes", function()
    assert.are.equal("3.1.0", doc.openapi)
    assert.are.same({ type = "apiKey", ["in"] = "header", name = "X-API-Key" }, doc.components.securitySchemes.ApiKeyHeader)
    assert.are.same({ type = "http", scheme = "bearer" }, doc.components.securitySchemes.Bearer)
    local _, text = srv:request("GET", "/openapi.json")
    assert.truthy(text:find('^{"openapi":"3.1.0","info":'))
  end)

  it("lists every registered route with its method, auth and body limit, and a summary", function()
    local _, status = srv:json("GET", "/admin/status", nil, H.admin_headers())
    assert.is_true(#status.routes >= 10)
    for _, r in ipairs(status.routes) do
      local op = doc.paths[r.path] and doc.paths[r.path][r.method:lower()]
      assert.is_not_nil(op, r.method .. " " .. r.path)
      assert.are.equal(r.auth, op["x-tickforge-auth"], r.path)
      assert.is_true(op.summary ~= r.method .. " " .. r.path, r.path .. " declares no doc")
      if r.auth == "none" then
        assert.are.equal(0, #op.security, r.path)
      else
        assert.are.equal("ApiKeyHeader", next(op.security[1]), r.path)
        assert.is_not_nil(op.responses["401"], r.path)
      end
      if r.method == "POST" then assert.are.equal(r.max_body, op["x-tickforge-max-body"], r.path) end
    end
    -- and the routes the core serves
    for _, p in ipairs({ "/health", "/metrics", "/admin/reload", "/admin/status", "/admin/jobs" }) do
      assert.is_not_nil(doc.paths[p], p)
    end
    local params = {}
    for _, p in ipairs(doc.paths["/candles"].get.parameters) do params[p.name] = p end
    assert.is_true(params.symbol.required)
    assert.are.equal("query", params.symbol["in"])
    assert.are.same({ "asc", "desc" }, params.order.schema.enum)
    assert.are.equal("path", doc.paths["/hello/{name}"].get.parameters[1]["in"])
    assert.is_not_nil(doc.paths["/candles"].get.responses["200"].content["text/csv"])
  end)

  -- One real request per documented operation; the 200 answer must match
  -- the declared schema. A route added without an entry here fails the test.
  local function samples()
    local ingest_one = tf.json.encode(R.bar(sym, "M1", R.T0 + 3600 * 24, 9))
    return {
      ["GET /health"] = { "/health" },
      ["GET /metrics"] = { "/metrics", nil, H.admin_headers(), "text" },
      ["POST /admin/reload"] = { "/admin/reload", nil, H.admin_headers() },
      ["GET /admin/status"] = { "/admin/status", nil, H.admin_headers() },
      ["GET /admin/jobs"] = { "/admin/jobs", nil, H.admin_headers() },
      ["POST /admin/jobs/{name}/run"] = { "/admin/jobs/maintenance/run", nil, H.admin_headers(), "skip" },
      ["GET /hello/{name}"] = { "/hello/world" },
      ["GET /stats"] = { "/stats", nil, R.read_headers() },
      ["GET /ready"] = { "/ready" },
      ["GET /openapi.json"] = { "/openapi.json" },
      ["GET /candles"] = { "/candles?symbol=" .. sym .. "&timeframe=M1&set=mt5_default&limit=30", nil, R.read_headers() },
      ["GET /indicators"] = { "/indicators?symbol=" .. sym .. "&timeframe=M1&set=mt5_default", nil, R.read_headers() },
      ["GET /symbols"] = { "/symbols?symbol=" .. sym, nil, R.read_headers() },
      ["GET /ticks"] = { "/ticks?symbol=" .. sym, nil, R.read_headers() },
      ["GET /signals"] = { "/signals?limit=5", nil, R.read_headers() },
      ["POST /admin/backtest"] = { "/admin/backtest", '{"strategy":"rsi_reversal","symbol":"' .. sym .. '","timeframe":"M1"}',
        H.admin_headers(), nil, 202 },
      ["GET /admin/backtest/{id}"] = { function()
        local _, b = srv:json("POST", "/admin/backtest", { strategy = "rsi_reversal", symbol = sym, timeframe = "M1" },
          H.admin_headers())
        return "/admin/backtest/" .. b.id
      end, nil, H.admin_headers() },
      ["POST /tp-capital/ingest"] = { "/tp-capital/ingest", tf.json.encode({ channel = "oa-" .. sym, message_id = 1,
        date = "2025-10-20T09:30:00Z", text = "BUY EURUSD 1.08 SL 1.07 TP 1.09" }), H.ingest_headers() },
      ["GET /tp-capital/signals"] = { "/tp-capital/signals?limit=5", nil, R.read_headers() },
      ["GET /tp-capital/health"] = { "/tp-capital/health" },
      ["GET /ui"] = { "/ui", nil, nil, "text" },
      ["GET /ui/app.js"] = { "/ui/app.js", nil, nil, "text" },
      ["GET /ui/lightweight-charts.js"] = { "/ui/lightweight-charts.js", nil, nil, "skip" },
      ["POST /ingest"] = { "/ingest", ingest_one, H.ingest_headers() },
      ["POST /ingest_batch"] = { "/ingest_batch", "[" .. ingest_one .. "]", H.ingest_headers() },
      ["POST /ingest/tick"] = { "/ingest/tick", tf.json.encode({ ticks = { { symbol = sym, ts = "2025-10-20T05:00:09Z",
        bid = 1.08, ask = 1.0801 } } }), H.ingest_headers() },
    }
  end

  it("validates a real answer of every documented route against its declared schema", function()
    local s, checked, skipped = samples(), 0, 0
    for path, item in pairs(doc.paths) do
      for method, op in pairs(item) do
        local name = method:upper() .. " " .. path
        local sample = s[name]
        assert.is_not_nil(sample, "no sample request for " .. name .. " in openapi_spec.lua")
        if sample[4] == "skip" then skipped = skipped + 1 else
          local url = type(sample[1]) == "function" and sample[1]() or sample[1]
          local want = sample[5] or 200
          local st, body, h = srv:request(method:upper(), url, sample[2], sample[3])
          assert.are.equal(want, st, name .. ": " .. tostring(body))
          local content = op.responses[tostring(want)].content
          if sample[4] == "text" then
            local ctype = h["content-type"]:match("^[^;]+")
            assert.is_not_nil(content[ctype], name .. " answered " .. ctype)
          else
            assert.matches("^application/json", h["content-type"], name)
            local v = assert(tf.json.decode(body), name)
            local ok, why = J.validate(v, content["application/json"].schema, doc)
            if not ok then error(name .. ": " .. tostring(why)) end
          end
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked >= 12 and skipped <= 2, checked .. " checked, " .. skipped .. " skipped")
  end)

  it("validates real error answers against the Error schema", function()
    local _, v = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M7")
    local ok, why = J.validate(v, doc.paths["/candles"].get.responses["400"].content["application/json"].schema, doc)
    assert.is_true(ok, why)
    local st, e = srv:json("GET", "/ticks?symbol=" .. sym)
    assert.are.equal(401, st)
    assert.is_true((J.validate(e, { ["$ref"] = "#/components/schemas/Error" }, doc)))
  end)

  it("has a validator that rejects what the schema does not allow", function()
    local schema = doc.paths["/candles"].get.responses["200"].content["application/json"].schema
    local _, good = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M1&limit=2")
    assert.is_true((J.validate(good, schema, doc)))
    good.candles[1].open = "1.08"
    local ok, why = J.validate(good, schema, doc)
    assert.is_false(ok)
    assert.matches("candles%[1%]%.open", why)
    good.candles[1].open = 1.08
    good.count = nil
    assert.is_false((J.validate(good, schema, doc)))
    good.count = 2
    good.order = "sideways"
    assert.is_false((J.validate(good, schema, doc)))
  end)

  it("refuses a route whose doc is not a table of the known fields", function()
    local dir = H.tmpdir()
    H.sh("mkdir -p " .. dir .. "/plugins")
    H.write(dir .. "/plugins/bad.lua", [[tf.route("GET", "/x", function() end, { doc = { summery = "typo" } })]])
    H.write(dir .. "/cfg.lua", string.format("return { plugins = { dir = %q } }", dir .. "/plugins"))
    local out = H.sh(H.BIN .. " check --config " .. dir .. "/cfg.lua 2>&1; echo rc=$?")
    H.sh("rm -rf " .. dir)
    assert.matches("opts.doc must be a table", out)
    assert.matches("rc=1", out)
  end)
end)
