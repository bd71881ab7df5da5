/* tf.db: PostgreSQL for plugins through the pool (lvm_host(L)->db).
 *   tf.db.query(sql, ...)   -> { {col = value, ...}, ... }   NULL -> nil; ints, floats, numeric -> numbers; bool -> boolean
 *   tf.db.exec(sql, ...)    -> rows affected
 *   tf.db.columns(sql, ...) -> { col = tf.series (numeric columns, NULL = NaN) | { strings } }, nrows
 *   tf.db.csv(sql, ...)     -> CSV text (header row, PostgreSQL's text of each value), nrows
 *   tf.db.copy_out(sql, ...) -> CSV text, nrows: COPY (sql) TO STDOUT (FORMAT csv, HEADER), the
 *                              server writing the CSV (booleans t/f); for large exports
 *   tf.db.tx(fn, ...)       -> fn's results; one connection, BEGIN ... COMMIT, ROLLBACK on error
 *   tf.db.copy(table, {cols}, rows | text) -> rows copied (COPY FROM STDIN)
 * Parameters are $1..$n only; values are never spliced into SQL. Failures
 * raise an error table { code = "unavailable" | "error" | "timeout",
 * message = "...", sqlstate = "..." } (tostring gives "tf.db: message"):
 * "unavailable" means no connection (down, lost, pool exhausted) and
 * "timeout" a statement cancelled at the statement timeout: for both a route
 * should answer 503 (the client may retry); "error" is the statement's fault. A connection is never kept past the call (or the tx).
 * query, exec and columns go through the connection's prepared-statement
 * cache (db_send_cached) unless database.prepare is false: a statement
 * text repeated on a connection outside a transaction is planned once there.
 * In a handler task (lvm_task_of) every wait yields: the checkout, the
 * statement's result, BEGIN/COMMIT; each C function continues in a
 * continuation (…_k) when the task is resumed. Elsewhere the same calls block. */
#include <ctype.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "lua_json.h"
#include "lua_series.h"
#include "lua_tf.h"
#include "lvm.h"
#include "mem.h"

#define TX_KEY "tf.db.tx"       /* registry: task (light userdata, NULL outside tasks) -> box of its transaction */
#define BOX_MT "tf.db.box"      /* userdata holding a checked-out connection */
#define ERR_MT "tf.db.error"

/* PostgreSQL type OIDs (pg_type.h, stable) */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700

struct box {
    struct db_pool *pool;
    struct db_conn *conn; /* NULL once released */
};

static int err_tostring(lua_State *L)
{
    lua_getfield(L, 1, "message");
    lua_pushfstring(L, "tf.db: %s", luaL_optstring(L, -1, "error"));
    return 1;
}

/* Raises the error table; never returns. */
static int raise(lua_State *L, const char *code, const char *msg, const char *sqlstate)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    if (sqlstate && *sqlstate) {
        lua_pushstring(L, sqlstate);
        lua_setfield(L, -2, "sqlstate");
    }
    luaL_setmetatable(L, ERR_MT);
    return lua_error(L);
}

static int raise_rc(lua_State *L, int rc, const char *msg, const char *sqlstate)
{
    const char *code = rc == DB_UNAVAILABLE ? "unavailable" : rc == DB_TIMEOUT ? "timeout" : "error";
    return raise(L, code, msg, sqlstate);
}

static struct db_pool *pool_of(lua_State *L)
{
    struct lvm_host *h = lvm_host(L);
    if (!h || !h->db) {
        raise(L, "unavailable", "no database configured (set database.url or DATABASE_URL)", NULL);
        return NULL; /* not reached: raise does not return */
    }
    return h->db;
}

static int box_gc(lua_State *L)
{
    struct box *b = luaL_checkudata(L, 1, BOX_MT);
    if (b->conn) db_release(b->pool, b->conn); /* rolls back an open transaction */
    b->conn = NULL;
    return 0;
}

/* Pushes the table of running transactions, keyed by the thread they run
 * on: the task's coroutine, or the VM's main thread (jobs, scripts); a
 * coroutine of the plugin's own shares its caller's transaction. */
static void push_txs(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, TX_KEY) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, TX_KEY);
}

/* The key of the running transaction: the task, or NULL outside tasks. */
static void push_tx_owner(lua_State *L)
{
    lua_pushlightuserdata(L, lvm_task_running(L));
}

/* The transaction's connection if one is running for this task (or, outside
 * tasks, this VM), else NULL. */
static struct box *tx_box(lua_State *L)
{
    push_txs(L);
    push_tx_owner(L);
    lua_rawget(L, -2);
    struct box *b = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return b && b->conn ? b : NULL;
}

/* Registers the box at idx as the running transaction (nil: none). */
static void tx_set(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    push_txs(L);
    push_tx_owner(L);
    lua_pushvalue(L, idx);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* Pushes a box holding a fresh checkout (or raises "unavailable"). */
static struct box *push_checkout(lua_State *L)
{
    struct db_pool *p = pool_of(L);
    struct box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->pool = p;
    b->conn = NULL;
    luaL_setmetatable(L, BOX_MT);
    int rc;
    char err[512];
    b->conn = db_acquire(p, &rc, err, sizeof err);
    if (!b->conn) raise_rc(L, rc, err, NULL);
    return b;
}

/* Converts n arguments from first into text parameters (strings the Lua
 * stack keeps alive). The array is a userdata pushed on the stack, so
 * nothing leaks whatever is raised; it lives while the stack holds it. */
static int params_into(lua_State *L, int first, int n, const char ***vals)
{
    *vals = NULL;
    if (n > 65535) luaL_error(L, "tf.db: too many parameters (%d)", n);
    if (n <= 0) return 0;
    const char **v = lua_newuserdatauv(L, (size_t)n * sizeof *v, 0);
    *vals = v;
    for (int i = 0; i < n; i++) {
        int idx = first + i;
        switch (lua_type(L, idx)) {
        case LUA_TNIL: v[i] = NULL; break;
        case LUA_TBOOLEAN: v[i] = lua_toboolean(L, idx) ? "true" : "false"; break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx)) {
                lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
            } else {
                char tmp[40];
                double d = lua_tonumber(L, idx);
                if (isnan(d)) snprintf(tmp, sizeof tmp, "NaN");
                else if (isinf(d)) snprintf(tmp, sizeof tmp, d > 0 ? "Infinity" : "-Infinity");
                else snprintf(tmp, sizeof tmp, "%.17g", d);
                lua_pushstring(L, tmp);
            }
            lua_replace(L, idx);
            v[i] = lua_tostring(L, idx);
            break;
        case LUA_TSTRING: v[i] = lua_tostring(L, idx); break;
        default:
            luaL_error(L, "tf.db: parameter $%d: cannot send a %s (nil, boolean, number or string)",
                       i + 1, luaL_typename(L, idx));
        }
    }
    return n;
}

/* Whether query, exec and columns use the prepared-statement cache. */
static int use_cache(lua_State *L)
{
    const struct config *cfg = lvm_config(L);
    return !cfg || cfg->db_prepare;
}

/* Runs sql with the arguments from index 2 on the transaction's connection,
 * or on a checkout released before returning. Returns the PGresult, which
 * the caller hands to own() at once so a later Lua error cannot leak it.
 * The parameters stay on the stack until the wait is over (db_exec_cached). */
static PGresult *run(lua_State *L, int cache)
{
    const char *sql = luaL_checkstring(L, 1);
    const char **vals = NULL;
    int n = params_into(L, 2, lua_gettop(L) - 1, &vals);
    struct box *tx = tx_box(L);
    struct box *b = tx;
    long long t0 = clock_ns();
    if (!b) b = push_checkout(L); /* on the stack until the end of the C function */
    PGresult *res = NULL;
    char err[1024];
    int rc = cache ? db_exec_cached(b->conn, sql, n, vals, &res, err, sizeof err)
                   : db_exec(b->conn, sql, n, vals, NULL, &res, err, sizeof err);
    lvm_acct(L)->wait_ns += clock_ns() - t0;
    char sqlstate[6];
    snprintf(sqlstate, sizeof sqlstate, "%s", db_sqlstate(b->conn));
    if (!tx) {
        db_release(b->pool, b->conn);
        b->conn = NULL;
    }
    if (rc != DB_OK) raise_rc(L, rc, err, sqlstate);
    return res;
}

/* A PGresult owned by a userdata, so a Lua error while converting it (out of
 * memory) cannot leak it. */
#define RES_MT "tf.db.result"
static int res_gc(lua_State *L)
{
    PGresult **r = luaL_checkudata(L, 1, RES_MT);
    if (*r) PQclear(*r);
    *r = NULL;
    return 0;
}

static PGresult *own(lua_State *L, PGresult *res)
{
    PGresult **r = lua_newuserdatauv(L, sizeof *r, 0);
    *r = res;
    luaL_setmetatable(L, RES_MT);
    return res;
}

static int is_numeric_type(Oid t)
{
    return t == OID_INT2 || t == OID_INT4 || t == OID_INT8 || t == OID_OID || t == OID_FLOAT4 ||
           t == OID_FLOAT8 || t == OID_NUMERIC;
}

static void push_value(lua_State *L, const PGresult *r, int row, int col)
{
    const char *v = PQgetvalue(r, row, col);
    switch (PQftype(r, col)) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID: lua_pushinteger(L, (lua_Integer)strtoll(v, NULL, 10)); break;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC: lua_pushnumber(L, strtod(v, NULL)); break; /* "NaN", "Infinity" parse too */
    case OID_BOOL: lua_pushboolean(L, v[0] == 't'); break;
    default: lua_pushlstring(L, v, (size_t)PQgetlength(r, row, col));
    }
}


static int rows_query(lua_State *L, PGresult *r)
{
    int nr = PQntuples(r), nf = PQnfields(r);
    lua_createtable(L, nr, 0);
    for (int i = 0; i < nr; i++) {
        lua_createtable(L, 0, nf);
        for (int j = 0; j < nf; j++) {
            if (PQgetisnull(r, i, j)) continue;
            push_value(L, r, i, j);
            lua_setfield(L, -2, PQfname(r, j));
        }
        lua_rawseti(L, -2, i + 1);
    }
    if (nr == 0) lua_json_mark_array(L, -1); /* an empty result encodes as [], not {} */
    return 1;
}

static int rows_exec(lua_State *L, PGresult *r)
{
    const char *n = PQcmdTuples(r);
    lua_pushinteger(L, *n ? (lua_Integer)strtoll(n, NULL, 10) : 0);
    return 1;
}

static int rows_columns(lua_State *L, PGresult *r)
{
    int nr = PQntuples(r), nf = PQnfields(r);
    lua_createtable(L, 0, nf);
    for (int j = 0; j < nf; j++) {
        if (is_numeric_type(PQftype(r, j))) {
            double *d = lua_series_push(L, (size_t)nr);
            for (int i = 0; i < nr; i++)
                d[i] = PQgetisnull(r, i, j) ? NAN : strtod(PQgetvalue(r, i, j), NULL);
        } else {
            lua_createtable(L, nr, 0);
            for (int i = 0; i < nr; i++) {
                if (PQgetisnull(r, i, j)) continue; /* a hole: nil */
                push_value(L, r, i, j);
                lua_rawseti(L, -2, i + 1);
            }
        }
        lua_setfield(L, -2, PQfname(r, j));
    }
    lua_pushinteger(L, nr);
    return 2;
}

/* One CSV field (RFC 4180: quoted only when it holds , " CR or LF). */
static void csv_field(luaL_Buffer *b, const char *v, size_t len)
{
    size_t i = 0;
    while (i < len && v[i] != ',' && v[i] != '"' && v[i] != '\n' && v[i] != '\r') i++;
    if (i == len) {
        luaL_addlstring(b, v, len);
        return;
    }
    luaL_addchar(b, '"');
    for (i = 0; i < len; i++) {
        if (v[i] == '"') luaL_addchar(b, '"');
        luaL_addchar(b, v[i]);
    }
    luaL_addchar(b, '"');
}

/* tf.db.csv(sql, ...) -> text, nrows: the result as CSV written in C
 * straight from PostgreSQL's text of each value (no conversion to Lua
 * values): a header row of the column names, NULL as an empty field,
 * booleans as true/false. For exports; the SQL chooses each column's text. */
static int rows_csv(lua_State *L, PGresult *r)
{
    int nr = PQntuples(r), nf = PQnfields(r);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int j = 0; j < nf; j++) {
        if (j) luaL_addchar(&b, ',');
        csv_field(&b, PQfname(r, j), strlen(PQfname(r, j)));
    }
    luaL_addchar(&b, '\n');
    for (int i = 0; i < nr; i++) {
        for (int j = 0; j < nf; j++) {
            if (j) luaL_addchar(&b, ',');
            if (PQgetisnull(r, i, j)) continue;
            const char *v = PQgetvalue(r, i, j);
            if (PQftype(r, j) == OID_BOOL) luaL_addstring(&b, v[0] == 't' ? "true" : "false");
            else csv_field(&b, v, (size_t)PQgetlength(r, i, j));
        }
        luaL_addchar(&b, '\n');
    }
    luaL_pushresult(&b);
    lua_pushinteger(L, nr);
    return 2;
}


/* ---- waiting as a task ---- */

#define WAIT_MT "tf.db.wait"
enum { K_QUERY, K_EXEC, K_COLUMNS, K_CSV, K_COPY_OUT };
static int rows_copied(lua_State *L, PGresult *r);
static int (*const convert[])(lua_State *, PGresult *) = {rows_query, rows_exec, rows_columns, rows_csv,
                                                          rows_copied};

/* One call's wait in flight: a userdata on the task's stack, so it stays put
 * while the task is suspended; its __gc gives back what an error left. */
struct await {
    struct db_op op;
    struct lvm_task *t;
    struct db_pool *pool;
    struct db_conn *own; /* checked out by this call, released by it */
    struct db_conn *conn; /* what the statement runs on (own or the tx's) */
    const char **vals;    /* the parameters (a userdata above the await, kept until the end) */
    int nvals, kind;
    int cache;   /* the statement goes through the prepared-statement cache */
    int granted; /* a checkout that waited: the slot still needs db_acquire_finish */
    struct db_buf copy; /* K_COPY_OUT: the rows as the server wrote them */
};

static void release_own(struct await *a)
{
    if (a->own) db_release(a->pool, a->own);
    a->own = NULL;
}

static int await_gc(lua_State *L)
{
    struct await *a = luaL_checkudata(L, 1, WAIT_MT);
    release_own(a);
    if (a->op.res) PQclear(a->op.res);
    a->op.res = NULL;
    db_buf_free(&a->copy);
    return 0;
}

static void await_done(struct db_op *op)
{
    struct await *a = op->ud;
    lvm_task_wake(a->t);
}

static struct await *push_await(lua_State *L, struct lvm_task *t, struct db_pool *p, int kind)
{
    struct await *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    a->t = t;
    a->pool = p;
    a->kind = kind;
    a->op.done = await_done;
    a->op.ud = a;
    a->op.deadline_ms = lvm_task_deadline_ms(t);
    luaL_setmetatable(L, WAIT_MT);
    return a;
}

#define DEAD_MSG "the request is over (past its time limit, or its client left): no new statement"

static int abort_op(void *op)
{
    db_op_abort(op); /* its done callback wakes the task */
    return 0;
}

/* Fails a->op as DEAD_MSG when the running task is dead (lvm_task_dead). */
static int dead(lua_State *L, struct await *a)
{
    if (!lvm_task_dead(L)) return 0;
    a->op.rc = DB_TIMEOUT;
    snprintf(a->op.err, sizeof a->op.err, "%s", DEAD_MSG);
    a->op.sqlstate[0] = 0;
    return 1;
}

/* Checks a connection out into a->op.conn, then continues in k (also when
 * it came at once). A dead task checks nothing out. */
static int wait_checkout(lua_State *L, struct await *a, int ai, lua_KFunction k)
{
    if (dead(L, a)) {
        a->op.conn = NULL;
        return k(L, LUA_OK, ai);
    }
    if (!lvm_task_of(L)) {
        a->op.conn = db_acquire(a->pool, &a->op.rc, a->op.err, sizeof a->op.err);
        return k(L, LUA_OK, ai);
    }
    if (db_acquire_async(a->pool, &a->op) == DB_PENDING) {
        a->granted = 1; /* the slot comes unprepared: checked_out connects it */
        a->t->abort = abort_op;
        a->t->abort_ud = &a->op;
        return lvm_task_yield(L, ai, k);
    }
    return k(L, LUA_OK, ai);
}

/* In a continuation of wait_checkout: 0 with a->own set, or raises. */
static void checked_out(lua_State *L, struct await *a)
{
    if (a->op.rc == DB_OK && a->op.conn && lvm_task_dead(L)) { /* its client left while it queued */
        db_release(a->pool, a->op.conn); /* a granted slot is still unconnected: it just goes back */
        a->op.conn = NULL;
        a->granted = 0;
        dead(L, a);
    }
    if (a->granted && a->op.rc == DB_OK) db_acquire_finish(&a->op);
    a->granted = 0;
    if (a->op.rc != DB_OK || !a->op.conn) raise_rc(L, a->op.rc, a->op.err, NULL);
    a->own = a->conn = a->op.conn;
}

/* Sends sql on a->conn with a->vals and continues in k once its result is
 * in a->op (rc, res, err). */
static int wait_statement(lua_State *L, struct await *a, const char *sql, int ai, lua_KFunction k)
{
    if (dead(L, a)) { /* k gives the connection back (a transaction is rolled back) */
        a->vals = NULL;
        a->nvals = 0;
        return k(L, LUA_OK, ai);
    }
    /* with the cache, sql (index 1) and the parameters stay on the stack until the wait ends */
    int rc = a->cache ? db_send_cached(a->conn, sql, a->nvals, a->vals, a->op.err, sizeof a->op.err)
                      : db_send(a->conn, sql, a->nvals, a->vals, NULL, a->op.err, sizeof a->op.err);
    a->vals = NULL;
    a->nvals = 0;
    if (rc != DB_OK) {
        a->op.rc = rc;
        return k(L, LUA_OK, ai);
    }
    if (a->kind == K_COPY_OUT) db_set_copy_out(a->conn, &a->copy); /* until the conn is released */
    if (!lvm_task_of(L)) {
        a->op.release = 0;
        a->op.rc = db_wait(a->conn, &a->op.res, a->op.err, sizeof a->op.err);
        snprintf(a->op.sqlstate, sizeof a->op.sqlstate, "%s", db_sqlstate(a->conn));
        return k(L, LUA_OK, ai);
    }
    /* a checkout of this call goes back to the pool from the event thread */
    a->op.release = a->own != NULL;
    if (a->op.release) a->own = NULL;
    db_wait_async(a->conn, &a->op);
    a->t->abort = abort_op;
    a->t->abort_ud = &a->op;
    return lvm_task_yield(L, ai, k);
}

/* The result in a->op as a raised error, or owned by a userdata on the stack. */
static PGresult *take_result(lua_State *L, struct await *a)
{
    char sqlstate[6];
    snprintf(sqlstate, sizeof sqlstate, "%s", a->op.sqlstate);
    release_own(a);
    if (a->op.release) a->conn = NULL; /* released by the pool's event thread */
    if (a->op.rc != DB_OK) raise_rc(L, a->op.rc, a->op.err, sqlstate);
    PGresult *r = own(L, a->op.res);
    a->op.res = NULL;
    return r;
}

static int stmt_result_k(lua_State *L, int status, lua_KContext ai)
{
    struct await *a = lua_touserdata(L, (int)ai);
    if (a->kind == K_COPY_OUT && !a->op.release && a->conn) db_set_copy_out(a->conn, NULL); /* a tx's: kept */
    PGresult *r = take_result(L, a);
    if (a->kind == K_COPY_OUT) { /* the text, then the count (rows_copied) */
        if (a->copy.oom) return luaL_error(L, "tf.db.copy_out: out of memory");
        lua_pushlstring(L, a->copy.data ? a->copy.data : "", a->copy.len);
        db_buf_free(&a->copy);
    }
    return convert[a->kind](L, r);
}

/* After the text: the number of rows COPY wrote ("COPY 123"). */
static int rows_copied(lua_State *L, PGresult *r)
{
    lua_pushinteger(L, (lua_Integer)strtoll(PQcmdTuples(r), NULL, 10));
    return 2;
}

static int stmt_checked_k(lua_State *L, int status, lua_KContext ai)
{
    struct await *a = lua_touserdata(L, (int)ai);
    checked_out(L, a);
    return wait_statement(L, a, lua_tostring(L, 1), (int)ai, stmt_result_k);
}

#define BUF_MT "tf.db.buf"
static int buf_gc(lua_State *L)
{
    db_buf_free(luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

/* tf.db.copy_out outside a task: blocks; the rows go into a userdata-owned
 * buffer, so nothing leaks whatever is raised. */
static int copy_out_blocking(lua_State *L)
{
    struct box *tx = tx_box(L);
    struct box *b = tx ? tx : push_checkout(L);
    struct db_buf *buf = lua_newuserdatauv(L, sizeof *buf, 0);
    memset(buf, 0, sizeof *buf);
    luaL_setmetatable(L, BUF_MT);
    long long t0 = clock_ns();
    PGresult *res = NULL;
    char err[1024], sqlstate[6];
    db_set_copy_out(b->conn, buf);
    int rc = db_exec(b->conn, lua_tostring(L, 1), 0, NULL, NULL, &res, err, sizeof err);
    db_set_copy_out(b->conn, NULL);
    lvm_acct(L)->wait_ns += clock_ns() - t0;
    snprintf(sqlstate, sizeof sqlstate, "%s", db_sqlstate(b->conn));
    if (!tx) {
        db_release(b->pool, b->conn);
        b->conn = NULL;
    }
    if (rc != DB_OK) return raise_rc(L, rc, err, sqlstate);
    own(L, res);
    if (buf->oom) return luaL_error(L, "tf.db.copy_out: out of memory");
    lua_pushlstring(L, buf->data ? buf->data : "", buf->len);
    db_buf_free(buf);
    return rows_copied(L, res);
}

/* query, exec, columns: in a task the checkout and the result yield. */
static int statement(lua_State *L, int kind)
{
    lvm_acct(L)->statements++;
    struct lvm_task *t = lvm_task_of(L);
    if (!t && kind == K_COPY_OUT) return copy_out_blocking(L);
    int cache = kind <= K_COLUMNS && use_cache(L);
    if (!t) return convert[kind](L, own(L, run(L, cache)));
    luaL_checkstring(L, 1);
    int n = lua_gettop(L) - 1;
    struct db_pool *p = pool_of(L);
    struct box *tx = tx_box(L);
    struct await *a = push_await(L, t, p, kind);
    int ai = lua_gettop(L);
    a->cache = cache;
    a->nvals = params_into(L, 2, n, &a->vals);
    if (tx) {
        a->conn = tx->conn;
        return wait_statement(L, a, lua_tostring(L, 1), ai, stmt_result_k);
    }
    return wait_checkout(L, a, ai, stmt_checked_k);
}

static int l_query(lua_State *L) { return statement(L, K_QUERY); }
static int l_exec(lua_State *L) { return statement(L, K_EXEC); }
static int l_columns(lua_State *L) { return statement(L, K_COLUMNS); }
static int l_csv(lua_State *L) { return statement(L, K_CSV); }

/* Appends sql to out with $1..$n replaced by E'...' literals of vals (NULL
 * for a NULL), outside quoted strings, quoted identifiers, comments and
 * dollar-quoted strings: COPY takes no parameters. An E'' literal reads the
 * same whatever standard_conforming_strings is. -1 naming a $n past n. */
static int inline_params(const char *sql, int n, const char **vals, struct db_buf *out, char *err, size_t errlen)
{
    const char *p = sql;
    while (*p) {
        const char *q = p;
        if (*p == '\'' || *p == '"') { /* a string or a quoted identifier, doubled quotes inside */
            char quote = *p;
            int esc = quote == '\'' && p > sql && (p[-1] == 'E' || p[-1] == 'e');
            for (q = p + 1; *q; q++) {
                if (esc && *q == '\\' && q[1]) q++;
                else if (*q == quote && q[1] == quote) q++;
                else if (*q == quote) break;
            }
            if (*q) q++;
        } else if (p[0] == '-' && p[1] == '-') {
            q = p + strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            q = e ? e + 2 : p + strlen(p);
        } else if (*p == '$' && p[1] >= '0' && p[1] <= '9' &&
                   !(p > sql && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
            long k = strtol(p + 1, (char **)&q, 10);
            if (k < 1 || k > n) {
                snprintf(err, errlen, "$%ld: only %d parameter%s given", k, n, n == 1 ? "" : "s");
                return -1;
            }
            const char *v = vals[k - 1];
            if (!v) {
                db_buf_put(out, "NULL", 4);
            } else {
                db_buf_put(out, "E'", 2);
                for (; *v; v++) {
                    if (*v == '\'' || *v == '\\') db_buf_putc(out, *v);
                    db_buf_putc(out, *v);
                }
                db_buf_putc(out, '\'');
            }
            p = q;
            continue;
        } else if (*p == '$' && !(p > sql && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
            size_t t = 1; /* $tag$ ... $tag$ */
            while (isalnum((unsigned char)p[t]) || p[t] == '_') t++;
            if (p[t] == '$') {
                char tag[70];
                snprintf(tag, sizeof tag, "%.*s", (int)(t + 1 < sizeof tag ? t + 1 : sizeof tag - 1), p);
                const char *e = strstr(p + t + 1, tag);
                q = e ? e + strlen(tag) : p + strlen(p);
            } else {
                q = p + 1;
            }
        } else {
            q = p + 1;
        }
        db_buf_put(out, p, (size_t)(q - p));
        p = q;
    }
    return 0;
}

/* tf.db.copy_out(sql, ...) -> text, nrows: COPY (sql) TO STDOUT WITH
 * (FORMAT csv, HEADER): PostgreSQL writes the CSV and streams it, libpq
 * builds no result set (psql's \copy does the same). The parameters are
 * inlined as literals (COPY takes none). In a task the wait yields. */
static int l_copy_out(lua_State *L)
{
    size_t len;
    const char *sql = luaL_checklstring(L, 1, &len);
    while (len && (sql[len - 1] == ';' || sql[len - 1] == ' ' || sql[len - 1] == '\n')) len--;
    const char **vals = NULL;
    int n = params_into(L, 2, lua_gettop(L) - 1, &vals);
    struct db_buf b = {0};
    char err[128];
    db_buf_put(&b, "COPY (", 6);
    lua_pushlstring(L, sql, len); /* the statement without its trailing ; */
    int bad = inline_params(lua_tostring(L, -1), n, vals, &b, err, sizeof err);
    db_buf_put(&b, ") TO STDOUT WITH (FORMAT csv, HEADER)", 37);
    if (bad || b.oom) {
        db_buf_free(&b);
        return luaL_error(L, "tf.db.copy_out: %s", bad ? err : "out of memory");
    }
    lua_settop(L, 0);
    lua_pushlstring(L, b.data, b.len);
    db_buf_free(&b);
    return statement(L, K_COPY_OUT);
}

/* tf.db.tx(fn, ...): BEGIN; fn(...); COMMIT. Any error: ROLLBACK (by the
 * release) and the error is raised again, unchanged. */
static int tx_blocking(lua_State *L)
{
    int nargs = lua_gettop(L) - 1;
    struct box *b = push_checkout(L);
    int bidx = lua_gettop(L);
    char err[1024];
    int rc = db_exec(b->conn, "BEGIN", 0, NULL, NULL, NULL, err, sizeof err);
    if (rc != DB_OK) {
        db_release(b->pool, b->conn);
        b->conn = NULL;
        return raise_rc(L, rc, err, NULL);
    }
    tx_set(L, bidx);
    /* fn and its arguments above the box */
    lua_pushvalue(L, 1);
    for (int i = 0; i < nargs; i++) lua_pushvalue(L, 2 + i);
    int st = lua_pcall(L, nargs, LUA_MULTRET, 0);
    lua_pushnil(L);
    tx_set(L, -1);
    lua_pop(L, 1);
    if (st != LUA_OK) {
        db_exec(b->conn, "ROLLBACK", 0, NULL, NULL, NULL, err, sizeof err);
        db_release(b->pool, b->conn); /* closes it if even the rollback failed */
        b->conn = NULL;
        return lua_error(L); /* the same error object (a time-limit kill stays a kill) */
    }
    char sqlstate[6];
    rc = db_exec(b->conn, "COMMIT", 0, NULL, NULL, NULL, err, sizeof err);
    snprintf(sqlstate, sizeof sqlstate, "%s", db_sqlstate(b->conn));
    db_release(b->pool, b->conn);
    b->conn = NULL;
    if (rc != DB_OK) return raise_rc(L, rc, err, sqlstate);
    return lua_gettop(L) - bidx;
}

/* tf.db.tx in a task: the stack is fn, args..., the box (ai - 1), the
 * await (ai), then fn's results. Each step's wait yields; fn runs under
 * lua_pcallk, so it may wait too. */
static int tx_committed_k(lua_State *L, int status, lua_KContext ai)
{
    struct await *a = lua_touserdata(L, (int)ai);
    struct box *b = lua_touserdata(L, (int)ai - 1);
    char sqlstate[6];
    snprintf(sqlstate, sizeof sqlstate, "%s", a->op.sqlstate);
    if (a->op.res) PQclear(a->op.res);
    a->op.res = NULL;
    db_release(b->pool, b->conn);
    b->conn = a->conn = NULL;
    if (a->op.rc != DB_OK) return raise_rc(L, a->op.rc, a->op.err, sqlstate);
    return lua_gettop(L) - (int)ai;
}

static int tx_called_k(lua_State *L, int status, lua_KContext ai)
{
    struct await *a = lua_touserdata(L, (int)ai);
    struct box *b = lua_touserdata(L, (int)ai - 1);
    lua_pushnil(L);
    tx_set(L, -1);
    lua_pop(L, 1);
    if (status != LUA_OK && status != LUA_YIELD) {
        char err[256];
        db_exec(b->conn, "ROLLBACK", 0, NULL, NULL, NULL, err, sizeof err);
        db_release(b->pool, b->conn); /* closes it if even the rollback failed */
        b->conn = a->conn = NULL;
        return lua_error(L); /* the same error object (a time-limit kill stays a kill) */
    }
    return wait_statement(L, a, "COMMIT", (int)ai, tx_committed_k);
}

static int tx_begun_k(lua_State *L, int status, lua_KContext ai)
{
    struct await *a = lua_touserdata(L, (int)ai);
    struct box *b = lua_touserdata(L, (int)ai - 1);
    if (a->op.res) PQclear(a->op.res);
    a->op.res = NULL;
    if (a->op.rc != DB_OK) {
        db_release(b->pool, b->conn);
        b->conn = a->conn = NULL;
        return raise_rc(L, a->op.rc, a->op.err, NULL);
    }
    tx_set(L, (int)ai - 1);
    int nargs = (int)ai - 3;
    lua_pushvalue(L, 1);
    for (int i = 0; i < nargs; i++) lua_pushvalue(L, 2 + i);
    lua_pcallk(L, nargs, LUA_MULTRET, 0, ai, tx_called_k);
    return tx_called_k(L, LUA_OK, ai);
}

static int tx_checked_k(lua_State *L, int status, lua_KContext ai)
{
    struct await *a = lua_touserdata(L, (int)ai);
    struct box *b = lua_touserdata(L, (int)ai - 1);
    checked_out(L, a);
    b->conn = a->conn; /* the box owns it from here */
    a->own = NULL;
    return wait_statement(L, a, "BEGIN", (int)ai, tx_begun_k);
}

static int l_tx(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (tx_box(L)) return luaL_error(L, "tf.db.tx: already inside a transaction");
    struct lvm_task *t = lvm_task_of(L);
    if (!t) return tx_blocking(L);
    struct db_pool *p = pool_of(L);
    struct box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->pool = p;
    b->conn = NULL;
    luaL_setmetatable(L, BOX_MT);
    push_await(L, t, p, 0);
    int ai = lua_gettop(L);
    return wait_checkout(L, lua_touserdata(L, ai), ai, tx_checked_k);
}

/* COPY text-format escaping of one value. */
static void copy_value(struct db_buf *out, lua_State *L, int idx)
{
    size_t n;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: db_buf_put(out, "\\N", 2); return;
    case LUA_TBOOLEAN: db_buf_put(out, lua_toboolean(L, idx) ? "t" : "f", 1); return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) db_buf_printf(out, "%lld", (long long)lua_tointeger(L, idx));
        else {
            double d = lua_tonumber(L, idx);
            if (isnan(d)) db_buf_put(out, "NaN", 3);
            else if (isinf(d)) db_buf_put(out, d > 0 ? "Infinity" : "-Infinity", d > 0 ? 8 : 9);
            else db_buf_printf(out, "%.17g", d);
        }
        return;
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &n);
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            switch (c) {
            case '\\': db_buf_put(out, "\\\\", 2); break;
            case '\t': db_buf_put(out, "\\t", 2); break;
            case '\n': db_buf_put(out, "\\n", 2); break;
            case '\r': db_buf_put(out, "\\r", 2); break;
            default: db_buf_putc(out, c);
            }
        }
        return;
    }
    default: luaL_error(L, "tf.db.copy: cannot copy a %s", luaL_typename(L, idx));
    }
}


/* tf.db.copy(table, {col, ...}, rows): rows is an array of arrays (values
 * in column order, nil for NULL up to #cols) or a string already in COPY
 * text format. Identifiers are quoted by libpq; data never meets the SQL. */
static int l_copy(lua_State *L)
{
    const char *table = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int ncols = (int)luaL_len(L, 2);
    if (ncols < 1) return luaL_argerror(L, 2, "at least one column");
    if (!lua_istable(L, 3) && !lua_isstring(L, 3)) return luaL_argerror(L, 3, "rows table or COPY text");

    struct db_buf *data = lua_newuserdatauv(L, sizeof *data, 0);
    memset(data, 0, sizeof *data);
    luaL_setmetatable(L, BUF_MT);
    const char *text;
    size_t textlen;
    if (lua_istable(L, 3)) {
        lua_Integer nrows = luaL_len(L, 3);
        for (lua_Integer i = 1; i <= nrows; i++) {
            if (lua_geti(L, 3, i) != LUA_TTABLE)
                return luaL_error(L, "tf.db.copy: row %d is not a table", (int)i);
            for (int j = 1; j <= ncols; j++) {
                lua_geti(L, -1, j);
                if (j > 1) db_buf_putc(data, '\t');
                copy_value(data, L, lua_gettop(L));
                lua_pop(L, 1);
            }
            db_buf_putc(data, '\n');
            lua_pop(L, 1);
        }
        if (data->oom) return luaL_error(L, "tf.db.copy: out of memory");
        text = data->data ? data->data : "";
        textlen = data->len;
    } else {
        text = lua_tolstring(L, 3, &textlen);
    }

    struct box *tx = tx_box(L);
    struct box *b = tx ? tx : push_checkout(L);
    PGconn *pg = db_pg(b->conn);
    struct db_buf sql = {0};
    char *id = PQescapeIdentifier(pg, table, strlen(table));
    /* "schema.table" is one identifier here on purpose: no dots are parsed */
    db_buf_printf(&sql, "COPY %s (", id ? id : "\"\"");
    PQfreemem(id);
    for (int j = 1; j <= ncols; j++) {
        lua_geti(L, 2, j);
        size_t cl;
        const char *c = lua_tolstring(L, -1, &cl);
        char *cid = c ? PQescapeIdentifier(pg, c, cl) : NULL;
        lua_pop(L, 1);
        if (!cid) {
            db_buf_free(&sql);
            if (!tx) db_release(b->pool, b->conn), b->conn = NULL;
            return luaL_error(L, "tf.db.copy: column %d is not a name", j);
        }
        db_buf_printf(&sql, "%s%s", j > 1 ? ", " : "", cid);
        PQfreemem(cid);
    }
    db_buf_put(&sql, ") FROM STDIN", 12);
    long rows = 0;
    char err[1024], sqlstate[6];
    long long t0 = clock_ns();
    int rc = sql.oom ? DB_ERROR : db_copy_in(b->conn, sql.data, text, textlen, &rows, err, sizeof err);
    lvm_acct(L)->statements++;
    lvm_acct(L)->wait_ns += clock_ns() - t0;
    if (sql.oom) snprintf(err, sizeof err, "out of memory");
    db_buf_free(&sql);
    snprintf(sqlstate, sizeof sqlstate, "%s", db_sqlstate(b->conn));
    if (!tx) {
        db_release(b->pool, b->conn);
        b->conn = NULL;
    }
    if (rc != DB_OK) return raise_rc(L, rc, err, sqlstate);
    lua_pushinteger(L, rows);
    return 1;
}

/* tf.db.migrations() -> { {version = 23, name = "023_x.sql"}, ... }: the
 * migration files of database.migrations, by version (for GET /ready to
 * compare with schema_migrations). Reads the folder; no database. */
static int l_migrations(lua_State *L)
{
    const struct config *cfg = lvm_config(L);
    struct db_migration *list;
    size_t n;
    char err[512];
    if (db_migration_files(cfg && cfg->migrations_dir ? cfg->migrations_dir : "sql", &list, &n, err, sizeof err))
        return luaL_error(L, "tf.db.migrations: %s", err);
    /* a Lua-owned copy first, so a memory error below cannot leak the list */
    struct db_migration *copy = lua_newuserdatauv(L, n ? n * sizeof *copy : 1, 0);
    if (n) memcpy(copy, list, n * sizeof *copy);
    mem_free(list);
    list = copy;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, list[i].version);
        lua_setfield(L, -2, "version");
        lua_pushstring(L, list[i].name);
        lua_setfield(L, -2, "name");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

int luaopen_tf_db(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"query", l_query}, {"exec", l_exec}, {"columns", l_columns}, {"csv", l_csv}, {"copy_out", l_copy_out},
        {"tx", l_tx},       {"copy", l_copy}, {"migrations", l_migrations}, {NULL, NULL},
    };
    lua_tf_metatable(L, BOX_MT, "__gc", box_gc);
    lua_tf_metatable(L, RES_MT, "__gc", res_gc);
    lua_tf_metatable(L, BUF_MT, "__gc", buf_gc);
    lua_tf_metatable(L, WAIT_MT, "__gc", await_gc);
    lua_tf_metatable(L, ERR_MT, "__tostring", err_tostring);
    luaL_newlib(L, fns);
    return 1;
}
