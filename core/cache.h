/* The shared in-process cache: byte-bounded, LRU, TTL, per-key single-flight
 * loads and per-prefix statistics. Engine-neutral (no Lua): values are opaque
 * byte strings that callers serialize (lua_cache.c). Thread-safe; readers get
 * a reference-counted blob, so a value evicted while being read stays valid
 * until released. It never blocks except in cache_load_begin, bounded. */
#ifndef CACHE_H
#define CACHE_H

#include <stddef.h>
#include <stdint.h>

#define CACHE_KEY_MAX 1024      /* bytes in a key */
#define CACHE_PREFIX_MAX 64     /* distinct prefixes with their own stats; more count as "_other" */
#define CACHE_PREFIX_LEN 64     /* bytes of a prefix kept for stats (longer ones are "_other") */
#define CACHE_ENTRY_OVERHEAD 96 /* bytes charged per entry besides its key and value */

struct cache;

/* An immutable value. Shared: never write to data; release every blob you get. */
struct cache_blob {
    _Atomic long refs;
    size_t len;
    unsigned char data[];
};

/* A load in progress for one key (cache_load_begin .. cache_load_end). Opaque. */
struct cache_flight;

/* A cache holding at most max_bytes (keys + values + CACHE_ENTRY_OVERHEAD each).
 * NULL when out of memory. Caller frees with cache_free (no reader may hold a
 * flight then; blobs already handed out stay valid until released). */
struct cache *cache_new(size_t max_bytes);
void cache_free(struct cache *c);

/* Changes the bound, evicting least recently used entries to meet it. */
void cache_set_max_bytes(struct cache *c, size_t max_bytes);
/* The same, from the config of a generation: applied only when version is
 * newer than the last one applied, so a VM of an older generation that
 * touches the cache late cannot undo a reload. */
void cache_configure(struct cache *c, size_t max_bytes, long version);

/* Tests: replaces the monotonic millisecond clock used for TTLs. */
void cache_set_clock(struct cache *c, int64_t (*now_ms)(void *ud), void *ud);

/* A new blob holding a copy of data[0..len) with one reference (the caller's),
 * or NULL when out of memory. */
struct cache_blob *cache_blob_new(const void *data, size_t len);
void cache_blob_retain(struct cache_blob *b);
void cache_blob_release(struct cache_blob *b); /* NULL is fine */

/* The value of key with a reference the caller releases, or NULL on a miss
 * (absent or expired). Counts a hit or a miss; a hit makes it most recent. */
struct cache_blob *cache_get(struct cache *c, const char *key, size_t klen);

/* Stores v under key (taking its own reference; the caller keeps its own)
 * for ttl_ms (0: no expiry), evicting LRU entries to make room. Returns 0,
 * or -1 with err when key + value can never fit (larger than the bound). */
int cache_set(struct cache *c, const char *key, size_t klen, struct cache_blob *v, int64_t ttl_ms,
              char *err, size_t errlen);

int cache_delete(struct cache *c, const char *key, size_t klen); /* 1 when it was there */
size_t cache_delete_prefix(struct cache *c, const char *prefix, size_t plen); /* entries removed */

/* Single flight. cache_load_begin looks key up and:
 *  CACHE_HIT      *out holds the value (a reference; release it). Callers
 *                 that waited for another caller's load end here too.
 *  CACHE_LOAD     nobody is loading it: the caller must load it and then call
 *                 cache_load_end(*flight, ...) exactly once, whatever happens.
 *  CACHE_NIL      another caller loaded it and got nothing (nothing cached).
 *  CACHE_TIMEOUT  another caller has been loading it for wait_ms; gave up.
 *  CACHE_RECURSIVE this thread is loading key already (a loader asked for its
 *                 own key: waiting would deadlock).
 * A load older than wait_ms is presumed abandoned and the next caller takes
 * it over. Waiting blocks the thread on a condition variable for at most
 * wait_ms. HOOK(event-driven core): a handler coroutine should yield here
 * instead and be resumed when the flight ends; cache_flight_wait is the one
 * place to change. */
enum cache_load { CACHE_HIT, CACHE_LOAD, CACHE_NIL, CACHE_TIMEOUT, CACHE_RECURSIVE, CACHE_WAIT };
enum cache_load cache_load_begin(struct cache *c, const char *key, size_t klen, int wait_ms,
                                 struct cache_blob **out, struct cache_flight **flight);

/* A caller that must not block (a handler coroutine) waits as a waiter:
 * where cache_load_begin would block, cache_load_begin_as registers w on
 * the running load and returns CACHE_WAIT; w->wake(w->ud) is then called
 * exactly once, from another thread with nothing locked, when the load
 * ends (or is taken over, or w is cancelled); the caller resumes and calls
 * cache_load_begin_as again, which answers from w (the value handed over,
 * CACHE_NIL) or looks again. w must stay put until woken. owner identifies
 * the caller for CACHE_RECURSIVE (cache_load_begin uses its thread): a
 * coroutine passes itself, so two coroutines of one thread can wait on each
 * other's loads. A waiter is not woken by wait_ms: a load ends when its
 * loader's own time limit ends it, or the next caller after wait_ms takes
 * it over, which wakes the waiters too. */
struct cache_waiter {
    void (*wake)(void *ud);
    void *ud;
    /* private to cache.c */
    struct cache *c;
    struct cache_waiter *next;
    struct cache_flight *flight; /* while registered */
    int ended;                   /* woken: state and val hold the outcome */
    int state;
    struct cache_blob *val;
};
enum cache_load cache_load_begin_as(struct cache *c, const char *key, size_t klen, int wait_ms,
                                    const void *owner, struct cache_waiter *w, struct cache_blob **out,
                                    struct cache_flight **flight);
/* Unregisters w if it still waits (any thread): its caller no longer wants
 * the value. Returns 1 when it did: w->wake is then NOT called, the caller
 * resumes w's owner itself; 0 when w had been woken already. */
int cache_wait_cancel(struct cache_waiter *w);
/* Releases what a woken waiter holds when its caller never looked again. */
void cache_waiter_clear(struct cache_waiter *w);
/* Ends a load begun with CACHE_LOAD. v: the loaded value, stored for ttl_ms
 * and handed to the waiters; NULL with failed = 0: the loader returned
 * nothing (waiters get CACHE_NIL); failed = 1: the loader raised (waiters
 * retry, one of them loading). Returns as cache_set (-1 when v cannot fit;
 * the waiters still get it). */
int cache_load_end(struct cache *c, struct cache_flight *f, struct cache_blob *v, int64_t ttl_ms,
                   int failed, char *err, size_t errlen);

struct cache_prefix_stats {
    char prefix[CACHE_PREFIX_LEN + 1];
    uint64_t hits, misses, entries, bytes;
};

struct cache_stats {
    uint64_t hits, misses, entries, bytes, max_bytes, evictions, expired, loads, waits;
    int nprefixes;
    struct cache_prefix_stats prefixes[CACHE_PREFIX_MAX + 1]; /* + "_other" */
};

/* A consistent snapshot; expired entries are dropped first so entries and
 * bytes count only live ones. */
void cache_stats(struct cache *c, struct cache_stats *out);

/* Mirrors cache_stats into the process metrics (tf_cache_*); a
 * metrics_collector (metrics.h), ud is the cache. */
void cache_metrics(void *ud);

#endif
