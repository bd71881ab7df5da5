-- docs/indicators.md is generated from the registry; it must not drift.
describe("docs/indicators.md", function()
  it("matches tf.indicators.docs() (regenerate it as the file says)", function()
    local f = assert(io.open("docs/indicators.md", "r"))
    local text = f:read("a")
    f:close()
    assert.are.equal(tf.indicators.docs(), text)
  end)

  it("documents every indicator of the registry", function()
    local text = tf.indicators.docs()
    for _, d in ipairs(tf.ind.list()) do
      assert.is_truthy(text:find("\n### " .. d.name .. "\n", 1, true), d.name)
    end
  end)
end)
