/* The scheduler's statements (sched_db.h). A run holds its connection in a
 * transaction for its whole duration: pg_try_advisory_xact_lock makes it
 * exclusive across instances and works through PgBouncer in transaction
 * mode (a session lock would not), and job_state.last_slot_ms makes each
 * scheduled slot run once even when instances' clocks or wake-ups differ.
 * The job's own tf.db calls use other connections. */
#include "sched_db.h"

#include "db.h"
#include "mem.h"

#include <stdio.h>
#include <string.h>

/* Runs sql with n text parameters; the first value of the first row goes
 * into *first when asked ("" when there is none; mem_free), the row count
 * into *nrows. 0, or -1 with err. */
static int q(struct db_conn *c, const char *sql, int n, const char *const *vals, char **first,
             int *nrows, char *err, size_t errlen)
{
    PGresult *res = NULL;
    if (db_exec(c, sql, n, vals, NULL, &res, err, errlen) != DB_OK) return -1;
    if (nrows) *nrows = PQntuples(res);
    if (first) {
        int some = PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0);
        *first = mem_strdup(some ? PQgetvalue(res, 0, 0) : "");
    }
    PQclear(res);
    if (first && !*first) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int sched_db_claim(struct db_conn *c, const char *name, long long slot_ms, char **watermark,
                   char *note, size_t notelen, char *err, size_t errlen)
{
    char slot_s[32], *got = NULL;
    snprintf(slot_s, sizeof slot_s, "%lld", slot_ms);
    const char *v[2] = {name, slot_s};
    int nrows = 0;
    *watermark = NULL;
    if (q(c, "BEGIN", 0, NULL, NULL, NULL, err, errlen) ||
        q(c, "SELECT pg_try_advisory_xact_lock(hashtextextended('tickforge.job.' || $1, 0))", 1, v,
          &got, NULL, err, errlen))
        return -1;
    int locked = !strcmp(got, "t");
    mem_free(got);
    if (!locked) {
        snprintf(note, notelen, "running in another instance");
        return 1;
    }
    const char *claim =
        slot_ms
            ? "INSERT INTO job_state (name, last_slot_ms) VALUES ($1, $2) ON CONFLICT (name) DO "
              "UPDATE"
              " SET last_slot_ms = EXCLUDED.last_slot_ms WHERE job_state.last_slot_ms IS NULL"
              " OR job_state.last_slot_ms < EXCLUDED.last_slot_ms RETURNING coalesce(watermark, '')"
            : "INSERT INTO job_state (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = "
              "EXCLUDED.name"
              " RETURNING coalesce(watermark, '')";
    if (q(c, claim, slot_ms ? 2 : 1, v, watermark, &nrows, err, errlen)) return -1;
    if (nrows == 0) {
        mem_free(*watermark);
        *watermark = NULL;
        snprintf(note, notelen, "this slot already ran in another instance");
        return 1;
    }
    return 0;
}

int sched_db_record(struct db_conn *c, const struct sched_db_run *r, char *err, size_t errlen)
{
    char rows_s[32], dur_s[32], sched_s[32];
    snprintf(rows_s, sizeof rows_s, "%lld", r->rows);
    snprintf(dur_s, sizeof dur_s, "%.3f", r->duration_ms);
    snprintf(sched_s, sizeof sched_s, "%lld", r->scheduled_ms);
    int ok = !strcmp(r->result, "ok");
    const char *v1[2] = {r->name, ok ? r->watermark : r->error};
    const char *state =
        ok && r->watermark ? "UPDATE job_state SET watermark = $2, last_ok = now(), last_error = "
                             "NULL WHERE name = $1"
        : ok ? "UPDATE job_state SET last_ok = now(), last_error = NULL WHERE name = $1"
             : "UPDATE job_state SET last_error = $2 WHERE name = $1";
    if (q(c, state, ok && !r->watermark ? 1 : 2, v1, NULL, NULL, err, errlen)) return -1;
    const char *v2[9] = {r->name,  r->instance,           sched_s, dur_s, rows_s, r->result,
                         r->error, r->manual ? "t" : "f", r->note};
    if (q(c,
          "INSERT INTO job_runs (name, instance, scheduled, started, duration_ms, rows, result, "
          "error, manual, note)"
          " VALUES ($1, $2, to_timestamp($3::bigint / 1000.0), now() - make_interval(secs => "
          "$4::float8 / 1000),"
          " $4, $5, $6, $7, $8, $9)",
          9, v2, NULL, NULL, err, errlen))
        return -1;
    return q(
        c,
        "DELETE FROM job_runs WHERE name = $1 AND id <= (SELECT id FROM job_runs WHERE name = $1"
        " ORDER BY id DESC OFFSET 1000 LIMIT 1)", /* keep 1000 */
        1, v2, NULL, NULL, err, errlen);
}

int sched_db_commit(struct db_conn *c, char *err, size_t errlen)
{
    return q(c, "COMMIT", 0, NULL, NULL, NULL, err, errlen);
}
