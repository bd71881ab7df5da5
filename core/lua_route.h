/* Route registration (tf.route, tf.routes; lua_route.c), apart from the VM
 * (lvm.c) as jobs are (lua_job.c): lvm.c creates the registry table with
 * lua_route_init, plugins fill it, and lvm.c copies it into the
 * generation's C array with lua_route_extract. */
#ifndef LUA_ROUTE_H
#define LUA_ROUTE_H

#include <lua.h>

struct lvm_route;

/* The empty route table of a new VM (under its setup's protection). */
void lua_route_init(lua_State *L);
/* The registered routes as a C array (mem_*) in *out, *nout; for the
 * router. Raises on a Lua error (run it protected); -1 when out of memory.
 * *out is set at once, so a caller frees it (lua_route_free) either way. */
int lua_route_extract(lua_State *L, struct lvm_route **out, int *nout);
void lua_route_free(struct lvm_route *routes, int n);
/* Pushes route i's handler (i indexes the extracted array) onto L. */
void lua_route_push_handler(lua_State *L, int i);

#endif
