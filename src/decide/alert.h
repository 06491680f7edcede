/* alert.h — what an alert is: kinds, severities, lifecycle states and the stored record.
 *
 * An alert is identified by (device, metric or "device", kind) while it lives; its id is
 * assigned when it opens. Lifecycle (ARCHITECTURE.md): open -> acknowledged -> resolved,
 * with re-opening of the same alert when its condition returns within the re-open window.
 * Every transition is recorded as an alert_event with who and when. */
#ifndef CANARY_DECIDE_ALERT_H
#define CANARY_DECIDE_ALERT_H

#include "core/reading.h"

#include <stdint.h>

enum alert_severity {
    SEVERITY_INFO = 0,
    SEVERITY_LOW,
    SEVERITY_MEDIUM,
    SEVERITY_HIGH,
    SEVERITY_CRITICAL,
};
#define SEVERITY_COUNT 5

enum alert_kind {
    ALERT_KIND_THRESHOLD = 0, /* a metric beyond its warn/critical limit */
    ALERT_KIND_ANOMALY,       /* the streaming detector finds the value unusual */
    ALERT_KIND_RATE,          /* a metric changing faster than its limit */
    ALERT_KIND_SENSOR_FAULT,  /* a stuck (flat-line) sensor */
    ALERT_KIND_GAS_LEAK,      /* a gas metric beyond its limits */
    ALERT_KIND_FIRE,          /* flame with rising or high temperature */
    ALERT_KIND_OFFLINE,       /* the device stopped sending */
    ALERT_KIND_TAMPER,        /* security: forged, replayed or implausible data */
};
#define ALERT_KIND_COUNT 8

enum alert_state {
    ALERT_STATE_OPEN = 0,
    ALERT_STATE_ACKNOWLEDGED,
    ALERT_STATE_RESOLVED,
};

enum alert_action {
    ALERT_ACTION_NONE = 0,
    ALERT_ACTION_OPENED,
    ALERT_ACTION_ESCALATED, /* severity rose (an acknowledged alert becomes open again) */
    ALERT_ACTION_REOPENED,  /* condition back within the re-open window */
    ALERT_ACTION_ACKNOWLEDGED,
    ALERT_ACTION_RESOLVED,
    ALERT_ACTION_COMMENTED,
    ALERT_ACTION_UPDATED, /* value or peak changed: the record is rewritten, no event */
};

#define ALERT_ACTOR_LEN     64
#define ALERT_MESSAGE_LEN   320
#define ALERT_METRIC_DEVICE "device" /* the metric of device-level alerts (fire, offline) */

/* The stored record of an alert. */
struct alert {
    uint64_t id; /* 0 until opened */
    char device[READING_ID_BUF];
    char metric[READING_METRIC_BUF]; /* a metric name, or "device" */
    enum alert_kind kind;
    enum alert_severity severity; /* the highest reached */
    enum alert_state state;
    int64_t opened_ms;
    int64_t updated_ms;
    int64_t acknowledged_ms; /* 0 = never */
    int64_t resolved_ms;     /* 0 = not resolved */
    char acknowledged_by[ALERT_ACTOR_LEN];
    char resolved_by[ALERT_ACTOR_LEN];
    double value; /* latest value of the condition */
    double peak;  /* most extreme value while open */
    double limit; /* the limit crossed, NAN if none */
    char message[ALERT_MESSAGE_LEN];
};

/* One transition of an alert. */
struct alert_event {
    uint64_t alert_id;
    int64_t ts_ms;
    enum alert_action action;
    enum alert_severity severity;
    char actor[ALERT_ACTOR_LEN]; /* "canary" for automatic transitions */
    char note[ALERT_MESSAGE_LEN];
};

const char *alert_severity_name(enum alert_severity s);
const char *alert_kind_name(enum alert_kind k);
const char *alert_state_name(enum alert_state s);
const char *alert_action_name(enum alert_action a);

/* Parse the names above. Return 0, or CANARY_EINVAL for an unknown name. */
int alert_severity_parse(const char *s, enum alert_severity *out);
int alert_kind_parse(const char *s, enum alert_kind *out);
int alert_state_parse(const char *s, enum alert_state *out);
int alert_action_parse(const char *s, enum alert_action *out);

#endif
