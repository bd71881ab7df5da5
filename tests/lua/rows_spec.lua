-- tf.rows.encode, tf.time and tf.routes without a server: the C primitives
-- behind the read API (quoting, nulls, ranges, offsets, limits, bad input).
describe("tf.rows.encode", function()
  local t = tf.series.from({ 1760929500, 1760929560.5, 0 / 0 })
  local o = tf.series.from({ 9, 1.085, 1.0851, 2 })
  local cols = { time = t, open = o, s = { "a,b", nil, 'q"x\n' }, flag = { true, false } }

  it("writes JSON objects with keys in the given order, ISO times, null for NaN and holes", function()
    local text, n = tf.rows.encode("json", cols, { "ts=time", "open", "s", "flag" }, { time = { ts = true } })
    assert.are.equal(3, n)
    assert.are.equal('[{"ts":"2025-10-20T03:05:00+00:00","open":9,"s":"a,b","flag":true},' ..
      '{"ts":"2025-10-20T03:06:00.500000+00:00","open":1.085,"s":null,"flag":false},' ..
      '{"ts":null,"open":1.0851,"s":"q\\"x\\n","flag":null}]', text)
    assert.is_truthy(tf.json.decode(text))
  end)

  it("writes CSV with a header, quoting, empty cells, a row range, offsets and reverse order", function()
    local text = tf.rows.encode("csv", cols, { "ts=time", "open", "s" },
      { time = { ts = true }, offset = { open = 1 }, first = 1, last = 3, reverse = true })
    assert.are.equal('ts,open,s\n,2,"q""x\n"\n2025-10-20T03:06:00.500000+00:00,1.0851,\n' ..
      '2025-10-20T03:05:00+00:00,1.085,"a,b"\n', text)
    assert.are.equal("1.085\n", tf.rows.encode("csv", cols, { "open" }, { first = 2, last = 2, header = false }))
  end)

  it("writes the shortest text that reads back as the same number", function()
    local v = { 0.1 + 0.2, 1 / 3, 1e-9, 123456789012, -0.5 }
    local text = tf.rows.encode("csv", { v = v }, { "v" }, { header = false })
    local k = 0
    for line in text:gmatch("[^\n]+") do
      k = k + 1
      assert.are.equal(v[k], tonumber(line))
    end
    assert.matches("^0.30000000000000004\n0.3333333333333333\n1e%-09\n123456789012\n%-0.5\n$", text)
  end)

  it("stops at max_bytes and names it", function()
    local text, why = tf.rows.encode("json", cols, { "open" }, { max_bytes = 10 })
    assert.is_nil(text)
    assert.are.equal("max_bytes", why)
  end)

  it("refuses a missing column, a bad format and no names", function()
    assert.has_error(function() tf.rows.encode("csv", cols, { "nope" }) end,
      "tf.rows.encode: no column 'nope' (a tf.series or an array)")
    assert.has_error(function() tf.rows.encode("xml", cols, { "open" }) end)
    assert.has_error(function() tf.rows.encode("csv", cols, {}) end)
  end)

  it("gives an empty array and a bare header for no rows", function()
    assert.are.equal("[]", (tf.rows.encode("json", { a = {} }, { "a" })))
    assert.are.equal("a\n", (tf.rows.encode("csv", { a = {} }, { "a" })))
  end)
end)

describe("tf.time", function()
  it("parses what ingest parses and formats as the API writes", function()
    assert.are.equal(1760929500, tf.time.parse("2025-10-20T03:05:00Z"))
    assert.are.equal(1760929500, tf.time.parse("2025.10.20 03:05"))
    assert.are.equal(1760929500, tf.time.parse("1760929500000"))
    assert.are.equal(1760929500, tf.time.parse(1760929500))
    assert.are.equal(1760929500 - 3 * 3600, tf.time.parse("2025-10-20T03:05:00+03:00"))
    local t, why = tf.time.parse("2025-13-01")
    assert.is_nil(t)
    assert.matches("month", why)
    assert.are.equal("2025-10-20T03:05:00+00:00", tf.time.format(1760929500))
  end)

  it("names timeframes by MT5 name or ENUM_TIMEFRAMES number", function()
    assert.are.same({ "H1", 3600 }, { tf.time.timeframe("16385") })
    assert.are.same({ "M5", 300 }, { tf.time.timeframe("m5") })
    assert.are.same({ "MN1", 0 }, { tf.time.timeframe("MN1") })
    local name, err = tf.time.timeframe("M7")
    assert.is_nil(name)
    assert.matches("^unknown timeframe 'M7' %(M1, M2, .*, MN1, or MT5's number such as 16385%)$", err)
  end)
end)

describe("tf.file.read", function()
  -- a plugin may read only while it loads (hostile_spec); a script has io anyway
  it("reads a file at any time in a script, and answers nil and the reason for a missing one", function()
    assert.is_truthy(tf.file.read("README.md"):find("tickforge", 1, true))
    local v, err = tf.file.read("no/such/file")
    assert.is_nil(v)
    assert.matches("no/such/file: No such file", err)
    assert.are.same({ nil, "README.md: larger than max_bytes" }, { tf.file.read("README.md", 10) })
  end)
end)

describe("tf.db.csv", function()
  it("writes PostgreSQL's text of each value as CSV: header, quoting, NULL empty, booleans", function()
    local text, n = tf.db.csv([[SELECT x AS n, 'a,b' AS s, NULL::text AS z, x % 2 = 0 AS even, 'say "hi"' || $1 AS q
      FROM generate_series(1, 2) AS x]], "!")
    assert.are.equal(2, n)
    assert.are.equal('n,s,z,even,q\n1,"a,b",,false,"say ""hi""!"\n2,"a,b",,true,"say ""hi""!"\n', text)
    local empty, m = tf.db.csv("SELECT 1 AS a WHERE false")
    assert.are.same({ "a\n", 0 }, { empty, m })
  end)
end)

describe("tf.db.copy_out", function()
  it("is PostgreSQL's own COPY CSV of a query: header, quoting, NULL empty, booleans t/f", function()
    local text, n = tf.db.copy_out([[SELECT x AS n, 'a,b' AS s, NULL::text AS z, x % 2 = 0 AS even
      FROM generate_series(1, 2) AS x;]])
    assert.are.equal(2, n)
    assert.are.equal('n,s,z,even\n1,"a,b",,f\n2,"a,b",,t\n', text)
    assert.are.same({ "a\n", 0 }, { tf.db.copy_out("SELECT 1 AS a WHERE false") })
  end)

  it("inlines the parameters as literals, and only where they are parameters", function()
    local text = tf.db.copy_out([[SELECT $1 AS q, $2::int AS p, $3::int AS nul, '$1' AS lit, s."$1" AS qi,
      $$ $1 $$ AS dq, E'\'$1' AS e -- $1
      /* $2 */ FROM (SELECT 1 AS "$1") s]], [[it's \ "quoted"]], 7, nil)
    assert.are.equal('q,p,nul,lit,qi,dq,e\n"it\'s \\ ""quoted""",7,,$1,1, $1 ,\'$1\n', text)
  end)

  it("says which parameter is missing, and raises the database's error as tf.db does", function()
    local ok, err = pcall(tf.db.copy_out, "SELECT $2 AS x", 1)
    assert.is_false(ok)
    assert.matches("tf.db.copy_out: $2: only 1 parameter given", tostring(err), 1, true)
    ok, err = pcall(tf.db.copy_out, "SELECT nosuchcol")
    assert.is_false(ok)
    assert.are.equal("error", err.code)
    assert.matches("nosuchcol", err.message)
  end)
end)

describe("tf.rows.encode's numbers", function()
  -- the fixed-point fast path (at most 8 decimals) must write exactly what
  -- the shortest of %.15g..%.17g writes, for every kind of value
  local function shortest(v)
    for p = 15, 17 do
      local s = string.format("%." .. p .. "g", v)
      if tonumber(s) == v then return s end
    end
  end

  it("are the shortest text that reads back as the same double", function()
    math.randomseed(20261202)
    local vals = { 0, -0.0, 1e-4, 9.99999999e-5, 1e7, 9999999.99999999, 0.1, 0.1 + 0.2, 1.08123, 120, -0.00012345,
      5e-324, 1e300, 0.00010001, 1.7976931348623157e308, 123456.78901234, 2^53 }
    for _ = 1, 50000 do
      local v = math.random(0, 10 ^ math.random(1, 15)) / 10 ^ math.random(0, 8)
      if math.random() < 0.2 then v = math.random() * 10 ^ math.random(-6, 9) end
      if math.random() < 0.3 then v = -v end
      vals[#vals + 1] = v
    end
    local text = tf.rows.encode("csv", { x = vals }, { "x" }, { header = false })
    local i = 0
    for line in text:gmatch("([^\n]*)\n") do
      i = i + 1
      if line ~= shortest(vals[i]) then
        error(string.format("%.17g written as %s, want %s", vals[i], line, shortest(vals[i])))
      end
    end
    assert.are.equal(#vals, i)
  end)
end)
