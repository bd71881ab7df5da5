/* The single-candle lanes (see lane.h): requests that each store one candle
 * share tf_put_candles statements (candles.h, "the statement"), at most
 * `lanes` in flight, in arrival order. State is the one queue below under
 * its mutex; a request's struct single lives on its waiter's stack or in its
 * job. Never holds the mutex across a database call. */
#include "lane.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "mem.h"
#include "metrics.h"

/* ---- one statement for many requests ----
 * The EAs' commonest request carries one candle. At most `lanes` statements
 * storing such candles run at once. A request arriving while they all run
 * queues; when a statement's result arrives, its lane takes the queued
 * requests that can share the next statement (same policy and source, a bar
 * no other request in it has), sends it at once on the same connection, so
 * PostgreSQL never waits for a thread to wake, and hands it to the first of
 * them to collect (a lane without a connection hands it over unsent: its
 * new leader checks one out). One round trip, one transaction, one wake-up
 * of a server process for many requests. A request for a bar already in the
 * statement waits for the next one, so every request gets exactly the
 * status it would have got alone, in arrival order. A statement that fails
 * for a reason other than the database being unavailable is redone one
 * request at a time, so a bad neighbour costs nobody else their candle.
 * A request waits either blocking on its condition (threads) or, started
 * by lane_start, as a job its owner steps when woken (tasks). */

#define GROUP_MAX 64

struct single;

struct group {
    struct single *m[GROUP_MAX];
    struct candle items[GROUP_MAX];
    int n;
    int rc;   /* of sending, then of the whole */
    int sent; /* its statement is on its way */
    char err[256];
    struct candles_put pt;
};

struct single {
    struct db_pool *p;
    struct candle *it;
    enum candles_policy pol;
    const char *source;
    int state; /* QUEUED, LEAD (of g, sent on c, or unsent when c is NULL), DONE */
    int rc;
    char err[256];
    struct group *g;
    struct db_conn *c;
    pthread_cond_t cv;              /* a blocking waiter's */
    void (*wake)(struct single *s); /* a job's, instead (called under singles.mu) */
    struct single *next;
};
enum { QUEUED, LEAD, DONE };

static struct {
    pthread_mutex_t mu;
    struct single *head, **tail;
    int running; /* lanes with a statement in flight */
    int lanes;
} singles = {PTHREAD_MUTEX_INITIALIZER, NULL, &singles.head, 0, 1};

void lane_set(int lanes)
{
    pthread_mutex_lock(&singles.mu);
    singles.lanes = lanes < 1 ? 1 : lanes;
    pthread_mutex_unlock(&singles.mu);
}

/* Under singles.mu: s's state changed. */
static void notify(struct single *s)
{
    if (s->wake)
        s->wake(s);
    else
        pthread_cond_signal(&s->cv);
}

static int can_join(const struct single *s, const struct group *g)
{
    const struct single *l = g->m[0];
    if (s->p != l->p || s->pol != l->pol || strcmp(s->source, l->source) != 0) return 0;
    for (int i = 0; i < g->n; i++) {
        const struct candle *a = g->m[i]->it, *b = s->it;
        if (a->tf == b->tf && a->bucket_us == b->bucket_us && strcmp(a->symbol, b->symbol) == 0)
            return 0;
    }
    return 1;
}

/* Under the lock: a group led by `first`, with the queued requests that can
 * join it, in arrival order, its items copied. NULL when out of memory. */
static struct group *group_take(struct single *first)
{
    struct group *g = mem_alloc(sizeof *g);
    if (!g) return NULL;
    g->n = 0;
    g->m[g->n++] = first;
    for (struct single **q = &singles.head; *q && g->n < GROUP_MAX;) {
        struct single *s = *q;
        if (can_join(s, g)) {
            g->m[g->n++] = s;
            *q = s->next;
            if (!*q) singles.tail = q;
        } else {
            q = &s->next;
        }
    }
    g->rc = DB_OK;
    g->sent = 0;
    g->err[0] = 0;
    memset(&g->pt, 0, sizeof g->pt);
    for (int i = 0; i < g->n; i++) {
        g->items[i] = *g->m[i]->it;
        g->items[i].status = INGEST_VALID;
        g->items[i].leader = -1;
    }
    g->pt.items = g->items;
    g->pt.n = (size_t)g->n;
    return g;
}

/* Sends g's statement on c; a failure is kept in g for its leader. */
static void group_send(struct group *g, struct db_conn *c)
{
    g->rc = candles_put_send(c, &g->pt, g->m[0]->pol, g->m[0]->source, g->err, sizeof g->err);
    g->sent = g->rc == DB_OK;
}

/* Collects g's result into its requests: waits for it when res_rc is 1,
 * else takes res_rc/res/err as db_wait would have given them. */
static void group_finish(struct group *g, struct db_conn *c, int res_rc, PGresult *res,
                         const char *err)
{
    if (g->rc == DB_OK && res_rc == 1) {
        g->rc = candles_put_recv(c, &g->pt, g->err, sizeof g->err);
    } else if (g->rc == DB_OK) {
        g->rc = res_rc;
        if (res_rc == DB_OK)
            candles_put_apply(&g->pt, res);
        else
            snprintf(g->err, sizeof g->err, "%s", err);
    }
    candles_put_free(&g->pt);
    if (g->rc == DB_ERROR && g->n > 1 && c) { /* find the one that failed: each alone */
        for (int i = 0; i < g->n; i++) {
            struct single *s = g->m[i];
            s->rc = candles_put_rows(c, &g->items[i], 1, s->pol, s->source, s->err, sizeof s->err);
            if (s->rc == DB_OK) s->it->status = g->items[i].status;
        }
        return;
    }
    for (int i = 0; i < g->n; i++) {
        struct single *s = g->m[i];
        s->rc = g->rc;
        if (g->rc == DB_OK)
            s->it->status = g->items[i].status;
        else
            snprintf(s->err, sizeof s->err, "%s", g->err);
    }
    if (g->n > 1)
        metrics_add("tf_candles_shared_statement_total", NULL, g->n,
                    "Single-candle requests stored by a statement shared with other requests");
}

/* Answers the requests of g other than me. */
static void group_wake(struct group *g, const struct single *me)
{
    pthread_mutex_lock(&singles.mu);
    for (int i = 0; i < g->n; i++) {
        if (g->m[i] == me) continue;
        g->m[i]->state = DONE;
        notify(g->m[i]);
    }
    pthread_mutex_unlock(&singles.mu);
}

/* The lane's statement g (led by me, on c) is finished: hands the lane to
 * the next queued request, with the next statement already sent when c is
 * still good, answers g's other requests, frees g. Never waits. */
static void lane_next(struct group *g, struct single *me, struct db_pool *p, struct db_conn *c)
{
    if (g->rc != DB_OK && c) { /* a failed connection is not handed on */
        db_release(p, c);
        c = NULL;
    }
    /* With a connection in hand, send the next statement before waking
     * anyone; without one, answer first. */
    int woken = !c;
    if (woken) group_wake(g, me);
    for (;;) {
        pthread_mutex_lock(&singles.mu);
        struct single *next = singles.head;
        if (!next) {
            singles.running--;
            pthread_mutex_unlock(&singles.mu);
            if (c) db_release(p, c);
            break;
        }
        singles.head = next->next;
        if (!singles.head) singles.tail = &singles.head;
        struct group *ng = group_take(next);
        pthread_mutex_unlock(&singles.mu);
        if (ng && c && next->p != p) {
            db_release(p, c);
            c = NULL;
        }
        if (ng && c) group_send(ng, c);
        pthread_mutex_lock(&singles.mu);
        if (!ng) { /* out of memory: answer it, try the one after */
            next->rc = DB_ERROR;
            snprintf(next->err, sizeof next->err, "out of memory");
            next->state = DONE;
            notify(next);
            pthread_mutex_unlock(&singles.mu);
            continue;
        }
        next->g = ng;
        next->c = c;
        next->state = LEAD;
        notify(next);
        pthread_mutex_unlock(&singles.mu);
        break;
    }
    if (!woken) group_wake(g, me);
    mem_free(g);
}

int lane_store(struct db_pool *p, struct candle *it, enum candles_policy pol, const char *source,
               char *err, size_t errlen)
{
    struct single me = {.p = p, .it = it, .pol = pol, .source = source, .state = QUEUED};
    struct group *g = NULL;
    struct db_conn *c = NULL;
    pthread_cond_init(&me.cv, NULL);

    pthread_mutex_lock(&singles.mu);
    if (singles.running < singles.lanes) { /* a free lane: lead a statement */
        g = group_take(&me);
        singles.running += g != NULL;
    } else {
        *singles.tail = &me;
        singles.tail = &me.next;
        while (me.state == QUEUED)
            pthread_cond_wait(&me.cv, &singles.mu);
        g = me.g, c = me.c; /* handed over by the lane before me; NULL when DONE */
    }
    pthread_mutex_unlock(&singles.mu);
    if (me.state != DONE && !g) { /* out of memory for a group */
        me.rc = DB_ERROR;
        snprintf(me.err, sizeof me.err, "out of memory");
    }
    if (g) {
        if (!g->sent && g->rc == DB_OK) { /* handed over unsent: check a connection out for it */
            if ((c = db_acquire(p, &g->rc, g->err, sizeof g->err))) group_send(g, c);
        }
        group_finish(g, c, 1, NULL, NULL);
        lane_next(g, &me, p, c);
    }
    pthread_cond_destroy(&me.cv);
    if (me.rc != DB_OK) snprintf(err, errlen, "%s", me.err);
    return me.rc;
}

/* ---- storing without blocking ---- */

struct lane_job {
    struct db_pool *p;
    void (*wake)(void *ud);
    void *ud;
    long long deadline_ms;
    struct single me;
    struct group *g;
    struct db_conn *c;
    struct db_op op;
    enum { J_QUEUED, J_ACQ, J_WAIT } state;
};

static void job_single_wake(struct single *s)
{
    struct lane_job *j = (struct lane_job *)((char *)s - offsetof(struct lane_job, me));
    j->wake(j->ud);
}

static void job_op_done(struct db_op *op)
{
    struct lane_job *j = op->ud;
    j->wake(j->ud);
}

/* The job ends: its result, with the message in err. */
static int job_end(struct lane_job *j, int rc, const char *msg, char *err, size_t errlen)
{
    if (rc != DB_OK) snprintf(err, errlen, "%s", msg);
    mem_free(j);
    return rc;
}

static int job_step_collect(struct lane_job *j, int rc, char *err, size_t errlen);

/* Waits for the result of the lane's statement, sent on j->c. */
static int job_wait(struct lane_job *j)
{
    j->state = J_WAIT;
    j->op.done = job_op_done;
    j->op.ud = j;
    j->op.deadline_ms = j->deadline_ms;
    j->op.release = 0;
    db_wait_async(j->c, &j->op);
    return DB_PENDING;
}

/* Sends the lane's statement on j->c, or records why it could not. */
static int job_send(struct lane_job *j, char *err, size_t errlen)
{
    group_send(j->g, j->c);
    if (!j->g->sent) return job_step_collect(j, DB_ERROR, err, errlen);
    return job_wait(j);
}

/* The lane's statement is over (rc: DB_OK with j->op.res, or its failure). */
static int job_step_collect(struct lane_job *j, int rc, char *err, size_t errlen)
{
    struct group *g = j->g;
    if (g->sent)
        group_finish(g, j->c, j->op.rc, j->op.res, j->op.err);
    else
        group_finish(g, j->c, g->rc, NULL, g->err);
    j->op.res = NULL;
    lane_next(g, &j->me, j->p, j->c);
    j->g = NULL;
    j->c = NULL;
    return job_end(j, j->me.rc, j->me.err, err, errlen);
}

static int job_acquired(struct lane_job *j, int rc, char *err, size_t errlen)
{
    if (rc != DB_OK) {
        j->g->rc = rc;
        snprintf(j->g->err, sizeof j->g->err, "%.250s", j->op.err);
        return job_step_collect(j, rc, err, errlen);
    }
    j->c = j->op.conn;
    return job_send(j, err, errlen);
}

static int job_acquire(struct lane_job *j, char *err, size_t errlen)
{
    j->state = J_ACQ;
    j->op.done = job_op_done;
    j->op.ud = j;
    j->op.deadline_ms = j->deadline_ms;
    int rc = db_acquire_async(j->p, &j->op);
    if (rc == DB_PENDING) return DB_PENDING;
    j->state = J_WAIT; /* not waiting: the next step is now */
    return job_acquired(j, rc, err, errlen);
}

int lane_step(struct lane_job *j, char *err, size_t errlen)
{
    switch (j->state) {
    case J_QUEUED:
        pthread_mutex_lock(&singles.mu);
        if (j->me.state == QUEUED) { /* woken early: not its turn yet */
            pthread_mutex_unlock(&singles.mu);
            return DB_PENDING;
        }
        pthread_mutex_unlock(&singles.mu);
        if (j->me.state == DONE) return job_end(j, j->me.rc, j->me.err, err, errlen);
        j->g = j->me.g;
        j->c = j->me.c;
        if (!j->g->sent && j->g->rc == DB_OK) return job_acquire(j, err, errlen);
        if (!j->g->sent)
            return job_step_collect(j, j->g->rc, err,
                                    errlen); /* sending on the handed connection failed */
        return job_wait(j);
    case J_ACQ:
        if (j->op.rc == DB_OK) db_acquire_finish(&j->op);
        return job_acquired(j, j->op.rc, err, errlen);
    case J_WAIT:
        return job_step_collect(j, j->op.rc, err, errlen);
    }
    return DB_ERROR;
}

int lane_start(struct db_pool *p, struct candle *it, enum candles_policy pol, const char *source,
               long long deadline_ms, void (*wake)(void *ud), void *ud, struct lane_job **out,
               char *err, size_t errlen)
{
    *out = NULL;
    struct lane_job *j = mem_calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return DB_ERROR;
    }
    j->p = p;
    j->wake = wake;
    j->ud = ud;
    j->deadline_ms = deadline_ms;
    j->me = (struct single){
        .p = p, .it = it, .pol = pol, .source = source, .state = QUEUED, .wake = job_single_wake};
    pthread_mutex_lock(&singles.mu);
    if (singles.running < singles.lanes) { /* a free lane: lead a statement */
        j->g = group_take(&j->me);
        singles.running += j->g != NULL;
        pthread_mutex_unlock(&singles.mu);
        if (!j->g) return job_end(j, DB_ERROR, "out of memory", err, errlen);
        j->me.state = LEAD;
        *out = j;
        int rc = job_acquire(j, err, errlen);
        if (rc != DB_PENDING) *out = NULL;
        return rc;
    }
    *singles.tail = &j->me;
    singles.tail = &j->me.next;
    j->state = J_QUEUED;
    pthread_mutex_unlock(&singles.mu);
    *out = j;
    return DB_PENDING;
}
