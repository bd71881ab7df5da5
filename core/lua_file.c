/* tf.file: lets a plugin read its own assets (an HTML page, a script) while
 * it loads, so it can serve them without the io library.
 *   tf.file.read(path [, max_bytes = 16MB]) -> text | nil, reason
 * Relative paths are relative to the working directory, like the config's.
 * In a plugin only during loading: a request handler cannot read files. A
 * script (tickforge run, backtest, export) has io anyway and may read at any
 * time, which is what lets those commands load the same plugins. */
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lua_tf.h"
#include "lvm.h"

#define FILE_MAX_DEFAULT (16 * 1024 * 1024)

static int fail(lua_State *L, const char *path, const char *why)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, why);
    return 2;
}

static int l_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, FILE_MAX_DEFAULT);
    if (!lvm_loading(L) && lvm_is_plugin(L)) return luaL_error(L, "tf.file.read: only while a plugin loads (read assets at load, serve them later)");
    struct stat st;
    if (stat(path, &st)) return fail(L, path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail(L, path, "not a regular file");
    if (st.st_size > max) return fail(L, path, "larger than max_bytes");
    FILE *f = fopen(path, "rb");
    if (!f) return fail(L, path, strerror(errno));
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)st.st_size);
    size_t n = fread(p, 1, (size_t)st.st_size, f);
    int err = ferror(f);
    fclose(f);
    if (err) return fail(L, path, "read error");
    luaL_pushresultsize(&b, n);
    return 1;
}

static const luaL_Reg file_funcs[] = {
    {"read", l_read},
    {NULL, NULL},
};

int luaopen_tf_file(lua_State *L)
{
    luaL_newlib(L, file_funcs);
    return 1;
}
