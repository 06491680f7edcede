/* detect_config.c — detector parameters and series from canaryd's configuration (see
 * detect_config.h). */
#include "detect/detect_config.h"

#include "core/metric.h"

void detect_params_from_config(const struct canary_config *cfg, struct detect_params *p)
{
    p->warmup_readings = cfg->detect.warmup_readings;
    p->level_alpha = cfg->detect.level_alpha;
    p->scale_alpha = cfg->detect.scale_alpha;
    p->anomaly_threshold = cfg->detect.anomaly_threshold;
    p->z_half = cfg->detect.z_half;
    p->min_relative_scale = cfg->detect.min_relative_scale;
    p->rate_window_ms = (int64_t)cfg->detect.rate_window_s * 1000;
    p->gap_factor = cfg->detect.gap_factor;
    p->gap_min_ms = (int64_t)cfg->detect.gap_min_s * 1000;
}

void detect_series_setup(struct series_state *s, const struct canary_config *cfg,
                         const char *device, const char *metric)
{
    struct metric_limits limits;
    config_metric_limits(cfg, device, metric, &limits);
    series_init(s, metric_info_or_generic(metric), &limits);
}
