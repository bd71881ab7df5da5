/* Plugin routes as coroutines on their worker's Lua VM: converts the request
 * into the handler's table and its return values into the answer, and
 * drives the coroutine across its waits (see the design note in
 * lua_http.c). Called by http.c on libmicrohttpd's worker threads only. */
#ifndef LUA_HTTP_H
#define LUA_HTTP_H

struct http_req;
struct lvm;
struct lvm_host;

/* Hands the VM that validated the first generation to the first worker
 * that needs one (it would otherwise be built again). Takes vm. */
void lua_http_init(struct lvm_host *host, struct lvm *vm);
/* Runs r's plugin route (body complete): answers it, or suspends it while
 * it waits. MHD_YES/MHD_NO. */
int lua_http_run(struct http_req *r);
/* The access handler was called again for a suspended request (r->run). */
int lua_http_resume(struct http_req *r);
/* The request is over (answered, or its connection closed): frees its task. */
void lua_http_free(struct http_req *r);
/* After the daemon stopped: frees every worker's VMs. */
void lua_http_shutdown(void);

#endif
