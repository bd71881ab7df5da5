-- lua/tickforge/cache_ns.lua: generations in keys, so a write that commits
-- while a read is loading cannot leave the old value cached.
local NS = require("tickforge.cache_ns")

describe("cache_ns", function()
  local function uniq() return string.format("spec_ns%d_%d", os.time(), math.random(1, 1e9)) end

  it("loads once, then serves from the cache", function()
    local ns, loads = NS.new(uniq()), 0
    local function load() loads = loads + 1 return "v" .. loads end
    assert.are.equal("v1", ns:get_or_load("g", "a", 0, load))
    assert.are.equal("v1", ns:get_or_load("g", "a", 0, load))
    assert.are.equal("v2", ns:get_or_load("g", "b", 0, load)) -- another key of the group
    assert.are.same({ 2, 1 }, { ns:stats().misses, ns:stats().hits })
  end)

  it("a bump drops its group only", function()
    local ns = NS.new(uniq())
    ns:get_or_load("list:a", "x", 0, function() return 1 end)
    ns:get_or_load("list:ab", "x", 0, function() return 2 end)
    assert.are.equal(1, ns:bump({ "list:a", "list:none" })) -- a list works like arguments
    assert.are.equal(11, ns:get_or_load("list:a", "x", 0, function() return 11 end))
    assert.are.equal(2, ns:get_or_load("list:ab", "x", 0, function() return 22 end))
  end)

  it("a value loaded before a write and stored after its bump is never served", function()
    local ns = NS.new(uniq())
    local stale = ns:get_or_load("product:1", "", 0, function()
      ns:bump("product:1") -- the write commits while this read is loading the old row
      return "old"
    end)
    assert.are.equal("old", stale) -- this caller gets what it read
    assert.are.equal("new", ns:get_or_load("product:1", "", 0, function() return "new" end))
  end)

  it("with one fixed key the same interleaving is safe too: a delete during a load keeps its value out of the cache", function()
    local key = uniq() .. ":product:1"
    assert.are.equal("old", tf.cache.get_or_load(key, 0, function() tf.cache.delete(key) return "old" end))
    assert.is_nil(tf.cache.get(key))
    assert.are.equal("new", tf.cache.get_or_load(key, 0, function() return "new" end))
  end)

  it("escapes separators in values", function()
    assert.are.equal("*", NS.esc(nil))
    assert.are.equal("a%3Ab%2A%25", NS.esc("a:b*%"))
  end)
end)
