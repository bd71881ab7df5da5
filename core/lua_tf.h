/* The `tf` global: one opener per namespace, each in its own core/lua_X.c.
 * An opener pushes exactly one value (a table of functions, or a function
 * such as tf.route) and lua_tf.c stores it as tf[name]. Add a namespace by
 * writing its opener and adding one line to tf_namespaces[] in lua_tf.c. */
#ifndef LUA_TF_H
#define LUA_TF_H

#include <lua.h>

int luaopen_tf_json(lua_State *L);  /* tf.json   lua_json.c */
int luaopen_tf_log(lua_State *L);   /* tf.log    lua_log.c */
int luaopen_tf_route(lua_State *L); /* tf.route  lua_route.c */
int luaopen_tf_plugins(lua_State *L); /* tf.plugins lvm.c */
int luaopen_tf_routes(lua_State *L); /* tf.routes lua_route.c */
int luaopen_tf_rows(lua_State *L);   /* tf.rows   lua_rows.c */
int luaopen_tf_time(lua_State *L);   /* tf.time   lua_time.c */
int luaopen_tf_file(lua_State *L);   /* tf.file   lua_file.c */
int luaopen_tf_config(lua_State *L); /* tf.config lua_config.c */
int luaopen_tf_db(lua_State *L);      /* tf.db      lua_db.c */
int luaopen_tf_candles(lua_State *L); /* tf.candles lua_candles.c */
int luaopen_tf_ticks(lua_State *L);   /* tf.ticks   lua_candles.c */
int luaopen_tf_series(lua_State *L);  /* tf.series  lua_series.c */
int luaopen_tf_ind(lua_State *L);     /* tf.ind     lua_ind.c */
int luaopen_tf_indicators(lua_State *L); /* tf.indicators lua_ind.c -> lua/tickforge/indicators.lua */

int luaopen_tf_job(lua_State *L);    /* tf.job    lua_job.c */
int luaopen_tf_cache(lua_State *L);  /* tf.cache  lua_cache.c */
int luaopen_tf_metrics(lua_State *L); /* tf.metrics lua_metrics.c */
int luaopen_tf_duration(lua_State *L); /* tf.duration lua_units.c */
int luaopen_tf_size(lua_State *L);     /* tf.size     lua_units.c */

/* What the plugins of a VM declare while they load and its generation keeps
 * as C data (tf.route's routes, tf.job's jobs). lvm.c knows them only through
 * this list, as lua_tf_open knows the namespaces: take copies a loaded VM's
 * declarations into g (0, or -1 when out of memory; what it took by then is
 * g's, for drop), same answers whether they equal what g holds, drop frees
 * g's (nothing taken is fine). take and same may raise on a Lua error: lvm.c
 * runs them protected. */
struct lvm_gen;
struct lua_tf_decl {
    int (*take)(lua_State *L, struct lvm_gen *g);
    int (*same)(lua_State *L, const struct lvm_gen *g);
    void (*drop)(struct lvm_gen *g);
};
extern const struct lua_tf_decl lua_route_decl;        /* lua_route.c */
extern const struct lua_tf_decl lua_job_decl;          /* lua_job.c */
extern const struct lua_tf_decl *const lua_tf_decls[]; /* lua_tf.c; NULL-terminated */

/* Raises a tf error, the convention for a failure of the environment (the
 * README's "Errors" rule): a table { code = code, message = ... } whose
 * tostring is the message. The host answers an uncaught one 503 when code
 * is "unavailable" or "timeout", else 500; tf.db adds sqlstate to its own.
 * fmt as lua_pushfstring. Never returns. */
int lua_tf_raise(lua_State *L, const char *code, const char *fmt, ...);

/* Closes the metatable on top of the stack to getmetatable() (it answers
 * false), so the C metamethods in it stay out of plugins' reach. */
void lua_tf_seal(lua_State *L);
/* Registers metatable `name` in the registry, once, with one metamethod
 * (event: "__gc", "__tostring", ...) and sealed. Leaves the stack as it was. */
void lua_tf_metatable(lua_State *L, const char *name, const char *event, lua_CFunction fn);

/* Creates the tf table with every namespace and sets it as global "tf". */
void lua_tf_open(lua_State *L);

#endif
