/* time_ring.h — counts of events per time slot over a recent window, lock-free.
 *
 * For "readings per second over the last 10 s" and "anomalies in the last hour": N slots
 * of slot_ms each; adding to a slot whose time has passed resets it first. Several threads
 * may add at once (atomics); a reader sums the slots still inside the window. Counts at a
 * slot's turnover can be off by the events of one racing thread — fine for statistics,
 * which is all this is for. */
#ifndef CANARY_CORE_TIME_RING_H
#define CANARY_CORE_TIME_RING_H

#include <stdatomic.h>
#include <stdint.h>

#define TIME_RING_SLOTS 64

struct time_ring {
    int64_t slot_ms;
    _Atomic int64_t slot_start[TIME_RING_SLOTS]; /* slot's start time, ms */
    _Atomic uint64_t count[TIME_RING_SLOTS];
};

void time_ring_init(struct time_ring *r, int64_t slot_ms);

/* Adds n events at time now_ms. */
void time_ring_add(struct time_ring *r, int64_t now_ms, uint64_t n);

/* Events in the slots that ended within (now_ms - window_ms, now_ms], the current partial
 * slot excluded when exclude_current. window_ms must not exceed 63 slots. */
uint64_t time_ring_sum(struct time_ring *r, int64_t now_ms, int64_t window_ms, int exclude_current);

#endif
