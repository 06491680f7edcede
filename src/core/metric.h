/* metric.h — the catalogue of metrics canary knows, and the rules for metric names.
 *
 * A metric name is snake_case with a unit suffix (gas_ppm, temperature_c). Known metrics
 * carry a unit, a plausible physical range (readings outside it are rejected by verify),
 * the sensor resolution (the floor of the anomaly detector's scale) and default alert
 * limits. Unknown metrics are accepted, stored and scored generically: no range check
 * beyond finiteness, no thresholds. Every default here is documented in docs/DETECTORS.md
 * with its source; configuration can override the limits per metric and per device. */
#ifndef CANARY_CORE_METRIC_H
#define CANARY_CORE_METRIC_H

#include <stdbool.h>
#include <stddef.h>

/* Alert limits of one metric. NAN switches a limit off. */
struct metric_limits {
    double warn_high, crit_high; /* at or above: warn / critical */
    double warn_low, crit_low;   /* at or below: warn / critical */
    double hysteresis;           /* a threshold clears only this far back inside it */
    double max_rate_per_min;     /* |change per minute| of the smoothed value; NAN = off */
    unsigned flatline_count;     /* identical consecutive values that mean "stuck"; 0 = off */
};

struct metric_info {
    const char *name;  /* "gas_ppm" */
    const char *unit;  /* display unit, "ppm" */
    const char *label; /* human name, "Gas" */
    double min, max;   /* plausible range, inclusive */
    double resolution; /* smallest step the typical sensor reports (> 0) */
    bool binary;       /* 0/1 signal: flame, motion */
    struct metric_limits limits;
};

/* Returns the catalogue entry for a known metric, or NULL for an unknown one. */
const struct metric_info *metric_lookup(const char *name);

/* Returns the catalogue entry for any metric: known ones from the catalogue, unknown ones
 * a generic entry (name "", unit "", unbounded range, no limits). Never NULL. */
const struct metric_info *metric_info_or_generic(const char *name);

/* Number of catalogue entries, and entry i (for documentation and --print-defaults). */
size_t metric_catalogue_size(void);
const struct metric_info *metric_catalogue_entry(size_t i);

/* True when s[0..len) is a valid metric name: 1..max_len bytes of [a-z0-9_], starting
 * with a letter. */
bool metric_name_valid(const char *s, size_t len, size_t max_len);

/* True when s[0..len) is a valid device id: 1..max_len bytes of [A-Za-z0-9._:-], starting
 * with a letter or digit. Device ids become MQTT topic levels and URL path segments, so
 * '/', '+', '#', spaces and control characters are excluded. */
bool device_id_valid(const char *s, size_t len, size_t max_len);

#endif
