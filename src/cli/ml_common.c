/* ml_common.c — the shared part of `canary train`, `score` and `eval` (ml_common.h): option
 * values, feature matrices from a CSV file or from canaryd's store, the progress bar, and
 * the description of a model.
 *
 * Window features follow ml/features.h exactly as canaryd's workers will: one series per
 * (device, metric), values pushed in time order, a vector per row once every series of the
 * device holds a full window. Rows of cold series are counted, not used. */
#include "cli/ml_common.h"

#include "core/clock.h"
#include "core/error.h"
#include "ml/features.h"
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DB_PAGE_READINGS 50000 /* readings per store query when reading history */
#define DB_MAX_DEVICES   100000

/* ---- option values ------------------------------------------------------------------ */

int ml_bad_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "canary %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see canary %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

int ml_parse_u32(const char *cmd, const char *opt, const char *s, uint32_t lo, uint32_t hi,
                 uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return ml_bad_usage(cmd,
                            "%s must be a whole number from %" PRIu32 " to %" PRIu32 ", got '%s'",
                            opt, lo, hi, s);
    *out = (uint32_t)v;
    return 0;
}

int ml_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0)
        return ml_bad_usage(cmd, "%s must be a whole number from 0 to 2^64-1, got '%s'", opt, s);
    *out = v;
    return 0;
}

int ml_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                    double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi)
        return ml_bad_usage(cmd, "%s must be a number from %g to %g, got '%s'", opt, lo, hi, s);
    *out = v;
    return 0;
}

/* Reads exactly n digits at *p into *v. */
static bool digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return true;
}

int ml_parse_time(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    double num = strtod(s, &end);
    if (*s != '\0' && *end == '\0' && errno == 0 && isfinite(num) && strchr(s, '-') == NULL) {
        /* Unix time: seconds below 1e11, else milliseconds (as dataset.h reads them). */
        double v = fabs(num) < 1e11 ? num * 1000 : num;
        if (fabs(v) > 9e15)
            return -1;
        *ms = (int64_t)llround(v);
        return 0;
    }
    const char *p = s;
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return -1;
    double frac = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return -1;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                return -1;
            if (*p == '.') {
                const char *f = p;
                double scale = 0.1;
                for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
                    frac += (*p - '0') * scale;
                if (p == f + 1)
                    return -1;
            }
        }
    }
    int64_t offset_min = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (!digits(&p, 2, &oh))
            return -1;
        if (*p == ':')
            p++;
        if (isdigit((unsigned char)*p) && !digits(&p, 2, &om))
            return -1;
        offset_min = sign * (oh * 60 + om);
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *ms = (int64_t)t * 1000 + (int64_t)llround(frac * 1000) - offset_min * 60000;
    return 0;
}

int ml_names_add_list(struct ml_names *l, const char *csv)
{
    char *copy = strdup(csv);
    char **blocks = realloc(l->blocks, (l->n_blocks + 1) * sizeof *blocks);
    if (copy == NULL || blocks == NULL) {
        free(copy);
        if (blocks != NULL)
            l->blocks = blocks;
        return CANARY_ENOMEM;
    }
    l->blocks = blocks;
    l->blocks[l->n_blocks++] = copy;
    for (char *p = copy;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        while (isspace((unsigned char)*p))
            p++;
        size_t len = strlen(p);
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            p[--len] = '\0';
        if (len == 0)
            return CANARY_EINVAL;
        char **grown = realloc(l->names, (l->n + 1) * sizeof *grown);
        if (grown == NULL)
            return CANARY_ENOMEM;
        l->names = grown;
        l->names[l->n++] = p;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

bool ml_names_has(const struct ml_names *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->names[i], name) == 0)
            return true;
    }
    return false;
}

void ml_names_free(struct ml_names *l)
{
    for (size_t i = 0; i < l->n_blocks; i++)
        free(l->blocks[i]);
    free(l->blocks);
    free(l->names);
    memset(l, 0, sizeof *l);
}

/* ---- CSV files ---------------------------------------------------------------------- */

int ml_csv_header(const char *path, struct ml_names *names, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    /* The first line that is not blank, as dataset.h skips blank lines. */
    while ((n = getline(&line, &cap, f)) >= 0 && strspn(line, "\r\n") == (size_t)n)
        ;
    fclose(f);
    if (n < 0) {
        free(line);
        snprintf(err, errlen, "%s: empty file (no header)", path);
        return CANARY_EINVAL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    /* Unquote in place: "a,b" and "" inside quotes; then split on the commas outside. */
    char *out = line;
    bool quoted = false;
    for (char *p = line; *p; p++) {
        if (*p == '"') {
            if (quoted && p[1] == '"') {
                *out++ = '"';
                p++;
            } else {
                quoted = !quoted;
            }
        } else if (*p == ',' && !quoted) {
            *out++ = '\x1f'; /* a separator no header name holds */
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    int rc = 0;
    for (char *p = line; rc == 0;) {
        char *sep = strchr(p, '\x1f');
        if (sep != NULL)
            *sep = '\0';
        /* ml_names_add_list splits on commas: a name holding one goes in by hand. */
        char *copy = strdup(p);
        char **blocks =
            copy ? realloc(names->blocks, (names->n_blocks + 1) * sizeof *blocks) : NULL;
        char **grown = blocks ? realloc(names->names, (names->n + 1) * sizeof *grown) : NULL;
        if (blocks != NULL)
            names->blocks = blocks;
        if (grown == NULL) {
            free(copy);
            rc = CANARY_ENOMEM;
            break;
        }
        names->blocks[names->n_blocks++] = copy;
        names->names = grown;
        names->names[names->n++] = copy;
        if (sep == NULL)
            break;
        p = sep + 1;
    }
    free(line);
    if (rc != 0)
        snprintf(err, errlen, "%s: out of memory reading the header", path);
    return rc;
}

/* Appends "a, b, c" (at most max names, then ", ...") to buf. */
static void join_names(char *buf, size_t len, const char *const *names, size_t n, size_t max)
{
    size_t at = strlen(buf);
    for (size_t i = 0; i < n && at < len; i++) {
        if (i == max) {
            snprintf(buf + at, len - at, ", ... (%zu in all)", n);
            return;
        }
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "", names[i]);
    }
}

int ml_load_csv(struct dataset *d, const struct ml_csv_spec *spec, char *err, size_t errlen)
{
    struct dataset_options o = {
        .label_column = spec->label_column,
        .timestamp_column = spec->timestamp_column,
        .device_column = spec->device_column,
        .value_columns = spec->columns,
        .n_value_columns = spec->n_columns,
    };
    int rc = dataset_load_csv(d, spec->path, &o, err, errlen);
    if (rc != CANARY_ENOTFOUND)
        return rc;
    /* Name every missing column at once, with its role, instead of the first one only. */
    struct ml_names header = {0};
    char sub[256];
    if (ml_csv_header(spec->path, &header, sub, sizeof sub) != 0)
        return rc; /* the loader's own message stands */
    const char *missing[64];
    size_t n_missing = 0, n_missing_values = 0;
    char roles[512] = "";
    const char *role_col[3] = {spec->label_column, spec->timestamp_column, spec->device_column};
    const char *role_name[3] = {"label", "timestamp", "device"};
    for (int k = 0; k < 3; k++) {
        if (role_col[k] != NULL && !ml_names_has(&header, role_col[k])) {
            size_t at = strlen(roles);
            snprintf(roles + at, sizeof roles - at, "%sno %s column '%s'", at ? ", " : "",
                     role_name[k], role_col[k]);
        }
    }
    for (size_t i = 0; i < spec->n_columns; i++) {
        if (!ml_names_has(&header, spec->columns[i])) {
            if (n_missing < sizeof missing / sizeof missing[0])
                missing[n_missing++] = spec->columns[i];
            n_missing_values++;
        }
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: ", spec->path);
    if (roles[0] != '\0') {
        size_t at = strlen(msg);
        snprintf(msg + at, sizeof msg - at, "%s", roles);
    }
    if (n_missing_values > 0) {
        size_t at = strlen(msg);
        snprintf(msg + at, sizeof msg - at,
                 "%smissing %zu of the %zu feature columns: ", roles[0] ? "; " : "",
                 n_missing_values, spec->n_columns);
        join_names(msg, sizeof msg, missing, n_missing, 12);
    }
    if (roles[0] == '\0' && n_missing_values == 0) {
        ml_names_free(&header);
        return rc;
    }
    size_t at = strlen(msg);
    snprintf(msg + at, sizeof msg - at, " (the header has: ");
    join_names(msg, sizeof msg, (const char *const *)header.names, header.n, 20);
    at = strlen(msg);
    snprintf(msg + at, sizeof msg - at, ")");
    snprintf(err, errlen, "%s", msg);
    ml_names_free(&header);
    return rc;
}

/* ---- feature tables ----------------------------------------------------------------- */

void ml_table_free(struct ml_table *t)
{
    if (t->names != NULL) {
        for (size_t i = 0; i < t->n_cols; i++)
            free(t->names[i]);
    }
    free(t->names);
    free(t->x);
    free(t->source);
    free(t->labels);
    memset(t, 0, sizeof *t);
}

static int alloc_names(struct ml_table *t, size_t n_cols)
{
    t->n_cols = n_cols;
    t->names = calloc(n_cols, sizeof *t->names);
    return t->names == NULL ? CANARY_ENOMEM : 0;
}

int ml_features_raw(const struct dataset *d, struct ml_table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    size_t n = d->n_rows, c = d->n_cols;
    if (alloc_names(t, c) != 0)
        goto oom;
    t->x = malloc((n * c > 0 ? n * c : 1) * sizeof *t->x);
    t->source = malloc((n ? n : 1) * sizeof *t->source);
    if (t->x == NULL || t->source == NULL)
        goto oom;
    if (d->labels != NULL && (t->labels = malloc((n ? n : 1) * sizeof *t->labels)) == NULL)
        goto oom;
    for (size_t i = 0; i < c; i++) {
        if ((t->names[i] = strdup(d->col_names[i])) == NULL)
            goto oom;
    }
    memcpy(t->x, d->x, n * c * sizeof *t->x);
    if (d->labels != NULL)
        memcpy(t->labels, d->labels, n * sizeof *t->labels);
    for (size_t r = 0; r < n; r++) {
        t->source[r] = r;
        if (d->ts_ms != NULL) {
            if (r == 0 || d->ts_ms[r] < t->from_ms)
                t->from_ms = d->ts_ms[r];
            if (r == 0 || d->ts_ms[r] > t->to_ms)
                t->to_ms = d->ts_ms[r];
        }
    }
    t->n_rows = t->n_source_rows = n;
    t->n_devices = d->devices ? d->n_devices : 1;
    return 0;
oom:
    ml_table_free(t);
    snprintf(err, errlen, "out of memory for %zu rows x %zu columns", n, c);
    return CANARY_ENOMEM;
}

/* Appends one row to a table being built (grows x, source and labels by doubling). */
static int table_append(struct ml_table *t, size_t *cap, const double *row, size_t source,
                        double label, bool with_labels, bool with_source)
{
    if (t->n_rows == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        double *x = realloc(t->x, nc * t->n_cols * sizeof *x);
        if (x == NULL)
            return CANARY_ENOMEM;
        t->x = x;
        if (with_source) {
            size_t *s = realloc(t->source, nc * sizeof *s);
            if (s == NULL)
                return CANARY_ENOMEM;
            t->source = s;
        }
        if (with_labels) {
            double *l = realloc(t->labels, nc * sizeof *l);
            if (l == NULL)
                return CANARY_ENOMEM;
            t->labels = l;
        }
        *cap = nc;
    }
    memcpy(t->x + t->n_rows * t->n_cols, row, t->n_cols * sizeof *row);
    if (with_source)
        t->source[t->n_rows] = source;
    if (with_labels)
        t->labels[t->n_rows] = label;
    t->n_rows++;
    return 0;
}

/* Names the columns of a window vector over metrics[0..n). */
static int window_names(struct ml_table *t, const char *const *metrics, size_t n, char *err,
                        size_t errlen)
{
    if (alloc_names(t, feature_vector_len(n)) != 0) {
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    for (size_t i = 0; i < t->n_cols; i++) {
        char buf[IFOREST_NAME_MAX];
        if (!feature_column_name(metrics, n, i, buf, sizeof buf)) {
            snprintf(err, errlen,
                     "'%s' is too long a name for window features (their names must be "
                     "shorter than %d characters with the '.rate_per_min' suffix)",
                     metrics[i / FEATURES_PER_SERIES < n ? i / FEATURES_PER_SERIES : 0],
                     IFOREST_NAME_MAX);
            return CANARY_EINVAL;
        }
        if ((t->names[i] = strdup(buf)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return CANARY_ENOMEM;
        }
    }
    return 0;
}

/* n series of one window each, allocated and started. */
static struct feature_series **series_new(size_t n, uint32_t window)
{
    struct feature_series **s = calloc(n ? n : 1, sizeof *s);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if ((s[i] = malloc(feature_series_size(window))) == NULL) {
            for (size_t k = 0; k < i; k++)
                free(s[k]);
            free(s);
            return NULL;
        }
        feature_series_init(s[i], window);
    }
    return s;
}

static void series_free(struct feature_series **s, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        free(s[i]);
    free(s);
}

int ml_features_window(const struct dataset *d, const char *path, uint32_t window,
                       struct ml_table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (d->ts_ms == NULL) {
        snprintf(err, errlen, "window features need a timestamp column");
        return CANARY_EINVAL;
    }
    size_t n_metrics = d->n_cols;
    size_t n_dev = d->device_id != NULL ? d->n_devices : 1;
    int rc = window_names(t, (const char *const *)d->col_names, n_metrics, err, errlen);
    if (rc != 0) {
        ml_table_free(t);
        return rc;
    }
    struct feature_series **series = series_new(n_dev * n_metrics, window);
    int64_t *last_ts = calloc(n_dev, sizeof *last_ts);
    size_t *last_row = calloc(n_dev, sizeof *last_row);
    bool *seen = calloc(n_dev, sizeof *seen), *gave = calloc(n_dev, sizeof *gave);
    double *row = malloc(t->n_cols * sizeof *row);
    size_t cap = 0;
    rc = 0;
    if (series == NULL || last_ts == NULL || last_row == NULL || seen == NULL || gave == NULL ||
        row == NULL) {
        rc = CANARY_ENOMEM;
        snprintf(err, errlen, "out of memory for the feature windows");
        goto done;
    }
    for (size_t r = 0; r < d->n_rows; r++) {
        size_t dev = d->device_id != NULL ? d->device_id[r] : 0;
        int64_t ts = d->ts_ms[r];
        if (seen[dev] && ts < last_ts[dev]) {
            char now[32], before[32];
            clock_format_ms(ts, now, sizeof now);
            clock_format_ms(last_ts[dev], before, sizeof before);
            snprintf(err, errlen,
                     "%s: data row %zu%s%s%s is at %s, before data row %zu at %s: window "
                     "features need each device's rows in time order (sort the file by time)",
                     path, r + 1, d->devices ? " (device '" : "", d->devices ? d->devices[r] : "",
                     d->devices ? "')" : "", now, last_row[dev] + 1, before);
            rc = CANARY_EINVAL;
            goto done;
        }
        seen[dev] = true;
        last_ts[dev] = ts;
        last_row[dev] = r;
        bool warm = true;
        const double *v = dataset_row(d, r);
        for (size_t m = 0; m < n_metrics; m++) {
            struct feature_series *s = series[dev * n_metrics + m];
            feature_series_push(s, ts, v[m], row + m * FEATURES_PER_SERIES);
            warm = warm && feature_series_warm(s);
        }
        feature_time_of_day(ts, row + n_metrics * FEATURES_PER_SERIES);
        if (!warm) {
            t->n_cold++;
            continue;
        }
        if (table_append(t, &cap, row, r, d->labels ? d->labels[r] : 0, d->labels != NULL, true) !=
            0) {
            rc = CANARY_ENOMEM;
            snprintf(err, errlen, "out of memory for the feature rows");
            goto done;
        }
        if (t->n_rows == 1 || ts < t->from_ms)
            t->from_ms = ts;
        if (t->n_rows == 1 || ts > t->to_ms)
            t->to_ms = ts;
        if (!gave[dev]) {
            gave[dev] = true;
            t->n_devices++;
        }
    }
    t->n_source_rows = d->n_rows;
done:
    series_free(series, n_dev * n_metrics);
    free(last_ts);
    free(last_row);
    free(seen);
    free(gave);
    free(row);
    if (rc != 0)
        ml_table_free(t);
    return rc;
}

/* ---- the store ---------------------------------------------------------------------- */

static int names_add_copy(struct ml_names *l, const char *name)
{
    char *copy = strdup(name);
    char **blocks = copy ? realloc(l->blocks, (l->n_blocks + 1) * sizeof *blocks) : NULL;
    if (blocks != NULL)
        l->blocks = blocks;
    char **grown = blocks ? realloc(l->names, (l->n + 1) * sizeof *grown) : NULL;
    if (grown == NULL) {
        free(copy);
        return CANARY_ENOMEM;
    }
    l->blocks[l->n_blocks++] = copy;
    l->names = grown;
    l->names[l->n++] = copy;
    return 0;
}

struct series_collect {
    struct ml_names *metrics;
    int rc;
};

static void collect_series(void *arg, const struct store_series *ser)
{
    struct series_collect *c = arg;
    if (c->rc == 0 && !ml_names_has(c->metrics, ser->metric))
        c->rc = names_add_copy(c->metrics, ser->metric);
}

/* The devices to read: the spec's, or every device in the store. */
static int db_devices(struct store *s, const struct ml_db_spec *spec, struct ml_names *out,
                      char *err, size_t errlen)
{
    for (size_t i = 0; i < spec->n_devices; i++) {
        if (names_add_copy(out, spec->devices[i]) != 0)
            return CANARY_ENOMEM;
    }
    if (spec->n_devices > 0)
        return 0;
    struct store_device *page = malloc(256 * sizeof *page);
    if (page == NULL)
        return CANARY_ENOMEM;
    char after[READING_ID_BUF] = "";
    for (;;) {
        int n = store_devices_list(s, after, page, 256, err, errlen);
        if (n < 0) {
            free(page);
            return n;
        }
        for (int i = 0; i < n; i++) {
            if (page[i].readings == 0)
                continue;
            if (out->n >= DB_MAX_DEVICES || names_add_copy(out, page[i].id) != 0) {
                free(page);
                snprintf(err, errlen, "too many devices (at most %d; give --device)",
                         DB_MAX_DEVICES);
                return CANARY_ENOMEM;
            }
        }
        if (n < 256)
            break;
        snprintf(after, sizeof after, "%s", page[n - 1].id);
    }
    free(page);
    return 0;
}

/* The metrics to use: the spec's, or those every chosen device has. */
static int db_metrics(struct store *s, const struct ml_db_spec *spec,
                      const struct ml_names *devices, struct ml_names *out, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < spec->n_metrics; i++) {
        if (names_add_copy(out, spec->metrics[i]) != 0)
            return CANARY_ENOMEM;
    }
    if (spec->n_metrics > 0)
        return 0;
    struct ml_names common = {0};
    int rc = 0;
    char example[512] = "";
    for (size_t d = 0; d < devices->n && rc == 0; d++) {
        struct ml_names has = {0};
        struct series_collect c = {&has, 0};
        rc = store_series_list(s, devices->names[d], collect_series, &c, err, errlen);
        if (rc == 0)
            rc = c.rc;
        if (rc == 0 && d < 3) {
            size_t at = strlen(example);
            snprintf(example + at, sizeof example - at, "%s%s has ", d ? "; " : "",
                     devices->names[d]);
            join_names(example, sizeof example, (const char *const *)has.names, has.n, 8);
            if (has.n == 0)
                snprintf(example + strlen(example), sizeof example - strlen(example), "none");
        }
        if (rc == 0 && d == 0) {
            for (size_t i = 0; i < has.n && rc == 0; i++)
                rc = names_add_copy(&common, has.names[i]);
        } else if (rc == 0) {
            /* Keep those of common that this device has too. */
            size_t keep = 0;
            for (size_t i = 0; i < common.n; i++) {
                if (ml_names_has(&has, common.names[i]))
                    common.names[keep++] = common.names[i];
            }
            common.n = keep;
        }
        ml_names_free(&has);
    }
    if (rc == 0 && common.n == 0) {
        snprintf(err, errlen,
                 "%s: the devices have no metric in common; name the metrics with --metric "
                 "(%s%s)",
                 spec->path, example, devices->n > 3 ? "; ..." : "");
        rc = CANARY_EINVAL;
    }
    for (size_t i = 0; i < common.n && rc == 0; i++)
        rc = names_add_copy(out, common.names[i]);
    ml_names_free(&common);
    return rc;
}

/* Reads one device's readings in [from, to] page by page and appends its vectors to t. */
static int db_device_rows(struct store *s, const char *device, const struct ml_names *metrics,
                          const struct ml_db_spec *spec, struct ml_table *t, size_t *cap,
                          struct feature_series **series, double *row, char *err, size_t errlen)
{
    size_t nm = metrics->n;
    double *latest = row; /* the latest features of every metric, then the time of day */
    int64_t from = spec->from_ms > 0 ? spec->from_ms : 0;
    int64_t to = spec->to_ms > 0 ? spec->to_ms : INT64_MAX / 4;
    bool any = false;
    for (;;) {
        struct store_readings_query q = {
            .device = device, .from_ms = from, .to_ms = to, .limit = DB_PAGE_READINGS};
        struct store_readings_result res;
        int rc = store_readings(s, &q, &res, err, errlen);
        if (rc != 0)
            return rc;
        /* Rows of the page's last timestamp may continue on the next page: leave them all
         * to it (it starts at that timestamp), so no reading is used twice or skipped. A
         * page that is one timestamp only is used whole and the next starts after it. */
        size_t use = res.n;
        int64_t next_from = 0;
        if (res.more && res.n > 0) {
            int64_t last = res.rows[res.n - 1].ts_ms;
            while (use > 0 && res.rows[use - 1].ts_ms == last)
                use--;
            if (use == 0)
                use = res.n;
            next_from = use == res.n ? last + 1 : last;
        }
        for (size_t i = 0; i < use; i++) {
            const struct store_reading *r = &res.rows[i];
            /* A quarantined device's readings, and values the tamper checks doubt, teach no
             * model what normal looks like. */
            bool doubted = false;
            for (uint32_t v = 0; v < r->n_values && !doubted; v++)
                doubted = (r->values[v].flags & (FLAG_QUARANTINED | FLAG_TAMPER)) != 0;
            if (doubted) {
                t->n_doubted++;
                continue;
            }
            bool touched = false;
            for (uint32_t v = 0; v < r->n_values; v++) {
                for (size_t m = 0; m < nm; m++) {
                    if (strcmp(r->values[v].metric, metrics->names[m]) == 0) {
                        feature_series_push(series[m], r->ts_ms, r->values[v].value,
                                            latest + m * FEATURES_PER_SERIES);
                        touched = true;
                        break;
                    }
                }
            }
            if (!touched)
                continue;
            t->n_source_rows++;
            bool warm = true;
            for (size_t m = 0; m < nm && warm; m++)
                warm = feature_series_warm(series[m]);
            if (!warm) {
                t->n_cold++;
                continue;
            }
            feature_time_of_day(r->ts_ms, latest + nm * FEATURES_PER_SERIES);
            if (table_append(t, cap, latest, 0, 0, false, false) != 0) {
                store_readings_free(&res);
                snprintf(err, errlen, "out of memory for the feature rows");
                return CANARY_ENOMEM;
            }
            if (t->n_rows == 1 || r->ts_ms < t->from_ms)
                t->from_ms = r->ts_ms;
            if (t->n_rows == 1 || r->ts_ms > t->to_ms)
                t->to_ms = r->ts_ms;
            any = true;
        }
        bool more = res.more && res.n > 0;
        store_readings_free(&res);
        if (!more || next_from > to)
            break;
        from = next_from;
    }
    if (any)
        t->n_devices++;
    return 0;
}

int ml_features_db(const struct ml_db_spec *spec, struct ml_table *t, struct ml_names *metrics_used,
                   char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    memset(metrics_used, 0, sizeof *metrics_used);
    if (errlen > 0)
        err[0] = '\0';
    if (access(spec->path, R_OK) != 0) {
        snprintf(err, errlen, "%s: %s", spec->path, strerror(errno));
        return CANARY_EIO;
    }
    struct store_options o = {.path = spec->path, .read_only = true, .busy_timeout_ms = 5000};
    struct store *s = NULL;
    char sub[512];
    int rc = store_open(&s, &o, sub, sizeof sub);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot open the store: %s", spec->path, sub);
        return rc;
    }
    struct ml_names devices = {0};
    struct feature_series **series = NULL;
    double *row = NULL;
    rc = db_devices(s, spec, &devices, err, errlen);
    if (rc == 0 && devices.n == 0) {
        snprintf(err, errlen, "%s: the store holds no readings", spec->path);
        rc = CANARY_EINVAL;
    }
    if (rc == 0)
        rc = db_metrics(s, spec, &devices, metrics_used, err, errlen);
    if (rc == 0)
        rc =
            window_names(t, (const char *const *)metrics_used->names, metrics_used->n, err, errlen);
    if (rc == 0 && (row = malloc(t->n_cols * sizeof *row)) == NULL)
        rc = CANARY_ENOMEM;
    size_t cap = 0;
    for (size_t d = 0; d < devices.n && rc == 0; d++) {
        series = series_new(metrics_used->n, spec->window);
        if (series == NULL) {
            rc = CANARY_ENOMEM;
            break;
        }
        rc = db_device_rows(s, devices.names[d], metrics_used, spec, t, &cap, series, row, err,
                            errlen);
        series_free(series, metrics_used->n);
        series = NULL;
    }
    if (rc == CANARY_ENOMEM && err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    if (rc == 0 && t->n_rows == 0) {
        char list[256] = "";
        join_names(list, sizeof list, (const char *const *)metrics_used->names, metrics_used->n, 8);
        snprintf(err, errlen,
                 "%s: no training rows: %zu reading%s of %s from %zu device%s%s, and a "
                 "device's readings count only once each metric's window of %" PRIu32
                 " readings is full",
                 spec->path, t->n_source_rows, t->n_source_rows == 1 ? "" : "s", list, devices.n,
                 devices.n == 1 ? "" : "s",
                 spec->from_ms || spec->to_ms ? " in the time range" : "", spec->window);
        rc = CANARY_EINVAL;
    }
    free(row);
    ml_names_free(&devices);
    store_close(s);
    if (rc != 0) {
        ml_table_free(t);
        ml_names_free(metrics_used);
    }
    return rc;
}

/* ---- models ------------------------------------------------------------------------- */

int ml_window_metrics(const struct iforest *f, struct ml_names *metrics, char *err, size_t errlen)
{
    memset(metrics, 0, sizeof *metrics);
    size_t n = iforest_n_features(f);
    if (n < feature_vector_len(1) || (n - FEATURES_TIME_OF_DAY) % FEATURES_PER_SERIES != 0)
        goto bad;
    size_t nm = (n - FEATURES_TIME_OF_DAY) / FEATURES_PER_SERIES;
    const char *suffix = feature_kind_name(FEATURE_VALUE);
    for (size_t m = 0; m < nm; m++) {
        const char *name = iforest_feature_name(f, m * FEATURES_PER_SERIES);
        size_t len = strlen(name), sl = strlen(suffix);
        if (len <= sl + 1 || strcmp(name + len - sl, suffix) != 0 || name[len - sl - 1] != '.')
            goto bad;
        char metric[IFOREST_NAME_MAX];
        snprintf(metric, sizeof metric, "%.*s", (int)(len - sl - 1), name);
        if (names_add_copy(metrics, metric) != 0) {
            ml_names_free(metrics);
            snprintf(err, errlen, "out of memory");
            return CANARY_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char want[IFOREST_NAME_MAX];
        if (!feature_column_name((const char *const *)metrics->names, nm, i, want, sizeof want) ||
            strcmp(want, iforest_feature_name(f, i)) != 0)
            goto bad;
    }
    return 0;
bad:
    ml_names_free(metrics);
    snprintf(err, errlen,
             "the model says it has window features, but its feature names are not those of "
             "window features ('<metric>.value', ..., 'time_of_day_cos')");
    return CANARY_EINVAL;
}

/* Copies the value of " key=" in s (up to the next space) into out. */
static void source_value(const char *s, const char *key, char *out, size_t len)
{
    out[0] = '\0';
    const char *p = NULL;
    for (const char *q = s; (q = strstr(q, key)) != NULL; q++)
        p = q; /* the last one: a path may hold the key too */
    if (p == NULL || (p != s && p[-1] != ' '))
        return;
    p += strlen(key);
    size_t n = strcspn(p, " ");
    snprintf(out, len, "%.*s", (int)n, p);
}

void ml_source_columns(const struct iforest_meta *m, char *ts, size_t ts_len, char *dev,
                       size_t dev_len)
{
    source_value(m->source, "timestamp-column=", ts, ts_len);
    source_value(m->source, "device-column=", dev, dev_len);
}

/* ---- output ------------------------------------------------------------------------- */

double ml_seconds_since(int64_t start_ns)
{
    return (double)(clock_mono_ns() - start_ns) / 1e9;
}

void ml_status(const char *fmt, ...)
{
    if (!isatty(STDERR_FILENO))
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\r\033[K");
    vfprintf(stderr, fmt, ap);
    fflush(stderr);
    va_end(ap);
}

/* Clearing a line that holds no status is harmless: it is the line the cursor is on, and a
 * message always ends with its newline. */
void ml_status_clear(void)
{
    if (isatty(STDERR_FILENO)) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

void ml_progress_start(struct ml_progress *p, const char *what)
{
    p->tty = isatty(STDERR_FILENO);
    p->what = what;
    p->start_ns = clock_mono_ns();
    p->last_draw_ns = 0;
}

void ml_progress_update(void *arg, size_t done, size_t total)
{
    struct ml_progress *p = arg;
    if (!p->tty || total == 0)
        return;
    int64_t now = clock_mono_ns();
    if (done < total && now - p->last_draw_ns < 50000000) /* 20 redraws a second at most */
        return;
    p->last_draw_ns = now;
    enum { WIDTH = 20 };
    size_t fill = done * WIDTH / total;
    char bar[WIDTH + 1];
    for (size_t i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r\033[K%-9s [%s] %3zu/%zu trees  %.1f s", p->what, bar, done, total,
            (double)(now - p->start_ns) / 1e9);
    fflush(stderr);
}

void ml_progress_end(struct ml_progress *p)
{
    (void)p;
    ml_status_clear();
}

const char *ml_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

const char *ml_thousands(uint64_t n, char *buf, size_t len)
{
    char digits_buf[32];
    int nd = snprintf(digits_buf, sizeof digits_buf, "%" PRIu64, n);
    char out[48];
    size_t o = 0;
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits_buf[i];
    }
    out[o] = '\0';
    if (len > 0) { /* cut to fit, like snprintf (which -O3 warns about for a short buf) */
        size_t keep = o < len ? o : len - 1;
        memcpy(buf, out, keep);
        buf[keep] = '\0';
    }
    return buf;
}

void ml_print_model(FILE *out, const char *path, const struct iforest *f)
{
    const struct iforest_params *p = iforest_params_of(f);
    const struct iforest_meta *m = iforest_meta_of(f);
    char rows[32], created[32] = "";
    if (m->created_ms > 0)
        clock_format_ms(m->created_ms, created, sizeof created);
    fprintf(out,
            "model       %s: Isolation Forest, %" PRIu32 " trees, psi %" PRIu32
            ", depth limit %" PRIu32 ", seed %" PRIu64 "\n",
            path, p->n_trees, p->subsample, p->max_depth, p->seed);
    fprintf(out, "features    %zu %s", iforest_n_features(f), m->features_kind);
    if (strcmp(m->features_kind, "window") == 0)
        fprintf(out, " (window of %" PRIu32 " readings)", m->window);
    fprintf(out, "\n");
    if (p->contamination > 0)
        fprintf(out, "threshold   %.4f (contamination %.4g)\n", iforest_threshold(f),
                p->contamination);
    else
        fprintf(out, "threshold   %.4f\n", iforest_threshold(f));
    fprintf(out, "trained on  %s, %s rows", m->source,
            ml_thousands(m->train_rows, rows, sizeof rows));
    if (created[0])
        fprintf(out, ", %s", created);
    fprintf(out, "\n");
}

/* Picks the column for a role: the option, else the model's hint if the header has it,
 * else the first of the usual names the header has and the features do not use. */
static void pick_column(const char *given, const char *hint, const char *const *usual,
                        size_t n_usual, const struct ml_names *header, const struct ml_names *taken,
                        char *out, size_t len)
{
    out[0] = '\0';
    if (given != NULL) {
        snprintf(out, len, "%s", given);
        return;
    }
    if (hint[0] != '\0' && ml_names_has(header, hint) && !ml_names_has(taken, hint)) {
        snprintf(out, len, "%s", hint);
        return;
    }
    for (size_t i = 0; i < n_usual; i++) {
        if (ml_names_has(header, usual[i]) && !ml_names_has(taken, usual[i])) {
            snprintf(out, len, "%s", usual[i]);
            return;
        }
    }
}

int ml_load_for_model(const struct iforest *f, struct ml_model_input *in, struct dataset *d,
                      struct ml_table *t, char *err, size_t errlen)
{
    static const char *const ts_usual[] = {"timestamp", "ts", "time"};
    static const char *const dev_usual[] = {"device", "device_id"};
    const struct iforest_meta *meta = iforest_meta_of(f);
    bool window = strcmp(meta->features_kind, "window") == 0;
    memset(d, 0, sizeof *d);
    memset(t, 0, sizeof *t);
    struct ml_names columns = {0}, header = {0};
    int rc = 0;
    if (window) {
        rc = ml_window_metrics(f, &columns, err, errlen);
    } else if (strcmp(meta->features_kind, "raw") == 0) {
        for (size_t i = 0; i < iforest_n_features(f) && rc == 0; i++)
            rc = names_add_copy(&columns, iforest_feature_name(f, i));
        if (rc != 0)
            snprintf(err, errlen, "out of memory");
    } else {
        snprintf(err, errlen,
                 "the model has features of kind '%s', which this canary does not "
                 "know (raw or window)",
                 meta->features_kind);
        rc = CANARY_EINVAL;
    }
    if (rc == 0)
        rc = ml_csv_header(in->path, &header, err, errlen);
    if (rc == 0) {
        char hint_ts[256], hint_dev[256];
        ml_source_columns(meta, hint_ts, sizeof hint_ts, hint_dev, sizeof hint_dev);
        struct ml_names taken = columns;
        pick_column(in->timestamp_column, hint_ts, ts_usual, 3, &header, &taken, in->timestamp_used,
                    sizeof in->timestamp_used);
        pick_column(in->device_column, hint_dev, dev_usual, 2, &header, &taken, in->device_used,
                    sizeof in->device_used);
        if (in->label_column != NULL && (!strcmp(in->label_column, in->timestamp_used) ||
                                         !strcmp(in->label_column, in->device_used))) {
            snprintf(err, errlen, "column '%s' cannot be the label and a key column",
                     in->label_column);
            rc = CANARY_EINVAL;
        }
        if (rc == 0 && window && in->timestamp_used[0] == '\0') {
            snprintf(err, errlen,
                     "%s: the model has window features, which need the time of each row: "
                     "give --timestamp-column (no column is named timestamp, ts or time)",
                     in->path);
            rc = CANARY_EINVAL;
        }
    }
    if (rc == 0) {
        struct ml_csv_spec spec = {
            .path = in->path,
            .label_column = in->label_column,
            .timestamp_column = in->timestamp_used[0] ? in->timestamp_used : NULL,
            .device_column = in->device_used[0] ? in->device_used : NULL,
            .columns = (const char *const *)columns.names,
            .n_columns = columns.n,
        };
        ml_status("reading %s ...", in->path);
        rc = ml_load_csv(d, &spec, err, errlen);
        ml_status_clear();
    }
    if (rc == 0) {
        if (window)
            rc = ml_features_window(d, in->path, meta->window, t, err, errlen);
        else
            rc = ml_features_raw(d, t, err, errlen);
    }
    ml_names_free(&columns);
    ml_names_free(&header);
    if (rc != 0)
        dataset_free(d);
    return rc;
}
