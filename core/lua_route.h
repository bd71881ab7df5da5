/* Route registration (tf.route, tf.routes; lua_route.c), apart from the VM
 * (lvm.c) as jobs are (lua_job.c): tf.route's opener creates the registry
 * table, plugins fill it, and lua_route_decl (lua_tf.h) copies it into the
 * generation's C array for the router. */
#ifndef LUA_ROUTE_H
#define LUA_ROUTE_H

#include <lua.h>

/* Pushes route i's handler (i indexes the extracted array) onto L. */
void lua_route_push_handler(lua_State *L, int i);

#endif
