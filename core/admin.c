/* The built-in routes (see admin.h). /health never waits on the database:
 * it answers from a check at most a second old, refreshed in the background.
 * A reload or a job run is handed to a detached thread with the request
 * suspended; the thread leaves the answer in r->run and resumes it. */
#include "admin.h"

#include "acct.h"
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "gen.h"
#include "http.h"
#include "lvm.h"
#include "mem.h"
#include "metrics.h"
#include "sched.h"
#include "spool.h"

#include <cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum admin_route admin_find(const char *method, const char *path, int *method_ok)
{
    static const struct { const char *path, *method; enum admin_route id; } b[] = {
        {"/health", "GET", ADMIN_HEALTH},
        {"/metrics", "GET", ADMIN_METRICS},
        {"/admin/reload", "POST", ADMIN_RELOAD},
        {"/admin/status", "GET", ADMIN_STATUS},
        {"/admin/jobs", "GET", ADMIN_JOBS},
    };
    for (size_t i = 0; i < sizeof b / sizeof *b; i++)
        if (!strcmp(path, b[i].path)) {
            *method_ok = !strcmp(method, b[i].method) || (!strcmp(method, "HEAD") && !strcmp(b[i].method, "GET"));
            return b[i].id;
        }
    size_t n = strlen(path);
    if (!strncmp(path, "/admin/jobs/", 12) && n > 16 && !strcmp(path + n - 4, "/run") && !memchr(path + 12, '/', n - 16)) {
        *method_ok = !strcmp(method, "POST");
        return ADMIN_JOB_RUN;
    }
    return ADMIN_NONE;
}

unsigned admin_roles(enum admin_route id, const struct config *cfg)
{
    if (id == ADMIN_HEALTH) return 0;
    if (id == ADMIN_METRICS) return cfg->metrics_open ? 0 : ROLE_READ;
    return ROLE_ADMIN;
}

const char *admin_route_name(enum admin_route id)
{
    switch (id) {
    case ADMIN_HEALTH: return "/health";
    case ADMIN_METRICS: return "/metrics";
    case ADMIN_RELOAD: return "/admin/reload";
    case ADMIN_STATUS: return "/admin/status";
    case ADMIN_JOBS: return "/admin/jobs";
    case ADMIN_JOB_RUN: return "/admin/jobs/{name}/run";
    default: return "unmatched";
    }
}

/* ---- /health ---- */

static atomic_llong health_checked_ns; /* the database is checked at most once a second */
static atomic_int health_db_ok = 1;
static atomic_int health_running;

static void *health_check(void *arg)
{
    char err[256];
    atomic_store(&health_db_ok, db_health(arg, err, sizeof err) == 0);
    atomic_store(&health_running, 0);
    return NULL;
}

/* The last check's verdict; starts a new check in the background when it
 * is more than a second old. */
static int db_ok(struct db_pool *db)
{
    if (!db) return 1;
    long long now = clock_ns(), last = atomic_load(&health_checked_ns);
    int idle = 0;
    if (now - last > 1000000000LL && atomic_compare_exchange_strong(&health_running, &idle, 1)) {
        atomic_store(&health_checked_ns, now);
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &a, health_check, db) != 0) atomic_store(&health_running, 0);
        pthread_attr_destroy(&a);
    }
    return atomic_load(&health_db_ok);
}

static int send_health(struct http_req *r)
{
    char out[256];
    struct buf b;
    struct lvm_host *h = http_host(r->s);
    int ok = db_ok(h->db);
    buf_init(&b, out, sizeof out, sizeof out - 1);
    buf_puts(&b, ok ? "{\"status\":\"healthy\",\"version\":" : "{\"status\":\"unhealthy\",\"version\":");
    buf_json_str(&b, TF_VERSION, strlen(TF_VERSION));
    buf_puts(&b, ",\"generation\":");
    buf_json_int(&b, lvm_gen_current_id());
    buf_puts(&b, ",\"uptime_s\":");
    buf_json_int(&b, (long long)(time(NULL) - http_started(r->s)));
    buf_puts(&b, !h->db ? ",\"database\":\"not configured\"}" : ok ? ",\"database\":\"ok\"}" : ",\"database\":\"unavailable\"}");
    return http_send(r, ok ? 200 : 503, "application/json", b.p, b.len, 0);
}

static int send_metrics(struct http_req *r)
{
    struct lvm_host *h = http_host(r->s);
    metrics_set("tf_memory_c_bytes", NULL, (double)mem_in_use(), "Bytes allocated by the C core");
    metrics_set("tf_generation", NULL, (double)lvm_gen_current_id(), "The published config+plugins generation");
    metrics_set("tf_http_inflight", NULL, http_inflight(r->s), "Requests being served");
    metrics_set("tf_uptime_seconds", NULL, (double)(time(NULL) - http_started(r->s)), "Seconds since start");
    if (h->db) db_metrics(h->db);
    size_t len;
    char *text = metrics_render(&len);
    if (!text) return http_send_error(r, 500, "out of memory");
    return http_send(r, 200, "text/plain; version=0.0.4", text, len, 1);
}

/* GET /admin/status, written with cJSON (no fixed buffer: any number of
 * routes, warnings and accounting entries). */
static int send_status(struct http_req *r)
{
    struct http_server *s = r->s;
    struct gen_status *gs = mem_alloc(sizeof *gs);
    cJSON *j = cJSON_CreateObject();
    if (!gs || !j) {
        mem_free(gs);
        cJSON_Delete(j);
        return http_send_error(r, 500, "out of memory");
    }
    struct lvm_gen *g = lvm_gen_current();
    gen_status(http_gen(s), gs);
    cJSON_AddBoolToObject(j, "ok", 1);
    cJSON_AddStringToObject(j, "version", TF_VERSION);
    cJSON_AddNumberToObject(j, "generation", g ? (double)g->id : 0);
    cJSON_AddNumberToObject(j, "started", (double)http_started(s));
    cJSON_AddNumberToObject(j, "uptime_s", (double)(time(NULL) - http_started(s)));
    cJSON_AddNumberToObject(j, "inflight", http_inflight(s));
    cJSON_AddNumberToObject(j, "memory_c_bytes", (double)mem_in_use());
    cJSON_AddStringToObject(j, "config", gs->config_path);
    cJSON *lr = cJSON_AddObjectToObject(j, "last_reload");
    if (lr) {
        cJSON_AddBoolToObject(lr, "ok", gs->ok);
        cJSON_AddNumberToObject(lr, "at", (double)gs->at);
        cJSON_AddStringToObject(lr, "trigger", gs->trigger);
        if (gs->ok) cJSON_AddNullToObject(lr, "error");
        else cJSON_AddStringToObject(lr, "error", gs->error);
    }
    mem_free(gs);
    cJSON *routes = cJSON_AddArrayToObject(j, "routes");
    for (int i = 0; routes && g && i < g->nroutes; i++) {
        const struct lvm_route *rt = &g->routes[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddItemToArray(routes, o);
        cJSON_AddStringToObject(o, "method", rt->method);
        cJSON_AddStringToObject(o, "path", rt->path);
        cJSON_AddStringToObject(o, "auth", rt->roles & ROLE_ADMIN    ? "admin"
                                           : rt->roles & ROLE_INGEST ? "ingest"
                                           : rt->roles & ROLE_READ   ? "read"
                                                                     : "none");
        cJSON_AddNumberToObject(o, "max_body", (double)rt->max_body);
        cJSON_AddStringToObject(o, "plugin", rt->plugin ? rt->plugin : "");
    }
    cJSON *warnings = cJSON_AddArrayToObject(j, "warnings"); /* the generation's static-check warnings */
    for (const char *w = g ? g->warnings : NULL; warnings && w && *w;) {
        const char *nl = strchr(w, '\n');
        size_t len = nl ? (size_t)(nl - w) : strlen(w);
        char *line = mem_alloc(len + 1);
        if (line) {
            memcpy(line, w, len);
            line[len] = 0;
            cJSON_AddItemToArray(warnings, cJSON_CreateString(line));
            mem_free(line);
        }
        w = nl ? nl + 1 : w + len;
    }
    if (g) lvm_gen_unref(g);
    cJSON_AddItemToObject(j, "accounting", acct_to_json()); /* what each route and job cost since the start */
    cJSON_AddItemToObject(j, "spool", spool_to_json(http_host(s)->spool));
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) return http_send_error(r, 500, "out of memory");
    int ok = http_send(r, 200, "application/json", text, strlen(text), 0);
    cJSON_free(text);
    return ok;
}

/* ---- work on a thread of its own: reload, job runs ---- */

struct offload {
    struct http_req *r;
    char name[80];  /* the job, for a run */
    char why[256];  /* a 400: what is wrong with the run options */
    int done;       /* the answer below is ready */
    int status;
    char *body;     /* mem_* */
    size_t len;
};

static void offload_answer(struct offload *o, int status, const char *json)
{
    o->status = status;
    o->len = strlen(json);
    o->body = mem_strdup(json);
}

static void *offload_main(void *arg)
{
    struct offload *o = arg;
    struct http_req *r = o->r;
    char *out = mem_alloc(8192);
    if (!out) {
        o->status = 500;
    } else if (r->route == ADMIN_RELOAD) {
        char err[4096];
        int ok = gen_reload(http_gen(r->s), "http", err, sizeof err) == 0;
        cJSON *j = cJSON_CreateObject(); /* any error length: no fixed answer buffer */
        cJSON_AddBoolToObject(j, "ok", ok);
        cJSON_AddNumberToObject(j, "generation", (double)lvm_gen_current_id());
        if (!ok) cJSON_AddStringToObject(j, "error", err), cJSON_AddStringToObject(j, "request_id", r->rid);
        char *text = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        if (text) offload_answer(o, ok ? 200 : 422, text);
        else o->status = 500;
        cJSON_free(text);
    } else {
        char *record = NULL;
        int rc = sched_run_request(http_host(r->s)->sched, o->name, r->body, r->len, &record, o->why, sizeof o->why);
        if (rc == 0) {
            o->status = 200;
            o->body = record;
            o->len = strlen(record);
        } else {
            o->status = rc == -1 ? 404 : rc == -3 ? 400 : 503;
        }
    }
    mem_free(out);
    o->done = 1;
    http_resume(r); /* the mutex inside publishes o's fields to the worker */
    return NULL;
}

static int offload_start(struct http_req *r, const char *name)
{
    struct offload *o = mem_calloc(1, sizeof *o);
    if (!o) return http_send_error(r, 503, "out of memory");
    o->r = r;
    snprintf(o->name, sizeof o->name, "%s", name);
    r->run = o;
    http_suspend(r);
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &a, offload_main, o);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        o->done = 1;
        o->status = 503;
        http_resume(r);
    }
    return MHD_YES;
}

static int offload_finish(struct http_req *r)
{
    struct offload *o = r->run;
    r->run = NULL;
    int ok;
    if (o->body) ok = http_send(r, o->status, "application/json", o->body, o->len, 1);
    else if (o->status == 404) ok = http_send_error(r, 404, "no job with that name");
    else if (o->status == 400) ok = http_send_error(r, 400, o->why);
    else if (o->status == 503) ok = http_send_error(r, 503, r->route == ADMIN_JOB_RUN ? "the scheduler stopped before the run finished" : "could not start the work; retry later");
    else ok = http_send_error(r, 500, "out of memory");
    mem_free(o);
    return ok;
}

void admin_free(struct http_req *r)
{
    struct offload *o = r->run;
    if (!o) return;
    /* A suspended request is only freed once resumed, i.e. after the thread finished. */
    mem_free(o->body);
    mem_free(o);
    r->run = NULL;
}

int admin_serve(struct http_req *r)
{
    if (r->run) return offload_finish(r);
    switch (r->route) {
    case ADMIN_HEALTH: return send_health(r);
    case ADMIN_METRICS: return send_metrics(r);
    case ADMIN_STATUS: return send_status(r);
    case ADMIN_RELOAD: return offload_start(r, "");
    case ADMIN_JOBS:
    case ADMIN_JOB_RUN: {
        struct sched *sc = http_host(r->s)->sched;
        if (!sc) return http_send_error(r, 503, "the scheduler is not running in this instance (scheduler.enabled)");
        if (r->route == ADMIN_JOBS) {
            size_t len;
            char *out = sched_status_json(sc, &len);
            return out ? http_send(r, 200, "application/json", out, len, 1) : http_send_error(r, 500, "out of memory");
        }
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(r->url) - 16), r->url + 12);
        return offload_start(r, name);
    }
    default: return http_send_error(r, 404, "no route for this path");
    }
}
