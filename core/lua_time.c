/* tf.time: the core's time and timeframe rules (core/ts.c) for plugins, so a
 * query route reads `from=2025-10-20T03:00Z`, `from=1760929200` and
 * `timeframe=16385` exactly as ingest does.
 *   tf.time.parse(v)       -> epoch seconds (float) | nil, reason
 *   tf.time.format(epoch)  -> "2025-10-20T03:00:00+00:00"
 *   tf.time.timeframe(s)   -> canonical name, seconds (MN1: 0) | nil, reason
 * Pure conversions: no clock, no I/O. */
#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "lua_tf.h"
#include "ts.h"

static int l_parse(lua_State *L)
{
    int64_t us;
    char err[128];
    int rc;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        rc = ts_from_epoch(lua_tonumber(L, 1), &us, err, sizeof err);
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        rc = ts_parse(s, len, &us, err, sizeof err);
    } else {
        luaL_typeerror(L, 1, "string or number");
        return 0;
    }
    if (rc) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushnumber(L, (double)us / 1e6);
    return 1;
}

static int l_format(lua_State *L)
{
    double t = luaL_checknumber(L, 1);
    luaL_argcheck(L, isfinite(t) && fabs(t) < 253402300800.0, 1, "epoch seconds within years 0..9999");
    char buf[40];
    int n = ts_format((int64_t)llround(t * 1e6), buf, sizeof buf);
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

static int l_timeframe(lua_State *L)
{
    enum ts_tf tf = TS_TF_NONE;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        tf = ts_tf_from_enum(lua_tonumber(L, 1));
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        tf = ts_tf_parse(s, len);
    }
    if (tf == TS_TF_NONE) { /* bad input: nil and why, as tf.time.parse */
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (int k = TS_TF_NONE + 1; k < TS_TF_COUNT; k++) {
            luaL_addstring(&b, ts_tf_name((enum ts_tf)k));
            luaL_addstring(&b, ", ");
        }
        luaL_addstring(&b, "or MT5's number such as 16385");
        luaL_pushresult(&b);
        lua_pushnil(L);
        lua_pushfstring(L, "unknown timeframe '%s' (%s)",
                        lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER
                            ? lua_tostring(L, 1)
                            : luaL_typename(L, 1),
                        lua_tostring(L, -2));
        return 2;
    }
    lua_pushstring(L, ts_tf_name(tf));
    lua_pushinteger(L, ts_tf_seconds(tf));
    return 2;
}

static const luaL_Reg time_funcs[] = {
    {"parse", l_parse},
    {"format", l_format},
    {"timeframe", l_timeframe},
    {NULL, NULL},
};

int luaopen_tf_time(lua_State *L)
{
    luaL_newlib(L, time_funcs);
    return 1;
}
