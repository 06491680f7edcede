/* features.h — feature windows over a sensor stream, for the Isolation Forest.
 *
 * One code path for training and live scoring, so they can never drift apart: `canary train`
 * (from a CSV or the store's history) and canaryd's workers push the same readings through
 * the same functions and get the same vectors.
 *
 * Per series (one metric of one device) a window of the last `window` values, updated in
 * O(1) per reading (amortised: running sums for mean and variance, monotonic deques for
 * minimum and maximum; the sums are recomputed from the ring every `window` pushes so that
 * floating-point drift never accumulates). For each value it yields FEATURES_PER_SERIES
 * numbers: the value, the window's mean, standard deviation, minimum and maximum, the
 * deviation value - mean, and the rate of change per minute against the previous reading
 * (0 for the first, or when the timestamps do not advance). A device's vector adds the time
 * of day as two features (sin and cos of the fraction of the UTC day), so midnight is next
 * to 23:59.
 *
 * The window includes the current value. A series is warm once it holds `window` values
 * (feature_series_warm); before that the features are computed over what it has, and the
 * callers decide (training skips rows of cold series; live scoring scores 0 until warm). */
#ifndef CANARY_ML_FEATURES_H
#define CANARY_ML_FEATURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FEATURE_WINDOW_MAX     1024
#define FEATURE_WINDOW_DEFAULT 32

enum feature_kind {
    FEATURE_VALUE,
    FEATURE_MEAN,
    FEATURE_STD,
    FEATURE_MIN,
    FEATURE_MAX,
    FEATURE_DEVIATION,
    FEATURE_RATE_PER_MIN,
    FEATURES_PER_SERIES
};
#define FEATURES_TIME_OF_DAY 2 /* sin, cos: once per vector */

/* The state of one series. One allocation per series, sized for its window (a worker keeps
 * one per (device, metric) a model uses, so a fixed FEATURE_WINDOW_MAX array would cost
 * tens of KB each): allocate feature_series_size(window) bytes, then feature_series_init.
 * Plain data (no pointers into it): it may be copied with memcpy of that size. */
struct feature_series {
    uint32_t window;      /* capacity in use, 1..FEATURE_WINDOW_MAX */
    uint32_t count;       /* values in the ring, <= window */
    uint32_t head;        /* index of the oldest value */
    uint32_t since_resum; /* pushes since the sums were last recomputed */
    double sum, sum_sq;   /* of the values in the ring (relative to `origin`) */
    double origin;        /* first value seen: sums are kept relative to it for precision
                             (then the newest value, at each recomputation) */
    int64_t last_ts_ms;
    double last_value;
    bool has_last;
    /* Monotonic deques (rings of `window` entries) of push counters, for min and max. */
    uint64_t pushes;
    uint32_t min_head, min_len, max_head, max_len;
    /* Low parts of sum and sum_sq: the sums are double-doubles (sum + sum_lo), so adding and
     * removing a spike of 1e9 among values near 1 leaves no residue behind (features.c). */
    double sum_lo, sum_sq_lo;
    /* The storage: values[window] (the ring), then min_q[window] and max_q[window] as
     * uint64_t (push counters), in this one trailing array. */
    uint64_t storage[];
};

/* Bytes to allocate for a series with this window (clamped to 1..FEATURE_WINDOW_MAX). */
size_t feature_series_size(uint32_t window);

/* Starts an empty series in s, which holds at least feature_series_size(window) bytes. */
void feature_series_init(struct feature_series *s, uint32_t window);

/* Adds a value observed at ts_ms and writes its FEATURES_PER_SERIES features to out. A NaN
 * or infinite value is not added (the window is unchanged) and out is filled with NaN. */
void feature_series_push(struct feature_series *s, int64_t ts_ms, double value, double *out);

/* The least-squares slope of the window's values against their order, in value units per
 * reading (the newest is the last; pushes of NaN or infinity are not in the window): how
 * fast the series is moving now. 0 with fewer than two values. O(window) per call, not O(1)
 * as a push: the gas classifier's window slope (ml/gas.h) calls it once per reading. */
double feature_series_slope(const struct feature_series *s);

/* True once the series holds `window` values. */
bool feature_series_warm(const struct feature_series *s);

/* Writes the time-of-day features of ts_ms (UTC) to out[0..1]. */
void feature_time_of_day(int64_t ts_ms, double *out);

/* The name of feature k of a series ("value", "mean", "std", "min", "max", "deviation",
 * "rate_per_min"); NULL when k is not a feature. */
const char *feature_kind_name(enum feature_kind k);

/* Writes the name of column i of a vector built from n_metrics series named metrics[] in
 * that order — "<metric>.<feature>" for i < n_metrics * FEATURES_PER_SERIES, then
 * "time_of_day_sin" and "time_of_day_cos" — into buf. Returns false if i is out of range
 * (or if the name does not fit in buflen; buf then holds as much as fits). */
bool feature_column_name(const char *const *metrics, size_t n_metrics, size_t i, char *buf,
                         size_t buflen);

/* Columns of such a vector. */
static inline size_t feature_vector_len(size_t n_metrics)
{
    return n_metrics * FEATURES_PER_SERIES + FEATURES_TIME_OF_DAY;
}

#endif
