/* test_api.c — the REST API against the real canaryd: devices (list, pagination, get,
 * patch, register), readings (ranges, limits, order, metric filter, downsampling), latest
 * values, maxima, stats, health, bad query parameters, the admin token; auto-registration
 * off; and canaryd's command line (help, check-config, bad configuration, secrets). */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define STEP 20000 /* ms between the readings of dev-2 */

static int64_t t0;

static int start(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    daemon_init(d, "--set", "store.compact_interval_ms=100", NULL);
    daemon_start(d);
    t0 = now_ms() - 2500000; /* 120 readings, the last 120 s ago: all in the last hour */
    /* 5 devices; dev-2 has 120 readings a minute... of gas and temperature. */
    char body[200000];
    for (int dev = 0; dev < 5; dev++) {
        size_t len = 0;
        body[len++] = '[';
        int n = dev == 2 ? 120 : 3;
        for (int i = 0; i < n; i++)
            len += (size_t)sprintf(body + len,
                                   "%s{\"device\":\"dev-%d\",\"seq\":%d,\"ts\":%lld,"
                                   "\"values\":{\"gas_ppm\":%d,\"temperature_c\":%.1f}}",
                                   i ? "," : "", dev, i + 1, (long long)(t0 + i * STEP), 400 + i,
                                   20.0 + (i % 10));
        body[len++] = ']';
        body[len] = '\0';
        cJSON *j;
        assert_int_equal(http_post_json(d, "/api/v1/ingest", body, &j), 200);
        cJSON_Delete(j);
    }
    *state = d;
    return 0;
}

static int stop(void **state)
{
    struct daemon *d = *state;
    assert_int_equal(daemon_stop(d, SIGTERM), 0);
    daemon_cleanup(d);
    free(d);
    return 0;
}

static const char *str(cJSON *o, const char *name)
{
    cJSON *v = cJSON_GetObjectItem(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void expect_400(struct daemon *d, const char *path, const char *field)
{
    cJSON *j;
    long st = http_get_json(d, path, &j);
    if (st != 400 || strcmp(json_error_field(j), field) != 0)
        fail_msg("GET %s: %ld field '%s', expected 400 field '%s'", path, st, json_error_field(j),
                 field);
    cJSON_Delete(j);
}

static void test_devices(void **state)
{
    struct daemon *d = *state;
    cJSON *j;
    assert_int_equal(http_get_json(d, "/api/v1/devices?limit=2", &j), 200);
    cJSON *list = cJSON_GetObjectItem(j, "devices");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    assert_string_equal(str(cJSON_GetArrayItem(list, 0), "id"), "dev-0");
    assert_string_equal(str(j, "next"), "dev-1");
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/devices?after=dev-1&limit=10", &j), 200);
    list = cJSON_GetObjectItem(j, "devices");
    assert_int_equal(cJSON_GetArraySize(list), 3);
    assert_string_equal(str(cJSON_GetArrayItem(list, 0), "id"), "dev-2");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "next")));
    cJSON *d2 = cJSON_GetArrayItem(list, 0);
    assert_true(json_number(d2, "readings") == 120);
    assert_string_equal(str(d2, "status"), "online");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(d2, "registered")));
    cJSON_Delete(j);

    assert_int_equal(http_get_json(d, "/api/v1/devices/dev-9", &j), 404);
    assert_string_equal(json_error_code(j), "not_found");
    cJSON_Delete(j);
    expect_400(d, "/api/v1/devices/bad%20id", "device");
    expect_400(d, "/api/v1/devices?limit=0", "limit");
    expect_400(d, "/api/v1/devices?limit=5000", "limit");
    expect_400(d, "/api/v1/devices?sort=name", "sort");

    struct http_response r;
    const char *patch = "{\"name\":\"Kitchen\",\"location\":\"Ground floor\",\"kind\":\"kitchen\"}";
    assert_int_equal(http_call(d, "PATCH", "/api/v1/devices/dev-0", "application/json", patch,
                               strlen(patch), &r),
                     0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    assert_int_equal(http_get_json(d, "/api/v1/devices/dev-0", &j), 200);
    assert_string_equal(str(j, "name"), "Kitchen");
    assert_string_equal(str(j, "location"), "Ground floor");
    assert_string_equal(str(j, "kind"), "kitchen");
    cJSON_Delete(j);
    /* Only the given fields change. */
    const char *p2 = "{\"location\":\"Basement\"}";
    assert_int_equal(
        http_call(d, "PATCH", "/api/v1/devices/dev-0", "application/json", p2, strlen(p2), &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"name\":\"Kitchen\""));
    assert_non_null(strstr(r.body, "\"location\":\"Basement\""));
    http_response_free(&r);
    const char *bad[] = {"{\"name\":5}", "{\"colour\":\"red\"}", "[1]", "{\"name\":\"a\nb\"}",
                         "{nope"};
    const char *field[] = {"name", "colour", NULL, "name", NULL};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(http_call(d, "PATCH", "/api/v1/devices/dev-0", "application/json", bad[i],
                                   strlen(bad[i]), &r),
                         0);
        assert_int_equal(r.status, 400);
        if (field[i] != NULL) {
            char want[64];
            snprintf(want, sizeof want, "\"field\":\"%s\"", field[i]);
            assert_non_null(strstr(r.body, want));
        }
        http_response_free(&r);
    }
    char longname[300];
    memset(longname, 'x', sizeof longname);
    snprintf(longname, sizeof longname, "{\"name\":\"%0250d\"}", 1);
    assert_int_equal(http_call(d, "PATCH", "/api/v1/devices/dev-0", "application/json", longname,
                               strlen(longname), &r),
                     0);
    assert_int_equal(r.status, 400);
    http_response_free(&r);
    assert_int_equal(
        http_call(d, "PATCH", "/api/v1/devices/nope", "application/json", p2, strlen(p2), &r), 0);
    assert_int_equal(r.status, 404);
    http_response_free(&r);
}

static void test_readings_queries(void **state)
{
    struct daemon *d = *state;
    cJSON *j;
    /* Default: the last hour, newest first. */
    assert_int_equal(http_get_json(d, "/api/v1/devices/dev-2/readings", &j), 200);
    cJSON *rs = cJSON_GetObjectItem(j, "readings");
    assert_int_equal(cJSON_GetArraySize(rs), 120);
    assert_string_equal(str(j, "order"), "desc");
    assert_true(json_number(cJSON_GetArrayItem(rs, 0), "seq") == 120);
    assert_true(json_number(cJSON_GetArrayItem(rs, 0), "values.gas_ppm.value") == 519);
    cJSON *flags = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(rs, 0), "values"), "gas_ppm"),
        "flags");
    assert_true(cJSON_IsArray(flags));
    cJSON_Delete(j);

    char path[256];
    snprintf(
        path, sizeof path,
        "/api/v1/devices/dev-2/readings?from=%lld&to=%lld&order=asc&limit=5&metric=temperature_c",
        (long long)(t0 + STEP), (long long)(t0 + STEP * 20));
    assert_int_equal(http_get_json(d, path, &j), 200);
    rs = cJSON_GetObjectItem(j, "readings");
    assert_int_equal(cJSON_GetArraySize(rs), 5);
    cJSON *first = cJSON_GetArrayItem(rs, 0);
    assert_true(json_number(first, "ts_ms") == (double)(t0 + STEP));
    assert_true(json_number(first, "values.temperature_c.value") == 21);
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "values"), "gas_ppm"));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "more")));
    assert_true(json_number(j, "next_ts_ms") == (double)(t0 + 5 * STEP));
    cJSON_Delete(j);

    /* Downsampled for a chart: 4 buckets over the hour, limits to draw. */
    snprintf(path, sizeof path,
             "/api/v1/devices/dev-2/readings?metric=gas_ppm&points=4&from=%lld&to=%lld",
             (long long)t0, (long long)(t0 + 120 * STEP - 1));
    assert_int_equal(http_get_json(d, path, &j), 200);
    cJSON *pts = cJSON_GetObjectItem(j, "points");
    assert_int_equal(cJSON_GetArraySize(pts), 4);
    double total = 0;
    cJSON *p;
    cJSON_ArrayForEach(p, pts) total += json_number(p, "count");
    assert_true(total == 120);
    assert_true(json_number(cJSON_GetArrayItem(pts, 0), "min") == 400);
    assert_true(json_number(cJSON_GetArrayItem(pts, 0), "max") == 429);
    assert_true(json_number(cJSON_GetArrayItem(pts, 0), "avg") == 414.5);
    assert_true(json_number(j, "limits.crit_high") == 5000);
    assert_string_equal(str(j, "unit"), "ppm");
    cJSON_Delete(j);

    assert_int_equal(http_get_json(d, "/api/v1/devices/dev-2/readings?from=-5m&to=now", &j), 200);
    cJSON_Delete(j);
    expect_400(d, "/api/v1/devices/dev-2/readings?points=3", "metric");
    expect_400(d, "/api/v1/devices/dev-2/readings?limit=0", "limit");
    expect_400(d, "/api/v1/devices/dev-2/readings?limit=abc", "limit");
    expect_400(d, "/api/v1/devices/dev-2/readings?order=sideways", "order");
    expect_400(d, "/api/v1/devices/dev-2/readings?from=yesterday", "from");
    expect_400(d, "/api/v1/devices/dev-2/readings?from=2000&to=1000", "from");
    expect_400(d, "/api/v1/devices/dev-2/readings?metric=Gas%20PPM", "metric");
    expect_400(d, "/api/v1/devices/dev-2/readings?points=100000&metric=gas_ppm", "points");
    assert_int_equal(http_get_json(d, "/api/v1/devices/nope/readings", &j), 404);
    cJSON_Delete(j);
}

static void test_latest_maxima_stats_health(void **state)
{
    struct daemon *d = *state;
    cJSON *j;
    assert_int_equal(http_get_json(d, "/api/v1/devices/dev-2/latest", &j), 200);
    assert_string_equal(str(j, "device"), "dev-2");
    assert_true(json_number(j, "metrics.gas_ppm.value") == 519);
    assert_true(json_number(j, "metrics.temperature_c.value") == 29);
    assert_string_equal(
        str(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metrics"), "gas_ppm"), "unit"), "ppm");
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/latest", &j), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "devices")), 5);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/devices/dev-2/maxima", &j), 200);
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "maxima"), 0);
    assert_string_equal(str(m, "metric"), "gas_ppm");
    assert_true(json_number(m, "max") == 519);
    assert_true(json_number(m, "max_ts_ms") == (double)(t0 + 119 * STEP));
    assert_true(json_number(m, "min") == 400);
    assert_true(json_number(m, "count") == 120);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/maxima", &j), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "maxima")), 10);
    cJSON_Delete(j);

    assert_int_equal(http_get_json(d, "/api/v1/stats", &j), 200);
    assert_true(json_number(j, "devices") == 5);
    assert_true(json_number(j, "readings_total") == 132);
    assert_true(json_number(j, "counters.readings_accepted") == 132);
    assert_true(json_number(j, "pipeline.workers") >= 1);
    assert_true(json_number(j, "anomalies_last_hour") >= 0);
    assert_true(json_number(j, "alerts_open.total") >= 0);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/healthz", &j), 200);
    assert_string_equal(str(j, "status"), "ok");
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/readyz", &j), 200);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/metrics", &j), 200);
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(j, "metrics")) >= 10);
    cJSON_Delete(j);
}

static bool compacted(void *arg)
{
    cJSON *j;
    http_get_json(arg, "/api/v1/stats", &j);
    bool done = json_number(j, "store.log_rows") == 0 && json_number(j, "store.chunks") > 0;
    cJSON_Delete(j);
    return done;
}

static void test_queries_after_compaction(void **state)
{
    struct daemon *d = *state;
    assert_true(wait_until(compacted, d, 5000));
    cJSON *j;
    assert_int_equal(http_get_json(d, "/api/v1/devices/dev-2/readings?limit=10000", &j), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "readings")), 120);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/devices/dev-2/latest", &j), 200);
    assert_true(json_number(j, "metrics.gas_ppm.value") == 519);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/devices/dev-2", &j), 200);
    assert_true(json_number(j, "readings") == 120);
    cJSON_Delete(j);
}

static void test_admin_token_and_registration(void **state)
{
    (void)state;
    setenv("CANARY_API_ADMIN_TOKEN", "s3cret-token", 1);
    struct daemon d;
    daemon_init(&d, "--set", "ingest.auto_register=false", NULL);
    daemon_start(&d);
    unsetenv("CANARY_API_ADMIN_TOKEN");
    cJSON *j;
    /* Unknown devices are refused while auto-registration is off. */
    const char *reading = "{\"device\":\"new-1\",\"seq\":1,\"values\":{\"gas_ppm\":1}}";
    assert_int_equal(http_post_json(&d, "/api/v1/ingest", reading, &j), 403);
    assert_string_equal(json_error_code(j), "unknown_device");
    cJSON_Delete(j);
    /* Registering needs the token. */
    const char *dev = "{\"id\":\"new-1\",\"name\":\"Boiler\",\"location\":\"Cellar\"}";
    assert_int_equal(http_post_json(&d, "/api/v1/devices", dev, &j), 401);
    assert_string_equal(json_error_code(j), "unauthorized");
    cJSON_Delete(j);
    struct http_response r;
    const char *wrong[] = {"Authorization: Bearer wrong", NULL};
    const char *right[] = {"Authorization: Bearer s3cret-token", NULL};
    assert_int_equal(http_call_with(&d, "POST", "/api/v1/devices", wrong, "application/json", dev,
                                    strlen(dev), &r),
                     0);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "unauthorized"));
    http_response_free(&r);
    assert_int_equal(http_call_with(&d, "POST", "/api/v1/devices", right, "application/json", dev,
                                    strlen(dev), &r),
                     0);
    assert_int_equal(r.status, 201);
    http_response_free(&r);
    /* Reads need no token; the registered device now takes readings. */
    assert_int_equal(http_get_json(&d, "/api/v1/devices/new-1", &j), 200);
    assert_string_equal(str(j, "name"), "Boiler");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "registered")));
    assert_string_equal(str(j, "status"), "never");
    cJSON_Delete(j);
    assert_int_equal(http_post_json(&d, "/api/v1/ingest", reading, &j), 200);
    cJSON_Delete(j);
    /* Registering twice conflicts. */
    assert_int_equal(http_call_with(&d, "POST", "/api/v1/devices", right, "application/json", dev,
                                    strlen(dev), &r),
                     0);
    assert_int_equal(r.status, 409);
    http_response_free(&r);
    /* The token is never printed in the log. */
    assert_int_equal(http_call(&d, "GET", "/api/v1/stats", NULL, NULL, 0, &r), 0);
    http_response_free(&r);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    FILE *log = fopen(d.log, "r");
    char line[2048];
    while (fgets(line, sizeof line, log) != NULL)
        assert_null(strstr(line, "s3cret-token"));
    fclose(log);
    daemon_cleanup(&d);
}

/* Runs canaryd with arguments; returns its exit status and its output in out. */
static int run_canaryd(char *out, size_t len, const char *const *args)
{
    char cmd[2048];
    size_t n = (size_t)snprintf(cmd, sizeof cmd, "%s", CANARYD_PATH);
    for (int i = 0; args[i] != NULL; i++)
        n += (size_t)snprintf(cmd + n, sizeof cmd - n, " '%s'", args[i]);
    snprintf(cmd + n, sizeof cmd - n, " 2>&1");
    FILE *f = popen(cmd, "r");
    size_t got = fread(out, 1, len - 1, f);
    out[got] = '\0';
    int status = pclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* HEAD is GET without a body, on the API and the dashboard; not on the endless event stream
 * (405, and its Allow names only GET). */
static void test_head_requests(void **state)
{
    struct daemon *d = *state;
    const char *paths[] = {"/", "/assets/app.js", "/api/v1/devices", "/healthz"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct http_response get, head;
        assert_int_equal(http_call_with(d, "GET", paths[i], NULL, NULL, NULL, 0, &get), 0);
        assert_int_equal(http_call_with(d, "HEAD", paths[i], NULL, NULL, NULL, 0, &head), 0);
        if (get.status != 200 || head.status != 200 || head.body_len != 0 ||
            strcmp(get.content_type, head.content_type) != 0)
            fail_msg("HEAD %s: %ld (%zu body bytes, %s), GET: %ld (%s)", paths[i], head.status,
                     head.body_len, head.content_type, get.status, get.content_type);
        http_response_free(&get);
        http_response_free(&head);
    }
    struct http_response r;
    assert_int_equal(http_call_with(d, "HEAD", "/api/v1/stream", NULL, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 405);
    http_response_free(&r);
    assert_int_equal(http_call_with(d, "HEAD", "/api/v1/nope", NULL, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    http_response_free(&r);
}

static void test_command_line_and_configuration_errors(void **state)
{
    (void)state;
    char out[65536];
    const char *help[] = {"--help", NULL};
    assert_int_equal(run_canaryd(out, sizeof out, help), 0);
    assert_non_null(strstr(out, "usage: canaryd"));
    const char *check[] = {"--check-config", "--set", "http.listen=0.0.0.0:9999", NULL};
    assert_int_equal(run_canaryd(out, sizeof out, check), 0);
    assert_non_null(strstr(out, "listen = 0.0.0.0:9999"));
    assert_non_null(strstr(out, "configuration ok"));
    const char *unknown[] = {"--set", "http.lisen=1", NULL};
    assert_int_equal(run_canaryd(out, sizeof out, unknown), 2);
    assert_non_null(strstr(out, "http.lisen"));
    const char *bad_value[] = {"--set", "ingest.max_batch=-5", NULL};
    assert_int_equal(run_canaryd(out, sizeof out, bad_value), 2);
    assert_non_null(strstr(out, "ingest.max_batch"));
    const char *relation[] = {"--set", "devices.offline_after_s=10", "--set",
                              "devices.stale_after_s=20", NULL};
    assert_int_equal(run_canaryd(out, sizeof out, relation), 2);
    assert_non_null(strstr(out, "offline_after_s"));
    const char *secret[] = {"--set", "api.admin_token=abc", NULL};
    assert_int_equal(run_canaryd(out, sizeof out, secret), 2);
    assert_non_null(strstr(out, "secret"));
    assert_null(strstr(out, "abc"));
    const char *flag[] = {"--frobnicate", NULL};
    assert_int_equal(run_canaryd(out, sizeof out, flag), 2);
    const char *missing[] = {"--config", "/nonexistent/canary.conf", NULL};
    assert_int_equal(run_canaryd(out, sizeof out, missing), 2);
    assert_non_null(strstr(out, "/nonexistent/canary.conf"));

    /* A world-readable config file may not hold a secret; a 0600 one may. */
    char dir[] = "/tmp/canary-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[96];
    snprintf(path, sizeof path, "%s/c.conf", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "[http]\nlisten = 127.0.0.1:0\n[api]\nadmin_token = topsecret\n");
    fclose(f);
    chmod(path, 0644);
    const char *cfg[] = {"--check-config", "--config", path, NULL};
    assert_int_equal(run_canaryd(out, sizeof out, cfg), 2);
    assert_non_null(strstr(out, "readable"));
    chmod(path, 0600);
    assert_int_equal(run_canaryd(out, sizeof out, cfg), 0);
    assert_null(strstr(out, "topsecret"));
    assert_non_null(strstr(out, "admin_token = <set>"));
    f = fopen(path, "w");
    fprintf(f, "[http]\nlisten = 127.0.0.1:0\nthis line is wrong\n");
    fclose(f);
    assert_int_equal(run_canaryd(out, sizeof out, cfg), 2);
    assert_non_null(strstr(out, "line 3"));
    unlink(path);
    rmdir(dir);
    /* An unusable database path fails start-up with a clear message, exit 1. */
    const char *baddb[] = {"--listen", "127.0.0.1:0", "--db", "/proc/canary/x.db", NULL};
    assert_int_equal(run_canaryd(out, sizeof out, baddb), 1);
    assert_non_null(strstr(out, "/proc/canary"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_readings_queries),
        cmocka_unit_test(test_latest_maxima_stats_health),
        cmocka_unit_test(test_queries_after_compaction),
        cmocka_unit_test(test_admin_token_and_registration),
        cmocka_unit_test(test_head_requests),
        cmocka_unit_test(test_command_line_and_configuration_errors),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
