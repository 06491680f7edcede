/* test_export.c — the user's gas workflow against a running canaryd (docs/GAS.md "Your own
 * data"): three devices send readings of the gas sensors (from tests/fixtures/gas-small.csv:
 * clean air, perfume, smoke); `canary export` reads canaryd's store while canaryd runs and
 * keeps ingesting (read-only: canaryd's next readings are accepted and stored, and a second
 * export sees them); each device's recording is exported with its class as the label, the
 * files are joined, and `canary train --model gas --series-column device --order-column ts`
 * trains on them, `canary eval` evaluates the model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_INPUTS 7
#define ROWS     60

static const char *const inputs[N_INPUTS] = {"mq2", "mq3", "mq5", "mq6", "mq7", "mq8", "mq135"};
static const char *const classes[3] = {"NoGas", "Perfume", "Smoke"};
static const char *const devices[3] = {"kitchen-1", "kitchen-2", "kitchen-3"};

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int run_show(const char *cmd, const char *log)
{
    int rc = run(cmd);
    if (rc != 0) {
        char show[600];
        snprintf(show, sizeof show, "cat %s", log);
        (void)run(show);
    }
    return rc;
}

/* The fixture's rows of one class, in file (time) order. */
static size_t class_rows(const char *cls, double rows[][N_INPUTS], size_t cap)
{
    const char *src = getenv("CANARY_SOURCE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/tests/fixtures/gas-small.csv", src ? src : ".");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256];
    size_t n = 0;
    assert_non_null(fgets(line, sizeof line, f));
    while (n < cap && fgets(line, sizeof line, f) != NULL) {
        double v[N_INPUTS];
        char name[32];
        int serial;
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%31s", &serial, &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], name) == 9 &&
            strcmp(name, cls) == 0)
            memcpy(rows[n++], v, sizeof v);
    }
    fclose(f);
    return n;
}

static void send_row(struct daemon *d, const char *device, int64_t ts, int seq, const double *v)
{
    char body[512];
    int len = snprintf(body, sizeof body, "{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{",
                       device, seq, (long long)ts);
    for (int k = 0; k < N_INPUTS; k++)
        len += snprintf(body + len, sizeof body - (size_t)len, "%s\"%s\":%.1f", k ? "," : "",
                        inputs[k], v[k]);
    snprintf(body + len, sizeof body - (size_t)len, "}}");
    cJSON *j = NULL;
    long st = http_post_json(d, "/api/v1/ingest", body, &j);
    if (st != 200)
        fail_msg("posting %s: %ld", body, st);
    cJSON_Delete(j);
}

struct stored {
    struct daemon *d;
    const char *device;
    double want;
};

static bool device_has(void *arg)
{
    struct stored *s = arg;
    char path[128];
    snprintf(path, sizeof path, "/api/v1/devices/%s", s->device);
    cJSON *j = NULL;
    bool ok = http_get_json(s->d, path, &j) == 200 && json_number(j, "readings") >= s->want;
    cJSON_Delete(j);
    return ok;
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void test_export_label_train(void **state)
{
    (void)state;
    struct daemon d;
    daemon_init(&d, "--set", "alerts.offline_severity=off", NULL);
    daemon_start(&d);
    int64_t base = now_ms() - 3600000;
    static double rows[3][400][N_INPUTS];
    for (int c = 0; c < 3; c++)
        assert_true(class_rows(classes[c], rows[c], 400) >= ROWS + 10);
    for (int i = 0; i < ROWS; i++)
        for (int c = 0; c < 3; c++)
            send_row(&d, devices[c], base + i * 1000, i + 1, rows[c][i]);
    for (int c = 0; c < 3; c++) {
        struct stored s = {&d, devices[c], ROWS};
        assert_true(wait_until(device_has, &s, 10000));
    }

    char cmd[2048], csv[3][128], all[128], log[128], model[128];
    snprintf(log, sizeof log, "%s/cli.txt", d.dir);
    snprintf(all, sizeof all, "%s/all.csv", d.dir);
    snprintf(model, sizeof model, "%s/g.cgas", d.dir);
    for (int c = 0; c < 3; c++) {
        snprintf(csv[c], sizeof csv[c], "%s/%s.csv", d.dir, classes[c]);
        snprintf(cmd, sizeof cmd,
                 "%s export --store %s --device %s --label %s --label-column Gas --output %s "
                 "> %s 2>&1",
                 CANARY_CLI_PATH, d.db, devices[c], classes[c], csv[c], log);
        assert_int_equal(run_show(cmd, log), 0);
        assert_int_equal(count_lines(csv[c]), ROWS + 1);
    }
    /* The summary says what was written. */
    snprintf(cmd, sizeof cmd, "grep -q '60 readings (420 values) of 1 device, 7 metrics' %s", log);
    assert_int_equal(run_show(cmd, log), 0);

    /* canaryd was not locked out: it takes and stores more, and the next export sees them. */
    for (int c = 0; c < 3; c++)
        for (int i = ROWS; i < ROWS + 10; i++)
            send_row(&d, devices[c], base + i * 1000, i + 1, rows[c][i]);
    for (int c = 0; c < 3; c++) {
        struct stored s = {&d, devices[c], ROWS + 10};
        assert_true(wait_until(device_has, &s, 10000));
    }
    for (int c = 0; c < 3; c++) {
        snprintf(cmd, sizeof cmd,
                 "%s export --store %s --device %s --label %s --label-column Gas --output %s "
                 "--quiet > %s 2>&1",
                 CANARY_CLI_PATH, d.db, devices[c], classes[c], csv[c], log);
        assert_int_equal(run_show(cmd, log), 0);
        assert_int_equal(count_lines(csv[c]), ROWS + 10 + 1);
    }
    /* Every device at once, long format: 3 x 70 readings x 7 values. */
    snprintf(cmd, sizeof cmd, "%s export --store %s --format long --output %s/long.csv > %s 2>&1",
             CANARY_CLI_PATH, d.db, d.dir, log);
    assert_int_equal(run_show(cmd, log), 0);
    char long_csv[128];
    snprintf(long_csv, sizeof long_csv, "%s/long.csv", d.dir);
    assert_int_equal(count_lines(long_csv), 3 * (ROWS + 10) * N_INPUTS + 1);

    /* Join (one header) and train with the device as the series and ts as the order. */
    snprintf(cmd, sizeof cmd, "(cat %s; tail -n +2 %s; tail -n +2 %s) > %s", csv[0], csv[1], csv[2],
             all);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "%s train --model gas --input %s --label-column Gas "
             "--features mq2,mq3,mq5,mq6,mq7,mq8,mq135 --series-column device --order-column ts "
             "--window 8 --folds 3 --out %s > %s 2>&1",
             CANARY_CLI_PATH, all, model, log);
    assert_int_equal(run_show(cmd, log), 0);
    snprintf(cmd, sizeof cmd, "grep -q '210 rows x 7 sensors, 3 classes: NoGas Perfume Smoke' %s",
             log);
    assert_int_equal(run_show(cmd, log), 0);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --input %s > %s 2>&1", CANARY_CLI_PATH, model,
             all, log);
    assert_int_equal(run_show(cmd, log), 0);
    snprintf(cmd, sizeof cmd, "grep -q 'accuracy' %s", log);
    assert_int_equal(run_show(cmd, log), 0);

    /* Through the configuration instead of --store: store.path from $CANARY_STORE_PATH. */
    snprintf(cmd, sizeof cmd,
             "CANARY_STORE_PATH=%s %s export --device kitchen-1 --metric mq2 --output %s/env.csv "
             "> %s 2>&1",
             d.db, CANARY_CLI_PATH, d.dir, log);
    assert_int_equal(run_show(cmd, log), 0);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_label_train),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
