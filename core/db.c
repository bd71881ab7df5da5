/* The libpq pool (see db.h). Slots are handed out under one mutex; connecting,
 * querying and closing happen outside it. Statements run asynchronously so
 * the statement timeout is a client-side deadline followed by a cancel
 * request: no SET, nothing that would leak between checkouts. The one piece
 * of session state is each connection's prepared-statement cache
 * (db_send_cached), which belongs to that session: it goes when the
 * connection is closed, and the pool stops preparing as soon as a session
 * turns out not to keep its statements (PgBouncer in transaction mode). */
#include "db.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define CANCEL_GRACE_MS 3000 /* how long a cancelled statement may take to stop */
#define PREP_MAX 128         /* statements a connection remembers, prepared or seen once */

/* One statement text in a connection's cache. Seen once it is only
 * remembered; seen again it is prepared (pipelined with its first run);
 * from then on it runs by name. Prepared entries are never evicted (no
 * DEALLOCATE): a full cache sends new text unnamed, as before. */
enum { PREP_SEEN = 1, PREP_READY, PREP_NEVER /* its result type changed: runs unnamed */ };
struct prep {
    uint64_t hash;
    char *sql;               /* mem_strdup'd; NULL: a free entry */
    unsigned long long used; /* the connection's tick at its last use */
    int state;
    char name[40];
};

/* Where a pipelined prepare + run stands in take_results. */
enum { PIPE_OFF = 0, PIPE_PREPARE, PIPE_STMT, PIPE_SYNC };

struct db_conn {
    PGconn *pg;
    struct db_pool *pool;
    int in_use;
    int broken;       /* close before the next use */
    char sqlstate[6];
    struct db_buf *copy_out; /* where COPY ... TO STDOUT data goes (db_set_copy_out) */
    int in_copy_out;         /* between its COPY OUT result and its last row */
    /* the prepared-statement cache of this session (dropped with it) */
    struct prep *preps; /* PREP_MAX entries, allocated at first use */
    unsigned long long tick;
    struct prep *sent;  /* the statement in flight went through the cache */
    int pipe;           /* PIPE_*: a prepare and its first run are in flight */
    const char *rs_sql; /* what to send again unprepared (db_send_cached's contract) */
    int rs_n;
    const char *const *rs_vals;
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
    struct db_op *wait_head, **wait_tail; /* checkouts waiting for a slot, in arrival order */
    /* the event thread (started by the first asynchronous wait) */
    int ev_started, ev_stop;
    int ep, efd;
    pthread_t ev_thread;
    struct db_op *incoming; /* result waits not yet watched (under mu) */
    _Atomic int no_prepare;   /* a session lost its prepared statements: stop preparing */
    _Atomic unsigned prep_seq; /* statement names: unique in this process */
    unsigned nonce;            /* and, behind a shared pooler, across processes */
};

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
    p->wait_tail = &p->wait_head;
    p->ep = p->efd = -1;
    p->nonce = ((unsigned)getpid() * 2654435761u) ^ (unsigned)clock_ms() ^ (unsigned)((uintptr_t)p >> 4);
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

static void ev_stop(struct db_pool *p);

/* Forgets the statements of c's session: it is being closed. */
static void prep_drop(struct db_conn *c)
{
    if (c->preps)
        for (int i = 0; i < PREP_MAX; i++) mem_free(c->preps[i].sql);
    mem_free(c->preps);
    c->preps = NULL;
    c->sent = NULL;
    c->pipe = PIPE_OFF;
}

/* Closes c's session and everything that belonged to it. */
static void conn_close(struct db_conn *c)
{
    PQfinish(c->pg);
    c->pg = NULL;
    c->broken = 0;
    prep_drop(c);
}

void db_pool_close(struct db_pool *p)
{
    if (!p) return;
    ev_stop(p);
    for (int i = 0; i < p->o.pool_size; i++)
        if (p->slots[i].pg) conn_close(&p->slots[i]);
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

/* Under mu: takes a free slot (a connected one if any), or NULL. */
static struct db_conn *slot_take(struct db_pool *p)
{
    struct db_conn *c = NULL;
    if (p->nfree == 0) return NULL;
    for (int i = 0; i < p->o.pool_size; i++) {
        struct db_conn *s = &p->slots[i];
        if (s->in_use) continue;
        if (!c || (!c->pg && s->pg)) c = s;
        if (c->pg) break;
    }
    c->in_use = 1;
    p->nfree--;
    return c;
}

/* Gives a slot back: to the first waiting checkout, else to the free list.
 * A blocking waiter is woken through the condition; an asynchronous one
 * through its done callback, called here once mu is released. */
static void slot_give(struct db_pool *p, struct db_conn *c)
{
    pthread_mutex_lock(&p->mu);
    struct db_op *w = p->wait_head;
    void (*done)(struct db_op *) = NULL; /* a blocking waiter's op is gone once mu is released */
    if (w) {
        p->wait_head = w->next;
        if (!p->wait_head) p->wait_tail = &p->wait_head;
        w->conn = c;
        w->rc = DB_OK;
        w->granted = 1;
        done = w->done;
        if (done) p->waiting--;
        else pthread_cond_broadcast(&p->cv);
    } else {
        c->in_use = 0;
        p->nfree++;
    }
    pthread_mutex_unlock(&p->mu);
    if (done) done(w);
}

/* Under mu: removes w from the waiting checkouts; 0 when it was not there. */
static int wait_unlink(struct db_pool *p, struct db_op *w)
{
    for (struct db_op **q = &p->wait_head; *q; q = &(*q)->next)
        if (*q == w) {
            *q = w->next;
            if (!*q) p->wait_tail = q;
            return 1;
        }
    return 0;
}

/* Makes a slot just taken usable: replaces a dead connection, connects
 * (backing off while the server stays down). On failure the slot goes back. */
static int slot_prepare(struct db_pool *p, struct db_conn *c, char *err, size_t errlen)
{
    metrics_add("tf_db_checkouts_total", NULL, 1, "Connections checked out of the pool");
    int need_connect = !c->pg;
    if (c->pg && (c->broken || looks_dead(c->pg))) {
        conn_close(c);
        need_connect = 1;
        pthread_mutex_lock(&p->mu);
        p->connected--;
        pthread_mutex_unlock(&p->mu);
    }
    if (need_connect) {
        pthread_mutex_lock(&p->mu);
        long long down_until = p->down_until;
        if (clock_ms() < down_until) {
            seterr(err, errlen, "%s (retrying in %lld ms)", p->last_err, down_until - clock_ms());
            pthread_mutex_unlock(&p->mu);
            goto fail;
        }
        pthread_mutex_unlock(&p->mu);
        char cerr[256];
        PGconn *pg = connect_now(p->conninfo, p->o.connect_timeout_s, cerr, sizeof cerr);
        pthread_mutex_lock(&p->mu);
        if (!pg) {
            p->down_until = clock_ms() + p->backoff_ms;
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
    return DB_OK;
fail:
    slot_give(p, c);
    return DB_UNAVAILABLE;
}

static void checkout_timed_out(struct db_pool *p, char *err, size_t errlen)
{
    metrics_add("tf_db_checkout_timeouts_total", NULL, 1, "Checkouts that found no free connection in time");
    seterr(err, errlen, "database unavailable: no free connection within %d ms", p->o.checkout_timeout_ms);
}

struct db_conn *db_acquire(struct db_pool *p, int *rc, char *err, size_t errlen)
{
    long long deadline = clock_ms() + p->o.checkout_timeout_ms;
    struct db_conn *c;
    *rc = DB_UNAVAILABLE;
    pthread_mutex_lock(&p->mu);
    c = p->wait_head ? NULL : slot_take(p); /* nobody overtakes a waiting checkout */
    if (!c) {
        struct db_op w = {0}; /* queued on our stack: unlinked before we return */
        *p->wait_tail = &w;
        // cppcheck-suppress autoVariables
        p->wait_tail = &w.next;
        p->waiting++;
        while (!w.granted) {
            long long left = deadline - clock_ms();
            if (left <= 0) break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += left / 1000;
            ts.tv_nsec += (left % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        }
        p->waiting--;
        if (!w.granted) wait_unlink(p, &w);
        c = w.granted ? w.conn : NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (!c) {
        checkout_timed_out(p, err, errlen);
        return NULL;
    }
    if ((*rc = slot_prepare(p, c, err, errlen)) != DB_OK) return NULL;
    return c;
}

static void ev_start(struct db_pool *p);

int db_acquire_async(struct db_pool *p, struct db_op *op)
{
    atomic_store(&op->aborted, 0);
    op->conn = NULL;
    op->granted = 0;
    op->rc = DB_UNAVAILABLE;
    op->err[0] = 0;
    op->pool = p;
    op->next = NULL;
    ev_start(p);
    pthread_mutex_lock(&p->mu);
    struct db_conn *c = p->wait_head ? NULL : slot_take(p);
    if (!c) {
        long long d = clock_ms() + p->o.checkout_timeout_ms;
        op->wait_until = op->deadline_ms && op->deadline_ms < d ? op->deadline_ms : d;
        *p->wait_tail = op;
        p->wait_tail = &op->next;
        p->waiting++;
        pthread_mutex_unlock(&p->mu);
        return DB_PENDING;
    }
    pthread_mutex_unlock(&p->mu);
    op->conn = c;
    return op->rc = db_acquire_finish(op);
}

int db_acquire_finish(struct db_op *op)
{
    if (!op->conn) return op->rc;
    struct db_conn *c = op->conn;
    if ((op->rc = slot_prepare(op->pool, c, op->err, sizeof op->err)) != DB_OK) op->conn = NULL;
    return op->rc;
}

void db_release(struct db_pool *p, struct db_conn *c)
{
    if (!c) return;
    c->copy_out = NULL; /* its COPY OUT buffer was the last user's */
    c->in_copy_out = 0;
    if (c->pg && !c->broken && (c->pipe || PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF))
        c->broken = 1; /* left with a pipeline's results unread */
    c->sent = NULL;
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
    if (c->broken && c->pg) {
        conn_close(c);
        pthread_mutex_lock(&p->mu);
        p->connected--;
        pthread_mutex_unlock(&p->mu);
    }
    slot_give(p, c);
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

static int send_again(struct db_conn *c, const PGresult *r);

/* Takes a pipeline's own results (the prepare's, the separators, the sync)
 * out of the way: 1 when r was one of them (and is freed), 0 when r is the
 * statement's to keep. r may be NULL (a separator). */
static int pipe_result(struct db_conn *c, PGresult *r)
{
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_EMPTY_QUERY;
    if (!r) { /* the end of one command's results */
        if (c->pipe != PIPE_SYNC) c->pipe++;
        return 1;
    }
    if (st == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        if (!PQexitPipelineMode(c->pg)) c->broken = 1; /* idle now: should not fail */
        c->pipe = PIPE_OFF;
        return 1;
    }
    if (st == PGRES_PIPELINE_ABORTED) { /* after the prepare failed: its error is kept */
        PQclear(r);
        return 1;
    }
    if (c->pipe == PIPE_PREPARE && st == PGRES_COMMAND_OK) {
        PQclear(r);
        if (c->sent) {
            c->sent->state = PREP_READY;
            metrics_add("tf_db_prepared_total", NULL, 1, "Statements prepared on a pool connection");
        }
        return 1;
    }
    return 0;
}

/* Reads the results that have arrived without blocking. Keeps the first
 * error (or the last success) in *keep. 0: more is coming (PQisBusy);
 * 1: all read (or the connection failed); 2: stopped at a COPY IN result,
 * left in *keep, when stop_at_copy. A statement of the cache that the
 * session refused for being prepared is sent again unprepared here (0). */
static int take_results(struct db_conn *c, PGresult **keep, int stop_at_copy)
{
    PGconn *pg = c->pg;
    for (;;) {
        if (c->in_copy_out) { /* COPY ... TO STDOUT: the rows that have come, into c->copy_out */
            char *row;
            int n;
            while ((n = PQgetCopyData(pg, &row, 1)) > 0) {
                if (c->copy_out) db_buf_put(c->copy_out, row, (size_t)n);
                PQfreemem(row);
            }
            if (n == 0) return 0; /* more is coming */
            c->in_copy_out = 0;   /* -1: done (-2: failed); the final result follows */
        }
        if (PQisBusy(pg)) return 0;
        PGresult *r = PQgetResult(pg);
        if (c->pipe && PQstatus(pg) == CONNECTION_OK) { /* (a lost connection: as ever, below) */
            if (!r && c->pipe == PIPE_SYNC) return 0; /* its sync has not come yet */
            if (pipe_result(c, r)) continue;
        }
        if (!r) {
            if (c->sent && *keep && send_again(c, *keep)) {
                PQclear(*keep);
                *keep = NULL;
                return 0;
            }
            c->sent = NULL;
            return 1;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_OUT) {
            PQclear(r);
            c->in_copy_out = 1;
            continue;
        }
        if (st == PGRES_COPY_IN && stop_at_copy) {
            if (*keep) PQclear(*keep);
            *keep = r;
            return 2;
        }
        int is_err = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE;
        if (!*keep || (is_err && PQresultStatus(*keep) != PGRES_FATAL_ERROR)) {
            if (*keep) PQclear(*keep);
            *keep = r;
        } else if (!is_err && PQresultStatus(*keep) != PGRES_FATAL_ERROR) {
            PQclear(*keep);
            *keep = r;
        } else {
            PQclear(r);
        }
        if (PQstatus(pg) != CONNECTION_OK) return 1;
    }
}

void db_set_copy_out(struct db_conn *c, struct db_buf *b)
{
    c->copy_out = b;
    c->in_copy_out = 0;
}

/* The socket failed while results were awaited. */
static int lost(struct db_conn *c, PGresult *keep, char *err, size_t errlen)
{
    if (keep) PQclear(keep);
    c->broken = 1;
    char m[256];
    copy_msg(m, sizeof m, PQerrorMessage(c->pg));
    metrics_add("tf_db_errors_total", "kind=\"unavailable\"", 1, "Statements that failed");
    seterr(err, errlen, "database unavailable: %s", m[0] ? m : "connection lost");
    return DB_UNAVAILABLE;
}

/* Turns what take_results kept into a return code; the result goes to *out
 * on success (or is freed). */
static int finish_results(struct db_conn *c, PGresult *keep, int cancelled, PGresult **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (!keep) {
        c->broken = PQstatus(c->pg) != CONNECTION_OK;
        return classify(c, NULL, err, errlen);
    }
    ExecStatusType st = PQresultStatus(keep);
    if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
        int rc = classify(c, keep, err, errlen);
        if (rc == DB_ERROR && strcmp(c->sqlstate, "57014") == 0) { /* ours, or the server's own */
            if (cancelled) seterr(err, errlen, "statement timeout: cancelled after %d ms", c->pool->o.statement_timeout_ms);
            rc = DB_TIMEOUT;
        }
        PQclear(keep);
        return rc;
    }
    *out = keep;
    return DB_OK;
}

static void send_cancel(PGconn *pg)
{
    PGcancel *cn = PQgetCancel(pg);
    char cerr[128];
    if (cn) {
        PQcancel(cn, cerr, sizeof cerr);
        PQfreeCancel(cn);
    }
}

/* Collects the results of what was sent, honouring the statement timeout.
 * Keeps the first error (or the last success) in *out. Stops early at a
 * COPY IN result when stop_at_copy. */
static int wait_results(struct db_conn *c, PGresult **out, int stop_at_copy, char *err,
                        size_t errlen)
{
    PGconn *pg = c->pg;
    int tmo = c->pool->o.statement_timeout_ms;
    long long deadline = tmo > 0 ? clock_ms() + tmo : 0;
    int cancelled = 0;
    PGresult *keep = NULL;
    *out = NULL;
    for (;;) {
        int t = take_results(c, &keep, stop_at_copy);
        if (t == 2) {
            *out = keep;
            return DB_OK;
        }
        if (t == 1) return finish_results(c, keep, cancelled, out, err, errlen);
        int wait = -1;
        if (deadline) {
            long long left = deadline - clock_ms();
            if (left <= 0) {
                if (cancelled) { /* the server ignores us: give the connection up */
                    c->broken = 1;
                    if (keep) PQclear(keep);
                    seterr(err, errlen, "database unavailable: statement did not stop after cancel");
                    return DB_UNAVAILABLE;
                }
                send_cancel(pg);
                cancelled = 1;
                deadline = clock_ms() + CANCEL_GRACE_MS;
                continue;
            }
            wait = (int)left;
        }
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0 && errno != EINTR) break;
        if (pr > 0 && !PQconsumeInput(pg)) break;
    }
    return lost(c, keep, err, errlen);
}

/* ---- the event thread: asynchronous result waits and checkout deadlines ----
 * One thread per pool watches the sockets of connections whose statements
 * were sent by db_wait_async (epoll, level-triggered), reads their results
 * as they arrive, cancels those past their deadline, and fails checkouts
 * that waited past theirs. It never runs caller code but the done
 * callbacks, which must only hand the result back (lvm_task_wake). */

/* Ends op: its socket is no longer watched; the callback gets it. */
static void ev_finish(struct db_pool *p, struct db_op **active, struct db_op *op)
{
    for (struct db_op **q = active; *q; q = &(*q)->next)
        if (*q == op) {
            *q = op->next;
            break;
        }
    if (op->fd >= 0) epoll_ctl(p->ep, EPOLL_CTL_DEL, op->fd, NULL);
    op->next = NULL;
    if (op->conn) snprintf(op->sqlstate, sizeof op->sqlstate, "%s", op->conn->sqlstate);
    if (op->release && op->conn) { /* the pool gets it back without waiting for the caller */
        db_release(p, op->conn);
        op->conn = NULL;
    }
    op->done(op);
}

/* Reads what arrived for op; ends it when complete. */
static void ev_pump(struct db_pool *p, struct db_op **active, struct db_op *op, int readable)
{
    struct db_conn *c = op->conn;
    if (readable && !PQconsumeInput(c->pg)) {
        op->rc = lost(c, op->keep, op->err, sizeof op->err);
        op->keep = NULL;
        ev_finish(p, active, op);
        return;
    }
    int t = take_results(c, &op->keep, op->stop_at_copy);
    if (t == 0) return;
    if (t == 2) {
        op->res = op->keep;
        op->rc = DB_OK;
    } else {
        op->rc = finish_results(c, op->keep, op->cancelled, &op->res, op->err, sizeof op->err);
    }
    op->keep = NULL;
    if (op->expired && op->rc != DB_OK) {
        seterr(op->err, sizeof op->err, atomic_load(&op->aborted) ? "cancelled: the request's client left while it waited"
                                                              : "cancelled: the request's time limit passed while it waited");
        op->rc = DB_TIMEOUT;
    }
    ev_finish(p, active, op);
}

static void *ev_main(void *arg)
{
    struct db_pool *p = arg;
    struct db_op *active = NULL;
    struct epoll_event evs[64];
    for (;;) {
        long long now = clock_ms(), next = now + 100;
        for (struct db_op *op = active; op; op = op->next) {
            long long d = op->cancelled ? op->stmt_deadline
                          : op->deadline_ms && (!op->stmt_deadline || op->deadline_ms < op->stmt_deadline) ? op->deadline_ms
                                                                                                         : op->stmt_deadline;
            if (d && d < next) next = d;
        }
        pthread_mutex_lock(&p->mu);
        for (struct db_op *w = p->wait_head; w; w = w->next)
            if (w->done && w->wait_until < next) next = w->wait_until;
        pthread_mutex_unlock(&p->mu);
        int n = epoll_wait(p->ep, evs, 64, next > now ? (int)(next - now) : 0);
        pthread_mutex_lock(&p->mu);
        struct db_op *in = p->incoming;
        p->incoming = NULL;
        int stop = p->ev_stop;
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < n; i++) {
            struct db_op *op = evs[i].data.ptr;
            if (!op) {
                uint64_t v;
                if (read(p->efd, &v, sizeof v) < 0) { /* nothing to drain */ }
                continue;
            }
            ev_pump(p, &active, op, 1);
        }
        while (in) { /* new waits: watch, then read what may be there already */
            struct db_op *op = in;
            in = op->next;
            op->next = active;
            active = op;
            struct epoll_event e = {.events = EPOLLIN, .data.ptr = op};
            op->fd = PQsocket(op->conn->pg);
            if (op->fd < 0 || epoll_ctl(p->ep, EPOLL_CTL_ADD, op->fd, &e) != 0) {
                op->fd = -1;
                op->rc = lost(op->conn, op->keep, op->err, sizeof op->err);
                op->keep = NULL;
                ev_finish(p, &active, op);
                continue;
            }
            ev_pump(p, &active, op, 0);
        }
        now = clock_ms();
        for (struct db_op *op = active, *nx; op; op = nx) {
            nx = op->next;
            if (op->cancelled) {
                if (now < op->stmt_deadline) continue;
                /* the server ignores the cancel: give the connection up */
                op->conn->broken = 1;
                if (op->keep) PQclear(op->keep);
                op->keep = NULL;
                seterr(op->err, sizeof op->err, "database unavailable: statement did not stop after cancel");
                op->rc = DB_UNAVAILABLE;
                ev_finish(p, &active, op);
                continue;
            }
            int req = (op->deadline_ms && now >= op->deadline_ms) || atomic_load(&op->aborted);
            int stmt = op->stmt_deadline && now >= op->stmt_deadline;
            if (!req && !stmt) continue;
            op->expired = req;
            send_cancel(op->conn->pg);
            op->cancelled = 1;
            op->stmt_deadline = now + CANCEL_GRACE_MS;
        }
        struct db_op *late = NULL;
        pthread_mutex_lock(&p->mu);
        for (struct db_op **q = &p->wait_head; *q;) {
            struct db_op *w = *q;
            if (w->done && (now >= w->wait_until || atomic_load(&w->aborted))) {
                *q = w->next;
                if (!*q) p->wait_tail = q;
                p->waiting--;
                w->next = late;
                late = w;
            } else {
                q = &w->next;
            }
        }
        pthread_mutex_unlock(&p->mu);
        while (late) {
            struct db_op *w = late;
            late = w->next;
            w->next = NULL;
            w->rc = DB_UNAVAILABLE;
            if (atomic_load(&w->aborted)) {
                w->rc = DB_TIMEOUT;
                seterr(w->err, sizeof w->err, "cancelled: the request's client left while it waited for a connection");
            } else if (w->deadline_ms && now >= w->deadline_ms)
                seterr(w->err, sizeof w->err, "cancelled: the request's time limit passed while it waited for a connection");
            else
                checkout_timed_out(p, w->err, sizeof w->err);
            w->done(w);
        }
        if (stop && !active) break;
    }
    return NULL;
}

static void ev_start(struct db_pool *p)
{
    pthread_mutex_lock(&p->mu);
    if (!p->ev_started) {
        p->ep = epoll_create1(EPOLL_CLOEXEC);
        p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
        if (p->ep >= 0 && p->efd >= 0 && epoll_ctl(p->ep, EPOLL_CTL_ADD, p->efd, &e) == 0 &&
            pthread_create(&p->ev_thread, NULL, ev_main, p) == 0)
            p->ev_started = 1;
        else
            log_error("db: cannot start the event thread; asynchronous waits will fail", NULL);
    }
    pthread_mutex_unlock(&p->mu);
}

static void ev_wake(struct db_pool *p)
{
    uint64_t one = 1;
    if (write(p->efd, &one, sizeof one) < 0) { /* the counter is saturated: a wake is pending anyway */ }
}

static void ev_stop(struct db_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int started = p->ev_started;
    p->ev_stop = 1;
    pthread_mutex_unlock(&p->mu);
    if (started) {
        ev_wake(p);
        pthread_join(p->ev_thread, NULL);
    }
    if (p->ep >= 0) close(p->ep);
    if (p->efd >= 0) close(p->efd);
}

void db_op_abort(struct db_op *op)
{
    atomic_store(&op->aborted, 1);
    if (op->pool) ev_wake(op->pool); /* its loop looks at the flag */
}

void db_wait_async(struct db_conn *c, struct db_op *op)
{
    struct db_pool *p = c->pool;
    int tmo = p->o.statement_timeout_ms;
    op->conn = c;
    op->pool = p;
    op->res = op->keep = NULL;
    op->rc = DB_UNAVAILABLE;
    op->err[0] = op->sqlstate[0] = 0;
    op->cancelled = op->expired = 0;
    atomic_store(&op->aborted, 0);
    op->fd = -1;
    op->stmt_deadline = tmo > 0 ? clock_ms() + tmo : 0;
    ev_start(p);
    pthread_mutex_lock(&p->mu);
    int ok = p->ev_started && !p->ev_stop;
    if (ok) {
        op->next = p->incoming;
        p->incoming = op;
    }
    pthread_mutex_unlock(&p->mu);
    if (ok) {
        ev_wake(p);
        return;
    }
    seterr(op->err, sizeof op->err, "database unavailable: the pool is closing");
    if (op->release) {
        c->broken = 1;
        db_release(p, c);
        op->conn = NULL;
    }
    op->done(op);
}

long long db_now_ms(void)
{
    return clock_ms();
}

/* Clears what the last statement left on c before a new one goes out; 0
 * with err when c has no session. */
static int send_ready(struct db_conn *c, char *err, size_t errlen)
{
    c->sqlstate[0] = '\0';
    c->sent = NULL;
    c->pipe = PIPE_OFF;
    if (c->pg) return 1;
    seterr(err, errlen, "database unavailable: not connected");
    return 0;
}

int db_send(struct db_conn *c, const char *sql, int n, const char *const *vals,
            const int *binary_lens, char *err, size_t errlen)
{
    int ok;
    if (!send_ready(c, err, errlen)) return DB_UNAVAILABLE;
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

/* ---- the prepared-statement cache ---- */

static uint64_t sql_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The entry of sql in c's cache, added (seen once) when new; NULL when the
 * cache is full of prepared statements or memory is short. */
static struct prep *prep_get(struct db_conn *c, const char *sql, int *added)
{
    *added = 0;
    if (!c->preps && !(c->preps = mem_calloc(PREP_MAX, sizeof *c->preps))) return NULL;
    uint64_t h = sql_hash(sql);
    struct prep *spare = NULL; /* a free entry, else the least recently seen unprepared one */
    for (int i = 0; i < PREP_MAX; i++) {
        struct prep *e = &c->preps[i];
        if (!e->sql) {
            if (!spare || spare->sql) spare = e;
            continue;
        }
        if (e->hash == h && strcmp(e->sql, sql) == 0) {
            e->used = ++c->tick;
            return e;
        }
        if (e->state == PREP_SEEN && (!spare || (spare->sql && e->used < spare->used))) spare = e;
    }
    if (!spare) return NULL;
    char *copy = mem_strdup(sql);
    if (!copy) return NULL;
    mem_free(spare->sql);
    spare->sql = copy;
    spare->hash = h;
    spare->used = ++c->tick;
    spare->state = PREP_SEEN;
    snprintf(spare->name, sizeof spare->name, "tf_%08x_%u", c->pool->nonce,
             atomic_fetch_add(&c->pool->prep_seq, 1) + 1);
    *added = 1;
    return spare;
}

int db_send_cached(struct db_conn *c, const char *sql, int n, const char *const *vals, char *err,
                   size_t errlen)
{
    struct db_pool *p = c->pool;
    if (n <= 0 || !c->pg || atomic_load(&p->no_prepare) || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return db_send(c, sql, n, vals, NULL, err, errlen);
    int added;
    struct prep *e = prep_get(c, sql, &added);
    if (!e || added || e->state == PREP_NEVER) return db_send(c, sql, n, vals, NULL, err, errlen);
    c->sqlstate[0] = '\0';
    c->pipe = PIPE_OFF;
    int ok;
    if (e->state == PREP_READY) {
        metrics_add("tf_db_prepared_hits_total", NULL, 1, "Statements run by name, prepared earlier on their connection");
        ok = PQsendQueryPrepared(c->pg, e->name, n, vals, NULL, NULL, 0);
    } else { /* seen before: prepare it and run it in one round trip */
        ok = PQenterPipelineMode(c->pg) && PQsendPrepare(c->pg, e->name, sql, n, NULL) &&
             PQsendQueryPrepared(c->pg, e->name, n, vals, NULL, NULL, 0) && PQpipelineSync(c->pg);
        c->pipe = PIPE_PREPARE;
    }
    if (!ok) {
        c->broken = 1;
        c->pipe = PIPE_OFF;
        char m[256];
        copy_msg(m, sizeof m, PQerrorMessage(c->pg));
        seterr(err, errlen, "database unavailable: %s", m);
        return DB_UNAVAILABLE;
    }
    c->sent = e;
    c->rs_sql = sql;
    c->rs_n = n;
    c->rs_vals = vals;
    return DB_OK;
}

/* After a statement of the cache failed with r, once all its results are
 * in: when the failure came from its being prepared, sends it again
 * unprepared (1). It ran outside a transaction block (db_send_cached), so
 * nothing else was undone with it. Two cases: the session does not keep
 * prepared statements (a pooler handing each transaction another server
 * session: "does not exist" / "already exists"), and then the whole pool
 * stops preparing; or the statement's result type changed under it (a
 * SELECT * after ALTER TABLE), and then that text runs unnamed from now on.
 * The resend writes on the waiting thread, which may be the event thread: a
 * statement's parameters fit in the socket buffer. */
static int send_again(struct db_conn *c, const PGresult *r)
{
    struct prep *e = c->sent;
    c->sent = NULL;
    if (PQresultStatus(r) != PGRES_FATAL_ERROR || PQstatus(c->pg) != CONNECTION_OK || c->broken ||
        PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF)
        return 0;
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!st) return 0;
    if (strcmp(st, "26000") == 0 || strcmp(st, "42P05") == 0) {
        if (!atomic_exchange(&c->pool->no_prepare, 1)) {
            char m[300];
            log_warn("db sessions do not keep prepared statements (a pooler in transaction mode?); "
                     "statements run unprepared from now on (database.prepare = false avoids this)",
                     "err=%s", log_quote(m, sizeof m, msg ? msg : st));
        }
        prep_drop(c);
    } else if (strcmp(st, "0A000") == 0 && msg && strstr(msg, "cached plan must not change result type")) {
        e->state = PREP_NEVER;
    } else {
        return 0;
    }
    metrics_add("tf_db_prepared_retries_total", NULL, 1, "Cached statements sent again unprepared");
    if (PQsendQueryParams(c->pg, c->rs_sql, c->rs_n, NULL, c->rs_vals, NULL, NULL, 0)) return 1;
    c->broken = 1;
    return 0;
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

int db_exec_cached(struct db_conn *c, const char *sql, int n, const char *const *vals, PGresult **res,
                   char *err, size_t errlen)
{
    if (res) *res = NULL;
    int rc = db_send_cached(c, sql, n, vals, err, errlen);
    return rc == DB_OK ? db_wait(c, res, err, errlen) : rc;
}

int db_copy_start(struct db_conn *c, const char *copy_sql, char *err, size_t errlen)
{
    if (!send_ready(c, err, errlen)) return DB_UNAVAILABLE;
    if (!PQsendQueryParams(c->pg, copy_sql, 0, NULL, NULL, NULL, NULL, 0)) {
        c->broken = 1;
        seterr(err, errlen, "database unavailable: %s", PQerrorMessage(c->pg));
        return DB_UNAVAILABLE;
    }
    return DB_OK;
}

int db_copy_data(struct db_conn *c, const char *data, size_t len, char *err, size_t errlen)
{
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
    return DB_OK;
}

int db_copy_in(struct db_conn *c, const char *copy_sql, const char *data, size_t len, long *rows,
               char *err, size_t errlen)
{
    PGresult *r = NULL;
    *rows = 0;
    int rc = db_copy_start(c, copy_sql, err, errlen);
    if (rc == DB_OK) rc = wait_results(c, &r, 1, err, errlen);
    if (rc != DB_OK) return rc;
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        PQclear(r);
        seterr(err, errlen, "not a COPY ... FROM STDIN statement");
        return DB_ERROR;
    }
    PQclear(r);
    /* Blocking writes: libpq flushes in chunks; a dead server fails them. */
    if ((rc = db_copy_data(c, data, len, err, errlen)) != DB_OK) return rc;
    rc = wait_results(c, &r, 0, err, errlen);
    if (rc != DB_OK) return rc;
    *rows = atol(PQcmdTuples(r));
    PQclear(r);
    return DB_OK;
}

int db_health(struct db_pool *p, char *err, size_t errlen)
{
    /* Never queue behind the requests: with every connection busy, the
     * database is up when they are connected and no connect is failing. */
    pthread_mutex_lock(&p->mu);
    struct db_conn *c = p->wait_head ? NULL : slot_take(p);
    int busy_ok = !c && p->connected > 0 && (p->down_until == 0 || clock_ms() >= p->down_until);
    pthread_mutex_unlock(&p->mu);
    if (!c) {
        if (!busy_ok) seterr(err, errlen, "database unavailable: no connection");
        return busy_ok ? 0 : -1;
    }
    int rc = slot_prepare(p, c, err, errlen);
    if (rc != DB_OK) return -1;
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
    int connected = p->connected, up = p->down_until == 0 || clock_ms() >= p->down_until;
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
        long long t0 = clock_ms();
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
        log_info("migration applied", "file=%s ms=%lld", list[i].name, clock_ms() - t0);
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
