-- tf.duration and tf.size: the core's one parser (core/units.c) as plugins
-- and the job modules see it; bad input answers nil and why, never raises.
describe("tf.duration", function()
  it("reads seconds and the units ms, s, m, h, d", function()
    assert.are.same({ 5, 0.5, 120, 3600, 7776000, 2, 1.5 },
      { tf.duration("5s"), tf.duration("500ms"), tf.duration("2m"), tf.duration("1h"), tf.duration("90d"),
        tf.duration(2), tf.duration("1.5") })
    assert.is_true(math.type(tf.duration("5s")) == "integer")
  end)

  it("answers nil and why for what is not a duration", function()
    for _, v in ipairs({ "5 min", "5S", "-1s", "soon", "", {} }) do
      local s, err = tf.duration(v)
      assert.is_nil(s, tostring(v))
      assert.matches("^must be a duration such as", err)
    end
    assert.is_nil((tf.duration(-1)))
  end)
end)

describe("tf.size", function()
  it("reads bytes and B, KB, MB, GB in any case", function()
    assert.are.same({ 100, 100, 1536, 16777216, 1073741824 },
      { tf.size(100), tf.size("100B"), tf.size("1.5kb"), tf.size("16MB"), tf.size("1G") })
  end)

  it("answers nil and why for what is not a size", function()
    local s, err = tf.size("16 TB")
    assert.is_nil(s)
    assert.are.equal('must be a size such as "16MB" or a number of bytes, got "16 TB"', err)
  end)
end)
