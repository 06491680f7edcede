/* ingest.h — turning request bodies into readings: the parse stage.
 *
 * Two wire formats feed the same struct reading: the JSON of ARCHITECTURE.md (one reading
 * object, or a batch as an array of them) and InfluxDB line protocol (one reading a line).
 * Parsing is pure: no I/O, no globals, no threads; everything it allocates comes from the
 * batch's arena and is freed by ingest_batch_free().
 *
 * Errors come at two levels:
 *  - a body that cannot be read at all (not UTF-8, malformed JSON, wrong top-level type,
 *    too many readings) makes the parse function return an error and fill *fatal; nothing
 *    of it is used;
 *  - a reading that is readable but wrong (a missing device, a string where a number
 *    belongs, an unknown field) gets status READING_INVALID and an error that names the
 *    field and the reason; the other readings of the batch go on.
 * Field names in errors use dotted paths: "device", "seq", "ts", "values.gas_ppm". */
#ifndef CANARY_INGEST_INGEST_H
#define CANARY_INGEST_INGEST_H

#include "core/arena.h"
#include "core/reading.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Size limits a parser enforces (from the ingest.* configuration). */
struct ingest_limits {
    unsigned max_batch;      /* readings in one body */
    unsigned max_metrics;    /* values in one reading */
    unsigned max_device_len; /* bytes in a device id */
    unsigned max_metric_len; /* bytes in a metric name */
    bool strict_fields;      /* unknown fields make a reading invalid */
};

/* What became of one reading. */
enum reading_status {
    READING_PENDING = 0,    /* valid so far; still in the pipeline */
    READING_ACCEPTED,       /* stored (durable) */
    READING_INVALID,        /* rejected by parse or verify; see the error */
    READING_DUPLICATE,      /* this device already sent this seq (or, without seq, this ts) */
    READING_UNKNOWN_DEVICE, /* auto_register is off and the device is not registered, or the
                               device limit is reached */
    READING_UNAVAILABLE,    /* canaryd is stopping and the store refuses writes: retry later */
};

/* Returns "pending", "accepted", "invalid", "duplicate", "unknown_device" or "unavailable". */
const char *reading_status_name(enum reading_status s);

struct reading_error {
    const char *field;  /* dotted path of the offending field; "" for the reading as a whole */
    const char *reason; /* a sentence a user can act on */
};

/* A fatal error about the whole body. */
struct ingest_fatal {
    int http_status; /* 400, or 413 when a size limit was exceeded */
    char field[96];  /* "" for the body as a whole, or the limit's config key */
    char reason[256];
};

/* The readings of one request, with one status and error per reading. */
struct ingest_batch {
    struct arena arena;           /* owns every pointer below */
    struct reading *readings;     /* n entries, in body order */
    enum reading_status *status;  /* n entries */
    struct reading_error *errors; /* n entries; meaningful when status is not ACCEPTED */
    size_t n;
    bool is_array; /* the body was a batch (JSON array or several lines) */
};

/* Prepares an empty batch. */
void ingest_batch_init(struct ingest_batch *b);

/* Frees everything the batch owns. */
void ingest_batch_free(struct ingest_batch *b);

/* Sizes the batch's memory blocks for a body of body_len bytes. For parsers, before they
 * allocate. */
void ingest_batch_size_for(struct ingest_batch *b, size_t body_len);

/* Allocates the per-reading arrays
 for n readings (zeroed, status READING_PENDING) and sets
 * b->n = n. For parsers. Returns 0 or CANARY_ENOMEM. */
int ingest_batch_reserve(struct ingest_batch *b, size_t n);

/* Marks reading i invalid with a field path and a printf-style reason (copied into the
 * batch's arena). */
void ingest_batch_reject(struct ingest_batch *b, size_t i, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sets `flag` (enum reading_flag) on every value of every reading of the batch: a mark the
 * edge puts on (FLAG_UNSIGNED) that the detect stage keeps. */
void ingest_batch_flag_all(struct ingest_batch *b, uint32_t flag);

/* Parses a JSON body (one reading object, or an array of them). body[len] need not be NUL.
 * recv_ms stamps every reading's recv_ms, and ts_ms where the device sent no ts.
 * Returns 0 (the batch holds n >= 1 readings, some perhaps invalid), CANARY_EINVAL or
 * CANARY_ELIMIT with *fatal filled, or CANARY_ENOMEM. */
int ingest_parse_json(const char *body, size_t len, const struct ingest_limits *lim,
                      int64_t recv_ms, struct ingest_batch *out, struct ingest_fatal *fatal);

/* Timestamp precision of line protocol, as InfluxDB's ?precision= parameter. */
enum line_precision {
    LINE_PRECISION_NS = 0,
    LINE_PRECISION_US,
    LINE_PRECISION_MS,
    LINE_PRECISION_S,
};

/* Parses "ns", "us", "ms" or "s". Returns 0 or CANARY_EINVAL. */
int line_precision_parse(const char *s, enum line_precision *out);

/* Parses InfluxDB line protocol
 * (https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/):
 *   <measurement>[,<tag>=<v>...] <field>=<v>[,<field>=<v>...] [<timestamp>]
 * one reading per non-empty line ('#' starts a comment line). The device id is the tag
 * "device" (required); other tags and the measurement name are ignored. Fields are metric
 * values: floats, integers (12i), unsigned (12u) and booleans (1/0); the integer field
 * "seq" is the reading's seq (optional: without it, duplicates are recognised by
 * timestamp). String fields make a reading invalid when strict_fields is set and are
 * skipped otherwise. Errors name the line: field "line 3: values.gas_ppm".
 * Returns as ingest_parse_json(). */
int ingest_parse_line(const char *body, size_t len, const struct ingest_limits *lim,
                      enum line_precision precision, int64_t recv_ms, struct ingest_batch *out,
                      struct ingest_fatal *fatal);

#endif
