/* detect.c — one value through every series detector (see detect.h). */
#include "detect/detect.h"

#include <math.h>
#include <string.h>

void detect_params_default(struct detect_params *p)
{
    p->warmup_readings = 30;
    p->level_alpha = 0.05;
    p->scale_alpha = 0.05;
    p->anomaly_threshold = 0.9;
    p->z_half = 4;
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

void detect_value(struct series_state *s, const struct detect_params *p, struct metric_value *v,
                  int64_t ts_ms)
{
    double x = v->value;
    uint32_t flags = threshold_update(&s->threshold, &s->limits, x);

    if (!s->binary) {
        /* Unknown metrics have no resolution: use a tiny relative floor instead. */
        double floor = s->resolution > 0 ? s->resolution : fmax(1e-9, 1e-6 * fabs(x));
        bool warm;
        bool alarm = flags & (FLAG_WARN | FLAG_CRITICAL);
        double score = robust_update(&s->robust, p, floor, x, !alarm, &warm);
        v->score = (float)score;
        if (warm)
            flags |= FLAG_WARMUP;
        else if (score >= p->anomaly_threshold)
            flags |= FLAG_ANOMALY;
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
    v->flags = flags;
}
