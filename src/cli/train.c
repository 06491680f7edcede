/* train.c — `canary train`: an Isolation Forest (ml/iforest.h) trained on the user's own
 * sensor history, from a CSV file or from canaryd's store, written to a model file.
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
        return ml_bad_usage(CMD, "--model is required (iforest is the one model it trains)");
    if (strcmp(model, "iforest") != 0)
        return ml_bad_usage(CMD, "--model iforest is the one model it trains, got '%s'", model);
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

int cmd_train(int argc, char **argv)
{
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
