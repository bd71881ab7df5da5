/* The job scheduler: one thread that decides when each job registered with
 * tf.job is due, and a few worker threads, each with its own Lua VM, that run
 * them. A job never runs twice at once; across instances sharing a database
 * each scheduled slot runs once (an advisory transaction lock plus the slot
 * recorded in job_state). Running jobs finish on the code they started with;
 * reloads take effect at the next run. */
#ifndef SCHED_H
#define SCHED_H

#include <stddef.h>

struct lvm_host;
struct sched;

/* Starts the scheduler and `workers` job threads over the current
 * generation. NULL with err on failure. */
struct sched *sched_start(struct lvm_host *host, int workers, char *err, size_t errlen);

/* Stops scheduling, waits up to grace_ms for running jobs, then aborts them
 * (their next Lua instruction raises) and joins every thread. */
void sched_stop(struct sched *s, int grace_ms);

/* A new generation was published: re-plan now rather than at the next tick.
 * NULL is ignored. */
void sched_wake(struct sched *s);

/* GET /admin/jobs: every job with its schedule, state and recent runs, as
 * JSON. Caller frees with mem_free. NULL when out of memory. */
char *sched_status_json(struct sched *s, size_t *len);

/* Runs job `name` now (after a run in progress, if any) and waits for it.
 * Returns 0 with the run's record as JSON in *record (mem_free), -1 when no
 * such job exists, -2 when the scheduler stopped first. */
int sched_run_now(struct sched *s, const char *name, char **record);

/* The most POST /admin/jobs/{name}/run reads: its body holds options only. */
#define SCHED_RUN_MAX_BODY 4096

/* POST /admin/jobs/{name}/run with its body (len bytes, may be empty or
 * NULL): options as a JSON object, {"reset_watermark": true} to run
 * without the stored watermark (rebuild from scratch; the new one replaces
 * it only when the run succeeds). As sched_run_now, plus -3 with a message
 * in err when the body is not valid options (answer 400). */
int sched_run_request(struct sched *s, const char *name, const char *body, size_t len, char **record, char *err,
                      size_t errlen);

#endif
