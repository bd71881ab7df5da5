/* The durable ingest spool: an append-only queue of ingest batches on local
 * disk (spool.dir), written while the database is unreachable and replayed
 * into it, in order, by a thread once it is back. An append returns only
 * after its record is on disk (fdatasync, shared by concurrent appenders);
 * a record is length-prefixed and CRC32C-checked, so a torn or corrupt one
 * is found, skipped and counted. Never talks to the database except through
 * the replayer (candles_store / ticks_store, as the routes do). */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "candles.h"
#include "ticks.h"

struct spool_options {
    const char *dir;      /* created if missing (one level) */
    size_t max_bytes;     /* pending bytes on disk; an append past it fails (SPOOL_FULL) */
    size_t segment_bytes; /* a segment file is closed and a new one begun past this size */
};

/* Results of appends; the -1 convention for everything else. */
#define SPOOL_OK 0
#define SPOOL_FULL 1     /* max_bytes reached: nothing appended */
#define SPOOL_IDLE 2     /* spool_append_batch with only_if_busy, and the spool holds nothing */
#define SPOOL_ERROR (-1) /* an I/O error (err says which): nothing acknowledged */

struct spool;

/* Opens (creating) the spool in o->dir and counts what is pending from an
 * earlier run; appends go to a new segment. Takes an exclusive lock on the
 * directory, so two processes never share it. NULL with err. The caller
 * closes it with spool_close, which syncs and unlocks. */
struct spool *spool_open(const struct spool_options *o, char *err, size_t errlen);
void spool_close(struct spool *s);

/* Appends one record holding len bytes of payload, and returns once it is
 * on disk. Concurrent appenders share one fdatasync: the first to need one
 * does it for everyone written by then (group commit). Blocks; call it from
 * a thread that may wait. SPOOL_OK, SPOOL_FULL, SPOOL_IDLE (only_if_busy:
 * nothing pending, nothing appended; decided under the same lock as the
 * replayer's "drained", so a batch either follows every spooled one or
 * finds none), or SPOOL_ERROR with err. */
int spool_append(struct spool *s, const void *payload, size_t len, int only_if_busy, char *err, size_t errlen);

/* Records appended and not yet consumed (cheap, no lock): non-zero means
 * new batches for spooled routes must be spooled too, to keep their order. */
long spool_pending(const struct spool *s);

/* The reader (one thread: the replayer, or a test). spool_read returns the
 * next record on disk after the last one read: copies its payload into *out
 * (mem_alloc'd, the caller frees it with mem_free) and returns its length,
 * its append time (µs since the epoch) in *appended_us; 0 when there is none
 * (or SPOOL_READ_MAX were read since the last commit). Records whose
 * checksum fails are skipped (logged once, counted in
 * tf_spool_corrupt_records_total). -1 with err on an I/O error. */
#define SPOOL_READ_MAX 256
long spool_read(struct spool *s, void **out, int64_t *appended_us, char *err, size_t errlen);
/* Consumes the first n records read since the last commit (n may be 0)
 * and rewinds the cursor to after them: the others are read again. A
 * segment read to its end is deleted. The position is synced when the spool
 * becomes empty, when a segment is dropped and every 64 records (a crash in
 * between replays those again, in order: the stores are idempotent), and at
 * spool_close. 0, or -1 with err. */
int spool_commit(struct spool *s, int n, char *err, size_t errlen);

/* Counts for metrics and /admin/status. */
struct spool_stats {
    long records;       /* pending */
    size_t bytes;       /* pending on disk */
    double oldest_age_s; /* of the oldest pending record, 0 when none */
    long segments;      /* files */
    double appended, replayed, corrupt, failed; /* totals since start */
};
void spool_stats(struct spool *s, struct spool_stats *st);
/* The spool's state for /admin/status as a cJSON object (null for s
 * NULL: no spool); the caller owns it; NULL when out of memory. */
struct cJSON;
struct cJSON *spool_to_json(struct spool *s);
void spool_metrics(void *s); /* a metrics collector: the gauges */

/* ---- ingest batches as records ----
 * The valid items of a decoded batch (after offsets and bucketing), with
 * the store options, in a compact binary form in host byte order (a spool
 * is local to its machine). */
enum spool_kind { SPOOL_CANDLES = 1, SPOOL_TICKS = 2 };

/* Appends b's valid items and marks them INGEST_QUEUED once they are on
 * disk. Same results as spool_append. */
int spool_append_candles(struct spool *s, struct candles_batch *b, enum candles_policy pol, const char *source,
                         int only_if_busy, char *err, size_t errlen);
int spool_append_ticks(struct spool *s, struct ticks_batch *b, int only_if_busy, char *err, size_t errlen);

/* A record back as a batch (every item VALID): *kind says which of
 * *candles / *ticks is set; the caller frees it with candles_free /
 * ticks_free. 0, or -1 for a payload this build cannot read. */
struct spool_batch {
    enum spool_kind kind;
    enum candles_policy pol;
    char source[64];
    struct candles_batch *candles;
    struct ticks_batch *ticks;
};
int spool_decode(const void *payload, size_t len, struct spool_batch *out);

/* ---- the replayer ----
 * A thread that stores pending records in order through candles_store /
 * ticks_store whenever the database answers, consecutive records of one
 * kind, policy and source together (up to 5000 items per statement),
 * committing them once stored (a crash before that replays them again: the
 * stores are idempotent on the natural key). A record the database refuses
 * (DB_ERROR) is retried alone a few times, then logged, counted in
 * tf_spool_failed_records_total and skipped, so one bad record cannot hold
 * back the rest. cache (may be NULL) has the replayed candles' cached
 * ranges dropped, as a direct store does. */
struct db_pool;
struct cache;
int spool_replayer_start(struct spool *s, struct db_pool *p, struct cache *cache, char *err, size_t errlen);
/* Stops the replayer after the record in hand (waits for it). */
void spool_replayer_stop(struct spool *s);
/* Wakes the replayer now (tests, and appends do it). */
void spool_kick(struct spool *s);

/* CRC-32C (Castagnoli) of n bytes, continuing from crc (0 to start). */
uint32_t spool_crc32c(uint32_t crc, const void *p, size_t n);

#endif
