/* A throw-away database for C tests that need PostgreSQL: creates
 * "<prefix>_<pid>" on the cluster named by DATABASE_URL (make test sets it
 * to the private cluster), migrates it with sql/, and drops it at the end.
 * Never mocks the database; without DATABASE_URL the tests say so and fail. */
#ifndef DB_FIXTURE_H
#define DB_FIXTURE_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

static char fixture_conninfo[4096];
static char fixture_dbname[64];

/* conninfo of DATABASE_URL with dbname replaced, as key='value' pairs. */
static int fixture_conninfo_for(const char *url, const char *dbname, char *out, size_t n)
{
    char *perr = NULL;
    PQconninfoOption *o = PQconninfoParse(url, &perr), *it;
    if (!o) {
        printf("# bad DATABASE_URL: %s\n", perr ? perr : "?");
        return -1;
    }
    size_t len = 0;
    out[0] = '\0';
    for (it = o; it->keyword; it++) {
        const char *v = strcmp(it->keyword, "dbname") == 0 ? dbname : it->val;
        if (!v) continue;
        len += (size_t)snprintf(out + len, n - len, "%s='", it->keyword);
        for (const char *p = v; *p && len + 3 < n; p++) {
            if (*p == '\'' || *p == '\\') out[len++] = '\\';
            out[len++] = *p;
        }
        len += (size_t)snprintf(out + len, n - len, "' ");
    }
    PQconninfoFree(o);
    return 0;
}

static void fixture_quiet(void *arg, const char *msg) { (void)arg, (void)msg; }

static int fixture_admin(const char *sql)
{
    const char *url = getenv("DATABASE_URL");
    PGconn *pg = PQconnectdb(url);
    int ok = PQstatus(pg) == CONNECTION_OK;
    PQsetNoticeProcessor(pg, fixture_quiet, NULL);
    if (ok) {
        PGresult *r = PQexec(pg, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) printf("# %s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        printf("# cannot connect to DATABASE_URL: %s", PQerrorMessage(pg));
    }
    PQfinish(pg);
    return ok ? 0 : -1;
}

/* Creates and migrates the database; returns its conninfo or NULL. */
static const char *fixture_db_create(const char *prefix, int migrate)
{
    const char *url = getenv("DATABASE_URL");
    if (!url || !*url) {
        printf("# DATABASE_URL is not set (make test sets it to the private cluster)\n");
        return NULL;
    }
    char sql[256], err[512];
    snprintf(fixture_dbname, sizeof fixture_dbname, "%s_%d", prefix, (int)getpid());
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", fixture_dbname);
    fixture_admin(sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", fixture_dbname);
    if (fixture_admin(sql) < 0) return NULL;
    if (fixture_conninfo_for(url, fixture_dbname, fixture_conninfo, sizeof fixture_conninfo) < 0)
        return NULL;
    if (migrate && db_migrate(fixture_conninfo, "sql", err, sizeof err) < 0) {
        printf("# migrate: %s\n", err);
        return NULL;
    }
    return fixture_conninfo;
}

static void fixture_db_drop(void)
{
    char sql[256];
    if (!fixture_dbname[0]) return;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", fixture_dbname);
    fixture_admin(sql);
}

/* One value of a query on the fixture database, as text (static buffer). */
static const char *fixture_value(const char *sql)
{
    static char buf[1024];
    PGconn *pg = PQconnectdb(fixture_conninfo);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        snprintf(buf, sizeof buf, "%s", PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0));
    else
        snprintf(buf, sizeof buf, "ERROR %s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
    return buf;
}

#endif
