/* The scheduler: planning, the run queue and the workers. One mutex guards
 * the job table and the run queue; the scheduler thread wakes at the
 * earliest due time (at least once a second, to notice reloads), and worker
 * threads take runs whose job is not already running. Job state is kept by
 * name, so it survives reloads: a job whose schedule changed is re-planned,
 * a removed one stops being scheduled, and a run in progress finishes in the
 * VM it started in.
 *
 * A run itself is two calls: with a database, sched_db_claim (the
 * cross-instance lock and the slot, in one transaction held for the whole
 * run) and sched_db_record (sched_db.c); in between, lua_job_run calls the
 * job with its ctx (lua_job.c). This file holds no SQL and builds no Lua
 * values. */
#include "sched.h"

#include "acct.h"
#include "clock.h"
#include "cron.h"
#include "db.h"
#include "log.h"
#include "lua_job.h"
#include "lvm.h"
#include "mem.h"
#include "metrics.h"
#include "sched_db.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS 256
#define MAX_WORKERS 16
#define HISTORY 20

struct record {
    long long scheduled_ms, started_ms;
    double duration_ms;
    long long rows;
    int manual;
    int reset; /* a manual run asked to start without the watermark */
    char result[12]; /* ok | error | timeout | skipped */
    char error[512]; /* why it failed: set only when result is error or timeout */
    char note[512];  /* what a run that did not fail says (the job's `note`, why it was skipped) */
};

struct job {
    char name[65];
    struct lvm_job def; /* cron is owned (mem_*) */
    struct cron cron;
    int present;        /* registered by the current generation */
    int running;
    long long next_ms;  /* the next slot (epoch ms) */
    long long fire_ms;  /* when to start it: the slot plus jitter */
    long long pending_slot; /* overlap = queue: a slot due while running */
    char *watermark;    /* JSON, kept in memory when there is no database */
    struct record hist[HISTORY];
    int nhist;
    long long runs, failures, skipped;
};

struct waiter {
    int done;
    char *record; /* JSON (mem_*) */
};

struct run_req {
    char name[65];
    long long slot_ms; /* 0 for a manual run */
    int reset;         /* manual runs: run without the stored watermark */
    struct waiter *w;  /* manual runs: who waits */
    struct run_req *next;
};

struct worker {
    struct sched *s;
    pthread_t th;
    struct lvm *vm;
    _Atomic(struct lvm *) running_vm; /* set while a job runs, for sched_stop's abort */
};

struct sched {
    struct lvm_host *host;
    pthread_mutex_t lock;
    pthread_cond_t wake_sched, wake_workers, done;
    struct job *jobs[MAX_JOBS];
    int njobs;
    struct run_req *queue, *queue_tail;
    long gen_id;
    int stopping;
    pthread_t th;
    struct worker workers[MAX_WORKERS];
    int nworkers;
};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static double mono_ms(void) /* with its fraction: job durations are reported in ms */
{
    return (double)clock_ns() / 1e6;
}

static void iso(char *out, size_t cap, long long ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* The first slot strictly after t. */
static long long next_slot(const struct job *j, long long t)
{
    if (j->def.every_ms > 0) return (t / j->def.every_ms + 1) * j->def.every_ms;
    time_t n = cron_next(&j->cron, (time_t)(t / 1000));
    return n < 0 ? -1 : (long long)n * 1000;
}

static long long jitter(const struct job *j)
{
    unsigned r = 0;
    if (j->def.jitter_ms <= 0 || getrandom(&r, sizeof r, 0) != sizeof r) return 0;
    return (long long)(r % (unsigned)(j->def.jitter_ms + 1));
}

static void plan(struct job *j, long long now)
{
    j->next_ms = next_slot(j, now);
    j->fire_ms = j->next_ms < 0 ? -1 : j->next_ms + jitter(j);
}

static int registered(const struct lvm_gen *g, const char *name)
{
    for (int k = 0; k < g->njobs; k++)
        if (!strcmp(g->jobs[k].name, name)) return 1;
    return 0;
}

/* Brings the job table in line with generation g. Called with the lock. */
static void reconcile(struct sched *s, struct lvm_gen *g)
{
    long long now = now_ms();
    for (int i = 0; i < s->njobs; i++) s->jobs[i]->present = 0;
    for (int k = 0; k < g->njobs; k++) {
        const struct lvm_job *d = &g->jobs[k];
        struct job *j = NULL;
        for (int i = 0; i < s->njobs && !j; i++)
            if (!strcmp(s->jobs[i]->name, d->name)) j = s->jobs[i];
        int fresh = !j;
        if (fresh) {
            int reuse = -1; /* the slot of a job no generation registers any more */
            for (int i = 0; i < s->njobs && reuse < 0; i++)
                if (!s->jobs[i]->running && !s->jobs[i]->pending_slot && !registered(g, s->jobs[i]->name)) reuse = i;
            if (reuse >= 0) {
                mem_free(s->jobs[reuse]->def.cron);
                mem_free(s->jobs[reuse]->watermark);
                memset(s->jobs[reuse], 0, sizeof *s->jobs[reuse]);
                j = s->jobs[reuse];
            } else if (s->njobs == MAX_JOBS || !(j = mem_calloc(1, sizeof *j))) {
                log_error("job table full or out of memory; job not scheduled", "job=%s", d->name);
                continue;
            } else {
                s->jobs[s->njobs++] = j;
            }
            snprintf(j->name, sizeof j->name, "%s", d->name);
        }
        int changed = fresh || j->def.every_ms != d->every_ms ||
                      (j->def.cron ? !d->cron || strcmp(j->def.cron, d->cron) : d->cron != NULL) ||
                      j->def.enabled != d->enabled || j->def.jitter_ms != d->jitter_ms;
        char *cron = d->cron ? mem_strdup(d->cron) : NULL;
        mem_free(j->def.cron);
        j->def = *d;
        j->def.name = NULL; /* the generation owns its strings; we keep j->name */
        j->def.cron = cron;
        if (cron) {
            char err[160];
            cron_parse(&j->cron, cron, err, sizeof err); /* validated at registration */
        }
        j->present = 1;
        if (changed) {
            plan(j, now);
            if (fresh && d->run_at_start && d->enabled) {
                j->next_ms = d->every_ms > 0 ? now / d->every_ms * d->every_ms : now;
                j->fire_ms = now;
            }
        }
    }
    s->gen_id = g->id;
}

static void enqueue(struct sched *s, const char *name, long long slot, struct waiter *w, int reset)
{
    struct run_req *r = mem_calloc(1, sizeof *r);
    if (!r) {
        log_error("out of memory; job run dropped", "job=%s", name);
        return;
    }
    snprintf(r->name, sizeof r->name, "%s", name);
    r->slot_ms = slot;
    r->w = w;
    r->reset = reset;
    if (s->queue_tail) s->queue_tail->next = r;
    else s->queue = r;
    s->queue_tail = r;
    pthread_cond_signal(&s->wake_workers);
}

static struct job *find(struct sched *s, const char *name)
{
    for (int i = 0; i < s->njobs; i++)
        if (!strcmp(s->jobs[i]->name, name)) return s->jobs[i];
    return NULL;
}

static void add_record(struct job *j, const struct record *r)
{
    memmove(j->hist + 1, j->hist, sizeof *j->hist * (HISTORY - 1));
    j->hist[0] = *r;
    if (j->nhist < HISTORY) j->nhist++;
    j->runs += strcmp(r->result, "skipped") != 0;
    j->failures += !strcmp(r->result, "error") || !strcmp(r->result, "timeout");
    j->skipped += !strcmp(r->result, "skipped");
    char labels[128];
    snprintf(labels, sizeof labels, "job=\"%s\",result=\"%s\"", j->name, r->result);
    metrics_add("tf_job_runs_total", labels, 1, "Job runs, by job and result");
    snprintf(labels, sizeof labels, "job=\"%s\"", j->name);
    if (strcmp(r->result, "skipped")) {
        metrics_observe("tf_job_duration_seconds", labels, r->duration_ms / 1e3, "Job run duration");
        metrics_add("tf_job_rows_total", labels, (double)r->rows, "Rows jobs reported touching");
    }
}

static void *sched_main(void *arg)
{
    struct sched *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        if (lvm_gen_current_id() != s->gen_id) {
            struct lvm_gen *g = lvm_gen_current();
            if (g) {
                reconcile(s, g);
                lvm_gen_unref(g);
            }
        }
        long long now = now_ms(), wake = now + 1000;
        for (int i = 0; i < s->njobs; i++) {
            struct job *j = s->jobs[i];
            if (!j->present || !j->def.enabled || j->fire_ms < 0) continue;
            if (now >= j->fire_ms) {
                if (!j->running) {
                    j->running = 1; /* reserved: no other run may start */
                    enqueue(s, j->name, j->next_ms, NULL, 0);
                } else if (j->def.overlap_queue) {
                    j->pending_slot = j->next_ms;
                } else {
                    struct record r = {.scheduled_ms = j->next_ms, .started_ms = now};
                    snprintf(r.result, sizeof r.result, "skipped");
                    snprintf(r.note, sizeof r.note, "the previous run was still running (overlap = skip)");
                    add_record(j, &r);
                }
                plan(j, now);
            }
            if (j->fire_ms >= 0 && j->fire_ms < wake) wake = j->fire_ms;
        }
        struct timespec ts = {(time_t)(wake / 1000), (long)(wake % 1000) * 1000000L};
        pthread_cond_timedwait(&s->wake_sched, &s->lock, &ts); /* CLOCK_REALTIME, like wake */
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- running one job ---- */

/* Runs one request in w's VM; fills rec. The job is marked running. With a
 * database the run holds one pooled connection in a transaction from its
 * claim (sched_db_claim) to its record (sched_db_record). */
static void execute(struct worker *w, const struct run_req *req, struct record *rec)
{
    struct sched *s = w->s;
    struct lvm_host *host = s->host;
    char err[2048];
    char *wm = NULL; /* the stored watermark (JSON of any size) */
    struct db_conn *c = NULL;
    int rc;
    rec->scheduled_ms = req->slot_ms;
    rec->started_ms = now_ms();
    double t0 = mono_ms();
    rec->manual = req->slot_ms == 0;
    rec->reset = req->reset;
    snprintf(rec->result, sizeof rec->result, "error");

    struct lvm_gen *g = lvm_gen(w->vm);
    int idx = -1;
    for (int i = 0; i < g->njobs; i++)
        if (!strcmp(g->jobs[i].name, req->name)) idx = i;
    if (idx < 0) {
        snprintf(rec->result, sizeof rec->result, "skipped");
        snprintf(rec->note, sizeof rec->note, "the job is no longer registered");
        return;
    }
    const char *name = req->name;
    if (host->db) {
        c = db_acquire(host->db, &rc, err, sizeof err);
        if (!c) {
            snprintf(rec->error, sizeof rec->error, "database unavailable: %.400s", err);
            return;
        }
        rc = sched_db_claim(c, name, req->slot_ms, &wm, rec->note, sizeof rec->note, err,
                            sizeof err);
        if (rc < 0) goto db_fail;
        if (rc > 0) {
            snprintf(rec->result, sizeof rec->result, "skipped");
            goto done;
        }
        if (req->reset) wm[0] = 0; /* job_state keeps the old one unless this run succeeds */
    } else {
        pthread_mutex_lock(&s->lock);
        struct job *j = find(s, name);
        wm = mem_strdup(j && j->watermark && !req->reset ? j->watermark : "");
        pthread_mutex_unlock(&s->lock);
        if (!wm) {
            snprintf(rec->error, sizeof rec->error, "out of memory");
            return;
        }
    }

    struct lua_job_run run = {.idx = idx,
                              .name = name,
                              .slot_ms = req->slot_ms,
                              .watermark = wm,
                              .instance = host->instance,
                              .manual = rec->manual,
                              .reset = rec->reset};
    atomic_store(&w->running_vm, w->vm);
    enum lvm_status st = lua_job_run(w->vm, &run, g->jobs[idx].timeout_ms, err, sizeof err);
    atomic_store(&w->running_vm, NULL);
    char *new_wm = run.watermark_out; /* ours to free */
    rec->rows = run.rows;
    snprintf(rec->note, sizeof rec->note, "%s", run.note);
    snprintf(rec->result, sizeof rec->result, st == LVM_OK && !run.error[0] ? "ok" : "error");
    acct_record(g->jobs[idx].acct, lvm_call_acct(w->vm), (long long)((mono_ms() - t0) * 1e6),
                st != LVM_OK || run.error[0]);
    if (st == LVM_OK && run.error[0]) {
        snprintf(rec->error, sizeof rec->error, "%s", run.error);
        log_error("job failed", "job=%s kind=error error=\"%s\"", name, rec->error);
    } else if (st != LVM_OK) {
        snprintf(rec->result, sizeof rec->result, st == LVM_TIMEOUT ? "timeout" : "error");
        snprintf(rec->error, sizeof rec->error, "%.500s", err);
        char q[1024];
        log_error("job failed", "job=%s kind=%s error=%s", name, rec->result, log_quote(q, sizeof q, err));
    }
    rec->duration_ms = mono_ms() - t0;
    if (!strcmp(rec->result, "ok")) {
        char q[600];
        log_write(rec->manual ? LOG_INFO : LOG_DEBUG, "job ran", "job=%s rows=%lld ms=%.1f manual=%d note=%s", name,
                  rec->rows, rec->duration_ms, rec->manual, log_quote(q, sizeof q, rec->note));
    }

    if (c) {
        struct sched_db_run r = {.name = name,
                                 .instance = host->instance,
                                 .scheduled_ms = req->slot_ms ? req->slot_ms : rec->started_ms,
                                 .duration_ms = rec->duration_ms,
                                 .rows = rec->rows,
                                 .result = rec->result,
                                 .error = rec->error[0] ? rec->error : NULL,
                                 .note = rec->note[0] ? rec->note : NULL,
                                 .manual = rec->manual,
                                 .watermark = new_wm};
        rc = sched_db_record(c, &r, err, sizeof err);
        mem_free(new_wm);
        if (rc) goto db_fail;
    } else if (new_wm) {
        pthread_mutex_lock(&s->lock);
        struct job *j = find(s, name);
        if (j && !strcmp(rec->result, "ok")) {
            mem_free(j->watermark);
            j->watermark = new_wm;
            new_wm = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        mem_free(new_wm);
    }
done:
    mem_free(wm);
    if (c) {
        if (sched_db_commit(c, err, sizeof err)) {
            snprintf(rec->result, sizeof rec->result, "error");
            snprintf(rec->error, sizeof rec->error, "database: %.400s", err);
        }
        db_release(host->db, c);
    }
    return;
db_fail:
    mem_free(wm);
    snprintf(rec->result, sizeof rec->result, "error");
    snprintf(rec->error, sizeof rec->error, "database: %.400s", err);
    db_release(host->db, c); /* rolls back an open transaction */
}

static size_t json_esc(char *out, size_t cap, const char *s)
{
    size_t j = 0;
    for (; s && *s && j + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') out[j++] = '\\', out[j++] = (char)ch;
        else if (ch == '\n') out[j++] = '\\', out[j++] = 'n';
        else if (ch >= 0x20) out[j++] = (char)ch;
    }
    out[j] = 0;
    return j;
}

/* One run as JSON. with_ok: the answer to POST /admin/jobs/{name}/run, which
 * starts with "ok" (did the run succeed) like every answer. */
static void record_json(struct db_buf *b, const char *name, const struct record *r, int with_ok)
{
    char sched_s[48], start_s[48], e[1100], n[1100];
    iso(sched_s, sizeof sched_s, r->scheduled_ms ? r->scheduled_ms : r->started_ms);
    iso(start_s, sizeof start_s, r->started_ms);
    json_esc(e, sizeof e, r->error);
    json_esc(n, sizeof n, r->note);
    if (with_ok) db_buf_printf(b, "{\"ok\":%s,", strcmp(r->result, "ok") ? "false" : "true");
    else db_buf_putc(b, '{');
    db_buf_printf(b, "\"job\":\"%s\",\"scheduled\":\"%s\",\"started\":\"%s\",\"duration_ms\":%.3f,\"rows\":%lld,"
                     "\"result\":\"%s\",\"manual\":%s,\"reset_watermark\":%s,\"error\":%s%s%s,\"note\":%s%s%s}",
                  name, sched_s, start_s, r->duration_ms, r->rows, r->result, r->manual ? "true" : "false",
                  r->reset ? "true" : "false",
                  r->error[0] ? "\"" : "null", r->error[0] ? e : "", r->error[0] ? "\"" : "",
                  r->note[0] ? "\"" : "null", r->note[0] ? n : "", r->note[0] ? "\"" : "");
}

static void refresh_vm(struct worker *w)
{
    if (w->vm && lvm_gen(w->vm)->id == lvm_gen_current_id()) return;
    struct lvm_gen *g = lvm_gen_current();
    if (!g) return;
    char err[2048];
    struct lvm *vm = lvm_new(LVM_PLUGIN, g, w->s->host, err, sizeof err);
    if (vm) {
        lvm_free(w->vm);
        w->vm = vm;
    } else {
        char q[1024];
        log_error("job worker could not load the current generation; keeps its VM", "gen=%ld error=%s", g->id,
                  log_quote(q, sizeof q, err));
    }
    lvm_gen_unref(g);
}

/* The first queued run that may start: a scheduled run (its job was
 * reserved when it was queued), or a manual run whose job is idle, which it
 * then reserves. Called with the lock. */
static struct run_req *take(struct sched *s)
{
    struct run_req *prev = NULL;
    for (struct run_req *r = s->queue; r; prev = r, r = r->next) {
        struct job *j = find(s, r->name);
        if (r->slot_ms == 0) {
            if (j && j->running) continue;
            if (j) j->running = 1;
        }
        if (prev) prev->next = r->next;
        else s->queue = r->next;
        if (s->queue_tail == r) s->queue_tail = prev;
        r->next = NULL;
        return r;
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sched *s = w->s;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        struct run_req *req;
        while (!(req = take(s)) && !s->stopping) pthread_cond_wait(&s->wake_workers, &s->lock);
        if (!req) break; /* stopping */
        pthread_mutex_unlock(&s->lock);

        refresh_vm(w);
        struct record rec = {0};
        if (w->vm) {
            execute(w, req, &rec);
        } else {
            snprintf(rec.result, sizeof rec.result, "error");
            snprintf(rec.error, sizeof rec.error, "no plugin generation is loaded");
        }
        pthread_mutex_lock(&s->lock);
        struct job *j = find(s, req->name);
        if (j) {
            add_record(j, &rec);
            j->running = 0;
            if (j->pending_slot && !s->stopping) { /* overlap = queue */
                j->running = 1;
                enqueue(s, j->name, j->pending_slot, NULL, 0);
                j->pending_slot = 0;
            } else {
                /* a manual run waiting behind this one may now start */
                for (struct run_req **p = &s->queue; *p; p = &(*p)->next)
                    if (!strcmp((*p)->name, j->name)) pthread_cond_signal(&s->wake_workers);
            }
        }
        if (req->w) {
            struct db_buf b = {0};
            record_json(&b, req->name, &rec, 1);
            req->w->record = b.oom ? NULL : b.data;
            req->w->done = 1;
            pthread_cond_broadcast(&s->done);
        }
        pthread_cond_signal(&s->wake_sched);
        mem_free(req);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- public ---- */

struct sched *sched_start(struct lvm_host *host, int workers, char *err, size_t errlen)
{
    struct sched *s = mem_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->host = host;
    s->gen_id = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake_sched, NULL);
    pthread_cond_init(&s->wake_workers, NULL);
    pthread_cond_init(&s->done, NULL);
    if (workers < 1) workers = 1;
    if (workers > MAX_WORKERS) workers = MAX_WORKERS;
    for (int i = 0; i < workers; i++) {
        s->workers[i].s = s;
        if (pthread_create(&s->workers[i].th, NULL, worker_main, &s->workers[i]) != 0) break;
        s->nworkers++;
    }
    if (s->nworkers == 0 || pthread_create(&s->th, NULL, sched_main, s) != 0) {
        snprintf(err, errlen, "cannot start scheduler threads");
        s->stopping = 1;
        pthread_cond_broadcast(&s->wake_workers);
        for (int i = 0; i < s->nworkers; i++) pthread_join(s->workers[i].th, NULL);
        mem_free(s);
        return NULL;
    }
    return s;
}

void sched_stop(struct sched *s, int grace_ms)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    for (struct run_req *r = s->queue, *next; r; r = next) { /* runs not started are dropped */
        next = r->next;
        if (r->w) {
            r->w->done = 1;
            pthread_cond_broadcast(&s->done);
        }
        mem_free(r);
    }
    s->queue = s->queue_tail = NULL;
    pthread_cond_broadcast(&s->wake_sched);
    pthread_cond_broadcast(&s->wake_workers);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->th, NULL);

    long long until = now_ms() + grace_ms;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < s->nworkers; i++) busy += atomic_load(&s->workers[i].running_vm) != NULL;
        if (!busy) break;
        if (now_ms() >= until) {
            for (int i = 0; i < s->nworkers; i++) {
                struct lvm *vm = atomic_load(&s->workers[i].running_vm);
                if (vm) lvm_abort(vm);
            }
            log_warn("aborting jobs still running at shutdown", "grace_ms=%d", grace_ms);
            break;
        }
        usleep(10000);
    }
    for (int i = 0; i < s->nworkers; i++) {
        pthread_join(s->workers[i].th, NULL);
        lvm_free(s->workers[i].vm);
    }
    for (int i = 0; i < s->njobs; i++) {
        mem_free(s->jobs[i]->def.cron);
        mem_free(s->jobs[i]->watermark);
        mem_free(s->jobs[i]);
    }
    mem_free(s);
}

void sched_wake(struct sched *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->wake_sched);
    pthread_mutex_unlock(&s->lock);
}

char *sched_status_json(struct sched *s, size_t *len)
{
    struct db_buf b = {0};
    char e[256];
    json_esc(e, sizeof e, s->host->instance);
    db_buf_printf(&b, "{\"ok\":true,\"instance\":\"%s\",\"workers\":%d,\"jobs\":[", e, s->nworkers);
    pthread_mutex_lock(&s->lock);
    int first = 1;
    for (int i = 0; i < s->njobs; i++) {
        struct job *j = s->jobs[i];
        if (!j->present) continue;
        char next[48] = "";
        if (j->fire_ms >= 0) iso(next, sizeof next, j->fire_ms);
        db_buf_printf(&b, "%s{\"name\":\"%s\",", first ? "" : ",", j->name);
        first = 0;
        if (j->def.every_ms > 0) db_buf_printf(&b, "\"every_ms\":%lld,", j->def.every_ms);
        else db_buf_printf(&b, "\"cron\":\"%s\",", j->def.cron);
        db_buf_printf(&b, "\"enabled\":%s,\"running\":%s,\"overlap\":\"%s\",\"timeout_ms\":%d,\"next_run\":%s%s%s,"
                          "\"runs\":%lld,\"failures\":%lld,\"skipped\":%lld,\"history\":[",
                      j->def.enabled ? "true" : "false", j->running ? "true" : "false",
                      j->def.overlap_queue ? "queue" : "skip", j->def.timeout_ms, *next ? "\"" : "null", next,
                      *next ? "\"" : "", j->runs, j->failures, j->skipped);
        for (int k = 0; k < j->nhist; k++) {
            if (k) db_buf_putc(&b, ',');
            record_json(&b, j->name, &j->hist[k], 0);
        }
        db_buf_printf(&b, "]}");
    }
    pthread_mutex_unlock(&s->lock);
    db_buf_printf(&b, "]}");
    if (b.oom) {
        db_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

static int run_now(struct sched *s, const char *name, int reset, char **record)
{
    struct waiter w = {0};
    pthread_mutex_lock(&s->lock);
    struct job *j = find(s, name);
    if (!j || !j->present || s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    enqueue(s, name, 0, &w, reset);
    /* Bounded: the run and any run ahead of it are killed at their timeouts. */
    while (!w.done) pthread_cond_wait(&s->done, &s->lock);
    pthread_mutex_unlock(&s->lock);
    *record = w.record;
    return *record ? 0 : -2;
}

int sched_run_now(struct sched *s, const char *name, char **record)
{
    return run_now(s, name, 0, record);
}

int sched_run_request(struct sched *s, const char *name, const char *body, size_t len, char **record, char *err,
                      size_t errlen)
{
    int reset = 0;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) i++;
    if (i < len) { /* an empty body means no options */
        if (len > SCHED_RUN_MAX_BODY) {
            snprintf(err, errlen, "the body is larger than %d bytes", SCHED_RUN_MAX_BODY);
            return -3;
        }
        cJSON *j = cJSON_ParseWithLength(body, len);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            snprintf(err, errlen, "the body must be a JSON object such as {\"reset_watermark\": true}, or empty");
            return -3;
        }
        for (cJSON *f = j->child; f; f = f->next) {
            if (strcmp(f->string, "reset_watermark")) {
                snprintf(err, errlen, "unknown option '%.64s' (the options are: reset_watermark)", f->string);
                cJSON_Delete(j);
                return -3;
            }
            if (!cJSON_IsBool(f)) {
                snprintf(err, errlen, "reset_watermark must be true or false");
                cJSON_Delete(j);
                return -3;
            }
            reset = cJSON_IsTrue(f);
        }
        cJSON_Delete(j);
    }
    return run_now(s, name, reset, record);
}
