/* decide.h — the decide stage: from a scored reading to alert transitions.
 *
 * Conditions per value (metric M of device D), from the flags the detectors set:
 *  - beyond a limit: kind gas_leak for gas metrics (gas_ppm, co_ppm, smoke_ppm; warn is
 *    high, critical is critical) and threshold for the others (warn is medium, critical
 *    is high);
 *  - anomaly (the streaming score) while the value is within its limits — beyond them the
 *    threshold alert already speaks for it — with the configured anomaly severity;
 *  - rate: changing faster than the metric's limit (medium);
 *  - sensor_fault: a flat line (medium).
 * Per device: fire (critical) when the flame sensor sees flame and the temperature is
 * rising beyond its rate limit or above its warn level; offline (configured severity)
 * when the device stops sending, resolved by its next reading.
 * Each condition drives one alert_fsm (alert_fsm.h) per (device, metric, kind); a
 * machine exists only while its alert is pending, open, or recently resolved.
 *
 * Pure: no I/O, no clock reads. Times come from the readings (their ts) and from the
 * caller, so replaying history gives the alerts it would have given live. Transitions are
 * handed to the caller's emit callback; the caller stores them. */
#ifndef CANARY_DECIDE_DECIDE_H
#define CANARY_DECIDE_DECIDE_H

#include "decide/alert.h"
#include "decide/alert_fsm.h"
#include "detect/detect.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct decide_params {
    struct alert_fsm_params fsm; /* hold-off, auto-resolve, re-open window */
    enum alert_severity anomaly_severity;
    bool offline_alerts; /* raise offline alerts at all */
    enum alert_severity offline_severity;
    bool link_lost_alerts; /* a gas-sensing device dropping off MQTT raises one at once */
    enum alert_severity link_lost_severity;
};

/* One metric of a device, as its owner keeps it: the name and the detectors' state. */
struct device_series {
    char metric[READING_METRIC_BUF];
    struct series_state state;
};

/* The alert machines of one device. */
struct decide_device {
    struct alert_fsm *slots; /* heap array */
    uint32_t n;
    uint32_t cap;
    bool hold_open; /* the device is quarantined (tamper/): its own readings do not resolve
                       its open alerts (offline aside), so no "all clear" rests on doubted
                       data; new alerts still open, a person can still resolve */
};

/* Receives every transition: the alert after it, and its event (NULL for
 * ALERT_ACTION_UPDATED, which only refreshes the record). */
typedef void (*decide_emit_fn)(void *arg, const struct alert *a, const struct alert_event *ev);

struct decide_ctx {
    const struct decide_params *params;
    uint64_t (*next_alert_id)(void *arg); /* a new unique alert id */
    void *id_arg;
    decide_emit_fn emit;
    void *emit_arg;
};

/* Evaluates a scored reading of device `device`, whose series (all of the device's, the
 * reading's included) are series[0..n_series). value_series, when not NULL, gives the
 * series of each value of the reading (parallel to r->values; the caller usually has them
 * at hand), saving a lookup by name per value. Returns 0, or CANARY_ENOMEM when a new

 * alert machine could not be allocated (that condition is then evaluated again on the
 * device's next reading). */
int decide_reading(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                   const struct reading *r, const struct device_series *series, size_t n_series,
                   const struct device_series *const *value_series);

/* The device went offline (offline = true, last heard at last_seen_ms) or came back. */
int decide_offline(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                   bool offline, int64_t last_seen_ms, int64_t now_ms);

/* The device dropped off its MQTT connection unexpectedly (the broker published its last
 * will) at now_ms, last heard at last_seen_ms. If it has a gas sensor (one of its series is
 * a gas metric) and link_lost_alerts is on, its offline alert opens at once with
 * link_lost_severity (else the heartbeat timeout decides, as for any device). Resolved,
 * like every offline alert, by its next reading. */
int decide_link_lost(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                     const struct device_series *series, size_t n_series, int64_t last_seen_ms,
                     int64_t now_ms);

/* A model's verdict on one reading of the device (models/model_live.h). */
#define DECIDE_MODEL_PREFIX "model:" /* alert metric of a model's alerts: "model:<name>" */
struct decide_model_verdict {
    const char *model; /* its name */
    bool above;        /* score >= threshold */
    double score, threshold;
    unsigned consecutive; /* readings at or above before the alert opens */
    enum alert_severity severity;
    const char *detail; /* the reading's values of the model's metrics, for people */
};

/* Drives the model's anomaly alert (device, "model:<name>", anomaly): it opens after
 * `consecutive` readings in a row at or above the threshold and resolves, like every
 * alert, once the scores stay below it for alerts.resolve_after_s. Returns 0 or
 * CANARY_ENOMEM. */
int decide_model(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                 const struct decide_model_verdict *v, int64_t ts_ms);

/* A gas classifier's verdict on one reading of the device (models/model_live.h). */
struct decide_gas_verdict {
    const char *model;      /* its name */
    enum alert_kind kind;   /* ALERT_KIND_GAS_LEAK or ALERT_KIND_FIRE */
    bool above;             /* a dangerous class at or above the probability level */
    const char *class_name; /* the most probable dangerous class */
    double probability;     /* its probability */
    double level;           /* the configured level */
    unsigned consecutive;   /* readings above before the alert opens */
    const char *detail;     /* the reading's values of the model's inputs, for people */
};

/* Drives the model's alert (device, "model:<name>", kind) at severity critical: it opens
 * after `consecutive` readings in a row whose most probable dangerous class reaches the
 * level, with a message naming the class and its probability, and resolves like every alert
 * once no dangerous class reaches it for alerts.resolve_after_s. Returns 0 or
 * CANARY_ENOMEM. */
int decide_gas(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
               const struct decide_gas_verdict *v, int64_t ts_ms);

/* The device's trust (tamper/tamper.h): while quarantined, its tamper alert (device,
 * "device", tamper) is open at `severity` with the explanation as its message (a new
 * explanation rewrites the message); it never resolves by itself. decide_tamper_release
 * resolves it as `actor` when a person releases the device (no alert: nothing happens).
 * Return 0 or CANARY_ENOMEM. */
int decide_tamper(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                  enum alert_severity severity, const char *explanation, int64_t ts_ms);
int decide_tamper_release(const struct decide_ctx *ctx, struct decide_device *dd, const char *actor,
                          const char *comment, int64_t now_ms);

/* A person acknowledges or resolves alert `id` of this device, with an optional comment.
 * Return 0, CANARY_ENOTFOUND when the device has no live machine with that id, or
 * CANARY_ECONFLICT when the alert's state does not allow it. */
int decide_acknowledge(const struct decide_ctx *ctx, struct decide_device *dd, uint64_t id,
                       const char *actor, const char *comment, int64_t now_ms);
int decide_resolve(const struct decide_ctx *ctx, struct decide_device *dd, uint64_t id,
                   const char *actor, const char *comment, int64_t now_ms);

/* Re-creates the machine of a stored alert (open, acknowledged, or resolved within the
 * re-open window) when canaryd starts. Returns 0 or CANARY_ENOMEM. */
int decide_restore(struct decide_device *dd, const struct alert *a, int64_t now_ms);

/* Drops machines with nothing left to do (resolved longer ago than the re-open window). */
void decide_expire(const struct decide_ctx *ctx, struct decide_device *dd, int64_t now_ms);

/* Frees the device's machines. */
void decide_device_free(struct decide_device *dd);

#endif
