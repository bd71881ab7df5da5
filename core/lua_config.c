/* tf.config: the generation's whole config table (after environment
 * overrides, with API keys and the database password masked), read-only by
 * convention. Plugin sections
 * live beside the core's: tf.config.ingest.max_items. tf.config.get("a.b.c",
 * default) walks a dotted path. In `tickforge run` without a config it is
 * an empty table. */
#include "config.h"
#include "lua_json.h"
#include "lua_tf.h"
#include "lvm.h"

#include <lauxlib.h>
#include <string.h>

/* Pushes conninfo with its password replaced by "***": the password of a
 * URI's user info (postgresql://user:secret@host/db) and every password=
 * setting (URI query parameter or key=value pair, quoted or not). */
static void push_masked_conninfo(lua_State *L, const char *s)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *p = s;
    if (!strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11)) {
        const char *auth = strstr(s, "://") + 3;
        size_t alen = strcspn(auth, "/?");
        const char *at = NULL;
        for (const char *q = auth; q < auth + alen; q++)
            if (*q == '@') at = q;
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            luaL_addlstring(&b, s, (size_t)(colon - s) + 1);
            luaL_addstring(&b, "***");
            p = at;
        }
    }
    while (*p) {
        const char *k = strstr(p, "password=");
        if (!k) break;
        int starts = k == s || k[-1] == ' ' || k[-1] == '?' || k[-1] == '&' || k[-1] == '\t';
        luaL_addlstring(&b, p, (size_t)(k - p) + 9);
        p = k + 9;
        if (!starts) continue;
        luaL_addstring(&b, "***");
        if (*p == '\'') { /* key='quoted \' value' */
            for (p++; *p && *p != '\''; p++)
                if (*p == '\\' && p[1]) p++;
            if (*p) p++;
        } else {
            p += strcspn(p, " \t&");
        }
    }
    luaL_addstring(&b, p);
    luaL_pushresult(&b);
}

/* database.url of the config table on top, masked in place. */
static void mask_database_url(lua_State *L)
{
    if (lua_getfield(L, -1, "database") == LUA_TTABLE) {
        if (lua_getfield(L, -1, "url") == LUA_TSTRING) {
            push_masked_conninfo(L, lua_tostring(L, -1));
            lua_setfield(L, -3, "url");
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

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
    mask_database_url(L);
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
