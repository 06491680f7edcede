/* verify.c — timestamp window and plausible ranges; see verify.h. */
#include "verify/verify.h"

#include "core/metric.h"

#include <stdio.h>

static void check_reading(struct ingest_batch *b, size_t i, const struct verify_policy *p,
                          int64_t now_ms)
{
    const struct reading *r = &b->readings[i];
    if (r->has_ts) {
        if (r->ts_ms < now_ms - p->max_past_ms) {
            /* Unix seconds sent as milliseconds land in January 1970: say so. */
            const char *hint = r->ts_ms < 100000000000LL
                                   ? "; ts is Unix time in milliseconds and this looks like "
                                     "seconds"
                                   : "";
            ingest_batch_reject(b, i, "ts",
                                "%lld is %lld s before the server's clock (limit "
                                "ingest.max_past_s = %lld)%s",
                                (long long)r->ts_ms, (long long)((now_ms - r->ts_ms) / 1000),
                                (long long)(p->max_past_ms / 1000), hint);
            return;
        }
        if (r->ts_ms > now_ms + p->max_future_ms) {
            ingest_batch_reject(b, i, "ts",
                                "%lld is %lld s after the server's clock (limit "
                                "ingest.max_future_s = %lld); is the device's clock set?",
                                (long long)r->ts_ms, (long long)((r->ts_ms - now_ms) / 1000),
                                (long long)(p->max_future_ms / 1000));
            return;
        }
    }
    for (uint32_t k = 0; k < r->n_values; k++) {
        const struct metric_value *v = &r->values[k];
        const struct metric_info *m = metric_lookup(v->name);
        if (m == NULL || (v->value >= m->min && v->value <= m->max))
            continue;
        char field[96];
        snprintf(field, sizeof field, "values.%s", v->name);
        ingest_batch_reject(b, i, field, "%g is outside the plausible range [%g, %g]%s%s", v->value,
                            m->min, m->max, m->unit[0] ? " " : "", m->unit);
        return;
    }
}

size_t verify_batch(struct ingest_batch *b, const struct verify_policy *policy, int64_t now_ms)
{
    size_t pending = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->status[i] != READING_PENDING)
            continue;
        check_reading(b, i, policy, now_ms);
        if (b->status[i] == READING_PENDING)
            pending++;
    }
    return pending;
}
