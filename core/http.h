/* The HTTP server: libmicrohttpd in thread-pool mode with epoll (http.workers
 * threads) and suspend/resume. This file only speaks HTTP: routing, auth,
 * bodies, connection limits and deadlines. Plugin routes run as coroutines
 * on their worker's Lua VM (lua_http.c); the built-in routes are admin.c;
 * generations and reload are gen.c. Nothing here blocks a worker on I/O. */
#ifndef HTTP_H
#define HTTP_H

#include <stdatomic.h>
#include <stddef.h>

struct lvm_host;
struct lvm_gen;
struct gen_ctl;
struct http_server;
struct MHD_Connection;

/* Publishes the first generation (gen_open), then starts listening on its
 * config's address. config_path is kept for reloads (NULL: built-in
 * defaults). NULL with a message in err on failure. */
struct http_server *http_start(const char *config_path, struct lvm_host *host, char *err, size_t errlen);
struct gen_ctl *http_gen(struct http_server *s);

/* Stops accepting, waits up to grace_ms for requests in flight, stops. */
void http_stop(struct http_server *s, int grace_ms);

/* ---- for the modules that answer requests (lua_http.c, admin.c) ---- */

#define HTTP_MAX_PARAMS 8

/* One request, from its first callback to its completion; owned by http.c. */
struct http_req {
    struct http_server *s;
    struct MHD_Connection *c;
    struct lvm_gen *gen;  /* the generation it was routed with (a reference) */
    int route;            /* index in gen->routes, or an ADMIN_* id (< -1) */
    const char *key_name; /* the matched key's name (owned by gen->cfg), or NULL */
    const char *method, *url; /* MHD's, valid for the whole request */
    char rid[72];
    char *body;
    size_t len, cap, max; /* body bytes, buffer size, route limit */
    int responded;        /* the status already queued, or 0 */
    int too_big;          /* a chunked body outgrew max; discarding the rest */
    long long t0;         /* CLOCK_MONOTONIC ns at the first callback */
    int nparams;          /* the route's {name} segments: names in the pattern, values in url */
    const char *pname[HTTP_MAX_PARAMS], *pval[HTTP_MAX_PARAMS];
    size_t pnlen[HTTP_MAX_PARAMS], pvlen[HTTP_MAX_PARAMS];
    void *run;            /* the handler's state while it runs (lua_http.c), or NULL */
    struct conn *conn;    /* http.c's record of its connection, or NULL */
    /* Set by the module that suspends r: called by http.c, from its reaper
     * thread with no lock held, when r's client hung up while r was
     * suspended (r may have been resumed since). r stays allocated during
     * the call: r->pins > 0, and whoever ends r waits for pins to drop to 0
     * (http_unpinned) before freeing what abandon may touch. */
    void (*abandon)(struct http_req *r);
    _Atomic int pins;
};

/* Waits until no reaper call holds r (see abandon). */
void http_unpinned(struct http_req *r);

/* Queues an answer; body is copied unless owned (then MHD frees it with
 * mem_free). MHD_YES/MHD_NO as an access handler returns. */
int http_send(struct http_req *r, int status, const char *ctype, char *body, size_t len, int owned);
/* A JSON error body: {"ok":false,"error":msg,"request_id":rid}. */
int http_send_error(struct http_req *r, int status, const char *msg);

/* Suspends the request's connection until http_resume; the access handler
 * is then called again and finds r->run. Call from the access handler only. */
void http_suspend(struct http_req *r);
void http_resume(struct http_req *r); /* any thread */

/* What admin.c reports. */
struct lvm_host *http_host(struct http_server *s);
long http_started(struct http_server *s);
int http_inflight(struct http_server *s);

#endif
