/* detect.c — one value through every series detector (see detect.h). */
#include "detect/detect.h"

#include <math.h>
#include <string.h>

void detect_params_default(struct detect_params *p)
{
    p->warmup_readings = 30;
    p->level_alpha = 0.005;
    p->scale_alpha = 0.002;
    p->anomaly_threshold = 0.5;
    p->z_half = 6;
    p->min_relative_scale = 0.01;
    p->rate_window_ms = 60000;
    p->gap_factor = 5;
    p->gap_min_ms = 30000;
}

void series_init(struct series_state *s, const struct metric_info *m,
                 const struct metric_limits *limits)
{
    memset(s, 0, sizeof *s);
    s->limits = *limits;
    s->resolution = m->resolution;
    s->binary = m->binary;
    s->rate.per_min = NAN;
}

/* The smallest step between consecutive distinct values the series has shown: the sensor's
 * real quantum. Only steps a sensor could plausibly quantise to count (at most ten
 * resolution units, or a tenth of the level): a leak jumping from a flat zero is not a
 * quantum. */
static void learn_quantum(struct series_state *s, double x)
{
    if (s->same_count == 0 || x == s->last_value)
        return;
    double step = fabs(x - s->last_value);
    double plausible = fmax(10 * s->resolution, 0.1 * fabs(s->last_value));
    if (step <= plausible && (s->quantum == 0 || step < s->quantum))
        s->quantum = step;
}

void detect_value(struct series_state *s, const struct detect_params *p, struct metric_value *v,
                  int64_t ts_ms)
{

    double x = v->value;
    uint32_t flags = threshold_update(&s->threshold, &s->limits, x);

    if (!s->binary) {
        /* Unknown metrics have no resolution: use a tiny relative floor instead. The series'
         * own quantum (a DHT11 steps by 1 °C where the catalogue says 0.1) raises it. */
        double floor = s->resolution > 0 ? s->resolution : fmax(1e-9, 1e-6 * fabs(x));
        learn_quantum(s, x);
        if (s->quantum > floor)
            floor = s->quantum;

        bool warm;
        bool alarm = flags & (FLAG_WARN | FLAG_CRITICAL);
        double score = robust_update(&s->robust, p, floor, x, ts_ms, !alarm, &warm);
        v->score = (float)score;
        if (warm)
            flags |= FLAG_WARMUP;
        else if (s->robust.anomalous)
            flags |= FLAG_ANOMALY; /* the readings of the episode, not only its onset */
    } else {
        v->score = 0;
    }

    double rate = rate_update(&s->rate, p, ts_ms, x);
    if (!isnan(rate) && !isnan(s->limits.max_rate_per_min) &&
        fabs(rate) > s->limits.max_rate_per_min)
        flags |= FLAG_RATE;

    if (s->same_count > 0 && x == s->last_value)
        s->same_count++;
    else
        s->same_count = 1;
    if (s->limits.flatline_count > 0 && s->same_count >= s->limits.flatline_count)
        flags |= FLAG_FLATLINE;

    s->last_value = x;
    s->last_ts_ms = ts_ms;
    /* The marks of other stages (unsigned at the edge, tamper, quarantine) stay. */
    v->flags = (v->flags & (FLAG_UNSIGNED | FLAG_TAMPER | FLAG_QUARANTINED)) | flags;
}

uint32_t detect_reading(struct gap_state *gap, struct series_state *const *series,
                        const struct detect_params *p, struct metric_value *values, uint32_t n,
                        int64_t ts_ms)
{
    uint32_t gap_flag = gap_update(gap, p, ts_ms);
    uint32_t anomalies = 0;
    for (uint32_t k = 0; k < n; k++) {
        detect_value(series[k], p, &values[k], ts_ms);
        values[k].flags |= gap_flag;
        anomalies += (values[k].flags & FLAG_ANOMALY) != 0;
    }
    return anomalies;
}
