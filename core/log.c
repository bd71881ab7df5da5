/* logfmt (or JSON) lines on stderr, one write(2) each so threads never
 * interleave (access lines: whole lines at a time, see log_access).
 * Formats into a fixed struct buf on the stack (never the heap); a line
 * longer than LOG_LINE is cut, never split, and a JSON line stays valid. */
#include "log.h"

#include "buf.h"

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

#define LOG_LINE 4096 /* bytes in a line, its newline included; longer ones are cut */

/* Appends logfmt pairs (key=value key="quoted \"text\"") to b as JSON
 * members, each preceded by a comma. b is fixed (a max): a member that
 * does not fit is left out whole, except a string value, which may be cut. */
static void kv_to_json(struct buf *b, const char *kv)
{
    char val[2048];
    const char *p = kv;
    while (*p && !buf_failed(b)) {
        while (*p == ' ') p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ') p++;
        size_t klen = (size_t)(p - k), mark = b->len;
        if (!klen) break;
        buf_putc(b, ',');
        buf_json_str(b, k, klen);
        buf_putc(b, ':');
        size_t vstart = b->len;
        int str = 0;
        if (*p != '=') { /* a bare key: true */
            buf_put(b, "true", 4);
        } else if (*++p == '"') { /* quoted: undo log_quote's escapes */
            size_t vlen = 0;
            for (p++; *p && *p != '"'; p++) {
                char c = *p;
                if (c == '\\' && p[1]) c = *++p == 'n' ? '\n' : *p;
                if (vlen < sizeof val - 1) val[vlen++] = c;
            }
            if (*p == '"') p++;
            buf_json_str(b, val, vlen);
            str = 1;
        } else {
            const char *v = p;
            while (*p && *p != ' ')
                p++;
            size_t vlen = (size_t)(p - v);
            if (vlen >= sizeof val) vlen = sizeof val - 1;
            memcpy(val, v, vlen);
            val[vlen] = 0;
            char *end;
            double d = vlen ? strtod(val, &end) : 0;
            int number =
                vlen && *end == 0 && isfinite(d) &&
                (val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) &&
                !(val[0] == '0' && vlen > 1 && val[1] >= '0' && val[1] <= '9'); /* 007 is an id */
            if (number)
                buf_put(b, val, vlen);
            else
                buf_json_str(b, val, vlen), str = 1;
        }
        if (buf_failed(b) && (!str || b->len == vstart)) buf_setlen(b, mark);
    }
}

/* Formats one line, its newline included, into line[0..LOG_LINE); returns
 * its length. A fixed struct buf: never allocates, cuts what does not fit
 * (a JSON line stays one valid object). */
static size_t format_line(char *line, enum log_level lvl, const char *msg, const char *kvfmt,
                          va_list ap)
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
    struct buf b;
    size_t n;
    if (format == LOG_JSON) {
        buf_init(&b, line, LOG_LINE, LOG_LINE - 2); /* keeps "}\n" out of the max */
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[lvl]);
        buf_json_str(&b, msg ? msg : "", msg ? strlen(msg) : 0);
        kv_to_json(&b, kv);
        n = b.len; /* b.p is line: a fixed buffer never moves */
        line[n++] = '}';
    } else {
        buf_init(&b, line, LOG_LINE, LOG_LINE - 1);
        buf_printf(&b, "ts=%s level=%s msg=%s", ts, level_names[lvl], log_quote(q, sizeof q, msg));
        if (*kv) {
            buf_putc(&b, ' ');
            buf_puts(&b, kv);
        }
        n = b.len;
    }
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
    char line[LOG_LINE];
    va_list ap;
    va_start(ap, kvfmt);
    size_t n = format_line(line, lvl, msg, kvfmt, ap);
    va_end(ap);
    write_all(line, n);
}

/* ---- buffered access lines ---- */

#define ACCESS_BUF (64 * 1024)

struct abuf {
    pthread_mutex_t mu; /* its thread appends, log_flush writes it out */
    struct abuf *next;
    struct buf b; /* fixed, over data */
    char data[ACCESS_BUF + 1];
};

static _Thread_local struct abuf *mine;
static pthread_mutex_t abufs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct abuf *abufs; /* never freed: one per thread that logged, for the process */

static void abuf_drain(struct abuf *a) /* under a->mu */
{
    write_all(a->b.p, a->b.len);
    buf_reset(&a->b);
}

void log_access(const char *msg, const char *kvfmt, ...)
{
    if (!log_enabled(LOG_INFO)) return;
    char line[LOG_LINE];
    va_list ap;
    va_start(ap, kvfmt);
    size_t n = format_line(line, LOG_INFO, msg, kvfmt, ap);
    va_end(ap);
    if (!mine && (mine = calloc(1, sizeof *mine))) {
        pthread_mutex_init(&mine->mu, NULL);
        buf_init(&mine->b, mine->data, sizeof mine->data, ACCESS_BUF);
        pthread_mutex_lock(&abufs_mu);
        mine->next = abufs;
        abufs = mine;
        pthread_mutex_unlock(&abufs_mu);
    }
    if (!mine) { /* no buffer: unbuffered */
        write_all(line, n);
        return;
    }
    pthread_mutex_lock(&mine->mu);
    if (mine->b.len + n > ACCESS_BUF) abuf_drain(mine);
    buf_put(&mine->b, line, n); /* whole: LOG_LINE < ACCESS_BUF */
    pthread_mutex_unlock(&mine->mu);
}

void log_flush(void)
{
    pthread_mutex_lock(&abufs_mu);
    for (struct abuf *a = abufs; a; a = a->next) {
        pthread_mutex_lock(&a->mu);
        if (a->b.len) abuf_drain(a);
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&abufs_mu);
}
