/* Jobs on the Lua side (lua_job.c): tf.job registration while plugins load,
 * its copy into the generation for the scheduler, and one run of a job in a
 * job worker's VM with its ctx. The scheduler (sched.c) decides when; the
 * run's bookkeeping SQL is in sched_db.c. Nothing here touches the
 * scheduler's state; only the job's own code reaches the database. */
#ifndef LUA_JOB_H
#define LUA_JOB_H

#include "lvm.h"

#include <stddef.h>

/* One run of a job: what the scheduler hands in, and what the job's answer
 * ({ rows =, note =, watermark = }) said. */
struct lua_job_run {
    int idx; /* the job's index in the VM's generation */
    const char *name;
    long long slot_ms;     /* the scheduled slot (epoch ms); 0 for a manual run */
    const char *watermark; /* JSON of the last good run's watermark; NULL or "" for none */
    const char *instance;
    int manual, reset; /* ctx.manual, ctx.reset_watermark */
    /* out */
    long long rows;
    char note[512];
    char error[512]; /* the answer was unusable (a watermark that is not JSON): the run failed */
    char *watermark_out; /* the new watermark as JSON (mem_*; the caller frees), NULL when none */
};

/* Calls the job with its ctx in vm, bounded like lvm_call (timeout_ms), and
 * reads its answer into r. LVM_OK with r->error set means the job returned
 * but its answer could not be kept. */
enum lvm_status lua_job_run(struct lvm *vm, struct lua_job_run *r, int timeout_ms, char *err,
                            size_t errlen);

#endif
