/* device_limit.h — the per-device ingest rate limit (limits.device_rate readings per second,
 * limits.device_burst at once), one budget per device shared by HTTP and MQTT ingest.
 *
 * Where it sits: after authenticity (verify/auth.h) and the timestamp checks, before the
 * pipeline. A message whose signature or token fails is refused before it is charged, so a
 * forger cannot spend a real device's budget to silence it. A device without credentials
 * (security.unsigned = accept or flag) has no such protection: anyone can send readings in its
 * name and use its budget up (docs/HARDENING.md).
 *
 * A batch is charged one token per reading still pending, per device, all or nothing: when
 * any device of the batch is over its limit, the tokens already taken for the batch are given
 * back and the whole batch is refused (HTTP answers 429 and the client retries it whole; an
 * MQTT message is dropped). A batch larger than the burst is never let through.
 *
 * Thread-safe; the owner (the pipeline) creates it from the configuration and frees it last. */
#ifndef CANARY_VERIFY_DEVICE_LIMIT_H
#define CANARY_VERIFY_DEVICE_LIMIT_H

#include "core/config.h"
#include "ingest/ingest.h"

#include <stdbool.h>
#include <stdint.h>

struct device_limit;

enum device_limit_transport { DEVICE_LIMIT_HTTP, DEVICE_LIMIT_MQTT };

/* Creates the limit from cfg->limits. With limits.device_rate = 0 sets *out = NULL (no
 * limit; every function accepts NULL). Returns 0 or CANARY_ENOMEM. */
int device_limit_create(struct device_limit **out, const struct canary_config *cfg);

void device_limit_free(struct device_limit *dl);

/* Why a batch was refused. */
struct device_limit_refusal {
    const char *device;     /* the first device over its limit (points into the batch) */
    int64_t retry_after_ms; /* until that device's readings would pass */
    size_t readings;        /* pending readings of the batch (all refused) */
};

/* Charges the batch's pending readings at now_ms (monotonic). Returns true when they pass
 * (or dl is NULL); otherwise false with *why filled, nothing charged. Counts the outcome for
 * device_limit_stats() under the transport. */
bool device_limit_charge(struct device_limit *dl, const struct ingest_batch *b,
                         enum device_limit_transport t, int64_t now_ms,
                         struct device_limit_refusal *why);

struct device_limit_stats {
    bool enabled;
    double rate, burst;
    size_t table, entries;
    uint64_t evicted;
    uint64_t http_refused_requests, http_refused_readings;
    uint64_t mqtt_dropped_messages, mqtt_refused_readings;
};

/* A snapshot of the counters (all zero, enabled false, for NULL). Thread-safe. */
void device_limit_stats(const struct device_limit *dl, struct device_limit_stats *out);

#endif
