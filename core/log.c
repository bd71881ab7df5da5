/* logfmt lines on stderr, one write(2) each so threads never interleave.
 * Formats into a stack buffer; a line longer than it is truncated, never
 * split. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

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

void log_write(enum log_level lvl, const char *msg, const char *kvfmt, ...)
{
    if (!log_enabled(lvl)) return;
    char line[4096], q[1024];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, now.tv_nsec / 1000000, level_names[lvl],
                     log_quote(q, sizeof q, msg));
    if (kvfmt && n > 0 && (size_t)n < sizeof line - 2) {
        va_list ap;
        line[n++] = ' ';
        va_start(ap, kvfmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, kvfmt, ap);
        va_end(ap);
        if (m > 0) n += m;
    }
    if (n < 0) return;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
