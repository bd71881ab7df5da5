/* buf: the one growable byte buffer of core/, and the one JSON writer on it.
 * Append without checking each call: a failure (out of memory, or the max
 * the owner set) is sticky, later appends do nothing, and the owner checks
 * buf_failed once at the end, as SQLite's StrAccum and Redis's sds are used.
 * Starts in caller storage (a stack array) and moves to mem_alloc'd memory
 * only when that is full. Never raises, never aborts; one owner at a time. */
#ifndef BUF_H
#define BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

enum buf_err {
    BUF_OK,
    BUF_OOM, /* an allocation failed: the bytes are incomplete, throw them away */
    BUF_FULL /* max reached: the bytes are cut there (a JSON string keeps its closing quote) */
};

/* Public so the hot appends can be inline and the owner can read p[0..len)
 * directly; change it only through the functions below. */
struct buf {
    char *p;            /* the bytes, never NULL; p[len] is kept writable for buf_cstr */
    size_t len;         /* bytes held */
    size_t cap;         /* len may reach cap without growing; cap == len once failed */
    size_t size;        /* bytes at p (0: none yet, p is a static empty string) */
    size_t max;         /* len never exceeds max; 0: no limit */
    unsigned char heap; /* p is ours (mem_alloc), not the caller's storage */
    unsigned char err;  /* enum buf_err; sticky until buf_reset */
};

/* Starts b empty in storage[0..n) (NULL, 0: none; the heap from the first
 * append). The caller keeps storage alive while b uses it; one byte of it
 * is kept for the NUL. max > 0 bounds len: with n > max, b never allocates
 * and appends past max are cut (BUF_FULL). */
void buf_init(struct buf *b, char *storage, size_t n, size_t max);

/* Drops the bytes and the error; keeps the memory for reuse. */
void buf_reset(struct buf *b);

/* Frees what b allocated and leaves it empty, without storage (buf_init
 * again to give it some). */
void buf_free(struct buf *b);

/* The bytes as a NUL-terminated string, owned by b (valid until the next
 * append or free); "" when nothing was ever stored. */
const char *buf_cstr(struct buf *b);

/* The bytes as a NUL-terminated string the caller frees with mem_free
 * (copied out of caller storage if they are still there), their length in
 * *len if len is not NULL; b is left empty as after buf_free. NULL when b
 * failed or the copy could not be allocated (b is freed then too). */
char *buf_detach(struct buf *b, size_t *len);

/* Cuts b back to its first n bytes (n <= len), e.g. to drop a half-written
 * item after BUF_FULL. Keeps the error, if any. */
void buf_setlen(struct buf *b, size_t n);

/* The slow path of every append: makes room for n more bytes. Returns how
 * many of them may be written now: n, fewer when max cuts them (BUF_FULL
 * set), 0 after any error. */
size_t buf_room_(struct buf *b, size_t n);

static inline enum buf_err buf_failed(const struct buf *b)
{
    return (enum buf_err)b->err;
}

/* At least n writable bytes at the end of b, to be accounted for with
 * buf_added (as luaL_prepbuffsize / luaL_addsize), or NULL if they cannot
 * all be had (b failed: BUF_OOM or BUF_FULL, nothing written). */
static inline char *buf_reserve(struct buf *b, size_t n)
{
    if (n > b->cap - b->len && buf_room_(b, n) < n) {
        b->cap = b->len;
        return NULL;
    }
    return b->p + b->len;
}

static inline void buf_added(struct buf *b, size_t n)
{
    b->len += n;
}

static inline void buf_put(struct buf *b, const void *s, size_t n)
{
    if (n > b->cap - b->len && (n = buf_room_(b, n)) == 0) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void buf_putc(struct buf *b, char c)
{
    if (b->len < b->cap || buf_room_(b, 1)) b->p[b->len++] = c;
}

static inline void buf_puts(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* ---- JSON ---- */

/* Bytes buf_json_quote may write for n input bytes (every byte as \u00XX). */
#define BUF_JSON_QUOTED_MAX(n) ((n)*6 + 2)

/* Writes s[0..n) as a quoted JSON string into out (room for
 * BUF_JSON_QUOTED_MAX(n) bytes) and returns the bytes written. The rules of
 * tf.json.encode: \" \\ \n \r \t, the other bytes below 0x20 as \u00XX
 * (lowercase hex); everything else as it is, "/", DEL and bytes >= 0x80
 * included (invalid UTF-8 passes through unchanged). For writers that are
 * not a struct buf (a luaL_Buffer: luaL_prepbuffsize, then luaL_addsize). */
size_t buf_json_quote(char *out, const char *s, size_t n);

/* Appends s[0..n) as a quoted JSON string (buf_json_quote's rules). When
 * b's max cuts it, it is cut at a character boundary before the closing
 * quote, which is still written (BUF_FULL set). */
void buf_json_str(struct buf *b, const char *s, size_t n);

/* Appends v as a JSON number, as "%lld" would. */
void buf_json_int(struct buf *b, long long v);

/* Appends d as tf.json.encode writes a float: "%.15g", or "%.17g" when the
 * 15 digits do not read back as d; null when d is NaN or infinite. */
void buf_json_double(struct buf *b, double d);
/* d as "%.15g" writes it into out (at most 22 bytes, no NUL), without
 * printf, when d is the double nearest to a decimal of at most 15
 * significant digits with 1e-4 <= |d| < 1e15 (prices, sizes); else 0. */
size_t buf_short_decimal(char *out, double d);

#endif
