/* export.c — `canary export`: readings from canaryd's store as a CSV file, ready to label and
 * to train on (`canary train --model gas --input FILE.csv --label-column ...`; docs/GAS.md).
 *
 * Promises:
 *   - Read-only. The store is opened with store_options.read_only (SQLITE_OPEN_READONLY: no
 *     migration, no write lock); each page is one short query, so a running canaryd keeps
 *     writing and checkpointing while an export runs.
 *   - Bounded memory: readings are read a page (EXPORT_PAGE readings of one device) at a
 *     time and written as they come, so millions of readings cost a page, the device list
 *     and the metric list.
 *   - Every reading once: a page that ends inside a run of equal timestamps leaves that run
 *     to the next page, which starts at that timestamp (the store orders readings by (ts,
 *     seq)); a full page is always followed by another query (one empty query at the end
 *     is cheap, and the export does not depend on how exactly the store reports `more`).
 *   - Quarantined readings (a value flagged FLAG_QUARANTINED: the device was quarantined
 *     when it arrived) are left out unless --include-quarantined, and counted.
 *   - RFC 4180 output that dataset.h reads back: a field holding a comma, a quote, CR, LF or
 *     surrounding spaces is quoted ("" for a quote); a field that a spreadsheet would run
 *     as a formula (=, +, -, @, tab at its start) is quoted too. Numbers are written with
 *     the fewest digits that read back to the same double.
 *   - A file named by --output is written to a temporary file and renamed when complete:
 *     a failed export leaves no half file.
 *
 * Formats. wide (default): ts,device,<one column per metric>[,label] — one row per reading,
 * an empty cell where the reading lacks the metric. long: ts,device,metric,value[,label] —
 * one row per value. ts is Unix milliseconds (UTC). Exit status: 0 success, 1 the store or
 * the data is the problem (cannot open, no such device, nothing to export), 2 bad usage. */
#include "cli/commands.h"
#include "cli/ml_common.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/error.h"
#include "core/reading.h"
#include "core/strmap.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD             "export"
#define EXPORT_PAGE     10000   /* readings per store query */
#define EXPORT_MAX_DEVS 1000000 /* devices one export may name or find */
#define EXPORT_TEXT_MAX 1024    /* bytes of a label value or column name */

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: canary export [--store PATH | --config FILE] [--device ID]...\n"
        "                     [--metric M[,M...]]... [--from T] [--to T]\n"
        "                     [--output FILE.csv] [--format wide|long]\n"
        "                     [--label VALUE] [--label-column NAME]\n"
        "                     [--include-quarantined] [--quiet]\n"
        "\n"
        "Writes readings from canaryd's store as CSV, to label and train on:\n"
        "  canary export --device kitchen-1 --from 2026-11-20T10:00Z --to 2026-11-20T11:00Z \\\n"
        "      --label Smoke --output smoke.csv\n"
        "  canary train --model gas --input smoke+clean.csv --label-column label \\\n"
        "      --features mq2,mq3,mq5 --series-column device --order-column ts --out g.cgas\n"
        "\n"
        "source (opened read-only: canaryd keeps running and writing):\n"
        "  --store PATH           canaryd's store (e.g. var/canary.db)\n"
        "  --config FILE          take store.path from canaryd's configuration (default\n"
        "                         $CANARY_CONFIG, then canaryd's defaults)\n"
        "\n"
        "what to export:\n"
        "  --device ID            a device (repeat for more; default every device)\n"
        "  --metric M[,M...]      metrics (repeatable; default every metric the devices\n"
        "                         have); a reading with none of them is left out\n"
        "  --from T, --to T       time range, inclusive: RFC 3339 (2026-11-20T10:00:00Z,\n"
        "                         2026-11-20 10:00+01:00, 2026-11-20) or Unix time\n"
        "                         (milliseconds; below 1e11: seconds)\n"
        "  --include-quarantined  keep readings that arrived while their device was\n"
        "                         quarantined (left out by default, and counted)\n"
        "\n"
        "output:\n"
        "  --output FILE.csv      the file (written whole or not at all); default stdout\n"
        "  --format wide|long     wide (default): ts,device,<metric>...  one row per\n"
        "                         reading, an empty cell where a metric is absent;\n"
        "                         long: ts,device,metric,value  one row per value\n"
        "  --label-column NAME    add a label column (empty, to fill in; default name\n"
        "                         'label' when --label is given)\n"
        "  --label VALUE          fill the label column with VALUE on every row\n"
        "  --quiet                no summary on stderr\n"
        "\n"
        "ts is Unix milliseconds (UTC); rows are grouped by device, in time order.\n"
        "Exit status: 0 on success, 1 when the store or the data is the problem (cannot\n"
        "open it, no such device, nothing to export), 2 for bad usage. See docs/GAS.md.\n");
}

/* A list of owned strings, taken whole (device ids are not split at commas). */
struct strlist {
    char **v;
    size_t n, cap;
};

static int strlist_add(struct strlist *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return CANARY_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if ((l->v[l->n] = strdup(s)) == NULL)
        return CANARY_ENOMEM;
    l->n++;
    return 0;
}

static bool strlist_has(const struct strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s))
            return true;
    return false;
}

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

struct export_opts {
    const char *store, *config, *output, *label, *label_column;
    struct strlist devices;
    struct ml_names metrics;
    int64_t from_ms, to_ms;
    bool has_from, has_to, wide, include_quarantined, quiet;
};

static int parse_args(int argc, char **argv, struct export_opts *o, bool *help)
{
    o->wide = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = true;
            continue;
        } else if (!strcmp(a, "--include-quarantined")) {
            o->include_quarantined = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return ml_bad_usage(CMD, "%s: unknown option or missing value", a);
        i++;
        if (!strcmp(a, "--store") || !strcmp(a, "--db")) {
            o->store = v;
        } else if (!strcmp(a, "--config")) {
            o->config = v;
        } else if (!strcmp(a, "--output") || !strcmp(a, "--out")) {
            o->output = v;
        } else if (!strcmp(a, "--device")) {
            if (v[0] == '\0' || strlen(v) > READING_MAX_ID_LEN)
                return ml_bad_usage(CMD, "--device takes a device id of 1 to %d bytes",
                                    READING_MAX_ID_LEN);
            if (o->devices.n >= EXPORT_MAX_DEVS)
                return ml_bad_usage(CMD, "at most %d --device options", EXPORT_MAX_DEVS);
            if (strlist_add(&o->devices, v) != 0)
                return ml_bad_usage(CMD, "--device: out of memory");
        } else if (!strcmp(a, "--metric")) {
            if (ml_names_add_list(&o->metrics, v) != 0)
                return ml_bad_usage(CMD,
                                    "--metric takes metric names separated by commas, got "
                                    "'%s'",
                                    v);
        } else if (!strcmp(a, "--from") || !strcmp(a, "--to")) {
            int64_t ms;
            if (ml_parse_time(v, &ms) != 0)
                return ml_bad_usage(CMD,
                                    "%s takes an RFC 3339 time (2026-11-20T10:00:00Z) or Unix "
                                    "milliseconds, got '%s'",
                                    a, v);
            if (a[2] == 'f') {
                o->from_ms = ms;
                o->has_from = true;
            } else {
                o->to_ms = ms;
                o->has_to = true;
            }
        } else if (!strcmp(a, "--format")) {
            if (strcmp(v, "wide") && strcmp(v, "long"))
                return ml_bad_usage(CMD, "--format is wide or long, got '%s'", v);
            o->wide = !strcmp(v, "wide");
        } else if (!strcmp(a, "--label")) {
            if (strlen(v) > EXPORT_TEXT_MAX)
                return ml_bad_usage(CMD, "--label is at most %d bytes", EXPORT_TEXT_MAX);
            o->label = v;
        } else if (!strcmp(a, "--label-column")) {
            if (v[0] == '\0' || strlen(v) > EXPORT_TEXT_MAX)
                return ml_bad_usage(CMD, "--label-column takes a name of 1 to %d bytes",
                                    EXPORT_TEXT_MAX);
            o->label_column = v;
        } else {
            return ml_bad_usage(CMD, "unknown option %s", a);
        }
    }
    if (o->store && o->config)
        return ml_bad_usage(CMD, "give --store or --config, not both");
    if (o->has_from && o->has_to && o->from_ms > o->to_ms)
        return ml_bad_usage(CMD, "--from is after --to");
    if (o->label && !o->label_column)
        o->label_column = "label";
    if (o->label_column) {
        const char *fixed[] = {"ts", "device", "metric", "value"};
        for (size_t i = 0; i < (o->wide ? 2u : 4u); i++)
            if (!strcmp(o->label_column, fixed[i]))
                return ml_bad_usage(CMD, "--label-column '%s' is one of the file's own columns",
                                    o->label_column);
    }
    return 0;
}

/* ---- CSV output -------------------------------------------------------------------- */

/* Writes one field, quoted when it must be (see the file's comment). */
static void put_field(FILE *f, const char *s)
{
    size_t n = strlen(s);
    bool quote = n > 0 && (s[0] == ' ' || s[n - 1] == ' ' || strchr("=+-@\t", s[0]) != NULL);
    for (const char *p = s; !quote && *p; p++)
        quote = *p == ',' || *p == '"' || *p == '\r' || *p == '\n';
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

/* The shortest decimal that reads back as v. */
static void put_number(FILE *f, double v)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, f);
}

/* ---- the store --------------------------------------------------------------------- */

struct metric_union {
    struct strmap seen; /* metric -> non-NULL */
    struct strlist names;
    int rc;
};

static void union_series(void *arg, const struct store_series *ser)
{
    struct metric_union *u = arg;
    if (u->rc != 0 || strmap_get(&u->seen, ser->metric) != NULL)
        return;
    u->rc = strmap_put(&u->seen, ser->metric, (void *)1);
    if (u->rc == 0)
        u->rc = strlist_add(&u->names, ser->metric);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The devices: the options' (each must exist), or every device that has readings. */
static int list_devices(struct store *s, const struct export_opts *o, struct strlist *out,
                        char *err, size_t errlen)
{
    for (size_t i = 0; i < o->devices.n; i++) {
        struct store_device d;
        int rc = store_device_get(s, o->devices.v[i], &d, err, errlen);
        if (rc == CANARY_ENOTFOUND) {
            snprintf(err, errlen, "no device '%s' in the store", o->devices.v[i]);
            return CANARY_ENOTFOUND;
        }
        if (rc == 0 && !strlist_has(out, o->devices.v[i]))
            rc = strlist_add(out, o->devices.v[i]);
        if (rc != 0)
            return rc;
    }
    if (o->devices.n > 0)
        return 0;
    struct store_device *page = malloc(256 * sizeof *page);
    if (page == NULL)
        return CANARY_ENOMEM;
    char after[READING_ID_BUF] = "";
    int rc = 0;
    for (;;) {
        int n = store_devices_list(s, after, page, 256, err, errlen);
        if (n < 0) {
            rc = n;
            break;
        }
        for (int i = 0; i < n && rc == 0; i++) {
            if (page[i].readings == 0)
                continue;
            if (out->n >= EXPORT_MAX_DEVS) {
                snprintf(err, errlen, "more than %d devices: name them with --device",
                         EXPORT_MAX_DEVS);
                rc = CANARY_EINVAL;
            } else {
                rc = strlist_add(out, page[i].id);
            }
        }
        if (rc != 0 || n < 256)
            break;
        snprintf(after, sizeof after, "%s", page[n - 1].id);
    }
    free(page);
    return rc;
}

/* The metrics: every metric the devices have, sorted; the options' must be among them. */
static int list_metrics(struct store *s, const struct export_opts *o, const struct strlist *devs,
                        struct strlist *out, char *err, size_t errlen)
{
    struct metric_union u = {.rc = 0};
    strmap_init(&u.seen);
    int rc = 0;
    for (size_t d = 0; d < devs->n && rc == 0; d++) {
        rc = store_series_list(s, devs->v[d], union_series, &u, err, errlen);
        if (rc == 0)
            rc = u.rc;
    }
    if (rc == 0 && o->metrics.n == 0) {
        if (u.names.n > 1)
            qsort(u.names.v, u.names.n, sizeof *u.names.v, cmp_str);
        *out = u.names;
        memset(&u.names, 0, sizeof u.names);
    }
    for (size_t i = 0; i < o->metrics.n && rc == 0; i++) {
        if (strmap_get(&u.seen, o->metrics.names[i]) == NULL) {
            char have[400] = "";
            for (size_t k = 0; k < u.names.n && strlen(have) < 300; k++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", k ? ", " : "",
                         u.names.v[k]);
            snprintf(err, errlen, "no device exported has metric '%s' (they have: %s)",
                     o->metrics.names[i], have[0] ? have : "none");
            rc = CANARY_ENOTFOUND;
        } else if (!strlist_has(out, o->metrics.names[i])) {
            rc = strlist_add(out, o->metrics.names[i]);
        }
    }
    strmap_free(&u.seen);
    strlist_free(&u.names);
    return rc;
}

struct export_run {
    const struct export_opts *o;
    FILE *f;
    struct strmap column; /* metric -> column index + 1 */
    const struct strlist *metrics;
    const struct store_value **cells; /* wide: the reading's value per column */
    uint64_t readings, values, quarantined, without_metric;
    int64_t first_ts, last_ts;
};

static bool quarantined(const struct store_reading *r)
{
    for (uint32_t v = 0; v < r->n_values; v++)
        if (r->values[v].flags & FLAG_QUARANTINED)
            return true;
    return false;
}

static void put_label(struct export_run *x)
{
    if (x->o->label_column) {
        fputc(',', x->f);
        put_field(x->f, x->o->label ? x->o->label : "");
    }
}

/* Writes one reading's rows. */
static void put_reading(struct export_run *x, const char *device, const struct store_reading *r)
{
    if (!x->o->include_quarantined && quarantined(r)) {
        x->quarantined++;
        return;
    }
    size_t nm = x->metrics->n, found = 0;
    for (size_t c = 0; c < nm; c++)
        x->cells[c] = NULL;
    for (uint32_t v = 0; v < r->n_values; v++) {
        uintptr_t c = (uintptr_t)strmap_get(&x->column, r->values[v].metric);
        if (c != 0 && x->cells[c - 1] == NULL) {
            x->cells[c - 1] = &r->values[v];
            found++;
        }
    }
    if (found == 0) {
        x->without_metric++;
        return;
    }
    if (x->readings == 0 || r->ts_ms < x->first_ts)
        x->first_ts = r->ts_ms;
    if (x->readings == 0 || r->ts_ms > x->last_ts)
        x->last_ts = r->ts_ms;
    x->readings++;
    x->values += found;
    if (x->o->wide) {
        fprintf(x->f, "%" PRId64 ",", r->ts_ms);
        put_field(x->f, device);
        for (size_t c = 0; c < nm; c++) {
            fputc(',', x->f);
            if (x->cells[c] != NULL)
                put_number(x->f, x->cells[c]->value);
        }
        put_label(x);
        fputc('\n', x->f);
        return;
    }
    for (size_t c = 0; c < nm; c++) {
        if (x->cells[c] == NULL)
            continue;
        fprintf(x->f, "%" PRId64 ",", r->ts_ms);
        put_field(x->f, device);
        fputc(',', x->f);
        put_field(x->f, x->metrics->v[c]);
        fputc(',', x->f);
        put_number(x->f, x->cells[c]->value);
        put_label(x);
        fputc('\n', x->f);
    }
}

/* One device's readings in the range, page by page. */
static int export_device(struct store *s, struct export_run *x, const char *device, char *err,
                         size_t errlen)
{
    const struct export_opts *o = x->o;
    int64_t from = o->has_from ? o->from_ms : INT64_MIN / 4;
    int64_t to = o->has_to ? o->to_ms : INT64_MAX / 4;
    /* One metric asked for: the store returns only its value, and skips other readings. */
    const char *only = x->metrics->n == 1 ? x->metrics->v[0] : NULL;
    for (;;) {
        struct store_readings_query q = {
            .device = device, .metric = only, .from_ms = from, .to_ms = to, .limit = EXPORT_PAGE};
        struct store_readings_result res;
        int rc = store_readings(s, &q, &res, err, errlen);
        if (rc != 0)
            return rc;
        /* A full page may have more after it, whatever res.more says (until c358ccd the store
         * said "no more" for a page ending exactly at a chunk boundary). Rows of the page's
         * last timestamp may continue on the next page: leave them all to it (it starts at
         * that timestamp). A page of one timestamp only is used whole. */
        bool full = res.n >= EXPORT_PAGE || res.more;
        size_t use = res.n;
        int64_t next_from = 0;
        if (full && res.n > 0) {
            int64_t last = res.rows[res.n - 1].ts_ms;
            while (use > 0 && res.rows[use - 1].ts_ms == last)
                use--;
            if (use == 0)
                use = res.n;
            next_from = use == res.n ? last + 1 : last;
        }
        for (size_t i = 0; i < use; i++)
            put_reading(x, device, &res.rows[i]);
        bool more = full && res.n > 0;
        store_readings_free(&res);
        if (ferror(x->f)) {
            snprintf(err, errlen, "writing the output: %s", strerror(errno));
            return CANARY_EIO;
        }
        if (!more || next_from > to)
            return 0;
        from = next_from;
    }
}

/* store.path from --config (or $CANARY_CONFIG, or canaryd's defaults). */
static int configured_store(const char *config, char *path, size_t len, char *err, size_t errlen)
{
    struct canary_config cfg;
    config_init(&cfg);
    if (config == NULL)
        config = getenv("CANARY_CONFIG");
    int rc = 0;
    if (config != NULL && config[0] != '\0')
        rc = config_load_file(&cfg, config, err, errlen);
    if (rc == 0)
        rc = config_load_env(&cfg, err, errlen);
    if (rc == 0)
        snprintf(path, len, "%s", cfg.store.path);
    config_free(&cfg);
    return rc;
}

static void put_header(struct export_run *x)
{
    fputs(x->o->wide ? "ts,device" : "ts,device,metric,value", x->f);
    for (size_t c = 0; x->o->wide && c < x->metrics->n; c++) {
        fputc(',', x->f);
        put_field(x->f, x->metrics->v[c]);
    }
    if (x->o->label_column) {
        fputc(',', x->f);
        put_field(x->f, x->o->label_column);
    }
    fputc('\n', x->f);
}

/* A metric named like one of the file's own columns would give the header a duplicate. */
static int check_columns(const struct export_opts *o, const struct strlist *metrics, char *err,
                         size_t errlen)
{
    for (size_t c = 0; o->wide && c < metrics->n; c++) {
        const char *m = metrics->v[c];
        if (!strcmp(m, "ts") || !strcmp(m, "device") ||
            (o->label_column && !strcmp(m, o->label_column))) {
            snprintf(err, errlen,
                     "metric '%s' would be a second column '%s': name the metrics with --metric "
                     "without it, use --format long, or choose another --label-column",
                     m, m);
            return CANARY_EINVAL;
        }
    }
    return 0;
}

int cmd_export(int argc, char **argv)
{
    struct export_opts o = {0};
    bool help = false;
    int rc = parse_args(argc, argv, &o, &help);
    if (rc != 0 || help) {
        if (help)
            usage(stdout);
        strlist_free(&o.devices);
        ml_names_free(&o.metrics);
        return rc;
    }
    char err[8192] = "", path[4096], tmp[4200] = "";
    struct store *s = NULL;
    struct strlist devices = {0}, metrics = {0};
    struct export_run x = {.o = &o};
    strmap_init(&x.column);
    int exit_code = 1;
    if (o.store)
        snprintf(path, sizeof path, "%s", o.store);
    else if (configured_store(o.config, path, sizeof path, err, sizeof err) != 0) {
        fprintf(stderr, "canary export: configuration: %s\n", err);
        exit_code = 2;
        goto done;
    }
    if (access(path, R_OK) != 0) {
        snprintf(err, sizeof err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    struct store_options so = {.path = path, .read_only = true, .busy_timeout_ms = 5000};
    char sub[1024];
    if (store_open(&s, &so, sub, sizeof sub) != 0) {
        snprintf(err, sizeof err, "cannot open the store: %s", sub);
        goto fail;
    }
    if ((rc = list_devices(s, &o, &devices, err, sizeof err)) != 0)
        goto fail;
    if (devices.n == 0) {
        snprintf(err, sizeof err, "%s holds no readings", path);
        goto fail;
    }
    if ((rc = list_metrics(s, &o, &devices, &metrics, err, sizeof err)) != 0)
        goto fail;
    if (metrics.n == 0) {
        snprintf(err, sizeof err, "the devices have no readings");
        goto fail;
    }
    if (check_columns(&o, &metrics, err, sizeof err) != 0)
        goto fail;
    x.metrics = &metrics;
    x.cells = calloc(metrics.n, sizeof *x.cells);
    if (x.cells == NULL)
        goto oom;
    for (size_t c = 0; c < metrics.n; c++)
        if (strmap_put(&x.column, metrics.v[c], (void *)(uintptr_t)(c + 1)) != 0)
            goto oom;
    if (o.output && strcmp(o.output, "-")) {
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", o.output, (long)getpid());
        if ((x.f = fopen(tmp, "w")) == NULL) {
            snprintf(err, sizeof err, "%s: %s", o.output, strerror(errno));
            tmp[0] = '\0';
            goto fail;
        }
    } else {
        x.f = stdout;
    }
    put_header(&x);
    for (size_t d = 0; d < devices.n; d++) {
        ml_status("exporting %s (%zu of %zu devices)", devices.v[d], d + 1, devices.n);
        if ((rc = export_device(s, &x, devices.v[d], err, sizeof err)) != 0) {
            if (rc == CANARY_ENOMEM && !err[0])
                goto oom;
            goto fail;
        }
    }
    ml_status_clear();
    if (x.readings == 0) {
        snprintf(err, sizeof err,
                 "nothing to export: no reading of the %zu device%s%s carries the metrics%s",
                 devices.n, devices.n == 1 ? "" : "s",
                 o.has_from || o.has_to ? " in the time range" : "",
                 x.quarantined ? " outside quarantine (--include-quarantined keeps those)" : "");
        goto fail;
    }
    if (x.f != stdout) {
        bool bad = fflush(x.f) != 0 || fsync(fileno(x.f)) != 0;
        bad = fclose(x.f) != 0 || bad;
        x.f = NULL;
        if (bad || rename(tmp, o.output) != 0) {
            snprintf(err, sizeof err, "%s: %s", o.output, strerror(errno));
            goto fail;
        }
        tmp[0] = '\0';
    } else if (fflush(stdout) != 0) {
        snprintf(err, sizeof err, "writing to stdout: %s", strerror(errno));
        goto fail;
    }
    exit_code = 0;
    if (!o.quiet) {
        char a[32], b[32], t0[40], t1[40];
        clock_format_ms(x.first_ts, t0, sizeof t0);
        clock_format_ms(x.last_ts, t1, sizeof t1);
        fprintf(stderr,
                "canary export: %s readings (%s values) of %zu device%s, %zu metric%s, %s to %s, "
                "%s format, to %s\n",
                ml_thousands(x.readings, a, sizeof a), ml_thousands(x.values, b, sizeof b),
                devices.n, devices.n == 1 ? "" : "s", metrics.n, metrics.n == 1 ? "" : "s", t0, t1,
                o.wide ? "wide" : "long", x.f == stdout || !o.output ? "stdout" : o.output);
        if (x.quarantined)
            fprintf(stderr,
                    "canary export: left out %s quarantined reading%s (--include-quarantined "
                    "keeps them)\n",
                    ml_thousands(x.quarantined, a, sizeof a), x.quarantined == 1 ? "" : "s");
        else if (o.include_quarantined)
            fprintf(stderr, "canary export: quarantined readings included\n");
    }
    goto done;
oom:
    snprintf(err, sizeof err, "out of memory");
fail:
    ml_status_clear();
    fprintf(stderr, "canary export: %s\n", err[0] ? err : "failed");
done:
    if (x.f != NULL && x.f != stdout)
        fclose(x.f);
    if (tmp[0])
        unlink(tmp);
    free(x.cells);
    strmap_free(&x.column);
    store_close(s);
    strlist_free(&devices);
    strlist_free(&metrics);
    strlist_free(&o.devices);
    ml_names_free(&o.metrics);
    return exit_code;
}
