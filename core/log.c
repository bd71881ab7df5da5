/* logfmt (or JSON) lines on stderr, one write(2) each so threads never
 * interleave (access lines: whole lines at a time, see log_access).
 * Formats into stack buffers; a line longer than them is truncated, never
 * split. */
#include "log.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int min_level = LOG_INFO;
static volatile int format = LOG_LOGFMT;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_format(enum log_format fmt)
{
    format = fmt;
}

int log_parse_format(const char *s, enum log_format *out)
{
    if (!strcmp(s, "logfmt")) *out = LOG_LOGFMT;
    else if (!strcmp(s, "json")) *out = LOG_JSON;
    else return -1;
    return 0;
}

void log_set_level(enum log_level lvl)
{
    min_level = lvl;
}

int log_enabled(enum log_level lvl)
{
    return (int)lvl >= min_level;
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -1;
}

const char *log_quote(char *buf, unsigned len, const char *s)
{
    unsigned j = 0;
    if (len < 3) return "";
    buf[j++] = '"';
    for (; s && *s && j + 3 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[j++] = '\\';
            buf[j++] = (char)c;
        } else if (c == '\n') {
            buf[j++] = '\\';
            buf[j++] = 'n';
        } else if (c < 0x20) {
            buf[j++] = ' ';
        } else {
            buf[j++] = (char)c;
        }
    }
    buf[j++] = '"';
    buf[j] = 0;
    return buf;
}

/* Appends s[0..len) as a JSON string to out at *n (bounded by cap). */
static void json_str(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    size_t j = *n;
    if (j + 2 >= cap) return;
    out[j++] = '"';
    for (size_t i = 0; i < len && j + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[j++] = '\\';
            out[j++] = (char)c;
        } else if (c == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
        } else if (c < 0x20) {
            j += (size_t)snprintf(out + j, cap - j, "\\u%04x", c);
        } else {
            out[j++] = (char)c;
        }
    }
    out[j++] = '"';
    *n = j;
}

/* Converts logfmt pairs (key=value key="quoted \"text\"") into JSON members
 * appended to out, each preceded by a comma. */
static void kv_to_json(char *out, size_t cap, size_t *n, const char *kv)
{
    char val[2048];
    const char *p = kv;
    while (*p && *n + 16 < cap) {
        while (*p == ' ') p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ') p++;
        size_t klen = (size_t)(p - k);
        if (!klen) break;
        out[(*n)++] = ',';
        json_str(out, cap, n, k, klen);
        if (*n + 4 >= cap) break;
        out[(*n)++] = ':';
        if (*p != '=') { /* a bare key: true */
            *n += (size_t)snprintf(out + *n, cap - *n, "true");
            continue;
        }
        p++;
        size_t vlen = 0;
        if (*p == '"') { /* quoted: undo log_quote's escapes */
            for (p++; *p && *p != '"'; p++) {
                char c = *p;
                if (c == '\\' && p[1]) c = *++p == 'n' ? '\n' : *p;
                if (vlen < sizeof val - 1) val[vlen++] = c;
            }
            if (*p == '"') p++;
            json_str(out, cap, n, val, vlen);
            continue;
        }
        const char *v = p;
        while (*p && *p != ' ') p++;
        vlen = (size_t)(p - v);
        if (vlen >= sizeof val) vlen = sizeof val - 1;
        memcpy(val, v, vlen);
        val[vlen] = 0;
        char *end;
        double d = vlen ? strtod(val, &end) : 0;
        int number = vlen && *end == 0 && isfinite(d) && (val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) &&
                     !(val[0] == '0' && vlen > 1 && val[1] >= '0' && val[1] <= '9'); /* 007 is an id */
        if (number && *n + vlen + 1 < cap) {
            memcpy(out + *n, val, vlen);
            *n += vlen;
        } else {
            json_str(out, cap, n, val, vlen);
        }
    }
}

/* Formats one line (with its newline) into line; its length, or -1. */
static int format_line(char *line, size_t cap, enum log_level lvl, const char *msg, const char *kvfmt, va_list ap)
{
    char q[1024];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    char ts[80];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    char kv[3072];
    kv[0] = 0;
    if (kvfmt) vsnprintf(kv, sizeof kv, kvfmt, ap);
    int n;
    if (format == LOG_JSON) {
        size_t j = (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[lvl]);
        json_str(line, cap - 2, &j, msg ? msg : "", msg ? strlen(msg) : 0);
        kv_to_json(line, cap - 2, &j, kv);
        line[j++] = '}';
        n = (int)j;
    } else {
        n = snprintf(line, cap, "ts=%s level=%s msg=%s%s%s", ts, level_names[lvl], log_quote(q, sizeof q, msg),
                     *kv ? " " : "", kv);
    }
    if (n < 0) return -1;
    if ((size_t)n > cap - 2) n = (int)cap - 2;
    line[n++] = '\n';
    return n;
}

static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER; /* a pipe splits writes over PIPE_BUF */

static void write_all(const char *p, size_t n)
{
    pthread_mutex_lock(&write_mu);
    while (n) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0) break; /* stderr gone: nothing to do */
        p += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&write_mu);
}

void log_write(enum log_level lvl, const char *msg, const char *kvfmt, ...)
{
    if (!log_enabled(lvl)) return;
    char line[4096];
    va_list ap;
    va_start(ap, kvfmt);
    int n = format_line(line, sizeof line, lvl, msg, kvfmt, ap);
    va_end(ap);
    if (n > 0) write_all(line, (size_t)n);
}

/* ---- buffered access lines ---- */

#define ACCESS_BUF (64 * 1024)

struct abuf {
    pthread_mutex_t mu; /* its thread appends, log_flush writes it out */
    size_t n;
    struct abuf *next;
    char data[ACCESS_BUF];
};

static _Thread_local struct abuf *mine;
static pthread_mutex_t abufs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct abuf *abufs; /* never freed: one per thread that logged, for the process */

static void abuf_drain(struct abuf *b) /* under b->mu */
{
    write_all(b->data, b->n);
    b->n = 0;
}

void log_access(const char *msg, const char *kvfmt, ...)
{
    if (!log_enabled(LOG_INFO)) return;
    char line[4096];
    va_list ap;
    va_start(ap, kvfmt);
    int n = format_line(line, sizeof line, LOG_INFO, msg, kvfmt, ap);
    va_end(ap);
    if (n <= 0) return;
    if (!mine && (mine = calloc(1, sizeof *mine))) {
        pthread_mutex_init(&mine->mu, NULL);
        pthread_mutex_lock(&abufs_mu);
        mine->next = abufs;
        abufs = mine;
        pthread_mutex_unlock(&abufs_mu);
    }
    if (!mine) { /* no buffer: unbuffered */
        write_all(line, (size_t)n);
        return;
    }
    pthread_mutex_lock(&mine->mu);
    if (mine->n + (size_t)n > ACCESS_BUF) abuf_drain(mine);
    memcpy(mine->data + mine->n, line, (size_t)n);
    mine->n += (size_t)n;
    pthread_mutex_unlock(&mine->mu);
}

void log_flush(void)
{
    pthread_mutex_lock(&abufs_mu);
    for (struct abuf *b = abufs; b; b = b->next) {
        pthread_mutex_lock(&b->mu);
        if (b->n) abuf_drain(b);
        pthread_mutex_unlock(&b->mu);
    }
    pthread_mutex_unlock(&abufs_mu);
}
