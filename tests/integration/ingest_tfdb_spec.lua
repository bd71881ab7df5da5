-- tf.db and tf.candles/tf.ticks as a plugin sees them, run inside
-- `tickforge run` against the real PostgreSQL of DATABASE_URL: types come
-- back as Lua types, parameters are $n only, transactions commit or roll
-- back as a whole, COPY loads rows, and failures are error tables whose code
-- tells a route whether to answer 503.
local H = require("tests.integration.helper")

describe("tf.db", function()
  setup(function()
    H.migrate()
    tf.db.exec("DROP TABLE IF EXISTS tfdb_spec")
    tf.db.exec("CREATE TABLE tfdb_spec (id int PRIMARY KEY, name text, price numeric(18,8), qty float8, ok boolean)")
  end)
  teardown(function() tf.db.exec("DROP TABLE IF EXISTS tfdb_spec") end)

  it("returns rows as tables with Lua types, and NULL as nil", function()
    local rows = tf.db.query([[SELECT 1::int2 AS a, 2::int4 AS b, 3000000000::int8 AS c, 1.5::float4 AS d,
      2.25::float8 AS e, 1.08550000::numeric(18,8) AS f, true AS g, 'x'::text AS h, NULL::int AS i,
      '2025-10-20 03:00:00+00'::timestamptz AT TIME ZONE 'UTC' AS j]])
    assert.are.equal(1, #rows)
    local r = rows[1]
    assert.are.equal(1, r.a); assert.are.equal("integer", math.type(r.a))
    assert.are.equal(3000000000, r.c); assert.are.equal("integer", math.type(r.c))
    assert.are.equal(1.5, r.d); assert.are.equal(2.25, r.e); assert.are.equal(1.0855, r.f)
    assert.are.equal(true, r.g); assert.are.equal("x", r.h); assert.is_nil(r.i)
    assert.are.equal("2025-10-20 03:00:00", r.j)
    assert.are.equal("[]", tf.json.encode(tf.db.query("SELECT 1 WHERE false")))
  end)

  it("sends parameters as values, never as SQL", function()
    local evil = "x'); DROP TABLE tfdb_spec; --"
    assert.are.equal(1, tf.db.exec("INSERT INTO tfdb_spec (id, name, price, qty, ok) VALUES ($1, $2, $3, $4, $5)",
      1, evil, 1.25, 0.5, true))
    assert.are.equal(1, tf.db.exec("INSERT INTO tfdb_spec (id, name) VALUES ($1, $2)", 2, nil))
    local rows = tf.db.query("SELECT * FROM tfdb_spec WHERE id = $1", 1)
    assert.are.equal(evil, rows[1].name)
    assert.are.equal(1.25, rows[1].price)
    assert.are.equal(true, rows[1].ok)
    assert.is_nil(tf.db.query("SELECT name FROM tfdb_spec WHERE id = $1", 2)[1].name)
    assert.has_error(function() tf.db.query("SELECT $1::int", {}) end)
  end)

  it("returns numeric columns as tf.series and the rest as arrays", function()
    local cols, n = tf.db.columns("SELECT g AS i, g * 0.5 AS half, 'r' || g AS label, NULLIF(g, 2)::float8 AS holey FROM generate_series(1, 4) g")
    assert.are.equal(4, n)
    assert.are.equal(4, #cols.i)
    assert.are.equal(1.5, cols.half[3])
    assert.are.equal("r2", cols.label[2])
    assert.is_true(cols.holey[2] ~= cols.holey[2]) -- NULL is NaN in a series
    assert.are.equal(3, cols.holey[3])
  end)

  it("commits a transaction as a whole or rolls it back as a whole", function()
    local a, b = tf.db.tx(function(x)
      tf.db.exec("INSERT INTO tfdb_spec (id) VALUES (10)")
      tf.db.exec("INSERT INTO tfdb_spec (id) VALUES ($1)", x)
      return "done", 2
    end, 11)
    assert.are.equal("done", a); assert.are.equal(2, b)
    assert.are.equal(2, tf.db.query("SELECT count(*) AS n FROM tfdb_spec WHERE id IN (10, 11)")[1].n)
    local ok, err = pcall(tf.db.tx, function()
      tf.db.exec("INSERT INTO tfdb_spec (id) VALUES (20)")
      error("changed my mind")
    end)
    assert.is_false(ok)
    assert.matches("changed my mind", err)
    assert.are.equal(0, tf.db.query("SELECT count(*) AS n FROM tfdb_spec WHERE id = 20")[1].n)
    -- a SQL error inside also rolls everything back
    ok, err = pcall(tf.db.tx, function()
      tf.db.exec("INSERT INTO tfdb_spec (id) VALUES (21)")
      tf.db.exec("INSERT INTO tfdb_spec (id) VALUES (10)") -- duplicate key
    end)
    assert.is_false(ok)
    assert.are.equal("23505", err.sqlstate)
    assert.are.equal(0, tf.db.query("SELECT count(*) AS n FROM tfdb_spec WHERE id = 21")[1].n)
    assert.has_error(function() tf.db.tx(function() tf.db.tx(function() end) end) end)
  end)

  it("copies rows and COPY text", function()
    assert.are.equal(3, tf.db.copy("tfdb_spec", { "id", "name", "qty" },
      { { 100, "tab\there", 1.5 }, { 101, "back\\slash\nnewline", nil }, { 102, nil, 2 } }))
    assert.are.equal("tab\there", tf.db.query("SELECT name FROM tfdb_spec WHERE id = 100")[1].name)
    assert.are.equal("back\\slash\nnewline", tf.db.query("SELECT name FROM tfdb_spec WHERE id = 101")[1].name)
    assert.is_nil(tf.db.query("SELECT qty FROM tfdb_spec WHERE id = 101")[1].qty)
    assert.are.equal(2, tf.db.copy("tfdb_spec", { "id" }, "200\n201\n"))
    local ok, err = pcall(tf.db.copy, "tfdb_spec", { "id" }, "200\n")
    assert.is_false(ok)
    assert.are.equal("error", err.code)
    assert.are.equal("23505", err.sqlstate)
  end)

  it("raises error tables with the server's message and a code", function()
    local ok, err = pcall(tf.db.query, "SELECT * FROM no_such_table_here")
    assert.is_false(ok)
    assert.are.equal("error", err.code)
    assert.are.equal("42P01", err.sqlstate)
    assert.are.equal('relation "no_such_table_here" does not exist', err.message)
    assert.are.equal('tf.db: relation "no_such_table_here" does not exist', tostring(err))
  end)
end)

describe("tf.candles and tf.ticks from Lua", function()
  setup(function() H.migrate() end)

  it("decodes, answers and stores a batch, and reports bodies that cannot be batches", function()
    local sym = "LUA" .. os.time() % 100000
    local body = string.format('[{"symbol":%q,"timeframe":"H4","ts":"2025.10.20 07:59","open":1.1,"high":1.2,"low":1.0,"close":1.15,"volume":5}]', sym)
    local b = tf.candles.decode(body, { shape = "array" })
    assert.are.equal(1, #b)
    assert.are.equal("valid", b:answer().details[1].status)
    local a = tf.candles.store(b, { policy = "ignore" })
    assert.are.equal(1, a.inserted)
    assert.are.equal("2025-10-20T04:00:00+00:00", a.details[1].ts_bucket)
    a = tf.candles.store(tf.candles.decode(body), { policy = "replace" })
    assert.are.equal(1, a.duplicates)
    local none, err, status = tf.candles.decode("{", {})
    assert.is_nil(none)
    assert.matches("invalid JSON at byte", err)
    assert.are.equal(400, status)
    none, err, status = tf.candles.decode(body, { max_items = 0 })
    assert.truthy(none) -- 0 means no limit
    assert.has_error(function() tf.candles.store(b, { policy = "newest" }) end)
    assert.has_error(function() tf.candles.decode(body, { shape = "tree" }) end)
    local t = tf.ticks.decode('{"ticks":[{"symbol":"' .. sym .. '","ts":1760929270,"bid":1,"ask":1.1}]}')
    assert.are.equal(1, tf.ticks.store(t).inserted)
    local empty = tf.ticks.store(tf.ticks.decode('{"ticks":[]}'))
    assert.are.equal("[]", tf.json.encode(empty.details))
  end)
end)
