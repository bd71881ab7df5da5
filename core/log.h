/* Structured logging: one logfmt line per event on stderr,
 *   ts=2026-11-24T15:50:00.123Z level=info msg="request" rid=... route=/x status=200 ms=0.42
 * or, with log.format = "json", the same fields as one JSON object per line:
 *   {"ts":"2026-11-24T15:50:00.123Z","level":"info","msg":"request","rid":"...","status":200,"ms":0.42}
 * Thread-safe (one write(2) per line). Never allocates on the heap. */
#ifndef LOG_H
#define LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_LOGFMT, LOG_JSON };

void log_set_format(enum log_format fmt);
int log_parse_format(const char *s, enum log_format *out); /* 0 ok, -1 unknown name */

void log_set_level(enum log_level lvl);
int log_parse_level(const char *s, enum log_level *out); /* 0 ok, -1 unknown name */
int log_enabled(enum log_level lvl);

/* msg is quoted for you; kvfmt is printf-style "key=value ..." appended
 * verbatim (may be NULL). Quote free text with log_quote. In JSON format the
 * pairs become members: quoted values strings, bare numbers numbers, other
 * bare values strings. */
void log_write(enum log_level lvl, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The per-request access line: formatted as log_write at level info, but
 * appended to a buffer of the calling thread and written whole lines at a
 * time when the buffer fills or at log_flush (the HTTP reaper calls it every
 * 200 ms, and the server at exit), as nginx's `access_log ... buffer=`
 * does: at 50k requests/s that is a write(2) per ~300 lines, not per line.
 * Lines of different threads may come out up to 200 ms apart of order. */
void log_access(const char *msg, const char *kvfmt, ...) __attribute__((format(printf, 2, 3)));
void log_flush(void);

/* Writes s as a logfmt-quoted value into buf (truncating); returns buf. */
const char *log_quote(char *buf, unsigned len, const char *s);

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
