/* The HTTP server. libmicrohttpd gives every connection its own thread and
 * calls access_handler there: the first call of a request matches the route
 * against the current generation, checks the key and the declared body size
 * (so 401/404/405/413 never read a body); upload calls append to a bounded
 * buffer; the last call checks a Lua VM of the request's generation out of
 * a pool of http.threads, runs the handler on it and answers. A handler may
 * block (on the database, or on other requests sharing its statement)
 * without holding up any other connection; at most http.threads handlers
 * run at once. A VM of an older generation is rebuilt for the current one
 * when it is next checked out, so a request always runs on the code it was
 * routed with. */
#include "http.h"

#include "config.h"
#include "db.h"
#include "log.h"
#include "lua_json.h"
#include "lvm.h"
#include "mem.h"
#include "metrics.h"
#include "sched.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARAMS 8
#define BUILTIN_HEALTH (-2)
#define BUILTIN_METRICS (-3)
#define BUILTIN_RELOAD (-4)
#define BUILTIN_STATUS (-5)
#define BUILTIN_JOBS (-6)
#define BUILTIN_JOB_RUN (-7)

/* A Lua VM for handlers, used by one request at a time. */
struct worker {
    struct lvm *vm;
    struct worker *next;      /* all workers */
    struct worker *next_free; /* idle ones */
};

struct http_server {
    struct MHD_Daemon *d;
    char *config_path;
    struct lvm_host *host;
    pthread_mutex_t reload_lock; /* one reload at a time; guards the fields below */
    long last_reload_at;
    int last_reload_ok;
    char last_reload_error[4096];
    char last_reload_trigger[32];
    unsigned long long watch_sig;     /* the files as the current generation saw them */
    unsigned long long watch_pending; /* as the last poll saw them */
    int watch_interval_ms;
    pthread_mutex_t workers_lock; /* guards the four below */
    pthread_cond_t workers_cv;    /* a worker went idle */
    struct worker *workers, *idle;
    int nworkers, max_workers;
    atomic_int inflight;
    time_t started;
    atomic_llong health_checked_ns; /* the DB is pinged at most once a second */
    atomic_int health_db_ok;
};

struct req {
    struct http_server *s;
    struct lvm_gen *gen; /* the generation the request was routed with */
    int route;           /* index in gen->routes, or BUILTIN_* */
    const char *key_name; /* the matched key's name (owned by gen->cfg), or NULL */
    char rid[72];
    char *body;
    size_t len, cap, max; /* body bytes, buffer size, route limit */
    int responded;        /* the status already queued, or 0 */
    int too_big;          /* a chunked body outgrew max; discarding the rest */
    long long t0;
};

static atomic_ullong rid_counter;
static uint64_t rid_seed;

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* ---- responses ---- */

static enum MHD_Result send_body(struct MHD_Connection *c, struct req *r, int status,
                                 const char *ctype, char *body, size_t len, int owned)
{
    struct MHD_Response *resp =
        owned ? MHD_create_response_from_buffer_with_free_callback(len, body, mem_free)
              : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        if (owned) mem_free(body);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    if (r) MHD_add_response_header(resp, "X-Request-Id", r->rid);
    if (status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (r) r->responded = status;
    return ok;
}

/* A JSON error body: {"ok":false,"error":msg,"request_id":rid}. */
static enum MHD_Result send_error(struct MHD_Connection *c, struct req *r, int status, const char *msg)
{
    char q[1200], out[1400];
    size_t j = 0;
    for (const char *p = msg; *p && j < sizeof q - 8; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') q[j++] = '\\', q[j++] = (char)ch;
        else if (ch == '\n') q[j++] = '\\', q[j++] = 'n';
        else if (ch == '\t') q[j++] = '\\', q[j++] = 't';
        else if (ch >= 0x20) q[j++] = (char)ch;
    }
    q[j] = 0;
    int n = snprintf(out, sizeof out, "{\"ok\":false,\"error\":\"%s\",\"request_id\":\"%s\"}", q,
                     r ? r->rid : "");
    return send_body(c, r, status, "application/json", out, (size_t)n, 0);
}

/* ---- workers and generations ---- */

static void worker_checkin(struct http_server *s, struct worker *w)
{
    pthread_mutex_lock(&s->workers_lock);
    w->next_free = s->idle;
    s->idle = w;
    pthread_cond_signal(&s->workers_cv);
    pthread_mutex_unlock(&s->workers_lock);
}

/* Checks out a worker whose VM runs generation g: an idle one of g if
 * any, else an idle one rebuilt for g, else a new one while fewer than
 * http.threads exist; otherwise waits up to wait_ms for one. NULL with err
 * when none came in time (*busy set) or no VM can be built for g. */
static struct worker *worker_checkout(struct http_server *s, struct lvm_gen *g, int wait_ms, int *busy,
                                      char *err, size_t errlen)
{
    struct worker *w = NULL;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    *busy = 0;
    pthread_mutex_lock(&s->workers_lock);
    for (;;) {
        struct worker **best = NULL;
        for (struct worker **q = &s->idle; *q; q = &(*q)->next_free) {
            if (!best) best = q;
            if ((*q)->vm && lvm_gen((*q)->vm) == g) {
                best = q;
                break;
            }
        }
        if (best) {
            w = *best;
            *best = w->next_free;
            break;
        }
        if (s->nworkers < s->max_workers) {
            w = mem_calloc(1, sizeof *w);
            if (w) {
                w->next = s->workers;
                s->workers = w;
                s->nworkers++;
            }
            break;
        }
        if (pthread_cond_timedwait(&s->workers_cv, &s->workers_lock, &until) == ETIMEDOUT) {
            *busy = 1;
            break;
        }
    }
    pthread_mutex_unlock(&s->workers_lock);
    if (!w) {
        snprintf(err, errlen, *busy ? "busy" : "out of memory");
        return NULL;
    }
    if (!w->vm || lvm_gen(w->vm) != g) {
        struct lvm *vm = lvm_new(LVM_PLUGIN, g, s->host, err, errlen);
        if (!vm) {
            char q[1024];
            log_error("could not build a Lua VM for the routed generation", "gen=%ld error=%s", g->id,
                      log_quote(q, sizeof q, err));
            worker_checkin(s, w);
            return NULL;
        }
        lvm_free(w->vm);
        w->vm = vm;
    }
    return w;
}

static void workers_free(struct http_server *s)
{
    for (struct worker *w = s->workers, *next; w; w = next) {
        next = w->next;
        lvm_free(w->vm);
        mem_free(w);
    }
    s->workers = s->idle = NULL;
}

/* ---- routing ---- */

/* Does path match pattern? Captures {name} segments into params. */
static int match(const char *pattern, const char *path, const char *names[], const char *vals[],
                 size_t nlen[], size_t vlen[], int *np)
{
    *np = 0;
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *close = strchr(pattern, '}');
            const char *seg_end = strchr(path, '/');
            if (!seg_end) seg_end = path + strlen(path);
            if (seg_end == path || *np >= MAX_PARAMS) return 0;
            names[*np] = pattern + 1;
            nlen[*np] = (size_t)(close - pattern - 1);
            vals[*np] = path;
            vlen[*np] = (size_t)(seg_end - path);
            (*np)++;
            pattern = close + 1;
            path = seg_end;
        } else if (*pattern++ != *path++) {
            return 0;
        }
    }
    if (*path == '/' && !path[1] && !*pattern) path++; /* /ingest/ == /ingest */
    return !*pattern && !*path;
}

/* The route for method + path: literal matches win over parametrised ones.
 * -1 when no route has the path, -2 when some do but not this method. */
static int route_find(const struct lvm_gen *g, const char *method, const char *path)
{
    const char *n[MAX_PARAMS], *v[MAX_PARAMS];
    size_t nl[MAX_PARAMS], vl[MAX_PARAMS];
    int best = -1, best_np = MAX_PARAMS + 1, path_seen = 0;
    for (int i = 0; i < g->nroutes; i++) {
        int np;
        if (!match(g->routes[i].path, path, n, v, nl, vl, &np)) continue;
        path_seen = 1;
        int m = !strcmp(g->routes[i].method, method) ||
                (!strcmp(method, "HEAD") && !strcmp(g->routes[i].method, "GET"));
        if (m && np < best_np) best = i, best_np = np;
    }
    return best >= 0 ? best : path_seen ? -2 : -1;
}

static int builtin_find(const char *method, const char *path, int *method_ok)
{
    static const struct { const char *path, *method; int id; } b[] = {
        {"/health", "GET", BUILTIN_HEALTH},
        {"/metrics", "GET", BUILTIN_METRICS},
        {"/admin/reload", "POST", BUILTIN_RELOAD},
        {"/admin/status", "GET", BUILTIN_STATUS},
    };
    for (size_t i = 0; i < sizeof b / sizeof *b; i++)
        if (!strcmp(path, b[i].path)) {
            *method_ok = !strcmp(method, b[i].method) || (!strcmp(method, "HEAD") && !strcmp(b[i].method, "GET"));
            return b[i].id;
        }
    if (!strcmp(path, "/admin/jobs")) {
        *method_ok = !strcmp(method, "GET");
        return BUILTIN_JOBS;
    }
    size_t n = strlen(path);
    if (!strncmp(path, "/admin/jobs/", 12) && n > 16 && !strcmp(path + n - 4, "/run") && !memchr(path + 12, '/', n - 16)) {
        *method_ok = !strcmp(method, "POST");
        return BUILTIN_JOB_RUN;
    }
    return 0;
}

/* ---- auth ---- */

/* 0 when allowed; otherwise the status to answer (401/403) with msg set. */
static int auth_check(struct MHD_Connection *c, const struct config *cfg, unsigned need,
                      const char **msg, const char **key_name)
{
    if (!need) return 0;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    if (!key) {
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (a && !strncasecmp(a, "Bearer ", 7)) key = a + 7;
    }
    if (!key || !*key) {
        *msg = "missing API key: send it in the X-API-Key header or as Authorization: Bearer <key>";
        return 401;
    }
    unsigned roles = config_key_roles(cfg, key, key_name);
    if (!roles) {
        *msg = "invalid API key";
        return 401;
    }
    if (!(roles & need)) {
        *msg = need & ROLE_ADMIN ? "this API key lacks the admin role"
               : need & ROLE_INGEST ? "this API key lacks the ingest role"
                                    : "this API key lacks the read role";
        return 403;
    }
    return 0;
}

/* ---- the Lua request and response ---- */

static enum MHD_Result push_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    lua_State *L = cls;
    char lower[256];
    size_t i = 0;
    for (; i < sizeof lower - 1 && key[i]; i++)
        lower[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32 : key[i]);
    lower[i] = 0;
    lua_pushstring(L, value ? value : "");
    lua_setfield(L, -2, lower);
    return MHD_YES;
}

static enum MHD_Result push_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    lua_State *L = cls;
    lua_pushstring(L, value ? value : "");
    lua_setfield(L, -2, key);
    return MHD_YES;
}

/* headers, query and remote_addr are built on first use: most handlers read
 * none of them. The request table carries a serial number; the registry
 * holds the connection and serial of the call in progress, so a request
 * table kept past its call reads empty tables instead of another request's. */
static const char cur_con_key = 0, cur_serial_key = 0, serial_key = 0, req_mt_key = 0;

static int req_index(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *k = lua_tostring(L, 2);
    lua_rawgetp(L, 1, &serial_key);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &cur_serial_key);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &cur_con_key);
    struct MHD_Connection *c = lua_rawequal(L, -3, -2) ? lua_touserdata(L, -1) : NULL;
    lua_pop(L, 3);
    if (!k) return 0;
    if (!strcmp(k, "headers") || !strcmp(k, "query")) {
        lua_newtable(L);
        if (c) MHD_get_connection_values(c, k[0] == 'h' ? MHD_HEADER_KIND : MHD_GET_ARGUMENT_KIND,
                                         k[0] == 'h' ? push_header : push_arg, L);
    } else if (!strcmp(k, "remote_addr")) {
        const union MHD_ConnectionInfo *ci = c ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
        char ip[INET6_ADDRSTRLEN] = "";
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, ip, sizeof ip);
        else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, ip, sizeof ip);
        lua_pushstring(L, ip);
    } else {
        return 0;
    }
    if (c) { /* cache it for the rest of the call */
        lua_pushvalue(L, 2);
        lua_pushvalue(L, -2);
        lua_rawset(L, 1);
    }
    return 1;
}

/* Pushes the request table the handler receives and makes it current. */
static void push_request(lua_State *L, struct MHD_Connection *c, struct req *r, const char *method,
                         const char *url)
{
    static _Atomic lua_Integer serial;
    const struct lvm_route *rt = &r->gen->routes[r->route];
    const char *n[MAX_PARAMS], *v[MAX_PARAMS];
    size_t nl[MAX_PARAMS], vl[MAX_PARAMS];
    int np = 0;
    match(rt->path, url, n, v, nl, vl, &np);
    lua_Integer id = ++serial;
    lua_pushinteger(L, id);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cur_serial_key);
    lua_pushlightuserdata(L, c);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cur_con_key);

    lua_createtable(L, 0, 10);
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, url);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, rt->path);
    lua_setfield(L, -2, "route");
    lua_pushstring(L, r->rid);
    lua_setfield(L, -2, "request_id");
    lua_createtable(L, 0, np);
    for (int i = 0; i < np; i++) {
        lua_pushlstring(L, n[i], nl[i]);
        lua_pushlstring(L, v[i], vl[i]);
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "params");
    lua_pushlstring(L, r->body ? r->body : "", r->len);
    lua_setfield(L, -2, "body");
    if (r->key_name) {
        lua_pushstring(L, r->key_name);
        lua_setfield(L, -2, "key_name");
    }
    lua_pushinteger(L, id);
    lua_rawsetp(L, -2, &serial_key);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &req_mt_key) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, req_index);
        lua_setfield(L, -2, "__index");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &req_mt_key);
    }
    lua_setmetatable(L, -2);
}

static void end_request(lua_State *L)
{
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cur_con_key);
}

#define MAX_RESP_HEADERS 32

/* A handler call's inputs and, once it returned, its answer in C form.
 * Everything is filled inside the protected call (call_route), so running
 * out of Lua memory anywhere is a Lua error, never a panic. */
struct call {
    struct lvm *vm;
    struct MHD_Connection *c;
    struct req *r;
    const char *method, *url;
    int status;
    char *body; /* mem_*; freed by the caller whatever happens */
    size_t len;
    const char *ctype;
    char *hname[MAX_RESP_HEADERS], *hval[MAX_RESP_HEADERS]; /* mem_* */
    int nh, has_ctype;
    const char *bad; /* the handler broke the return convention */
    char why[256];
};

/* Converts (status, body, headers) at base+1.. into a. */
static void take_answer(lua_State *L, int base, struct call *a)
{
    int sidx = base + 1, bidx = base + 2, hidx = base + 3;
    a->status = 200;
    if (lua_istable(L, sidx) && lua_isnil(L, bidx)) { /* return { ... } means 200 with that body */
        bidx = sidx;
        hidx = base + 2;
    } else if (lua_isinteger(L, sidx)) {
        lua_Integer st = lua_tointeger(L, sidx);
        if (st < 100 || st > 599) {
            a->bad = "handler returned an invalid HTTP status";
            return;
        }
        a->status = (int)st;
    } else if (!lua_isnil(L, sidx)) {
        a->bad = "handler must return status, body[, headers]";
        return;
    }
    if (lua_istable(L, bidx)) {
        if (!(a->body = lua_json_encode(L, bidx, &a->len, a->why, sizeof a->why))) {
            a->bad = a->why;
            return;
        }
        a->ctype = "application/json";
    } else if (lua_type(L, bidx) == LUA_TSTRING) {
        const char *str = lua_tolstring(L, bidx, &a->len);
        if (!(a->body = mem_alloc(a->len + 1))) {
            a->bad = "out of memory";
            return;
        }
        memcpy(a->body, str, a->len);
        a->ctype = "text/plain; charset=utf-8";
    } else if (!lua_isnil(L, bidx)) {
        a->bad = "handler body must be a table, a string or nil";
        return;
    }
    if (!lua_istable(L, hidx)) return;
    lua_pushnil(L);
    while (lua_next(L, hidx) && a->nh < MAX_RESP_HEADERS) {
        if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
            const char *k = lua_tostring(L, -2);
            const char *v = luaL_tolstring(L, -1, NULL);
            if (!strpbrk(k, "\r\n:") && !strpbrk(v, "\r\n")) {
                a->has_ctype |= !strcasecmp(k, "Content-Type");
                a->hname[a->nh] = mem_strdup(k);
                a->hval[a->nh] = mem_strdup(v);
                a->nh++;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

static int call_route(lua_State *L)
{
    struct call *a = lua_touserdata(L, 1);
    int base = lua_gettop(L);
    lvm_push_handler(a->vm, a->r->route);
    push_request(L, a->c, a->r, a->method, a->url);
    lua_call(L, 1, 3);
    take_answer(L, base, a);
    return 0;
}

static void call_free(struct call *a)
{
    mem_free(a->body);
    for (int i = 0; i < a->nh; i++) {
        mem_free(a->hname[i]);
        mem_free(a->hval[i]);
    }
}

static enum MHD_Result send_answer(struct MHD_Connection *c, struct req *r, struct call *a)
{
    struct MHD_Response *resp = a->body ? MHD_create_response_from_buffer_with_free_callback(a->len, a->body, mem_free)
                                        : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    a->body = NULL; /* MHD owns it now */
    for (int i = 0; i < a->nh; i++)
        if (a->hname[i] && a->hval[i]) MHD_add_response_header(resp, a->hname[i], a->hval[i]);
    if (a->ctype && !a->has_ctype) MHD_add_response_header(resp, "Content-Type", a->ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)a->status, resp);
    MHD_destroy_response(resp);
    r->responded = a->status;
    return ok;
}

static enum MHD_Result run_on_vm(struct MHD_Connection *c, struct req *r, struct lvm *vm,
                                 const char *method, const char *url)
{
    lua_State *L = lvm_state(vm);
    const struct config *cfg = r->gen->cfg;
    char err[4096];
    struct call a = {.vm = vm, .c = c, .r = r, .method = method, .url = url};
    lua_pushcfunction(L, call_route);
    lua_pushlightuserdata(L, &a);
    enum lvm_status st = lvm_call(vm, 1, 0, cfg->lua_handler_timeout_ms, err, sizeof err);
    end_request(L);
    enum MHD_Result ok;
    if (st == LVM_OK && !a.bad) {
        ok = send_answer(c, r, &a);
        call_free(&a);
        return ok;
    }
    call_free(&a);
    if (st == LVM_OK) return send_error(c, r, 500, a.bad);
    char q[2048];
    const char *route = r->gen->routes[r->route].path;
    log_error("handler failed", "rid=%s route=%s kind=%s error=%s", r->rid, route,
              st == LVM_TIMEOUT ? "timeout" : st == LVM_NOMEM ? "memory" : "error",
              log_quote(q, sizeof q, err));
    metrics_add("tf_lua_handler_errors_total", st == LVM_TIMEOUT ? "kind=\"timeout\"" : st == LVM_NOMEM ? "kind=\"memory\"" : "kind=\"error\"", 1,
                "Plugin handler calls that failed, by kind");
    if (st == LVM_TIMEOUT) {
        snprintf(err, sizeof err, "handler exceeded its time limit of %d ms", cfg->lua_handler_timeout_ms);
        return send_error(c, r, 503, err);
    }
    if (st == LVM_NOMEM) {
        snprintf(err, sizeof err, "handler exceeded the Lua memory limit of %zu bytes", cfg->lua_memory_limit);
        return send_error(c, r, 500, err);
    }
    const char *code = lvm_error_code(vm); /* an uncaught tf.db error: the database, not the plugin */
    if (!strcmp(code, "unavailable")) return send_error(c, r, 503, "database unavailable; retry later");
    if (!strcmp(code, "timeout")) return send_error(c, r, 503, "database statement timed out; retry later");
    return send_error(c, r, 500, "internal error in the route handler (see the server log for this request id)");
}

static enum MHD_Result run_handler(struct MHD_Connection *c, struct req *r, const char *method, const char *url)
{
    char err[1024];
    int busy;
    const struct config *cfg = r->gen->cfg;
    struct worker *w = worker_checkout(r->s, r->gen, cfg->lua_handler_timeout_ms, &busy, err, sizeof err);
    if (!w && busy) {
        metrics_add("tf_http_busy_total", NULL, 1, "Requests answered 503 because every handler VM stayed busy");
        snprintf(err, sizeof err, "all %d handler VMs stayed busy for %d ms; retry later", cfg->http_threads,
                 cfg->lua_handler_timeout_ms);
        return send_error(c, r, 503, err);
    }
    if (!w) return send_error(c, r, 503, "no Lua VM could be built for this request; retry later");
    enum MHD_Result ok = run_on_vm(c, r, w->vm, method, url);
    worker_checkin(r->s, w);
    return ok;
}

/* ---- builtin routes ---- */

static int db_ok(struct http_server *s)
{
    if (!s->host->db) return 1;
    long long now = now_ns(), last = atomic_load(&s->health_checked_ns);
    if (now - last > 1000000000LL && atomic_compare_exchange_strong(&s->health_checked_ns, &last, now)) {
        char err[256];
        atomic_store(&s->health_db_ok, db_health(s->host->db, err, sizeof err) == 0);
    }
    return atomic_load(&s->health_db_ok);
}

static enum MHD_Result send_health(struct MHD_Connection *c, struct req *r)
{
    char out[512];
    int ok = db_ok(r->s);
    int n = snprintf(out, sizeof out,
                     "{\"status\":\"%s\",\"version\":\"%s\",\"generation\":%ld,\"uptime_s\":%ld,"
                     "\"database\":\"%s\"}",
                     ok ? "healthy" : "unhealthy", TF_VERSION, lvm_gen_current_id(),
                     (long)(time(NULL) - r->s->started),
                     !r->s->host->db ? "not configured" : ok ? "ok" : "unavailable");
    return send_body(c, r, ok ? 200 : 503, "application/json", out, (size_t)n, 0);
}

static enum MHD_Result send_metrics(struct MHD_Connection *c, struct req *r)
{
    struct http_server *s = r->s;
    metrics_set("tf_memory_c_bytes", NULL, (double)mem_in_use(), "Bytes allocated by the C core");
    metrics_set("tf_generation", NULL, (double)lvm_gen_current_id(), "The published config+plugins generation");
    metrics_set("tf_http_inflight", NULL, atomic_load(&s->inflight), "Requests being served");
    metrics_set("tf_uptime_seconds", NULL, (double)(time(NULL) - s->started), "Seconds since start");
    if (s->host->db) db_metrics(s->host->db);
    size_t len;
    char *text = metrics_render(&len);
    if (!text) return send_error(c, r, 500, "out of memory");
    return send_body(c, r, 200, "text/plain; version=0.0.4", text, len, 1);
}

/* Appends s to a JSON string literal in out. */
static size_t json_str(char *out, size_t cap, const char *s)
{
    size_t j = 0;
    if (cap < 3) return 0;
    out[j++] = '"';
    for (; *s && j < cap - 3; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') out[j++] = '\\', out[j++] = (char)ch;
        else if (ch == '\n') out[j++] = '\\', out[j++] = 'n';
        else if (ch >= 0x20) out[j++] = (char)ch;
    }
    out[j++] = '"';
    out[j] = 0;
    return j;
}

static enum MHD_Result send_reload(struct MHD_Connection *c, struct req *r)
{
    char err[4096];
    int ok = http_reload(r->s, "http", err, sizeof err) == 0;
    cJSON *o = cJSON_CreateObject(); /* any error length: no fixed answer buffer */
    cJSON_AddBoolToObject(o, "ok", ok);
    cJSON_AddNumberToObject(o, "generation", (double)lvm_gen_current_id());
    if (!ok) cJSON_AddStringToObject(o, "error", err), cJSON_AddStringToObject(o, "request_id", r->rid);
    char *out = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!out) return send_error(c, r, 500, "out of memory");
    enum MHD_Result rc = send_body(c, r, ok ? 200 : 422, "application/json", out, strlen(out), 0);
    cJSON_free(out);
    return rc;
}

static enum MHD_Result send_status(struct MHD_Connection *c, struct req *r)
{
    struct http_server *s = r->s;
    size_t cap = 65536, n = 0;
    char *out = mem_alloc(cap);
    if (!out) return send_error(c, r, 500, "out of memory");
    struct lvm_gen *g = lvm_gen_current();
    pthread_mutex_lock(&s->reload_lock);
    n += (size_t)snprintf(out + n, cap - n,
                          "{\"ok\":true,\"version\":\"%s\",\"generation\":%ld,\"started\":%ld,\"uptime_s\":%ld,"
                          "\"inflight\":%d,\"memory_c_bytes\":%zu,\"config\":",
                          TF_VERSION, g ? g->id : 0, (long)s->started, (long)(time(NULL) - s->started),
                          atomic_load(&s->inflight), mem_in_use());
    n += json_str(out + n, cap - n - 64, s->config_path ? s->config_path : "(defaults)");
    n += (size_t)snprintf(out + n, cap - n, ",\"last_reload\":{\"ok\":%s,\"at\":%ld,\"trigger\":",
                          s->last_reload_ok ? "true" : "false", s->last_reload_at);
    n += json_str(out + n, cap - n - 64, s->last_reload_trigger);
    n += (size_t)snprintf(out + n, cap - n, ",\"error\":");
    if (s->last_reload_ok) n += (size_t)snprintf(out + n, cap - n, "null");
    else n += json_str(out + n, cap - n - 64, s->last_reload_error);
    pthread_mutex_unlock(&s->reload_lock);
    n += (size_t)snprintf(out + n, cap - n, "},\"routes\":[");
    for (int i = 0; g && i < g->nroutes && n < cap - 1024; i++) {
        const struct lvm_route *rt = &g->routes[i];
        n += (size_t)snprintf(out + n, cap - n, "%s{\"method\":\"%s\",\"path\":", i ? "," : "", rt->method);
        n += json_str(out + n, cap - n - 256, rt->path);
        n += (size_t)snprintf(out + n, cap - n, ",\"auth\":\"%s\",\"max_body\":%zu}",
                              rt->roles & ROLE_ADMIN ? "admin" : rt->roles & ROLE_INGEST ? "ingest"
                              : rt->roles & ROLE_READ ? "read" : "none", rt->max_body);
    }
    n += (size_t)snprintf(out + n, cap - n, "],\"warnings\":["); /* the generation's static-check warnings */
    for (const char *w = g ? g->warnings : NULL; w && *w && n < cap - 1024;) {
        const char *nl = strchr(w, '\n');
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)(nl ? nl - w : (long)strlen(w)), w);
        n += (size_t)snprintf(out + n, cap - n, "%s", w == g->warnings ? "" : ",");
        n += json_str(out + n, cap - n - 256, line);
        w = nl ? nl + 1 : w + strlen(w);
    }
    n += (size_t)snprintf(out + n, cap - n, "]}");
    if (g) lvm_gen_unref(g);
    return send_body(c, r, 200, "application/json", out, n, 1);
}

/* GET /admin/jobs and POST /admin/jobs/{name}/run. */
static enum MHD_Result send_jobs(struct MHD_Connection *c, struct req *r, const char *url)
{
    struct sched *sc = r->s->host->sched;
    if (!sc) return send_error(c, r, 503, "the scheduler is not running in this instance (scheduler.enabled)");
    if (r->route == BUILTIN_JOBS) {
        size_t len;
        char *out = sched_status_json(sc, &len);
        return out ? send_body(c, r, 200, "application/json", out, len, 1) : send_error(c, r, 500, "out of memory");
    }
    char name[80];
    snprintf(name, sizeof name, "%.*s", (int)(strlen(url) - 16), url + 12);
    char *record = NULL, why[256];
    int rc = sched_run_request(sc, name, r->body, r->len, &record, why, sizeof why);
    if (rc == -3) return send_error(c, r, 400, why);
    if (rc == -1) return send_error(c, r, 404, "no job with that name");
    if (rc != 0) return send_error(c, r, 503, "the scheduler stopped before the run finished");
    return send_body(c, r, 200, "application/json", record, strlen(record), 1);
}

static enum MHD_Result run_builtin(struct MHD_Connection *c, struct req *r, const char *url)
{
    switch (r->route) {
    case BUILTIN_HEALTH: return send_health(c, r);
    case BUILTIN_METRICS: return send_metrics(c, r);
    case BUILTIN_RELOAD: return send_reload(c, r);
    case BUILTIN_JOBS:
    case BUILTIN_JOB_RUN: return send_jobs(c, r, url);
    default: return send_status(c, r);
    }
}

/* ---- the MHD callbacks ---- */

static void make_rid(struct MHD_Connection *c, char *out, size_t cap)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (h) {
        size_t n = strlen(h);
        int ok = n > 0 && n < cap && n <= 64;
        for (size_t i = 0; ok && i < n; i++) ok = h[i] > 0x20 && h[i] < 0x7f && h[i] != '"' && h[i] != '\\';
        if (ok) {
            memcpy(out, h, n + 1);
            return;
        }
    }
    uint64_t x = rid_seed ^ (atomic_fetch_add(&rid_counter, 1) * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    snprintf(out, cap, "%016llx", (unsigned long long)x);
}

/* First call of a request: everything decided before any body is read. */
static enum MHD_Result begin(struct http_server *s, struct MHD_Connection *c, const char *url,
                             const char *method, void **con_cls)
{
    struct req *r = mem_calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    *con_cls = r;
    r->s = s;
    r->t0 = now_ns();
    r->route = -1;
    make_rid(c, r->rid, sizeof r->rid);
    atomic_fetch_add(&s->inflight, 1);

    int method_ok = 0, b = builtin_find(method, url, &method_ok);
    const char *msg = NULL;
    if (b) {
        struct lvm_gen *g = lvm_gen_current();
        r->route = b;
        r->gen = g; /* for auth and limits; builtins need no VM */
        if (!method_ok) return send_error(c, r, 405, "method not allowed on this path");
        unsigned need = b == BUILTIN_HEALTH ? 0 : b == BUILTIN_METRICS ? (g->cfg->metrics_open ? 0 : ROLE_READ) : ROLE_ADMIN;
        int st = auth_check(c, g->cfg, need, &msg, &r->key_name);
        if (st) return send_error(c, r, st, msg);
        r->max = b == BUILTIN_JOB_RUN ? SCHED_RUN_MAX_BODY : 0; /* run options, e.g. {"reset_watermark": true} */
        return MHD_YES;
    }

    r->gen = lvm_gen_current();
    if (!r->gen) return send_error(c, r, 503, "no plugin generation is loaded");
    int i = route_find(r->gen, method, url);
    if (i == -1) return send_error(c, r, 404, "no route for this path");
    if (i == -2) return send_error(c, r, 405, "method not allowed on this path");
    r->route = i;
    const struct lvm_route *rt = &r->gen->routes[i];
    int st = auth_check(c, r->gen->cfg, rt->roles, &msg, &r->key_name);
    if (st) return send_error(c, r, st, msg);
    r->max = rt->max_body;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        unsigned long long n = strtoull(cl, NULL, 10);
        if (n > r->max) {
            char m[160];
            snprintf(m, sizeof m, "request body of %llu bytes exceeds this route's limit of %zu bytes; split it", n, r->max);
            return send_error(c, r, 413, m);
        }
        if (n) {
            r->body = mem_alloc((size_t)n + 1);
            if (!r->body) return send_error(c, r, 503, "out of memory for the request body");
            r->cap = (size_t)n + 1;
        }
    }
    return MHD_YES;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version, const char *upload,
                                      size_t *upload_size, void **con_cls)
{
    struct http_server *s = cls;
    struct req *r = *con_cls;
    if (!r) return begin(s, c, url, method, con_cls);
    if (r->responded) { /* answered early; MHD discards what is left */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        /* A body without Content-Length (chunked) that outgrows the limit is
         * discarded as it arrives: MHD aborts a connection answered mid-upload. */
        if (r->too_big || r->len + n > r->max) {
            r->too_big = 1;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + n + 1) cap *= 2;
            if (cap > r->max + 1) cap = r->max + 1;
            char *nb = mem_realloc(r->body, cap);
            if (!nb) return send_error(c, r, 503, "out of memory for the request body");
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->too_big) {
        char m[160];
        snprintf(m, sizeof m, "request body exceeds this route's limit of %zu bytes; split it", r->max);
        return send_error(c, r, 413, m);
    }
    if (r->body) r->body[r->len] = 0;
    if (r->route < -1) return run_builtin(c, r, url);
    return run_handler(c, r, method, url);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    double secs = (double)(now_ns() - r->t0) / 1e9;
    const char *route = r->route >= 0 ? r->gen->routes[r->route].path
                        : r->route == BUILTIN_HEALTH ? "/health" : r->route == BUILTIN_METRICS ? "/metrics"
                        : r->route == BUILTIN_RELOAD ? "/admin/reload" : r->route == BUILTIN_STATUS ? "/admin/status"
                        : r->route == BUILTIN_JOBS ? "/admin/jobs" : r->route == BUILTIN_JOB_RUN ? "/admin/jobs/{name}/run" : "unmatched";
    int status = r->responded ? r->responded : 0;
    char labels[600];
    snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route, status);
    metrics_add("tf_http_requests_total", labels, 1, "HTTP requests answered, by route and status");
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    metrics_observe("tf_http_request_duration_seconds", labels, secs, "HTTP request latency");
    if (log_enabled(LOG_INFO) || (status >= 500 && log_enabled(LOG_WARN))) {
        log_write(status >= 500 ? LOG_WARN : LOG_INFO, "request", "rid=%s route=%s status=%d bytes_in=%zu ms=%.3f%s",
                  r->rid, route, status, r->len, secs * 1e3,
                  toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    }
    if (r->gen) lvm_gen_unref(r->gen);
    mem_free(r->body);
    mem_free(r);
    atomic_fetch_sub(&s->inflight, 1);
}

/* ---- reload and watch ---- */

/* A cheap signature of everything a generation is built from: names, sizes
 * and mtimes of the config file and of the plugin and lua directories. */
static void sig_mix(unsigned long long *h, const char *s, long long a, long long b)
{
    for (; *s; s++) *h = (*h ^ (unsigned char)*s) * 1099511628211ull;
    *h = (*h ^ (unsigned long long)a) * 1099511628211ull;
    *h = (*h ^ (unsigned long long)b) * 1099511628211ull;
}

static void sig_dir(unsigned long long *h, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) != 0) continue;
        sig_mix(h, p, (long long)st.st_size, (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
        if (S_ISDIR(st.st_mode) && depth < 4) sig_dir(h, p, depth + 1);
    }
    closedir(d);
}

static unsigned long long watch_signature(struct http_server *s)
{
    unsigned long long h = 1469598103934665603ull;
    struct lvm_gen *g = lvm_gen_current();
    struct stat st;
    if (s->config_path && stat(s->config_path, &st) == 0)
        sig_mix(&h, s->config_path, (long long)st.st_size, (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
    if (g) {
        sig_dir(&h, g->cfg->plugins_dir, 0);
        for (int i = 0; i < g->cfg->nlua_path; i++) sig_dir(&h, g->cfg->lua_path[i], 0);
        lvm_gen_unref(g);
    }
    return h;
}

int http_reload(struct http_server *s, const char *trigger, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->reload_lock);
    long long t0 = now_ns();
    struct lvm *vm = lvm_gen_build(s->config_path, s->host, err, errlen);
    s->last_reload_at = (long)time(NULL);
    snprintf(s->last_reload_trigger, sizeof s->last_reload_trigger, "%s", trigger);
    int rc = -1;
    if (vm) {
        struct lvm_gen *g = lvm_gen(vm);
        struct lvm_gen *old = lvm_gen_current();
        if (old && (strcmp(old->cfg->listen_host, g->cfg->listen_host) || old->cfg->listen_port != g->cfg->listen_port ||
                    old->cfg->http_threads != g->cfg->http_threads))
            log_warn("listen address and http.threads take effect at the next restart", NULL);
        if (old) lvm_gen_unref(old);
        lvm_gen_publish(g);
        sched_wake(s->host->sched);
        log_set_level((enum log_level)g->cfg->log_level);
        log_info("reloaded", "gen=%ld trigger=%s routes=%d ms=%.1f", g->id, trigger, g->nroutes, (double)(now_ns() - t0) / 1e6);
        lvm_free(vm);
        s->last_reload_ok = 1;
        s->last_reload_error[0] = 0;
        metrics_add("tf_reloads_total", "result=\"ok\"", 1, "Reloads attempted, by result");
        rc = 0;
    } else {
        char q[2048];
        log_error("reload rejected; the previous generation keeps serving", "trigger=%s error=%s", trigger,
                  log_quote(q, sizeof q, err));
        s->last_reload_ok = 0;
        snprintf(s->last_reload_error, sizeof s->last_reload_error, "%s", err);
        metrics_add("tf_reloads_total", "result=\"error\"", 1, "Reloads attempted, by result");
    }
    s->watch_sig = watch_signature(s);
    pthread_mutex_unlock(&s->reload_lock);
    return rc;
}

void http_watch(struct http_server *s)
{
    struct lvm_gen *g = lvm_gen_current();
    int on = g && g->cfg->reload_watch;
    if (g) {
        s->watch_interval_ms = g->cfg->reload_interval_ms;
        lvm_gen_unref(g);
    }
    if (!on) return;
    unsigned long long sig = watch_signature(s);
    pthread_mutex_lock(&s->reload_lock);
    /* Reload once the files have stopped changing for a whole interval, so
     * a file caught half-written is never loaded; a broken edit is then
     * reported once, not at every poll. */
    int changed = sig != s->watch_sig && sig == s->watch_pending;
    s->watch_pending = sig;
    if (changed) s->watch_sig = sig;
    pthread_mutex_unlock(&s->reload_lock);
    if (changed) {
        char err[4096];
        http_reload(s, "watch", err, sizeof err);
    }
}

int http_watch_interval_ms(struct http_server *s)
{
    return s->watch_interval_ms;
}

/* ---- start and stop ---- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    log_warn(msg, "src=libmicrohttpd");
}

struct http_server *http_start(const char *config_path, struct lvm_host *host, char *err, size_t errlen)
{
    struct http_server *s = mem_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->reload_lock, NULL);
    pthread_mutex_init(&s->workers_lock, NULL);
    pthread_cond_init(&s->workers_cv, NULL);
    s->host = host;
    s->started = time(NULL);
    s->config_path = config_path ? mem_strdup(config_path) : NULL;
    atomic_store(&s->health_db_ok, 1);
    if (getrandom(&rid_seed, sizeof rid_seed, 0) != sizeof rid_seed) rid_seed = (uint64_t)now_ns();

    struct lvm *vm = lvm_gen_build(config_path, host, err, errlen);
    if (!vm) goto fail;
    struct lvm_gen *g = lvm_gen(vm);
    lvm_gen_publish(g);
    g = lvm_gen_current();
    const struct config *cfg = g->cfg;
    log_set_level((enum log_level)cfg->log_level);
    s->max_workers = cfg->http_threads;
    struct worker *w0 = mem_calloc(1, sizeof *w0); /* the VM that loaded it serves first */
    if (w0) {
        w0->vm = vm;
        s->workers = s->idle = w0;
        s->nworkers = 1;
    } else {
        lvm_free(vm);
    }
    s->last_reload_ok = 1;
    snprintf(s->last_reload_trigger, sizeof s->last_reload_trigger, "start");
    s->last_reload_at = (long)s->started;
    s->watch_interval_ms = cfg->reload_interval_ms;
    s->watch_sig = watch_signature(s);

    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->listen_port);
    if (inet_pton(AF_INET, strcmp(cfg->listen_host, "localhost") ? cfg->listen_host : "127.0.0.1", &addr.sin_addr) != 1) {
        snprintf(err, errlen, "listen: '%s' is not an IPv4 address", cfg->listen_host);
        lvm_gen_unref(g);
        goto fail;
    }
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                                MHD_USE_ERROR_LOG | MHD_USE_ITC,
                            (uint16_t)cfg->listen_port, NULL, NULL, access_handler, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_connection_timeout,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                            MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s:%d (in use, or not permitted)", cfg->listen_host, cfg->listen_port);
        lvm_gen_unref(g);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    log_info("listening", "addr=%s:%u threads=%d gen=%ld routes=%d", cfg->listen_host,
             di ? di->port : (unsigned)cfg->listen_port, cfg->http_threads, g->id, g->nroutes);
    lvm_gen_unref(g);
    return s;
fail:
    workers_free(s);
    mem_free(s->config_path);
    mem_free(s);
    return NULL;
}

void http_stop(struct http_server *s, int grace_ms)
{
    if (!s) return;
    MHD_quiesce_daemon(s->d);
    long long until = now_ns() + (long long)grace_ms * 1000000LL;
    while (atomic_load(&s->inflight) > 0 && now_ns() < until) usleep(10000);
    MHD_stop_daemon(s->d);
    workers_free(s);
    mem_free(s->config_path);
    mem_free(s);
}
