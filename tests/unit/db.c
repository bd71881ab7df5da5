/* Unit tests for core/db.c against the real private cluster: migrations are
 * idempotent and ordered, the pool connects lazily, times out checkouts and
 * statements, survives killed connections, rolls back forgotten
 * transactions, and is safe under many threads. */
#include "db.h"
#include "db_fixture.h"
#include "unit.h"

#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static const char *ci;

static long long ms_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static struct db_pool *open_pool(int size, int checkout_ms, int stmt_ms)
{
    struct db_options o = {.pool_size = size, .checkout_timeout_ms = checkout_ms,
                           .connect_timeout_s = 2, .statement_timeout_ms = stmt_ms};
    char err[256];
    struct db_pool *p = db_pool_open(ci, &o, err, sizeof err);
    if (!p) printf("# %s\n", err);
    return p;
}

TEST(migrations_apply_once_in_order_and_build_the_old_schema)
{
    char err[512];
    /* every numbered file of sql/ (other issues add theirs), each once */
    char want[16], q0[64];
    FILE *ls = popen("ls sql | grep -cE '^[0-9]+_.*[.]sql$'", "r");
    CHECK(ls && fgets(want, sizeof want, ls));
    if (ls) pclose(ls);
    want[strcspn(want, "\n")] = '\0';
    CHECK_STR(fixture_value("SELECT count(*) FROM schema_migrations"), want);
    CHECK_STR(fixture_value("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations WHERE version <= 3"), "1,2,3");
    snprintf(q0, sizeof q0, "SELECT max(applied_at) FROM schema_migrations");
    char before[64];
    snprintf(before, sizeof before, "%s", fixture_value(q0));
    CHECK_INT(db_migrate(ci, "sql", err, sizeof err), 0); /* again: nothing to do */
    CHECK_STR(fixture_value("SELECT count(*) FROM schema_migrations"), want);
    CHECK_STR(fixture_value(q0), before);
    CHECK_STR(fixture_value("SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_index i "
                            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                            "WHERE i.indrelid = 'market_data'::regclass AND i.indisprimary"),
              "symbol,timeframe,ts");
    static const char *cols[] = {"id", "symbol", "timeframe", "ts", "open", "high", "low", "close",
                                 "volume", "spread", "rsi", "macd", "macd_signal", "macd_hist",
                                 "atr", "bb_upper", "bb_middle", "bb_lower", "created_at", "source"};
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) {
        char q[256];
        snprintf(q, sizeof q, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'market_data' AND column_name = '%s'", cols[i]);
        CHECK_STR(fixture_value(q), "1");
    }
    /* native partitions: a default one plus ranges created ahead */
    CHECK_STR(fixture_value("SELECT count(*) FROM pg_inherits WHERE inhparent = 'market_data'::regclass AND inhrelid = 'market_data_default'::regclass"), "1");
    CHECK_STR(fixture_value("SELECT count(*) > 0 FROM pg_class WHERE relname = 'market_data_p' || to_char(now() + interval '1 year', 'YYYY')"), "t");
    CHECK_STR(fixture_value("SELECT count(*) > 0 FROM pg_class WHERE relname = 'ticks_p' || to_char(now() + interval '3 months', 'YYYYMM')"), "t");
}

TEST(a_partition_created_later_takes_its_rows_from_the_default)
{
    PGconn *pg = PQconnectdb(ci);
    PQclear(PQexec(pg, "INSERT INTO ticks (symbol, ts, bid, ask) VALUES ('OLD', '1990-05-05', 1, 1)"));
    PQfinish(pg);
    CHECK_STR(fixture_value("SELECT tableoid::regclass FROM ticks WHERE symbol = 'OLD'"), "ticks_default");
    CHECK_STR(fixture_value("SELECT tf_ensure_partitions('ticks', 'month', '1990-05-01', '1990-06-01')"), "1");
    CHECK_STR(fixture_value("SELECT tableoid::regclass FROM ticks WHERE symbol = 'OLD'"), "ticks_p199005");
    CHECK_STR(fixture_value("SELECT tf_ensure_partitions('ticks', 'month', '1990-05-01', '1990-06-01')"), "0");
}

TEST(a_broken_migration_is_rolled_back_and_named)
{
    char dir[] = "/tmp/tfu_mig_XXXXXX", path[256], err[512] = "";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/90010_ok.sql", dir);
    FILE *f = fopen(path, "w");
    fputs("CREATE TABLE mig_ok (x int);", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/9009_first.sql", dir); /* numeric order, not text order */
    f = fopen(path, "w");
    fputs("CREATE TABLE mig_first (x int);", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/90011_bad.sql", dir);
    f = fopen(path, "w");
    fputs("CREATE TABLE mig_bad (x int); SELECT no_such_function();", f);
    fclose(f);
    CHECK_INT(db_migrate(ci, dir, err, sizeof err), -1);
    CHECK(strstr(err, "90011_bad.sql") != NULL);
    CHECK(strstr(err, "no_such_function") != NULL);
    CHECK_STR(fixture_value("SELECT to_regclass('mig_bad') IS NULL"), "t");
    CHECK_STR(fixture_value("SELECT string_agg(name, ',' ORDER BY version) FROM schema_migrations WHERE version >= 9000"),
              "9009_first.sql,90010_ok.sql");
    remove(path);
    snprintf(path, sizeof path, "%s/90010_ok.sql", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/9009_first.sql", dir);
    remove(path);
    rmdir(dir);
    CHECK(db_migrate(ci, "/nonexistent/sql", err, sizeof err) == -1 && strstr(err, "/nonexistent") != NULL);
}

TEST(a_pool_opens_while_the_server_is_down_and_fails_fast_while_it_stays_down)
{
    struct db_options o = {.pool_size = 2, .checkout_timeout_ms = 500, .connect_timeout_s = 1};
    char err[256] = "";
    struct db_pool *p = db_pool_open("host=127.0.0.1 port=1 dbname=x", &o, err, sizeof err);
    CHECK(p != NULL);
    if (!p) return;
    int rc;
    CHECK(db_acquire(p, &rc, err, sizeof err) == NULL);
    CHECK_INT(rc, DB_UNAVAILABLE);
    CHECK(strstr(err, "database unavailable") != NULL);
    long long t0 = ms_now();
    CHECK(db_acquire(p, &rc, err, sizeof err) == NULL); /* backing off: no new connect attempt */
    CHECK(ms_now() - t0 < 50);
    CHECK(strstr(err, "retrying in") != NULL);
    CHECK_INT(db_health(p, err, sizeof err), -1);
    db_pool_close(p);
    CHECK(db_pool_open("host='unterminated", &o, err, sizeof err) == NULL);
    CHECK(strstr(err, "bad connection string") != NULL);
}

TEST(checkout_times_out_when_every_connection_is_busy)
{
    struct db_pool *p = open_pool(1, 200, 0);
    int rc;
    char err[256];
    struct db_conn *a = db_acquire(p, &rc, err, sizeof err);
    CHECK(a != NULL);
    long long t0 = ms_now();
    CHECK(db_acquire(p, &rc, err, sizeof err) == NULL);
    long long waited = ms_now() - t0;
    CHECK(waited >= 190 && waited < 1000);
    CHECK_INT(rc, DB_UNAVAILABLE);
    CHECK(strstr(err, "no free connection") != NULL);
    db_release(p, a);
    CHECK_INT(db_health(p, err, sizeof err), 0);
    db_pool_close(p);
}

TEST(a_slow_statement_is_cancelled_and_the_connection_stays_usable)
{
    struct db_pool *p = open_pool(1, 1000, 200);
    int rc;
    char err[256] = "";
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    long long t0 = ms_now();
    rc = db_exec(c, "SELECT pg_sleep(5)", 0, NULL, NULL, NULL, err, sizeof err);
    CHECK_INT(rc, DB_TIMEOUT);
    CHECK(ms_now() - t0 < 2000);
    CHECK(strstr(err, "statement timeout") != NULL);
    CHECK_STR(db_sqlstate(c), "57014");
    PGresult *r = NULL;
    CHECK_INT(db_exec(c, "SELECT $1::int + 1", 1, (const char *const[]){"41"}, NULL, &r, err, sizeof err), DB_OK);
    if (r) CHECK_STR(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    db_release(p, c);
    db_pool_close(p);
}

TEST(sql_errors_carry_the_server_message_and_sqlstate)
{
    struct db_pool *p = open_pool(1, 1000, 0);
    int rc;
    char err[256] = "";
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    CHECK_INT(db_exec(c, "SELECT * FROM no_such_table", 0, NULL, NULL, NULL, err, sizeof err), DB_ERROR);
    CHECK_STR(err, "relation \"no_such_table\" does not exist");
    CHECK_STR(db_sqlstate(c), "42P01");
    db_release(p, c);
    db_pool_close(p);
}

/* Statements always go through the extended protocol: text that stacks a
 * second statement (SQL built from hostile input) is refused, not run. */
TEST(stacked_statements_are_refused_not_run)
{
    struct db_pool *p = open_pool(1, 1000, 0);
    int rc;
    char err[256] = "";
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    CHECK_INT(db_exec(c, "SELECT 1; CREATE TABLE stacked_ran (a int)", 0, NULL, NULL, NULL, err, sizeof err),
              DB_ERROR);
    CHECK(strstr(err, "multiple commands") != NULL);
    long rows = 0;
    CHECK_INT(db_copy_in(c, "COPY (SELECT 1) TO STDOUT; CREATE TABLE stacked_ran (a int)", "", 0, &rows, err,
                         sizeof err), DB_ERROR);
    db_release(p, c);
    CHECK_STR(fixture_value("SELECT count(*) FROM pg_class WHERE relname = 'stacked_ran'"), "0");
    db_pool_close(p);
}

TEST(a_forgotten_transaction_is_rolled_back_at_release)
{
    struct db_pool *p = open_pool(1, 1000, 0);
    int rc;
    char err[256] = "";
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    CHECK_INT(db_exec(c, "CREATE TABLE IF NOT EXISTS forgot (x int)", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(db_exec(c, "BEGIN", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(db_exec(c, "INSERT INTO forgot VALUES (1)", 0, NULL, NULL, NULL, err, sizeof err), DB_OK);
    CHECK_INT(PQtransactionStatus(db_pg(c)), PQTRANS_INTRANS);
    db_release(p, c);
    c = db_acquire(p, &rc, err, sizeof err);
    CHECK_INT(PQtransactionStatus(db_pg(c)), PQTRANS_IDLE);
    db_release(p, c);
    CHECK_STR(fixture_value("SELECT count(*) FROM forgot"), "0");
    db_pool_close(p);
}

TEST(a_killed_connection_is_replaced_at_the_next_checkout)
{
    struct db_pool *p = open_pool(1, 1000, 0);
    int rc;
    char err[256] = "";
    PGresult *r = NULL;
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    db_exec(c, "SELECT pg_backend_pid()", 0, NULL, NULL, &r, err, sizeof err);
    char pid[32], q[128];
    snprintf(pid, sizeof pid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    db_release(p, c);
    snprintf(q, sizeof q, "SELECT pg_terminate_backend(%s)", pid);
    CHECK_STR(fixture_value(q), "t");
    usleep(100 * 1000);
    /* idle and dead: found at checkout, reconnected, the caller sees nothing */
    c = db_acquire(p, &rc, err, sizeof err);
    CHECK(c != NULL);
    CHECK_INT(db_exec(c, "SELECT pg_backend_pid()", 0, NULL, NULL, &r, err, sizeof err), DB_OK);
    if (r) CHECK(strcmp(PQgetvalue(r, 0, 0), pid) != 0);
    snprintf(pid, sizeof pid, "%s", r ? PQgetvalue(r, 0, 0) : "0");
    PQclear(r);
    /* killed mid-statement: unavailable, and the next checkout recovers */
    pid_t child = fork();
    if (child == 0) {
        PGconn *k = PQconnectdb(ci);
        usleep(100 * 1000);
        char q2[128];
        snprintf(q2, sizeof q2, "SELECT pg_terminate_backend(%s)", pid);
        PQclear(PQexec(k, q2));
        PQfinish(k);
        _exit(0);
    }
    rc = db_exec(c, "SELECT pg_sleep(2)", 0, NULL, NULL, NULL, err, sizeof err);
    CHECK_INT(rc, DB_UNAVAILABLE);
    CHECK(strstr(err, "database unavailable") != NULL);
    db_release(p, c);
    waitpid(child, NULL, 0);
    CHECK_INT(db_health(p, err, sizeof err), 0);
    db_pool_close(p);
}

static struct db_pool *shared;
static int thread_failures;
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;

static void *hammer(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < 200; i++) {
        int rc;
        char err[256], v[32];
        struct db_conn *c = db_acquire(shared, &rc, err, sizeof err);
        PGresult *r = NULL;
        snprintf(v, sizeof v, "%ld", id * 1000 + i);
        int ok = c && db_exec(c, "SELECT $1::int", 1, (const char *const[]){v}, NULL, &r, err, sizeof err) == DB_OK &&
                 strcmp(PQgetvalue(r, 0, 0), v) == 0;
        if (r) PQclear(r);
        if (c) db_release(shared, c);
        if (!ok) {
            pthread_mutex_lock(&fail_mu);
            if (thread_failures++ < 3) printf("# thread %ld: %s\n", id, err);
            pthread_mutex_unlock(&fail_mu);
        }
    }
    return NULL;
}

TEST(many_threads_share_a_small_pool)
{
    shared = open_pool(3, 5000, 5000);
    pthread_t t[8];
    for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, hammer, (void *)i);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    CHECK_INT(thread_failures, 0);
    db_metrics(shared);
    db_pool_close(shared);
}

TEST(copy_in_loads_rows)
{
    struct db_pool *p = open_pool(1, 1000, 0);
    int rc;
    char err[256] = "";
    long rows = 0;
    struct db_conn *c = db_acquire(p, &rc, err, sizeof err);
    db_exec(c, "CREATE TABLE copied (a int, b text)", 0, NULL, NULL, NULL, err, sizeof err);
    const char data[] = "1\tone\n2\ttwo\n";
    CHECK_INT(db_copy_in(c, "COPY copied FROM STDIN", data, sizeof data - 1, &rows, err, sizeof err), DB_OK);
    CHECK_INT(rows, 2);
    const char bad[] = "x\ty\n";
    CHECK_INT(db_copy_in(c, "COPY copied FROM STDIN", bad, sizeof bad - 1, &rows, err, sizeof err), DB_ERROR);
    CHECK(strstr(err, "invalid input syntax") != NULL);
    CHECK_INT(db_health(p, err, sizeof err), 0); /* the only connection is ours: busy and alive, so healthy, without waiting */
    db_release(p, c);
    CHECK_STR(fixture_value("SELECT string_agg(b, ',' ORDER BY a) FROM copied"), "one,two");
    db_pool_close(p);
}

int main(void)
{
    ci = fixture_db_create("tfu_db", 1);
    if (!ci) {
        printf("not ok 1 - the database tests need DATABASE_URL and a running cluster\n");
        return 1;
    }
    RUN(migrations_apply_once_in_order_and_build_the_old_schema);
    RUN(a_partition_created_later_takes_its_rows_from_the_default);
    RUN(a_broken_migration_is_rolled_back_and_named);
    RUN(a_pool_opens_while_the_server_is_down_and_fails_fast_while_it_stays_down);
    RUN(checkout_times_out_when_every_connection_is_busy);
    RUN(a_slow_statement_is_cancelled_and_the_connection_stays_usable);
    RUN(sql_errors_carry_the_server_message_and_sqlstate);
    RUN(a_forgotten_transaction_is_rolled_back_at_release);
    RUN(a_killed_connection_is_replaced_at_the_next_checkout);
    RUN(many_threads_share_a_small_pool);
    RUN(copy_in_loads_rows);
    RUN(stacked_statements_are_refused_not_run);
    fixture_db_drop();
    return unit_done();
}
