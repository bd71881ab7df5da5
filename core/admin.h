/* The built-in routes, answered in C even when Lua is broken: GET /health,
 * GET /metrics, POST /admin/reload, GET /admin/status, GET /admin/jobs and
 * POST /admin/jobs/{name}/run. What may take long (a reload, a job run) runs
 * on a thread of its own while the request is suspended, so no worker waits. */
#ifndef ADMIN_H
#define ADMIN_H

struct config;
struct http_req;

enum admin_route {
    ADMIN_NONE = 0,
    ADMIN_HEALTH = -2,
    ADMIN_METRICS = -3,
    ADMIN_RELOAD = -4,
    ADMIN_STATUS = -5,
    ADMIN_JOBS = -6,
    ADMIN_JOB_RUN = -7,
};

/* The built-in route for path, or ADMIN_NONE; *method_ok says whether
 * method is the one it answers. */
enum admin_route admin_find(const char *method, const char *path, int *method_ok);
unsigned admin_roles(enum admin_route id, const struct config *cfg); /* ROLE_* a key needs */
const char *admin_route_name(enum admin_route id);                   /* for logs and metrics */

/* Answers r (r->route is an admin route), now or, for a reload or a job run,
 * after suspending it (then again when resumed). MHD_YES/MHD_NO. */
int admin_serve(struct http_req *r);
/* Frees what a suspended admin request still holds (it was aborted). */
void admin_free(struct http_req *r);

#endif
