/* Builds the `tf` global from the namespace openers declared in lua_tf.h.
 * The list below is the one place a namespace is added. */
#include "lua_tf.h"

#include <lauxlib.h>

static const luaL_Reg tf_namespaces[] = {
    {"json", luaopen_tf_json},
    {"log", luaopen_tf_log},
    {"route", luaopen_tf_route},
    {"config", luaopen_tf_config},
    {"db", luaopen_tf_db},
    {"candles", luaopen_tf_candles},
    {"ticks", luaopen_tf_ticks},
    {"series", luaopen_tf_series},
    {"ind", luaopen_tf_ind},
    {"indicators", luaopen_tf_indicators},
    /* new namespaces go above this line */
    {NULL, NULL},
};

void lua_tf_open(lua_State *L)
{
    lua_newtable(L);
    for (const luaL_Reg *ns = tf_namespaces; ns->name; ns++) {
        int top = lua_gettop(L);
        ns->func(L);
        lua_settop(L, top + 1); /* exactly one value */
        lua_setfield(L, -2, ns->name);
    }
    lua_setglobal(L, "tf");
}
