/* train.c — `canary train`: an Isolation Forest (ml/iforest.h) trained on the user's own
 * sensor history, from a CSV file or from canaryd's store, written to a model file; or, with
 * --model gas, the gas classifier (ml/gas.h) trained on labelled readings from a CSV file.
 *
 * Promises:
 *  - the features are built by ml_common.c, the same code `canary score` and `canary eval`
 *    use, so a model always meets the features it was trained on;
 *  - the model records what it was trained on (struct iforest_meta: source, feature kind,
 *    rows, time range, creation time, window) — the source also names the CSV's timestamp
 *    and device columns, so `score` and `eval` find them without being told;
 *  - the model file is written atomically (iforest_save): an interrupted run leaves any
 *    previous file as it was;
 *  - progress on stderr only when stderr is a terminal; the summary on stdout;
 *  - exit status 0 on success, 1 when the data or a file is the problem, 2 for bad usage. */
#include "cli/commands.h"
#include "cli/ml_common.h"

#include "core/clock.h"
#include "core/error.h"
#include "ml/features.h"
#include "ml/gas.h"
#include "ml/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "train"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary train --model iforest (--input FILE.csv | --from-db PATH)\n"
            "                    --out MODEL.cif [options]\n"
            "       canary train --model gas ...  (the gas classifier: see --model gas --help)\n"
            "\n"
            "Trains an Isolation Forest (Liu, Ting & Zhou, ICDM 2008) on sensor history and\n"
            "writes it to a model file for `canary score`, `canary eval` and canaryd. The\n"
            "forest learns what usual readings look like, without labels; rows it isolates\n"
            "in few random splits score near 1 (anomalous), usual rows well below 0.5.\n"
            "\n"
            "input (one of):\n"
            "  --input FILE.csv          a CSV file with a header line; values are numbers,\n"
            "                            empty or NaN for missing\n"
            "  --from-db PATH            canaryd's store (e.g. var/canary.db), opened\n"
            "                            read-only: canaryd may keep running\n"
            "\n"
            "CSV columns:\n"
            "  --columns A,B,C           the value columns to use (default: every column not\n"
            "                            named by the options below)\n"
            "  --label-column NAME       ground truth (0 normal, 1 anomaly): never a feature;\n"
            "                            a column named 'label' is left out by default\n"
            "  --timestamp-column NAME   the time of each row: Unix seconds or milliseconds,\n"
            "                            or ISO 8601 (UTC unless it has a zone)\n"
            "  --device-column NAME      the device of each row: window features are kept\n"
            "                            per device\n"
            "  --features raw|window     raw: the value columns as they are (the default\n"
            "                            without a timestamp column); window: for every value\n"
            "                            column its value, mean, std, min, max, deviation\n"
            "                            from the mean and rate of change per minute over the\n"
            "                            device's last N rows, plus the time of day (the\n"
            "                            default with a timestamp column; rows must be in\n"
            "                            time order per device)\n"
            "  --window N                rows per window (default %d, at most %d); a\n"
            "                            device's first N-1 rows only fill the window\n"
            "\n"
            "store (window features, one vector per reading of a device):\n"
            "  --device ID               a device to learn from (repeatable; default every\n"
            "                            device with readings)\n"
            "  --metric M                a metric to use (repeatable or A,B,C; default the\n"
            "                            metrics every chosen device has)\n"
            "  --from TIME, --to TIME    only readings in this time range (inclusive): Unix\n"
            "                            seconds or ms, or ISO 8601 such as 2026-11-20T08:00Z\n"
            "  --window N                readings per window (default %d)\n"
            "\n"
            "forest:\n"
            "  --trees N                 trees (default 100, at most %d)\n"
            "  --subsample N             rows per tree, psi (default 256, at most %d; capped\n"
            "                            at the training rows)\n"
            "  --max-depth D             height limit (default ceil(log2 psi), at most %d)\n"
            "  --seed S                  random seed (default 1): same data, same seed, same\n"
            "                            model, whatever the threads\n"
            "  --threads T               threads (default 0: one per CPU)\n"
            "  --contamination C         the share of anomalies expected in the training\n"
            "                            data, above 0 and at most 0.5: the threshold is set\n"
            "                            so that this share of the training rows reach it;\n"
            "                            'auto' (default) puts it at 0.5\n"
            "\n"
            "output:\n"
            "  --out MODEL.cif           the model file (written atomically; replaced if it\n"
            "                            exists)\n"
            "  --quiet                   no summary\n"
            "  --help                    show this help\n"
            "\n"
            "A progress bar is drawn on stderr when it is a terminal. The summary (stdout)\n"
            "gives the rows, features, trees, psi, threshold and time. Exit status: 0 on\n"
            "success, 1 when a file or the data is the problem, 2 for bad usage.\n"
            "See docs/MODELS.md.\n",
            FEATURE_WINDOW_DEFAULT, FEATURE_WINDOW_MAX, FEATURE_WINDOW_DEFAULT, IFOREST_MAX_TREES,
            IFOREST_MAX_SUBSAMPLE, IFOREST_MAX_DEPTH);
}

struct train_opts {
    const char *input, *db, *out;
    struct ml_names columns, devices, metrics;
    const char *label_column, *timestamp_column, *device_column;
    int features; /* -1 = by the timestamp column, else enum ml_features */
    uint32_t window;
    bool window_given;
    int64_t from_ms, to_ms;
    bool quiet;
    struct iforest_params params;
};

/* Timestamp and device column names people use, to hint at when they are not given. */
static const char *const time_like[] = {"timestamp", "ts", "time", "date", "datetime"};
static const char *const device_like[] = {"device", "device_id", "dev", "sensor"};

static int parse_args(int argc, char **argv, struct train_opts *o, bool *help)
{
    const char *model = NULL;
    bool from_given = false, to_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        const char *v = has_value ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = true;
            continue;
        } else if (!has_value) {
            return ml_bad_usage(CMD, "%s: unknown option or missing value", a);
        }
        i++;
        if (!strcmp(a, "--model")) {
            model = v;
        } else if (!strcmp(a, "--input")) {
            o->input = v;
        } else if (!strcmp(a, "--from-db")) {
            o->db = v;
        } else if (!strcmp(a, "--out")) {
            o->out = v;
        } else if (!strcmp(a, "--columns")) {
            if (ml_names_add_list(&o->columns, v) != 0)
                return ml_bad_usage(CMD, "--columns takes names separated by commas, got '%s'", v);
        } else if (!strcmp(a, "--label-column")) {
            o->label_column = v;
        } else if (!strcmp(a, "--timestamp-column")) {
            o->timestamp_column = v;
        } else if (!strcmp(a, "--device-column")) {
            o->device_column = v;
        } else if (!strcmp(a, "--features")) {
            if (!strcmp(v, "raw"))
                o->features = ML_FEATURES_RAW;
            else if (!strcmp(v, "window"))
                o->features = ML_FEATURES_WINDOW;
            else
                return ml_bad_usage(CMD, "--features is raw or window, got '%s'", v);
        } else if (!strcmp(a, "--window")) {
            rc = ml_parse_u32(CMD, a, v, 1, FEATURE_WINDOW_MAX, &o->window);
            o->window_given = true;
        } else if (!strcmp(a, "--device")) {
            if (ml_names_add_list(&o->devices, v) != 0)
                return ml_bad_usage(CMD, "--device takes a device id, got '%s'", v);
        } else if (!strcmp(a, "--metric")) {
            if (ml_names_add_list(&o->metrics, v) != 0)
                return ml_bad_usage(CMD, "--metric takes metric names, got '%s'", v);
        } else if (!strcmp(a, "--from") || !strcmp(a, "--to")) {
            int64_t ms;
            if (ml_parse_time(v, &ms) != 0 || ms <= 0)
                return ml_bad_usage(CMD,
                                    "%s takes Unix seconds or milliseconds, or an ISO 8601 "
                                    "time such as 2026-11-20T08:00:00Z, got '%s'",
                                    a, v);
            *(a[2] == 'f' ? &o->from_ms : &o->to_ms) = ms;
            *(a[2] == 'f' ? &from_given : &to_given) = true;
        } else if (!strcmp(a, "--trees")) {
            rc = ml_parse_u32(CMD, a, v, 1, IFOREST_MAX_TREES, &o->params.n_trees);
        } else if (!strcmp(a, "--subsample")) {
            rc = ml_parse_u32(CMD, a, v, 2, IFOREST_MAX_SUBSAMPLE, &o->params.subsample);
        } else if (!strcmp(a, "--max-depth")) {
            rc = ml_parse_u32(CMD, a, v, 1, IFOREST_MAX_DEPTH, &o->params.max_depth);
        } else if (!strcmp(a, "--seed")) {
            rc = ml_parse_u64(CMD, a, v, &o->params.seed);
        } else if (!strcmp(a, "--threads")) {
            rc = ml_parse_u32(CMD, a, v, 0, 1024, &o->params.threads);
        } else if (!strcmp(a, "--contamination")) {
            if (!strcmp(v, "auto"))
                o->params.contamination = 0;
            else if ((rc = ml_parse_double(CMD, a, v, 0, 0.5, &o->params.contamination)) == 0 &&
                     o->params.contamination == 0)
                o->params.contamination = 0; /* 0 means auto, as in iforest.h */
        } else {
            return ml_bad_usage(CMD, "unknown option: %s", a);
        }
        if (rc != 0)
            return rc;
    }
    if (model == NULL)
        return ml_bad_usage(CMD, "--model is required (iforest or gas)");
    if (strcmp(model, "iforest") != 0)
        return ml_bad_usage(CMD, "--model is iforest or gas, got '%s'", model);
    if ((o->input == NULL) == (o->db == NULL))
        return ml_bad_usage(CMD, "give one of --input FILE.csv and --from-db PATH");
    if (o->out == NULL)
        return ml_bad_usage(CMD, "--out MODEL.cif is required");
    if (o->db != NULL) {
        if (o->columns.n || o->label_column || o->timestamp_column || o->device_column ||
            o->features == ML_FEATURES_RAW)
            return ml_bad_usage(CMD, "--columns, --label-column, --timestamp-column, "
                                     "--device-column and --features raw are for --input");
    } else {
        if (o->devices.n || o->metrics.n || from_given || to_given)
            return ml_bad_usage(CMD, "--device, --metric, --from and --to are for --from-db "
                                     "(filter the CSV file instead)");
        if (o->features < 0)
            o->features = o->timestamp_column ? ML_FEATURES_WINDOW : ML_FEATURES_RAW;
        if (o->features == ML_FEATURES_WINDOW && o->timestamp_column == NULL)
            return ml_bad_usage(CMD, "--features window needs --timestamp-column (the rows' "
                                     "times: rates are per minute, and the time of day is a "
                                     "feature)");
        if (o->features == ML_FEATURES_RAW && o->window_given)
            return ml_bad_usage(CMD, "--window is for window features");
    }
    if (from_given && to_given && o->from_ms > o->to_ms)
        return ml_bad_usage(CMD, "--from is after --to");
    return 0;
}

/* The directory of path must exist and be writable: found out before a long training. */
static int check_out_dir(const char *path, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--out %s is a directory; name the model file", path);
        return CANARY_EINVAL;
    }
    if (access(dir, W_OK) != 0) {
        snprintf(err, errlen, "cannot write the model to %.900s: %.900s: %s", path, dir,
                 strerror(errno));
        return CANARY_EIO;
    }
    return 0;
}

/* Appends to a meta string without overflowing it (a long list ends with "..."). */
static void meta_append(char *buf, size_t len, const char *fmt, const char *value)
{
    size_t at = strlen(buf);
    int n = snprintf(buf + at, len - at, fmt, value);
    if (n < 0 || (size_t)n >= len - at) {
        if (len > 4)
            memcpy(buf + len - 4, "...", 4);
    }
}

static void join_into(char *buf, size_t len, const struct ml_names *l)
{
    buf[0] = '\0';
    for (size_t i = 0; i < l->n; i++)
        meta_append(buf, len, i ? ",%s" : "%s", l->names[i]);
}

/* Reads the CSV input into t; fills o's columns when a hint applies. */
static int load_csv(struct train_opts *o, struct ml_table *t, double *labelled_share, char *err,
                    size_t errlen)
{
    struct ml_names header = {0};
    int rc = ml_csv_header(o->input, &header, err, errlen);
    if (rc != 0)
        return rc;
    /* A column named 'label' is ground truth, never a feature, unless the columns are named. */
    if (o->label_column == NULL && o->columns.n == 0 && ml_names_has(&header, "label")) {
        o->label_column = "label";
        if (!o->quiet)
            fprintf(stderr, "canary train: column 'label' is left out of the features (ground "
                            "truth; --label-column names another)\n");
    }
    struct ml_csv_spec spec = {
        .path = o->input,
        .label_column = o->label_column,
        .timestamp_column = o->timestamp_column,
        .device_column = o->device_column,
        .columns = (const char *const *)o->columns.names,
        .n_columns = o->columns.n,
    };
    ml_status("reading %s ...", o->input);
    struct dataset d;
    rc = ml_load_csv(&d, &spec, err, errlen);
    ml_status_clear();
    if (rc != 0) {
        /* A time or device column read as a value is the usual reason for "not a number". */
        for (size_t k = 0; rc == CANARY_EINVAL && o->columns.n == 0 && k < 2; k++) {
            const char *const *like = k == 0 ? time_like : device_like;
            size_t n_like = k == 0 ? sizeof time_like / sizeof *time_like
                                   : sizeof device_like / sizeof *device_like;
            const char *given = k == 0 ? o->timestamp_column : o->device_column;
            for (size_t i = 0; given == NULL && i < n_like; i++) {
                if (ml_names_has(&header, like[i]) && strstr(err, like[i]) != NULL) {
                    size_t at = strlen(err);
                    snprintf(err + at, errlen - at, " (give --%s-column %s if it holds %s)",
                             k == 0 ? "timestamp" : "device", like[i],
                             k == 0 ? "times" : "device names");
                    break;
                }
            }
        }
        ml_names_free(&header);
        return rc;
    }
    ml_names_free(&header);
    if (d.labels != NULL) {
        size_t pos = 0;
        for (size_t r = 0; r < d.n_rows; r++)
            pos += d.labels[r] != 0;
        *labelled_share = d.n_rows ? (double)pos / (double)d.n_rows : 0;
    }
    if (o->features == ML_FEATURES_WINDOW) {
        ml_status("building window features ...");
        rc = ml_features_window(&d, o->input, o->window, t, err, errlen);
        ml_status_clear();
    } else {
        rc = ml_features_raw(&d, t, err, errlen);
    }
    if (rc == 0 && t->n_rows == 0) {
        snprintf(err, errlen,
                 "%s: no training rows: none of the %zu rows comes after a full window of %" PRIu32
                 " rows of its device",
                 o->input, d.n_rows, o->window);
        rc = CANARY_EINVAL;
    }
    dataset_free(&d);
    return rc;
}

/* ---- --model gas: the gas classifier (ml/gas.h) ------------------------------------------ */

static void usage_gas(FILE *out)
{
    fprintf(out,
            "usage: canary train --model gas --input FILE.csv --label-column NAME\n"
            "                    --features A,B,C --out MODEL.cgas [options]\n"
            "\n"
            "Trains the gas classifier: a random forest, a multinomial logistic regression\n"
            "and gradient-boosted trees (XGBoost), stacked by a logistic regression fitted\n"
            "on their out-of-fold predictions. It learns which class (e.g. NoGas, Smoke,\n"
            "Perfume, Mixture) a reading of several gas sensors shows, with probabilities.\n"
            "\n"
            "data:\n"
            "  --input FILE.csv          a CSV file with a header line\n"
            "  --label-column NAME       the class of each row, by name (e.g. Gas)\n"
            "  --features A,B,C          the sensor columns, in order (e.g. MQ2,MQ3,MQ5)\n"
            "  --series-column NAME      the recording each row belongs to (e.g. device);\n"
            "                            default: the label column, for files that hold one\n"
            "                            recording per class\n"
            "  --order-column NAME       time order within a series (e.g. 'Serial Number');\n"
            "                            default: the file's order\n"
            "  --window N                window features over the series' last N readings\n"
            "                            (default 24; 0 = the reading alone)\n"
            "  --window-features F       which: mean (default), slope, or mean,slope — each\n"
            "                            sensor's recent mean, and its least-squares slope\n"
            "                            per reading (relative to the mean with logratio)\n"
            "  --transform T             logratio (default: log-ratios between the sensors,\n"
            "                            robust to a drifting baseline), raw, or raw+logratio\n"
            "\n"
            "evaluation before the final fit:\n"
            "  --split time|random|none  time (default): hold out the latest --test-frac of\n"
            "                            each class's series, train on the rest, report; a\n"
            "                            random split leaks a test row's near-copies into\n"
            "                            training and overstates accuracy\n"
            "  --test-frac F             the held-out share (default 0.2)\n"
            "  --final all|train         the saved model is refitted on every row (default)\n"
            "                            or is the one evaluated on the held-out rows\n"
            "\n"
            "learners:\n"
            "  --seed S                  random seed (default 1): same data, same model\n"
            "  --folds K                 out-of-fold folds for the stack (default 5)\n"
            "  --threads T               XGBoost threads (default 1)\n"
            "\n"
            "output:\n"
            "  --out, --output MODEL     the model bundle (written atomically)\n"
            "  --quiet                   no summary\n"
            "\n"
            "Progress on stderr when it is a terminal. Exit status: 0 on success, 1 when a\n"
            "file or the data is the problem, 2 for bad usage. See docs/GAS.md.\n");
}

struct gas_opts {
    const char *input, *out, *label, *series, *order, *split, *final;
    struct ml_names features;
    double test_frac;
    bool quiet;
    struct gas_params params;
};

static int parse_gas_args(int argc, char **argv, struct gas_opts *o, bool *help)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        uint32_t u = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = true;
            continue;
        } else if (!v) {
            return ml_bad_usage(CMD, "%s: unknown option or missing value", a);
        }
        i++;
        if (!strcmp(a, "--model")) {
            continue;
        } else if (!strcmp(a, "--input")) {
            o->input = v;
        } else if (!strcmp(a, "--out") || !strcmp(a, "--output")) {
            o->out = v;
        } else if (!strcmp(a, "--label-column")) {
            o->label = v;
        } else if (!strcmp(a, "--features") || !strcmp(a, "--columns")) {
            if (ml_names_add_list(&o->features, v) != 0)
                return ml_bad_usage(CMD, "%s takes column names separated by commas, got '%s'", a,
                                    v);
        } else if (!strcmp(a, "--series-column")) {
            o->series = v;
        } else if (!strcmp(a, "--order-column")) {
            o->order = v;
        } else if (!strcmp(a, "--window")) {
            rc = ml_parse_u32(CMD, a, v, 0, FEATURE_WINDOW_MAX, &o->params.window);
        } else if (!strcmp(a, "--window-features")) {
            if (!gas_window_stats_parse(v, &o->params.window_stats))
                return ml_bad_usage(CMD, "--window-features is mean, slope or mean,slope, got '%s'",
                                    v);
        } else if (!strcmp(a, "--transform")) {
            if (!strcmp(v, "logratio"))
                o->params.features = GAS_FEATURES_LOGRATIO;
            else if (!strcmp(v, "raw"))
                o->params.features = GAS_FEATURES_RAW;
            else if (!strcmp(v, "raw+logratio"))
                o->params.features = GAS_FEATURES_BOTH;
            else
                return ml_bad_usage(CMD, "--transform is logratio, raw or raw+logratio, got '%s'",
                                    v);
        } else if (!strcmp(a, "--split")) {
            if (strcmp(v, "time") && strcmp(v, "random") && strcmp(v, "none"))
                return ml_bad_usage(CMD, "--split is time, random or none, got '%s'", v);
            o->split = v;
        } else if (!strcmp(a, "--final")) {
            if (strcmp(v, "all") && strcmp(v, "train"))
                return ml_bad_usage(CMD, "--final is all or train, got '%s'", v);
            o->final = v;
        } else if (!strcmp(a, "--test-frac")) {
            rc = ml_parse_double(CMD, a, v, 0.01, 0.9, &o->test_frac);
        } else if (!strcmp(a, "--seed")) {
            rc = ml_parse_u64(CMD, a, v, &o->params.seed);
        } else if (!strcmp(a, "--folds")) {
            rc = ml_parse_u32(CMD, a, v, 2, GAS_MAX_FOLDS, &o->params.folds);
        } else if (!strcmp(a, "--threads")) {
            rc = ml_parse_u32(CMD, a, v, 0, 1024, &u);
            o->params.threads = u;
        } else {
            return ml_bad_usage(CMD, "unknown option for --model gas: %s", a);
        }
        if (rc != 0)
            return rc;
    }
    if (!o->input || !o->label || !o->features.n || !o->out)
        return ml_bad_usage(CMD, "--model gas needs --input FILE.csv, --label-column NAME, "
                                 "--features A,B,C and --out MODEL");
    if (!strcmp(o->split, "none") && !strcmp(o->final, "train"))
        return ml_bad_usage(CMD, "--final train needs a --split");
    if ((o->params.window_stats & GAS_WINDOW_SLOPE) && o->params.window < 2)
        return ml_bad_usage(CMD, "--window-features slope needs --window 2 or more");
    return 0;
}

/* Trains on the rows with use[r] (all when use is NULL). */
static int gas_fit(const struct gas_opts *o, const struct gas_table *t, const uint8_t *use,
                   const char *what, struct gas_model **m, char *err, size_t errlen)
{
    size_t n = 0;
    for (size_t r = 0; r < t->n_rows; r++)
        n += !use || use[r];
    double *x = malloc((n ? n : 1) * t->row_len * sizeof *x);
    int *y = malloc((n ? n : 1) * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return CANARY_ENOMEM;
    }
    n = 0;
    for (size_t r = 0; r < t->n_rows; r++) {
        if (use && !use[r])
            continue;
        memcpy(x + n * t->row_len, t->rows + r * t->row_len, t->row_len * sizeof *x);
        y[n++] = t->y[r];
    }
    struct ml_progress progress;
    ml_progress_start(&progress, what);
    struct gas_params p = o->params;
    p.progress = ml_progress_update;
    p.progress_arg = &progress;
    int rc = gas_train(x, n, t->n_inputs, y, t->n_classes, (const char *const *)o->features.names,
                       (const char *const *)t->class_names, &p, ml_basename(o->input), m, NULL, err,
                       errlen);
    ml_progress_end(&progress);
    free(x);
    free(y);
    return rc;
}

/* Evaluates m on the rows with is_test[r]: prints a line per learner, returns the stack's
 * accuracy and macro F1. */
static int gas_holdout(const struct gas_model *m, const struct gas_table *t, const uint8_t *is_test,
                       bool quiet, double *acc, double *f1, size_t *rows, char *err, size_t errlen)
{
    size_t n = 0;
    for (size_t r = 0; r < t->n_rows; r++)
        n += is_test[r];
    int *truth = malloc((n ? n : 1) * sizeof *truth), *pred = malloc((n ? n : 1) * sizeof *pred);
    double *proba = malloc(t->n_classes * sizeof *proba);
    int rc = truth && pred && proba ? 0 : CANARY_ENOMEM;
    for (int l = 0; !rc && l < GAS_N_LEARNERS; l++) {
        size_t i = 0;
        for (size_t r = 0; r < t->n_rows; r++) {
            if (!is_test[r])
                continue;
            truth[i] = t->y[r];
            pred[i++] = gas_predict_row(m, (enum gas_learner)l, t->rows + r * t->row_len, proba);
        }
        struct metrics_multiclass mc;
        rc = metrics_multiclass_eval(truth, pred, n, t->n_classes, &mc, err, errlen);
        if (rc)
            break;
        if (!quiet)
            printf("  %-20s accuracy %.4f  macro F1 %.4f\n", gas_learner_name((enum gas_learner)l),
                   mc.accuracy, mc.macro_f1);
        if (l == GAS_STACK) {
            *acc = mc.accuracy;
            *f1 = mc.macro_f1;
        }
        metrics_multiclass_free(&mc);
    }
    *rows = n;
    free(truth);
    free(pred);
    free(proba);
    return rc;
}

static int train_gas(int argc, char **argv)
{
    struct gas_opts o = {.split = "time", .final = "all", .test_frac = 0.2};
    gas_params_default(&o.params);
    bool help = false;
    int rc = parse_gas_args(argc, argv, &o, &help);
    if (rc != 0 || help) {
        if (help)
            usage_gas(stdout);
        ml_names_free(&o.features);
        return rc;
    }
    char err[2048] = "";
    int exit_code = 1;
    struct gas_table t = {0};
    struct gas_model *m = NULL;
    uint8_t *is_test = NULL, *is_train = NULL;
    int64_t t0 = clock_mono_ns();
    if (check_out_dir(o.out, err, sizeof err) != 0)
        goto fail;
    struct gas_csv_spec spec = {.label_column = o.label,
                                .inputs = (const char *const *)o.features.names,
                                .n_inputs = o.features.n,
                                .series_column = o.series,
                                .order_column = o.order,
                                .window = o.params.window,
                                .window_stats = o.params.window_stats};
    ml_status("reading %s ...", o.input);
    rc = gas_table_load(o.input, &spec, &t, err, sizeof err);
    ml_status_clear();
    if (rc)
        goto fail;
    double eval_acc = NAN, eval_f1 = NAN;
    size_t eval_rows = 0;
    if (strcmp(o.split, "none")) {
        is_test = malloc(t.n_rows);
        is_train = malloc(t.n_rows);
        if (!is_test || !is_train) {
            snprintf(err, sizeof err, "out of memory");
            goto fail;
        }
        rc = !strcmp(o.split, "time") ? gas_split_time(t.order, t.y, t.n_rows, t.n_classes,
                                                       o.test_frac, is_test, err, sizeof err)
                                      : gas_split_random(t.y, t.n_rows, t.n_classes, o.test_frac,
                                                         o.params.seed, is_test, err, sizeof err);
        if (rc)
            goto fail;
        for (size_t r = 0; r < t.n_rows; r++)
            is_train[r] = !is_test[r];
        if (gas_fit(&o, &t, is_train, "training (held-out split)", &m, err, sizeof err))
            goto fail;
        if (!o.quiet)
            printf("held out: the %s %.0f%% of each class (%s split); on those rows:\n",
                   !strcmp(o.split, "time") ? "latest" : "random", o.test_frac * 100, o.split);
        if (gas_holdout(m, &t, is_test, o.quiet, &eval_acc, &eval_f1, &eval_rows, err, sizeof err))
            goto fail;
        if (!strcmp(o.final, "all")) {
            gas_free(m);
            m = NULL;
        }
    }
    if (!m && gas_fit(&o, &t, NULL, "training", &m, err, sizeof err))
        goto fail;
    struct gas_meta *meta = gas_model_meta_edit(m);
    snprintf(meta->label_column, sizeof meta->label_column, "%s", o.label);
    snprintf(meta->series_column, sizeof meta->series_column, "%s", o.series ? o.series : "");
    snprintf(meta->order_column, sizeof meta->order_column, "%s", o.order ? o.order : "");
    if (eval_rows) {
        snprintf(meta->eval_split, sizeof meta->eval_split, "%s", o.split);
        meta->eval_rows = eval_rows;
        meta->eval_accuracy = eval_acc;
        meta->eval_macro_f1 = eval_f1;
    }
    if (gas_save(m, o.out, err, sizeof err))
        goto fail;
    exit_code = 0;
    if (!o.quiet) {
        char a[32];
        printf("trained %s in %.2f s\n", o.out, ml_seconds_since(t0));
        printf("  data       %s: %s rows x %zu sensors, %zu classes:", o.input,
               ml_thousands(gas_model_meta(m)->n_rows, a, sizeof a), t.n_inputs, t.n_classes);
        for (size_t k = 0; k < t.n_classes; k++)
            printf(" %s", t.class_names[k]);
        printf("\n  features   %s", gas_features_name(o.params.features));
        if (o.params.window)
            printf(", with the %s of the last %u readings",
                   o.params.window_stats == GAS_WINDOW_ALL
                       ? "mean and slope"
                       : gas_window_stats_name(o.params.window_stats),
                   o.params.window);
        printf("\n  stack      random forest %u trees, logistic regression, gradient boosting "
               "%u rounds; %u folds, seed %llu\n",
               o.params.rf_trees, o.params.gbt_rounds, o.params.folds,
               (unsigned long long)o.params.seed);
        const struct gas_meta *mm = gas_model_meta(m);
        printf("  out-of-fold accuracy  rf %.4f  lr %.4f  gbt %.4f  stack %.4f\n",
               mm->oof_accuracy[GAS_RF], mm->oof_accuracy[GAS_LR], mm->oof_accuracy[GAS_GBT],
               mm->oof_accuracy[GAS_STACK]);
        if (eval_rows)
            printf("  held out   %s split, %zu rows: accuracy %.4f, macro F1 %.4f (the saved "
                   "model is %s)\n",
                   o.split, eval_rows, eval_acc, eval_f1,
                   !strcmp(o.final, "all") ? "refitted on every row" : "the one evaluated");
    }
    goto done;
fail:
    ml_status_clear();
    fprintf(stderr, "canary train: %s\n", err[0] ? err : "failed");
done:
    gas_free(m);
    gas_table_free(&t);
    free(is_test);
    free(is_train);
    ml_names_free(&o.features);
    return exit_code;
}

int cmd_train(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--model") && !strcmp(argv[i + 1], "gas"))
            return train_gas(argc, argv);
    struct train_opts o = {.features = -1, .window = FEATURE_WINDOW_DEFAULT};
    iforest_params_default(&o.params);
    o.params.threads = 0;
    bool help = false;
    int rc = parse_args(argc, argv, &o, &help);
    if (rc != 0 || help) {
        if (help)
            usage(stdout);
        ml_names_free(&o.columns);
        ml_names_free(&o.devices);
        ml_names_free(&o.metrics);
        return rc;
    }
    char err[2048] = "";
    struct ml_table t = {0};
    struct ml_names metrics_used = {0};
    struct iforest *f = NULL;
    double labelled_share = NAN;
    int exit_code = 1;
    int64_t t0 = clock_mono_ns();

    if (check_out_dir(o.out, err, sizeof err) != 0)
        goto fail;
    struct iforest_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.eval_roc_auc = meta.eval_pr_auc = NAN;
    if (o.input != NULL) {
        if (load_csv(&o, &t, &labelled_share, err, sizeof err) != 0)
            goto fail;
        snprintf(meta.source, sizeof meta.source, "%s", o.input);
        if (o.features == ML_FEATURES_WINDOW) {
            meta_append(meta.source, sizeof meta.source, " timestamp-column=%s",
                        o.timestamp_column);
            if (o.device_column != NULL)
                meta_append(meta.source, sizeof meta.source, " device-column=%s", o.device_column);
        }
    } else {
        struct ml_db_spec spec = {
            .path = o.db,
            .devices = (const char *const *)o.devices.names,
            .n_devices = o.devices.n,
            .metrics = (const char *const *)o.metrics.names,
            .n_metrics = o.metrics.n,
            .from_ms = o.from_ms,
            .to_ms = o.to_ms,
            .window = o.window,
        };
        o.features = ML_FEATURES_WINDOW;
        ml_status("reading %s ...", o.db);
        rc = ml_features_db(&spec, &t, &metrics_used, err, sizeof err);
        ml_status_clear();
        if (rc != 0)
            goto fail;
        char list[256];
        snprintf(meta.source, sizeof meta.source, "db %s", o.db);
        if (o.devices.n > 0) {
            join_into(list, sizeof list, &o.devices);
            meta_append(meta.source, sizeof meta.source, " device=%s", list);
        }
        join_into(list, sizeof list, &metrics_used);
        meta_append(meta.source, sizeof meta.source, " metric=%s", list);
    }
    double read_s = ml_seconds_since(t0);
    snprintf(meta.features_kind, sizeof meta.features_kind, "%s",
             o.features == ML_FEATURES_WINDOW ? "window" : "raw");
    meta.train_rows = t.n_rows;
    meta.data_from_ms = t.from_ms;
    meta.data_to_ms = t.to_ms;
    meta.created_ms = clock_wall_ms();
    meta.window = o.features == ML_FEATURES_WINDOW ? o.window : 0;

    struct ml_progress progress;
    ml_progress_start(&progress, "training");
    rc = iforest_train(&f, &o.params, t.x, t.n_rows, t.n_cols, (const char *const *)t.names, &meta,
                       ml_progress_update, &progress, err, sizeof err);
    ml_progress_end(&progress);
    double train_s = ml_seconds_since(progress.start_ns);
    if (rc != 0) {
        if (rc == CANARY_ENOMEM && err[0] == '\0')
            snprintf(err, sizeof err, "out of memory training on %zu rows", t.n_rows);
        goto fail;
    }
    if (iforest_save(f, o.out, err, sizeof err) != 0)
        goto fail;
    exit_code = 0;

    if (!o.quiet) {
        const struct iforest_params *p = iforest_params_of(f);
        char a[32], b[32], c[32];
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned threads = o.params.threads ? o.params.threads : cpus > 0 ? (unsigned)cpus : 1;
        printf("trained %s in %.*f s (reading the data %.*f s)\n", o.out, train_s < 1 ? 3 : 2,
               train_s, read_s < 1 ? 3 : 2, read_s);
        printf("  data       %s: %s rows x %zu %s features", o.input ? o.input : o.db,
               ml_thousands(t.n_rows, a, sizeof a), t.n_cols, meta.features_kind);
        if (o.features == ML_FEATURES_WINDOW)
            printf(", %zu device%s", t.n_devices, t.n_devices == 1 ? "" : "s");
        printf("\n");
        if (o.features == ML_FEATURES_WINDOW)
            printf("  windows    %" PRIu32 " readings; %s of the %s rows only filled them\n",
                   o.window, ml_thousands(t.n_cold, c, sizeof c),
                   ml_thousands(t.n_source_rows, b, sizeof b));
        if (t.from_ms > 0) {
            clock_format_ms(t.from_ms, a, sizeof a);
            clock_format_ms(t.to_ms, b, sizeof b);
            printf("  time       %s to %s\n", a, b);
        }
        if (t.n_doubted > 0)
            printf("  left out   %s readings quarantined or doubted by the tamper checks\n",
                   ml_thousands(t.n_doubted, c, sizeof c));
        if (!isnan(labelled_share))
            printf("  labels     %.2f%% of the rows are labelled anomalous (not used in "
                   "training)\n",
                   labelled_share * 100);
        printf("  forest     %" PRIu32 " trees, psi %" PRIu32 ", depth limit %" PRIu32
               ", seed %" PRIu64 ", %u thread%s\n",
               p->n_trees, p->subsample, p->max_depth, p->seed, threads, threads == 1 ? "" : "s");
        if (p->contamination > 0)
            printf("  threshold  %.4f (contamination %.4g: that share of the training rows "
                   "score at or above it)\n",
                   iforest_threshold(f), p->contamination);
        else
            printf("  threshold  %.4f (contamination auto; --contamination C sets it from the "
                   "expected share of anomalies)\n",
                   iforest_threshold(f));
    }
    goto done;
fail:
    ml_status_clear();
    fprintf(stderr, "canary train: %s\n", err[0] ? err : "failed");
done:
    iforest_free(f);
    ml_table_free(&t);
    ml_names_free(&metrics_used);
    ml_names_free(&o.columns);
    ml_names_free(&o.devices);
    ml_names_free(&o.metrics);
    return exit_code;
}
