/* device_limit.c — the per-device ingest rate limit; contracts in device_limit.h. */
#include "verify/device_limit.h"

#include "core/error.h"
#include "core/limiter.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct device_limit {
    struct limiter *buckets;
    _Atomic uint64_t http_requests, http_readings, mqtt_messages, mqtt_readings;
};

int device_limit_create(struct device_limit **out, const struct canary_config *cfg)
{
    *out = NULL;
    if (cfg->limits.device_rate <= 0)
        return CANARY_OK;
    struct device_limit *dl = calloc(1, sizeof *dl);
    if (dl == NULL)
        return CANARY_ENOMEM;
    int rc = limiter_create(&dl->buckets, cfg->limits.device_rate, cfg->limits.device_burst,
                            cfg->limits.device_table);
    if (rc != 0) {
        free(dl);
        return rc;
    }
    *out = dl;
    return CANARY_OK;
}

void device_limit_free(struct device_limit *dl)
{
    if (dl == NULL)
        return;
    limiter_free(dl->buckets);
    free(dl);
}

static const char *device_of(const struct ingest_batch *b, size_t i)
{
    return b->status[i] == READING_PENDING && b->readings[i].device != NULL ? b->readings[i].device
                                                                            : NULL;
}

/* Gives back what runs before `end` took: one token per pending reading. */
static void give_back(struct device_limit *dl, const struct ingest_batch *b, size_t end)
{
    size_t i = 0;
    while (i < end) {
        const char *d = device_of(b, i);
        if (d == NULL) {
            i++;
            continue;
        }
        size_t run = 1;
        while (i + run < end && device_of(b, i + run) != NULL &&
               strcmp(device_of(b, i + run), d) == 0)
            run++;
        limiter_give_back(dl->buckets, d, strlen(d), (double)run);
        i += run;
    }
}

bool device_limit_charge(struct device_limit *dl, const struct ingest_batch *b,
                         enum device_limit_transport t, int64_t now_ms,
                         struct device_limit_refusal *why)
{
    if (dl == NULL)
        return true;
    /* Runs of one device's consecutive readings are charged in one call: a device's own
     * batch, the usual case, costs one table lookup. */
    size_t i = 0, pending = 0;
    while (i < b->n) {
        const char *d = device_of(b, i);
        if (d == NULL) {
            i++;
            continue;
        }
        size_t run = 1;
        while (i + run < b->n && device_of(b, i + run) != NULL &&
               strcmp(device_of(b, i + run), d) == 0)
            run++;
        int64_t wait = 0;
        if (!limiter_take(dl->buckets, d, strlen(d), (double)run, now_ms, &wait)) {
            give_back(dl, b, i);
            for (size_t k = 0; k < b->n; k++)
                pending += device_of(b, k) != NULL;
            why->device = d;
            why->retry_after_ms = wait;
            why->readings = pending;
            if (t == DEVICE_LIMIT_HTTP) {
                atomic_fetch_add(&dl->http_requests, 1);
                atomic_fetch_add(&dl->http_readings, pending);
            } else {
                atomic_fetch_add(&dl->mqtt_messages, 1);
                atomic_fetch_add(&dl->mqtt_readings, pending);
            }
            return false;
        }
        i += run;
    }
    return true;
}

void device_limit_stats(const struct device_limit *dl, struct device_limit_stats *out)
{
    memset(out, 0, sizeof *out);
    if (dl == NULL)
        return;
    struct device_limit *m = (struct device_limit *)dl; /* atomics are only read */
    struct limiter_stats ls;
    limiter_stats(dl->buckets, &ls);
    out->enabled = true;
    out->rate = ls.rate;
    out->burst = ls.burst;
    out->table = ls.capacity;
    out->entries = ls.entries;
    out->evicted = ls.evicted;
    out->http_refused_requests = atomic_load(&m->http_requests);
    out->http_refused_readings = atomic_load(&m->http_readings);
    out->mqtt_dropped_messages = atomic_load(&m->mqtt_messages);
    out->mqtt_refused_readings = atomic_load(&m->mqtt_readings);
}
