/* rate.c — rate of change over a time window (see detect.h).
 *
 * The value is first smoothed with a time constant of a sixth of the window (so one noisy
 * value cannot fake a rate), then a ring of RATE_SLOTS snapshots, one per window/RATE_SLOTS
 * of time, remembers the smoothed value back to one window ago. The rate is the change
 * from the oldest snapshot inside the window to now, per minute. O(1) per value. Entries keep
 * their age (32 bits: the window is at most a day), not their timestamp. */
#include "detect/detect.h"

#include <math.h>

/* The ring entries age by dt: those now older than the window are dropped for good (the
 * newest timestamp only grows, so they could never be inside the window again). */
static void age_slots(struct rate_state *s, const struct detect_params *p, int64_t dt)
{
    for (int i = 0; i < RATE_SLOTS; i++) {
        if (s->slot_age_ms[i] == RATE_EMPTY)
            continue;
        int64_t age = (int64_t)s->slot_age_ms[i] + dt;
        s->slot_age_ms[i] = age > p->rate_window_ms ? RATE_EMPTY : (uint32_t)age;
    }
}

/* The ring entry of the slot that holds ts_ms (also before 1970: never a negative index). */
static int slot_index(int64_t ts_ms, int64_t width)
{
    int64_t i = (ts_ms / width) % RATE_SLOTS;
    return (int)(i < 0 ? i + RATE_SLOTS : i);
}

double rate_update(struct rate_state *s, const struct detect_params *p, int64_t ts_ms, double x)
{
    int64_t width = p->rate_window_ms / RATE_SLOTS;
    if (width < 1)
        width = 1;
    /* A timestamp of 0 means "no time": such an entry is none. */
    uint32_t now_age = ts_ms == 0 ? RATE_EMPTY : 0;
    if (!s->started) {
        s->started = true;
        s->smooth = x;
        s->last_ts_ms = ts_ms;
        for (int i = 0; i < RATE_SLOTS; i++)
            s->slot_age_ms[i] = RATE_EMPTY;
        s->slot_age_ms[slot_index(ts_ms, width)] = now_age;
        s->slot_value[slot_index(ts_ms, width)] = x;
        s->per_min = NAN;
        return NAN;
    }
    if (ts_ms <= s->last_ts_ms)
        return s->per_min; /* out of order or same instant: nothing new about the rate */
    double tau = (double)p->rate_window_ms / 6.0;
    double a = 1.0 - exp(-(double)(ts_ms - s->last_ts_ms) / tau);
    s->smooth += a * (x - s->smooth);
    int64_t last_slot = s->last_ts_ms / width;
    age_slots(s, p, ts_ms - s->last_ts_ms);
    s->last_ts_ms = ts_ms;

    if (ts_ms / width != last_slot) {
        s->slot_age_ms[slot_index(ts_ms, width)] = now_age;
        s->slot_value[slot_index(ts_ms, width)] = s->smooth;
    }
    /* Oldest snapshot still inside the window (not the one taken now). */
    uint32_t best_age = 0;
    double best_v = 0;
    for (int i = 0; i < RATE_SLOTS; i++) {
        uint32_t age = s->slot_age_ms[i];
        if (age != RATE_EMPTY && age > best_age) {
            best_age = age;
            best_v = s->slot_value[i];
        }
    }
    if (best_age == 0 || best_age < p->rate_window_ms / 2) {
        s->per_min = NAN;
        return NAN;
    }
    s->per_min = (s->smooth - best_v) * 60000.0 / (double)best_age;
    return s->per_min;
}
