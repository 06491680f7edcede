/* rate_limit.h — a token bucket that also counts what it refused, so a flood of events is
 * stored as a few events plus "N more like these" instead of filling the disk.
 * Not thread-safe: the owner serialises calls. Times are monotonic milliseconds. */
#ifndef CANARY_CORE_RATE_LIMIT_H
#define CANARY_CORE_RATE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct rate_limit {
    double per_s; /* tokens added per second */
    double burst; /* bucket size */
    double tokens;
    int64_t last_ms;
    uint64_t suppressed; /* refused since the last rate_limit_take_suppressed() */
};

void rate_limit_init(struct rate_limit *r, double per_s, double burst, int64_t now_ms);

/* Takes a token: true when the event may pass; false counts it as suppressed. */
bool rate_limit_allow(struct rate_limit *r, int64_t now_ms);

/* Returns the suppressed count and resets it. */
uint64_t rate_limit_take_suppressed(struct rate_limit *r);

#endif
