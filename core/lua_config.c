/* tf.config: the generation's whole config table (after environment
 * overrides, with API keys masked), read-only by convention. Plugin sections
 * live beside the core's: tf.config.ingest.max_items. tf.config.get("a.b.c",
 * default) walks a dotted path. In `tickforge run` without a config it is
 * an empty table. */
#include "config.h"
#include "lua_json.h"
#include "lua_tf.h"
#include "lvm.h"

#include <lauxlib.h>
#include <string.h>

/* tf.config.get(path [, default]) */
static int l_get(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    while (*path) {
        size_t n = strcspn(path, ".");
        if (!lua_istable(L, -1)) {
            lua_pushnil(L);
            break;
        }
        lua_pushlstring(L, path, n);
        lua_rawget(L, -2);
        lua_remove(L, -2);
        path += n + (path[n] == '.');
    }
    if (lua_isnil(L, -1) && lua_gettop(L) >= 3) lua_pushvalue(L, 2);
    return 1;
}

int luaopen_tf_config(lua_State *L)
{
    const struct config *cfg = lvm_config(L);
    char err[160];
    if (!cfg || !cfg->json || lua_json_decode(L, cfg->json, strlen(cfg->json), err, sizeof err))
        lua_newtable(L);
    lua_getfield(L, -1, "get");
    int has_get = !lua_isnil(L, -1); /* a config section named "get" wins */
    lua_pop(L, 1);
    if (!has_get) {
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, l_get, 1);
        lua_setfield(L, -2, "get");
    }
    return 1;
}
