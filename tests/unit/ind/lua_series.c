/* Unit tests for core/lua_series.c: the tf.series userdata driven from C and
 * from Lua chunks in a bare VM (no tickforge host needed). */
#include "unit.h"

#include <lauxlib.h>
#include <lualib.h>

#include "lua_series.h"

static lua_State *vm(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaopen_tf_series(L);
    lua_setglobal(L, "series");
    return L;
}

/* Runs chunk; returns 1 when it ran and returned true. */
static int run(lua_State *L, const char *chunk)
{
    if (luaL_dostring(L, chunk) != LUA_OK) {
        printf("# lua: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return 0;
    }
    int ok = lua_toboolean(L, -1);
    lua_settop(L, 0);
    return ok;
}

TEST(push_from_c_is_indexable_from_lua)
{
    lua_State *L = vm();
    double *d = lua_series_push(L, 3);
    d[0] = 1.5, d[1] = 2.5, d[2] = -4;
    lua_setglobal(L, "s");
    CHECK(run(L, "return #s == 3 and s[1] == 1.5 and s[3] == -4 and s[4] == nil and s[0] == nil"));
    CHECK(run(L, "return tostring(s) == 'tf.series(3)' and s:last() == -4 and s:last(3) == 1.5"));
    CHECK(run(L, "local t = s:totable() return #t == 3 and t[2] == 2.5"));
    CHECK(run(L, "local x = s:slice(2) return #x == 2 and x[1] == 2.5 and x[2] == -4"));
    CHECK(run(L, "local x = s:slice(-2, -2) return #x == 1 and x[1] == 2.5"));
    CHECK(run(L, "local x = s:slice(3, 2) return #x == 0"));
    CHECK(run(L, "s[2] = 7 return s[2] == 7"));
    CHECK(!run(L, "s[9] = 7 return true"));
    lua_close(L);
}

TEST(check_converts_tables_and_rejects_junk)
{
    lua_State *L = vm();
    size_t n;
    CHECK(luaL_dostring(L, "return {1, 2, 3.5}") == LUA_OK);
    double *d = lua_series_check(L, 1, &n);
    CHECK_INT(n, 3);
    CHECK(d[2] == 3.5);
    CHECK(luaL_testudata(L, 1, LUA_SERIES_MT) != NULL); /* replaced in place */
    lua_settop(L, 0);
    lua_pushstring(L, "x");
    CHECK(lua_series_test(L, 1, &n) == NULL && n == 0);
    lua_settop(L, 0);
    CHECK(!run(L, "return series.from({1, 'a'})"));
    CHECK(run(L, "local s = series.new(4, 2) return #s == 4 and s[4] == 2 and series.is(s)"));
    CHECK(run(L, "local s = series.new(2) return s[1] ~= s[1]")); /* NaN fill */
    CHECK(run(L, "return series.from({1,2}) == series.from({1,2}) and series.from({1}) ~= "
                 "series.from({2})"));
    lua_close(L);
}

TEST(push_works_without_opening_namespace)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    double *d = lua_series_push(L, 1);
    d[0] = 42;
    lua_setglobal(L, "s");
    CHECK(run(L, "return #s == 1 and s[1] == 42"));
    lua_close(L);
}

int main(void)
{
    RUN(push_from_c_is_indexable_from_lua);
    RUN(check_converts_tables_and_rejects_junk);
    RUN(push_works_without_opening_namespace);
    return unit_done();
}
