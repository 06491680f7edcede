/* reading.h — one message from one device: the struct every stage passes on.
 *
 * Wire form (ARCHITECTURE.md): {"device":"kitchen-1","seq":1042,"ts":1763676000123,
 * "values":{"gas_ppm":412.5,"temperature_c":24.1}}. After parsing, the strings point into
 * the arena of the request that carried the reading; the reading lives as long as that
 * request. The detect stage fills score and flags of each value and the reading's flags. */
#ifndef CANARY_CORE_READING_H
#define CANARY_CORE_READING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard ceilings; the configured limits (ingest.max_metrics, ingest.max_device_len, ...)
 * must stay at or below them. */
#define READING_MAX_VALUES     256
#define READING_MAX_ID_LEN     128
#define READING_MAX_METRIC_LEN 64
#define READING_ID_BUF         (READING_MAX_ID_LEN + 1)
#define READING_METRIC_BUF     (READING_MAX_METRIC_LEN + 1)

/* Flags set by the detectors on a value (and, for FLAG_GAP, on every value of a reading).
 * Stored with the reading; names in reading_flag_name(). */
enum reading_flag {
    FLAG_WARMUP = 1u << 0,       /* the streaming detector is still learning this series */
    FLAG_WARN = 1u << 1,         /* beyond the warn threshold (high or low) */
    FLAG_CRITICAL = 1u << 2,     /* beyond the critical threshold (high or low) */
    FLAG_ANOMALY = 1u << 3,      /* streaming anomaly score at or above its threshold */
    FLAG_RATE = 1u << 4,         /* rate of change beyond the metric's limit */
    FLAG_FLATLINE = 1u << 5,     /* the value has not changed for too long: stuck sensor */
    FLAG_GAP = 1u << 6,          /* the reading came after a gap in the device's stream */
    FLAG_LOW = 1u << 7,          /* with WARN/CRITICAL: the low threshold, not the high one */
    FLAG_MODEL = 1u << 8,        /* a model (Isolation Forest) scores the reading at or above its
                                    threshold, or a gas classifier finds a dangerous class at or
                                    above its level (on the values of the metrics the model uses) */
    FLAG_UNSIGNED = 1u << 9,     /* accepted without signature or token under
                                    security.unsigned = flag (every value of the reading) */
    FLAG_TAMPER = 1u << 10,      /* a tamper check doubts this value (implausible, frozen,
                                    replayed window, inconsistent with its neighbours...) */
    FLAG_QUARANTINED = 1u << 11, /* the device was quarantined when the reading arrived
                                    (every value of the reading) */
};
#define READING_FLAG_COUNT 12

/* Returns the snake_case name of a single flag bit ("anomaly"), or NULL for an unknown bit. */
const char *reading_flag_name(uint32_t bit);

struct metric_value {
    const char *name; /* snake_case metric name with unit suffix, NUL-terminated */
    double value;     /* finite */
    float score;      /* streaming anomaly score in [0,1], filled by detect */
    uint32_t flags;   /* enum reading_flag bits, filled by detect */
};

struct reading {
    const char *device; /* device id, NUL-terminated */
    uint64_t seq;       /* per-device message counter (0 when has_seq is false) */
    int64_t ts_ms;      /* measurement time, Unix ms (receive time if the device sent none) */
    int64_t recv_ms;    /* time canaryd received the message, Unix ms */
    struct metric_value *values; /* n_values entries, metric names unique */
    uint32_t n_values;
    bool has_seq; /* false only for line protocol without a seq field */
    bool has_ts;  /* false when the device sent no timestamp */
};

#endif
