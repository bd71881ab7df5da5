/* The ingest layer (see ingest.h): JSON readers with the body limits, batch
 * keys under a per-process SipHash key, folding and RETURNING mapping over
 * one open-addressing table, and the COPY path's text and gate. Holds no
 * state but the hash key, the COPY gates' pauses (in the callers' gates)
 * and the cJSON allocator hooks. */
#include "ingest.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "mem.h"
#include "metrics.h"
#include "ts.h"

const char *ingest_status_name(int status)
{
    switch (status) {
    case INGEST_VALID:
        return "valid";
    case INGEST_INSERTED:
        return "inserted";
    case INGEST_DUPLICATE:
        return "duplicate";
    case INGEST_UPDATED:
        return "updated";
    case INGEST_REJECTED:
        return "rejected";
    case INGEST_QUEUED:
        return "queued";
    }
    return "unknown";
}

int64_t ingest_offset_for(const struct ingest_opts *o, const char *symbol)
{
    for (size_t i = 0; i < o->nsymbol_offsets; i++)
        if (strcmp(o->symbol_offsets[i].symbol, symbol) == 0) return o->symbol_offsets[i].offset_us;
    return o->offset_us;
}

/* ---- JSON ---- */

/* cJSON allocates through mem_*: its trees count in tf_memory_c_bytes and
 * fault injection reaches them. The hooks are installed before main, so no
 * tree is ever freed by another allocator than the one that made it. */
static _Thread_local int json_oom;

static void *json_alloc(size_t n)
{
    void *p = mem_alloc(n);
    if (!p) json_oom = 1;
    return p;
}

__attribute__((constructor)) static void json_hooks(void)
{
    cJSON_Hooks h = {json_alloc, mem_free};
    cJSON_InitHooks(&h);
}

/* What cJSON would build from s, counted without building it: nesting
 * depth, JSON values (a tree node each, ~64 bytes), and the elements of the
 * batch arrays (the top-level array, or an array member of the top-level
 * object). A 16MB "[0,0,...]" is refused here, before it costs 500MB. Syntax
 * errors are left to the parser. 0, or -1 with *http_status and err. */
static int json_prescan(const char *s, size_t n, size_t max_items, const char *noun,
                        int *http_status, char *err, size_t errlen)
{
    struct {
        size_t elems;
        unsigned char nonempty, is_array;
    } st[INGEST_JSON_MAX_DEPTH];
    int d = 0;
    size_t values = 1, items = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == ']' || c == '}') {
            if (d == 0) return 0;
            d--;
            size_t e = st[d].elems + st[d].nonempty;
            values += e;
            if (st[d].is_array && (d == 0 || (d == 1 && !st[0].is_array)) && e > items) items = e;
            continue;
        }
        if (d > 0) {
            if (c == ',') {
                st[d - 1].elems++;
                continue;
            }
            st[d - 1].nonempty = 1;
        }
        if (c == '[' || c == '{') {
            if (d == INGEST_JSON_MAX_DEPTH) {
                *http_status = 400;
                snprintf(err, errlen, "invalid JSON at byte %zu: nested deeper than %d levels", i,
                         INGEST_JSON_MAX_DEPTH);
                return -1;
            }
            st[d].elems = 0;
            st[d].nonempty = 0;
            st[d].is_array = c == '[';
            d++;
        } else if (c == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\')
                    i++;
                else if (s[i] == '\0') { /* cJSON would cut the string here: "A\0B" read as "A" */
                    *http_status = 400;
                    snprintf(err, errlen, "invalid JSON at byte %zu: a NUL byte in a string", i);
                    return -1;
                }
            }
        }
    }
    if (max_items && items > max_items) {
        *http_status = 413;
        snprintf(err, errlen, "too many %s: %zu > %zu; split the batch", noun, items, max_items);
        return -1;
    }
    if (max_items && values / INGEST_JSON_VALUES_PER_ITEM > max_items) {
        *http_status = 413;
        snprintf(err, errlen,
                 "body: %zu JSON values is too many for at most %zu %s (%d values each); split the "
                 "batch",
                 values, max_items, noun, INGEST_JSON_VALUES_PER_ITEM);
        return -1;
    }
    return 0;
}

/* cJSON ends a string at an escaped NUL, so "EUR\u0000USD" would become
 * "EUR". In a copy of the body each "\u0000" inside a string becomes
 * "\ufffd" (same length): the item is then rejected for its bad character
 * instead of stored under a cut name. NULL when there is none (or no memory,
 * *oom set). Caller frees with mem_free. */
/* Walks the strings of s; with fix, rewrites each escaped NUL to U+FFFD.
 * Returns how many there are. */
static size_t nul_escapes(char *s, size_t n, int fix)
{
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '"') continue;
        for (i++; i < n && s[i] != '"'; i++) {
            if (s[i] != '\\') continue;
            if (i + 5 < n && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4)) {
                found++;
                if (fix) memcpy(s + i + 2, "fffd", 4);
            }
            i++;
        }
    }
    return found;
}

static char *replace_nul_escapes(const char *s, size_t n, int *oom)
{
    *oom = 0;
    if (!memmem(s, n, "\\u0000", 6) || !nul_escapes((char *)s, n, 0)) return NULL;
    char *c = mem_alloc(n);
    if (!c) {
        *oom = 1;
        return NULL;
    }
    memcpy(c, s, n);
    nul_escapes(c, n, 1);
    return c;
}

cJSON *ingest_json_parse(const char *body, size_t len, size_t max_items, const char *noun,
                         int *http_status, char *err, size_t errlen)
{
    size_t n = len;
    *http_status = 400;
    while (n && (body[n - 1] == '\0' || isspace((unsigned char)body[n - 1])))
        n--;
    if (n == 0) {
        snprintf(err, errlen, "empty body");
        return NULL;
    }
    if (json_prescan(body, n, max_items, noun, http_status, err, errlen) < 0) return NULL;
    int oom;
    char *copy = replace_nul_escapes(body, n, &oom);
    if (oom) {
        *http_status = 500;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *end = NULL;
    json_oom = 0;
    cJSON *root = cJSON_ParseWithLengthOpts(copy ? copy : body, n, &end, 0);
    if (copy) end = end ? body + (end - copy) : NULL, mem_free(copy);
    if (!root && json_oom) {
        *http_status = 500;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!root) {
        size_t pos = end && end >= body && end <= body + n ? (size_t)(end - body) : 0;
        snprintf(err, errlen, "invalid JSON at byte %zu", pos);
        return NULL;
    }
    if (end && end < body + n) {
        snprintf(err, errlen, "invalid JSON at byte %zu: unexpected data after the value",
                 (size_t)(end - body));
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* An object's member by exact name: the first byte is compared before the
 * string, which makes this several times cheaper than a strcmp per member. */
const cJSON *ingest_json_field(const cJSON *obj, const char *key)
{
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next)
        if (c->string && c->string[0] == key[0] && strcmp(c->string, key) == 0) return c;
    return NULL;
}

int ingest_json_number(const cJSON *obj, const char *key, double *v, const char **why)
{
    const cJSON *f = ingest_json_field(obj, key);
    if (!f || cJSON_IsNull(f)) return 1;
    if (cJSON_IsNumber(f)) {
        *v = f->valuedouble;
    } else if (cJSON_IsString(f) && f->valuestring[0]) {
        char *end;
        errno = 0;
        *v = strtod(f->valuestring, &end);
        while (isspace((unsigned char)*end))
            end++;
        if (*end || end == f->valuestring) {
            *why = "must be a number";
            return -1;
        }
    } else {
        *why = "must be a number";
        return -1;
    }
    if (!isfinite(*v)) {
        *why = "must be finite";
        return -1;
    }
    return 0;
}

int ingest_json_positive(const cJSON *obj, const char *key, double *v, char *err, size_t errlen)
{
    const char *why = NULL;
    int r = ingest_json_number(obj, key, v, &why);
    if (r == 1)
        snprintf(err, errlen, "%s: missing", key);
    else if (r < 0)
        snprintf(err, errlen, "%s: %s", key, why);
    else if (!(*v > 0))
        snprintf(err, errlen, "%s: must be > 0, got %.10g", key, *v);
    else
        return 0;
    return -1;
}

int ingest_json_symbol(const cJSON *obj, char *dst, char *err, size_t errlen)
{
    const cJSON *f = ingest_json_field(obj, "symbol");
    if (!f || cJSON_IsNull(f)) {
        snprintf(err, errlen, "symbol: missing");
        return -1;
    }
    if (!cJSON_IsString(f)) {
        snprintf(err, errlen, "symbol: must be a string");
        return -1;
    }
    const char *s = f->valuestring;
    size_t n = strlen(s);
    if (n < 1 || n > INGEST_SYMBOL_MAX) {
        snprintf(err, errlen, "symbol: must be 1..%d characters, got %zu", INGEST_SYMBOL_MAX, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
            snprintf(err, errlen, "symbol: must be printable ASCII (byte %zu is 0x%02x)", i,
                     (unsigned char)s[i]);
            return -1;
        }
    }
    memcpy(dst, s, n + 1);
    return 0;
}

int ingest_json_ts(const cJSON *obj, const char *key, int64_t *us, char *orig, size_t origlen,
                   char *err, size_t errlen)
{
    const cJSON *f = ingest_json_field(obj, key);
    char why[96];
    orig[0] = '\0';
    if (!f || cJSON_IsNull(f)) {
        snprintf(err, errlen, "%s: missing", key);
        return -1;
    }
    if (cJSON_IsString(f)) {
        size_t n = strlen(f->valuestring);
        if (n >= origlen) n = origlen - 1;
        memcpy(orig, f->valuestring, n);
        orig[n] = '\0';
        if (ts_parse(f->valuestring, strlen(f->valuestring), us, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s", key, why);
            return -1;
        }
        return 0;
    }
    if (cJSON_IsNumber(f)) {
        snprintf(orig, origlen, "%.17g", f->valuedouble);
        if (f->valuedouble == floor(f->valuedouble) && fabs(f->valuedouble) < 1e17)
            snprintf(orig, origlen, "%.0f", f->valuedouble);
        if (ts_from_epoch(f->valuedouble, us, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s", key, why);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "%s: must be a string or an epoch number", key);
    return -1;
}

/* ---- numbers as text ---- */

/* Writes v >= 0 with at most `scale` decimals, trailing zeros trimmed: what
 * the NUMERIC(18,scale) column keeps, produced without printf. v * 10^scale
 * stays below 2^63 for every value validation lets through. */
int ingest_fmt_fixed(char *out, double v, int scale)
{
    static const double pow10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    uint64_t n = (uint64_t)llround(v * pow10[scale]);
    char tmp[32];
    int i = (int)sizeof tmp, frac = scale;
    while (frac > 0 && n % 10 == 0)
        n /= 10, frac--; /* trim trailing zeros */
    for (int k = 0; k < frac; k++)
        tmp[--i] = (char)('0' + n % 10), n /= 10;
    if (frac) tmp[--i] = '.';
    do
        tmp[--i] = (char)('0' + n % 10), n /= 10;
    while (n);
    int len = (int)sizeof tmp - i;
    memcpy(out, tmp + i, (size_t)len);
    out[len] = '\0';
    return len;
}

/* The short fixed form when it round-trips (prices sent as "1.08553" do),
 * else %.17g. */
int ingest_fmt_double(char *out, double v)
{
    if (v >= 0 && v < 9e10) {
        int n = ingest_fmt_fixed(out, v, 8);
        if (strtod(out, NULL) == v) return n;
    }
    return snprintf(out, 32, "%.17g", v);
}

/* ---- keys ---- */

/* SipHash-1-3 under a key drawn once per process: a client cannot craft
 * keys that collide in the folding tables (which would make a batch O(n^2)
 * in C, where the handler time limit cannot reach). */
static uint64_t sip_k0, sip_k1;

__attribute__((constructor)) static void sip_seed(void)
{
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) !=
        (ssize_t)sizeof k) { /* no entropy yet: still unguessable enough */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
        k[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
    }
    sip_k0 = k[0];
    sip_k1 = k[1];
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                                  \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                                     \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                                     \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                                  \
    } while (0)

uint64_t ingest_key_hash(const char *sym, uint64_t a, uint64_t b)
{
    unsigned char buf[INGEST_SYMBOL_MAX + 1 + 16 + 8];
    size_t n = strnlen(sym, INGEST_SYMBOL_MAX + 1);
    memcpy(buf, sym, n);
    buf[n++] = 0; /* the symbol's end: "AB"+x never equals "A"+y */
    memcpy(buf + n, &a, 8), n += 8;
    memcpy(buf + n, &b, 8), n += 8;
    uint64_t v0 = sip_k0 ^ 0x736f6d6570736575ULL, v1 = sip_k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = sip_k0 ^ 0x6c7967656e657261ULL, v3 = sip_k1 ^ 0x7465646279746573ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m;
        memcpy(&m, buf + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t m = (uint64_t)n << 56;
    for (size_t j = 0; i + j < n; j++)
        m |= (uint64_t)buf[i + j] << (8 * j);
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static int same_key(const struct ingest_key *x, const struct ingest_key *y)
{
    return x->a == y->a && x->b == y->b && strcmp(x->symbol, y->symbol) == 0;
}

static void *item_at(const struct ingest_kind *k, void *items, size_t i)
{
    return (char *)items + i * k->size;
}

int ingest_index_init(struct ingest_index *x, size_t nkeys)
{
    for (x->cap = 16; x->cap < nkeys * 2;)
        x->cap <<= 1;
    x->slot = mem_alloc(x->cap * sizeof *x->slot);
    if (!x->slot) return -1;
    memset(x->slot, 0xff, x->cap * sizeof *x->slot);
    return 0;
}

void ingest_index_free(struct ingest_index *x)
{
    mem_free(x->slot);
    x->slot = NULL;
}

/* The slot of the item with key *key, or of the empty slot where it would go. */
static size_t index_probe(const struct ingest_index *x, const struct ingest_kind *k, void *items,
                          const struct ingest_key *key)
{
    size_t h = ingest_key_hash(key->symbol, key->a, key->b) & (x->cap - 1);
    for (; x->slot[h] >= 0; h = (h + 1) & (x->cap - 1)) {
        struct ingest_ref r;
        k->ref(item_at(k, items, (size_t)x->slot[h]), &r);
        if (same_key(&r.key, key)) break;
    }
    return h;
}

void ingest_index_leaders(struct ingest_index *x, const struct ingest_kind *k, void *items,
                          size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ingest_ref r;
        k->ref(item_at(k, items, i), &r);
        if (*r.status != INGEST_VALID || *r.leader >= 0 || !r.has_key) continue;
        x->slot[index_probe(x, k, items, &r.key)] = (int32_t)i;
    }
}

int ingest_returned(const struct ingest_index *x, const struct ingest_kind *k, void *items,
                    const struct ingest_key *key, int status)
{
    int32_t i = x->slot[index_probe(x, k, items, key)];
    if (i < 0) return -1;
    struct ingest_ref r;
    k->ref(item_at(k, items, (size_t)i), &r);
    *r.status = (uint8_t)status;
    return 0;
}

/* Open addressing over the keys: marks later items with the key of an
 * earlier one as its followers. */
int ingest_fold(const struct ingest_kind *k, void *items, size_t n, size_t nvalid)
{
    struct ingest_index x;
    struct ingest_ref r;
    for (size_t i = 0; i < n; i++)
        k->ref(item_at(k, items, i), &r), *r.leader = -1;
    if (ingest_index_init(&x, nvalid) < 0) return -1;
    for (size_t i = 0; i < n; i++) {
        k->ref(item_at(k, items, i), &r);
        if (*r.status != INGEST_VALID || !r.has_key) continue;
        size_t h = index_probe(&x, k, items, &r.key);
        if (x.slot[h] < 0)
            x.slot[h] = (int32_t)i;
        else
            *r.leader = x.slot[h];
    }
    ingest_index_free(&x);
    return 0;
}

void ingest_count(const struct ingest_kind *k, void *items, size_t n, struct ingest_counts *c)
{
    memset(c, 0, sizeof *c);
    c->received = n;
    size_t *by_status[] = {[INGEST_INSERTED] = &c->inserted,
                           [INGEST_DUPLICATE] = &c->duplicates,
                           [INGEST_UPDATED] = &c->updated,
                           [INGEST_REJECTED] = &c->rejected,
                           [INGEST_QUEUED] = &c->queued}; /* VALID is not counted */
    for (size_t i = 0; i < n; i++) {
        struct ingest_ref r;
        k->ref(item_at(k, items, i), &r);
        if (*r.status < sizeof by_status / sizeof *by_status && by_status[*r.status])
            (*by_status[*r.status])++;
    }
}

int ingest_place(const struct ingest_opts *o, const char *symbol, int64_t us, int tf,
                 int64_t *ts_us, int64_t *bucket_us, char *err, size_t errlen)
{
    *ts_us = us - ingest_offset_for(o, symbol);
    *bucket_us = ts_bucket(*ts_us, (enum ts_tf)tf);
    if (ts_in_range(*ts_us) && ts_in_range(*bucket_us)) return 0;
    snprintf(err, errlen, "ts: " TS_RANGE_ERROR " (after the server time offset and bucketing)");
    return -1;
}

/* Decodes the items of arr (an array), or the one object `one` when arr is
 * NULL, into a mem_calloc'd array, counts the valid ones and folds their
 * keys. 0, or -1 with *http_status 413 or 500 and err. */
static int decode_items(const struct ingest_kind *k, const cJSON *arr, const cJSON *one,
                        const struct ingest_opts *o, void **items, size_t *n, size_t *nvalid,
                        int *http_status, char *err, size_t errlen)
{
    size_t cnt = arr ? (size_t)cJSON_GetArraySize(arr) : 1;
    char *it = NULL;
    *items = NULL;
    *n = *nvalid = 0;
    if (o->max_items && cnt > o->max_items) {
        *http_status = 413;
        snprintf(err, errlen, "too many %s: %zu > %zu; split the batch", k->noun, cnt,
                 o->max_items);
        return -1;
    }
    if (cnt && !(it = mem_calloc(cnt, k->size))) goto oom;
    size_t i = 0, valid = 0;
    for (const cJSON *v = arr ? arr->child : one; v && i < cnt; v = arr ? v->next : NULL, i++) {
        struct ingest_ref r;
        k->ref(it + i * k->size, &r); /* its pointers; the key is known once decoded */
        *r.leader = -1;
        if (k->decode(v, o, it + i * k->size, r.error, INGEST_ERR_MAX) == 0) {
            r.error[0] = '\0';
            *r.status = INGEST_VALID;
            valid++;
        } else {
            *r.status = INGEST_REJECTED;
        }
    }
    if (ingest_fold(k, it, cnt, valid) < 0) goto oom;
    *items = it, *n = cnt, *nvalid = valid;
    return 0;
oom:
    mem_free(it);
    *http_status = 500;
    snprintf(err, errlen, "out of memory");
    return -1;
}

int ingest_decode(const struct ingest_kind *k, const char *body, size_t len,
                  const struct ingest_opts *o, void **batch, int *http_status, char *err,
                  size_t errlen)
{
    static const struct ingest_opts defaults = {0};
    if (!o) o = &defaults;
    *batch = NULL;
    *http_status = 400;
    cJSON *root = ingest_json_parse(body, len, o->max_items, k->noun, http_status, err, errlen);
    if (!root) return -1;
    const cJSON *arr = NULL, *one = NULL;
    void *items = NULL;
    size_t n = 0, nvalid = 0;
    int rc = -1;
    if (k->locate(root, o, &arr, &one, err, errlen) < 0 ||
        decode_items(k, arr, one, o, &items, &n, &nvalid, http_status, err, errlen) < 0)
        goto done;
    if (!(*batch = ingest_batch_new(items, n, nvalid))) {
        mem_free(items);
        *http_status = 500;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    *http_status = 200;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

struct ingest_batch *ingest_batch_new(void *items, size_t n, size_t nvalid)
{
    struct ingest_batch *b = mem_alloc(sizeof *b);
    if (b) b->items = items, b->n = n, b->nvalid = nvalid;
    return b;
}

void ingest_batch_free(void *batch)
{
    struct ingest_batch *b = batch;
    if (!b) return;
    mem_free(b->items);
    mem_free(b);
}

/* ---- COPY ---- */

int ingest_copy_ready(const struct ingest_copy_gate *g, size_t nsend)
{
    return nsend >= INGEST_COPY_MIN && clock_ms() >= g->paused_until;
}

int ingest_copy_run(struct ingest_copy_gate *g, struct db_conn *c, const char *sql,
                    struct db_buf *d, int *fell_back, char *err, size_t errlen)
{
    *fell_back = 0;
    if (d->oom) {
        db_buf_free(d);
        snprintf(err, errlen, "out of memory");
        return DB_ERROR;
    }
    long rows;
    int rc = db_copy_in(c, sql, d->data, d->len, &rows, err, errlen);
    db_buf_free(d);
    if (rc == DB_ERROR && strcmp(db_sqlstate(c), "23505") == 0) {
        g->paused_until = clock_ms() + INGEST_COPY_PAUSE_MS;
        *fell_back = 1;
        metrics_add(g->fallback_metric, NULL, 1, g->fallback_help);
        return DB_OK;
    }
    return rc;
}

void ingest_copy_text(struct db_buf *d, const char *s)
{
    for (const char *q = s; *q; q++) {
        if (*q == '\\') db_buf_putc(d, '\\');
        db_buf_putc(d, *q);
    }
}
