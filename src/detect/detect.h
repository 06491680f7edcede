/* detect.h — the streaming detectors: what is unusual or dangerous about a value?
 *
 * Pure library code: no I/O, no threads, no globals, no allocation. The state of a series
 * (one metric of one device) and of a device are plain structs owned by the caller — in
 * canaryd by the worker that owns the device, in `canary replay` and the benchmarks by
 * their loops — so live scoring, replay and tests run exactly the same code.
 *
 * For each value the detectors fill a score in [0,1] and flags (core/reading.h):
 *  - threshold (threshold.c): warn/critical limits, high and low, with hysteresis: a
 *    limit that was crossed clears only when the value is back by `hysteresis` — a noisy
 *    signal around a limit stays one crossing.
 *  - anomaly score (robust.c): a raw score per value, 1 - 2^-(z/z_half)^2 of the robust z
 *    against an EWMA level and an EWMA of absolute deviations (updated with residuals clipped
 *    at a few scales, outliers not at all; raw 1 for a value far beyond the range seen;
 *    also against its hour of the day's level and scale once two weeks of timestamps show
 *    that hour's spread is narrower than the overall one, the larger raw score counting; in
 *    the second week, the young profile's view with a likelihood of its own), and
 *    on top the anomaly likelihood (Ahmad et al. 2017): the mean of the last LIK_SHORT raw
 *    scores against its long-run mean and variance, score = q / (q + 5) with q the
 *    -log10 of its Gaussian tail probability — in [0,1), never stuck at 1, 0.5 at a tail of
 *    1e-5; and the same for a slow view (an EWMA of the last ~LIK_SHORT values against the
 *    level, in its own spread), the larger likelihood counting, so that a sustained shift
 *    within the noise of single values is seen too; a series that has opened episodes more
 *    often than once per 1,000 values lately has its tail probabilities multiplied by that
 *    excess (alarm-rate calibration). A score at or above anomaly_threshold is
 *    an episode's onset, reported once, with a score in [anomaly_threshold, 1) that says how
 *    rarely the series has been in the eighth of its range its last values went, overall and
 *    at this hour of the last days (the onset's strength: a higher threshold keeps the onsets
 *    that go somewhere new); the episode's values that are themselves unusual carry
 *    FLAG_ANOMALY. The scale has two floors: the sensor's resolution (or the series' own
 *    quantum, the smallest step it has shown: a DHT11 steps by 1 °C), and min_relative_scale
 *    x |level| (sensors are accurate to about a percent of reading) — so
 *    a constant signal scores 0. A sustained shift is re-baselined after warmup_readings
 *    consecutive outliers in one direction; the level and scale left behind stay a second
 *    regime that a value is judged against when it fits it better (two-level signals:
 *    on/off, square waves). Values beyond a warn or critical limit are scored but not
 *    learned: an alarm is not the new normal, so the return to normal after a gas leak is
 *    not itself an anomaly.
 *  - rate of change (rate.c): change of a lightly smoothed value over rate_window, per
 *    minute, against the metric's max_rate_per_min.
 *  - flat line (in detect.c): flatline_count identical consecutive values mean a stuck sensor.
 *  - gap (gap.c, per device): a reading after more than gap_factor x the device's usual
 *    interval (and more than gap_min) is flagged.
 * Warm-up: for its first warmup_readings values a series learns, scores 0 and carries
 * FLAG_WARMUP; thresholds, rate and flat line apply from the first value (a gas leak at
 * start-up must not wait for statistics). */
#ifndef CANARY_DETECT_DETECT_H
#define CANARY_DETECT_DETECT_H

#include "core/metric.h"
#include "core/reading.h"

#include <stdbool.h>
#include <stdint.h>

/* Parameters shared by all series (the detect.* configuration). */
struct detect_params {
    uint32_t warmup_readings;  /* values before the score counts */
    double level_alpha;        /* EWMA weight of the level */
    double scale_alpha;        /* EWMA weight of the absolute-deviation scale */
    double anomaly_threshold;  /* score at or above which FLAG_ANOMALY is set */
    double z_half;             /* robust z that scores 0.5 */
    double min_relative_scale; /* the scale is at least this fraction of |level| */
    int64_t rate_window_ms;    /* rate-of-change window */
    double gap_factor;         /* gap: interval > gap_factor x usual ... */
    int64_t gap_min_ms;        /* ... and > gap_min_ms */
};

/* Fills p with the documented defaults (the same as the configuration's). */
void detect_params_default(struct detect_params *p);

/* Threshold crossing state with hysteresis. */
enum threshold_level { THRESHOLD_NONE = 0, THRESHOLD_WARN = 1, THRESHOLD_CRITICAL = 2 };

struct threshold_state {
    uint8_t high; /* enum threshold_level on the high side */
    uint8_t low;  /* enum threshold_level on the low side */
};

/* Updates the crossing state for value x and returns the flags (FLAG_WARN, FLAG_CRITICAL,
 * FLAG_LOW) of the worse side. */
uint32_t threshold_update(struct threshold_state *s, const struct metric_limits *l, double x);

/* Raw scores the anomaly likelihood averages (its short-term window). */
#define LIK_SHORT 10
/* Coarse parts of its range a series' values are counted in (robust.c: the onset's strength),
 * and the days before today whose hours it remembers for each part. */
#define COARSE_BINS 8
#define COARSE_DAYS 3

/* The anomaly likelihood of one raw score (robust.c): the mean of its last LIK_SHORT values
 * against the long-run distribution of that mean. */
struct likelihood_state {
    float recent[LIK_SHORT]; /* the last raw scores (a ring) */
    uint32_t head;           /* next slot of recent */
    uint32_t scored;         /* raw scores it has seen */
    double recent_sum;       /* sum of recent */
    double lt_mean, lt_var;  /* long-run mean and variance of the short-term mean */
};

/* Robust streaming level and scale of one series, and its anomaly likelihood (robust.c). */
struct robust_state {
    uint32_t n;                  /* values learned */
    int32_t run;                 /* consecutive outliers, signed by direction */
    double run_mean;             /* ... and their mean */
    double level;                /* EWMA level */
    double scale;                /* EWMA of |clipped residual| */
    double alt_level;            /* the regime before the last shift: its level ... */
    double alt_scale;            /* ... and scale (< 0: none yet) */
    double lo, hi;               /* range of the values learned */
    double smooth;               /* the slow view: EWMA of about the last LIK_SHORT values ... */
    double smooth_scale;         /* ... and EWMA of its |clipped distance| from the level */
    struct likelihood_state lik; /* of the value's raw score */
    struct likelihood_state slow_lik; /* of the slow view's raw score */
    struct likelihood_state hour_lik; /* of the young hour profile's raw score */
    uint32_t since_onset;             /* readings since the last episode's onset */
    float onset_rate;                 /* episode onsets per value, EWMA (alarm-rate calibration) */
    float likely;                     /* the last likelihood score, before the episode cap */
    /* The coarse range (the onset's strength, robust.c): a histogram of the values learned
     * over eighths of the range seen so far (re-binned when the range grows; halved when it
     * holds 2^20), and the eighths of the last LIK_SHORT values (a ring indexed by n). */
    float coarse_n[COARSE_BINS];
    /* ... and, with timestamps, per eighth and UTC hour, 4 bits (two hours a byte): whether a
     * value fell there in that hour today (bit 0) and on each of the 3 days before (bits 1-3);
     * the day bit 0 stands for (days since 1970, 0: no timestamps yet), the last value's hour. */
    int32_t coarse_day;
    /* The hour-of-day profile (seasonal context, robust.c): */
    int64_t first_ts_ms;                   /* timestamp of the first value learned (0 = none) */
    float hour_level[24];                  /* per UTC hour: EWMA of the values ... */
    float hour_scale[24];                  /* ... and of their absolute deviations from it */
    uint16_t hour_n[24];                   /* values each hour has learned (saturating) */
    uint8_t coarse_hours[COARSE_BINS][12]; /* (the coarse range's hours, above) */
    uint8_t coarse_recent[LIK_SHORT];      /* (the coarse range's recent eighths, above) */
    uint8_t coarse_hour;                   /* (the coarse range's last hour, above) */
    bool anomalous;  /* the last value is part of an anomaly episode (FLAG_ANOMALY) */
    bool in_episode; /* an episode's onset was reported and its likelihood is not back to usual */
    /* (The small members come last, so that the struct has no holes.) */
};

/* Scores x, measured at ts_ms (Unix ms; 0 = unknown: no hour-of-day profile), then learns
 * from it when learn is true. floor > 0 is the smallest scale (the sensor resolution).
 * Returns the score in [0,1] (capped within an anomaly episode: the uncapped one is left in
 * s->likely); *warm is true while warming up. */
double robust_update(struct robust_state *s, const struct detect_params *p, double floor, double x,
                     int64_t ts_ms, bool learn, bool *warm);

#define RATE_SLOTS 8

/* Rate of change of a lightly smoothed value over a time window. A ring entry's time is kept as
 * its age before last_ts_ms (at most the window, which the configuration caps at a day): an
 * entry older than the window can never be used again (time only moves on), so it is dropped,
 * and 32-bit ages lose nothing. The newest entry's slot is last_ts_ms / (window / RATE_SLOTS). */
struct rate_state {
    bool started;
    uint32_t slot_age_ms[RATE_SLOTS]; /* how long before last_ts_ms each entry was taken
                                         (RATE_EMPTY: none) */
    int64_t last_ts_ms;
    double smooth;                 /* time-constant smoothing of the value */
    double slot_value[RATE_SLOTS]; /* smooth value at that time */
    double per_min;                /* last measured rate, units per minute (NAN = none yet) */
};
#define RATE_EMPTY UINT32_MAX

/* Updates with (ts_ms, x) and returns the rate per minute over the window, or NAN while
 * less than half a window of history exists. Out-of-order timestamps are ignored. */
double rate_update(struct rate_state *s, const struct detect_params *p, int64_t ts_ms, double x);

/* Per-device stream timing. */
struct gap_state {
    uint32_t n;         /* intervals seen */
    int64_t last_ts_ms; /* newest reading's ts */
    double interval_ms; /* EWMA of the usual interval */
    uint32_t long_run;  /* consecutive flagged intervals */
};

/* Returns FLAG_GAP when the reading at ts_ms follows a gap, else 0, and learns the interval. */
uint32_t gap_update(struct gap_state *s, const struct detect_params *p, int64_t ts_ms);

/* Everything the detectors keep about one series. */
struct series_state {
    struct metric_limits limits; /* resolved for this device and metric */
    double resolution;           /* scale floor */
    bool binary;                 /* 0/1 signal: no statistical score */
    struct threshold_state threshold;
    uint32_t same_count; /* identical consecutive values, this one included */
    struct robust_state robust;
    struct rate_state rate;
    double last_value;
    double quantum; /* smallest step the series has shown (0 = none yet) */
    int64_t last_ts_ms;
};

/* Prepares a series for a metric with resolved limits. */
void series_init(struct series_state *s, const struct metric_info *m,
                 const struct metric_limits *limits);

/* Scores value v (as measured at ts_ms) against its series: fills v->score and v->flags
 * (FLAG_GAP is the caller's, from gap_update). */
void detect_value(struct series_state *s, const struct detect_params *p, struct metric_value *v,
                  int64_t ts_ms);

/* Scores the n values of one reading a device took at ts_ms — everything the detectors do
 * per reading: the device's stream timing learns the reading (gap_update), each value goes
 * through its own series (detect_value; series[k] is the series of values[k]) and, when the
 * reading followed a gap, carries FLAG_GAP. canaryd's shards and `canary replay` both call
 * this, so a replay scores exactly as canaryd does live. Returns how many values carry
 * FLAG_ANOMALY. */
uint32_t detect_reading(struct gap_state *gap, struct series_state *const *series,
                        const struct detect_params *p, struct metric_value *values, uint32_t n,
                        int64_t ts_ms);

#endif
