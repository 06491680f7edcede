/* replay.c — `canary replay`: a CSV file, or a directory of them, through the detectors
 * canaryd runs live, with a score and flags for every row.
 *
 * Promises (the engine's in replay.h):
 *  - the detectors are canaryd's own code with canaryd's configuration: the same file,
 *    environment and --set flags, with the same precedence, and the same calls per reading;
 *  - a row is scored having seen only the rows before it in its file;
 *  - output has one line per input row, in input order; a file is written to a temporary
 *    name and renamed, so a failed run never leaves half a file;
 *  - a directory is replayed file by file (every *.csv below it, on --jobs threads), each
 *    into the same relative path under the output directory; one bad file does not stop
 *    the others, it makes the exit status 1;
 *  - exit status 0 on success, 1 when a file or the data is the problem, 2 for bad usage. */
#include "cli/replay.h"

#include "cli/commands.h"
#include "cli/ml_common.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/metric.h"
#include "detect/detect_config.h"
#include "tamper/tamper.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "replay"

/* ---- the engine (replay.h) ---------------------------------------------------------- */

void replay_result_free(struct replay_result *r)
{
    if (r->metrics != NULL) {
        for (size_t i = 0; i < r->data.n_cols; i++)
            free(r->metrics[i]);
    }
    free(r->metrics);
    free(r->score);
    free(r->flags);
    free(r->status);
    dataset_free(&r->data);
    memset(r, 0, sizeof *r);
}

/* The timestamp column: the one named, else the first of timestamp, ts, time the header
 * has. */
static int pick_timestamp(const struct replay_options *o, const char *path,
                          const struct ml_names *header, struct replay_result *r, char *err,
                          size_t errlen)
{
    static const char *const guesses[] = {"timestamp", "ts", "time"};
    const char *ts = o->timestamp_column;
    for (size_t i = 0; ts == NULL && i < sizeof guesses / sizeof guesses[0]; i++) {
        if (ml_names_has(header, guesses[i]))
            ts = guesses[i];
    }
    if (ts == NULL || !ml_names_has(header, ts)) {
        char have[512] = "";
        for (size_t i = 0; i < header->n && strlen(have) < sizeof have - 64; i++) {
            size_t at = strlen(have);
            snprintf(have + at, sizeof have - at, "%s%s", i ? ", " : "", header->names[i]);
        }
        if (ts == NULL)
            snprintf(err, errlen,
                     "%s: no timestamp column (none is named timestamp, ts or time; name it "
                     "with --timestamp-column; the header has: %s)",
                     path, have);
        else
            snprintf(err, errlen, "%s: no timestamp column '%s' (the header has: %s)", path, ts,
                     have);
        return o->timestamp_column != NULL ? CANARY_ENOTFOUND : CANARY_EINVAL;
    }
    snprintf(r->timestamp_column, sizeof r->timestamp_column, "%s", ts);
    return 0;
}

/* Every value column the options name is in the header (all missing ones named at once). */
static int check_value_columns(const struct replay_options *o, const char *path,
                               const struct ml_names *header, char *err, size_t errlen)
{
    char missing[512] = "";
    size_t n_missing = 0;
    for (size_t i = 0; i < o->n_value_columns; i++) {
        if (ml_names_has(header, o->value_columns[i]))
            continue;
        size_t at = strlen(missing);
        if (at < sizeof missing - 64)
            snprintf(missing + at, sizeof missing - at, "%s'%s'", n_missing ? ", " : "",
                     o->value_columns[i]);
        n_missing++;
    }
    if (n_missing == 0)
        return 0;
    char have[512] = "";
    for (size_t i = 0; i < header->n && strlen(have) < sizeof have - 64; i++) {
        size_t at = strlen(have);
        snprintf(have + at, sizeof have - at, "%s%s", i ? ", " : "", header->names[i]);
    }
    snprintf(err, errlen, "%s: no value column%s %s (the header has: %s)", path,
             n_missing > 1 ? "s" : "", missing, have);
    return CANARY_ENOTFOUND;
}

/* The metric of each value column: --metric COLUMN=NAME, else --metric NAME for a single
 * column, else the column's own name. */
static int resolve_metrics(const struct replay_options *o, const char *path,
                           struct replay_result *r, char *err, size_t errlen)
{
    const struct dataset *d = &r->data;
    if (o->metric != NULL && d->n_cols != 1) {
        snprintf(err, errlen,
                 "%s: --metric %s names the metric of one value column, the file has %zu (%s%s); "
                 "use --metric COLUMN=NAME for each",
                 path, o->metric, d->n_cols, d->n_cols ? d->col_names[0] : "",
                 d->n_cols > 1 ? ", ..." : "");
        return CANARY_EINVAL;
    }
    for (size_t m = 0; m < o->n_metrics; m++) {
        if (dataset_col_index(d, o->metrics[m].column) < 0) {
            snprintf(err, errlen, "%s: --metric %s=%s: '%s' is not a value column of the file",
                     path, o->metrics[m].column, o->metrics[m].metric, o->metrics[m].column);
            return CANARY_EINVAL;
        }
    }
    if ((r->metrics = calloc(d->n_cols ? d->n_cols : 1, sizeof *r->metrics)) == NULL)
        return CANARY_ENOMEM;
    for (size_t c = 0; c < d->n_cols; c++) {
        const char *name = d->col_names[c];
        bool named = false;
        for (size_t m = 0; m < o->n_metrics; m++) {
            if (strcmp(o->metrics[m].column, d->col_names[c]) == 0) {
                name = o->metrics[m].metric;
                named = true;
            }
        }
        if (o->metric != NULL) {
            name = o->metric;
            named = true;
        }
        if (named && !metric_name_valid(name, strlen(name), READING_MAX_METRIC_LEN)) {
            snprintf(err, errlen,
                     "metric '%s' is not a valid metric name (1-%d characters of a-z, 0-9 and _, "
                     "starting with a letter, as canaryd accepts them)",
                     name, READING_MAX_METRIC_LEN);
            return CANARY_EINVAL;
        }
        if ((r->metrics[c] = strdup(name)) == NULL)
            return CANARY_ENOMEM;
    }
    return 0;
}

/* True when canaryd's verify stage accepts x for the metric (verify/verify.c: a catalogued
 * metric's value must lie within its plausible range; any finite value of another metric
 * is accepted). */
static bool plausible(const struct metric_info *known, double x)
{
    return known == NULL || (x >= known->min && x <= known->max);
}

/* The rows, in order, through the detectors. */
static int run_rows(const struct replay_options *o, struct replay_result *r)
{
    struct dataset *d = &r->data;
    size_t nc = d->n_cols, nr = d->n_rows;
    struct detect_params params;
    if (o->params != NULL)
        params = *o->params;
    else
        detect_params_from_config(o->cfg, &params);

    struct series_state *series = calloc(nc ? nc : 1, sizeof *series);
    struct series_state **row_series = calloc(nc ? nc : 1, sizeof *row_series);
    /* The tamper checks, as canaryd's shard runs them after the detectors (tamper.h). */
    struct tamper_series *tamper = calloc(nc ? nc : 1, sizeof *tamper);
    struct tamper_series **row_tamper = calloc(nc ? nc : 1, sizeof *row_tamper);
    struct tamper_device trust;
    tamper_device_init(&trust);
    struct metric_value *values = calloc(nc ? nc : 1, sizeof *values);
    const struct metric_info **known = calloc(nc ? nc : 1, sizeof *known);
    r->score = malloc((nr ? nr : 1) * sizeof *r->score);
    r->flags = calloc(nr ? nr : 1, sizeof *r->flags);
    r->status = calloc(nr ? nr : 1, sizeof *r->status);
    int rc = CANARY_ENOMEM;
    if (series == NULL || row_series == NULL || values == NULL || known == NULL ||
        r->score == NULL || r->flags == NULL || r->status == NULL || tamper == NULL ||
        row_tamper == NULL)
        goto done;
    for (size_t c = 0; c < nc; c++) {
        tamper_series_init(&tamper[c], r->metrics[c]);
        detect_series_setup(&series[c], o->cfg, o->device, r->metrics[c]);
        known[c] = metric_lookup(r->metrics[c]);
    }
    struct gap_state gap = {0};
    int64_t t0 = clock_mono_ns();
    for (size_t i = 0; i < nr; i++) {
        const double *x = dataset_row(d, i);
        uint32_t n = 0;
        bool refused = false;
        for (size_t c = 0; c < nc; c++) {
            if (isnan(x[c]))
                continue;
            refused |= !plausible(known[c], x[c]);
            values[n] = (struct metric_value){.name = r->metrics[c], .value = x[c]};
            row_tamper[n] = &tamper[c];
            row_series[n++] = &series[c];
        }
        r->score[i] = NAN;
        if (n == 0) {
            r->status[i] = REPLAY_ROW_EMPTY;
            r->n_empty++;
            continue;
        }
        if (refused) {
            r->status[i] = REPLAY_ROW_REFUSED;
            r->n_refused++;
            continue;
        }
        detect_reading(&gap, row_series, &params, values, n, d->ts_ms[i]);
        struct reading reading = {o->device, 0, d->ts_ms[i], d->ts_ms[i], values, n, false, true};
        struct tamper_outcome judged;
        tamper_reading(&o->cfg->tamper, &trust, row_tamper, &reading, &judged);
        float score = 0;
        uint32_t flags = 0;
        for (uint32_t k = 0; k < n; k++) {
            score = values[k].score > score ? values[k].score : score;
            flags |= values[k].flags;
        }
        r->score[i] = score;
        r->flags[i] = flags;
        r->n_scored++;
        r->n_warmup += (flags & FLAG_WARMUP) != 0;
        r->n_anomalous += (flags & FLAG_ANOMALY) != 0;
    }
    r->detect_ns = clock_mono_ns() - t0;
    rc = 0;
done:
    free(series);
    free(row_series);
    free(tamper);
    free(row_tamper);
    free(values);
    free(known);
    return rc;
}

int replay_file(const struct replay_options *o, const char *path, struct replay_result *r,
                char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    struct ml_names header = {0};
    int rc = ml_csv_header(path, &header, err, errlen);
    if (rc == 0)
        rc = pick_timestamp(o, path, &header, r, err, errlen);
    if (rc == 0)
        rc = check_value_columns(o, path, &header, err, errlen);
    ml_names_free(&header);
    if (rc != 0)
        return rc;
    /* The timestamp column is also read as the device column: dataset.h then keeps each
     * row's text, which the output repeats as it was written. */
    struct dataset_options dopt = {
        .timestamp_column = r->timestamp_column,
        .device_column = r->timestamp_column,
        .value_columns = o->value_columns,
        .n_value_columns = o->n_value_columns,
    };
    rc = dataset_load_csv(&r->data, path, &dopt, err, errlen);
    if (rc == 0 && r->data.n_cols == 0) {
        snprintf(err, errlen, "%s: no value column (the header has only '%s')", path,
                 r->timestamp_column);
        rc = CANARY_EINVAL;
    }
    if (rc == 0)
        rc = resolve_metrics(o, path, r, err, errlen);
    if (rc == 0)
        rc = run_rows(o, r);
    if (rc == CANARY_ENOMEM)
        snprintf(err, errlen, "%s: out of memory", path);
    if (rc != 0)
        replay_result_free(r);
    return rc;
}

char *replay_flag_names(uint32_t flags, char *buf, size_t len)
{
    size_t at = 0;
    if (len > 0)
        buf[0] = '\0';
    for (uint32_t bit = 1; flags != 0 && bit != 0; bit <<= 1) {
        if (!(flags & bit))
            continue;
        flags &= ~bit;
        const char *name = reading_flag_name(bit);
        if (name == NULL || at >= len)
            continue;
        int w = snprintf(buf + at, len - at, "%s%s", at ? "|" : "", name);
        at += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

/* Writes the CSV field s, quoted when it holds a comma, a quote or a line break. */
static void put_field(FILE *out, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* The shortest %g form of x that reads back as x (at most 17 digits). */
static void put_double(FILE *out, double x)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    fputs(buf, out);
}

int replay_write_csv(FILE *out, const struct replay_result *r)
{
    const struct dataset *d = &r->data;
    put_field(out, r->timestamp_column);
    for (size_t c = 0; c < d->n_cols; c++) {
        fputc(',', out);
        put_field(out, d->col_names[c]);
    }
    fputs(",score,flags\n", out);
    char names[256];
    for (size_t i = 0; i < d->n_rows; i++) {
        put_field(out, d->devices[i]);
        const double *x = dataset_row(d, i);
        for (size_t c = 0; c < d->n_cols; c++) {
            fputc(',', out);
            if (!isnan(x[c]))
                put_double(out, x[c]);
        }
        switch (r->status[i]) {
        case REPLAY_ROW_SCORED:
            fprintf(out, ",%.9g,%s\n", (double)r->score[i],
                    replay_flag_names(r->flags[i], names, sizeof names));
            break;
        case REPLAY_ROW_REFUSED:
            fputs(",,refused\n", out);
            break;
        default:
            fputs(",,\n", out);
            break;
        }
    }
    if (fflush(out) != 0 || ferror(out))
        return errno ? errno : EIO;
    return 0;
}

struct pool {
    size_t n;
    _Atomic size_t next;
    void (*fn)(void *arg, size_t i);
    void *arg;
};

static void *pool_worker(void *p_)
{
    struct pool *p = p_;
    for (size_t i; (i = atomic_fetch_add(&p->next, 1)) < p->n;)
        p->fn(p->arg, i);
    return NULL;
}

int replay_parallel(size_t n, unsigned jobs, void (*fn)(void *arg, size_t i), void *arg)
{
    if (jobs == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        jobs = cores > 0 ? (unsigned)cores : 1;
    }
    if (jobs > n)
        jobs = n > 0 ? (unsigned)n : 1;
    struct pool p = {.n = n, .fn = fn, .arg = arg};
    atomic_init(&p.next, 0);
    pthread_t *t = calloc(jobs, sizeof *t);
    if (t == NULL)
        return CANARY_ENOMEM;
    unsigned started = 0;
    for (; started + 1 < jobs; started++) {
        if (pthread_create(&t[started], NULL, pool_worker, &p) != 0)
            break;
    }
    pool_worker(&p); /* the caller's thread works too: at least one always runs */
    for (unsigned k = 0; k < started; k++)
        pthread_join(t[k], NULL);
    free(t);
    return 0;
}

/* ---- the command -------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary replay --input FILE.csv [--output SCORES.csv] [options]\n"
            "       canary replay --input DIR --output DIR [options]\n"
            "\n"
            "Runs the rows of a CSV file, in order, through the streaming detectors canaryd runs\n"
            "live — the same code with the same configuration — as the readings of one device,\n"
            "and writes CSV with one line per input row:\n"
            "\n"
            "  timestamp,value,score,flags\n"
            "  2014-04-01 00:00:00,19.76,0,warmup\n"
            "  2014-04-02 14:05:00,86.22,0.982345164,anomaly\n"
            "\n"
            "The timestamp and the values are written as they were read; score (0..1) is the\n"
            "highest of the row's values; flags are the detectors' (warmup, warn, critical, low,\n"
            "anomaly, rate, flatline, gap), joined by '|'. A row is scored having seen only the\n"
            "rows before it. A row whose values are all missing is no reading (empty score); a\n"
            "value outside its metric's plausible range makes canaryd refuse the reading\n"
            "(flags: refused).\n"
            "\n"
            "With a directory, every *.csv below --input is replayed into the same relative path\n"
            "below --output, --jobs files at a time.\n"
            "\n"
            "options:\n"
            "  --input PATH              a CSV file or a directory of them (required)\n"
            "  --output PATH             where to write (a file: default stdout; a directory:\n"
            "                            required)\n"
            "  --timestamp-column NAME   the time of each row (default: the column named\n"
            "                            timestamp, ts or time): Unix seconds or ms, or ISO 8601\n"
            "                            (\"2014-04-01 00:00:00\"; no zone means UTC)\n"
            "  --value-columns A,B       the columns to score (default: every other column)\n"
            "  --metric NAME             the metric of the only value column (default: the\n"
            "                            column's name: a catalogued metric gets its limits,\n"
            "                            any other name is a generic metric with none)\n"
            "  --metric COLUMN=NAME      the metric of one column (repeatable)\n"
            "  --device ID               the device, for [device.ID.<metric>] limits\n"
            "  -c, --config FILE         canaryd's configuration file (also: CANARY_CONFIG)\n"
            "  --set KEY=VALUE           a configuration key, as canaryd --set (repeatable):\n"
            "                            detect.* and metric.<name>.* matter here\n"
            "  --jobs N                  files replayed at once in directory mode (default: one\n"
            "                            per core)\n"
            "  --help                    show this help\n"
            "\n"
            "Configuration precedence as canaryd's: defaults < file < environment\n"
            "(CANARY_<SECTION>_<KEY>) < --set. A summary goes to stderr. Exit status: 0 on\n"
            "success, 1 when a file or the data is the problem, 2 for bad usage or configuration.\n"
            "See docs/REPLAY.md.\n");
}

struct args {
    const char *input, *output, *config;
    const char *timestamp_column;
    struct ml_names value_columns;
    const char *metric;
    struct replay_metric metrics[64];
    size_t n_metrics;
    const char *device;
    const char *sets[128];
    size_t n_sets;
    uint32_t jobs;
};

/* Parses the command line into a; returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return ml_bad_usage(CMD, "%s: unknown option or missing value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "--input")) {
            a->input = v;
        } else if (!strcmp(o, "--output")) {
            a->output = v;
        } else if (!strcmp(o, "--config") || !strcmp(o, "-c")) {
            a->config = v;
        } else if (!strcmp(o, "--timestamp-column")) {
            a->timestamp_column = v;
        } else if (!strcmp(o, "--value-columns")) {
            if (ml_names_add_list(&a->value_columns, v) != 0)
                return ml_bad_usage(CMD, "--value-columns: an empty name in '%s'", v);
        } else if (!strcmp(o, "--metric")) {
            const char *eq = strchr(v, '=');
            if (eq == NULL) {
                a->metric = v;
            } else {
                if (a->n_metrics == sizeof a->metrics / sizeof a->metrics[0])
                    return ml_bad_usage(CMD, "--metric: at most %zu COLUMN=NAME pairs",
                                        sizeof a->metrics / sizeof a->metrics[0]);
                if (eq == v || eq[1] == '\0')
                    return ml_bad_usage(CMD, "--metric %s: want COLUMN=NAME", v);
                /* argv strings are writable: split the pair in place. */
                *(char *)eq = '\0';
                a->metrics[a->n_metrics++] = (struct replay_metric){v, eq + 1};
            }
        } else if (!strcmp(o, "--device")) {
            a->device = v;
        } else if (!strcmp(o, "--set")) {
            if (a->n_sets == sizeof a->sets / sizeof a->sets[0])
                return ml_bad_usage(CMD, "--set: at most %zu", sizeof a->sets / sizeof a->sets[0]);
            a->sets[a->n_sets++] = v;
        } else if (!strcmp(o, "--jobs")) {
            if (ml_parse_u32(CMD, o, v, 0, 1024, &a->jobs) != 0)
                return 2;
        } else {
            return ml_bad_usage(CMD, "unknown option: %s", o);
        }
    }
    if (a->input == NULL)
        return ml_bad_usage(CMD, "--input FILE.csv (or a directory) is required");
    if (a->metric != NULL && a->n_metrics > 0)
        return ml_bad_usage(CMD, "--metric NAME and --metric COLUMN=NAME do not go together");
    return -1;
}

/* canaryd's configuration: defaults < file (--config, else CANARY_CONFIG) < environment <
 * --set, validated as canaryd validates it. Returns 0 or an exit status with the message
 * printed. */
static int load_config(const struct args *a, struct canary_config *cfg)
{
    char err[1024];
    const char *path = a->config != NULL ? a->config : getenv("CANARY_CONFIG");
    if (path != NULL && path[0] != '\0' && config_load_file(cfg, path, err, sizeof err) != 0)
        goto fail;
    if (config_load_env(cfg, err, sizeof err) != 0)
        goto fail;
    for (size_t i = 0; i < a->n_sets; i++) {
        char key[256];
        const char *eq = strchr(a->sets[i], '=');
        if (eq == NULL || eq == a->sets[i] || (size_t)(eq - a->sets[i]) >= sizeof key) {
            fprintf(stderr, "canary %s: --set %s: want KEY=VALUE\n", CMD, a->sets[i]);
            return 2;
        }
        memcpy(key, a->sets[i], (size_t)(eq - a->sets[i]));
        key[eq - a->sets[i]] = '\0';
        if (config_set(cfg, key, eq + 1, CONFIG_SRC_FLAG, err, sizeof err) != 0)
            goto fail;
    }
    char why[900];
    if (config_validate(cfg, why, sizeof why) != 0) {
        snprintf(err, sizeof err, "invalid configuration: %s", why);
        goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "canary %s: %s\n", CMD, err);
    return 2;
}

/* mkdir -p of the directory part of path. */
static int make_parents(const char *path, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %.1024s: %s", buf, strerror(errno));
            return CANARY_EIO;
        }
        *p = '/';
    }
    return 0;
}

/* Writes r to output (NULL = stdout) through a temporary file renamed at the end. Returns 0,
 * or CANARY_EIO with the message in err. */
static int write_output(const struct replay_result *r, const char *output, char *err, size_t errlen)
{
    if (output == NULL) {
        int werr = replay_write_csv(stdout, r);
        if (werr != 0) {
            snprintf(err, errlen, "writing the scores: %s", strerror(werr));
            return CANARY_EIO;
        }
        return 0;
    }
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%lx", output, (long)getpid(),
             (unsigned long)pthread_self());
    FILE *out = fopen(tmp, "w");
    if (out == NULL) {
        snprintf(err, errlen, "%s: %s", output, strerror(errno));
        return CANARY_EIO;
    }
    int werr = replay_write_csv(out, r);
    if (fclose(out) != 0 && werr == 0)
        werr = errno ? errno : EIO;
    if (werr == 0 && rename(tmp, output) != 0)
        werr = errno;
    if (werr != 0) {
        unlink(tmp);
        snprintf(err, errlen, "writing %s: %s", output, strerror(werr));
        return CANARY_EIO;
    }
    return 0;
}

/* Replays one file into output (NULL = stdout); with parents, creates output's directories
 * first (once the input has been read, so a bad file leaves none behind). Returns 0 with r
 * filled (the caller frees it), or a CANARY_E* code with the message in err and r empty. */
static int replay_one(const struct replay_options *o, const char *input, const char *output,
                      bool parents, struct replay_result *r, char *err, size_t errlen)
{
    int rc = replay_file(o, input, r, err, errlen);
    if (rc != 0)
        return rc;
    if (output != NULL && parents)
        rc = make_parents(output, err, errlen);
    if (rc == 0)
        rc = write_output(r, output, err, errlen);
    if (rc != 0)
        replay_result_free(r);
    return rc;
}

/* ---- directory mode ---- */

struct tree {
    char **rel; /* paths of the CSV files relative to the root, sorted */
    size_t n, cap;
};

static void tree_free(struct tree *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->rel[i]);
    free(t->rel);
    memset(t, 0, sizeof *t);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with_csv(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".csv") == 0;
}

/* Collects every regular *.csv file below root/rel (rel "" at the top), skipping the
 * directory `skip` (the output directory, when it lies inside the input). */
static int walk(const char *root, const char *rel, const struct stat *skip, struct tree *t,
                char *err, size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "%.1024s: %s", dir, strerror(errno));
        return CANARY_EIO;
    }
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue; /* ., .., hidden files and our own temporary files */
        char sub[PATH_MAX], full[PATH_MAX];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        struct stat st;
        if (snprintf(full, sizeof full, "%s/%s", root, sub) >= (int)sizeof full ||
            stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (skip != NULL && st.st_dev == skip->st_dev && st.st_ino == skip->st_ino)
                continue;
            rc = walk(root, sub, skip, t, err, errlen);
        } else if (S_ISREG(st.st_mode) && ends_with_csv(e->d_name)) {
            if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 64;
                char **grown = realloc(t->rel, cap * sizeof *grown);
                if (grown == NULL) {
                    rc = CANARY_ENOMEM;
                    break;
                }
                t->rel = grown;
                t->cap = cap;
            }
            if ((t->rel[t->n] = strdup(sub)) == NULL)
                rc = CANARY_ENOMEM;
            else
                t->n++;
        }
    }
    closedir(d);
    if (rc == CANARY_ENOMEM)
        snprintf(err, errlen, "out of memory listing %.1024s", dir);
    return rc;
}

struct dir_job {
    const struct replay_options *opt;
    const char *in_root, *out_root;
    const struct tree *tree;
    _Atomic size_t failed, rows, anomalous;
};

static void replay_dir_file(void *arg, size_t i)
{
    struct dir_job *j = arg;
    char in[PATH_MAX], out[PATH_MAX], err[2048] = "";
    snprintf(in, sizeof in, "%s/%s", j->in_root, j->tree->rel[i]);
    snprintf(out, sizeof out, "%s/%s", j->out_root, j->tree->rel[i]);
    struct replay_result r;
    int rc = replay_one(j->opt, in, out, true, &r, err, sizeof err);
    if (rc == 0) {
        atomic_fetch_add(&j->rows, r.data.n_rows);
        atomic_fetch_add(&j->anomalous, r.n_anomalous);
        replay_result_free(&r);
    }
    if (rc != 0) {
        fprintf(stderr, "canary %s: %s\n", CMD, err);
        atomic_fetch_add(&j->failed, 1);
    }
}

static int replay_dir(const struct args *a, const struct replay_options *o)
{
    char err[2048] = "";
    if (a->output == NULL)
        return ml_bad_usage(CMD, "--input %s is a directory: --output DIR is required", a->input);
    struct stat st;
    if (stat(a->output, &st) == 0 && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "canary %s: --output %s is not a directory (the input is one)\n", CMD,
                a->output);
        return 1;
    }
    if (mkdir(a->output, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "canary %s: cannot create %s: %s\n", CMD, a->output, strerror(errno));
        return 1;
    }
    bool have_out = stat(a->output, &st) == 0;
    struct tree t = {0};
    int64_t t0 = clock_mono_ns();
    if (walk(a->input, "", have_out ? &st : NULL, &t, err, sizeof err) != 0) {
        fprintf(stderr, "canary %s: %s\n", CMD, err);
        tree_free(&t);
        return 1;
    }
    if (t.n == 0) {
        fprintf(stderr, "canary %s: no *.csv file below %s\n", CMD, a->input);
        tree_free(&t);
        return 1;
    }
    qsort(t.rel, t.n, sizeof *t.rel, by_name);
    struct dir_job j = {.opt = o, .in_root = a->input, .out_root = a->output, .tree = &t};
    atomic_init(&j.failed, 0);
    atomic_init(&j.rows, 0);
    atomic_init(&j.anomalous, 0);
    if (replay_parallel(t.n, a->jobs, replay_dir_file, &j) != 0) {
        fprintf(stderr, "canary %s: out of memory starting threads\n", CMD);
        tree_free(&t);
        return 1;
    }
    size_t failed = atomic_load(&j.failed);
    char rows[32], anom[32];
    fprintf(stderr, "canary %s: %zu of %zu files, %s rows in %.2f s, %s rows flagged anomaly: %s\n",
            CMD, t.n - failed, t.n, ml_thousands(atomic_load(&j.rows), rows, sizeof rows),
            ml_seconds_since(t0), ml_thousands(atomic_load(&j.anomalous), anom, sizeof anom),
            a->output);
    tree_free(&t);
    return failed ? 1 : 0;
}

int cmd_replay(int argc, char **argv)
{
    struct args a = {0};
    int status = parse_args(argc, argv, &a);
    if (status >= 0) {
        ml_names_free(&a.value_columns);
        return status;
    }
    struct canary_config cfg;
    config_init(&cfg);
    if ((status = load_config(&a, &cfg)) != 0)
        goto done;
    struct replay_options o = {
        .cfg = &cfg,
        .device = a.device,
        .timestamp_column = a.timestamp_column,
        .value_columns = (const char *const *)a.value_columns.names,
        .n_value_columns = a.value_columns.n,
        .metric = a.metric,
        .metrics = a.metrics,
        .n_metrics = a.n_metrics,
    };
    struct stat st;
    if (stat(a.input, &st) != 0) {
        fprintf(stderr, "canary %s: %s: %s\n", CMD, a.input, strerror(errno));
        status = 1;
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        status = replay_dir(&a, &o);
        goto done;
    }
    if (a.output != NULL && stat(a.output, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "canary %s: --output %s is a directory (the input is a file)\n", CMD,
                a.output);
        status = 1;
        goto done;
    }
    char err[2048] = "";
    struct replay_result r;
    int64_t t0 = clock_mono_ns();
    if (replay_one(&o, a.input, a.output, false, &r, err, sizeof err) != 0) {
        fprintf(stderr, "canary %s: %s\n", CMD, err);
        status = 1;
        goto done;
    }
    char rows[32], anom[32];
    fprintf(stderr,
            "canary %s: %s rows in %.2f s: %zu in warm-up, %s flagged anomaly, %zu refused, %zu "
            "empty%s%s\n",
            CMD, ml_thousands(r.data.n_rows, rows, sizeof rows), ml_seconds_since(t0), r.n_warmup,
            ml_thousands(r.n_anomalous, anom, sizeof anom), r.n_refused, r.n_empty,
            a.output ? ": " : "", a.output ? a.output : "");
    replay_result_free(&r);
    status = 0;
done:
    config_free(&cfg);
    ml_names_free(&a.value_columns);
    return status;
}
