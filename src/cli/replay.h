/* replay.h — rows of a CSV file, in order, through the detectors canaryd runs live.
 *
 * What `canary replay` and the NAB benchmark (bench/bench_nab.c) share. A file is one device;
 * each of its value columns is one metric of that device; each row is one reading taken at
 * the row's timestamp. Rows go, in file order, through detect_reading() (detect/detect.h)
 * with series set up by detect_series_setup() and parameters from
 * detect_params_from_config() (detect/detect_config.h) — the very calls canaryd's shards
 * make — so a row's score and flags are the ones canaryd would have given that reading,
 * having seen only the rows before it. What canaryd does around the detectors is mirrored
 * where it changes a score:
 *  - a missing value (an empty field, "nan", "NA": see ml/dataset.h) is a metric the
 *    reading did not carry; a row with no value at all is no reading (REPLAY_ROW_EMPTY);
 *  - a value of a catalogued metric outside its plausible range makes canaryd's verify stage
 *    refuse the whole reading, so the row is not scored either (REPLAY_ROW_REFUSED);
 *  - rows are taken as readings that carry a seq, so a timestamp that goes back is scored
 *    (the rate and gap detectors ignore it), not refused as a duplicate.
 * Live Isolation Forest models ([model.<name>] sections) are not run: replay measures the
 * streaming detectors.
 *
 * A row's score is the highest score of its values, in [0,1]; its flags are the union of its
 * values' flags (core/reading.h). Functions return 0 or a negative CANARY_E* code with a
 * message naming the file, and for bad data the line and column. Distinct results may be
 * computed on distinct threads at once (nothing here is global). */
#ifndef CANARY_CLI_REPLAY_H
#define CANARY_CLI_REPLAY_H

#include "core/config.h"
#include "detect/detect.h"
#include "ml/dataset.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A value column's metric, named explicitly (--metric COLUMN=NAME). */
struct replay_metric {
    const char *column;
    const char *metric;
};

struct replay_options {
    const struct canary_config *cfg;    /* limits per metric/device; detect.* unless params */
    const struct detect_params *params; /* NULL: detect_params_from_config(cfg) */
    const char *device;                 /* device id for [device.D.M] limits; NULL = none */
    const char *timestamp_column;       /* NULL: the first of timestamp, ts, time in the header */
    const char *const *value_columns;   /* NULL/0: every column but the timestamp, in order */
    size_t n_value_columns;
    const char *metric; /* the metric of the only value column (--metric NAME); NULL = none */
    const struct replay_metric *metrics; /* per-column metrics; columns not listed here use */
    size_t n_metrics; /* their own name: a catalogued metric, or a generic one (no limits) */
};

enum replay_row_status {
    REPLAY_ROW_SCORED = 0, /* a reading: score and flags are the detectors' */
    REPLAY_ROW_EMPTY,      /* every value missing: not a reading, nothing learned */
    REPLAY_ROW_REFUSED,    /* a value outside its metric's plausible range: canaryd refuses it */
};

struct replay_result {
    struct dataset data;        /* the rows: data.ts_ms, data.x (NaN = missing), and data.devices[r]
                                   holds row r's timestamp as written in the file */
    char timestamp_column[256]; /* the column the time came from */
    char **metrics;             /* data.n_cols metric names, one per value column */
    float *score;               /* data.n_rows: the row's score in [0,1]; NAN unless scored */
    uint32_t *flags;            /* data.n_rows: union of the row's values' flags */
    uint8_t *status;            /* data.n_rows: enum replay_row_status */
    size_t n_scored, n_empty, n_refused; /* rows by status */
    size_t n_warmup;                     /* scored rows carrying FLAG_WARMUP */
    size_t n_anomalous;                  /* scored rows carrying FLAG_ANOMALY */
    int64_t detect_ns; /* time the rows took through the detectors (loading not included) */
};

/* Loads the CSV file at path and replays it into r (need not be initialised; on failure it
 * is left empty, safe to replay_result_free). Errors: CANARY_EIO (cannot read),
 * CANARY_EINVAL (bad data "file.csv:17: column 'value': not a number: \"abc\"", no
 * timestamp column, a bad metric name, a column named twice), CANARY_ENOTFOUND (a column
 * the options name is not in the header; the message lists the header), CANARY_ENOMEM. */
int replay_file(const struct replay_options *o, const char *path, struct replay_result *r,
                char *err, size_t errlen);

/* Frees what r owns and leaves it empty. Safe on an empty or zeroed result. */
void replay_result_free(struct replay_result *r);

/* Writes r as CSV: a header "<timestamp column>,<value columns...>,score,flags", then one line
 * per input row, in order: the timestamp as written in the input, each value (empty when
 * missing; written so it reads back as the same double), the score (empty for an empty or
 * refused row; 9 significant digits, so it reads back as the same float) and the flag names
 * joined by '|' ("warmup|gap"; "refused" for a refused row). Returns 0 or the errno of a
 * failed write. */
int replay_write_csv(FILE *out, const struct replay_result *r);

/* Writes "a|b" names of flags into buf (NUL-terminated, truncated to len). Returns buf. */
char *replay_flag_names(uint32_t flags, char *buf, size_t len);

/* Calls fn(arg, i) once for every i in [0, n), on `jobs` threads (0 = one per core; never
 * more threads than n), each taking the next i as it finishes one. Returns when every call
 * has returned: 0, or CANARY_ENOMEM when no thread could be started (then nothing ran). fn
 * must be safe to run concurrently with itself. */
int replay_parallel(size_t n, unsigned jobs, void (*fn)(void *arg, size_t i), void *arg);

#endif
