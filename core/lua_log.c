/* tf.log: plugins write structured log lines through the core logger.
 *   tf.log.info("stored batch", { symbol = "EURUSD", n = 42 })
 * Fields become key=value pairs; the caller's file:line is added as src. */
#include "log.h"
#include "lua_tf.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

static int emit(lua_State *L, enum log_level lvl)
{
    const char *msg = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    if (!log_enabled(lvl)) return 0;
    char kv[2048], q[512];
    size_t n = 0;
    lua_Debug ar;
    kv[0] = 0;
    for (int level = 1; level <= 3 && lua_getstack(L, level, &ar); level++) /* the first Lua caller */
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            n += (size_t)snprintf(kv, sizeof kv, "src=%s:%d", ar.short_src, ar.currentline);
            break;
        }
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2) && n < sizeof kv - 1) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                const char *k = lua_tostring(L, -2);
                const char *v = luaL_tolstring(L, -1, NULL);
                int plain = lua_type(L, -2) == LUA_TNUMBER || lua_type(L, -2) == LUA_TBOOLEAN;
                n += (size_t)snprintf(kv + n, sizeof kv - n, "%s%s=%s", n ? " " : "", k,
                                      plain ? v : log_quote(q, sizeof q, v));
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        if (n >= sizeof kv) n = sizeof kv - 1;
    }
    log_write(lvl, msg, "%s", kv);
    return 0;
}

static int l_debug(lua_State *L) { return emit(L, LOG_DEBUG); }
static int l_info(lua_State *L) { return emit(L, LOG_INFO); }
static int l_warn(lua_State *L) { return emit(L, LOG_WARN); }
static int l_error(lua_State *L) { return emit(L, LOG_ERROR); }

int luaopen_tf_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"debug", l_debug}, {"info", l_info}, {"warn", l_warn}, {"error", l_error}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
