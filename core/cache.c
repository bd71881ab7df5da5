/* The shared cache: one mutex over a chained hash table and an intrusive LRU
 * list. Values are reference-counted blobs, so the lock is held only for the
 * table work (never for copying or decoding a value) and one mutex measured
 * faster than sharding at our sizes (BENCHMARKS.md). Expired entries are
 * dropped when met (get, eviction, stats). Single flight: a key being loaded
 * has a cache_flight with its own condition variable that its waiters block
 * on, bounded. This file knows nothing of Lua. */
#include "cache.h"

#include "clock.h"
#include "mem.h"
#include "metrics.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define OTHER_PREFIX "_other"

struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* LRU list: c->lru.next is the most recent */
    uint32_t hash;
    int prefix;             /* index into c->prefixes */
    int64_t expires;        /* ms on c's clock; 0 = never */
    size_t bytes;           /* what it is charged against max_bytes */
    struct cache_blob *val; /* one reference held by the entry */
    size_t klen;
    char *key; /* klen bytes right after the struct, in the same allocation (a flexible
                * array member would make the embedded LRU sentinel non-ISO) */
};

enum flight_state { FLIGHT_RUNNING, FLIGHT_VALUE, FLIGHT_NIL, FLIGHT_FAILED, FLIGHT_ABANDONED };

struct cache_flight {
    struct cache_flight *next; /* in c->flights while running */
    uint32_t hash;
    size_t klen;
    char *key;
    const void *owner; /* cache_load_begin_as's owner */
    struct cache_waiter *waiters; /* registered by cache_load_begin_as */
    int64_t started; /* ms on c's clock */
    int refs;        /* the loader + each waiter; under c->lock */
    enum flight_state state;
    int stale; /* its key was deleted while it ran: the value goes to the waiters, not into the cache */
    struct cache_blob *val; /* FLIGHT_VALUE: a reference for the waiters */
    pthread_cond_t cond;
};

struct prefix {
    char name[CACHE_PREFIX_LEN + 1];
    size_t len;
    uint64_t hits, misses, entries, bytes;
};

struct cache {
    pthread_mutex_t lock;
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t nentries;
    struct entry lru; /* sentinel of the LRU ring */
    size_t bytes, max_bytes;
    uint64_t hits, misses, evictions, expired, loads, waits;
    struct prefix prefixes[CACHE_PREFIX_MAX + 1];
    int nprefixes;
    struct cache_flight *flights;
    int64_t (*now)(void *ud);
    void *now_ud;
    long config_version; /* cache_configure */
};

static int64_t mono_ms(void *ud)
{
    (void)ud;
    return clock_ms();
}

static uint32_t hash_key(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h;
}

/* ---- blobs ---- */

struct cache_blob *cache_blob_new(const void *data, size_t len)
{
    struct cache_blob *b = mem_alloc(sizeof *b + len);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    if (len) memcpy(b->data, data, len);
    return b;
}

void cache_blob_retain(struct cache_blob *b)
{
    atomic_fetch_add(&b->refs, 1);
}

void cache_blob_release(struct cache_blob *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) mem_free(b);
}

/* ---- life ---- */

struct cache *cache_new(size_t max_bytes)
{
    struct cache *c = mem_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->nbuckets = 64;
    c->buckets = mem_calloc(c->nbuckets, sizeof *c->buckets);
    if (!c->buckets) {
        mem_free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->lru.next = c->lru.prev = &c->lru;
    c->max_bytes = max_bytes;
    c->now = mono_ms;
    /* prefix 0 collects whatever does not get its own line */
    snprintf(c->prefixes[0].name, sizeof c->prefixes[0].name, "%s", OTHER_PREFIX);
    c->prefixes[0].len = strlen(OTHER_PREFIX);
    c->nprefixes = 1;
    return c;
}

static void flight_unref(struct cache_flight *f) /* under c->lock */
{
    if (--f->refs) return;
    cache_blob_release(f->val);
    pthread_cond_destroy(&f->cond);
    mem_free(f->key);
    mem_free(f);
}

void cache_free(struct cache *c)
{
    if (!c) return;
    if (c->flights)
        return; /* a load still runs (a thread outlived shutdown): leave it all to the exit */
    for (struct entry *e = c->lru.next, *next; e != &c->lru; e = next) {
        next = e->next;
        cache_blob_release(e->val);
        mem_free(e);
    }
    mem_free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    mem_free(c);
}

void cache_set_clock(struct cache *c, int64_t (*now_ms)(void *ud), void *ud)
{
    pthread_mutex_lock(&c->lock);
    c->now = now_ms ? now_ms : mono_ms;
    c->now_ud = ud;
    pthread_mutex_unlock(&c->lock);
}

/* ---- table (every function below runs under c->lock) ---- */

/* The stats slot of key's prefix (before the first ':', else the whole key),
 * created when there is room; slot 0 ("_other") otherwise. */
static int prefix_of(struct cache *c, const char *key, size_t klen, int create)
{
    const char *colon = memchr(key, ':', klen);
    size_t n = colon ? (size_t)(colon - key) : klen;
    if (n > CACHE_PREFIX_LEN) return 0;
    for (int i = 1; i < c->nprefixes; i++)
        if (c->prefixes[i].len == n && !memcmp(c->prefixes[i].name, key, n)) return i;
    if (!create || c->nprefixes > CACHE_PREFIX_MAX) return 0;
    if (n == strlen(OTHER_PREFIX) && !memcmp(key, OTHER_PREFIX, n)) return 0;
    struct prefix *p = &c->prefixes[c->nprefixes];
    memcpy(p->name, key, n);
    p->name[n] = 0;
    p->len = n;
    return c->nprefixes++;
}

static struct entry **slot(struct cache *c, const char *key, size_t klen, uint32_t h)
{
    struct entry **pp = &c->buckets[h & (c->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if ((*pp)->hash == h && (*pp)->klen == klen && !memcmp((*pp)->key, key, klen)) break;
    return pp;
}

static void lru_unlink(struct entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(struct cache *c, struct entry *e)
{
    e->next = c->lru.next;
    e->prev = &c->lru;
    c->lru.next->prev = e;
    c->lru.next = e;
}

/* Unlinks and frees e; *pp is the hash link pointing at it (NULL: find it). */
static void remove_entry(struct cache *c, struct entry *e, struct entry **pp)
{
    if (!pp) pp = slot(c, e->key, e->klen, e->hash);
    assert(*pp == e);
    *pp = e->hnext;
    lru_unlink(e);
    c->bytes -= e->bytes;
    c->nentries--;
    c->prefixes[e->prefix].entries--;
    c->prefixes[e->prefix].bytes -= e->bytes;
    cache_blob_release(e->val);
    mem_free(e);
}

static int expired(const struct entry *e, int64_t now)
{
    return e->expires && e->expires <= now;
}

/* Drops least recently used entries until the total fits the bound. An
 * expired victim counts as expired, any other as an eviction. */
static void shrink(struct cache *c)
{
    int64_t now = c->now(c->now_ud);
    while (c->bytes > c->max_bytes && c->lru.prev != &c->lru) {
        struct entry *e = c->lru.prev;
        if (expired(e, now))
            c->expired++;
        else
            c->evictions++;
        remove_entry(c, e, NULL);
    }
}

static void grow(struct cache *c)
{
    size_t n = c->nbuckets * 2;
    struct entry **b = mem_calloc(n, sizeof *b);
    if (!b) return; /* longer chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++)
        for (struct entry *e = c->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    mem_free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

static size_t charge(size_t klen, const struct cache_blob *v)
{
    return CACHE_ENTRY_OVERHEAD + klen + v->len;
}

static int too_big(const struct cache *c, size_t klen, const struct cache_blob *v, char *err,
                   size_t errlen)
{
    if (charge(klen, v) <= c->max_bytes) return 0;
    snprintf(err, errlen, "a value of %zu bytes does not fit in cache.max_memory (%zu bytes)",
             v->len, c->max_bytes);
    return 1;
}

/* Inserts (or replaces) key -> v; the caller checked too_big. 0 or -1 (OOM). */
static int insert(struct cache *c, const char *key, size_t klen, struct cache_blob *v,
                  int64_t ttl_ms, char *err, size_t errlen)
{
    uint32_t h = hash_key(key, klen);
    struct entry **pp = slot(c, key, klen, h);
    if (*pp) remove_entry(c, *pp, pp);
    struct entry *e = mem_alloc(sizeof *e + klen);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    e->key = (char *)(e + 1);
    memcpy(e->key, key, klen);
    e->klen = klen;
    e->hash = h;
    e->val = v;
    cache_blob_retain(v);
    e->bytes = charge(klen, v);
    e->expires = ttl_ms > 0 ? c->now(c->now_ud) + ttl_ms : 0;
    e->prefix = prefix_of(c, key, klen, 1);
    pp = &c->buckets[h & (c->nbuckets - 1)];
    e->hnext = *pp;
    *pp = e;
    lru_push_front(c, e);
    c->nentries++;
    c->bytes += e->bytes;
    c->prefixes[e->prefix].entries++;
    c->prefixes[e->prefix].bytes += e->bytes;
    shrink(c);
    if (c->nentries > c->nbuckets) grow(c);
    return 0;
}

/* The live value of key (a new reference), counting a hit or a miss. */
static struct cache_blob *lookup(struct cache *c, const char *key, size_t klen, int count)
{
    uint32_t h = hash_key(key, klen);
    struct entry **pp = slot(c, key, klen, h);
    struct entry *e = *pp;
    if (e && expired(e, c->now(c->now_ud))) {
        c->expired++;
        remove_entry(c, e, pp);
        e = NULL;
    }
    if (!e) {
        if (count) {
            c->misses++;
            c->prefixes[prefix_of(c, key, klen, 1)].misses++;
        }
        return NULL;
    }
    if (count) {
        c->hits++;
        c->prefixes[e->prefix].hits++;
    }
    lru_unlink(e);
    lru_push_front(c, e);
    cache_blob_retain(e->val);
    return e->val;
}

/* ---- public operations ---- */

void cache_set_max_bytes(struct cache *c, size_t max_bytes)
{
    pthread_mutex_lock(&c->lock);
    c->max_bytes = max_bytes;
    shrink(c);
    pthread_mutex_unlock(&c->lock);
}

void cache_configure(struct cache *c, size_t max_bytes, long version)
{
    pthread_mutex_lock(&c->lock);
    if (version > c->config_version) {
        c->config_version = version;
        c->max_bytes = max_bytes;
        shrink(c);
    }
    pthread_mutex_unlock(&c->lock);
}

struct cache_blob *cache_get(struct cache *c, const char *key, size_t klen)
{
    pthread_mutex_lock(&c->lock);
    struct cache_blob *v = lookup(c, key, klen, 1);
    pthread_mutex_unlock(&c->lock);
    return v;
}

int cache_set(struct cache *c, const char *key, size_t klen, struct cache_blob *v, int64_t ttl_ms,
              char *err, size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    int rc = too_big(c, klen, v, err, errlen) ? -1 : insert(c, key, klen, v, ttl_ms, err, errlen);
    if (rc) { /* an old value must not outlive a failed replacement */
        struct entry **pp = slot(c, key, klen, hash_key(key, klen));
        if (*pp) remove_entry(c, *pp, pp);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* A delete also reaches loads running for the keys it drops: a loader that
 * read the old rows before a write committed must not store them after the
 * write's delete (cache-aside's classic race). */
static void stale_flights(struct cache *c, const char *key, size_t klen, int prefix)
{
    for (struct cache_flight *f = c->flights; f; f = f->next)
        if (prefix ? f->klen >= klen && !memcmp(f->key, key, klen) : f->klen == klen && !memcmp(f->key, key, klen))
            f->stale = 1;
}

int cache_delete(struct cache *c, const char *key, size_t klen)
{
    pthread_mutex_lock(&c->lock);
    struct entry **pp = slot(c, key, klen, hash_key(key, klen));
    int found = *pp != NULL;
    if (found) remove_entry(c, *pp, pp);
    stale_flights(c, key, klen, 0);
    pthread_mutex_unlock(&c->lock);
    return found;
}

size_t cache_delete_prefix(struct cache *c, const char *prefix, size_t plen)
{
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    for (struct entry *e = c->lru.next, *next; e != &c->lru; e = next) {
        next = e->next;
        if (e->klen >= plen && !memcmp(e->key, prefix, plen)) {
            remove_entry(c, e, NULL);
            n++;
        }
    }
    stale_flights(c, prefix, plen, 1);
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* ---- single flight ---- */

static struct cache_flight *find_flight(struct cache *c, const char *key, size_t klen, uint32_t h)
{
    for (struct cache_flight *f = c->flights; f; f = f->next)
        if (f->hash == h && f->klen == klen && !memcmp(f->key, key, klen)) return f;
    return NULL;
}

static void unlist_flight(struct cache *c, struct cache_flight *f)
{
    for (struct cache_flight **pp = &c->flights; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            f->next = NULL;
            return;
        }
}

static struct cache_flight *new_flight(struct cache *c, const char *key, size_t klen, uint32_t h,
                                       const void *owner)
{
    struct cache_flight *f = mem_calloc(1, sizeof *f);
    if (!f || !(f->key = mem_alloc(klen ? klen : 1))) {
        mem_free(f);
        return NULL;
    }
    memcpy(f->key, key, klen);
    f->klen = klen;
    f->hash = h;
    f->owner = owner;
    f->started = c->now(c->now_ud);
    f->refs = 1;
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &a);
    pthread_condattr_destroy(&a);
    f->next = c->flights;
    c->flights = f;
    c->loads++;
    return f;
}

/* Blocks on f until it ends or until the absolute monotonic deadline.
 * Returns 0 when it ended, -1 on timeout. Under c->lock.
 * HOOK(event-driven core): this is the only blocking wait of the cache;
 * a handler coroutine should yield here (and be resumed by the broadcast
 * in cache_load_end) instead of holding its worker thread. */
static int cache_flight_wait(struct cache *c, struct cache_flight *f,
                             const struct timespec *deadline)
{
    while (f->state == FLIGHT_RUNNING) {
        int rc = pthread_cond_timedwait(&f->cond, &c->lock, deadline);
        if (rc == ETIMEDOUT && f->state == FLIGHT_RUNNING) return -1;
    }
    return 0;
}

/* Under c->lock: f has ended (or was taken over); its waiters get the
 * outcome and are returned, unlinked, to be woken once the lock is gone. */
static struct cache_waiter *flight_waiters(struct cache_flight *f)
{
    struct cache_waiter *list = f->waiters;
    f->waiters = NULL;
    for (struct cache_waiter *w = list; w; w = w->next) {
        w->flight = NULL;
        w->ended = 1;
        w->state = f->state;
        w->val = NULL;
        if (f->state == FLIGHT_VALUE) {
            cache_blob_retain(f->val);
            w->val = f->val;
        }
    }
    return list;
}

static void wake_all(struct cache_waiter *w)
{
    while (w) {
        struct cache_waiter *next = w->next; /* w may be gone once woken */
        w->next = NULL;
        w->wake(w->ud);
        w = next;
    }
}

static _Thread_local char thread_token; /* cache_load_begin's owner: the thread */

enum cache_load cache_load_begin(struct cache *c, const char *key, size_t klen, int wait_ms,
                                 struct cache_blob **out, struct cache_flight **flight)
{
    return cache_load_begin_as(c, key, klen, wait_ms, &thread_token, NULL, out, flight);
}

int cache_wait_cancel(struct cache_waiter *w)
{
    struct cache *c = w->c;
    if (!c) return 0;
    pthread_mutex_lock(&c->lock);
    struct cache_flight *f = w->flight;
    if (f) {
        for (struct cache_waiter **pp = &f->waiters; *pp; pp = &(*pp)->next)
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        w->next = NULL;
        w->flight = NULL;
        w->ended = 1;
        w->state = FLIGHT_ABANDONED; /* look again (the caller is dead and will not) */
        w->val = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    return f != NULL;
}

void cache_waiter_clear(struct cache_waiter *w)
{
    if (w->ended && w->val) cache_blob_release(w->val);
    w->val = NULL;
    w->ended = 0;
}

enum cache_load cache_load_begin_as(struct cache *c, const char *key, size_t klen, int wait_ms,
                                    const void *owner, struct cache_waiter *w, struct cache_blob **out,
                                    struct cache_flight **flight)
{
    uint32_t h = hash_key(key, klen);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    *out = NULL;
    *flight = NULL;
    enum cache_load r;
    struct cache_waiter *wake = NULL;
    pthread_mutex_lock(&c->lock);
    if (w && w->ended) { /* woken: the outcome of the load it waited for */
        int st = w->state;
        w->ended = 0;
        if (st == FLIGHT_VALUE) {
            *out = w->val;
            w->val = NULL;
        }
        r = st == FLIGHT_VALUE ? CACHE_HIT : CACHE_NIL;
        if (st == FLIGHT_VALUE || st == FLIGHT_NIL) goto counted;
        /* failed or abandoned: look again; maybe this caller loads it */
    }
    for (;;) {
        if ((*out = lookup(c, key, klen, 0))) {
            r = CACHE_HIT;
            break;
        }
        struct cache_flight *f = find_flight(c, key, klen, h);
        if (f && f->owner == owner) {
            r = CACHE_RECURSIVE;
            break;
        }
        if (f && c->now(c->now_ud) - f->started >= wait_ms) { /* presumed abandoned: take it over */
            unlist_flight(c, f);
            f->state = FLIGHT_ABANDONED; /* its loader's cache_load_end only drops its reference */
            pthread_cond_broadcast(&f->cond);
            wake = flight_waiters(f);
            f = NULL;
        }
        if (!f) {
            *flight = new_flight(c, key, klen, h, owner);
            r = *flight ? CACHE_LOAD : CACHE_TIMEOUT;
            break;
        }
        if (w) {
            c->waits++;
            w->c = c;
            w->flight = f;
            w->ended = 0;
            w->val = NULL;
            w->next = f->waiters;
            f->waiters = w;
            pthread_mutex_unlock(&c->lock);
            wake_all(wake);
            return CACHE_WAIT; /* counted as a hit or miss when it looks again */
        }
        f->refs++;
        c->waits++;
        int rc = cache_flight_wait(c, f, &deadline);
        enum flight_state st = f->state;
        if (st == FLIGHT_VALUE) {
            cache_blob_retain(f->val);
            *out = f->val;
        }
        flight_unref(f);
        if (st == FLIGHT_VALUE) {
            r = CACHE_HIT; /* served by another caller's load */
            break;
        }
        if (rc) {
            r = CACHE_TIMEOUT;
            break;
        }
        if (st == FLIGHT_NIL) {
            r = CACHE_NIL;
            break;
        }
        /* failed or abandoned: look again; maybe this caller loads it */
    }
counted:;
    /* one hit or one miss per call, however often it waited */
    struct prefix *p = &c->prefixes[prefix_of(c, key, klen, 1)];
    if (r == CACHE_HIT) {
        c->hits++;
        p->hits++;
    } else {
        c->misses++;
        p->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    wake_all(wake);
    return r;
}

int cache_load_end(struct cache *c, struct cache_flight *f, struct cache_blob *v, int64_t ttl_ms,
                   int failed, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    if (f->state == FLIGHT_ABANDONED) { /* taken over by another caller: this result is dropped */
        flight_unref(f);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    unlist_flight(c, f);
    if (failed) {
        f->state = FLIGHT_FAILED;
    } else if (!v) {
        f->state = FLIGHT_NIL;
    } else {
        f->state = FLIGHT_VALUE;
        cache_blob_retain(v);
        f->val = v;
        if (!f->stale)
            rc = too_big(c, f->klen, v, err, errlen) ? -1 : insert(c, f->key, f->klen, v, ttl_ms, err, errlen);
    }
    pthread_cond_broadcast(&f->cond);
    struct cache_waiter *wake = flight_waiters(f);
    flight_unref(f);
    pthread_mutex_unlock(&c->lock);
    wake_all(wake);
    return rc;
}

/* ---- stats ---- */

void cache_stats(struct cache *c, struct cache_stats *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&c->lock);
    int64_t now = c->now(c->now_ud);
    for (struct entry *e = c->lru.next, *next; e != &c->lru; e = next) {
        next = e->next;
        if (expired(e, now)) {
            c->expired++;
            remove_entry(c, e, NULL);
        }
    }
    s->hits = c->hits;
    s->misses = c->misses;
    s->entries = c->nentries;
    s->bytes = c->bytes;
    s->max_bytes = c->max_bytes;
    s->evictions = c->evictions;
    s->expired = c->expired;
    s->loads = c->loads;
    s->waits = c->waits;
    s->nprefixes = 0;
    for (int i = 0; i < c->nprefixes; i++) {
        const struct prefix *p = &c->prefixes[i];
        if (i == 0 && !p->hits && !p->misses && !p->entries) continue; /* "_other" unused */
        struct cache_prefix_stats *o = &s->prefixes[s->nprefixes++];
        memcpy(o->prefix, p->name, p->len + 1);
        o->hits = p->hits;
        o->misses = p->misses;
        o->entries = p->entries;
        o->bytes = p->bytes;
    }
    pthread_mutex_unlock(&c->lock);
}

void cache_metrics(void *ud)
{
    struct cache_stats *s = mem_alloc(sizeof *s);
    if (!s) return;
    cache_stats(ud, s);
    metrics_set("tf_cache_max_bytes", NULL, (double)s->max_bytes, "cache.max_memory in bytes");
    metrics_set_total("tf_cache_evictions_total", NULL, (double)s->evictions,
                      "Entries evicted to stay within cache.max_memory");
    metrics_set_total("tf_cache_expired_total", NULL, (double)s->expired,
                      "Entries dropped when their TTL ran out");
    metrics_set_total("tf_cache_loads_total", NULL, (double)s->loads,
                      "get_or_load loader runs started");
    metrics_set_total("tf_cache_load_waits_total", NULL, (double)s->waits,
                      "get_or_load callers that waited for another caller's load");
    /* by prefix only: the totals are their sums (sum without (prefix)) */
    for (int i = 0; i < s->nprefixes; i++) {
        const struct cache_prefix_stats *p = &s->prefixes[i];
        char esc[CACHE_PREFIX_LEN * 2 + 1], lab[CACHE_PREFIX_LEN * 2 + 16];
        metrics_escape_label(esc, sizeof esc, p->prefix);
        snprintf(lab, sizeof lab, "prefix=\"%s\"", esc);
        metrics_set_total("tf_cache_hits_total", lab, (double)p->hits,
                          "Cache lookups that found a value, by key prefix");
        metrics_set_total("tf_cache_misses_total", lab, (double)p->misses,
                          "Cache lookups that found nothing, by key prefix");
        metrics_set("tf_cache_entries", lab, (double)p->entries,
                    "Entries in the shared cache, by key prefix");
        metrics_set("tf_cache_bytes", lab, (double)p->bytes,
                    "Bytes the shared cache holds (keys, values, overhead), by key prefix");
    }
    mem_free(s);
}
