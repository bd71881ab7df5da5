/* cache.c: LRU order, the byte bound, TTLs on a fake clock, eviction and
 * prefix statistics, single-flight loads across threads, and a threaded
 * stress run that checks the accounting invariants afterwards. */
#include "unit.h"

#include "cache.h"
#include "mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int64_t fake_now;
static int64_t fake_clock(void *ud)
{
    (void)ud;
    return fake_now;
}

/* Sets key to the string v. */
static int put(struct cache *c, const char *key, const char *v, int64_t ttl)
{
    char err[128];
    struct cache_blob *b = cache_blob_new(v, strlen(v));
    int rc = cache_set(c, key, strlen(key), b, ttl, err, sizeof err);
    cache_blob_release(b);
    return rc;
}

/* 1 when key holds v. */
static int has(struct cache *c, const char *key, const char *v)
{
    struct cache_blob *b = cache_get(c, key, strlen(key));
    int ok = b && b->len == strlen(v) && !memcmp(b->data, v, b->len);
    cache_blob_release(b);
    return ok;
}

static size_t entry_size(const char *key, const char *v)
{
    return CACHE_ENTRY_OVERHEAD + strlen(key) + strlen(v);
}

TEST(a_value_set_is_found_and_a_missing_one_counts_a_miss)
{
    struct cache *c = cache_new(1 << 20);
    CHECK_INT(put(c, "k:1", "one", 0), 0);
    CHECK(has(c, "k:1", "one"));
    CHECK(!has(c, "k:2", "one"));
    CHECK_INT(put(c, "k:1", "uno", 0), 0); /* replaced, not added */
    CHECK(has(c, "k:1", "uno"));
    struct cache_stats s;
    cache_stats(c, &s);
    CHECK_INT(s.hits, 2);
    CHECK_INT(s.misses, 1);
    CHECK_INT(s.entries, 1);
    CHECK_INT(s.bytes, entry_size("k:1", "uno"));
    CHECK_INT(s.evictions, 0);
    cache_free(c);
}

TEST(the_least_recently_used_entry_is_evicted_first)
{
    size_t one = entry_size("a", "xxxx");
    struct cache *c = cache_new(3 * one);
    put(c, "a", "xxxx", 0);
    put(c, "b", "xxxx", 0);
    put(c, "c", "xxxx", 0);
    CHECK(has(c, "a", "xxxx")); /* a is now the most recent; b the least */
    put(c, "d", "xxxx", 0);
    CHECK(!has(c, "b", "xxxx"));
    CHECK(has(c, "a", "xxxx"));
    CHECK(has(c, "c", "xxxx"));
    CHECK(has(c, "d", "xxxx"));
    put(c, "e", "xxxx", 0); /* now a is the least recent */
    CHECK(!has(c, "a", "xxxx"));
    struct cache_stats s;
    cache_stats(c, &s);
    CHECK_INT(s.evictions, 2);
    CHECK_INT(s.entries, 3);
    CHECK_INT(s.bytes, 3 * one);
    cache_free(c);
}

TEST(the_byte_bound_holds_and_a_value_too_large_is_refused)
{
    struct cache *c = cache_new(4096);
    char key[32], err[128];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "k:%d", i);
        put(c, key, "some value of a few bytes", 0);
        struct cache_stats s;
        cache_stats(c, &s);
        CHECK(s.bytes <= 4096);
    }
    char *big = malloc(5000);
    memset(big, 'x', 4999);
    big[4999] = 0;
    struct cache_blob *b = cache_blob_new(big, strlen(big));
    CHECK_INT(put(c, "k:1", "small", 0), 0);
    CHECK_INT(cache_set(c, "k:1", 3, b, 0, err, sizeof err), -1);
    CHECK(strstr(err, "does not fit in cache.max_memory") != NULL);
    CHECK(!has(c, "k:1", "small")); /* the old value does not outlive a failed replace */
    cache_blob_release(b);
    free(big);
    cache_set_max_bytes(c, 1024); /* shrinking evicts to the new bound */
    struct cache_stats s;
    cache_stats(c, &s);
    CHECK(s.bytes <= 1024);
    CHECK(s.entries > 0);
    cache_free(c);
}

TEST(an_entry_expires_after_its_ttl_and_counts_as_expired)
{
    struct cache *c = cache_new(1 << 20);
    cache_set_clock(c, fake_clock, NULL);
    fake_now = 1000;
    put(c, "t:1", "v", 100);
    put(c, "t:2", "v", 0);
    put(c, "t:3", "v", 50);
    fake_now = 1099;
    CHECK(has(c, "t:1", "v"));
    fake_now = 1100;
    CHECK(!has(c, "t:1", "v"));
    CHECK(has(c, "t:2", "v")); /* no TTL: stays */
    struct cache_stats s;
    cache_stats(c, &s); /* t:3 expired unseen: stats drops it */
    CHECK_INT(s.expired, 2);
    CHECK_INT(s.entries, 1);
    CHECK_INT(s.bytes, entry_size("t:2", "v"));
    cache_free(c);
}

TEST(delete_and_delete_prefix_remove_only_their_keys)
{
    struct cache *c = cache_new(1 << 20);
    put(c, "candles:EURUSD:M1:last", "1", 0);
    put(c, "candles:EURUSD:M1:range", "2", 0);
    put(c, "candles:EURUSD:M15:last", "3", 0);
    put(c, "candles:GBPUSD:M1:last", "4", 0);
    CHECK_INT(cache_delete_prefix(c, "candles:EURUSD:M1:", 18), 2);
    CHECK(has(c, "candles:EURUSD:M15:last", "3"));
    CHECK(has(c, "candles:GBPUSD:M1:last", "4"));
    CHECK_INT(cache_delete(c, "candles:GBPUSD:M1:last", 22), 1);
    CHECK_INT(cache_delete(c, "candles:GBPUSD:M1:last", 22), 0);
    struct cache_stats s;
    cache_stats(c, &s);
    CHECK_INT(s.entries, 1);
    CHECK_INT(s.evictions, 0); /* deletes are not evictions */
    cache_free(c);
}

TEST(statistics_are_kept_per_key_prefix)
{
    struct cache *c = cache_new(1 << 20);
    put(c, "candles:A", "12", 0);
    put(c, "ind:A", "1", 0);
    put(c, "plain", "1", 0);
    has(c, "candles:A", "12");
    has(c, "candles:B", "12");
    has(c, "ind:A", "1");
    struct cache_stats s;
    cache_stats(c, &s);
    int seen = 0;
    for (int i = 0; i < s.nprefixes; i++) {
        const struct cache_prefix_stats *p = &s.prefixes[i];
        if (!strcmp(p->prefix, "candles")) {
            seen++;
            CHECK_INT(p->hits, 1);
            CHECK_INT(p->misses, 1);
            CHECK_INT(p->entries, 1);
            CHECK_INT(p->bytes, entry_size("candles:A", "12"));
        } else if (!strcmp(p->prefix, "ind")) {
            seen++;
            CHECK_INT(p->hits, 1);
        } else if (!strcmp(p->prefix, "plain")) { /* no ':' : the whole key */
            seen++;
            CHECK_INT(p->entries, 1);
        }
    }
    CHECK_INT(seen, 3);
    /* past CACHE_PREFIX_MAX prefixes, the rest share "_other" */
    char key[32];
    for (int i = 0; i < CACHE_PREFIX_MAX + 10; i++) {
        snprintf(key, sizeof key, "p%d:x", i);
        put(c, key, "v", 0);
    }
    cache_stats(c, &s);
    CHECK_INT(s.nprefixes, CACHE_PREFIX_MAX + 1);
    uint64_t sum = 0;
    for (int i = 0; i < s.nprefixes; i++)
        sum += s.prefixes[i].entries;
    CHECK_INT(sum, s.entries);
    cache_free(c);
}

TEST(a_blob_stays_valid_after_its_entry_is_evicted)
{
    struct cache *c = cache_new(256);
    put(c, "a", "first", 0);
    struct cache_blob *b = cache_get(c, "a", 1);
    CHECK(b != NULL);
    put(c, "b", "second value that pushes a out......................................", 0);
    CHECK(!has(c, "a", "first"));
    CHECK(b && b->len == 5 && !memcmp(b->data, "first", 5));
    cache_blob_release(b);
    cache_free(c);
}

/* ---- single flight ---- */

struct flight_arg {
    struct cache *c;
    int loads;      /* guarded by m */
    int results[4]; /* by enum cache_load */
    int fail_first; /* the first loader fails */
    int return_nil; /* loaders return nothing */
    int waiters;    /* a load ends once this many callers wait for it */
    pthread_mutex_t m;
};

static void *flight_thread(void *p)
{
    struct flight_arg *a = p;
    struct cache_blob *v;
    struct cache_flight *f;
    char err[128];
    enum cache_load r = cache_load_begin(a->c, "k:1", 3, 5000, &v, &f);
    if (r == CACHE_LOAD) {
        pthread_mutex_lock(&a->m);
        int n = ++a->loads;
        pthread_mutex_unlock(&a->m);
        for (int i = 0; i < 5000; i++) { /* every other caller waits (at most 5 s) */
            struct cache_stats s;
            cache_stats(a->c, &s);
            if ((int)s.waits >= a->waiters) break;
            usleep(1000);
        }
        if (a->fail_first && n == 1) {
            cache_load_end(a->c, f, NULL, 0, 1, err, sizeof err);
        } else if (a->return_nil) {
            cache_load_end(a->c, f, NULL, 0, 0, err, sizeof err);
        } else {
            struct cache_blob *b = cache_blob_new("loaded", 6);
            cache_load_end(a->c, f, b, 0, 0, err, sizeof err);
            cache_blob_release(b);
        }
    } else if (r == CACHE_HIT) {
        if (v->len != 6 || memcmp(v->data, "loaded", 6)) r = CACHE_RECURSIVE; /* counted as wrong */
        cache_blob_release(v);
    }
    pthread_mutex_lock(&a->m);
    a->results[r < 4 ? r : 3]++;
    pthread_mutex_unlock(&a->m);
    return NULL;
}

static void run_flight(struct flight_arg *a, int nthreads)
{
    pthread_t t[32];
    a->c = cache_new(1 << 20);
    pthread_mutex_init(&a->m, NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, flight_thread, a);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    pthread_mutex_destroy(&a->m);
}

TEST(concurrent_misses_of_one_key_run_one_load_and_all_get_its_value)
{
    struct flight_arg a = {.waiters = 15};
    run_flight(&a, 16);
    CHECK_INT(a.loads, 1);
    CHECK_INT(a.results[CACHE_LOAD], 1);
    CHECK_INT(a.results[CACHE_HIT], 15);
    struct cache_stats s;
    cache_stats(a.c, &s);
    CHECK_INT(s.loads, 1);
    CHECK_INT(s.entries, 1);
    CHECK_INT(s.hits + s.misses, 16);
    CHECK_INT(s.misses, 1); /* waiters served by the load count as hits */
    cache_free(a.c);
}

TEST(when_the_loader_fails_a_waiter_loads_instead)
{
    struct flight_arg a = {.waiters = 7, .fail_first = 1};
    run_flight(&a, 8);
    CHECK_INT(a.loads, 2);
    CHECK_INT(a.results[CACHE_LOAD], 2);
    CHECK_INT(a.results[CACHE_HIT], 6);
    cache_free(a.c);
}

TEST(when_the_loader_finds_nothing_the_waiters_get_nothing_and_nothing_is_cached)
{
    struct flight_arg a = {.waiters = 7, .return_nil = 1};
    run_flight(&a, 8);
    CHECK_INT(a.loads, 1);
    CHECK_INT(a.results[CACHE_NIL], 7);
    struct cache_stats s;
    cache_stats(a.c, &s);
    CHECK_INT(s.entries, 0);
    cache_free(a.c);
}

static void *begin_other_thread(void *p)
{
    struct cache *c = p;
    struct cache_blob *v;
    struct cache_flight *f;
    enum cache_load r = cache_load_begin(c, "slow", 4, 100, &v, &f);
    return (void *)(intptr_t)r;
}

static void *take_over_thread(void *p)
{
    struct cache *c = p;
    struct cache_blob *v;
    struct cache_flight *f;
    char err[128];
    enum cache_load r = cache_load_begin(c, "slow", 4, 50, &v, &f);
    if (r == CACHE_LOAD) {
        struct cache_blob *b = cache_blob_new("new", 3);
        if (cache_load_end(c, f, b, 0, 0, err, sizeof err)) r = CACHE_TIMEOUT;
        cache_blob_release(b);
    }
    return (void *)(intptr_t)r;
}

TEST(a_waiter_gives_up_after_the_bound_and_a_stale_load_is_taken_over)
{
    struct cache *c = cache_new(1 << 20);
    struct cache_blob *v;
    struct cache_flight *mine, *theirs;
    char err[128];
    cache_set_clock(c, fake_clock, NULL); /* a flight's age is on the cache's clock */
    fake_now = 0;
    CHECK_INT(cache_load_begin(c, "slow", 4, 100, &v, &mine), CACHE_LOAD);
    CHECK_INT(cache_load_begin(c, "slow", 4, 100, &v, &theirs), CACHE_RECURSIVE);
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, begin_other_thread, c); /* waits 100 ms for mine, gives up */
    pthread_join(t, &r);
    CHECK_INT((intptr_t)r, CACHE_TIMEOUT);
    fake_now = 100; /* mine is now as old as the bound: the next caller takes it over */
    pthread_create(&t, NULL, take_over_thread, c);
    pthread_join(t, &r);
    CHECK_INT((intptr_t)r, CACHE_LOAD);
    struct cache_blob *old = cache_blob_new("old", 3);
    CHECK_INT(cache_load_end(c, mine, old, 0, 0, err, sizeof err),
              0); /* dropped: it was taken over */
    CHECK(has(c, "slow", "new"));
    cache_blob_release(old);
    cache_free(c);
}

/* ---- threads ---- */

static void *stress_thread(void *p)
{
    struct cache *c = p;
    char key[32], val[200];
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 20000; i++) {
        int k = rand_r(&seed) % 300, op = rand_r(&seed) % 10;
        snprintf(key, sizeof key, "s%d:%d", k % 7, k);
        if (op < 5) {
            struct cache_blob *b = cache_get(c, key, strlen(key));
            if (b && (b->len < 1 || b->data[0] != 'v')) abort(); /* a corrupt value */
            cache_blob_release(b);
        } else if (op < 9) {
            char err[128];
            struct cache_blob *b = cache_blob_new(val, 1 + (size_t)(rand_r(&seed) % 199));
            cache_set(c, key, strlen(key), b, rand_r(&seed) % 2 ? 0 : 5, err, sizeof err);
            cache_blob_release(b);
        } else if (k % 2) {
            cache_delete(c, key, strlen(key));
        } else {
            snprintf(key, sizeof key, "s%d:", k % 7);
            cache_delete_prefix(c, key, strlen(key));
        }
    }
    return NULL;
}

TEST(a_delete_during_a_load_keeps_the_loaded_value_out_of_the_cache)
{
    struct cache *c = cache_new(1 << 20);
    struct cache_blob *v = NULL;
    struct cache_flight *f, *g;
    char err[128];
    /* the loader reads the old row; a write commits and deletes the key */
    CHECK_INT(cache_load_begin(c, "p:1", 3, 100, &v, &f), CACHE_LOAD);
    CHECK_INT(cache_load_begin(c, "q:1", 3, 100, &v, &g), CACHE_LOAD);
    cache_delete(c, "p:1", 3);
    cache_delete_prefix(c, "q:", 2);
    struct cache_blob *old = cache_blob_new("old", 3);
    CHECK_INT(cache_load_end(c, f, old, 0, 0, err, sizeof err), 0);
    CHECK_INT(cache_load_end(c, g, old, 0, 0, err, sizeof err), 0);
    cache_blob_release(old);
    CHECK(cache_get(c, "p:1", 3) == NULL);
    CHECK(cache_get(c, "q:1", 3) == NULL);
    /* a load that no delete crossed is stored as before */
    CHECK_INT(cache_load_begin(c, "p:1", 3, 100, &v, &f), CACHE_LOAD);
    struct cache_blob *fresh = cache_blob_new("new", 3);
    CHECK_INT(cache_load_end(c, f, fresh, 0, 0, err, sizeof err), 0);
    cache_blob_release(fresh);
    struct cache_blob *got = cache_get(c, "p:1", 3);
    CHECK(got != NULL);
    if (got) cache_blob_release(got);
    cache_free(c);
}

TEST(threads_hammering_one_cache_keep_its_accounting_exact)
{
    struct cache *c = cache_new(16384);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, stress_thread, c);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    struct cache_stats s;
    cache_stats(c, &s);
    CHECK(s.bytes <= 16384);
    CHECK(s.evictions > 0);
    uint64_t entries = 0, bytes = 0;
    for (int i = 0; i < s.nprefixes; i++) {
        entries += s.prefixes[i].entries;
        bytes += s.prefixes[i].bytes;
    }
    CHECK_INT(entries, s.entries);
    CHECK_INT(bytes, s.bytes);
    size_t before = mem_in_use();
    cache_free(c);
    CHECK(mem_in_use() < before);
}

/* Coroutine-style waiters (cache_load_begin_as): no thread blocks. */
static int woken_count;
static void count_wake(void *ud)
{
    (void)ud;
    woken_count++;
}

TEST(waiters_of_one_thread_wait_without_blocking_and_get_the_loaded_value)
{
    struct cache *c = cache_new(1 << 20);
    struct cache_blob *v = NULL;
    struct cache_flight *f, *g;
    char err[128];
    int owner_a, owner_b, owner_c;
    struct cache_waiter wb = {.wake = count_wake}, wc = {.wake = count_wake};
    woken_count = 0;
    CHECK_INT(cache_load_begin_as(c, "k", 1, 5000, &owner_a, NULL, &v, &f), CACHE_LOAD);
    /* the same owner asking again would deadlock: refused */
    CHECK_INT(cache_load_begin_as(c, "k", 1, 5000, &owner_a, &wb, &v, &g), CACHE_RECURSIVE);
    /* two other owners on this very thread register and return at once */
    CHECK_INT(cache_load_begin_as(c, "k", 1, 5000, &owner_b, &wb, &v, &g), CACHE_WAIT);
    CHECK_INT(cache_load_begin_as(c, "k", 1, 5000, &owner_c, &wc, &v, &g), CACHE_WAIT);
    CHECK_INT(woken_count, 0);
    /* one of them leaves (its client hung up): unregistered, not woken by the load */
    CHECK_INT(cache_wait_cancel(&wc), 1);
    CHECK_INT(cache_wait_cancel(&wc), 0);
    struct cache_blob *b = cache_blob_new("value", 5);
    cache_delete(c, "k", 1); /* stale: the value goes to the waiter but not into the cache */
    CHECK_INT(cache_load_end(c, f, b, 0, 0, err, sizeof err), 0);
    cache_blob_release(b);
    CHECK_INT(woken_count, 1);
    CHECK(!has(c, "k", "value"));
    /* looking again answers from the waiter: the value handed over */
    CHECK_INT(cache_load_begin_as(c, "k", 1, 5000, &owner_b, &wb, &v, &g), CACHE_HIT);
    CHECK(v && v->len == 5 && !memcmp(v->data, "value", 5));
    cache_blob_release(v);
    /* the cancelled one looks again and loads it itself */
    CHECK_INT(cache_load_begin_as(c, "k", 1, 5000, &owner_c, &wc, &v, &g), CACHE_LOAD);
    CHECK_INT(cache_load_end(c, g, NULL, 0, 1, err, sizeof err), 0);
    cache_free(c);
}

TEST(a_failed_load_wakes_its_waiters_to_look_again)
{
    struct cache *c = cache_new(1 << 20);
    struct cache_blob *v = NULL;
    struct cache_flight *f, *g;
    char err[128];
    int owner_a, owner_b;
    struct cache_waiter wb = {.wake = count_wake};
    woken_count = 0;
    CHECK_INT(cache_load_begin_as(c, "k", 1, 5000, &owner_a, NULL, &v, &f), CACHE_LOAD);
    CHECK_INT(cache_load_begin_as(c, "k", 1, 5000, &owner_b, &wb, &v, &g), CACHE_WAIT);
    CHECK_INT(cache_load_end(c, f, NULL, 0, 1, err, sizeof err), 0);
    CHECK_INT(woken_count, 1);
    CHECK_INT(cache_load_begin_as(c, "k", 1, 5000, &owner_b, &wb, &v, &g), CACHE_LOAD);
    struct cache_blob *b = cache_blob_new("x", 1);
    CHECK_INT(cache_load_end(c, g, b, 0, 0, err, sizeof err), 0);
    cache_blob_release(b);
    CHECK(has(c, "k", "x"));
    struct cache_stats s;
    cache_stats(c, &s);
    CHECK_INT(s.waits, 1);
    cache_free(c);
}

int main(void)
{
    RUN(a_value_set_is_found_and_a_missing_one_counts_a_miss);
    RUN(the_least_recently_used_entry_is_evicted_first);
    RUN(the_byte_bound_holds_and_a_value_too_large_is_refused);
    RUN(an_entry_expires_after_its_ttl_and_counts_as_expired);
    RUN(delete_and_delete_prefix_remove_only_their_keys);
    RUN(statistics_are_kept_per_key_prefix);
    RUN(a_blob_stays_valid_after_its_entry_is_evicted);
    RUN(concurrent_misses_of_one_key_run_one_load_and_all_get_its_value);
    RUN(when_the_loader_fails_a_waiter_loads_instead);
    RUN(when_the_loader_finds_nothing_the_waiters_get_nothing_and_nothing_is_cached);
    RUN(a_waiter_gives_up_after_the_bound_and_a_stale_load_is_taken_over);
    RUN(a_delete_during_a_load_keeps_the_loaded_value_out_of_the_cache);
    RUN(threads_hammering_one_cache_keep_its_accounting_exact);
    RUN(waiters_of_one_thread_wait_without_blocking_and_get_the_loaded_value);
    RUN(a_failed_load_wakes_its_waiters_to_look_again);
    return unit_done();
}
