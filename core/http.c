/* The HTTP server (see http.h). libmicrohttpd runs http.workers threads, each
 * with its own epoll set of connections. The first call of a request matches
 * the route against the current generation, checks the key and the declared
 * body size (so 401/404/405/413 never read a body); upload calls append to a
 * bounded buffer; the last call hands the request to admin.c (built-in
 * routes) or lua_http.c (plugin routes), which answer it or suspend it while
 * it waits. A reaper thread closes connections that send their headers too
 * slowly (http.header_timeout) or trickle their body below
 * http.min_body_rate, so a slow client holds a socket, not the server. */
#include "http.h"

#include "admin.h"
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "gen.h"
#include "log.h"
#include "lua_http.h"
#include "lvm.h"
#include "mem.h"
#include "metrics.h"
#include "sched.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A client connection, tracked for the header and body deadlines. The
 * stage times are CLOCK_MONOTONIC ns, 0 when the stage is not current. */
struct conn {
    struct conn *prev, *next;
    int fd;
    _Atomic long long idle_since;    /* accepted, or its last answer went out */
    _Atomic long long headers_since; /* its request line came; the headers are not complete */
    _Atomic long long body_since;    /* its headers came; its body is not complete */
    _Atomic long long body_bytes;
    struct http_req *suspended; /* its request while suspended (under conns_mu) */
};

struct http_server {
    struct MHD_Daemon *d;
    struct gen_ctl *gen;
    struct lvm_host *host;
    atomic_int inflight;
    time_t started;
    /* connections and their deadlines */
    pthread_mutex_t conns_mu;
    struct conn *conns;
    pthread_t reaper;
    int reaper_on, stopping;
    long long header_timeout_ns, idle_timeout_ns;
    double min_body_rate; /* bytes per second */
};

/* What libmicrohttpd may use per connection (its default is 32 KB), and
 * zeroes after every request: the request line and headers must fit (about
 * 7.5 KB; more is a 431, as nginx's 8 KB header buffers), and an idle
 * keep-alive connection costs about this much. */
#define CONNECTION_MEMORY (8 * 1024)

static atomic_ullong rid_counter;
static uint64_t rid_seed;

struct gen_ctl *http_gen(struct http_server *s) { return s->gen; }
struct lvm_host *http_host(struct http_server *s) { return s->host; }
long http_started(struct http_server *s) { return (long)s->started; }
int http_inflight(struct http_server *s) { return atomic_load(&s->inflight); }

/* ---- responses ---- */

int http_send(struct http_req *r, int status, const char *ctype, char *body, size_t len, int owned)
{
    struct MHD_Response *resp =
        owned ? MHD_create_response_from_buffer_with_free_callback(len, body, mem_free)
              : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        if (owned) mem_free(body);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    if (status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    enum MHD_Result ok = MHD_queue_response(r->c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->responded = status;
    return ok;
}

int http_send_error(struct http_req *r, int status, const char *msg)
{
    char out[1400];
    struct buf b;
    buf_init(&b, out, sizeof out, 0); /* the stack, the heap past it */
    buf_puts(&b, "{\"ok\":false,\"error\":");
    buf_json_str(&b, msg, strnlen(msg, 1200));
    buf_puts(&b, ",\"request_id\":");
    buf_json_str(&b, r->rid, strlen(r->rid));
    buf_putc(&b, '}');
    int ok = buf_failed(&b) ? http_send(r, status, "application/json", (char *)"{\"ok\":false}", 12, 0)
                            : http_send(r, status, "application/json", b.p, b.len, 0);
    buf_free(&b);
    return ok;
}

void http_suspend(struct http_req *r)
{
    if (r->conn) {
        pthread_mutex_lock(&r->s->conns_mu);
        r->conn->suspended = r;
        pthread_mutex_unlock(&r->s->conns_mu);
    }
    MHD_suspend_connection(r->c);
}

void http_resume(struct http_req *r)
{
    if (r->conn) { /* after this the reaper no longer looks at r */
        pthread_mutex_lock(&r->s->conns_mu);
        r->conn->suspended = NULL;
        pthread_mutex_unlock(&r->s->conns_mu);
    }
    MHD_resume_connection(r->c);
}

/* ---- routing ---- */

/* Does path match pattern? Captures {name} segments into r's params. */
static int match(const char *pattern, const char *path, struct http_req *r)
{
    r->nparams = 0;
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *close = strchr(pattern, '}');
            const char *seg_end = strchr(path, '/');
            if (!seg_end) seg_end = path + strlen(path);
            if (seg_end == path || r->nparams >= HTTP_MAX_PARAMS) return 0;
            int i = r->nparams++;
            r->pname[i] = pattern + 1;
            r->pnlen[i] = (size_t)(close - pattern - 1);
            r->pval[i] = path;
            r->pvlen[i] = (size_t)(seg_end - path);
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
 * -1 when no route has the path, -2 when some do but not this method. r's
 * params are the chosen route's. */
static int route_find(const struct lvm_gen *g, const char *method, const char *path, struct http_req *r)
{
    int best = -1, best_np = HTTP_MAX_PARAMS + 1, path_seen = 0;
    for (int i = 0; i < g->nroutes; i++) {
        if (!match(g->routes[i].path, path, r)) continue;
        path_seen = 1;
        int m = !strcmp(g->routes[i].method, method) ||
                (!strcmp(method, "HEAD") && !strcmp(g->routes[i].method, "GET"));
        if (m && r->nparams < best_np) best = i, best_np = r->nparams;
    }
    if (best >= 0) match(g->routes[best].path, path, r);
    return best >= 0 ? best : path_seen ? -2 : -1;
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

/* ---- connections and their deadlines ---- */

static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn *k = mem_calloc(1, sizeof *k);
        *socket_context = k;
        if (!k) return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = ci ? ci->connect_fd : -1;
        atomic_store(&k->idle_since, clock_ns());
        pthread_mutex_lock(&s->conns_mu);
        k->next = s->conns;
        if (s->conns) s->conns->prev = k;
        s->conns = k;
        pthread_mutex_unlock(&s->conns_mu);
        return;
    }
    struct conn *k = *socket_context;
    if (!k) return;
    *socket_context = NULL;
    pthread_mutex_lock(&s->conns_mu); /* MHD closes the socket after this returns */
    if (k->prev) k->prev->next = k->next;
    else s->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    pthread_mutex_unlock(&s->conns_mu);
    mem_free(k);
}

/* The request line has come: the header deadline starts. */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct conn *k = conn_of(c);
    if (k) {
        atomic_store(&k->idle_since, 0);
        atomic_store(&k->headers_since, clock_ns());
    }
    return NULL;
}

/* Under conns_mu: the suspended requests whose client hung up (libmicrohttpd
 * watches no suspended socket) get their wait ended early through their
 * abandon hook, so a request nobody waits for gives back its place in the
 * pool queue or has its statement cancelled at once. nginx does the same
 * for a client that closes while its upstream works (499). */
static int hung_up(struct pollfd *fds, struct http_req **reqs, int n)
{
    int m = 0;
    if (n && poll(fds, (nfds_t)n, 0) > 0)
        for (int i = 0; i < n; i++)
            if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
                atomic_fetch_add(&reqs[i]->pins, 1);
                reqs[m++] = reqs[i];
            }
    return m;
}

static void abandon_hung_up(struct http_server *s)
{
    enum { MAX = 256 };
    struct pollfd fds[MAX];
    struct http_req *reqs[MAX], *gone[MAX];
    int n = 0, ngone = 0;
    pthread_mutex_lock(&s->conns_mu);
    for (struct conn *k = s->conns; k && ngone < MAX; k = k->next) {
        if (!k->suspended || !k->suspended->abandon || k->fd < 0) continue;
        fds[n] = (struct pollfd){.fd = k->fd, .events = POLLRDHUP};
        reqs[n++] = k->suspended;
        if (n == MAX - ngone) {
            int m = hung_up(fds, reqs, n);
            memcpy(gone + ngone, reqs, (size_t)m * sizeof *reqs);
            ngone += m;
            n = 0;
        }
    }
    int m = hung_up(fds, reqs, n);
    memcpy(gone + ngone, reqs, (size_t)m * sizeof *reqs);
    ngone += m;
    pthread_mutex_unlock(&s->conns_mu);
    for (int i = 0; i < ngone; i++) { /* pinned: not freed meanwhile, though maybe resumed */
        gone[i]->abandon(gone[i]);
        atomic_fetch_sub(&gone[i]->pins, 1);
    }
}

void http_unpinned(struct http_req *r)
{
    while (atomic_load(&r->pins)) sched_yield();
}

/* Closes the connections past a deadline: shutdown() makes their worker see
 * the end of the stream and close them itself. */
static void reap(struct http_server *s)
{
    long long now = clock_ns();
    int header = 0, body = 0;
    abandon_hung_up(s);
    pthread_mutex_lock(&s->conns_mu);
    for (struct conn *k = s->conns; k; k = k->next) {
        long long idle = atomic_load(&k->idle_since), hdr = atomic_load(&k->headers_since);
        long long bs = atomic_load(&k->body_since);
        int late = 0;
        if (hdr && now - hdr > s->header_timeout_ns) late = 1, header++;
        /* bytes trickled before the request line reset libmicrohttpd's idle timeout */
        else if (idle && now - idle > s->idle_timeout_ns + s->header_timeout_ns) late = 1, header++;
        else if (bs && now - bs > s->header_timeout_ns &&
                 (double)atomic_load(&k->body_bytes) < s->min_body_rate * (double)(now - bs) / 1e9)
            late = 1, body++;
        if (late && k->fd >= 0) {
            shutdown(k->fd, SHUT_RDWR);
            atomic_store(&k->idle_since, 0);
            atomic_store(&k->headers_since, 0);
            atomic_store(&k->body_since, 0);
        }
    }
    pthread_mutex_unlock(&s->conns_mu);
    if (header) metrics_add("tf_http_slow_closed_total", "reason=\"headers\"", header,
                            "Connections closed for sending headers or a body too slowly");
    if (body) metrics_add("tf_http_slow_closed_total", "reason=\"body\"", body,
                          "Connections closed for sending headers or a body too slowly");
    if (header || body) log_info("closed slow connections", "headers=%d body=%d", header, body);
}

static void *reaper_main(void *arg)
{
    struct http_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->conns_mu);
        int stop = s->stopping;
        pthread_mutex_unlock(&s->conns_mu);
        if (stop) break;
        reap(s);
        log_flush(); /* the buffered access lines, at most 200 ms late */
        usleep(200000);
    }
    return NULL;
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
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, x >>= 4) out[i] = hex[x & 15];
    out[16] = 0;
}

/* First call of a request: everything decided before any body is read. */
static enum MHD_Result begin(struct http_server *s, struct MHD_Connection *c, const char *url,
                             const char *method, void **con_cls)
{
    struct http_req *r = mem_calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    *con_cls = r;
    r->s = s;
    r->c = c;
    r->url = url;
    r->method = method;
    r->t0 = clock_ns();
    r->route = -1;
    make_rid(c, r->rid, sizeof r->rid);
    atomic_fetch_add(&s->inflight, 1);
    struct conn *k = r->conn = conn_of(c);
    if (k) {
        atomic_store(&k->headers_since, 0);
        atomic_store(&k->body_bytes, 0);
        atomic_store(&k->body_since, r->t0);
    }

    int method_ok = 0;
    enum admin_route b = admin_find(method, url, &method_ok);
    const char *msg = NULL;
    r->gen = lvm_gen_current(); /* for auth and limits; built-in routes need no VM */
    if (!r->gen) return http_send_error(r, 503, "no plugin generation is loaded");
    if (b != ADMIN_NONE) {
        r->route = b;
        if (!method_ok) return http_send_error(r, 405, "method not allowed on this path");
        int st = auth_check(c, r->gen->cfg, admin_roles(b, r->gen->cfg), &msg, &r->key_name);
        if (st) return http_send_error(r, st, msg);
        r->max = b == ADMIN_JOB_RUN ? SCHED_RUN_MAX_BODY : 0; /* run options, e.g. {"reset_watermark": true} */
        return MHD_YES;
    }
    int i = route_find(r->gen, method, url, r);
    if (i == -1) return http_send_error(r, 404, "no route for this path");
    if (i == -2) return http_send_error(r, 405, "method not allowed on this path");
    r->route = i;
    const struct lvm_route *rt = &r->gen->routes[i];
    int st = auth_check(c, r->gen->cfg, rt->roles, &msg, &r->key_name);
    if (st) return http_send_error(r, st, msg);
    r->max = rt->max_body;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        unsigned long long n = strtoull(cl, NULL, 10);
        if (n > r->max) {
            char m[160];
            snprintf(m, sizeof m, "request body of %llu bytes exceeds this route's limit of %zu bytes; split it", n, r->max);
            return http_send_error(r, 413, m);
        }
        if (n) {
            r->body = mem_alloc((size_t)n + 1);
            if (!r->body) return http_send_error(r, 503, "out of memory for the request body");
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
    struct http_req *r = *con_cls;
    if (!r) return begin(s, c, url, method, con_cls);
    if (r->run) /* resumed after a wait */
        return (enum MHD_Result)(r->route < -1 ? admin_serve(r) : lua_http_resume(r));
    if (r->responded) { /* answered early; MHD discards what is left */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        struct conn *k = conn_of(c);
        if (k) atomic_fetch_add(&k->body_bytes, (long long)n);
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
            if (!nb) return http_send_error(r, 503, "out of memory for the request body");
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    struct conn *k = conn_of(c);
    if (k) atomic_store(&k->body_since, 0);
    if (r->too_big) {
        char m[160];
        snprintf(m, sizeof m, "request body exceeds this route's limit of %zu bytes; split it", r->max);
        return http_send_error(r, 413, m);
    }
    if (r->body) r->body[r->len] = 0;
    if (r->route < -1) return (enum MHD_Result)admin_serve(r);
    return (enum MHD_Result)lua_http_run(r);
}

/* The two series every request updates, looked up once per (generation,
 * route, status) and per worker thread: formatting and hashing their labels
 * on every request cost more than answering /health. A route's path is
 * owned by its generation, hence the generation in the key. */
struct request_series {
    long gen;
    const char *route;
    int status;
    struct metrics_series *count, *latency;
};

static struct request_series *request_series(long gen, const char *route, int status)
{
    enum { SLOTS = 64 };
    static _Thread_local struct request_series seen[SLOTS];
    uintptr_t h = ((uintptr_t)route >> 4) ^ (uintptr_t)status * 31u ^ (uintptr_t)gen * 131u;
    struct request_series *e = &seen[h % SLOTS];
    if (e->route == route && e->status == status && e->gen == gen && e->count) return e;
    char labels[600];
    snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route, status);
    e->count = metrics_series("tf_http_requests_total", labels, 0, "HTTP requests answered, by route and status");
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    e->latency = metrics_series("tf_http_request_duration_seconds", labels, 1, "HTTP request latency");
    e->gen = gen, e->route = route, e->status = status;
    return e;
}

/* log.access of the request's generation (none yet: the default, on). */
static int access_logged(const struct lvm_gen *g)
{
    return g ? g->cfg->log_access : 1;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    struct conn *k = conn_of(c);
    if (k) {
        atomic_store(&k->headers_since, 0);
        atomic_store(&k->body_since, 0);
        atomic_store(&k->idle_since, clock_ns());
    }
    if (!r) return;
    *con_cls = NULL;
    double secs = (double)(clock_ns() - r->t0) / 1e9;
    const char *route = r->route >= 0 ? r->gen->routes[r->route].path : admin_route_name((enum admin_route)r->route);
    int status = r->responded ? r->responded : 0;
    struct request_series *rs = request_series(r->gen ? r->gen->id : 0, route, status);
    metrics_request(rs->count, rs->latency, secs);
    if (status >= 500) { /* failures: at once, at warn, whatever log.access says */
        log_write(LOG_WARN, "request", "rid=%s route=%s status=%d bytes_in=%zu ms=%.3f%s", r->rid, route, status,
                  r->len, secs * 1e3, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    } else if (access_logged(r->gen) && log_enabled(LOG_INFO)) {
        log_access("request", "rid=%s route=%s status=%d bytes_in=%zu ms=%.3f%s", r->rid, route, status, r->len,
                   secs * 1e3, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    }
    if (r->run) {
        if (r->route < -1) admin_free(r);
        else lua_http_free(r);
    }
    if (r->gen) lvm_gen_unref(r->gen);
    mem_free(r->body);
    mem_free(r);
    atomic_fetch_sub(&s->inflight, 1);
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

/* Raises the open-file limit to what http.max_connections needs (plus the
 * pool, the plugins, the logs), up to the hard limit. */
static void raise_nofile(int max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = (rlim_t)max_connections + 256;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        log_warn("the open-file limit is below http.max_connections; connections beyond it are refused",
                 "limit=%lu max_connections=%d", (unsigned long)rl.rlim_cur, max_connections);
}

struct http_server *http_start(const char *config_path, struct lvm_host *host, char *err, size_t errlen)
{
    struct http_server *s = mem_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->conns_mu, NULL);
    s->host = host;
    s->started = time(NULL);
    if (getrandom(&rid_seed, sizeof rid_seed, 0) != sizeof rid_seed) rid_seed = (uint64_t)clock_ns();

    struct lvm *vm = NULL;
    if (!(s->gen = gen_open(config_path, host, &vm, err, errlen))) goto fail;
    lua_http_init(host, vm); /* the first worker serves with the VM that validated it */
    struct lvm_gen *g = lvm_gen_current();
    const struct config *cfg = g->cfg;
    unsigned workers = cfg->http_workers > 0 ? (unsigned)cfg->http_workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    if (workers < 1) workers = 1;
    s->header_timeout_ns = (long long)cfg->http_header_timeout * 1000000000LL;
    s->idle_timeout_ns = (long long)cfg->http_connection_timeout * 1000000000LL;
    s->min_body_rate = (double)cfg->http_min_body_rate;
    raise_nofile(cfg->http_max_connections);

    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->listen_port);
    if (inet_pton(AF_INET, strcmp(cfg->listen_host, "localhost") ? cfg->listen_host : "127.0.0.1", &addr.sin_addr) != 1) {
        snprintf(err, errlen, "listen: '%s' is not an IPv4 address", cfg->listen_host);
        lvm_gen_unref(g);
        goto fail;
    }
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                                MHD_USE_TURBO | MHD_USE_ERROR_LOG,
                            (uint16_t)cfg->listen_port, NULL, NULL, access_handler, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_THREAD_POOL_SIZE, workers,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections_per_ip,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_connection_timeout,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
                            /* per connection: request line, headers, buffers; 10,000 idle
                             * connections cost 10,000 of these */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, notify_connection, s,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_seen, s,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                            MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s:%d (in use, or not permitted)", cfg->listen_host, cfg->listen_port);
        lvm_gen_unref(g);
        goto fail;
    }
    s->reaper_on = pthread_create(&s->reaper, NULL, reaper_main, s) == 0;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    log_info("listening", "addr=%s:%u workers=%u gen=%ld routes=%d", cfg->listen_host,
             di ? di->port : (unsigned)cfg->listen_port, workers, g->id, g->nroutes);
    lvm_gen_unref(g);
    return s;
fail:
    lua_http_shutdown();
    gen_close(s->gen);
    pthread_mutex_destroy(&s->conns_mu);
    mem_free(s);
    return NULL;
}

void http_stop(struct http_server *s, int grace_ms)
{
    if (!s) return;
    MHD_quiesce_daemon(s->d);
    long long until = clock_ns() + (long long)grace_ms * 1000000LL;
    while (atomic_load(&s->inflight) > 0 && clock_ns() < until) usleep(10000);
    pthread_mutex_lock(&s->conns_mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->conns_mu);
    if (s->reaper_on) pthread_join(s->reaper, NULL);
    MHD_stop_daemon(s->d);
    lua_http_shutdown();
    gen_close(s->gen);
    pthread_mutex_destroy(&s->conns_mu);
    mem_free(s);
}
