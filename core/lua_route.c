/* tf.route and tf.routes: route registration while plugins load, kept in
 * the VM's registry (one table per route: method, path, handler, roles,
 * max_body, doc, plugin), and its copy into C for the router (see
 * lua_route.h). Jobs are registered the same way in lua_job.c. */
#include "lua_route.h"

#include "acct.h"
#include "config.h"
#include "lua_json.h"
#include "lua_tf.h"
#include "lvm.h"
#include "mem.h"
#include "units.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char routes_key = 0; /* registry: array of route tables */

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", NULL};
static const char *const reserved[] = {"/health", "/metrics", "/admin/reload", "/admin/status", "/admin/jobs", NULL};

/* A size: a number of bytes or "16MB"-style text (units.h). -1 when invalid. */
static double size_arg(lua_State *L, int idx)
{
    double v;
    if (lua_type(L, idx) == LUA_TNUMBER) return lua_tonumber(L, idx);
    return lua_type(L, idx) == LUA_TSTRING && units_size(lua_tostring(L, idx), &v) == 0 ? v : -1;
}

static int valid_path(const char *p)
{
    if (p[0] != '/') return 0;
    for (; *p; p++) {
        if (*p == '{') {
            const char *q = p + 1;
            while (*q == '_' || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9')) q++;
            if (*q != '}' || q == p + 1 || p[-1] != '/' || (q[1] && q[1] != '/')) return 0;
            p = q;
        } else if (*p == '}' || *p <= ' ' || *p == '?' || *p == '#' || *p == '"' || *p == '\\' || *p == 0x7f) {
            return 0; /* also keeps route labels in /metrics well-formed */
        }
    }
    return 1;
}

static int check_doc(lua_State *L, int idx);

/* Body limit of a route anyone may call (auth = "none") that sets no
 * max_body of its own: an open route does not take 16MB from strangers. */
#define OPEN_ROUTE_MAX_BODY 65536.0

/* tf.route(method, path, handler [, opts]) — only while plugins load.
 * opts.auth: "ingest" | "read" | "admin" | "none" (default "read");
 * opts.max_body: bytes or "1MB" (default http.max_body; for auth "none"
 * the smaller of that and 64KB);
 * opts.doc: { summary, description, params, response, ... } for /openapi.json. */
static int l_route(lua_State *L)
{
    const char *method = luaL_checkstring(L, 1);
    const char *path = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
    if (!lvm_loading(L)) return luaL_error(L, "tf.route: routes may only be registered while a plugin loads");
    int m = 0;
    while (methods[m] && strcmp(methods[m], method)) m++;
    if (!methods[m]) return luaL_error(L, "tf.route: unknown method '%s' (GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS)", method);
    if (strlen(path) > 512 || !valid_path(path))
        return luaL_error(L, "tf.route: invalid path '%s' (must start with '/'; parameters are whole segments like /items/{id})", path);
    for (int i = 0; reserved[i]; i++)
        if (!strcmp(reserved[i], path) || (i == 4 && !strncmp(path, "/admin/jobs/", 12)))
            return luaL_error(L, "tf.route: %s is served by the core and cannot be replaced", path);

    unsigned roles = ROLE_READ;
    const struct config *cfg = lvm_config(L);
    double max_body = cfg ? (double)cfg->http_max_body : 16.0 * 1048576;
    if (lua_istable(L, 4)) { /* a key that is no option is a typo: say so rather than ignore it */
        static const char *const options[] = {"auth", "max_body", "doc", NULL};
        lua_pushnil(L);
        while (lua_next(L, 4)) {
            int known = 0;
            for (int i = 0; options[i] && !known; i++)
                known = lua_type(L, -2) == LUA_TSTRING && !strcmp(lua_tostring(L, -2), options[i]);
            if (!known)
                return luaL_error(L, "tf.route: unknown option '%s' (options: auth, max_body, doc)",
                                  lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2));
            lua_pop(L, 1);
        }
        lua_getfield(L, 4, "auth");
        const char *a = lua_tostring(L, -1);
        if (lua_isnil(L, -1)) roles = ROLE_READ;
        else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) roles = 0;
        else if (a && !strcmp(a, "none")) roles = 0;
        else if (a && !strcmp(a, "ingest")) roles = ROLE_INGEST;
        else if (a && !strcmp(a, "read")) roles = ROLE_READ;
        else if (a && !strcmp(a, "admin")) roles = ROLE_ADMIN;
        else return luaL_error(L, "tf.route: opts.auth must be \"ingest\", \"read\", \"admin\" or \"none\"");
        lua_getfield(L, 4, "max_body");
        if (!lua_isnil(L, -1)) {
            max_body = size_arg(L, -1);
            if (!(max_body >= 0 && max_body <= 1073741824.0))
                return luaL_error(L, "tf.route: opts.max_body must be a size from 0 to 1GB such as 65536 or \"1MB\"");
        } else if (roles == 0 && max_body > OPEN_ROUTE_MAX_BODY) {
            max_body = OPEN_ROUTE_MAX_BODY;
        }
        lua_pop(L, 2);
        lua_getfield(L, 4, "doc");
        if (!lua_isnil(L, -1) && check_doc(L, lua_gettop(L)))
            return luaL_error(L, "tf.route: opts.doc must be a table of summary, description, content_type (strings) "
                                 "and params, response, body, formats, tags (tables), status (a 2xx code)");
        lua_pop(L, 1);
    }

    lua_rawgetp(L, LUA_REGISTRYINDEX, &routes_key);
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "method");
        lua_getfield(L, -2, "path");
        int dup = !strcmp(lua_tostring(L, -2), method) && !strcmp(lua_tostring(L, -1), path);
        lua_pop(L, 3);
        if (dup) return luaL_error(L, "tf.route: %s %s is already registered", method, path);
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "handler");
    lua_pushinteger(L, (lua_Integer)roles);
    lua_setfield(L, -2, "roles");
    lua_pushinteger(L, (lua_Integer)max_body);
    lua_setfield(L, -2, "max_body");
    if (lua_istable(L, 4)) {
        lua_getfield(L, 4, "doc");
        lua_setfield(L, -2, "doc");
    }
    lvm_push_caller_file(L);
    lua_setfield(L, -2, "plugin");
    lua_rawseti(L, -2, n + 1);
    return 0;
}


/* opts.doc: documentation the route declares for GET /openapi.json; only its
 * shape is checked here (the fields named, of the right types). 0 when fine. */
static int check_doc(lua_State *L, int idx)
{
    /* the first three are strings, then tables, then status: the success code (2xx) */
    static const char *const fields[] = {"summary", "description", "content_type", "params", "response",
                                         "body", "formats", "tags", "status", NULL};
    if (!lua_istable(L, idx)) return -1;
    int bad = 0;
    lua_pushnil(L);
    while (!bad && lua_next(L, idx)) {
        int f = 0;
        while (fields[f] && !(lua_type(L, -2) == LUA_TSTRING && !strcmp(fields[f], lua_tostring(L, -2)))) f++;
        if (!fields[f]) bad = 1;
        else if (f < 3) bad = lua_type(L, -1) != LUA_TSTRING;
        else if (!fields[f + 1]) bad = !lua_isinteger(L, -1) || lua_tointeger(L, -1) < 200 || lua_tointeger(L, -1) > 299;
        else bad = !lua_istable(L, -1);
        lua_pop(L, 1);
    }
    if (bad) lua_pop(L, 1);
    return bad ? -1 : 0;
}

int luaopen_tf_route(lua_State *L)
{
    lua_newtable(L); /* the VM's routes, empty */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &routes_key);
    lua_pushcfunction(L, l_route);
    return 1;
}

/* tf.routes() -> { {method, path, auth, max_body, doc}, ... } in registration
 * order: the routes the plugins of this VM's generation registered (a copy;
 * doc is the table the route declared, or nil). For GET /openapi.json and /ui. */
static int l_routes(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &routes_key);
    lua_Integer n = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        lua_createtable(L, 0, 5);
        static const char *const copy[] = {"method", "path", "max_body", "doc", NULL};
        for (int k = 0; copy[k]; k++) {
            lua_getfield(L, -2, copy[k]);
            lua_setfield(L, -2, copy[k]);
        }
        lua_getfield(L, -2, "roles");
        unsigned roles = (unsigned)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushstring(L, roles & ROLE_ADMIN ? "admin" : roles & ROLE_INGEST ? "ingest" : roles & ROLE_READ ? "read" : "none");
        lua_setfield(L, -2, "auth");
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
    }
    lua_json_mark_array(L, -1);
    return 1;
}

int luaopen_tf_routes(lua_State *L)
{
    lua_pushcfunction(L, l_routes);
    return 1;
}

void lua_route_push_handler(lua_State *L, int i)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &routes_key);
    lua_rawgeti(L, -1, i + 1);
    lua_getfield(L, -1, "handler");
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* The registered routes as a C array (mem_*) in *out, *nout. Raises on a Lua
 * error; -1 when out of memory. *out is set at once, so a caller frees it
 * (routes_free) either way. */
static int extract(lua_State *L, struct lvm_route **out, int *nout)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &routes_key);
    int n = (int)luaL_len(L, -1);
    struct lvm_route *r = mem_calloc((size_t)(n ? n : 1), sizeof *r);
    if (!r) {
        lua_pop(L, 1);
        return -1;
    }
    *out = r; /* at once: a Lua error below leaves it for the caller to free */
    *nout = n;
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        lua_getfield(L, -1, "method");
        snprintf(r[i].method, sizeof r[i].method, "%s", lua_tostring(L, -1));
        lua_getfield(L, -2, "path");
        if (!(r[i].path = mem_strdup(lua_tostring(L, -1)))) return -1;
        lua_getfield(L, -3, "roles");
        r[i].roles = (unsigned)lua_tointeger(L, -1);
        lua_getfield(L, -4, "max_body");
        r[i].max_body = (size_t)lua_tointeger(L, -1);
        lua_getfield(L, -5, "plugin");
        if (!(r[i].plugin = mem_strdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : ""))) return -1;
        char name[600];
        snprintf(name, sizeof name, "%s %s", r[i].method, r[i].path);
        r[i].acct = acct_entry(ACCT_ROUTE, name, r[i].plugin);
        lua_pop(L, 6);
    }
    lua_pop(L, 1);
    return 0;
}

static void routes_free(struct lvm_route *routes, int n)
{
    for (int i = 0; routes && i < n; i++) {
        mem_free(routes[i].path);
        mem_free(routes[i].plugin);
    }
    mem_free(routes);
}

/* ---- the generation's copy (lua_tf.h) ---- */

static int take(lua_State *L, struct lvm_gen *g)
{
    return extract(L, &g->routes, &g->nroutes);
}

static void drop(struct lvm_gen *g)
{
    routes_free(g->routes, g->nroutes);
    g->routes = NULL, g->nroutes = 0;
}

/* The same methods, paths, roles and body limits in the same order. */
static int same(lua_State *L, const struct lvm_gen *g)
{
    struct lvm_gen mine = {0};
    int same = take(L, &mine) == 0 && mine.nroutes == g->nroutes;
    for (int i = 0; same && i < mine.nroutes; i++) {
        const struct lvm_route *a = &mine.routes[i], *b = &g->routes[i];
        same = !strcmp(a->method, b->method) && !strcmp(a->path, b->path) && a->roles == b->roles &&
               a->max_body == b->max_body;
    }
    drop(&mine);
    return same;
}

const struct lua_tf_decl lua_route_decl = {take, same, drop};
