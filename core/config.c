/* Loads config/tickforge.lua (a chunk returning a table) in a throw-away Lua
 * state, applies environment overrides to the table, then reads every known
 * key through one schema of typed getters with ranges. Unknown keys inside
 * the sections the core owns are errors (typos must not pass silently);
 * other top-level sections belong to plugins and are kept for tf.config.
 * Relative paths are relative to the working directory. */
#include "config.h"

#include "log.h"
#include "lua_json.h"
#include "mem.h"
#include "units.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum type { T_INT, T_SIZE, T_BOOL, T_STR };

struct field {
    const char *key; /* dotted path in the table */
    enum type type;
    const char *def; /* default, as text */
    double min, max; /* for T_INT and T_SIZE */
    size_t offset;   /* into struct config */
};

#define F(k, t, d, lo, hi, member) {k, t, d, lo, hi, offsetof(struct config, member)}
static const struct field schema[] = {
    F("http.threads", T_INT, "16", 1, 256, http_threads),
    F("http.workers", T_INT, "0", 0, 256, http_workers),
    F("http.max_connections", T_INT, "10000", 1, 1000000, http_max_connections),
    F("http.max_connections_per_ip", T_INT, "1000", 0, 1000000, http_max_connections_per_ip),
    F("http.connection_timeout", T_INT, "30", 1, 3600, http_connection_timeout),
    F("http.header_timeout", T_INT, "10", 1, 3600, http_header_timeout),
    F("http.min_body_rate", T_SIZE, "1KB", 0, 1073741824.0, http_min_body_rate),
    F("http.max_body", T_SIZE, "16MB", 1024, 1073741824.0, http_max_body),
    F("lua.memory_limit", T_SIZE, "256MB", 1048576, 68719476736.0, lua_memory_limit),
    F("lua.handler_timeout_ms", T_INT, "5000", 1, 600000, lua_handler_timeout_ms),
    F("database.url", T_STR, "", 0, 0, db_url),
    F("database.pool_size", T_INT, "8", 1, 256, db_pool_size),
    F("database.checkout_timeout_ms", T_INT, "5000", 1, 600000, db_checkout_timeout_ms),
    F("database.connect_timeout_s", T_INT, "5", 1, 600, db_connect_timeout_s),
    F("database.statement_timeout_ms", T_INT, "30000", 0, 3600000, db_statement_timeout_ms),
    F("database.single_lanes", T_INT, "1", 1, 256, db_single_lanes),
    F("database.prepare", T_BOOL, "true", 0, 0, db_prepare),
    F("database.migrations", T_STR, "sql", 0, 0, migrations_dir),
    F("auth.metrics_open", T_BOOL, "true", 0, 0, metrics_open),
    F("log.access", T_BOOL, "true", 0, 0, log_access),
    F("plugins.dir", T_STR, "plugins", 0, 0, plugins_dir),
    F("reload.watch", T_BOOL, "false", 0, 0, reload_watch),
    F("reload.interval_ms", T_INT, "1000", 100, 60000, reload_interval_ms),
    F("scheduler.enabled", T_BOOL, "true", 0, 0, sched_enabled),
    F("scheduler.workers", T_INT, "2", 1, 16, sched_workers),
    F("cache.max_memory", T_SIZE, "64MB", 65536, 1099511627776.0, cache_max_memory),
    F("cache.load_timeout_ms", T_INT, "5000", 1, 600000, cache_load_timeout_ms),
    F("spool.enabled", T_BOOL, "true", 0, 0, spool_enabled),
    F("spool.dir", T_STR, "var/spool", 0, 0, spool_dir),
    F("spool.max_bytes", T_SIZE, "1GB", 4096, 1099511627776.0, spool_max_bytes),
    F("spool.segment_bytes", T_SIZE, "64MB", 4096, 4294967296.0, spool_segment_bytes),
};
#undef F

/* Keys the core reads itself besides the schema (validated by hand below). */
static const char *const extra_keys[] = {
    "listen", "auth.keys", "plugins.enabled", "plugins.disabled", "lua.path", "log.level", "log.format", NULL,
};
static const char *const core_sections[] = {"http", "lua", "database", "auth", "plugins", "reload",
                                            "log", "scheduler", "cache", "spool", NULL};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Pushes the value at dotted path key of the table at index t (nil if absent). */
static void get_path(lua_State *L, int t, const char *key)
{
    char part[64];
    lua_pushvalue(L, t);
    while (*key) {
        size_t n = strcspn(key, ".");
        snprintf(part, sizeof part, "%.*s", (int)n, key);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_pushnil(L);
            return;
        }
        lua_getfield(L, -1, part);
        lua_remove(L, -2);
        key += n + (key[n] == '.');
    }
}

/* Sets the dotted path (creating sections) to the value on top; pops it. */
static void set_path(lua_State *L, int t, const char *key)
{
    char part[64];
    int v = lua_gettop(L);
    lua_pushvalue(L, t);
    for (;;) {
        size_t n = strcspn(key, ".");
        snprintf(part, sizeof part, "%.*s", (int)n, key);
        if (!key[n]) break;
        lua_getfield(L, -1, part);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, -3, part);
        }
        lua_remove(L, -2);
        key += n + 1;
    }
    lua_pushvalue(L, v);
    lua_setfield(L, -2, part);
    lua_settop(L, v - 1);
}

/* A number written as text (an environment override): the whole string must
 * be a number, or a size with a unit when size is set. */
static int parse_number(const char *s, int size, double *out)
{
    if (size) return units_size(s, out);
    char *end;
    *out = strtod(s, &end);
    return end == s || *end ? -1 : 0;
}

static int read_field(lua_State *L, int t, const struct field *f, struct config *c, const char *src,
                      char *err, size_t errlen)
{
    char *at = (char *)c + f->offset;
    get_path(L, t, f->key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushstring(L, f->def);
    }
    double v = 0;
    int rc = 0;
    switch (f->type) {
    case T_STR:
        if (lua_type(L, -1) != LUA_TSTRING)
            rc = fail(err, errlen, "%s: %s: must be a string, got %s", src, f->key, luaL_typename(L, -1));
        else if (!(*(char **)at = mem_strdup(lua_tostring(L, -1))))
            rc = fail(err, errlen, "out of memory");
        break;
    case T_BOOL:
        if (lua_type(L, -1) == LUA_TSTRING) { /* the default, or an env override */
            const char *s = lua_tostring(L, -1);
            if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes")) *(int *)at = 1;
            else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no")) *(int *)at = 0;
            else rc = fail(err, errlen, "%s: %s: must be true or false, got \"%s\"", src, f->key, s);
        } else if (lua_isboolean(L, -1)) {
            *(int *)at = lua_toboolean(L, -1);
        } else {
            rc = fail(err, errlen, "%s: %s: must be true or false, got %s", src, f->key, luaL_typename(L, -1));
        }
        break;
    case T_INT:
    case T_SIZE:
        if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tonumber(L, -1);
        else if (lua_type(L, -1) != LUA_TSTRING || parse_number(lua_tostring(L, -1), f->type == T_SIZE, &v)) {
            const char *shown = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
            rc = fail(err, errlen, "%s: %s: must be %s, got %s%s%s", src, f->key,
                      f->type == T_SIZE ? UNITS_SIZE_HINT : "a number",
                      lua_type(L, -1) == LUA_TSTRING ? "\"" : "", shown,
                      lua_type(L, -1) == LUA_TSTRING ? "\"" : "");
            break;
        }
        if (!(v >= f->min && v <= f->max) || (f->type == T_INT && v != (double)(long long)v)) {
            rc = fail(err, errlen, "%s: %s: must be %s%.0f..%.0f, got %.17g", src, f->key,
                      f->type == T_INT ? "an integer " : "", f->min, f->max, v);
            break;
        }
        if (f->type == T_INT) *(int *)at = (int)v;
        else *(size_t *)at = (size_t)v;
        break;
    }
    lua_pop(L, 1);
    return rc;
}

/* Reads an array of strings at key into *out (NULL when absent). */
static int read_strings(lua_State *L, int t, const char *key, char ***out, int *n, const char *src,
                        char *err, size_t errlen)
{
    get_path(L, t, key);
    *out = NULL;
    *n = 0;
    int rc = 0;
    if (lua_isnil(L, -1)) goto done;
    if (!lua_istable(L, -1)) {
        rc = fail(err, errlen, "%s: %s: must be a list of strings", src, key);
        goto done;
    }
    lua_Integer len = luaL_len(L, -1);
    *out = mem_calloc((size_t)len + 1, sizeof **out);
    if (!*out) {
        rc = fail(err, errlen, "out of memory");
        goto done;
    }
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) != LUA_TSTRING) {
            rc = fail(err, errlen, "%s: %s[%lld]: must be a string, got %s", src, key, (long long)i,
                      luaL_typename(L, -1));
            lua_pop(L, 1);
            goto done;
        }
        if (!((*out)[*n] = mem_strdup(lua_tostring(L, -1)))) {
            rc = fail(err, errlen, "out of memory");
            lua_pop(L, 1);
            goto done;
        }
        (*n)++;
        lua_pop(L, 1);
    }
done:
    lua_pop(L, 1);
    return rc;
}

static unsigned parse_roles(lua_State *L, int idx, const char *src, int k, char *err, size_t errlen)
{
    unsigned roles = 0;
    lua_Integer len = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, idx, i);
        const char *r = lua_tostring(L, -1);
        if (r && !strcmp(r, "ingest")) roles |= ROLE_INGEST;
        else if (r && !strcmp(r, "read")) roles |= ROLE_READ;
        else if (r && !strcmp(r, "admin")) roles |= ROLE_ADMIN;
        else {
            fail(err, errlen, "%s: auth.keys[%d].roles[%lld]: unknown role \"%s\" (ingest, read, admin)",
                 src, k, (long long)i, r ? r : luaL_typename(L, -1));
            lua_pop(L, 1);
            return 0;
        }
        lua_pop(L, 1);
    }
    return roles;
}

static int add_key(struct config *c, const char *key, unsigned roles, const char *name)
{
    struct config_key *k = mem_realloc(c->keys, sizeof *k * (size_t)(c->nkeys + 1));
    if (!k) return -1;
    c->keys = k;
    k[c->nkeys].key = mem_strdup(key);
    k[c->nkeys].name = mem_strdup(name);
    k[c->nkeys].roles = roles;
    c->nkeys++;
    return k[c->nkeys - 1].key && k[c->nkeys - 1].name ? 0 : -1;
}

static int read_keys(lua_State *L, int t, struct config *c, const char *src, char *err, size_t errlen)
{
    get_path(L, t, "auth.keys");
    int rc = 0;
    if (lua_isnil(L, -1)) goto done;
    if (!lua_istable(L, -1)) {
        rc = fail(err, errlen, "%s: auth.keys: must be a list of { key = ..., roles = {...} }", src);
        goto done;
    }
    for (lua_Integer i = 1; i <= luaL_len(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        int e = lua_gettop(L);
        if (!lua_istable(L, e)) {
            rc = fail(err, errlen, "%s: auth.keys[%lld]: must be a table { key = ..., roles = {...} }", src, (long long)i);
            goto done;
        }
        lua_getfield(L, e, "key");
        lua_getfield(L, e, "roles");
        lua_getfield(L, e, "name");
        const char *key = lua_tostring(L, e + 1);
        if (lua_type(L, e + 1) != LUA_TSTRING || strlen(key) < 8) {
            rc = fail(err, errlen, "%s: auth.keys[%lld].key: must be a string of at least 8 characters", src, (long long)i);
            goto done;
        }
        if (!lua_istable(L, e + 2)) {
            rc = fail(err, errlen, "%s: auth.keys[%lld].roles: must be a list such as {\"ingest\", \"read\"}", src, (long long)i);
            goto done;
        }
        unsigned roles = parse_roles(L, e + 2, src, (int)i, err, errlen);
        if (!roles) {
            if (!*err) fail(err, errlen, "%s: auth.keys[%lld].roles: must name at least one role", src, (long long)i);
            rc = -1;
            goto done;
        }
        char name[32];
        snprintf(name, sizeof name, "key%lld", (long long)i);
        if (add_key(c, key, roles, lua_isstring(L, e + 3) ? lua_tostring(L, e + 3) : name) != 0) {
            rc = fail(err, errlen, "out of memory");
            goto done;
        }
        lua_settop(L, e - 1);
    }
done:
    lua_settop(L, t);
    return rc;
}

/* An unknown key in a core section is a typo until proven otherwise. */
static int check_unknown(lua_State *L, int t, const char *src, char *err, size_t errlen)
{
    for (const char *const *sec = core_sections; *sec; sec++) {
        lua_getfield(L, t, *sec);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        if (!lua_istable(L, -1)) return fail(err, errlen, "%s: %s: must be a table", src, *sec);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pop(L, 1);
            char full[128];
            snprintf(full, sizeof full, "%s.%s", *sec, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
            int known = 0;
            for (size_t i = 0; i < sizeof schema / sizeof *schema && !known; i++) known = !strcmp(schema[i].key, full);
            for (const char *const *x = extra_keys; *x && !known; x++) known = !strcmp(*x, full);
            if (!known) {
                lua_pop(L, 2);
                return fail(err, errlen, "%s: %s: unknown key", src, full);
            }
        }
        lua_pop(L, 1);
    }
    return 0;
}

static void env_override(lua_State *L, int t, const char *env, const char *key)
{
    const char *v = getenv(env);
    if (v && *v) {
        lua_pushstring(L, v);
        set_path(L, t, key);
    }
}

/* Environment keys become entries of auth.keys so tf.config shows them too
 * (with the secret masked there; see config_load). */
static void env_key(lua_State *L, int t, const char *env, const char *name, const char *const *roles)
{
    const char *v = getenv(env);
    if (!v || !*v) return;
    get_path(L, t, "auth.keys");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        set_path(L, t, "auth.keys");
    }
    lua_createtable(L, 0, 3);
    lua_pushstring(L, v);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_newtable(L);
    for (int i = 0; roles[i]; i++) {
        lua_pushstring(L, roles[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "roles");
    lua_rawseti(L, -2, luaL_len(L, -2) + 1);
    lua_pop(L, 1);
}

static int read_listen(lua_State *L, int t, struct config *c, const char *src, char *err, size_t errlen)
{
    get_path(L, t, "listen");
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : lua_isnil(L, -1) ? "127.0.0.1:8080" : NULL;
    const char *colon = s ? strrchr(s, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    int rc = 0;
    if (!colon || (size_t)(colon - s) >= sizeof c->listen_host || *end || port < 0 || port > 65535)
        rc = fail(err, errlen, "%s: listen: must be \"host:port\" (port 0..65535), got %s", src,
                  s ? s : luaL_typename(L, -1));
    else {
        snprintf(c->listen_host, sizeof c->listen_host, "%.*s", (int)(colon - s), s);
        c->listen_port = (int)port;
    }
    lua_pop(L, 1);
    return rc;
}

/* Replaces every auth.keys[i].key in the table with "***" before it is
 * exported to plugins as tf.config. */
static void mask_keys(lua_State *L, int t)
{
    get_path(L, t, "auth.keys");
    if (lua_istable(L, -1))
        for (lua_Integer i = 1; i <= luaL_len(L, -1); i++) {
            lua_rawgeti(L, -1, i);
            if (lua_istable(L, -1)) {
                lua_pushliteral(L, "***");
                lua_setfield(L, -2, "key");
            }
            lua_pop(L, 1);
        }
    lua_pop(L, 1);
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    static const char *const ingest_read[] = {"ingest", "read", NULL};
    static const char *const admin[] = {"admin", "read", NULL};
    struct config *c = mem_calloc(1, sizeof *c);
    lua_State *L = luaL_newstate();
    const char *src = path ? path : "(defaults)";
    if (!c || !L) {
        fail(err, errlen, "out of memory");
        goto fail;
    }
    *err = 0;
    luaL_openlibs(L);
    if (path) {
        if (luaL_loadfilex(L, path, "t") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
            fail(err, errlen, "%s", lua_tostring(L, -1));
            goto fail;
        }
        if (!lua_istable(L, -1)) {
            fail(err, errlen, "%s: must return a table, returned %s", path, luaL_typename(L, -1));
            goto fail;
        }
        if (!(c->path = mem_strdup(path))) goto oom;
    } else {
        lua_newtable(L);
    }
    int t = lua_gettop(L);
    env_override(L, t, "DATABASE_URL", "database.url");
    env_override(L, t, "TICKFORGE_LISTEN", "listen");
    env_override(L, t, "TICKFORGE_LOG_LEVEL", "log.level");
    env_override(L, t, "TICKFORGE_LOG_FORMAT", "log.format");
    env_key(L, t, getenv("TICKFORGE_API_KEY") ? "TICKFORGE_API_KEY" : "API_KEY", "env", ingest_read);
    env_key(L, t, "TICKFORGE_ADMIN_KEY", "env-admin", admin);

    if (check_unknown(L, t, src, err, errlen) || read_listen(L, t, c, src, err, errlen)) goto fail;
    for (size_t i = 0; i < sizeof schema / sizeof *schema; i++)
        if (read_field(L, t, &schema[i], c, src, err, errlen)) goto fail;
    if (read_keys(L, t, c, src, err, errlen) ||
        read_strings(L, t, "plugins.enabled", &c->plugins_enabled, &c->nplugins_enabled, src, err, errlen) ||
        read_strings(L, t, "plugins.disabled", &c->plugins_disabled, &c->nplugins_disabled, src, err, errlen) ||
        read_strings(L, t, "lua.path", &c->lua_path, &c->nlua_path, src, err, errlen))
        goto fail;
    if (!c->lua_path) {
        c->lua_path = mem_calloc(2, sizeof *c->lua_path);
        if (!c->lua_path || !(c->lua_path[0] = mem_strdup("lua"))) goto oom;
        c->nlua_path = 1;
    }
    get_path(L, t, "log.level");
    enum log_level lvl = LOG_INFO;
    if (!lua_isnil(L, -1) && (!lua_isstring(L, -1) || log_parse_level(lua_tostring(L, -1), &lvl))) {
        fail(err, errlen, "%s: log.level: must be one of debug, info, warn, error", src);
        goto fail;
    }
    lua_pop(L, 1);
    c->log_level = (int)lvl;
    get_path(L, t, "log.format");
    enum log_format lfmt = LOG_LOGFMT;
    if (!lua_isnil(L, -1) && (!lua_isstring(L, -1) || log_parse_format(lua_tostring(L, -1), &lfmt))) {
        fail(err, errlen, "%s: log.format: must be \"logfmt\" or \"json\"", src);
        goto fail;
    }
    lua_pop(L, 1);
    c->log_format = (int)lfmt;

    mask_keys(L, t);
    if (!(c->json = lua_json_encode_value(L, t, err, errlen))) goto fail;
    lua_close(L);
    return c;
oom:
    fail(err, errlen, "out of memory");
fail:
    if (L) lua_close(L);
    config_free(c);
    return NULL;
}

static void free_strings(char **v, int n)
{
    for (int i = 0; i < n; i++) mem_free(v[i]);
    mem_free(v);
}

void config_free(struct config *c)
{
    if (!c) return;
    for (size_t i = 0; i < sizeof schema / sizeof *schema; i++)
        if (schema[i].type == T_STR) mem_free(*(char **)((char *)c + schema[i].offset));
    for (int i = 0; i < c->nkeys; i++) {
        mem_free(c->keys[i].key);
        mem_free(c->keys[i].name);
    }
    mem_free(c->keys);
    free_strings(c->plugins_enabled, c->nplugins_enabled);
    free_strings(c->plugins_disabled, c->nplugins_disabled);
    free_strings(c->lua_path, c->nlua_path);
    mem_free(c->path);
    mem_free(c->json);
    mem_free(c);
}

/* Compares every byte of both strings' common span plus the length, so the
 * time taken does not reveal how long a matching prefix was. */
static int ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++) d |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
    return d == 0;
}

unsigned config_key_roles(const struct config *c, const char *presented, const char **name)
{
    unsigned roles = 0;
    for (int i = 0; i < c->nkeys; i++)
        if (ct_equal(presented, c->keys[i].key)) {
            roles |= c->keys[i].roles;
            if (name) *name = c->keys[i].name;
        }
    return roles;
}
