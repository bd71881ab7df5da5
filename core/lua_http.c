/* Plugin routes as coroutines (see lua_http.h).
 *
 * Design. libmicrohttpd runs http.workers threads, each polling its own
 * connections with epoll. Each worker thread owns one Lua VM per generation
 * it still needs (struct worker, thread-local): a request runs on the VM of
 * the generation it was routed with; a worker builds the current
 * generation's VM when its first request arrives, and frees an older VM
 * once no request of its generation is suspended on it.
 *
 * A request's handler runs as a task (lvm_task: a coroutine with its own
 * wall-time deadline) on that VM. A binding that waits (tf.db, tf.candles,
 * tf.ticks, a pool checkout) starts the wait asynchronously with a done
 * callback and yields with a continuation (lua_yieldk/lua_callk/lua_pcallk,
 * so pcall, tf.db.tx and metamethods work across it). The driver (step)
 * then suspends the MHD connection; the callback, on the pool's event
 * thread, resumes it (MHD_resume_connection), and libmicrohttpd calls the
 * access handler again on the same worker, which resumes the coroutine. A
 * wake that comes before the suspend is kept (woken) and the coroutine is
 * resumed at once, so no wake is lost. The deadline is enforced by the
 * count hook while it runs and by the waits themselves (db_op.deadline_ms:
 * a checkout fails, a statement is cancelled); a task resumed past it is
 * killed at its next instruction (uncatchable). The answer is converted
 * inside the coroutine (body_k), so a memory error there is a Lua error.
 * start_run/finish_run are the one place a request's run starts and ends. */
#include "lua_http.h"

#include "acct.h"
#include "clock.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "lua_json.h"
#include "lua_route.h"
#include "lua_tf.h"
#include "lvm.h"
#include "mem.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <lauxlib.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RESP_HEADERS 32

/* A VM of one generation on one worker. */
struct wvm {
    struct lvm *vm;
    int tasks; /* requests running or suspended on it */
    struct wvm *next;
};

struct worker {
    struct wvm *vms; /* newest first */
    int orphans;     /* tasks left waiting when the daemon stopped: keep the VMs */
    struct worker *next_all;
};

static _Thread_local struct worker *self;
static pthread_mutex_t workers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct worker *all_workers;
static struct lvm *spare_vm; /* the first generation's validating VM, for the first taker */
static struct lvm_host *host;

/* A handler run: the task, and once it returned, its answer in C form. */
struct run {
    struct lvm_task t; /* first: lvm_task_running gives the run */
    struct http_req *r;
    struct worker *wk;
    struct wvm *w;
    lua_Integer serial; /* of its request table */
    pthread_mutex_t mu; /* guards the four below: the suspend/wake handshake */
    pthread_cond_t cv;  /* a wake, for a run finishing without its connection */
    int suspended, woken, orphan;
    int gone; /* its connection closed while it waited: run it to its end, answer nobody */
    /* the answer */
    int status;
    char *body; /* mem_* */
    size_t len;
    const char *ctype;
    char *hname[MAX_RESP_HEADERS], *hval[MAX_RESP_HEADERS]; /* mem_* */
    int nh, has_ctype;
    const char *bad; /* the handler broke the return convention */
    char why[256];
    struct stream *stream; /* req:stream was called: the answer is streamed */
};

/* A streamed answer (req:stream). The handler writes into a bounded queue;
 * libmicrohttpd's content reader (stream_read) takes from it as the socket
 * accepts more, with chunked transfer encoding. From the moment the answer
 * is queued the coroutine is driven by the content reader instead of the
 * access handler: a writer that filled the queue yields until it is
 * drained (backpressure), a wait suspends the connection as before, and
 * the reader resumes the coroutine on the worker that owns it. Everything
 * here runs on that worker; the run and the response each hold a
 * reference. */
#define STREAM_HIGH (256 * 1024) /* queued bytes at which a writer waits */

struct stream {
    struct run *h; /* NULL once the run ended */
    char *buf;     /* queued bytes: buf[off..len) */
    size_t off, len, cap;
    int refs;
    int queued;  /* the answer's head went to libmicrohttpd */
    int blocked; /* the writer waits for the queue to drain */
    int done;    /* the handler ended; failed: with an error (the answer is cut off) */
    int failed;
};

void lua_http_init(struct lvm_host *h, struct lvm *vm)
{
    host = h;
    pthread_mutex_lock(&workers_mu);
    spare_vm = vm;
    pthread_mutex_unlock(&workers_mu);
}

/* ---- workers and their VMs ---- */

static struct worker *worker_self(void)
{
    if (self) return self;
    struct worker *w = mem_calloc(1, sizeof *w);
    if (!w) return NULL;
    pthread_mutex_lock(&workers_mu);
    w->next_all = all_workers;
    all_workers = w;
    pthread_mutex_unlock(&workers_mu);
    return self = w;
}

/* Frees the VMs no request needs: older than the current generation and
 * with nothing suspended on them. */
static void worker_prune(struct worker *w)
{
    long cur = lvm_gen_current_id();
    for (struct wvm **q = &w->vms; *q;) {
        struct wvm *v = *q;
        if (v->tasks == 0 && lvm_gen(v->vm)->id != cur) {
            *q = v->next;
            lvm_free(v->vm);
            mem_free(v);
        } else {
            q = &v->next;
        }
    }
}

/* The worker's VM of generation g, built when missing. NULL with err. */
static struct wvm *worker_vm(struct worker *w, struct lvm_gen *g, char *err, size_t errlen)
{
    for (struct wvm *v = w->vms; v; v = v->next)
        if (lvm_gen(v->vm) == g) return v;
    struct wvm *v = mem_calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&workers_mu);
    if (spare_vm && lvm_gen(spare_vm) == g) v->vm = spare_vm, spare_vm = NULL;
    pthread_mutex_unlock(&workers_mu);
    if (!v->vm && !(v->vm = lvm_new(LVM_PLUGIN, g, host, err, errlen))) {
        char q[1024];
        log_error("could not build a Lua VM for the routed generation", "gen=%ld error=%s", g->id,
                  log_quote(q, sizeof q, err));
        mem_free(v);
        return NULL;
    }
    v->next = w->vms;
    w->vms = v;
    worker_prune(w);
    return v;
}

void lua_http_shutdown(void)
{
    pthread_mutex_lock(&workers_mu);
    for (struct worker *w = all_workers, *next; w; w = next) {
        next = w->next_all;
        if (w->orphans) continue; /* their waits may still end: leave them be at exit */
        for (struct wvm *v = w->vms, *vn; v; v = vn) {
            vn = v->next;
            lvm_free(v->vm);
            mem_free(v);
        }
        mem_free(w);
    }
    all_workers = NULL;
    lvm_free(spare_vm);
    spare_vm = NULL;
    pthread_mutex_unlock(&workers_mu);
}

/* ---- the request table ---- */

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
 * none of them. The request table carries its run's serial number; it reads
 * the connection only while that run is the task being resumed, so a
 * request table kept past its call reads empty tables instead of another
 * request's. */
static const char serial_key = 0, req_mt_key = 0;
static int req_stream(lua_State *L);

static int req_index(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE); /* reachable from plugins: getmetatable is false, but be strict */
    const char *k = lua_tostring(L, 2);
    struct run *h = (struct run *)lvm_task_running(L);
    lua_rawgetp(L, 1, &serial_key);
    struct MHD_Connection *c = h && lua_tointeger(L, -1) == h->serial ? h->r->c : NULL;
    lua_pop(L, 1);
    if (!k) return 0;
    if (!strcmp(k, "headers") || !strcmp(k, "query")) {
        lua_newtable(L);
        if (c) MHD_get_connection_values(c, k[0] == 'h' ? MHD_HEADER_KIND : MHD_GET_ARGUMENT_KIND,
                                         k[0] == 'h' ? push_header : push_arg, L);
    } else if (!strcmp(k, "stream")) {
        lua_pushcfunction(L, req_stream);
        return 1;
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

/* Pushes the request table the handler receives. */
static void push_request(lua_State *L, struct run *h)
{
    static _Atomic lua_Integer serial;
    struct http_req *r = h->r;
    const struct lvm_route *rt = &r->gen->routes[r->route];
    h->serial = ++serial;
    lua_createtable(L, 0, 10);
    lua_pushstring(L, r->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, r->url);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, rt->path);
    lua_setfield(L, -2, "route");
    lua_pushstring(L, r->rid);
    lua_setfield(L, -2, "request_id");
    lua_createtable(L, 0, r->nparams);
    for (int i = 0; i < r->nparams; i++) {
        lua_pushlstring(L, r->pname[i], r->pnlen[i]);
        lua_pushlstring(L, r->pval[i], r->pvlen[i]);
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "params");
    lua_pushlstring(L, r->body ? r->body : "", r->len);
    lua_setfield(L, -2, "body");
    if (r->key_name) {
        lua_pushstring(L, r->key_name);
        lua_setfield(L, -2, "key_name");
    }
    lua_pushinteger(L, h->serial);
    lua_rawsetp(L, -2, &serial_key);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &req_mt_key) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, req_index);
        lua_setfield(L, -2, "__index");
        lua_tf_seal(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &req_mt_key);
    }
    lua_setmetatable(L, -2);
}

/* ---- the answer ---- */

static void take_headers(lua_State *L, int hidx, struct run *a);

/* Converts (status, body, headers) at base+1.. into h. */
static void take_answer(lua_State *L, int base, struct run *a)
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
    take_headers(L, hidx, a);
}

/* The answer's headers from the table at hidx (anything else: none). */
static void take_headers(lua_State *L, int hidx, struct run *a)
{
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

static int body_k(lua_State *L, int status, lua_KContext ctx)
{
    struct run *h = (struct run *)ctx;
    if (!h->stream) take_answer(L, lua_gettop(L) - 3, h); /* a stream's answer was written */
    return 0;
}

/* The task's function: the handler, called with the request table. */
static int body(lua_State *L)
{
    struct run *h = lua_touserdata(L, 1);
    lua_route_push_handler(L, h->r->route);
    push_request(L, h);
    lua_callk(L, 1, 3, (lua_KContext)h, body_k);
    return body_k(L, LUA_OK, (lua_KContext)h);
}

static int send_answer(struct run *a)
{
    struct http_req *r = a->r;
    struct MHD_Response *resp = a->body ? MHD_create_response_from_buffer_with_free_callback(a->len, a->body, mem_free)
                                        : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    a->body = NULL; /* MHD owns it now */
    for (int i = 0; i < a->nh; i++)
        if (a->hname[i] && a->hval[i]) MHD_add_response_header(resp, a->hname[i], a->hval[i]);
    if (a->ctype && !a->has_ctype) MHD_add_response_header(resp, "Content-Type", a->ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    enum MHD_Result ok = MHD_queue_response(r->c, (unsigned)a->status, resp);
    MHD_destroy_response(resp);
    r->responded = a->status;
    return ok;
}

/* ---- streamed answers ---- */

static const char stream_mt_key = 0;

struct stream_ud {
    lua_Integer serial; /* of the request it streams */
};

static void stream_unref(struct stream *st)
{
    if (--st->refs > 0) return;
    mem_free(st->buf);
    mem_free(st);
}

/* The run whose stream the userdata at idx is, while that run is the task
 * being resumed; raises otherwise. */
static struct run *stream_run(lua_State *L, int idx)
{
    struct stream_ud *u = luaL_checkudata(L, idx, "tf.stream");
    struct run *h = (struct run *)lvm_task_running(L);
    if (!h || h->serial != u->serial || !h->stream) luaL_error(L, "stream:write: the request it answers is over");
    return h;
}

static int write_k(lua_State *L, int status, lua_KContext ctx)
{
    return 0;
}

/* stream:write(text, ...): queues the texts; waits while the client has
 * not taken what is queued (STREAM_HIGH). Every write restarts the
 * handler's time limit: a stream may last longer than it, as long as it
 * moves. */
static int stream_write(lua_State *L)
{
    struct run *h = stream_run(L, 1);
    struct stream *st = h->stream;
    int n = lua_gettop(L);
    for (int i = 2; i <= n; i++) {
        size_t len;
        const char *p = luaL_checklstring(L, i, &len);
        if (st->off && st->off == st->len) st->off = st->len = 0;
        if (st->len + len > st->cap) {
            if (st->off) { /* the taken part first */
                memmove(st->buf, st->buf + st->off, st->len - st->off);
                st->len -= st->off;
                st->off = 0;
            }
            size_t cap = st->cap ? st->cap : 16384;
            while (cap < st->len + len) cap *= 2;
            char *nb = cap > st->cap ? mem_realloc(st->buf, cap) : st->buf;
            if (!nb) return luaL_error(L, "stream:write: out of memory");
            st->buf = nb;
            st->cap = cap;
        }
        memcpy(st->buf + st->len, p, len);
        st->len += len;
    }
    int tmo = h->r->gen->cfg->lua_handler_timeout_ms;
    if (tmo > 0 && !h->t.killed) h->t.deadline_ns = clock_ns() + (long long)tmo * 1000000LL;
    if (st->len - st->off < STREAM_HIGH) return 0;
    st->blocked = 1;
    return lvm_task_yield(L, 0, write_k);
}

/* req:stream([status], [headers]) -> stream: the answer goes out as the
 * handler writes it (chunked), instead of as its return values. */
static int req_stream(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    struct run *h = (struct run *)lvm_task_running(L);
    lua_rawgetp(L, 1, &serial_key);
    int mine = h && lua_tointeger(L, -1) == h->serial;
    lua_pop(L, 1);
    if (!mine) return luaL_error(L, "req:stream: only in its own handler, while it runs");
    if (h->stream) return luaL_error(L, "req:stream: the answer is already streamed");
    lua_Integer status = luaL_optinteger(L, 2, 200);
    if (status < 100 || status > 599) return luaL_argerror(L, 2, "an HTTP status (100..599)");
    struct stream_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->serial = h->serial;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &stream_mt_key) == LUA_TNIL) {
        lua_pop(L, 1);
        luaL_newmetatable(L, "tf.stream");
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, stream_write);
        lua_setfield(L, -2, "write");
        lua_setfield(L, -2, "__index");
        lua_tf_seal(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &stream_mt_key);
    }
    lua_setmetatable(L, -2);
    struct stream *st = mem_calloc(1, sizeof *st);
    if (!st) return luaL_error(L, "req:stream: out of memory");
    st->h = h;
    st->refs = 1;
    h->stream = st;
    h->status = (int)status;
    h->ctype = "text/plain; charset=utf-8";
    take_headers(L, 3, h);
    return 1;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max);

static void stream_release(void *cls)
{
    stream_unref(cls);
}

/* Queues the streamed answer's head; libmicrohttpd then pulls its body
 * through stream_read. From the access handler only. */
static int stream_queue(struct run *h)
{
    struct http_req *r = h->r;
    struct stream *st = h->stream;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, st,
                                                                  stream_release);
    if (!resp) return 0;
    st->refs++; /* the response's */
    st->queued = 1;
    for (int i = 0; i < h->nh; i++)
        if (h->hname[i] && h->hval[i]) MHD_add_response_header(resp, h->hname[i], h->hval[i]);
    if (!h->has_ctype) MHD_add_response_header(resp, "Content-Type", h->ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    MHD_queue_response(r->c, (unsigned)h->status, resp);
    MHD_destroy_response(resp);
    r->responded = h->status;
    return 1;
}

/* ---- the driver ---- */

static void run_free(struct run *h)
{
    mem_free(h->body);
    for (int i = 0; i < h->nh; i++) {
        mem_free(h->hname[i]);
        mem_free(h->hval[i]);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    mem_free(h);
}

/* Any thread: the task's wait ended. */
static void wake(struct lvm_task *t)
{
    struct run *h = (struct run *)t;
    pthread_mutex_lock(&h->mu);
    if (h->orphan) { /* the daemon stopped while it waited */
        pthread_mutex_unlock(&h->mu);
        return;
    }
    h->woken = 1;
    pthread_cond_signal(&h->cv);
    int resume = h->suspended;
    h->suspended = 0;
    if (resume) http_resume(h->r); /* under mu: never before the suspend */
    pthread_mutex_unlock(&h->mu);
}

/* The reaper thread: r's client hung up while r waited. Its wait ends
 * early (the task is dead from now on, lvm_task_dead); the run then ends
 * without an answer. */
static void abandon(struct http_req *r)
{
    struct run *h = r->run; /* r is pinned: finish_run waits before it frees h */
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    if (!atomic_exchange(&h->t.abandoned, 1))
        metrics_add("tf_http_abandoned_total", NULL, 1, "Requests whose client left while they waited");
    if (h->suspended && h->t.abort && h->t.abort(h->t.abort_ud)) { /* ended at once: wake it as wake() would */
        h->woken = 1;
        h->suspended = 0;
        http_resume(r);
    }
    pthread_mutex_unlock(&h->mu);
}

/* The run is over: its answer (or error) goes out, the task is freed. */
static int finish_run(struct run *h, enum lvm_status st, const char *err)
{
    struct http_req *r = h->r;
    http_unpinned(r); /* a reaper's abandon() may still be looking at h */
    struct wvm *w = h->w;
    const struct config *cfg = r->gen->cfg;
    const char *code = h->t.err_code;
    int ok = MHD_NO;
    struct stream *stm = h->stream;
    int head_out = stm && stm->queued; /* a failure now can only cut the answer off */
    if (h->gone || atomic_load(&h->t.abandoned)) {
        /* its client left: nothing to answer (MHD_NO closes the connection) */
    } else if (st == LVM_OK && (!h->bad || head_out)) {
        if (!stm) ok = send_answer(h);
        else if (head_out || stream_queue(h)) ok = MHD_YES;
        else ok = http_send_error(r, 503, "out of memory for the answer");
    } else if (st == LVM_OK) {
        ok = http_send_error(r, 500, h->bad);
    } else {
        char q[2048], m[256];
        const char *route = r->gen->routes[r->route].path;
        const char *kind = st == LVM_TIMEOUT ? "timeout" : st == LVM_NOMEM ? "memory" : "error";
        log_error("handler failed", "rid=%s route=%s kind=%s error=%s", r->rid, route, kind, log_quote(q, sizeof q, err));
        snprintf(m, sizeof m, "kind=\"%s\"", kind);
        metrics_add("tf_lua_handler_errors_total", m, 1, "Plugin handler calls that failed, by kind");
        if (head_out) {
            ok = MHD_YES; /* the stream ends with an error: the client sees it cut off */
        } else if (st == LVM_TIMEOUT) {
            snprintf(m, sizeof m, "handler exceeded its time limit of %d ms", cfg->lua_handler_timeout_ms);
            ok = http_send_error(r, 503, m);
        } else if (st == LVM_NOMEM) {
            snprintf(m, sizeof m, "handler exceeded the Lua memory limit of %zu bytes", cfg->lua_memory_limit);
            ok = http_send_error(r, 500, m);
        } else if (!strcmp(code, "unavailable")) { /* an uncaught tf.db error: the database, not the plugin */
            ok = http_send_error(r, 503, "database unavailable; retry later");
        } else if (!strcmp(code, "timeout")) {
            ok = http_send_error(r, 503, "database statement timed out; retry later");
        } else {
            ok = http_send_error(r, 500, "internal error in the route handler (see the server log for this request id)");
        }
    }
    int failed = st != LVM_OK || h->bad || (r->responded >= 500);
    if (stm) {
        stm->done = 1;
        stm->failed = st != LVM_OK;
        stm->h = NULL;
        h->stream = NULL;
        stream_unref(stm);
    }
    acct_record(r->gen->routes[r->route].acct, &h->t.acct, clock_ns() - r->t0, failed);
    lvm_task_end(w->vm, &h->t);
    if (st != LVM_OK) lua_gc(lvm_state(w->vm), LUA_GCCOLLECT);
    w->tasks--;
    r->run = NULL;
    run_free(h);
    if (self) worker_prune(self);
    return ok;
}

/* Resumes the task until it finishes or waits (the access handler). */
static int step(struct run *h)
{
    char err[4096];
    for (;;) {
        enum lvm_status st = lvm_task_resume(h->w->vm, &h->t, err, sizeof err);
        if (st != LVM_YIELD) return finish_run(h, st, err);
        if (h->stream && !h->stream->queued) { /* from now on stream_read drives it */
            if (stream_queue(h)) return MHD_YES;
            atomic_store(&h->t.abandoned, 1); /* it dies when its wait ends, or with its connection */
            return http_send_error(h->r, 503, "out of memory for the answer");
        }
        pthread_mutex_lock(&h->mu);
        if (h->woken) { /* the wait is over already */
            h->woken = 0;
            pthread_mutex_unlock(&h->mu);
            continue;
        }
        h->suspended = 1;
        http_suspend(h->r);
        pthread_mutex_unlock(&h->mu);
        return MHD_YES;
    }
}

/* Resumes a streaming task from its content reader until it waits or ends. */
static void drive(struct run *h)
{
    char err[4096];
    for (;;) {
        enum lvm_status st = lvm_task_resume(h->w->vm, &h->t, err, sizeof err);
        if (st != LVM_YIELD) {
            finish_run(h, st, err);
            return;
        }
        pthread_mutex_lock(&h->mu);
        int again = h->woken;
        h->woken = 0;
        pthread_mutex_unlock(&h->mu);
        if (!again) return;
    }
}

/* libmicrohttpd wants more of a streamed answer: what is queued; else the
 * writer that waited for room goes on; else, when the task waits on
 * something else, the connection is suspended until its wake (return 0). */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct stream *st = cls;
    for (;;) {
        if (st->len > st->off) {
            size_t n = st->len - st->off < max ? st->len - st->off : max;
            memcpy(out, st->buf + st->off, n);
            st->off += n;
            return (ssize_t)n;
        }
        struct run *h = st->h;
        if (st->done || !h) return st->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&h->mu);
        if (!st->blocked && !h->woken) {
            h->suspended = 1;
            http_suspend(h->r);
            pthread_mutex_unlock(&h->mu);
            return 0;
        }
        h->woken = 0;
        st->blocked = 0;
        pthread_mutex_unlock(&h->mu);
        drive(h);
    }
}

/* Starts r's run on this worker's VM of r's generation. */
static int start_run(struct http_req *r)
{
    char err[1024];
    struct worker *w = worker_self();
    struct wvm *v = w ? worker_vm(w, r->gen, err, sizeof err) : NULL;
    if (!v) return http_send_error(r, 503, "no Lua VM could be built for this request; retry later");
    struct run *h = mem_calloc(1, sizeof *h);
    if (!h) return http_send_error(r, 503, "out of memory");
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->r = r;
    h->wk = w;
    h->w = v;
    h->t.body = body;
    h->t.ud = h;
    h->t.wake = wake;
    int tmo = r->gen->cfg->lua_handler_timeout_ms;
    h->t.deadline_ns = tmo > 0 ? clock_ns() + (long long)tmo * 1000000LL : 0;
    if (lvm_task_start(v->vm, &h->t) != 0) {
        run_free(h);
        return http_send_error(r, 500, "out of Lua memory for the request");
    }
    v->tasks++;
    r->run = h;
    r->abandon = abandon;
    return step(h);
}

int lua_http_run(struct http_req *r)
{
    return start_run(r);
}

int lua_http_resume(struct http_req *r)
{
    struct run *h = r->run;
    pthread_mutex_lock(&h->mu);
    h->woken = 0;
    pthread_mutex_unlock(&h->mu);
    return step(h);
}

void lua_http_free(struct http_req *r)
{
    struct run *h = r->run;
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    int waiting = h->suspended;
    h->orphan = waiting;
    pthread_mutex_unlock(&h->mu);
    if (waiting) {
        /* Only a stopping daemon closes a request still waiting: its wait
         * may yet end, so the run is left to it (and leaked at exit). */
        h->wk->orphans++;
        r->run = NULL;
        return;
    }
    /* Its wait ended, but the client had gone (libmicrohttpd closes such a
     * connection when it resumes it): kill the task and run it to its end
     * here, so its continuations give back what they hold (a transaction
     * is rolled back); a killed task no longer yields. */
    if (!atomic_exchange(&h->t.abandoned, 1))
        metrics_add("tf_http_abandoned_total", NULL, 1, "Requests whose client left while they waited");
    h->gone = 1;
    h->t.deadline_ns = 1;
    pthread_mutex_lock(&h->mu);
    if (h->stream && !h->stream->blocked) {
        /* A streaming task waits with its connection not suspended (what it
         * wrote was still going out): its wait may still run. End it early
         * as the reaper would, then wait for its wake. */
        if (!h->woken && h->t.abort && h->t.abort(h->t.abort_ud)) h->woken = 1;
        while (!h->woken) pthread_cond_wait(&h->cv, &h->mu);
    }
    h->woken = 0;
    pthread_mutex_unlock(&h->mu);
    char err[256];
    enum lvm_status st;
    while ((st = lvm_task_resume(h->w->vm, &h->t, err, sizeof err)) == LVM_YIELD) {
        pthread_mutex_lock(&h->mu); /* a wait it had started must end first */
        while (!h->woken) pthread_cond_wait(&h->cv, &h->mu);
        h->woken = 0;
        pthread_mutex_unlock(&h->mu);
    }
    finish_run(h, st, err);
}
