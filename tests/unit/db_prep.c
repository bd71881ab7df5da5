/* Unit tests for the prepared-statement cache of core/db.c (db_send_cached)
 * against the real private cluster: a repeated statement is prepared once
 * per connection and answers as before, its errors are the unprepared ones,
 * schema changes, killed backends, transactions, timeouts and a session that
 * loses its statements (a pooler) all keep working, blocking or not. */
#include "db.h"
#include "db_fixture.h"
#include "unit.h"

#include <pthread.h>
#include <time.h>

static const char *ci;

static struct db_pool *open_pool(int size, int stmt_ms)
{
    struct db_options o = {.pool_size = size, .checkout_timeout_ms = 2000, .connect_timeout_s = 2,
                           .statement_timeout_ms = stmt_ms};
    char err[256];
    struct db_pool *p = db_pool_open(ci, &o, err, sizeof err);
    if (!p) printf("# %s\n", err);
    return p;
}

/* The first value of sql (no parameters, never cached) on c, or "ERROR ...". */
static const char *value_on(struct db_conn *c, const char *sql)
{
    static char buf[300];
    char err[256];
    PGresult *r = NULL;
    if (db_exec(c, sql, 0, NULL, NULL, &r, err, sizeof err) != DB_OK) {
        snprintf(buf, sizeof buf, "ERROR %s", err);
        return buf;
    }
    snprintf(buf, sizeof buf, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "(none)");
    PQclear(r);
    return buf;
}

static int prepared_count(struct db_conn *c)
{
    return atoi(value_on(c, "SELECT count(*) FROM pg_prepared_statements"));
}

/* One statement through the cache: its rc, first value (or "") in out. */
static int run1(struct db_conn *c, const char *sql, const char *arg, char *out, size_t n, char *err, size_t errlen)
{
    PGresult *r = NULL;
    const char *vals[1] = {arg};
    int rc = db_exec_cached(c, sql, 1, vals, &r, err, errlen);
    out[0] = '\0';
    if (rc == DB_OK && PQntuples(r) && PQnfields(r)) snprintf(out, n, "%s", PQgetvalue(r, 0, 0));
    if (r) PQclear(r);
    return rc;
}

/* ---- asynchronous waits (db_wait_async), as the handler tasks use them ---- */

struct waiter {
    struct db_op op;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void waiter_done(struct db_op *op)
{
    struct waiter *w = op->ud;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* db_send_cached + db_wait_async, waited for here; the result in w->op. */
static int run_async(struct waiter *w, struct db_conn *c, const char *sql, const char *arg, int release)
{
    memset(w, 0, sizeof *w);
    w->op.release = release;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->op.done = waiter_done;
    w->op.ud = w;
    const char *vals[1] = {arg};
    int rc = db_send_cached(c, sql, 1, vals, w->op.err, sizeof w->op.err);
    if (rc != DB_OK) return rc;
    db_wait_async(c, &w->op);
    pthread_mutex_lock(&w->mu);
    while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return w->op.rc;
}

TEST(a_repeated_statement_is_prepared_once_and_answers_as_before)
{
    struct db_pool *p = open_pool(1, 0);
    int rc;
    char err[256] = "", out[64], want[64];
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    CHECK(c != NULL);
    if (!c) return;
    const char *sql = "SELECT $1::int * 2 AS v";
    for (int i = 0; i < 10; i++) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", i);
        snprintf(want, sizeof want, "%d", i * 2);
        CHECK_INT(run1(c, sql, arg, out, sizeof out, err, sizeof err), DB_OK);
        CHECK_STR(out, want);
        /* seen once: unnamed; from the second run on: prepared, once */
        CHECK_INT(prepared_count(c), i == 0 ? 0 : 1);
    }
    CHECK(strstr(value_on(c, "SELECT string_agg(statement, ';') FROM pg_prepared_statements"), "$1::int * 2") != NULL);
    /* a NULL parameter, and a statement seen once, or without parameters, is not prepared */
    CHECK_INT(run1(c, "SELECT coalesce($1::text, 'null') AS v", NULL, out, sizeof out, err, sizeof err), DB_OK);
    CHECK_STR(out, "null");
    CHECK_INT(db_exec_cached(c, "SELECT 1", 0, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(db_exec_cached(c, "SELECT 1", 0, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(prepared_count(c), 1);
    CHECK_INT(run1(c, "SELECT coalesce($1::text, 'null') AS v", "x", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_STR(out, "x");
    CHECK_INT(prepared_count(c), 2);
    db_release(p, c);
    /* the next checkout has the same session and its statements */
    c = db_acquire(p, &rc, err, sizeof err);
    CHECK_INT(run1(c, sql, "21", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_STR(out, "42");
    CHECK_INT(prepared_count(c), 2);
    db_release(p, c);
    db_pool_close(p);
}

TEST(errors_of_a_prepared_statement_are_those_of_the_unprepared_one)
{
    struct db_pool *p = open_pool(1, 0);
    int rc;
    char err[256] = "", out[64], first[256] = "";
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    if (!c) return;
    db_exec(c, "CREATE TABLE prep_u (k int PRIMARY KEY)", 0, NULL, NULL, NULL, err, sizeof err);
    struct {
        const char *sql, *arg, *state;
    } cases[] = {
        {"SELECT 1 / $1::int AS v", "0", "22012"},                /* at run time */
        {"SELEC $1::int", "1", "42601"},                          /* at parse time: the prepare fails */
        {"SELECT $1::int FROM prep_nowhere", "1", "42P01"},       /* at analysis */
        {"INSERT INTO prep_u VALUES ($1::int)", "7", "23505"},    /* the first run stores it */
        {"SELECT $1::int AS v", "not a number", "22P02"},         /* a bad parameter */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int i = 0; i < 4; i++) { /* unnamed, prepare + run, by name, by name */
            rc = run1(c, cases[k].sql, cases[k].arg, out, sizeof out, err, sizeof err);
            if (k == 3 && i == 0) {
                CHECK_INT(rc, DB_OK);
                continue;
            }
            CHECK_INT(rc, DB_ERROR);
            CHECK_STR(db_sqlstate(c), cases[k].state);
            if (i == 0 || (k == 3 && i == 1)) snprintf(first, sizeof first, "%s", err);
            else CHECK_STR(err, first);
        }
        /* the same as without the cache */
        const char *vals[1] = {cases[k].arg};
        CHECK_INT(db_exec(c, cases[k].sql, 1, vals, NULL, NULL, err, sizeof err), DB_ERROR);
        CHECK_STR(err, first);
        CHECK_STR(db_sqlstate(c), cases[k].state);
    }
    /* the connection is fine after all that, and only the statements that parse were prepared */
    CHECK_INT(run1(c, "SELECT $1::int * 2 AS v", "4", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_STR(out, "8");
    CHECK_INT(prepared_count(c), 3);
    db_release(p, c);
    db_pool_close(p);
}

TEST(a_schema_change_under_a_prepared_statement_is_survived)
{
    struct db_pool *p = open_pool(1, 0);
    int rc;
    char err[256] = "", out[64];
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    if (!c) return;
    CHECK_INT(db_exec(c, "CREATE TABLE prep_s (a int, b text)", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(db_exec(c, "INSERT INTO prep_s VALUES (1, 'one')", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    const char *star = "SELECT * FROM prep_s WHERE a = $1::int";
    const char *named = "SELECT b FROM prep_s WHERE a = $1::int";
    for (int i = 0; i < 3; i++) {
        CHECK_INT(run1(c, star, "1", out, sizeof out, err, sizeof err), DB_OK);
        CHECK_INT(run1(c, named, "1", out, sizeof out, err, sizeof err), DB_OK);
        CHECK_STR(out, "one");
    }
    CHECK_INT(prepared_count(c), 2);
    /* a column more: SELECT * changes its result type ("cached plan must not
     * change result type"): run again unprepared, and unprepared from then on */
    CHECK_INT(db_exec(c, "ALTER TABLE prep_s ADD COLUMN c text DEFAULT 'x'", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    for (int i = 0; i < 3; i++) {
        PGresult *r = NULL;
        const char *vals[1] = {"1"};
        CHECK_INT(db_exec_cached(c, star, 1, vals, &r, err, sizeof err), DB_OK);
        if (r) {
            CHECK_INT(PQnfields(r), 3);
            CHECK_STR(PQgetvalue(r, 0, 2), "x");
            PQclear(r);
        }
        CHECK_INT(run1(c, named, "1", out, sizeof out, err, sizeof err), DB_OK);
        CHECK_STR(out, "one");
    }
    /* the table dropped: the error as ever; made again: planned again */
    CHECK_INT(db_exec(c, "DROP TABLE prep_s", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(run1(c, named, "1", out, sizeof out, err, sizeof err), DB_ERROR);
    CHECK_STR(db_sqlstate(c), "42P01");
    CHECK(strstr(err, "prep_s") != NULL);
    CHECK_INT(db_exec(c, "CREATE TABLE prep_s (a bigint, b text)", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(db_exec(c, "INSERT INTO prep_s VALUES (1, 'uno')", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(run1(c, named, "1", out, sizeof out, err, sizeof err), DB_OK);
        CHECK_STR(out, "uno");
    }
    db_release(p, c);
    db_pool_close(p);
}

TEST(a_killed_backend_takes_its_statements_and_the_next_session_prepares_again)
{
    struct db_pool *p = open_pool(1, 0);
    int rc;
    char err[256] = "", out[64], pid[32];
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    if (!c) return;
    for (int i = 0; i < 3; i++) CHECK_INT(run1(c, "SELECT $1::int + 1 AS v", "1", out, sizeof out, err, sizeof err), DB_OK);
    snprintf(pid, sizeof pid, "%s", value_on(c, "SELECT pg_backend_pid()"));
    db_release(p, c);
    char kill[96];
    snprintf(kill, sizeof kill, "SELECT pg_terminate_backend(%s)", pid);
    CHECK_STR(fixture_value(kill), "t");
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    c = db_acquire(p, &rc, err, sizeof err); /* a new session: the cache went with the old one */
    CHECK(c != NULL);
    if (!c) return;
    CHECK(strcmp(value_on(c, "SELECT pg_backend_pid()"), pid) != 0);
    CHECK_INT(run1(c, "SELECT $1::int + 1 AS v", "2", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_STR(out, "3");
    CHECK_INT(prepared_count(c), 0);
    CHECK_INT(run1(c, "SELECT $1::int + 1 AS v", "3", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_STR(out, "4");
    CHECK_INT(prepared_count(c), 1);
    /* killed while checked out: the statement fails unavailable, the next checkout recovers */
    snprintf(pid, sizeof pid, "%s", value_on(c, "SELECT pg_backend_pid()"));
    snprintf(kill, sizeof kill, "SELECT pg_terminate_backend(%s)", pid);
    CHECK_STR(fixture_value(kill), "t");
    nanosleep(&ts, NULL);
    CHECK_INT(run1(c, "SELECT $1::int + 1 AS v", "4", out, sizeof out, err, sizeof err), DB_UNAVAILABLE);
    db_release(p, c);
    c = db_acquire(p, &rc, err, sizeof err);
    CHECK(c != NULL);
    if (!c) return;
    for (int i = 0; i < 2; i++) {
        CHECK_INT(run1(c, "SELECT $1::int + 1 AS v", "5", out, sizeof out, err, sizeof err), DB_OK);
        CHECK_STR(out, "6");
    }
    CHECK_INT(prepared_count(c), 1);
    db_release(p, c);
    db_pool_close(p);
}

TEST(statements_in_a_transaction_run_unprepared_and_the_transaction_holds)
{
    struct db_pool *p = open_pool(1, 0);
    int rc;
    char err[256] = "", out[64];
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    if (!c) return;
    db_exec(c, "CREATE TABLE prep_t (k int)", 0, NULL, NULL, NULL, err, sizeof err);
    CHECK_INT(db_exec(c, "BEGIN", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    for (int i = 0; i < 3; i++)
        CHECK_INT(run1(c, "INSERT INTO prep_t VALUES ($1::int)", "1", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_INT(prepared_count(c), 0);
    CHECK_INT(db_exec(c, "ROLLBACK", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_STR(value_on(c, "SELECT count(*) FROM prep_t"), "0");
    /* the same text outside: prepared at its second run there */
    for (int i = 0; i < 2; i++)
        CHECK_INT(run1(c, "INSERT INTO prep_t VALUES ($1::int)", "2", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_INT(prepared_count(c), 1);
    CHECK_INT(db_exec(c, "BEGIN", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(run1(c, "INSERT INTO prep_t VALUES ($1::int)", "3", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_INT(db_exec(c, "COMMIT", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_STR(value_on(c, "SELECT string_agg(k::text, ',' ORDER BY k) FROM prep_t"), "2,2,3");
    db_release(p, c);
    db_pool_close(p);
}

TEST(a_session_that_loses_its_statements_turns_preparing_off_without_failing_a_statement)
{
    struct db_pool *p = open_pool(2, 0);
    int rc;
    char err[256] = "", out[64];
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    if (!c) return;
    for (int i = 0; i < 3; i++) CHECK_INT(run1(c, "SELECT $1::int - 1 AS v", "1", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_INT(prepared_count(c), 1);
    /* what a pooler in transaction mode does: the next transaction gets a
     * server session without our statement */
    CHECK_INT(db_exec(c, "DEALLOCATE ALL", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(run1(c, "SELECT $1::int - 1 AS v", "10", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_STR(out, "9");
    CHECK_STR(db_sqlstate(c), "");
    /* and the pool prepares nothing any more, on any connection */
    for (int i = 0; i < 3; i++) {
        CHECK_INT(run1(c, "SELECT $1::int - 1 AS v", "2", out, sizeof out, err, sizeof err), DB_OK);
        CHECK_STR(out, "1");
        CHECK_INT(run1(c, "SELECT $1::int - 2 AS v", "2", out, sizeof out, err, sizeof err), DB_OK);
    }
    CHECK_INT(prepared_count(c), 0);
    struct db_conn *c2 = db_acquire(p, &rc, err, sizeof err);
    CHECK(c2 != NULL && c2 != c);
    if (c2) {
        for (int i = 0; i < 3; i++) CHECK_INT(run1(c2, "SELECT $1::int - 1 AS v", "2", out, sizeof out, err, sizeof err), DB_OK);
        CHECK_INT(prepared_count(c2), 0);
        db_release(p, c2);
    }
    db_release(p, c);
    db_pool_close(p);
}

TEST(a_full_cache_sends_new_statements_unnamed)
{
    struct db_pool *p = open_pool(1, 0);
    int rc;
    char err[256] = "", out[64], sql[64], want[32];
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    if (!c) return;
    for (int pass = 0; pass < 4; pass++) /* each text twice in a row: seen, then prepared */
        for (int k = 0; k < 140 * 2; k++) {
            snprintf(sql, sizeof sql, "SELECT $1::int + %d AS v", k / 2);
            snprintf(want, sizeof want, "%d", k / 2 + 1);
            CHECK_INT(run1(c, sql, "1", out, sizeof out, err, sizeof err), DB_OK);
            CHECK_STR(out, want);
        }
    CHECK_INT(prepared_count(c), 128);
    db_release(p, c);
    db_pool_close(p);
}

TEST(a_prepared_statement_past_the_statement_timeout_is_cancelled_and_the_connection_stays)
{
    struct db_pool *p = open_pool(1, 300);
    int rc;
    char err[256] = "", out[64];
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    if (!c) return;
    const char *sql = "SELECT pg_sleep($1::float8)::text AS v";
    CHECK_INT(run1(c, sql, "0", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_INT(run1(c, sql, "5", out, sizeof out, err, sizeof err), DB_TIMEOUT); /* prepare + run, cancelled */
    CHECK(strstr(err, "statement timeout") != NULL);
    CHECK_INT(run1(c, sql, "0", out, sizeof out, err, sizeof err), DB_OK);
    CHECK_INT(prepared_count(c), 1);
    CHECK_INT(run1(c, sql, "5", out, sizeof out, err, sizeof err), DB_TIMEOUT); /* by name, cancelled */
    CHECK_INT(run1(c, sql, "0", out, sizeof out, err, sizeof err), DB_OK);
    db_release(p, c);
    db_pool_close(p);
}

TEST(asynchronous_waits_prepare_retry_and_report_errors_as_blocking_ones)
{
    struct db_pool *p = open_pool(1, 0);
    int rc;
    char err[256] = "";
    struct waiter w;
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    if (!c) return;
    CHECK_INT(db_exec(c, "CREATE TABLE prep_a (a int)", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(db_exec(c, "INSERT INTO prep_a VALUES (5)", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    for (int i = 0; i < 4; i++) {
        CHECK_INT(run_async(&w, c, "SELECT * FROM prep_a WHERE a = $1::int", "5", 0), DB_OK);
        if (w.op.res) {
            CHECK_INT(PQntuples(w.op.res), 1);
            PQclear(w.op.res);
        }
        CHECK_INT(run_async(&w, c, "SELECT 10 / $1::int AS v", "0", 0), DB_ERROR);
        CHECK_STR(w.op.err, "division by zero");
        CHECK_STR(w.op.sqlstate, "22012");
    }
    CHECK_INT(prepared_count(c), 2);
    CHECK_INT(db_exec(c, "ALTER TABLE prep_a ADD COLUMN b int DEFAULT 6", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(run_async(&w, c, "SELECT * FROM prep_a WHERE a = $1::int", "5", 0), DB_OK);
    if (w.op.res) {
        CHECK_INT(PQnfields(w.op.res), 2);
        PQclear(w.op.res);
    }
    /* released by the event thread as soon as the results are in */
    CHECK_INT(run_async(&w, c, "SELECT 10 / $1::int AS v", "2", 1), DB_OK);
    CHECK(w.op.conn == NULL);
    if (w.op.res) {
        CHECK_STR(PQgetvalue(w.op.res, 0, 0), "5");
        PQclear(w.op.res);
    }
    db_pool_close(p);
}

int main(void)
{
    ci = fixture_db_create("tfu_dbprep", 0);
    if (!ci) {
        printf("not ok 1 - the database tests need DATABASE_URL and a running cluster\n");
        return 1;
    }
    RUN(a_repeated_statement_is_prepared_once_and_answers_as_before);
    RUN(errors_of_a_prepared_statement_are_those_of_the_unprepared_one);
    RUN(a_schema_change_under_a_prepared_statement_is_survived);
    RUN(a_killed_backend_takes_its_statements_and_the_next_session_prepares_again);
    RUN(statements_in_a_transaction_run_unprepared_and_the_transaction_holds);
    RUN(a_full_cache_sends_new_statements_unnamed);
    RUN(a_prepared_statement_past_the_statement_timeout_is_cancelled_and_the_connection_stays);
    RUN(asynchronous_waits_prepare_retry_and_report_errors_as_blocking_ones);
    RUN(a_session_that_loses_its_statements_turns_preparing_off_without_failing_a_statement);
    fixture_db_drop();
    return unit_done();
}
