/* The growable buffer's slow paths (growing, printf, detaching) and the JSON
 * writer: the one string escaper and number formatter tf.json.encode, the
 * logs and the HTTP answers share. Memory comes from mem.c; a failure is
 * recorded in the buffer, never reported per call. */
#include "buf.h"

#include "mem.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static char empty[1]; /* p of a buffer without memory: never written (size 0) */

static size_t cap_of(const struct buf *b)
{
    size_t cap = b->size ? b->size - 1 : 0;
    return b->max && cap > b->max ? b->max : cap;
}

void buf_init(struct buf *b, char *storage, size_t n, size_t max)
{
    b->p = storage && n ? storage : empty;
    b->size = storage ? n : 0;
    b->len = 0;
    b->max = max;
    b->heap = 0;
    b->err = BUF_OK;
    b->cap = cap_of(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->err = BUF_OK;
    b->cap = cap_of(b);
}

void buf_free(struct buf *b)
{
    if (b->heap) mem_free(b->p);
    buf_init(b, NULL, 0, b->max);
}

const char *buf_cstr(struct buf *b)
{
    if (!b->size) return "";
    b->p[b->len] = 0;
    return b->p;
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *s = NULL;
    if (!b->err) {
        if (b->heap) {
            s = b->p;
            b->heap = 0; /* now the caller's */
        } else if ((s = mem_alloc(b->len + 1))) {
            memcpy(s, b->p, b->len);
        }
        if (s) {
            s[b->len] = 0;
            if (len) *len = b->len;
        }
    }
    buf_free(b);
    return s;
}

void buf_setlen(struct buf *b, size_t n)
{
    assert(n <= b->len);
    b->len = n;
    if (b->err) b->cap = n;
}

/* Gives p room for want bytes and the NUL (doubling from 256, as far as
 * max allows). 0, or -1 when the memory cannot be had (b unchanged). */
static int grow(struct buf *b, size_t want)
{
    size_t size = b->size < 256 ? 256 : b->size;
    while (size <= want) {
        if (size > SIZE_MAX / 2) {
            if (want == SIZE_MAX) return -1;
            size = want + 1;
            break;
        }
        size *= 2;
    }
    if (b->max && size > b->max + 1) size = b->max + 1;
    char *q;
    if (b->heap) {
        q = mem_realloc(b->p, size);
    } else if ((q = mem_alloc(size))) {
        memcpy(q, b->p, b->len);
    }
    if (!q) return -1;
    b->p = q;
    b->size = size;
    b->heap = 1;
    b->cap = cap_of(b);
    return 0;
}

size_t buf_room_(struct buf *b, size_t n)
{
    if (b->err) return 0;
    size_t want = b->len + n, room = n;
    if (want < b->len) want = SIZE_MAX; /* overflow: no memory has room for it */
    if (b->max && want > b->max) {
        want = b->max;
        room = b->max - b->len;
    }
    if (want > b->cap && grow(b, want)) {
        b->err = BUF_OOM;
        b->cap = b->len;
        return 0;
    }
    if (room < n) {
        b->err = BUF_FULL;
        b->cap = b->len + room; /* the caller fills it: then nothing more fits */
    }
    return room;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    if (b->err) return;
    size_t room = b->cap - b->len; /* p[len + room] is there for the NUL */
    va_list aq;
    va_copy(aq, ap);
    int n = b->size ? vsnprintf(b->p + b->len, room + 1, fmt, aq) : vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0) return; /* an encoding error: nothing appended */
    if ((size_t)n > room) {
        if (!(room = buf_room_(b, (size_t)n))) return;
        vsnprintf(b->p + b->len, room + 1, fmt, ap); /* cut to room when max cut it */
        n = (int)room;
    }
    b->len += (size_t)n;
}

/* ---- JSON ---- */

/* What follows the backslash for each byte that is escaped; 0: as it is. */
/* clang-format off */
static const char json_esc[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 't', 'n', 'u', 'u', 'r', 'u', 'u', /* 0x00 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', /* 0x10 */
    ['"'] = '"', ['\\'] = '\\',
};
/* clang-format on */

static size_t quoted_len(unsigned char c)
{
    return json_esc[c] == 'u' ? 6 : json_esc[c] ? 2 : 1;
}

size_t buf_json_quote(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e = json_esc[c];
        if (!e) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        *o++ = e;
        if (e == 'u') *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 15];
    }
    *o++ = '"';
    return (size_t)(o - out);
}

/* s as much as fits before max, whole characters, and the closing quote. */
static void json_str_cut(struct buf *b, const char *s, size_t n)
{
    size_t exact = 2;
    for (size_t i = 0; i < n; i++)
        exact += quoted_len((unsigned char)s[i]);
    size_t room = buf_room_(b, exact);
    if (room == exact) {
        b->len += buf_json_quote(b->p + b->len, s, n);
        return;
    }
    if (room >= 2) { /* BUF_FULL: cut */
        size_t i = 0, used = 2;
        while (i < n && used + quoted_len((unsigned char)s[i]) <= room)
            used += quoted_len((unsigned char)s[i++]);
        /* never half a UTF-8 sequence: drop its lead byte and what followed */
        size_t j = i;
        while (j > 0 && j < n && i - j < 3 && ((unsigned char)s[j] & 0xC0) == 0x80)
            j--;
        if (j < i && ((unsigned char)s[j] & 0xC0) == 0xC0) i = j;
        b->len += buf_json_quote(b->p + b->len, s, i);
    }
    b->cap = b->len;
}

void buf_json_str(struct buf *b, const char *s, size_t n)
{
    size_t need = n <= (SIZE_MAX - 2) / 6 ? BUF_JSON_QUOTED_MAX(n) : SIZE_MAX;
    if (need > b->cap - b->len) {
        if (b->err) return;
        if (b->max && need > b->max - b->len) {
            json_str_cut(b, s, n);
            return;
        }
        if (buf_room_(b, need) < need) return;
    }
    b->len += buf_json_quote(b->p + b->len, s, n);
}

/* v in decimal into out (at most 20 bytes); returns their number. */
static size_t fmt_int(char *out, long long v)
{
    char rev[20];
    size_t n = 0, k = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        rev[n++] = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) out[k++] = '-';
    while (n)
        out[k++] = rev[--n];
    return k;
}

void buf_json_int(struct buf *b, long long v)
{
    if (b->cap - b->len >= 20) {
        b->len += fmt_int(b->p + b->len, v);
        return;
    }
    char tmp[20];
    size_t n = fmt_int(tmp, v);
    buf_put(b, tmp, n);
}

/* d > 0 as "%.15g" writes it, when d is the double nearest to a decimal
 * of at most 15 significant digits from 1e-4 to 1e15 (prices, sizes,
 * rates): found by scaling, without printf. Returns the bytes written to
 * out (at most 21), or 0 for any other d (printf then). Exact: such a
 * decimal D is unique, m / 10^k == d says d = nearest(D) (m and 10^k are
 * exact, the division correctly rounded), and 15 = DBL_DIG digits of
 * nearest(D) read back as D, which %g writes without exponent or trailing
 * zeros in this range. */
static size_t fmt_short_decimal(char *out, double d)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
                                 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19};
    if (!(d >= 1e-4 && d < 1e15)) return 0;
    for (int k = 0; k < 20; k++) {
        double x = d * p10[k];
        if (!(x < 1e15)) return 0; /* more than 15 digits */
        double m = (double)(long long)(x + 0.5);
        if (m < 1e15 && m / p10[k] == d) {
            char digits[20];
            size_t nd = fmt_int(digits, (long long)m), j = 0;
            while (k > 0 && digits[nd - 1] == '0')
                nd--, k--; /* not expected: an earlier k would have matched */
            if ((size_t)k < nd) {
                memcpy(out, digits, nd - (size_t)k);
                j = nd - (size_t)k;
            } else {
                out[j++] = '0';
            }
            if (k > 0) {
                out[j++] = '.';
                for (size_t z = nd; z < (size_t)k; z++)
                    out[j++] = '0';
                size_t from = (size_t)k < nd ? nd - (size_t)k : 0;
                memcpy(out + j, digits + from, nd - from);
                j += nd - from;
            }
            return j;
        }
    }
    return 0;
}

size_t buf_short_decimal(char *out, double d)
{
    if (!isfinite(d) || d == 0) return 0;
    size_t n = fmt_short_decimal(out + (d < 0), fabs(d));
    if (n && d < 0) out[0] = '-', n++;
    return n;
}

void buf_json_double(struct buf *b, double d)
{
    char tmp[40];
    size_t n;
    if (!isfinite(d)) {
        buf_put(b, "null", 4);
        return;
    }
    if (d == 0) {
        buf_put(b, signbit(d) ? "-0" : "0", signbit(d) ? 2 : 1);
        return;
    }
    if ((n = fmt_short_decimal(tmp + 1, fabs(d)))) {
        tmp[0] = '-';
        buf_put(b, d < 0 ? tmp : tmp + 1, d < 0 ? n + 1 : n);
        return;
    }
    int w = snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d) w = snprintf(tmp, sizeof tmp, "%.17g", d);
    buf_put(b, tmp, (size_t)w);
}
