/* Unit tests for core/lua_ind.c (tf.ind) in a bare Lua VM with tf.series and
 * tf.ind opened, so the binding is checked without the tickforge host. */
#include <lauxlib.h>
#include <lualib.h>

#include "lua_series.h"
#include "lua_tf.h"
#include "unit.h"

static lua_State *vm(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    luaopen_tf_series(L);
    lua_setfield(L, -2, "series");
    luaopen_tf_ind(L);
    lua_setfield(L, -2, "ind");
    lua_setglobal(L, "tf");
    return L;
}

/* Runs chunk; 1 when it returned true. Prints the error or the second result. */
static int run(lua_State *L, const char *chunk)
{
    if (luaL_dostring(L, chunk) != LUA_OK) {
        printf("# lua: %s\n", lua_tostring(L, -1));
        lua_settop(L, 0);
        return 0;
    }
    int ok = lua_toboolean(L, 1);
    if (!ok && lua_gettop(L) >= 2) printf("# %s\n", luaL_tolstring(L, 2, NULL));
    lua_settop(L, 0);
    return ok;
}

/* Runs chunk; 1 when it raised an error containing want. */
static int fails(lua_State *L, const char *chunk, const char *want)
{
    int rc = luaL_dostring(L, chunk);
    const char *msg = rc != LUA_OK ? lua_tostring(L, -1) : "(no error)";
    int ok = rc != LUA_OK && strstr(msg, want) != NULL;
    if (!ok) printf("# got: %s\n", msg);
    lua_settop(L, 0);
    return ok;
}

static const char *prelude = "close = {} high = {} low = {} for i = 1, 200 do local x = 100 + 10 * "
                             "math.sin(i / 7) + (i % 5) "
                             "close[i] = x high[i] = x + 1 + (i % 3) low[i] = x - 1 - (i % 4) end "
                             "function nan(x) return x ~= x end return true";

TEST(batch_calls_accept_tables_series_and_params)
{
    lua_State *L = vm();
    CHECK(run(L, prelude));
    /* sma by hand */
    CHECK(run(L, "local s = tf.ind.sma(close, {period = 5}) local want = 0 for i = 196, 200 do "
                 "want = want + close[i] end "
                 "return tf.series.is(s) and #s == 200 and nan(s[4]) and math.abs(s[200] - want / "
                 "5) < 1e-9"));
    /* positional numbers, series input, named and positional in a table */
    CHECK(run(L, "local c = tf.series.from(close) local a = tf.ind.ema(c, 10) local b = "
                 "tf.ind.ema(close, {10}) "
                 "local d = tf.ind.ema(c, {period = 10}) return a == b and b == d and nan(a[9]) "
                 "and not nan(a[10])"));
    /* several outputs come back as several series */
    CHECK(run(L, "local m, s, h = tf.ind.macd(close, 12, 26, 9) return #m == 200 and "
                 "math.abs(h[200] - (m[200] - s[200])) < 1e-12"));
    /* bars table with named fields */
    CHECK(run(
        L,
        "local a = tf.ind.atr({high = high, low = low, close = close}, {period = 14}) "
        "local b = tf.ind.atr(high, low, close, 14) return a == b and nan(a[14]) and a[15] > 0"));
    CHECK(run(
        L, "local bars = {high = high, low = low, close = close} "
           "local m1, s1 = tf.ind.macd(bars, 5, 13, 4) local m2, s2 = tf.ind.macd(close, 5, 13, 4) "
           "return m1 == m2 and s1 == s2 and nan(m1[15]) and not nan(m1[16])"));
    CHECK(run(L, "local a = tf.ind.sma({open = close, close = high}, {period = 3, input = 'open'}) "
                 "return a == tf.ind.sma(close, 3)"));
    /* conventions */
    CHECK(run(
        L,
        "local t = tf.ind.rsi(close, {period = 14}) local m = tf.ind.rsi(close, {period = 14, "
        "convention = 'mt5'}) "
        "local flat = {} for i = 1, 30 do flat[i] = 5 end "
        "return math.abs(t[200] - m[200]) < 1e-9 and tf.ind.rsi(flat, {14, convention = "
        "'mt5'})[30] == 50 "
        "and tf.ind.rsi(flat, 14)[30] == 0 and tf.ind.rsi(flat, {smoothing = 'sma'})[30] == 50"));
    lua_close(L);
}

TEST(batch_calls_reject_bad_input)
{
    lua_State *L = vm();
    CHECK(run(L, prelude));
    CHECK(fails(L, "tf.ind.sma(close, {period = 0})", "sma: period must be in [1, 100000], got 0"));
    CHECK(fails(L, "tf.ind.sma(close, {perio = 3})", "unknown parameter 'perio'"));
    CHECK(fails(L, "tf.ind.sma(close, {convention = 'mt4'})", "convention must be"));
    CHECK(fails(L, "tf.ind.atr(high, low, {1, 2})", "input 3 has 2 values, not 200"));
    CHECK(fails(L, "tf.ind.atr({high = high, low = low})", "bars table has no 'close'"));
    CHECK(fails(L, "tf.ind.sma({1, 'x'}, 2)", "element 2 is string"));
    CHECK(fails(L, "tf.ind.rsi(close, {smoothing = 'ema'})", "has no choice 'ema'"));
    CHECK(fails(L, "tf.ind.sma(close, 3, 4)", "too many parameters"));
    CHECK(run(L, "return #tf.ind.sma({}, 3) == 0")); /* empty input, empty output */
    lua_close(L);
}

TEST(streams_match_batch_and_resume_from_state)
{
    lua_State *L = vm();
    CHECK(run(L, prelude));
    CHECK(run(
        L, "for _, conv in ipairs({'talib', 'mt5'}) do "
           "  local k, d = tf.ind.stoch(high, low, close, {convention = conv}) "
           "  local s = tf.ind.stream('stoch', {convention = conv}) "
           "  for i = 1, 120 do local a, b = s:update(high[i], low[i], close[i]) "
           "    if not (a == k[i] or nan(a) and nan(k[i])) then return false, 'k at ' .. i end end "
           "  local saved = s:state() "
           "  local r = tf.ind.stream('stoch', {convention = conv}, saved) "
           "  if r:bars() ~= 120 then return false, 'bars' end "
           "  for i = 121, 200 do local a, b = r:update({high = high[i], low = low[i], close = "
           "close[i]}) "
           "    if a ~= k[i] or b ~= d[i] then return false, 'resumed at ' .. i end end "
           "  local a, b = r:value() if a ~= k[200] or b ~= d[200] then return false, 'value' end "
           "end return true"));
    CHECK(fails(L,
                "local s = tf.ind.stream('sma', {period = 3}) tf.ind.stream('sma', {period = 10}, "
                "s:state())",
                "state is"));
    CHECK(fails(L,
                "local s = tf.ind.stream('ema', {period = 3}) tf.ind.stream('ema', {period = 4}, "
                "s:state())",
                "state does not match"));
    CHECK(fails(L, "tf.ind.stream('sma', {period = 3}):update({open = 1})",
                "bar has no number 'close'"));
    CHECK(run(L, "local s = tf.ind.stream('sma', 3) return s:lookback() == 2 and "
                 "tostring(s):find('sma') ~= nil"));
    lua_close(L);
}

TEST(list_describes_the_registry)
{
    lua_State *L = vm();
    CHECK(run(
        L, "local l = tf.ind.list() local seen = {} for _, d in ipairs(l) do seen[d.name] = d end "
           "return #l >= 33 and seen.rsi.params[1].name == 'period' and seen.rsi.params[1].default "
           "== 14 "
           "and seen.rsi.params[2].default == 'wilder' and seen.macd.outputs[3] == 'hist' "
           "and seen.atr.inputs[1] == 'high' and seen.atr.mt5 == true and seen.trima.mt5 == false "
           "and seen.adx.lookback:find('2%*period') ~= nil and type(tf.ind[seen.psar.name]) == "
           "'function'"));
    CHECK(run(
        L, "return tf.ind.info('bbands').title == 'Bollinger Bands' and tf.ind.info('zz') == nil "
           "and tf.ind.lookback('macd') == 33 and tf.ind.lookback('adx', {period = 10, convention "
           "= 'mt5'}) == 20"));
    lua_close(L);
}

int main(void)
{
    RUN(batch_calls_accept_tables_series_and_params);
    RUN(batch_calls_reject_bad_input);
    RUN(streams_match_batch_and_resume_from_state);
    RUN(list_describes_the_registry);
    return unit_done();
}
