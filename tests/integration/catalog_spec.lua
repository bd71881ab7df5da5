-- The product catalog end to end: the real binary with the shipped plugins
-- (catalog enabled), real HTTP, the real database (schema catalog).
local H = require("tests.integration.helper")
local S = require("tests.integration.seeds_support")

describe("product catalog", function()
  local srv, cat
  local W = H.ingest_headers()
  local R = { ["X-API-Key"] = H.READ_KEY }

  local function create(fields)
    local p = { name = S.unique("p"), description = "", price = 10, stock = 5, category = cat }
    for k, v in pairs(fields or {}) do p[k] = v end
    return srv:json("POST", "/products", p, W)
  end
  local function get(id) return srv:json("GET", "/products/" .. id, nil, R) end

  setup(function() srv = S.start() end)
  teardown(function() srv:stop() end)
  before_each(function() cat = S.unique("cat") end)

  it("creates a product (201, Location, ok first) and reads it back", function()
    local st, text, h = srv:request("POST", "/products", tf.json.encode({ name = "Cafeteira", description = "Casa",
      price = 199.9, stock = 7, category = cat }), W)
    assert.are.equal(201, st)
    assert.matches('^{"ok":true,"product":{"id":%d+,"name":"Cafeteira","description":"Casa","price":199.9,"stock":7,', text)
    local p = tf.json.decode(text).product
    assert.are.equal("/products/" .. p.id, h.location)
    local st2, a = get(p.id)
    assert.are.equal(200, st2)
    assert.are.same({ "Cafeteira", 199.9, 7, cat, 1 }, { a.product.name, a.product.price, a.product.stock, a.product.category, a.product.version })
  end)

  it("answers bad input with 400 naming the field", function()
    local cases = {
      { { name = "" }, "name" }, { { name = string.rep("n", 201) }, "name" }, { { price = -1 }, "price" },
      { { price = 9.999 }, "price" }, { { price = "9.99" }, "price" }, { { stock = 2.5 }, "stock" },
      { { stock = -3 }, "stock" }, { { category = "" }, "category" }, { { colour = "red" }, "colour" },
    }
    for _, c in ipairs(cases) do
      local st, a = create(c[1])
      assert.are.same({ 400, false, c[2] }, { st, a.ok, a.field }, tf.json.encode(c[1]))
      assert.matches("^" .. c[2] .. ": ", a.error)
    end
    local st, a = srv:json("POST", "/products", "{\"name\":", W)
    assert.are.same({ 400, "body" }, { st, a.field })
    st, a = srv:json("POST", "/products", { name = "x", price = 1, stock = 1 }, W)
    assert.are.same({ 400, "category" }, { st, a.field })
    st, a = get("abc")
    assert.are.same({ 400, "id" }, { st, a.field })
    st = srv:json("POST", "/products", { name = "x", price = 1, stock = 1, category = cat }, R)
    assert.are.equal(403, st)
  end)

  it("refuses a duplicate name in a category with 409, any case; other categories are fine", function()
    assert.are.equal(201, (create({ name = "Clean Code" })))
    local st, a = create({ name = "clean code" })
    assert.are.same({ 409, "name" }, { st, a.field })
    assert.matches("already exists in category", a.error)
    assert.are.equal(201, (create({ name = "Clean Code", category = cat .. "-other" })))
    local _, b = create({ name = "Design Patterns" })
    st, a = srv:json("PATCH", "/products/" .. b.product.id, { name = "CLEAN CODE" }, W)
    assert.are.same({ 409, "name" }, { st, a.field })
  end)

  it("answers 404 for a product that does not exist, on every verb", function()
    local missing = "999999999999"
    assert.are.equal(404, (get(missing)))
    assert.are.equal(404, (srv:json("PUT", "/products/" .. missing, { name = "x", price = 1, stock = 1, category = cat }, W)))
    assert.are.equal(404, (srv:json("PATCH", "/products/" .. missing, { stock = 1 }, W)))
    local st, a = srv:json("DELETE", "/products/" .. missing, nil, W)
    assert.are.same({ 404, "id" }, { st, a.field })
  end)

  it("replaces with PUT, changes some fields with PATCH, deletes with DELETE", function()
    local _, c = create({ name = "Tenis", price = 300, stock = 2 })
    local id = c.product.id
    local st, a = srv:json("PUT", "/products/" .. id, { name = "Tenis Pro", price = 349.99, stock = 4, category = cat }, W)
    assert.are.same({ 200, "Tenis Pro", 349.99, 4, "", 2 }, { st, a.product.name, a.product.price, a.product.stock, a.product.description, a.product.version })
    st, a = srv:json("PATCH", "/products/" .. id, { description = "corrida", stock_delta = 3 }, W)
    assert.are.same({ 200, "Tenis Pro", "corrida", 7, 3 }, { st, a.product.name, a.product.description, a.product.stock, a.product.version })
    st, a = srv:json("PATCH", "/products/" .. id, { stock_delta = -8 }, W)
    assert.are.same({ 409, "stock_delta" }, { st, a.field })
    st, a = srv:json("DELETE", "/products/" .. id, nil, W)
    assert.are.same({ 200, id }, { st, a.deleted })
    assert.are.equal(404, (get(id)))
  end)

  it("lists with filters and pagination, with a total", function()
    for i, price in ipairs({ 5, 15, 25, 35, 45 }) do
      create({ name = "Item " .. i, price = price, description = i == 3 and "has 100% cotton" or "plain" })
    end
    local st, a = srv:json("GET", "/products?category=" .. cat, nil, R)
    assert.are.same({ 200, 5, 5, 20, 0 }, { st, a.total, #a.products, a.limit, a.offset })
    _, a = srv:json("GET", "/products?category=" .. cat .. "&min_price=10&max_price=40&limit=2&offset=1", nil, R)
    assert.are.same({ 3, 2, 25, 35 }, { a.total, #a.products, a.products[1].price, a.products[2].price })
    _, a = srv:json("GET", "/products?category=" .. cat .. "&q=100%25", nil, R)
    assert.are.same({ 1, "Item 3" }, { a.total, a.products[1].name })
    _, a = srv:json("GET", "/products?category=" .. cat .. "&q=ITEM%205", nil, R)
    assert.are.same({ 1, "Item 5" }, { a.total, a.products[1].name })
    _, a = srv:json("GET", "/products?category=" .. cat .. "&offset=100", nil, R)
    assert.are.same({ 5, 0 }, { a.total, #a.products })
    st, a = srv:json("GET", "/products?min_price=9&max_price=1", nil, R)
    assert.are.same({ 400, "min_price" }, { st, a.field })
  end)

  it("concurrent PATCHes of one product's stock neither lose nor oversell", function()
    local _, c = create({ stock = 15 })
    local id = c.product.id
    assert.are.equal(200, (get(id))) -- cached now
    local reqs = {}
    for i = 1, 20 do reqs[i] = { "PATCH", "/products/" .. id, '{"stock_delta":-1}' } end
    local ok, conflict = 0, 0
    for _, r in ipairs(S.burst(srv, reqs)) do
      if r.status == 200 then ok = ok + 1 elseif r.status == 409 then conflict = conflict + 1 end
    end
    assert.are.same({ 15, 5 }, { ok, conflict })
    local _, a = get(id)
    assert.are.same({ 0, 16 }, { a.product.stock, a.product.version })
    assert.are.equal("0", H.psql("SELECT stock FROM catalog.products WHERE id = " .. id))
  end)

  it("serves reads from the cache and writes drop exactly what they change (seen in /catalog/stats)", function()
    local function stats() local _, a = srv:json("GET", "/catalog/stats", nil, R) return a.cache end
    local _, c = create({ name = "Fone", price = 99.9 })
    local id = c.product.id
    local s0 = stats()
    get(id); get(id)
    local s1 = stats()
    assert.are.same({ 1, 1 }, { s1.misses - s0.misses, s1.hits - s0.hits })
    srv:json("GET", "/products?category=" .. cat, nil, R)
    srv:json("GET", "/products?category=" .. cat, nil, R)
    local s2 = stats()
    assert.are.same({ 1, 1 }, { s2.misses - s1.misses, s2.hits - s1.hits })
    -- a write elsewhere changes nothing cached here
    create({ category = cat .. "-elsewhere" })
    get(id)
    srv:json("GET", "/products?category=" .. cat, nil, R)
    local s3 = stats()
    assert.are.same({ 0, 2 }, { s3.misses - s2.misses, s3.hits - s2.hits })
    -- a write to this product drops it and its category's listings: the next reads load the new price
    srv:json("PATCH", "/products/" .. id, { price = 89.9 }, W)
    local _, a = get(id)
    local _, l = srv:json("GET", "/products?category=" .. cat, nil, R)
    local s4 = stats()
    assert.are.same({ 89.9, 89.9 }, { a.product.price, l.products[1].price })
    assert.are.same({ 2, 0 }, { s4.misses - s3.misses, s4.hits - s3.hits })
    assert.is_true(s4.hit_rate > 0 and s4.hit_rate < 1)
    assert.are.equal(300, s4.ttl)
    -- the same product written as 007: one cache key, so the write is seen
    srv:json("PATCH", "/products/00" .. id, { price = 79.9 }, W)
    _, a = get(id)
    assert.are.equal(79.9, a.product.price)
    -- deleting it: the cached product is gone too
    srv:json("DELETE", "/products/" .. id, nil, W)
    assert.are.equal(404, (get(id)))
  end)

  it("reports the services it depends on and its row counts", function()
    local st, a = srv:json("GET", "/services", nil, R)
    assert.are.same({ 200, true, "healthy", "connected", "connected" },
      { st, a.ok, a.status, a.services.database.status, a.services.cache.status })
    assert.is_true(a.services.cache.max_bytes > 0)
    assert.matches("^%d+", a.services.database.version)
    st, a = srv:json("GET", "/catalog/stats", nil, R)
    assert.are.equal(200, st)
    assert.are.equal(tonumber(H.psql("SELECT count(*) FROM catalog.products")), a.database.products)
  end)
end)

describe("product catalog, not enabled", function()
  it("serves nothing unless catalog.enabled = true", function()
    local srv = S.start({})
    local st = srv:json("GET", "/products", nil, { ["X-API-Key"] = H.READ_KEY })
    srv:stop()
    assert.are.equal(404, st)
  end)
end)

describe("catalog and tp_capital configuration", function()
  it("the example config and the shipped one pass tickforge check with both plugins' routes", function()
    local out = H.sh(H.BIN .. " check --config config/examples/catalog.lua 2>&1; echo rc=$?")
    assert.matches("rc=0", out)
    assert.matches("PATCH%s+/products/{id}", out)
    assert.matches("POST%s+/tp%-capital/ingest", out)
    out = H.sh(H.BIN .. " check --config config/tickforge.lua 2>&1; echo rc=$?")
    assert.matches("rc=0", out)
    assert.is_nil(out:find("/products", 1, true)) -- off by default
    assert.matches("GET%s+/tp%-capital/signals", out)
  end)

  it("a wrong setting is an error naming its key", function()
    local dir = H.tmpdir()
    for key, text in pairs({ ["catalog.cache_ttl"] = "catalog = { enabled = true, cache_ttl = -1 }",
      ["catalog.write_role"] = "catalog = { write_role = 'everyone' }",
      ["tp_capital.max_batch"] = "tp_capital = { max_batch = 0 }" }) do
      H.write(dir .. "/c.lua", string.format("local c = dofile(%q) c.%s return c",
        H.ROOT .. "/config/tickforge.lua", text:gsub("^(%w+) = ", "%1 = ")))
      local out = H.sh(string.format("%s check --config %s/c.lua 2>&1; echo rc=$?", H.BIN, dir))
      assert.matches("rc=1", out, key)
      assert.truthy(out:find("config " .. key .. ":", 1, true), out)
    end
    os.execute("rm -rf " .. dir)
  end)
end)
