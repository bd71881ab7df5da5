/* The libpq pool (see db.h). Slots are handed out under one mutex; connecting,
 * querying and closing happen outside it. Statements run asynchronously so
 * the statement timeout is a client-side deadline followed by a cancel
 * request: no SET, no prepared statements, nothing that would leak between
 * checkouts behind PgBouncer in transaction mode. */
#include "db.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mem.h"
#include "metrics.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define CANCEL_GRACE_MS 3000 /* how long a cancelled statement may take to stop */

struct db_conn {
    PGconn *pg;
    struct db_pool *pool;
    int in_use;
    int broken;       /* close before the next use */
    char sqlstate[6];
};

struct db_pool {
    char *conninfo;
    struct db_options o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_conn *slots;
    int nfree;
    int waiting;
    int connected;          /* slots with a live PGconn */
    long long down_until;   /* ms, monotonic: fail fast until then */
    int backoff_ms;
    char last_err[256];
};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* libpq messages end with a newline and may carry "ERROR:  "; trim both. */
static void copy_msg(char *dst, size_t n, const char *msg)
{
    if (!msg) msg = "";
    if (strncmp(msg, "ERROR:  ", 8) == 0) msg += 8;
    if (strncmp(msg, "FATAL:  ", 8) == 0) msg += 8;
    snprintf(dst, n, "%s", msg);
    size_t l = strlen(dst);
    while (l && (dst[l - 1] == '\n' || dst[l - 1] == ' ')) dst[--l] = '\0';
    for (char *p = dst; *p; p++)
        if (*p == '\n') *p = ' ';
}

struct db_pool *db_pool_open(const char *conninfo, const struct db_options *o, char *err,
                             size_t errlen)
{
    if (!conninfo || !*conninfo) {
        seterr(err, errlen, "db: no connection string");
        return NULL;
    }
    if (o->pool_size < 1 || o->pool_size > 1024) {
        seterr(err, errlen, "db: pool size must be 1..1024, got %d", o->pool_size);
        return NULL;
    }
    /* Reject a malformed conninfo now, not at the first request. */
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        char m[200];
        copy_msg(m, sizeof m, perr ? perr : "out of memory");
        seterr(err, errlen, "db: bad connection string: %s", m);
        PQfreemem(perr);
        return NULL;
    }
    PQconninfoFree(opts);
    struct db_pool *p = mem_calloc(1, sizeof *p);
    if (!p) goto oom;
    p->o = *o;
    if (p->o.checkout_timeout_ms <= 0) p->o.checkout_timeout_ms = 5000;
    if (p->o.connect_timeout_s <= 0) p->o.connect_timeout_s = 5;
    p->conninfo = mem_strdup(conninfo);
    p->slots = mem_calloc((size_t)o->pool_size, sizeof *p->slots);
    if (!p->conninfo || !p->slots) goto oom;
    for (int i = 0; i < o->pool_size; i++) p->slots[i].pool = p;
    p->nfree = o->pool_size;
    p->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return p;
oom:
    if (p) {
        mem_free(p->conninfo);
        mem_free(p->slots);
        mem_free(p);
    }
    seterr(err, errlen, "db: out of memory");
    return NULL;
}

void db_pool_close(struct db_pool *p)
{
    if (!p) return;
    for (int i = 0; i < p->o.pool_size; i++)
        if (p->slots[i].pg) PQfinish(p->slots[i].pg);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    mem_free(p->slots);
    mem_free(p->conninfo);
    mem_free(p);
}

static void notice_to_log(void *arg, const char *msg)
{
    char m[256];
    copy_msg(m, sizeof m, msg);
    char q[300];
    log_debug("db notice", "msg=%s", log_quote(q, sizeof q, m));
}

static PGconn *connect_now(const char *conninfo, int timeout_s, char *err, size_t errlen)
{
    char ct[16];
    snprintf(ct, sizeof ct, "%d", timeout_s);
    /* The conninfo is expanded first; the keywords after it override it, so
     * the pool's connect_timeout and application_name always apply. */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "keepalives_idle", NULL};
    const char *vals[] = {conninfo, ct, "tickforge", "30", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        char m[256];
        copy_msg(m, sizeof m, pg ? PQerrorMessage(pg) : "out of memory");
        seterr(err, errlen, "database unavailable: %s", m);
        if (pg) PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, notice_to_log, NULL);
    return pg;
}

/* A connection whose server went away (restart, idle kill) has an error or
 * EOF waiting on its socket while idle. Nothing else arrives on an idle
 * connection of ours (no LISTEN, no SET), so anything readable means it is
 * gone: replace it before use rather than fail the caller's statement. */
static int looks_dead(PGconn *pg)
{
    if (PQstatus(pg) != CONNECTION_OK) return 1;
    struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
    if (pfd.fd < 0) return 1;
    return poll(&pfd, 1, 0) != 0;
}

struct db_conn *db_acquire(struct db_pool *p, int *rc, char *err, size_t errlen)
{
    long long deadline = now_ms() + p->o.checkout_timeout_ms;
    struct db_conn *c = NULL;
    *rc = DB_UNAVAILABLE;
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            pthread_mutex_unlock(&p->mu);
            metrics_add("tf_db_checkout_timeouts_total", NULL, 1,
                        "Checkouts that found no free connection in time");
            seterr(err, errlen, "database unavailable: no free connection within %d ms",
                   p->o.checkout_timeout_ms);
            return NULL;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        p->waiting++;
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        p->waiting--;
    }
    /* Prefer a slot that is already connected. */
    for (int i = 0; i < p->o.pool_size; i++) {
        struct db_conn *s = &p->slots[i];
        if (s->in_use) continue;
        if (!c || (!c->pg && s->pg)) c = s;
        if (c->pg) break;
    }
    c->in_use = 1;
    p->nfree--;
    int need_connect = !c->pg;
    long long down_until = p->down_until;
    pthread_mutex_unlock(&p->mu);
    metrics_add("tf_db_checkouts_total", NULL, 1, "Connections checked out of the pool");

    if (c->pg && (c->broken || looks_dead(c->pg))) {
        PQfinish(c->pg);
        c->pg = NULL;
        c->broken = 0;
        need_connect = 1;
        pthread_mutex_lock(&p->mu);
        p->connected--;
        pthread_mutex_unlock(&p->mu);
    }
    if (need_connect) {
        if (now_ms() < down_until) {
            pthread_mutex_lock(&p->mu);
            seterr(err, errlen, "%s (retrying in %lld ms)", p->last_err, down_until - now_ms());
            pthread_mutex_unlock(&p->mu);
            goto fail;
        }
        char cerr[256];
        PGconn *pg = connect_now(p->conninfo, p->o.connect_timeout_s, cerr, sizeof cerr);
        pthread_mutex_lock(&p->mu);
        if (!pg) {
            p->down_until = now_ms() + p->backoff_ms;
            p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
            snprintf(p->last_err, sizeof p->last_err, "%s", cerr);
            pthread_mutex_unlock(&p->mu);
            metrics_add("tf_db_connect_failures_total", NULL, 1, "Failed connection attempts");
            char q[300];
            log_warn("db connect failed", "err=%s", log_quote(q, sizeof q, cerr));
            seterr(err, errlen, "%s", cerr);
            goto fail;
        }
        p->connected++;
        p->down_until = 0;
        p->backoff_ms = BACKOFF_MIN_MS;
        pthread_mutex_unlock(&p->mu);
        metrics_add("tf_db_connects_total", NULL, 1, "Connections opened by the pool");
        c->pg = pg;
    }
    c->sqlstate[0] = '\0';
    *rc = DB_OK;
    return c;
fail:
    pthread_mutex_lock(&p->mu);
    c->in_use = 0;
    p->nfree++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void db_release(struct db_pool *p, struct db_conn *c)
{
    if (!c) return;
    if (c->pg && !c->broken) {
        switch (PQtransactionStatus(c->pg)) {
        case PQTRANS_IDLE: break;
        case PQTRANS_INTRANS:
        case PQTRANS_INERROR: {
            PGresult *r = PQexec(c->pg, "ROLLBACK");
            if (PQresultStatus(r) != PGRES_COMMAND_OK) c->broken = 1;
            PQclear(r);
            log_warn("db connection released inside a transaction; rolled back", NULL);
            break;
        }
        default: c->broken = 1; break;
        }
    }
    int was_connected = c->pg != NULL;
    if (c->broken && c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
        c->broken = 0;
    }
    pthread_mutex_lock(&p->mu);
    if (was_connected && !c->pg) p->connected--;
    c->in_use = 0;
    p->nfree++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

PGconn *db_pg(struct db_conn *c) { return c->pg; }

const char *db_sqlstate(struct db_conn *c) { return c->sqlstate; }

/* Classifies a failure: connection-level trouble is DB_UNAVAILABLE (the
 * HTTP layer answers 503 and the client retries), the rest DB_ERROR. */
static int classify(struct db_conn *c, const PGresult *r, char *err, size_t errlen)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", st ? st : "");
    char m[512];
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    copy_msg(m, sizeof m, primary ? primary : PQerrorMessage(c->pg));
    int lost = PQstatus(c->pg) != CONNECTION_OK || !st || strncmp(st, "08", 2) == 0 ||
               strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0;
    if (lost) {
        c->broken = 1;
        metrics_add("tf_db_errors_total", "kind=\"unavailable\"", 1, "Statements that failed");
        seterr(err, errlen, "database unavailable: %s", m[0] ? m : "connection lost");
        return DB_UNAVAILABLE;
    }
    metrics_add("tf_db_errors_total", "kind=\"sql\"", 1, "Statements that failed");
    seterr(err, errlen, "%s", m);
    return DB_ERROR;
}

/* Collects the results of what was sent, honouring the statement timeout.
 * Keeps the first error (or the last success) in *out. Stops early at a
 * COPY IN result when stop_at_copy. */
static int wait_results(struct db_conn *c, PGresult **out, int stop_at_copy, char *err,
                        size_t errlen)
{
    PGconn *pg = c->pg;
    int tmo = c->pool->o.statement_timeout_ms;
    long long deadline = tmo > 0 ? now_ms() + tmo : 0;
    int cancelled = 0;
    PGresult *keep = NULL;
    *out = NULL;
    for (;;) {
        while (!PQisBusy(pg)) {
            PGresult *r = PQgetResult(pg);
            if (!r) goto finished;
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_COPY_IN && stop_at_copy) {
                if (keep) PQclear(keep);
                *out = r;
                return DB_OK;
            }
            int is_err = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE;
            if (!keep || (is_err && PQresultStatus(keep) != PGRES_FATAL_ERROR)) {
                if (keep) PQclear(keep);
                keep = r;
            } else if (!is_err && PQresultStatus(keep) != PGRES_FATAL_ERROR) {
                PQclear(keep);
                keep = r;
            } else {
                PQclear(r);
            }
            if (PQstatus(pg) != CONNECTION_OK) goto finished;
        }
        int wait = -1;
        if (deadline) {
            long long left = deadline - now_ms();
            if (left <= 0) {
                if (cancelled) { /* the server ignores us: give the connection up */
                    c->broken = 1;
                    if (keep) PQclear(keep);
                    seterr(err, errlen, "database unavailable: statement did not stop after cancel");
                    return DB_UNAVAILABLE;
                }
                PGcancel *cn = PQgetCancel(pg);
                char cerr[128];
                if (cn) {
                    PQcancel(cn, cerr, sizeof cerr);
                    PQfreeCancel(cn);
                }
                cancelled = 1;
                deadline = now_ms() + CANCEL_GRACE_MS;
                continue;
            }
            wait = (int)left;
        }
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0 && errno != EINTR) break;
        if (pr > 0 && !PQconsumeInput(pg)) break;
    }
    /* the socket failed */
    if (keep) PQclear(keep);
    c->broken = 1;
    {
        char m[256];
        copy_msg(m, sizeof m, PQerrorMessage(pg));
        metrics_add("tf_db_errors_total", "kind=\"unavailable\"", 1, "Statements that failed");
        seterr(err, errlen, "database unavailable: %s", m[0] ? m : "connection lost");
    }
    return DB_UNAVAILABLE;
finished:
    if (!keep) {
        c->broken = PQstatus(pg) != CONNECTION_OK;
        return classify(c, NULL, err, errlen);
    }
    ExecStatusType st = PQresultStatus(keep);
    if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
        int rc = classify(c, keep, err, errlen);
        if (rc == DB_ERROR && strcmp(c->sqlstate, "57014") == 0) { /* ours, or the server's own */
            if (cancelled) seterr(err, errlen, "statement timeout: cancelled after %d ms", tmo);
            rc = DB_TIMEOUT;
        }
        PQclear(keep);
        return rc;
    }
    *out = keep;
    return DB_OK;
}

int db_send(struct db_conn *c, const char *sql, int n, const char *const *vals,
            const int *binary_lens, char *err, size_t errlen)
{
    int ok;
    c->sqlstate[0] = '\0';
    if (!c->pg) {
        seterr(err, errlen, "database unavailable: not connected");
        return DB_UNAVAILABLE;
    }
    if (n == 0 && !binary_lens) { /* the extended protocol even then: one statement, never "a; b" */
        ok = PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
    } else {
        int *fmts = NULL;
        if (binary_lens) {
            fmts = mem_alloc((size_t)n * sizeof *fmts);
            if (!fmts) {
                seterr(err, errlen, "out of memory");
                return DB_ERROR;
            }
            for (int i = 0; i < n; i++) fmts[i] = binary_lens[i] >= 0;
        }
        ok = PQsendQueryParams(c->pg, sql, n, NULL, vals, binary_lens, fmts, 0);
        mem_free(fmts);
    }
    if (!ok) {
        c->broken = 1;
        char m[256];
        copy_msg(m, sizeof m, PQerrorMessage(c->pg));
        seterr(err, errlen, "database unavailable: %s", m);
        return DB_UNAVAILABLE;
    }
    return DB_OK;
}

int db_wait(struct db_conn *c, PGresult **res, char *err, size_t errlen)
{
    PGresult *r;
    if (res) *res = NULL;
    int rc = wait_results(c, &r, 0, err, errlen);
    if (rc != DB_OK) return rc;
    if (res) *res = r;
    else PQclear(r);
    return DB_OK;
}

int db_exec(struct db_conn *c, const char *sql, int n, const char *const *vals,
            const int *binary_lens, PGresult **res, char *err, size_t errlen)
{
    if (res) *res = NULL;
    int rc = db_send(c, sql, n, vals, binary_lens, err, errlen);
    return rc == DB_OK ? db_wait(c, res, err, errlen) : rc;
}

int db_copy_in(struct db_conn *c, const char *copy_sql, const char *data, size_t len, long *rows,
               char *err, size_t errlen)
{
    PGresult *r = NULL;
    *rows = 0;
    if (!c->pg) {
        seterr(err, errlen, "database unavailable: not connected");
        return DB_UNAVAILABLE;
    }
    if (!PQsendQueryParams(c->pg, copy_sql, 0, NULL, NULL, NULL, NULL, 0)) {
        c->broken = 1;
        seterr(err, errlen, "database unavailable: %s", PQerrorMessage(c->pg));
        return DB_UNAVAILABLE;
    }
    int rc = wait_results(c, &r, 1, err, errlen);
    if (rc != DB_OK) return rc;
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        PQclear(r);
        seterr(err, errlen, "not a COPY ... FROM STDIN statement");
        return DB_ERROR;
    }
    PQclear(r);
    /* Blocking writes: libpq flushes in chunks; a dead server fails them. */
    size_t off = 0;
    while (off < len) {
        size_t chunk = len - off > (1u << 20) ? (1u << 20) : len - off;
        if (PQputCopyData(c->pg, data + off, (int)chunk) != 1) {
            c->broken = 1;
            char m[256];
            copy_msg(m, sizeof m, PQerrorMessage(c->pg));
            seterr(err, errlen, "database unavailable: %s", m);
            return DB_UNAVAILABLE;
        }
        off += chunk;
    }
    if (PQputCopyEnd(c->pg, NULL) != 1) {
        c->broken = 1;
        seterr(err, errlen, "database unavailable: %s", PQerrorMessage(c->pg));
        return DB_UNAVAILABLE;
    }
    rc = wait_results(c, &r, 0, err, errlen);
    if (rc != DB_OK) return rc;
    *rows = atol(PQcmdTuples(r));
    PQclear(r);
    return DB_OK;
}

int db_health(struct db_pool *p, char *err, size_t errlen)
{
    int rc;
    struct db_conn *c = db_acquire(p, &rc, err, errlen);
    if (!c) return -1;
    PGresult *r = NULL;
    rc = db_exec(c, "SELECT 1", 0, NULL, NULL, &r, err, errlen);
    if (rc == DB_OK) PQclear(r);
    db_release(p, c);
    return rc == DB_OK ? 0 : -1;
}

void db_metrics(struct db_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int size = p->o.pool_size, in_use = size - p->nfree, waiting = p->waiting;
    int connected = p->connected, up = p->down_until == 0 || now_ms() >= p->down_until;
    pthread_mutex_unlock(&p->mu);
    metrics_set("tf_db_pool_size", NULL, size, "Connections the pool may hold");
    metrics_set("tf_db_pool_in_use", NULL, in_use, "Connections checked out now");
    metrics_set("tf_db_pool_connected", NULL, connected, "Pool slots with an open connection");
    metrics_set("tf_db_pool_waiting", NULL, waiting, "Threads waiting for a connection");
    metrics_set("tf_db_up", NULL, up, "0 while the pool is backing off after failed connects");
}

/* ---- array literal buffer ---- */

static int buf_grow(struct db_buf *b, size_t need)
{
    if (b->oom) return -1;
    if (b->len + need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need) cap *= 2;
    char *d = mem_realloc(b->data, cap);
    if (!d) {
        b->oom = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void db_buf_put(struct db_buf *b, const char *s, size_t n)
{
    if (buf_grow(b, n + 1) < 0) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void db_buf_putc(struct db_buf *b, char ch) { db_buf_put(b, &ch, 1); }

void db_buf_printf(struct db_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        db_buf_put(b, tmp, (size_t)n);
        return;
    }
    if (buf_grow(b, (size_t)n + 1) < 0) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void db_buf_quoted(struct db_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (buf_grow(b, 2 * n + 3) < 0) return;
    char *d = b->data + b->len;
    *d++ = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') *d++ = '\\';
        *d++ = *s;
    }
    *d++ = '"';
    *d = '\0';
    b->len = (size_t)(d - b->data);
}

void db_buf_free(struct db_buf *b)
{
    mem_free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- migrations ---- */

static int mig_cmp(const void *a, const void *b)
{
    const struct db_migration *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *d = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (d = mem_alloc((size_t)n + 1))) {
            if (fread(d, 1, (size_t)n, f) != (size_t)n) {
                mem_free(d);
                d = NULL;
            } else {
                d[n] = '\0';
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return d;
}

static int run(PGconn *pg, const char *sql, int n, const char *const *vals, PGresult **out,
               char *m, size_t mlen)
{
    PGresult *r = n ? PQexecParams(pg, sql, n, NULL, vals, NULL, NULL, 0) : PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        copy_msg(m, mlen, PQresultErrorMessage(r));
        if (!m[0]) copy_msg(m, mlen, PQerrorMessage(pg));
        PQclear(r);
        return -1;
    }
    if (out) *out = r;
    else PQclear(r);
    return 0;
}

#define MIGRATE_LOCK "7305501000" /* pg_advisory_xact_lock key: "tickforge migrate" */

int db_migration_files(const char *sqldir, struct db_migration **out, size_t *nout, char *err, size_t errlen)
{
    struct db_migration *list = NULL;
    size_t n = 0, cap = 0;
    *out = NULL;
    *nout = 0;
    DIR *d = opendir(sqldir);
    if (!d) {
        seterr(err, errlen, "migrate: %s: %s", sqldir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        size_t l = strlen(e->d_name);
        if (end == e->d_name || *end != '_' || l < 5 || strcmp(e->d_name + l - 4, ".sql") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct db_migration *nl = mem_realloc(list, cap * sizeof *list);
            if (!nl) {
                seterr(err, errlen, "migrate: out of memory");
                goto fail;
            }
            list = nl;
        }
        list[n].version = v;
        snprintf(list[n].name, sizeof list[n].name, "%s", e->d_name);
        n++;
    }
    closedir(d);
    d = NULL;
    if (n) qsort(list, n, sizeof *list, mig_cmp);
    for (size_t i = 1; i < n; i++)
        if (list[i].version == list[i - 1].version) {
            seterr(err, errlen, "migrate: %s and %s share version %ld", list[i - 1].name,
                   list[i].name, list[i].version);
            goto fail;
        }
    *out = list;
    *nout = n;
    return 0;
fail:
    if (d) closedir(d);
    mem_free(list);
    return -1;
}

int db_migrate(const char *conninfo, const char *sqldir, char *err, size_t errlen)
{
    struct db_migration *list = NULL;
    size_t n = 0;
    int rc = -1, applied = 0;
    char *sql = NULL;
    PGconn *pg = NULL;
    if (db_migration_files(sqldir, &list, &n, err, errlen)) return -1;

    char cerr[300];
    pg = connect_now(conninfo, 10, cerr, sizeof cerr);
    if (!pg) {
        seterr(err, errlen, "migrate: %s", cerr);
        goto done;
    }
    {
        PGresult *q = PQexec(pg, "SET client_min_messages = warning");
        PQclear(q);
    }
    for (size_t i = 0; i < n; i++) {
        char path[4096], m[1024], ver[32];
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", sqldir, list[i].name);
        snprintf(ver, sizeof ver, "%ld", list[i].version);
        mem_free(sql);
        if (!(sql = read_file(path, &len))) {
            seterr(err, errlen, "migrate: %s: %s", path, strerror(errno));
            goto done;
        }
        long long t0 = now_ms();
        PGresult *r = NULL;
        const char *vals[3] = {ver, list[i].name, sql};
        if (run(pg,
                "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATE_LOCK "); "
                "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint PRIMARY KEY, "
                "name text NOT NULL, checksum text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
                0, NULL, NULL, m, sizeof m) < 0 ||
            run(pg, "SELECT checksum = md5($2) FROM schema_migrations WHERE version = $1", 2,
                (const char *const[]){ver, sql}, &r, m, sizeof m) < 0)
            goto sqlfail;
        if (PQntuples(r) > 0) {
            if (PQgetvalue(r, 0, 0)[0] != 't')
                log_warn("migration changed after it was applied; not re-run", "file=%s",
                         list[i].name);
            PQclear(r);
            if (run(pg, "COMMIT", 0, NULL, NULL, m, sizeof m) < 0) goto sqlfail;
            continue;
        }
        PQclear(r);
        if (run(pg, sql, 0, NULL, NULL, m, sizeof m) < 0) goto sqlfail;
        if (run(pg, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, md5($3))",
                3, vals, NULL, m, sizeof m) < 0 ||
            run(pg, "COMMIT", 0, NULL, NULL, m, sizeof m) < 0)
            goto sqlfail;
        applied++;
        log_info("migration applied", "file=%s ms=%lld", list[i].name, now_ms() - t0);
        continue;
    sqlfail:
        seterr(err, errlen, "migrate: %s: %s", list[i].name, m);
        PQclear(PQexec(pg, "ROLLBACK"));
        goto done;
    }
    log_info("migrations up to date", "applied=%d files=%zu", applied, n);
    rc = 0;
done:
    if (pg) PQfinish(pg);
    mem_free(sql);
    mem_free(list);
    return rc;
}
