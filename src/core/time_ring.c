/* time_ring.c — slotted event counts; see time_ring.h. */
#include "core/time_ring.h"

void time_ring_init(struct time_ring *r, int64_t slot_ms)
{
    r->slot_ms = slot_ms;
    for (int i = 0; i < TIME_RING_SLOTS; i++) {
        atomic_init(&r->slot_start[i], -1);
        atomic_init(&r->count[i], 0);
    }
}

void time_ring_add(struct time_ring *r, int64_t now_ms, uint64_t n)
{
    int64_t slot = now_ms / r->slot_ms;
    int i = (int)(slot % TIME_RING_SLOTS);
    int64_t start = slot * r->slot_ms;
    int64_t seen = atomic_load(&r->slot_start[i]);
    if (seen != start && atomic_compare_exchange_strong(&r->slot_start[i], &seen, start))
        atomic_store(&r->count[i], 0);
    atomic_fetch_add(&r->count[i], n);
}

uint64_t time_ring_sum(struct time_ring *r, int64_t now_ms, int64_t window_ms, int exclude_current)
{
    int64_t current = (now_ms / r->slot_ms) * r->slot_ms;
    int64_t oldest = current - window_ms + (exclude_current ? 0 : r->slot_ms);
    if (exclude_current)
        current -= r->slot_ms;
    uint64_t sum = 0;
    for (int i = 0; i < TIME_RING_SLOTS; i++) {
        int64_t start = atomic_load(&r->slot_start[i]);
        if (start >= oldest && start <= current)
            sum += atomic_load(&r->count[i]);
    }
    return sum;
}
