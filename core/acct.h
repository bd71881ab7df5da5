/* Per-plugin accounting: what each route and each job costs, summed over
 * every call since the process started (across reloads): calls, failures,
 * Lua CPU time, wall time, time spent waiting (suspended on the database, a
 * store, another caller's cache load; or blocked in tf.db outside
 * handlers), statements sent, and bytes the Lua VM allocated for it.
 *
 * An entry is found once (when a generation is built, or a job first runs)
 * and then updated with atomic adds only, so recording costs a request a
 * handful of instructions. Entries live until exit. GET /metrics shows them
 * as tf_route_* and tf_job_* counters (acct_metrics, a collector) and
 * /admin/status as its "accounting" array (acct_to_json). */
#ifndef ACCT_H
#define ACCT_H

#include "lvm.h"

#include <cJSON.h>

enum acct_kind { ACCT_ROUTE, ACCT_JOB };

struct acct_entry;

/* The entry of a route ("GET /candles") or a job ("candles_m5"), created on
 * first use; plugin is the file that registered it ("market_read.lua", or
 * "" when unknown). NULL only when out of memory (recording is then skipped). */
struct acct_entry *acct_entry(enum acct_kind kind, const char *name, const char *plugin);

/* Adds one call: a's costs, its wall time, and whether it failed. */
void acct_record(struct acct_entry *e, const struct lvm_acct *a, long long wall_ns, int failed);

/* Refreshes the tf_route_* and tf_job_* series (a metrics_collector). */
void acct_metrics(void *ud);

/* The entries as a cJSON array, busiest first by wall time (the caller owns
 * it); NULL when out of memory. */
cJSON *acct_to_json(void);

#endif
