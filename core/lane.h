/* The single-candle lanes: the EAs' commonest request carries one candle,
 * and requests that each store one share tf_put_candles statements (one
 * round trip, one transaction for many), at most `lanes` in flight, each
 * request getting exactly the status it would have got alone. Used by
 * candles.c only (candles_store, candles_store_start); never stores a batch
 * of several rows. */
#ifndef LANE_H
#define LANE_H

#include "candles.h"
#include "db.h"

/* At most this many statements storing single candles run at once (>= 1;
 * database.single_lanes). */
void lane_set(int lanes);

/* Stores *it (valid, its request's only row) and sets its status, blocking
 * while it waits. DB_OK, or DB_ERROR / DB_UNAVAILABLE with err and nothing
 * stored. */
int lane_store(struct db_pool *p, struct candle *it, enum candles_policy pol, const char *source,
               char *err, size_t errlen);

/* lane_store without blocking: DB_PENDING with *job, whose wake(ud) is
 * called (any thread, with locks held: it must only schedule) whenever it
 * may go on; the caller then calls lane_step on its own thread, which
 * returns DB_PENDING again or the final result (the job is then freed).
 * Returns the final result at once (no job) when it needs no wait. *it
 * must stay put until the final result. deadline_ms: db_now_ms() clock,
 * 0 = none. */
struct lane_job;
int lane_start(struct db_pool *p, struct candle *it, enum candles_policy pol, const char *source,
               long long deadline_ms, void (*wake)(void *ud), void *ud, struct lane_job **job,
               char *err, size_t errlen);
int lane_step(struct lane_job *job, char *err, size_t errlen);

#endif
