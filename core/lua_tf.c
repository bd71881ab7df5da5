/* Builds the `tf` global from the namespace openers declared in lua_tf.h.
 * The lists below are the one place a namespace, or a kind of declaration a
 * generation keeps, is added. */
#include "lua_tf.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <string.h>

#define ERROR_MT "tf.error"

static const luaL_Reg tf_namespaces[] = {
    {"json", luaopen_tf_json},
    {"log", luaopen_tf_log},
    {"route", luaopen_tf_route},
    {"plugins", luaopen_tf_plugins},
    {"config", luaopen_tf_config},
    {"db", luaopen_tf_db},
    {"candles", luaopen_tf_candles},
    {"ticks", luaopen_tf_ticks},
    {"series", luaopen_tf_series},
    {"ind", luaopen_tf_ind},
    {"indicators", luaopen_tf_indicators},
    {"job", luaopen_tf_job},
    {"routes", luaopen_tf_routes},
    {"rows", luaopen_tf_rows},
    {"time", luaopen_tf_time},
    {"file", luaopen_tf_file},
    {"cache", luaopen_tf_cache},
    {"metrics", luaopen_tf_metrics},
    {"duration", luaopen_tf_duration},
    {"size", luaopen_tf_size},
    /* new namespaces go above this line */
    {NULL, NULL},
};

const struct lua_tf_decl *const lua_tf_decls[] = {&lua_route_decl, &lua_job_decl, NULL};

/* Namespaces written in Lua: tf.X is require(module) on first use. */
static const char *const lua_namespaces[][2] = {
    {"strategy", "tickforge.strategy"},
    {"backtest", "tickforge.backtest"},
    {NULL, NULL},
};

static int tf_index(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *k = lua_tostring(L, 2);
    for (int i = 0; k && lua_namespaces[i][0]; i++)
        if (!strcmp(k, lua_namespaces[i][0])) {
            lua_getglobal(L, "require");
            lua_pushstring(L, lua_namespaces[i][1]);
            lua_call(L, 1, 1);
            lua_pushvalue(L, 2);
            lua_pushvalue(L, -2);
            lua_rawset(L, 1);
            return 1;
        }
    return 0;
}

static int error_tostring(lua_State *L)
{
    lua_getfield(L, 1, "message");
    if (!lua_isstring(L, -1)) lua_pushliteral(L, "error");
    return 1;
}

int lua_tf_raise(lua_State *L, const char *code, const char *fmt, ...)
{
    va_list ap;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_setfield(L, -2, "message");
    luaL_setmetatable(L, ERROR_MT);
    return lua_error(L);
}

void lua_tf_seal(lua_State *L)
{
    lua_pushboolean(L, 0); /* getmetatable() answers false */
    lua_setfield(L, -2, "__metatable");
}

void lua_tf_metatable(lua_State *L, const char *name, const char *event, lua_CFunction fn)
{
    if (luaL_newmetatable(L, name)) {
        lua_pushcfunction(L, fn);
        lua_setfield(L, -2, event);
        lua_tf_seal(L);
    }
    lua_pop(L, 1);
}

void lua_tf_open(lua_State *L)
{
    lua_tf_metatable(L, ERROR_MT, "__tostring", error_tostring);
    lua_newtable(L);
    for (const luaL_Reg *ns = tf_namespaces; ns->name; ns++) {
        int top = lua_gettop(L);
        ns->func(L);
        lua_settop(L, top + 1); /* exactly one value */
        lua_setfield(L, -2, ns->name);
    }
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, tf_index);
    lua_setfield(L, -2, "__index");
    lua_tf_seal(L);
    lua_setmetatable(L, -2);
    lua_setglobal(L, "tf");
}
