/* explain.h — alerts explained in plain language: what is happening, where, how bad, and what
 * to do about it.
 *
 * From an alert's context (device, place, metric, value, limit or normal range, trend,
 * anomaly score, related sensors) explain_alert() writes a title, a description, a suggested
 * action and a short form for SMS and voice (at most 160 characters), for example
 *
 *   title        Gas leak suspected in Kitchen
 *   short_text   Gas leak suspected in Kitchen: methane at 4,800 ppm and rising for 3
 *                minutes (normal 300 to 600 ppm). Ventilate, do not switch on electrics,
 *                shut the gas valve.
 *
 * and explain_all_clear() the message that tells people it is over. The text comes from
 * templates per alert kind (gas_leak, fire, threshold high/low, anomaly, model anomaly,
 * rate, sensor_fault, offline, tamper) and per metric family (gas, carbon monoxide, carbon
 * dioxide, smoke, temperature, humidity, flame, vibration, noise, ...), with numbers written
 * for people ("4,800 ppm", "24.1 °C"; never "nan"). It is deterministic, works offline,
 * allocates nothing and always produces text, whatever the context holds: missing numbers
 * are left out, and names from configuration or devices (which may hold quotes, newlines,
 * bidi controls, invalid UTF-8, or be very long) are flattened to one line and cut to
 * EXPLAIN_NAME_CHARS characters. The fields are plain UTF-8 text: escape them for the format
 * they go into (explain_render_html() does HTML; cJSON does JSON; the Twilio channel does
 * TwiML).
 *
 * An optional writer (an LLM client, later) can replace the template text: it gets the
 * context and the template's draft, never a secret, and whatever it returns is checked; when
 * it fails, times out or returns something unusable, the template text stands. */
#ifndef CANARY_NOTIFY_EXPLAIN_H
#define CANARY_NOTIFY_EXPLAIN_H

#include "decide/alert.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXPLAIN_TITLE_MAX       160 /* bytes, with the NUL */
#define EXPLAIN_DESCRIPTION_MAX 800
#define EXPLAIN_ACTION_MAX      400
#define EXPLAIN_SHORT_CHARS     160 /* characters (code points) of the short form */
#define EXPLAIN_SHORT_MAX       (EXPLAIN_SHORT_CHARS * 4 + 1)
#define EXPLAIN_NAME_CHARS      48 /* device names and places are cut to this many */
#define EXPLAIN_MAX_RELATED     6  /* related readings quoted in a description */

/* A current reading of another sensor of the device (or nearby). */
struct explain_related {
    const char *metric; /* "temperature_c" */
    double value;       /* NAN = unknown (left out) */
};

/* What explain knows about an alert. Strings are borrowed and may be NULL; numbers are NAN
 * (times 0) when unknown. explain_context_init() sets every field to "unknown". */
struct explain_context {
    const char *device_id;   /* "kitchen-1" */
    const char *device_name; /* "Kitchen sensor" */
    const char *location;    /* "Kitchen" */
    const char *device_kind; /* "kitchen" (informative) */
    const char *metric;      /* "gas_ppm", "model:<name>", or "device" (fire, offline) */
    const char *gas;         /* what the gas sensor senses, "methane" (NULL: "gas") */
    enum alert_kind kind;
    enum alert_severity severity;
    double value;             /* the current value of the metric */
    double peak;              /* the most extreme value while open (all-clear) */
    double limit;             /* the limit crossed (threshold, gas, rate: per minute) */
    double normal_level;      /* the usual level (streaming detector's level) */
    double normal_scale;      /* its usual spread: normal is level +/- scale */
    double rate_per_min;      /* change per minute over the last minutes */
    int64_t trend_ms;         /* how long it has been moving that way; 0 = unknown */
    double anomaly_score;     /* 0..1 (streaming score, or the model's) */
    double anomaly_threshold; /* the score from which it alerts */
    unsigned stuck_count;     /* sensor_fault: identical readings in a row */
    const struct explain_related *related;
    size_t n_related;
    int64_t opened_ms;       /* Unix ms */
    int64_t now_ms;          /* Unix ms: "for 12 minutes"; 0 = no durations */
    int64_t last_seen_ms;    /* offline: last reading */
    int64_t resolved_ms;     /* all-clear */
    const char *resolved_by; /* all-clear: "canary" (automatic) or a person */
    const char *detail;      /* the detector's own sentence (tamper: the reason) */
    int utc_offset_min;      /* times are written in UTC plus this offset */
};

enum explain_source {
    EXPLAIN_SOURCE_TEMPLATE = 0,
    EXPLAIN_SOURCE_WRITER, /* a writer (LLM) produced the text */
};

/* The texts. Each field is NUL-terminated, one line of valid UTF-8 without control
 * characters; short_text has at most EXPLAIN_SHORT_CHARS characters. */
struct explanation {
    char title[EXPLAIN_TITLE_MAX];
    char description[EXPLAIN_DESCRIPTION_MAX];
    char action[EXPLAIN_ACTION_MAX];
    char short_text[EXPLAIN_SHORT_MAX];
    enum explain_source source;
};

/* Sets every field to "unknown": NULL strings, NAN numbers, 0 times, kind threshold,
 * severity info. */
void explain_context_init(struct explain_context *ctx);

/* Fills what a stored alert says (device, metric, kind, severity, value, peak, limit, opened,
 * resolved, detail = its message) into ctx, which must have been initialised. The context
 * borrows a's strings. */
void explain_context_from_alert(struct explain_context *ctx, const struct alert *a);

/* Writes the explanation of an open alert. Cannot fail. */
void explain_alert(const struct explain_context *ctx, struct explanation *out);

/* Writes the all-clear of a resolved alert. Cannot fail. */
void explain_all_clear(const struct explain_context *ctx, struct explanation *out);

/* A writer: given the context and the template's draft, fills *out and returns 0, or returns
 * non-zero to keep the draft. It must return within timeout_ms (explain does not run it on
 * another thread) and must not keep pointers into ctx. */
typedef int (*explain_writer_fn)(void *arg, const struct explain_context *ctx, bool all_clear,
                                 const struct explanation *draft, struct explanation *out,
                                 unsigned timeout_ms);

/* explain_alert() or explain_all_clear(), then the writer when not NULL; the writer's text is
 * used only if it passes explain_check() (out->source says which one it is). */
void explain_with(const struct explain_context *ctx, bool all_clear, explain_writer_fn writer,
                  void *arg, unsigned timeout_ms, struct explanation *out);

/* True when every field is NUL-terminated within its size, non-empty, valid UTF-8 without
 * control characters, and the short form is within EXPLAIN_SHORT_CHARS characters. */
bool explain_check(const struct explanation *e);

/* Formats a number for people: thousands separators, at most max_decimals decimals (fewer as
 * the number grows: none from 100 up, at most one from 10 up), no trailing zeros, "unknown"
 * for NAN or infinity, independent of the locale. Returns the length written (snprintf-like,
 * truncated to fit len). */
size_t explain_format_number(char *buf, size_t len, double v, int max_decimals);

/* A metric's value with its unit and the catalogue's resolution: "4,800 ppm", "24.1 °C",
 * "55%", "7.12 mm/s"; binary metrics in words ("detected", "open"). */
size_t explain_format_value(char *buf, size_t len, const char *metric, double v);

/* A duration: "45 seconds", "1 minute", "12 minutes", "2 hours 5 minutes", "3 days". */
size_t explain_format_duration(char *buf, size_t len, int64_t ms);

/* The body of an e-mail: plain text (title, description, what to do, the facts) and HTML
 * (the same, every field escaped). Return the length of the whole text (snprintf-like: when
 * it is >= len, the output was cut at a character boundary). */
size_t explain_render_text(const struct explanation *e, const struct explain_context *ctx,
                           bool all_clear, char *buf, size_t len);
size_t explain_render_html(const struct explanation *e, const struct explain_context *ctx,
                           bool all_clear, char *buf, size_t len);

#endif
