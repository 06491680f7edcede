/* dataset.h — numeric CSV tables loaded whole into memory, for training, scoring and
 * evaluating models and for benchmarks.
 *
 * The file is read in one piece and parsed in place; every value column becomes a double in
 * one row-major matrix, so a model can take `x` as it is. Optional columns are set apart:
 * a label (ground truth for evaluation), a timestamp (for window features and time ranges)
 * and a device name (for per-device series).
 *
 * Format (RFC 4180 with a header line): fields separated by ',', lines ended by LF or CRLF
 * (the last line may lack it), blank lines skipped. Any field may be quoted ("a,b", with ""
 * for a quote); a quoted field may span lines. The header names the columns; names must be
 * unique among those the options refer to.
 *
 * Values: a decimal or exponent number as strtod reads it (surrounding spaces allowed);
 * an empty field, "nan", "NA", "N/A" or "null" (any case) is NaN (missing). "inf" is refused:
 * a value column must be a number or missing.
 *
 * Labels: a finite number per row (0/1 for anomaly labels, 0..k-1 for classes); "true" and
 * "false" read as 1 and 0. A missing label is an error (evaluation needs every row's truth).
 * With options.label_classes the label column holds class names instead ("NoGas", "Smoke"):
 * labels[r] is then the index of row r's name in class_names, which lists the distinct names
 * sorted by strcmp (as scikit-learn's LabelEncoder numbers them).
 *
 * Timestamps, UTC, stored as Unix milliseconds:
 *   - a number: seconds if its magnitude is below 1e11, else milliseconds (1e11 s is the
 *     year 5138, 1e11 ms is 1973-03-03, so no real data is ambiguous); fractional seconds
 *     are kept to the millisecond;
 *   - ISO 8601: "2014-02-14 14:30:00" (NAB) or "2014-02-14T14:30:00", with optional
 *     fractional seconds (".123"), and an optional zone "Z", "+01:00", "+0100" or "-05"; no
 *     zone means UTC. A bare date "2014-02-14" is midnight UTC.
 * A missing or unreadable timestamp is an error.
 *
 * Errors are CANARY_E* codes with a message naming file, line and column, e.g.
 *   data.csv:17: column 'f2': not a number: "abc"
 *   data.csv:9: 5 fields, the header has 4
 *   data.csv: no column 'label' (the header has: timestamp, value)
 *   data.csv: empty file (no header)
 *   data.csv: no data rows after the header
 *
 * Not thread-safe per struct dataset; distinct datasets are independent. */
#ifndef CANARY_ML_DATASET_H
#define CANARY_ML_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dataset {
    size_t n_rows;       /* data rows loaded (at most options.max_rows) */
    size_t n_cols;       /* value columns: the columns of x */
    char **col_names;    /* n_cols names, in x's column order */
    double *x;           /* n_rows x n_cols, row-major (x[r * n_cols + c]); NaN = missing */
    double *labels;      /* n_rows labels, or NULL when no label column was named */
    int64_t *ts_ms;      /* n_rows Unix ms (UTC), or NULL when no timestamp column was named */
    char **devices;      /* n_rows device names, or NULL when no device column was named;
                            interned: rows of one device share one pointer */
    uint32_t *device_id; /* n_rows indexes into device_names, or NULL with devices */
    char **device_names; /* n_devices distinct names, in order of first appearance */
    size_t n_devices;
    char **class_names; /* with options.label_classes: n_classes names, sorted; else NULL */
    size_t n_classes;
    char *storage_; /* private: the strings above live here and in the owned blocks */
};

struct dataset_options {
    const char *label_column;         /* NULL = none */
    const char *timestamp_column;     /* NULL = none */
    const char *device_column;        /* NULL = none */
    const char *const *value_columns; /* the columns of x in this order; may be NULL when */
    size_t n_value_columns;           /* 0: every column not named above, in file order */
    size_t max_rows;                  /* stop after this many data rows; 0 = no limit */
    bool label_classes; /* the label column holds class names, not numbers (see above) */
};

/* Loads the CSV file at path into d (which need not be initialised; on failure it is left
 * empty, safe to dataset_free). o may be NULL (every column is a value column). On error
 * returns CANARY_EIO (cannot open or read), CANARY_EINVAL (malformed: bad number, wrong
 * field count, empty file, no data rows, duplicate column), CANARY_ENOTFOUND (a column
 * named in o is not in the header) or CANARY_ENOMEM, with a message in err (errlen may be
 * 0). The caller frees d with dataset_free. */
int dataset_load_csv(struct dataset *d, const char *path, const struct dataset_options *o,
                     char *err, size_t errlen);

/* Same as dataset_load_csv but parses len bytes at text (need not be NUL-terminated; not
 * modified); name is used in messages in place of a path. */
int dataset_parse_csv(struct dataset *d, const char *name, const char *text, size_t len,
                      const struct dataset_options *o, char *err, size_t errlen);

/* Frees everything d owns and leaves it empty. Safe on an empty or zeroed dataset. */
void dataset_free(struct dataset *d);

/* The index in x of the value column named name, or -1. */
long dataset_col_index(const struct dataset *d, const char *name);

/* Row r of x (n_cols values). */
static inline const double *dataset_row(const struct dataset *d, size_t r)
{
    return d->x + r * d->n_cols;
}

#endif
