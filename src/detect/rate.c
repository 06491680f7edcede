/* rate.c — rate of change over a time window (see detect.h).
 *
 * The value is first smoothed with a time constant of a sixth of the window (so one noisy
 * value cannot fake a rate), then a ring of RATE_SLOTS snapshots, one per window/RATE_SLOTS
 * of time, remembers the smoothed value back to one window ago. The rate is the change
 * from the oldest snapshot inside the window to now, per minute. O(1) per value. */
#include "detect/detect.h"

#include <math.h>

double rate_update(struct rate_state *s, const struct detect_params *p, int64_t ts_ms, double x)
{
    int64_t width = p->rate_window_ms / RATE_SLOTS;
    if (width < 1)
        width = 1;
    if (!s->started) {
        s->started = true;
        s->smooth = x;
        s->last_ts_ms = ts_ms;
        s->last_slot = ts_ms / width;
        for (int i = 0; i < RATE_SLOTS; i++)
            s->slot_ts_ms[i] = 0;
        s->slot_ts_ms[s->last_slot % RATE_SLOTS] = ts_ms;
        s->slot_value[s->last_slot % RATE_SLOTS] = x;
        s->per_min = NAN;
        return NAN;
    }
    if (ts_ms <= s->last_ts_ms)
        return s->per_min; /* out of order or same instant: nothing new about the rate */
    double tau = (double)p->rate_window_ms / 6.0;
    double a = 1.0 - exp(-(double)(ts_ms - s->last_ts_ms) / tau);
    s->smooth += a * (x - s->smooth);
    s->last_ts_ms = ts_ms;

    int64_t slot = ts_ms / width;
    if (slot != s->last_slot) {
        s->slot_ts_ms[slot % RATE_SLOTS] = ts_ms;
        s->slot_value[slot % RATE_SLOTS] = s->smooth;
        s->last_slot = slot;
    }
    /* Oldest snapshot still inside the window. */
    int64_t best_ts = 0;
    double best_v = 0;
    for (int i = 0; i < RATE_SLOTS; i++) {
        int64_t t = s->slot_ts_ms[i];
        if (t != 0 && t < ts_ms && ts_ms - t <= p->rate_window_ms &&
            (best_ts == 0 || t < best_ts)) {
            best_ts = t;
            best_v = s->slot_value[i];
        }
    }
    if (best_ts == 0 || ts_ms - best_ts < p->rate_window_ms / 2) {
        s->per_min = NAN;
        return NAN;
    }
    s->per_min = (s->smooth - best_v) * 60000.0 / (double)(ts_ms - best_ts);
    return s->per_min;
}
