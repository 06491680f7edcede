/* test_export.c — `canary export` (src/cli/export.c), called in-process on a store written
 * here: the wide and long files read back with dataset.h to the very values stored (device
 * ids with commas, quotes, newlines and a leading '=' included), quarantined readings are
 * left out and counted unless --include-quarantined, a page boundary inside a run of equal
 * timestamps loses and repeats nothing, --metric / --device / --from / --to select, the
 * label column is empty or fixed, and bad usage (2) and bad data (1) fail with their exit
 * status and leave no output file. */
#include "cli/commands.h"
#include "core/error.h"
#include "core/reading.h"
#include "ml/dataset.h"
#include "store/store.h"
#include "unit_support.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define T0      1763200000000LL /* 2025-11-15T09:46:40Z */
#define HOSTILE "=evil,\"id\"\nx "

struct dir {
    char path[64], db[128], out[128];
};

static const char *const metric_names[3] = {"mq2", "mq3", "temperature_c"};

/* One reading of device with value base + k for metric k (mask: which metrics it carries). */
static void write_one(struct store *s, const char *device, uint64_t seq, int64_t ts, double base,
                      unsigned mask, uint32_t flags)
{
    struct metric_value v[3];
    uint32_t n = 0;
    for (unsigned k = 0; k < 3; k++)
        if (mask & (1u << k))
            v[n++] = (struct metric_value){metric_names[k], base + k, 0.0f, flags};
    struct reading r = {.device = device,
                        .seq = seq,
                        .has_seq = true,
                        .ts_ms = ts,
                        .recv_ms = ts + 5,
                        .values = v,
                        .n_values = n,
                        .has_ts = true};
    const struct reading *rp = &r;
    struct store_batch b = {.readings = &rp, .n_readings = 1};
    char err[256];
    assert_int_equal(store_write(s, &b, err, sizeof err), 0);
}

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof *d);
    snprintf(d->path, sizeof d->path, "/tmp/test_export_XXXXXX");
    if (!mkdtemp(d->path))
        return -1;
    snprintf(d->db, sizeof d->db, "%s/canary.db", d->path);
    snprintf(d->out, sizeof d->out, "%s/out.csv", d->path);
    struct store_options o = {.path = d->db, .busy_timeout_ms = 1000};
    struct store *s;
    char err[256];
    assert_int_equal(store_open(&s, &o, err, sizeof err), 0);
    /* dev-a: 10 readings of all three metrics (values 0.1 + i: not exact in binary), the
     * 4th and 5th quarantined; a reading of temperature only. */
    for (int i = 0; i < 10; i++)
        write_one(s, "dev-a", (uint64_t)i + 1, T0 + i * 1000, 0.1 + i, 7,
                  i == 3 || i == 4 ? FLAG_QUARANTINED : 0);
    write_one(s, "dev-a", 11, T0 + 10 * 1000, 100, 4, 0);
    /* The hostile id: 3 readings of mq2 and mq3 only. */
    for (int i = 0; i < 3; i++)
        write_one(s, HOSTILE, (uint64_t)i + 1, T0 + i * 1000, 1e-300 * (i + 1), 3, 0);
    store_close(s);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d->path);
    int rc = system(cmd);
    free(d);
    return rc == 0 ? 0 : -1;
}

/* Runs `canary export ARGS...` (NULL-terminated) with stderr silenced. */
static int run_export(const char *first, ...)
{
    char *argv[40] = {"export"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 39; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    fflush(stderr);
    int saved = dup(2);
    FILE *null = freopen("/dev/null", "w", stderr);
    assert_non_null(null);
    int rc = cmd_export(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return rc;
}

static void load(const char *path, const char *label, struct dataset *ds)
{
    struct dataset_options o = {
        .device_column = "device", .timestamp_column = "ts", .label_column = label};
    o.label_classes = label != NULL;
    char err[512];
    if (dataset_load_csv(ds, path, &o, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static int col(const struct dataset *ds, const char *name)
{
    for (size_t c = 0; c < ds->n_cols; c++)
        if (!strcmp(ds->col_names[c], name))
            return (int)c;
    return -1;
}

/* Wide: every non-quarantined reading once, exact values, empty cells, the hostile id. */
static void test_wide_round_trip(void **state)
{
    struct dir *d = *state;
    assert_int_equal(run_export("--store", d->db, "--output", d->out, NULL), 0);
    struct dataset ds;
    load(d->out, NULL, &ds);
    assert_int_equal(ds.n_rows, 3 + 8 + 1);
    assert_int_equal(ds.n_cols, 3);
    int mq2 = col(&ds, "mq2"), mq3 = col(&ds, "mq3"), temp = col(&ds, "temperature_c");
    assert_true(mq2 >= 0 && mq3 >= 0 && temp >= 0);
    size_t hostile = 0, a = 0;
    for (size_t r = 0; r < ds.n_rows; r++) {
        const double *x = ds.x + r * ds.n_cols;
        int i = (int)((ds.ts_ms[r] - T0) / 1000);
        if (!strcmp(ds.devices[r], HOSTILE)) {
            hostile++;
            assert_true(x[mq2] == 1e-300 * (i + 1));
            assert_true(isnan(x[temp]));
        } else {
            assert_string_equal(ds.devices[r], "dev-a");
            a++;
            assert_true(i != 3 && i != 4);
            if (i == 10) {
                assert_true(isnan(x[mq2]) && isnan(x[mq3]) && x[temp] == 102);
            } else {
                assert_true(x[mq2] == 0.1 + i);
                assert_true(x[mq3] == 0.1 + i + 1);
                assert_true(x[temp] == 0.1 + i + 2);
            }
        }
    }
    assert_int_equal(hostile, 3);
    assert_int_equal(a, 9);
    dataset_free(&ds);

    /* --include-quarantined keeps the two. */
    assert_int_equal(
        run_export("--store", d->db, "--output", d->out, "--include-quarantined", "--quiet", NULL),
        0);
    load(d->out, NULL, &ds);
    assert_int_equal(ds.n_rows, 14);
    dataset_free(&ds);
}

/* Long: one row per value; --metric, --device and the time range select. */
static void test_long_and_selection(void **state)
{
    struct dir *d = *state;
    assert_int_equal(run_export("--store", d->db, "--output", d->out, "--format", "long",
                                "--device", "dev-a", "--metric", "mq2,temperature_c", NULL),
                     0);
    FILE *f = fopen(d->out, "r");
    assert_non_null(f);
    char line[256];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "ts,device,metric,value\n");
    size_t rows = 0;
    while (fgets(line, sizeof line, f))
        rows++;
    fclose(f);
    assert_int_equal(rows, 8 * 2 + 1); /* 8 readings x 2 metrics, then temperature alone */

    /* One metric, a time range in RFC 3339 and in Unix ms: readings 1..6 minus 3, 4. */
    char from[40], to[40];
    snprintf(from, sizeof from, "2025-11-15T09:46:41Z");
    snprintf(to, sizeof to, "%lld", (long long)(T0 + 6000));
    assert_int_equal(run_export("--store", d->db, "--output", d->out, "--metric", "mq3", "--device",
                                "dev-a", "--from", from, "--to", to, NULL),
                     0);
    struct dataset ds;
    load(d->out, NULL, &ds);
    assert_int_equal(ds.n_cols, 1);
    assert_string_equal(ds.col_names[0], "mq3");
    assert_int_equal(ds.n_rows, 4);
    assert_true(ds.ts_ms[0] == T0 + 1000 && ds.ts_ms[3] == T0 + 6000);
    dataset_free(&ds);
}

/* The label column: fixed, and it loads as classes; empty, ready to fill in. */
static void test_label(void **state)
{
    struct dir *d = *state;
    assert_int_equal(run_export("--store", d->db, "--output", d->out, "--label", "Smoke, \"x\"",
                                "--label-column", "Gas", NULL),
                     0);
    struct dataset ds;
    load(d->out, "Gas", &ds);
    assert_int_equal(ds.n_classes, 1);
    assert_string_equal(ds.class_names[0], "Smoke, \"x\"");
    dataset_free(&ds);

    assert_int_equal(run_export("--store", d->db, "--output", d->out, "--label-column", "Gas",
                                "--device", "dev-a", NULL),
                     0);
    FILE *f = fopen(d->out, "r");
    char line[256];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "ts,device,mq2,mq3,temperature_c,Gas\n");
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "1763200000000,dev-a,0.1,1.1,2.1,\n");
    fclose(f);
}

/* 25,000 readings whose timestamps come in runs of 7 equal ones: pages of 10,000 end
 * inside runs, and still every reading comes out once, in order. */
static void test_pages(void **state)
{
    struct dir *d = *state;
    struct store_options o = {.path = d->db, .busy_timeout_ms = 1000};
    struct store *s;
    char err[256];
    assert_int_equal(store_open(&s, &o, err, sizeof err), 0);
    enum { N = 25000 };
    struct metric_value *v = calloc(N, sizeof *v);
    struct reading *r = calloc(N, sizeof *r);
    const struct reading **rp = calloc(N, sizeof *rp);
    for (int i = 0; i < N; i++) {
        v[i] = (struct metric_value){"mq2", i, 0.0f, 0};
        r[i] = (struct reading){.device = "dev-many",
                                .seq = (uint64_t)i + 1,
                                .has_seq = true,
                                .ts_ms = T0 + (i / 7) * 10,
                                .recv_ms = T0,
                                .values = &v[i],
                                .n_values = 1,
                                .has_ts = true};
        rp[i] = &r[i];
    }
    struct store_batch b = {.readings = rp, .n_readings = N};
    assert_int_equal(store_write(s, &b, err, sizeof err), 0);
    /* dev-exact: 20,000 readings of distinct times, where a page of 10,000 ends exactly at
     * a chunk's end (the store then says "no more" with 10,000 to come). */
    for (int i = 0; i < 20000; i++) {
        r[i].device = "dev-exact";
        r[i].ts_ms = T0 + i;
    }
    b.n_readings = 20000;
    assert_int_equal(store_write(s, &b, err, sizeof err), 0);
    size_t moved;
    assert_int_equal(store_compact_all(s, &moved, err, sizeof err), 0);
    store_close(s);
    free(v);
    free(r);
    free(rp);

    assert_int_equal(
        run_export("--store", d->db, "--output", d->out, "--device", "dev-many", "--quiet", NULL),
        0);
    struct dataset ds;
    load(d->out, NULL, &ds);
    assert_int_equal(ds.n_rows, N);
    int c = col(&ds, "mq2");
    assert_true(c >= 0);
    for (size_t i = 0; i < ds.n_rows; i++)
        if (ds.x[i * ds.n_cols + c] != (double)i)
            fail_msg("row %zu holds reading %g", i, ds.x[i * ds.n_cols + c]);
    dataset_free(&ds);
    assert_int_equal(
        run_export("--store", d->db, "--output", d->out, "--device", "dev-exact", "--quiet", NULL),
        0);
    load(d->out, NULL, &ds);
    assert_int_equal(ds.n_rows, 20000);
    for (size_t i = 0; i < ds.n_rows; i++)
        assert_true(ds.ts_ms[i] == T0 + (int64_t)i);
    dataset_free(&ds);
}

/* Bad usage: 2, nothing written. Bad data: 1, nothing written. */
static void test_bad_arguments(void **state)
{
    struct dir *d = *state;
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char long_id[200];
    memset(long_id, 'd', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    unlink(d->out);
    struct {
        int expect;
        const char *args[10];
    } cases[] = {
        {2, {"--bogus", NULL}},
        {2, {"--store", NULL}},
        {2, {"--store", d->db, "--format", "xml", NULL}},
        {2, {"--store", d->db, "--from", "yesterday", NULL}},
        {2, {"--store", d->db, "--from", "2026-13-01", NULL}},
        {2, {"--store", d->db, "--from", "2026-01-02", "--to", "2026-01-01", NULL}},
        {2, {"--store", d->db, "--config", "/etc/canary.conf", NULL}},
        {2, {"--store", d->db, "--label-column", "ts", NULL}},
        {2, {"--store", d->db, "--format", "long", "--label-column", "value", NULL}},
        {2, {"--store", d->db, "--device", "", NULL}},
        {2, {"--store", d->db, "--device", long_id, NULL}},
        {2, {"--store", d->db, "--metric", "mq2,,mq3", NULL}},
        {2, {"--store", d->db, "--label", big, NULL}},
        {2, {"--config", "/nonexistent/canary.conf", NULL}},
        {1, {"--store", "/nonexistent/canary.db", NULL}},
        {1, {"--store", d->path, NULL}},
        {1, {"--store", d->db, "--device", "nobody", NULL}},
        {1, {"--store", d->db, "--metric", "co2_ppm", NULL}},
        {1, {"--store", d->db, "--from", "2030-01-01T00:00:00Z", NULL}},
        {1,
         {"--store", d->db, "--device", "dev-a", "--from", "2025-11-15T09:46:43Z", "--to",
          "2025-11-15T09:46:44Z", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char **a = cases[i].args;
        int rc = run_export("--output", d->out, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
                            a[8], NULL);
        if (rc != cases[i].expect)
            fail_msg("case %zu (%s %s): exit %d, expected %d", i, a[0], a[1] ? a[1] : "", rc,
                     cases[i].expect);
        if (access(d->out, F_OK) == 0)
            fail_msg("case %zu left %s behind", i, d->out);
    }
    /* An output directory that does not exist. */
    assert_int_equal(run_export("--store", d->db, "--output", "/nonexistent/x.csv", NULL), 1);
    /* --help is a success. */
    assert_int_equal(run_export("--help", NULL), 0);
}

/* The store named by canaryd's configuration (--config FILE), and the CSV on stdout. */
static void test_config_and_stdout(void **state)
{
    struct dir *d = *state;
    char conf[160], out[160];
    snprintf(conf, sizeof conf, "%s/canary.conf", d->path);
    snprintf(out, sizeof out, "%s/stdout.csv", d->path);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "[store]\npath = %s\n", d->db);
    fclose(f);
    /* stdout goes to a file for the call. */
    fflush(stdout);
    int saved = dup(1);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, 1);
    close(fd);
    int rc = run_export("--config", conf, "--device", "dev-a", "--metric", "mq2", NULL);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    assert_int_equal(rc, 0);
    struct dataset ds;
    load(out, NULL, &ds);
    assert_int_equal(ds.n_rows, 8);
    assert_int_equal(ds.n_cols, 1);
    dataset_free(&ds);
    /* A configuration whose store does not exist: the data's problem, 1. */
    f = fopen(conf, "w");
    fprintf(f, "[store]\npath = %s/missing.db\n", d->path);
    fclose(f);
    assert_int_equal(run_export("--config", conf, "--output", d->out, NULL), 1);
}

/* A metric named like one of the file's own columns is refused, not a duplicate header. */
static void test_column_clash(void **state)
{
    struct dir *d = *state;
    struct store_options o = {.path = d->db, .busy_timeout_ms = 1000};
    struct store *s;
    char err[256];
    assert_int_equal(store_open(&s, &o, err, sizeof err), 0);
    struct metric_value v = {"ts", 1, 0.0f, 0};
    struct reading r = {.device = "dev-ts",
                        .seq = 1,
                        .has_seq = true,
                        .ts_ms = T0,
                        .recv_ms = T0,
                        .values = &v,
                        .n_values = 1,
                        .has_ts = true};
    const struct reading *rp = &r;
    struct store_batch b = {.readings = &rp, .n_readings = 1};
    assert_int_equal(store_write(s, &b, err, sizeof err), 0);
    store_close(s);
    assert_int_equal(run_export("--store", d->db, "--device", "dev-ts", "--output", d->out, NULL),
                     1);
    assert_int_equal(access(d->out, F_OK), -1);
    assert_int_equal(run_export("--store", d->db, "--device", "dev-ts", "--format", "long",
                                "--output", d->out, "--quiet", NULL),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wide_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_and_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_column_clash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_and_stdout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
