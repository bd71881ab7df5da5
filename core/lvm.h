/* Lua VM lifecycle: the sandbox, the counting allocator, the per-call time
 * limit, plugin loading and generations (config + plugins) for hot reload.
 * A VM belongs to one thread for its whole life and is never shared. */
#ifndef LVM_H
#define LVM_H

#include <lua.h>
#include <stddef.h>

struct config;
struct db_pool;

/* Process-wide services a VM may reach, owned by main and outliving every VM.
 * Bindings find it with lvm_host(L); never through C globals. */
struct lvm_host {
    struct db_pool *db; /* NULL when no database is configured */
};

enum lvm_mode {
    LVM_PLUGIN, /* sandboxed: serve, check, reload */
    LVM_SCRIPT  /* full standard library + tf: `tickforge run` (quants, busted) */
};

/* What a plugin registered with tf.route, as the HTTP router needs it
 * before any body is read. */
struct lvm_route {
    char method[8];
    char *path;      /* "/items/{id}" */
    unsigned roles;  /* ROLE_* a key needs; 0 = open */
    size_t max_body; /* bytes */
};

/* A generation: one config and the plugins it names, validated together.
 * Reference counted: every VM built from it holds a reference. */
struct lvm_gen {
    long id;
    struct config *cfg;
    struct lvm_route *routes;
    int nroutes;
};

struct lvm_host *lvm_host(lua_State *L);
struct lvm_gen *lvm_gen_of(lua_State *L); /* NULL in LVM_SCRIPT mode without plugins */
const struct config *lvm_config(lua_State *L);

#endif
