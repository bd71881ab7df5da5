/* The PostgreSQL connection pool: a fixed number of libpq connections shared
 * by every thread, checked out one statement (or transaction) at a time, in
 * arrival order, with a checkout timeout, lazy connect, reconnect with
 * backoff and a client-side statement timeout (cancel request), so it needs
 * no session state and works through PgBouncer in transaction mode; the
 * one exception, a per-connection cache of prepared statements
 * (db_send_cached), turns itself off when sessions do not keep it. Callers
 * that must not block (handler coroutines) wait asynchronously: an event
 * thread watches the sockets with epoll. Never holds the pool lock during
 * I/O and never keeps a transaction open across a release. */
#ifndef DB_H
#define DB_H

#include <stddef.h>

#include <libpq-fe.h>
#include <stdatomic.h>

/* Results of everything that talks to the server. */
enum db_rc {
    DB_OK = 0,
    DB_ERROR = -1,       /* the server refused the statement (SQL error, constraint, timeout) */
    DB_UNAVAILABLE = -2, /* no connection: down, lost mid-statement, or checkout timed out */
    DB_TIMEOUT = -3,     /* the statement ran past the statement timeout and was cancelled */
};

struct db_options {
    int pool_size;            /* connections, fixed */
    int checkout_timeout_ms;  /* waiting for a free connection */
    int connect_timeout_s;    /* libpq connect_timeout */
    int statement_timeout_ms; /* per statement, enforced by a cancel request; 0 = none */
};

struct db_pool;
struct db_conn; /* one checked-out connection */

/* Opens a pool; connects lazily, so a server that is down now is not an
 * error. NULL + err only for bad options or out of memory. Caller closes. */
struct db_pool *db_pool_open(const char *conninfo, const struct db_options *o, char *err,
                             size_t errlen);
void db_pool_close(struct db_pool *p);

/* Applies sqldir/NNN_*.sql in numeric order, each file in its own
 * transaction under an advisory transaction lock, recorded in
 * schema_migrations (so a second run applies nothing, and two instances
 * migrating at once apply each file once). Logs each file it applies. */
int db_migrate(const char *conninfo, const char *sqldir, char *err, size_t errlen);

/* The migration files of sqldir (NNN_name.sql), by version. Returns 0 and
 * *out (caller frees with mem_free; NULL when none) with *n entries, or -1
 * with err (unreadable folder, two files sharing a version). */
struct db_migration {
    long version;
    char name[256];
};
int db_migration_files(const char *sqldir, struct db_migration **out, size_t *n, char *err, size_t errlen);

/* 0 when a free connection answers SELECT 1; with none free (every one
 * busy), 0 when the pool has live connections and is not backing off.
 * Never waits for a checkout. */
int db_health(struct db_pool *p, char *err, size_t errlen);

/* Publishes the pool gauges (size, in use, connected, waiting, up) through
 * metrics_set. Counters (checkouts, timeouts, reconnects, errors) are kept
 * with metrics_add as they happen. */
void db_metrics(struct db_pool *p);

/* Checks out a connection, waiting up to the checkout timeout; connects or
 * reconnects it if needed (backing off while the server stays down).
 * NULL with err and *rc = DB_UNAVAILABLE on timeout or no server. The caller
 * gives it back with db_release, on every path. */
struct db_conn *db_acquire(struct db_pool *p, int *rc, char *err, size_t errlen);
/* Returns c to the pool. A connection left inside a transaction is rolled
 * back; a broken one is closed and reconnected at its next checkout. */
void db_release(struct db_pool *p, struct db_conn *c);
PGconn *db_pg(struct db_conn *c);

/* Runs one statement with text parameters ($1..$n; values may be NULL for
 * SQL NULL) and returns DB_OK with *res (caller PQclear()s it; NULL res
 * pointer means "discard"), or DB_ERROR / DB_UNAVAILABLE with the server's
 * message in err. The statement timeout applies. Multiple statements are
 * allowed only when n == 0. binary_lens: NULL for all-text parameters. */
int db_exec(struct db_conn *c, const char *sql, int n, const char *const *vals,
            const int *binary_lens, PGresult **res, char *err, size_t errlen);

/* db_exec in two halves, for a caller with other work to do while the
 * statement runs: db_send returns once the statement is on its way, db_wait
 * collects its result (the statement timeout counts from there). Nothing
 * else may use c in between. */
int db_send(struct db_conn *c, const char *sql, int n, const char *const *vals,
            const int *binary_lens, char *err, size_t errlen);
int db_wait(struct db_conn *c, PGresult **res, char *err, size_t errlen);

/* db_send through c's cache of prepared statements (text parameters only):
 * a parameterised statement (n > 0) sent outside a transaction block for
 * the second time on this connection is prepared, pipelined with its run,
 * and runs by name afterwards, so PostgreSQL plans it once per connection.
 * The results, errors and SQLSTATEs are those of db_send; a failure that
 * comes from the preparing itself (the session lost the statement, or its
 * result type changed) is retried once unprepared inside the wait, so sql
 * and vals must stay valid until the wait (db_wait, db_wait_async) ends.
 * The cache holds up to 128 texts per connection and goes with it. */
int db_send_cached(struct db_conn *c, const char *sql, int n, const char *const *vals, char *err,
                   size_t errlen);
int db_exec_cached(struct db_conn *c, const char *sql, int n, const char *const *vals, PGresult **res,
                   char *err, size_t errlen);

/* ---- waiting without blocking (handler coroutines) ----
 * A checkout or a statement's results can be awaited without holding the
 * calling thread: the pool's event thread watches the sockets with epoll and
 * calls op->done once the wait ends. done runs on another thread with
 * nothing locked and must only hand the op back to its owner (who resumes
 * where it left off). The op belongs to the caller and must stay put until
 * done has been called. */
#define DB_PENDING 1 /* the wait ends through op->done */

struct db_op {
    void (*done)(struct db_op *op); /* set by the caller */
    void *ud;                       /* the caller's */
    long long deadline_ms;  /* db_now_ms() clock; 0 = none: the caller's own limit. Past it a
                             * checkout fails and a statement is cancelled (rc DB_TIMEOUT) */
    int stop_at_copy;       /* a result wait ends at a COPY IN result (then in res) */
    int release;            /* a result wait gives conn back to the pool as soon as the
                             * results are in, before done (conn is then NULL) */
    /* the outcome */
    int rc;                 /* DB_OK, DB_ERROR, DB_UNAVAILABLE, DB_TIMEOUT */
    PGresult *res;          /* on DB_OK of a result wait: the caller PQclear()s it */
    struct db_conn *conn;   /* on DB_OK of a checkout: call db_acquire_finish */
    char err[512];
    char sqlstate[6];       /* of a result wait that failed */
    _Atomic int aborted;    /* set by db_op_abort */
    /* private to db.c */
    struct db_op *next;
    struct db_pool *pool;
    PGresult *keep;
    long long stmt_deadline, wait_until;
    int granted, cancelled, expired, fd;
};

/* Checks a connection out without waiting for one: DB_OK with op->conn
 * ready, DB_UNAVAILABLE with op->err, or DB_PENDING: op->done will be called
 * with op->rc (DB_OK and op->conn, or an error); on DB_OK the caller then
 * calls db_acquire_finish(op) on its own thread (it may connect). Waiting
 * checkouts, blocking or not, are served in arrival order. */
int db_acquire_async(struct db_pool *p, struct db_op *op);
int db_acquire_finish(struct db_op *op);
/* After db_send on c: op->done is called once every result is in (op->rc,
 * op->res, op->err as db_wait would give them; the statement timeout and
 * op->deadline_ms cancel it). Nothing else may use c meanwhile. */
void db_wait_async(struct db_conn *c, struct db_op *op);
/* Ends a pending op early, from any thread, because its caller no longer
 * wants the result (its client left): a waiting checkout fails at once, a
 * running statement is cancelled; done is called as for a deadline (rc
 * DB_TIMEOUT). Harmless when op has just ended; op must still exist. */
void db_op_abort(struct db_op *op);
long long db_now_ms(void); /* CLOCK_MONOTONIC in ms, the clock of deadline_ms */

/* COPY ... FROM STDIN: sends the statement, then len bytes of data, then ends
 * the copy. Returns DB_OK with the rows copied in *rows. */
int db_copy_in(struct db_conn *c, const char *copy_sql, const char *data, size_t len, long *rows,
               char *err, size_t errlen);

/* db_copy_in in steps, for callers that wait asynchronously: start sends
 * the statement (await its COPY IN result with stop_at_copy), data sends
 * the rows and ends the copy (await the final result; PQcmdTuples gives
 * the rows copied). Sending the data may block on a full socket buffer. */
int db_copy_start(struct db_conn *c, const char *copy_sql, char *err, size_t errlen);
int db_copy_data(struct db_conn *c, const char *data, size_t len, char *err, size_t errlen);

/* Where the rows of a COPY ... TO STDOUT sent on c go (appended to b, as
 * the server wrote them), for the waits that follow; NULL: discarded. Set
 * before sending, clear once its results are in. */
struct db_buf;
void db_set_copy_out(struct db_conn *c, struct db_buf *b);

/* The SQLSTATE of the last error on c ("23505"), or "" . */
const char *db_sqlstate(struct db_conn *c);

/* A growable text buffer for array parameters and COPY data. Appends never
 * fail loudly: they set oom, which the caller checks once at the end. The
 * caller owns data and frees it with db_buf_free. */
struct db_buf {
    char *data;
    size_t len, cap;
    int oom;
};
void db_buf_put(struct db_buf *b, const char *s, size_t n);
void db_buf_putc(struct db_buf *b, char ch);
void db_buf_printf(struct db_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void db_buf_quoted(struct db_buf *b, const char *s); /* "s" with \ and " escaped */
void db_buf_free(struct db_buf *b);

#endif
