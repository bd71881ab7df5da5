-- Product validation (plugins/catalog/validate.lua): every rule, and the
-- field each failure names.
local V = require("plugins.catalog.validate")

local GOOD = { name = "Clean Code", description = "a book", price = 39.9, stock = 3, category = "books" }
local function with(changes)
  local t = {}
  for k, v in pairs(GOOD) do t[k] = v end
  for k, v in pairs(changes) do if v == "nil" then t[k] = nil else t[k] = v end end
  return t
end

describe("catalog validation", function()
  it("accepts a good product and defaults the description", function()
    local p = assert(V.product(with({ description = "nil" }), "create"))
    assert.are.same({ "Clean Code", "", 39.9, 3, "books" }, { p.name, p.description, p.price, p.stock, p.category })
    assert.are.equal("integer", math.type(assert(V.product(with({ stock = 4.0 }), "create")).stock))
    assert.truthy(V.product(with({ price = 0, stock = 0 }), "create"))
    assert.truthy(V.product(with({ name = string.rep("é", 200) }), "create")) -- characters, not bytes
    assert.truthy(V.product(with({ id = 7, created_at = "x" }), "replace")) -- echoed fields are ignored
  end)

  local BAD = {
    { { name = "" }, "name", "must not be empty" },
    { { name = "   " }, "name", "must not be empty" },
    { { name = string.rep("a", 201) }, "name", "must be 1..200 characters, got 201" },
    { { name = 5 }, "name", "must be a string" },
    { { name = "nil" }, "name", "required" },
    { { name = "a\nb" }, "name", "control characters" },
    { { description = 3 }, "description", "must be a string" },
    { { description = string.rep("x", 5001) }, "description", "0..5000" },
    { { price = -0.01 }, "price", "must be >= 0" },
    { { price = 1.999 }, "price", "at most two decimals" },
    { { price = "10.00" }, "price", "must be a number" },
    { { price = 1e11 }, "price", "at most" },
    { { price = "nil" }, "price", "required" },
    { { stock = 1.5 }, "stock", "must be an integer" },
    { { stock = -1 }, "stock", "must be >= 0" },
    { { stock = "3" }, "stock", "must be an integer" },
    { { stock = 2 ^ 31 }, "stock", "at most" },
    { { category = "" }, "category", "must not be empty" },
    { { category = string.rep("c", 65) }, "category", "1..64" },
    { { category = "nil" }, "category", "required" },
    { { colour = "red" }, "colour", "unknown field" },
  }
  for _, row in ipairs(BAD) do
    it(string.format("names %s: %s", row[2], row[3]), function()
      local p, err = V.product(with(row[1]), "create")
      assert.is_nil(p)
      assert.are.equal(row[2], err.field)
      assert.truthy(err.error:find(row[2] .. ": ", 1, true) == 1)
      assert.truthy(err.error:find(row[3], 1, true), err.error)
    end)
  end

  it("patches any subset, with stock_delta, but not nothing", function()
    assert.are.same({ stock_delta = -2 }, V.product({ stock_delta = -2 }, "patch"))
    assert.are.same({ price = 10 }, V.product({ price = 10 }, "patch"))
    local _, e = V.product({}, "patch")
    assert.are.equal("body", e.field)
    _, e = V.product({ stock = 1, stock_delta = 1 }, "patch")
    assert.are.equal("stock_delta", e.field)
    _, e = V.product({ stock_delta = 1.5 }, "patch")
    assert.are.equal("stock_delta", e.field)
    _, e = V.product({ stock_delta = 1 }, "create")
    assert.are.equal("stock_delta", e.field)
    _, e = V.product({ 1, 2 }, "patch")
    assert.are.equal("body", e.field)
  end)

  it("checks list parameters", function()
    local q = assert(V.query({}, 100))
    assert.are.same({ 20, 0 }, { q.limit, q.offset })
    q = assert(V.query({ limit = "5", offset = "10", min_price = "1.5", max_price = "20", category = "books", q = "code" }, 100))
    assert.are.same({ 5, 10, 1.5, 20, "books", "code" }, { q.limit, q.offset, q.min_price, q.max_price, q.category, q.q })
    for param, value in pairs({ limit = "0", offset = "-1", min_price = "x", max_price = "-3", q = "", category = "" }) do
      local _, e = V.query({ [param] = value }, 100)
      assert.are.equal(param, e and e.field, param)
    end
    local _, e = V.query({ limit = "101" }, 100)
    assert.are.equal("limit", e.field)
    _, e = V.query({ min_price = "10", max_price = "5" }, 100)
    assert.are.equal("min_price", e.field)
  end)
end)
