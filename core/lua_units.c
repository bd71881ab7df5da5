/* tf.duration and tf.size: the core's one parser of durations and sizes
 * (units.h) for plugins and the job modules, so "5s" and "16MB" mean the
 * same in the config, tf.route, tf.job and a plugin's own settings.
 *   tf.duration(v) -> seconds | nil, err    ("500ms", "5s", "2m", "1h", "90d", or a number of
 * seconds) tf.size(v)     -> bytes   | nil, err    ("16MB", "512KB", "1GB", "100B", or a number of
 * bytes) Pure conversions: bad input answers nil and why, never raises. */
#include "lua_tf.h"
#include "units.h"

#include <lauxlib.h>
#include <math.h>

static int answer(lua_State *L, int ok, double v, const char *hint)
{
    if (ok) {
        if (v == floor(v) && v < 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)v);
        else
            lua_pushnumber(L, v);
        return 1;
    }
    lua_pushnil(L);
    if (lua_type(L, 1) == LUA_TSTRING)
        lua_pushfstring(L, "must be %s, got \"%s\"", hint, lua_tostring(L, 1));
    else
        lua_pushfstring(L, "must be %s, got %s", hint, luaL_typename(L, 1));
    return 2;
}

static int l_duration(lua_State *L)
{
    double ms = -1;
    int ok = lua_type(L, 1) == LUA_TNUMBER
                 ? (ms = lua_tonumber(L, 1) * 1000) >= 0 && isfinite(ms)
                 : lua_type(L, 1) == LUA_TSTRING && units_duration_ms(lua_tostring(L, 1), &ms) == 0;
    return answer(L, ok, ms / 1000, UNITS_DURATION_HINT);
}

static int l_size(lua_State *L)
{
    double b = -1;
    int ok = lua_type(L, 1) == LUA_TNUMBER
                 ? (b = lua_tonumber(L, 1)) >= 0 && isfinite(b)
                 : lua_type(L, 1) == LUA_TSTRING && units_size(lua_tostring(L, 1), &b) == 0;
    return answer(L, ok, b, UNITS_SIZE_HINT);
}

int luaopen_tf_duration(lua_State *L)
{
    lua_pushcfunction(L, l_duration);
    return 1;
}

int luaopen_tf_size(lua_State *L)
{
    lua_pushcfunction(L, l_size);
    return 1;
}
