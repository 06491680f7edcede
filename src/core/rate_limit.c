/* rate_limit.c — token bucket with a count of refusals; see rate_limit.h. */
#include "core/rate_limit.h"

void rate_limit_init(struct rate_limit *r, double per_s, double burst, int64_t now_ms)
{
    r->per_s = per_s;
    r->burst = burst;
    r->tokens = burst;
    r->last_ms = now_ms;
    r->suppressed = 0;
}

bool rate_limit_allow(struct rate_limit *r, int64_t now_ms)
{
    if (now_ms > r->last_ms) {
        r->tokens += (double)(now_ms - r->last_ms) * r->per_s / 1000.0;
        if (r->tokens > r->burst)
            r->tokens = r->burst;
        r->last_ms = now_ms;
    }
    if (r->tokens >= 1.0) {
        r->tokens -= 1.0;
        return true;
    }
    r->suppressed++;
    return false;
}

uint64_t rate_limit_take_suppressed(struct rate_limit *r)
{
    uint64_t n = r->suppressed;
    r->suppressed = 0;
    return n;
}
