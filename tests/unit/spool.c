/* Unit tests for core/spool.c on a real directory: records read back in
 * order across a reopen, a torn tail and a corrupt middle record are found
 * by their checksum, skipped and counted, segments rotate and are deleted
 * once replayed, the bound holds, concurrent appenders share fdatasyncs and
 * keep their order, and batches survive the trip through a record. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "mem.h"
#include "spool.h"
#include "unit.h"

static char dir[256];

static void fresh_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/tf-spool-unit.XXXXXX");
    if (!mkdtemp(dir)) perror("mkdtemp");
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) perror("rm");
}

static struct spool *open_spool(size_t max_bytes, size_t segment_bytes)
{
    struct spool_options o = {dir, max_bytes, segment_bytes};
    char err[256] = "";
    struct spool *s = spool_open(&o, err, sizeof err);
    if (!s) unit_fail(__FILE__, __LINE__, "spool_open: %s", err);
    return s;
}

static int append_str(struct spool *s, const char *v)
{
    char err[256];
    return spool_append(s, v, strlen(v), 0, err, sizeof err);
}

/* The next record as a NUL-terminated string in out ("" when none). */
static long next(struct spool *s, char *out, size_t n)
{
    void *p;
    char err[256];
    long len = spool_read(s, &p, NULL, err, sizeof err);
    out[0] = 0;
    if (len > 0) {
        snprintf(out, n, "%.*s", (int)len, (char *)p);
        mem_free(p);
    }
    return len;
}

static void take(struct spool *s, const char *want)
{
    char got[512], err[256];
    next(s, got, sizeof got);
    CHECK_STR(got, want);
    CHECK_INT(spool_commit(s, 1, err, sizeof err), 0);
}

static int count_segments(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".seg") != NULL;
    if (d) closedir(d);
    return n;
}

/* The path of the (only, or first) segment with records. */
static void first_segment(char *out, size_t n)
{
    DIR *d = opendir(dir);
    char best[256] = "";
    for (struct dirent *e; d && (e = readdir(d));) {
        struct stat st;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (strstr(e->d_name, ".seg") && stat(p, &st) == 0 && st.st_size > 0 && (!best[0] || strcmp(e->d_name, best) < 0))
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    if (d) closedir(d);
    snprintf(out, n, "%s/%s", dir, best);
}

TEST(records_read_back_in_order_and_survive_a_reopen)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 1 << 20);
    if (!s) return;
    CHECK_INT(spool_pending(s), 0);
    CHECK_INT(append_str(s, "one"), SPOOL_OK);
    CHECK_INT(append_str(s, "two"), SPOOL_OK);
    CHECK_INT(append_str(s, "three"), SPOOL_OK);
    CHECK_INT(spool_pending(s), 3);
    take(s, "one");
    CHECK_INT(spool_pending(s), 2);
    spool_close(s);

    s = open_spool(1 << 20, 1 << 20); /* a restart: what was consumed stays consumed */
    CHECK_INT(spool_pending(s), 2);
    take(s, "two");
    CHECK_INT(append_str(s, "four"), SPOOL_OK);
    take(s, "three");
    take(s, "four");
    char got[64];
    CHECK_INT(next(s, got, sizeof got), 0);
    CHECK_INT(spool_pending(s), 0);
    struct spool_stats st;
    spool_stats(s, &st);
    CHECK_INT(st.bytes, 0);
    CHECK_INT(st.corrupt, 0);
    spool_close(s);
    CHECK_INT(count_segments(), 1); /* drained: one empty segment */
    remove_dir();
}

TEST(records_read_ahead_are_read_again_unless_committed)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 40); /* a segment per record or two */
    const char *v[] = {"r1", "r2", "r3", "r4", "r5"};
    for (int i = 0; i < 5; i++) CHECK_INT(append_str(s, v[i]), SPOOL_OK);
    char got[64], err[256];
    for (int i = 0; i < 4; i++) {
        next(s, got, sizeof got);
        CHECK_STR(got, v[i]);
    }
    CHECK_INT(spool_commit(s, 2, err, sizeof err), 0); /* r1, r2 done; r3, r4 read again */
    CHECK_INT(spool_pending(s), 3);
    next(s, got, sizeof got);
    CHECK_STR(got, "r3");
    CHECK_INT(spool_commit(s, 0, err, sizeof err), 0); /* a rewind */
    take(s, "r3");
    spool_close(s);
    s = open_spool(1 << 20, 40); /* the committed position survives a restart */
    CHECK_INT(spool_pending(s), 2);
    take(s, "r4");
    take(s, "r5");
    CHECK_INT(next(s, got, sizeof got), 0);
    spool_close(s);
    CHECK_INT(count_segments(), 1);
    remove_dir();
}

TEST(a_second_process_cannot_open_the_same_spool)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 1 << 20);
    struct spool_options o = {dir, 1 << 20, 1 << 20};
    char err[256] = "";
    struct spool *t = spool_open(&o, err, sizeof err);
    CHECK(t == NULL);
    CHECK(strstr(err, "in use") != NULL);
    spool_close(s);
    remove_dir();
}

TEST(a_torn_tail_record_is_detected_skipped_and_counted)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 1 << 20);
    CHECK_INT(append_str(s, "whole"), SPOOL_OK);
    CHECK_INT(append_str(s, "torn-by-a-crash"), SPOOL_OK);
    spool_close(s);
    char seg[512];
    first_segment(seg, sizeof seg);
    struct stat st;
    CHECK_INT(stat(seg, &st), 0);
    CHECK_INT(truncate(seg, st.st_size - 4), 0); /* the crash cut the last record */

    s = open_spool(1 << 20, 1 << 20);
    CHECK_INT(spool_pending(s), 1);
    take(s, "whole");
    char got[64];
    CHECK_INT(next(s, got, sizeof got), 0);
    struct spool_stats ss;
    spool_stats(s, &ss);
    CHECK_INT(ss.corrupt, 1);
    CHECK_INT(append_str(s, "after"), SPOOL_OK); /* appends go on in a new segment */
    take(s, "after");
    spool_close(s);
    remove_dir();
}

TEST(a_corrupt_middle_record_is_skipped_and_the_rest_replayed)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 1 << 20);
    CHECK_INT(append_str(s, "first"), SPOOL_OK);
    CHECK_INT(append_str(s, "second-record"), SPOOL_OK);
    CHECK_INT(append_str(s, "third"), SPOOL_OK);
    spool_close(s);
    char seg[512];
    first_segment(seg, sizeof seg);
    int fd = open(seg, O_RDWR);
    off_t at = 20 + 5 + 20 + 3; /* inside the second record's payload */
    char c;
    CHECK_INT(pread(fd, &c, 1, at), 1);
    c ^= 0x40;
    CHECK_INT(pwrite(fd, &c, 1, at), 1);
    close(fd);

    s = open_spool(1 << 20, 1 << 20);
    CHECK_INT(spool_pending(s), 2);
    take(s, "first");
    take(s, "third");
    struct spool_stats ss;
    spool_stats(s, &ss);
    CHECK_INT(ss.corrupt, 1);
    CHECK_INT(ss.records, 0);
    spool_close(s);

    /* a header whose length lies: the rest is still found */
    fresh_dir();
    s = open_spool(1 << 20, 1 << 20);
    CHECK_INT(append_str(s, "a"), SPOOL_OK);
    CHECK_INT(append_str(s, "b"), SPOOL_OK);
    CHECK_INT(append_str(s, "c"), SPOOL_OK);
    spool_close(s);
    first_segment(seg, sizeof seg);
    fd = open(seg, O_RDWR);
    uint32_t huge = 1000000;
    CHECK_INT(pwrite(fd, &huge, 4, 21 + 4), 4);
    close(fd);
    s = open_spool(1 << 20, 1 << 20);
    take(s, "a");
    take(s, "c");
    spool_close(s);
    remove_dir();
}

TEST(segments_rotate_and_are_deleted_once_replayed)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 300);
    char v[64];
    for (int i = 0; i < 20; i++) {
        snprintf(v, sizeof v, "record-%02d-%040d", i, 0);
        CHECK_INT(append_str(s, v), SPOOL_OK);
    }
    CHECK(count_segments() >= 5);
    struct spool_stats st;
    spool_stats(s, &st);
    CHECK_INT(st.records, 20);
    CHECK_INT(st.bytes, 20 * (20 + 50));
    for (int i = 0; i < 10; i++) {
        snprintf(v, sizeof v, "record-%02d-%040d", i, 0);
        take(s, v);
    }
    int mid = count_segments();
    CHECK(mid < 5 + 1 && mid >= 3);
    spool_close(s);
    s = open_spool(1 << 20, 300);
    CHECK_INT(spool_pending(s), 10);
    for (int i = 10; i < 20; i++) {
        snprintf(v, sizeof v, "record-%02d-%040d", i, 0);
        take(s, v);
    }
    CHECK_INT(spool_pending(s), 0);
    spool_close(s);
    CHECK_INT(count_segments(), 1);
    remove_dir();
}

TEST(the_bound_refuses_appends_until_replay_makes_room)
{
    fresh_dir();
    struct spool *s = open_spool(200, 1 << 20);
    int n = 0;
    char err[256];
    while (n < 100 && append_str(s, "0123456789012345678901234567890123456789") == SPOOL_OK) n++;
    CHECK_INT(n, 3); /* 60 bytes each: a fourth would pass 200 */
    CHECK_INT(append_str(s, "0123456789012345678901234567890123456789"), SPOOL_FULL);
    CHECK_INT(spool_pending(s), 3);
    take(s, "0123456789012345678901234567890123456789");
    CHECK_INT(append_str(s, "0123456789012345678901234567890123456789"), SPOOL_OK);
    CHECK_INT(spool_append(s, "x", 1, 1, err, sizeof err), SPOOL_FULL);
    spool_close(s);
    remove_dir();
}

TEST(only_if_busy_appends_only_behind_pending_records)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 1 << 20);
    char err[256];
    CHECK_INT(spool_append(s, "x", 1, 1, err, sizeof err), SPOOL_IDLE);
    CHECK_INT(spool_pending(s), 0);
    CHECK_INT(append_str(s, "y"), SPOOL_OK);
    CHECK_INT(spool_append(s, "z", 1, 1, err, sizeof err), SPOOL_OK);
    take(s, "y");
    take(s, "z");
    CHECK_INT(spool_append(s, "w", 1, 1, err, sizeof err), SPOOL_IDLE);
    spool_close(s);
    remove_dir();
}

#define THREADS 8
#define EACH 50

static void *appender(void *arg)
{
    struct spool *s = arg;
    static int next_id;
    int id = __atomic_fetch_add(&next_id, 1, __ATOMIC_SEQ_CST);
    char v[32], err[256];
    for (int i = 0; i < EACH; i++) {
        snprintf(v, sizeof v, "%d:%d", id, i);
        if (spool_append(s, v, strlen(v), 0, err, sizeof err) != SPOOL_OK) return (void *)1;
    }
    return NULL;
}

TEST(concurrent_appenders_share_syncs_and_keep_their_order)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 4096);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, appender, s);
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += r != NULL;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(spool_pending(s), THREADS * EACH);
    int last[64];
    for (int i = 0; i < 64; i++) last[i] = -1;
    int total = 0, ordered = 1;
    char got[64], err[256];
    while (next(s, got, sizeof got) > 0) {
        int id, i;
        if (sscanf(got, "%d:%d", &id, &i) == 2 && id >= 0 && id < 64) {
            ordered &= i == last[id] + 1;
            last[id] = i;
        }
        total++;
        spool_commit(s, 1, err, sizeof err);
    }
    CHECK_INT(total, THREADS * EACH);
    CHECK(ordered);
    spool_close(s);
    remove_dir();
}

TEST(a_candle_batch_survives_the_trip_through_a_record)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 1 << 20);
    const char *body = "[{\"symbol\":\"EURUSD\",\"timeframe\":\"M5\",\"ts\":\"2025-10-20T03:07:00\",\"open\":1.1,"
                       "\"high\":1.2,\"low\":1.0,\"close\":1.15,\"volume\":10,\"spread\":2},"
                       "{\"symbol\":\"EURUSD\",\"timeframe\":\"M1\",\"ts\":\"bad\",\"open\":1,\"high\":1,\"low\":1,\"close\":1},"
                       "{\"symbol\":\"EURUSD\",\"timeframe\":\"M5\",\"ts\":\"2025-10-20T03:08:00\",\"open\":1.1,"
                       "\"high\":1.3,\"low\":1.0,\"close\":1.25,\"volume\":12}]";
    struct ingest_opts o = {.offset_us = 3600LL * 1000000};
    struct candles_batch *b;
    int st;
    char err[256];
    CHECK_INT(candles_decode(body, strlen(body), &o, &b, &st, err, sizeof err), 0);
    CHECK_INT(b->nvalid, 2);
    CHECK_INT(b->items[2].leader, 0);
    CHECK_INT(spool_append_candles(s, b, CANDLES_REPLACE, "ea-test", 0, err, sizeof err), SPOOL_OK);
    CHECK_INT(b->items[0].status, INGEST_QUEUED);
    CHECK_INT(b->items[1].status, INGEST_REJECTED);
    CHECK_INT(b->items[2].status, INGEST_QUEUED);
    struct ingest_counts n;
    candles_count(b, &n);
    CHECK_INT(n.queued, 2);

    void *p;
    long len = spool_read(s, &p, NULL, err, sizeof err);
    CHECK(len > 0);
    struct spool_batch sb;
    CHECK_INT(spool_decode(p, (size_t)len, &sb), 0);
    mem_free(p);
    CHECK_INT(sb.kind, SPOOL_CANDLES);
    CHECK_INT(sb.pol, CANDLES_REPLACE);
    CHECK_STR(sb.source, "ea-test");
    CHECK(sb.candles && sb.candles->n == 2 && sb.candles->nvalid == 2);
    if (sb.candles && sb.candles->n == 2) {
        const struct candle *a = &sb.candles->items[0], *c = &sb.candles->items[1];
        CHECK_STR(a->symbol, "EURUSD");
        CHECK_INT(a->tf, b->items[0].tf);
        CHECK_INT(a->bucket_us, b->items[0].bucket_us);
        CHECK_INT(a->ts_us, b->items[0].ts_us);
        CHECK(a->high == 1.2 && a->close == 1.15 && a->volume == 10 && a->has_spread && a->spread == 2);
        CHECK_INT(a->leader, -1);
        CHECK_INT(c->leader, 0); /* the follower still follows, its index remapped */
        CHECK(!c->has_spread && c->close == 1.25);
        CHECK_INT(a->status, INGEST_VALID);
    }
    candles_free(sb.candles);
    candles_free(b);
    CHECK_INT(spool_decode("\x02garbage", 8, &sb), -1);
    spool_close(s);
    remove_dir();
}

TEST(a_tick_batch_survives_the_trip_through_a_record)
{
    fresh_dir();
    struct spool *s = open_spool(1 << 20, 1 << 20);
    const char *body = "{\"ticks\":[{\"symbol\":\"XAUUSD\",\"ts\":\"2025-10-20T03:01:10Z\",\"ts_msc\":1760929270123,"
                       "\"bid\":2400.5,\"ask\":2400.9,\"flags\":6},"
                       "{\"symbol\":\"XAUUSD\",\"ts\":\"2025-10-20T03:01:11Z\",\"bid\":2400.6,\"ask\":2401,\"last\":2400.7,\"volume\":3}]}";
    struct ticks_batch *b;
    int st;
    char err[256];
    CHECK_INT(ticks_decode(body, strlen(body), NULL, &b, &st, err, sizeof err), 0);
    CHECK_INT(spool_append_ticks(s, b, 0, err, sizeof err), SPOOL_OK);
    void *p;
    long len = spool_read(s, &p, NULL, err, sizeof err);
    struct spool_batch sb;
    CHECK_INT(spool_decode(p, (size_t)len, &sb), 0);
    mem_free(p);
    CHECK_INT(sb.kind, SPOOL_TICKS);
    CHECK(sb.ticks && sb.ticks->n == 2);
    if (sb.ticks && sb.ticks->n == 2) {
        const struct tick *t = &sb.ticks->items[0], *u = &sb.ticks->items[1];
        CHECK(t->has_msc && t->ts_msc == 1760929270123LL && t->has_flags && t->flags == 6 && !t->has_last);
        CHECK_INT(t->ts_us, b->items[0].ts_us);
        CHECK(u->has_last && u->last == 2400.7 && u->has_volume && u->volume == 3 && !u->has_msc);
        CHECK(t->bid == 2400.5 && u->ask == 2401);
    }
    ticks_free(sb.ticks);
    ticks_free(b);
    spool_close(s);
    remove_dir();
}

TEST(crc32c_matches_the_published_check_value)
{
    CHECK_INT(spool_crc32c(0, "123456789", 9), 0xE3069283u);
}

int main(void)
{
    RUN(crc32c_matches_the_published_check_value);
    RUN(records_read_back_in_order_and_survive_a_reopen);
    RUN(records_read_ahead_are_read_again_unless_committed);
    RUN(a_second_process_cannot_open_the_same_spool);
    RUN(a_torn_tail_record_is_detected_skipped_and_counted);
    RUN(a_corrupt_middle_record_is_skipped_and_the_rest_replayed);
    RUN(segments_rotate_and_are_deleted_once_replayed);
    RUN(the_bound_refuses_appends_until_replay_makes_room);
    RUN(only_if_busy_appends_only_behind_pending_records);
    RUN(concurrent_appenders_share_syncs_and_keep_their_order);
    RUN(a_candle_batch_survives_the_trip_through_a_record);
    RUN(a_tick_batch_survives_the_trip_through_a_record);
    return unit_done();
}
