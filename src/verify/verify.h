/* verify.h — the verify stage: is each parsed reading fresh and physically plausible?
 *
 * Runs after parse and before the readings are sharded to the workers. Checks, per
 * reading still pending: the timestamp lies within [now - max_past, now + max_future], and
 * every value of a known metric lies within the metric's plausible range (metric.h).
 * A failing reading becomes READING_INVALID with an error naming the field; the others go
 * on. Authenticity (signatures, device tokens) and the per-device replay window join this
 * stage in the security work; duplicate seqs are caught by the worker that owns the device,
 * because only it knows the device's history. Pure: no I/O, no globals. */
#ifndef CANARY_VERIFY_VERIFY_H
#define CANARY_VERIFY_VERIFY_H

#include "ingest/ingest.h"

#include <stddef.h>
#include <stdint.h>

struct verify_policy {
    int64_t max_past_ms;   /* oldest accepted ts, before now */
    int64_t max_future_ms; /* newest accepted ts, after now */
};

/* Verifies every READING_PENDING reading of b against the policy at server time now_ms.
 * Returns how many readings are still pending. */
size_t verify_batch(struct ingest_batch *b, const struct verify_policy *policy, int64_t now_ms);

#endif
