/* ml_common.h — what `canary train`, `canary score` and `canary eval` share: option values,
 * turning a CSV file or canaryd's store into the feature matrix a forest trains on or scores,
 * the progress bar, and the few lines that describe a model.
 *
 * One path builds features for all three commands, so a model scores a file with exactly
 * the features it was trained on: raw features are the named numeric columns; window
 * features run every value column (or stored metric) through ml/features.h per device, in
 * time order, and keep the rows where every series of the device is warm.
 *
 * Every function that can fail returns 0 or a negative CANARY_E* code with a message in the
 * caller's buffer, ready to print after "canary <command>: ". Nothing here exits. */
#ifndef CANARY_CLI_ML_COMMON_H
#define CANARY_CLI_ML_COMMON_H

#include "ml/dataset.h"
#include "ml/iforest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- option values ------------------------------------------------------------------ */

/* Each parser prints "canary <cmd>: <what is wrong>" and the --help hint to stderr and
 * returns 2 (the usage exit status) on a bad value, else 0. */
int ml_bad_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ml_parse_u32(const char *cmd, const char *opt, const char *s, uint32_t lo, uint32_t hi,
                 uint32_t *out);
int ml_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
int ml_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                    double *out);

/* Parses a time for --from/--to: Unix seconds or milliseconds (as in dataset.h: below 1e11
 * is seconds), or ISO 8601 UTC "2026-11-20", "2026-11-20T10:00", "2026-11-20 10:00:00.5Z",
 * "...+01:00". Returns 0 and *ms, or -1. */
int ml_parse_time(const char *s, int64_t *ms);

/* A list of names (columns, devices, metrics) that owns its strings. Start it zeroed. */
struct ml_names {
    char **names; /* n names */
    size_t n;
    char **blocks; /* the copies the names point into */
    size_t n_blocks;
};

/* Splits a comma-separated list ("a,b,c"; spaces around names dropped) and appends its
 * names to l (copied). Returns 0, CANARY_EINVAL (an empty name) or CANARY_ENOMEM. */
int ml_names_add_list(struct ml_names *l, const char *csv);

/* True when l holds name. */
bool ml_names_has(const struct ml_names *l, const char *name);

/* Frees what l owns and zeroes it. */
void ml_names_free(struct ml_names *l);

/* ---- feature matrices --------------------------------------------------------------- */

enum ml_features { ML_FEATURES_RAW, ML_FEATURES_WINDOW };

/* A feature matrix and where its rows came from. */
struct ml_table {
    size_t n_rows, n_cols;
    double *x;              /* n_rows x n_cols, row-major */
    char **names;           /* n_cols feature names */
    size_t *source;         /* n_rows: the data row (0-based) of the file each row came from; NULL
                               for the store */
    double *labels;         /* n_rows labels, or NULL */
    int64_t from_ms, to_ms; /* time range of the rows (0 when unknown) */
    size_t n_source_rows;   /* rows in the file or readings in the store looked at */
    size_t n_cold;          /* window: rows skipped while a device's series filled up */
    size_t n_devices;       /* window: devices that gave at least one row */
    size_t n_doubted;       /* store: readings left out, quarantined or doubted by the
                               tamper checks (docs/TAMPER.md) */
};

void ml_table_free(struct ml_table *t);

/* What to read from a CSV file. */
struct ml_csv_spec {
    const char *path;
    const char *label_column;     /* NULL = none */
    const char *timestamp_column; /* NULL = none */
    const char *device_column;    /* NULL = none */
    const char *const *columns;   /* the value columns; NULL/0 = every other column */
    size_t n_columns;
};

/* Loads the CSV file (dataset.h). A value column the file lacks is reported with every
 * missing name at once and the header ("shuttle.csv lacks 2 of the 9 columns the model
 * needs: f3, f7 (its header has: ...)"). Returns 0 or a CANARY_E* code. */
int ml_load_csv(struct dataset *d, const struct ml_csv_spec *spec, char *err, size_t errlen);

/* Raw features: the dataset's value columns as they are. Returns 0 or CANARY_ENOMEM. */
int ml_features_raw(const struct dataset *d, struct ml_table *t, char *err, size_t errlen);

/* Window features of a dataset with timestamps (d->ts_ms), per device when it has a device
 * column, else as one device: each value column is a series; the row's vector is every
 * series' features then the time of day; rows are kept once all of the device's series are
 * warm. A device whose timestamps go back is an error naming the row. Returns 0,
 * CANARY_EINVAL or CANARY_ENOMEM. */
int ml_features_window(const struct dataset *d, const char *path, uint32_t window,
                       struct ml_table *t, char *err, size_t errlen);

/* What to read from canaryd's store. */
struct ml_db_spec {
    const char *path;
    const char *const *devices; /* NULL/0 = every device in the store */
    size_t n_devices;
    const char *const *metrics; /* NULL/0 = the metrics every chosen device has */
    size_t n_metrics;
    int64_t from_ms, to_ms; /* inclusive; 0 = unbounded */
    uint32_t window;
};

/* Window features from the store (store.h, opened read-only): per device, the readings in
 * time order; a reading updates the series of the metrics it carries, and once every
 * metric's series is warm each reading gives one vector of the latest features of every
 * metric plus its time of day. *metrics_used receives the metric names (caller frees with
 * ml_names_free). Returns 0, CANARY_EINVAL (no such data: a message says what is there),
 * CANARY_EIO or CANARY_ENOMEM. */
int ml_features_db(const struct ml_db_spec *spec, struct ml_table *t, struct ml_names *metrics_used,
                   char *err, size_t errlen);

/* The metrics of a window model, from its feature names ("gas_ppm.value", ...). Returns 0,
 * or CANARY_EINVAL when the names are not those of window features. */
int ml_window_metrics(const struct iforest *f, struct ml_names *metrics, char *err, size_t errlen);

/* Where a model says its training file kept time and device ("timestamp=ts device=dev" at
 * the end of its source, as `canary train` writes it): copies the column names into ts and
 * dev ("" when absent). */
void ml_source_columns(const struct iforest_meta *m, char *ts, size_t ts_len, char *dev,
                       size_t dev_len);

/* What `score` and `eval` read: a CSV file holding the columns a model needs. */
struct ml_model_input {
    const char *path;
    const char *timestamp_column; /* NULL: the one the model's source names, else a column
                                     named timestamp, ts or time, if any */
    const char *device_column;    /* NULL: likewise; device or device_id */
    const char *label_column;     /* NULL = none (a missing one is an error) */
    char timestamp_used[256];     /* out: the timestamp column read ("" = none) */
    char device_used[256];        /* out: the device column read ("" = none) */
};

/* Loads the file into d and builds the model's features into t (t->source maps each row
 * of t to its data row in d): raw features by the model's feature names, window features by
 * its metrics and window, per device. Every missing column is named in the message.
 * Returns 0 or a CANARY_E* code. */
int ml_load_for_model(const struct iforest *f, struct ml_model_input *in, struct dataset *d,
                      struct ml_table *t, char *err, size_t errlen);

/* Reads the header line of a CSV file: the column names, or an error. */
int ml_csv_header(const char *path, struct ml_names *names, char *err, size_t errlen);

/* ---- output ------------------------------------------------------------------------- */

/* A progress bar on stderr, drawn only when stderr is a terminal. */
struct ml_progress {
    bool tty;
    const char *what; /* "training", "scoring" */
    int64_t start_ns;
    int64_t last_draw_ns;
};

void ml_progress_start(struct ml_progress *p, const char *what);
/* Suits iforest_train's progress callback (arg is the struct ml_progress). */
void ml_progress_update(void *arg, size_t done, size_t total);
/* Clears the bar's line. */
void ml_progress_end(struct ml_progress *p);

/* A note on stderr while something slow happens ("reading http.csv"), terminal only; the
 * next ml_status or ml_progress_end clears it. */
void ml_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ml_status_clear(void);

/* Seconds since start_ns (clock_mono_ns). */
double ml_seconds_since(int64_t start_ns);

/* The last component of a path ("data/x.csv" -> "x.csv"). */
const char *ml_basename(const char *path);

/* One line describing a model: trees, ψ, features, threshold, what it was trained on. */
void ml_print_model(FILE *out, const char *path, const struct iforest *f);

/* "49,097": n with thousands separators, into buf (at least 32 bytes). Returns buf. */
const char *ml_thousands(uint64_t n, char *buf, size_t len);

#endif
