/* The scheduler's SQL (sched_db.c): how a job run claims its slot across
 * instances and how it is recorded in job_state and job_runs. One run's
 * statements go through one pooled connection inside one transaction, which
 * the scheduler (sched.c) acquires and releases; nothing here plans or runs
 * a job. */
#ifndef SCHED_DB_H
#define SCHED_DB_H

#include <stddef.h>

struct db_conn;

/* Begins the run's transaction on c and claims the run: the job's advisory
 * transaction lock (one instance at a time), then its slot in job_state
 * (slot_ms 0 is a manual run, which claims no slot but makes the row).
 *  0: claimed; *watermark is the stored watermark as JSON, "" when none
 *     (mem_*, the caller frees it).
 *  1: not this instance's to run (the lock is held elsewhere, or the slot
 *     already ran); note says why. The transaction is open: commit it.
 * -1: a database error, in err; the caller releases c (rolling back). */
int sched_db_claim(struct db_conn *c, const char *name, long long slot_ms, char **watermark,
                   char *note, size_t notelen, char *err, size_t errlen);

/* What one finished run leaves in the database. */
struct sched_db_run {
    const char *name, *instance;
    long long scheduled_ms; /* its slot, or when a manual run started */
    double duration_ms;
    long long rows;
    const char *result; /* ok | error | timeout */
    const char *error;  /* NULL unless it failed */
    const char *note;   /* NULL when it said nothing */
    int manual;
    const char
        *watermark; /* the new watermark as JSON: kept only when result is ok; NULL keeps the old */
};

/* Records the run in the claimed transaction: job_state's watermark,
 * last_ok or last_error, and a job_runs row (the newest 1000 per job are
 * kept). 0, or -1 with err. */
int sched_db_record(struct db_conn *c, const struct sched_db_run *r, char *err, size_t errlen);

/* Commits the run's transaction (which releases the lock). 0, or -1 with err. */
int sched_db_commit(struct db_conn *c, char *err, size_t errlen);

#endif
