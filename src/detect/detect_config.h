/* detect_config.h — the detectors as canaryd's configuration sets them up.
 *
 * The bridge between core/config.h and the pure detectors of detect.h: the detect.* keys
 * become struct detect_params, and a series is prepared for a (device, metric) pair from
 * the metric catalogue (or the generic entry for an unknown metric) and the limits the
 * configuration resolves for it ([metric.M], then [device.D.M]). canaryd's shards and
 * `canary replay` both go through these two functions, so a replayed file is scored with
 * exactly the parameters and limits canaryd would use live. No I/O, no allocation. */
#ifndef CANARY_DETECT_DETECT_CONFIG_H
#define CANARY_DETECT_DETECT_CONFIG_H

#include "core/config.h"
#include "detect/detect.h"

/* Fills p from cfg's detect.* keys (seconds become milliseconds). Cannot fail. */
void detect_params_from_config(const struct canary_config *cfg, struct detect_params *p);

/* Prepares s for metric on device: the catalogue entry (metric_info_or_generic) and the
 * limits config_metric_limits resolves. device may be NULL (then only [metric.M] overrides
 * apply). Cannot fail; s need not be initialised. */
void detect_series_setup(struct series_state *s, const struct canary_config *cfg,
                         const char *device, const char *metric);

#endif
