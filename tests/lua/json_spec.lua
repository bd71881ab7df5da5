-- tf.json as plugins and scripts use it (inside `tickforge run`).
describe("tf.json", function()
  it("keeps integers integers and floats floats", function()
    local v = tf.json.decode('{"i":42,"big":1729400000000,"f":1.5,"e":5e-05,"z":0.0}')
    assert.are.equal("integer", math.type(v.i))
    assert.are.equal("integer", math.type(v.big))
    assert.are.equal(1729400000000, v.big)
    assert.are.equal("float", math.type(v.f))
    assert.are.equal(5e-05, v.e)
    assert.are.equal('{"n":3}', tf.json.encode({ n = 3 }))
    assert.are.equal('[1.5,0.1,1e+300]', tf.json.encode({ 1.5, 0.1, 1e300 }))
  end)

  it("round-trips null, empty arrays and empty objects", function()
    local v = tf.json.decode('{"a":null,"b":[],"c":{}}')
    assert.are.equal(tf.json.null, v.a)
    local out = tf.json.encode(v)
    assert.matches('"a":null', out)
    assert.matches('"b":%[%]', out)
    assert.matches('"c":{}', out)
    assert.are.equal("[]", tf.json.encode(tf.json.array()))
    assert.are.equal("{}", tf.json.encode({}))
  end)

  it("writes object keys in a stable order: ok first, then tf.json.order's, then the rest sorted", function()
    assert.are.equal('{"ok":true,"a":{"x":1,"y":2,"3":"n"},"b":2,"z":1,"2":2,"10":1}',
      tf.json.encode({ z = 1, b = 2, ok = true, a = { y = 2, x = 1, [3] = "n" }, [10] = 1, [2] = 2 }))
    local t = tf.json.order({ z = 1, ok = false, y = 2, a = 3 }, { "y", "z" })
    assert.are.equal('{"ok":false,"y":2,"z":1,"a":3}', tf.json.encode(t))
    t = tf.json.order({ z = 1, ok = false, y = 2, a = 3 }, { "y", "ok" })
    assert.are.equal('{"y":2,"ok":false,"a":3,"z":1}', tf.json.encode(t))
    -- many keys (past the on-stack key buffer), built in two different insertion orders
    local a, b = {}, {}
    for i = 1, 300 do a["k" .. i] = i end
    for i = 300, 1, -1 do b["k" .. i] = i end
    assert.are.equal(tf.json.encode(a), tf.json.encode(b))
    assert.matches('^{"k1":1,"k10":10,"k100":100,"k101":101,', tf.json.encode(a))
  end)

  it("escapes strings and keeps UTF-8", function()
    assert.are.equal('"a\\"b\\\\c\\nd\\u0001é"', tf.json.encode('a"b\\c\nd\1é'))
    assert.are.equal('a"b\\c\nd\1é', tf.json.decode('"a\\"b\\\\c\\nd\\u0001\\u00e9"'))
  end)

  it("reports malformed input with its byte position", function()
    local v, err = tf.json.decode('{"a": [1, 2,, 3]}')
    assert.is_nil(v)
    assert.matches("^byte 12: invalid JSON", err)
    v, err = tf.json.decode('{"a":1} x')
    assert.is_nil(v)
    assert.matches("byte 8: unexpected data after the JSON value", err)
    v, err = tf.json.decode("")
    assert.matches("byte 0: empty body", err)
  end)

  it("reads numbers as strtod does, whole ones within 2^53 as integers", function()
    math.randomseed(7)
    for _ = 1, 3000 do
      local d = {}
      for i = 1, math.random(1, 24) do d[i] = tostring(math.random(0, 9)) end
      local s = table.concat(d)
      if math.random() < 0.5 then
        local k = math.random(1, #s)
        s = s:sub(1, k) .. "." .. s:sub(k + 1)
      end
      if math.random() < 0.3 then s = s .. "e" .. (math.random() < 0.5 and "-" or "") .. math.random(0, 330) end
      if math.random() < 0.5 then s = "-" .. s end
      local want = tonumber(s) + 0.0 -- Lua's own reading (strtod, or an integer rounded once)
      local v = tf.json.decode(s)
      assert.are.equal(want, v, s)
      local whole = want == math.floor(want) and math.abs(want) <= 2 ^ 53
      assert.are.equal(whole and "integer" or "float", math.type(v), s)
    end
    assert.are.equal("integer", math.type(tf.json.decode("9007199254740992")))
    assert.are.equal("float", math.type(tf.json.decode("9007199254740994")))
    assert.are.equal("integer", math.type(tf.json.decode("1.0")))
    assert.are.equal(0.1, tf.json.decode("0.1"))
    assert.are.equal(math.huge, tf.json.decode("1e400"))
  end)

  it("reads escapes into UTF-8, a NUL escape included, and says what is wrong with a string", function()
    assert.are.equal("\0x", tf.json.decode('"\\u0000x"'))
    assert.are.equal("😀", tf.json.decode('"\\ud83d\\ude00"'))
    assert.are.equal("/\b\f\n\r\t", tf.json.decode('"\\/\\b\\f\\n\\r\\t"'))
    assert.are.same({ bom = 1 }, tf.json.decode("\239\187\191{\"bom\":1}"))
    local cases = {
      { '"\\ud83d"', "byte 1: .*a high surrogate without its low half" },
      { '"\\ude00"', "byte 1: .*a lone low surrogate" },
      { '"\\x"', "byte 1: .*an unknown escape" },
      { '"a\0b"', "byte 2: .*a NUL byte in a string" },
      { '"abc', "a string without its closing quote" },
      { '{"a" 1}', "byte 5: .*expected ':' after a key" },
      { '{a:1}', "byte 1: .*expected a key in double quotes" },
      { '[1 2]', "byte 3: .*expected ',' or ']'" },
      { 'nul', "byte 0: .*expected a value" },
    }
    for _, c in ipairs(cases) do
      local v, err = tf.json.decode(c[1])
      assert.is_nil(v, c[1])
      assert.matches(c[2], err)
    end
  end)

  it("encodes the keys named by tf.json.order first, in that order", function()
    local t = tf.json.order({ details = {}, ok = true, inserted = 2, extra = "x" }, { "ok", "inserted", "missing", "details" })
    assert.are.equal('{"ok":true,"inserted":2,"details":{},"extra":"x"}', tf.json.encode(t))
  end)

  it("tolerates trailing whitespace and a trailing NUL", function()
    assert.are.same({ a = 1 }, tf.json.decode('{"a":1}\n\0'))
  end)

  it("refuses what JSON cannot say, and cycles", function()
    assert.has_error(function() tf.json.encode({ f = print }) end, "json: cannot encode a function")
    local t = {}
    t.self = t
    assert.has_error(function() tf.json.encode(t) end)
    assert.are.equal("null", tf.json.encode(0 / 0))
  end)

  it("refuses nesting deeper than its limit instead of overflowing the stack", function()
    local deep = string.rep("[", 100000) .. string.rep("]", 100000)
    local v, err = tf.json.decode(deep)
    assert.is_nil(v)
    assert.is_string(err)
  end)
end)

describe("tf.config in a script", function()
  it("is a table with a dotted-path getter", function()
    assert.are.equal("table", type(tf.config))
    assert.are.equal("fallback", tf.config.get("no.such.key", "fallback"))
  end)
end)
