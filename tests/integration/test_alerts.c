/* test_alerts.c — alerts end to end through the real canaryd: a gas leak opens one
 * critical alert, is acknowledged, commented, auto-resolves when clear, re-opens as the same
 * alert; a noisy signal at a limit opens one alert, not many; flame with a fast
 * temperature rise is a fire; a silent device raises an offline alert that its next reading
 * resolves; operator errors get 4xx. Readings carry their own timestamps, so the tests move
 * time forward without sleeping. */
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

static int64_t base_ts; /* readings start 10 minutes in the past */

static int start(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    daemon_init(d, "--set", "alerts.open_after=2", "--set", "alerts.resolve_after_s=5", "--set",
                "alerts.reopen_window_s=30", "--set", "alerts.offline_severity=off", "--set",
                "detect.warmup_readings=5", NULL);
    daemon_start(d);
    base_ts = now_ms() - 600000;
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

/* Posts one reading of `device` at base_ts + t_s seconds; seq = t_s + 1. */
static void reading(struct daemon *d, const char *device, int t_s, const char *values)
{
    char body[512];
    snprintf(body, sizeof body, "{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{%s}}",
             device, t_s + 1, (long long)(base_ts + (int64_t)t_s * 1000), values);
    cJSON *j;
    long st = http_post_json(d, "/api/v1/ingest", body, &j);
    if (st != 200) {
        char *t = cJSON_PrintUnformatted(j);
        fail_msg("posting %s: %ld %s", body, st, t ? t : "");
    }
    cJSON_Delete(j);
}

/* The alerts of a device (newest first). Caller frees. */
static cJSON *alerts_of(struct daemon *d, const char *device)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/alerts?device=%s", device);
    cJSON *j;
    assert_int_equal(http_get_json(d, path, &j), 200);
    return j;
}

static const char *str(cJSON *o, const char *name)
{
    cJSON *v = cJSON_GetObjectItem(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static long action(struct daemon *d, double id, const char *what, const char *body, cJSON **out)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/alerts/%.0f/%s", id, what);
    return http_post_json(d, path, body, out);
}

static void test_gas_leak_lifecycle(void **state)
{
    struct daemon *d = *state;
    int t = 0;
    for (; t < 10; t++)
        reading(d, "kitchen-1", t,
                t % 2 ? "\"gas_ppm\":418,\"temperature_c\":22"
                      : "\"gas_ppm\":423,\"temperature_c\":22");
    cJSON *j = alerts_of(d, "kitchen-1");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "alerts")), 0);
    cJSON_Delete(j);

    /* The leak: critical opens at once, one alert however many readings follow. */
    for (; t < 20; t++)
        reading(d, "kitchen-1", t, "\"gas_ppm\":6200,\"temperature_c\":22");
    j = alerts_of(d, "kitchen-1");
    cJSON *list = cJSON_GetObjectItem(j, "alerts");
    assert_int_equal(cJSON_GetArraySize(list), 1);
    cJSON *a = cJSON_GetArrayItem(list, 0);
    assert_string_equal(str(a, "kind"), "gas_leak");
    assert_string_equal(str(a, "severity"), "critical");
    assert_string_equal(str(a, "state"), "open");
    assert_string_equal(str(a, "metric"), "gas_ppm");
    assert_non_null(strstr(str(a, "message"), "kitchen-1"));
    assert_non_null(strstr(str(a, "message"), "5000"));
    assert_true(json_number(a, "opened_ms") == (double)(base_ts + 10000));
    assert_true(json_number(a, "limit") == 5000);
    double id = json_number(a, "id");
    cJSON_Delete(j);

    /* Acknowledge with a comment, then comment again. */
    cJSON *r;
    assert_int_equal(action(d, id, "ack", "{\"by\":\"alice\",\"comment\":\"on my way\"}", &r), 200);
    assert_string_equal(str(r, "state"), "acknowledged");
    assert_string_equal(str(r, "acknowledged_by"), "alice");
    cJSON_Delete(r);
    assert_int_equal(action(d, id, "ack", NULL, &r), 409);
    cJSON_Delete(r);
    assert_int_equal(action(d, id, "comments", "{\"by\":\"alice\",\"text\":\"valve closed\"}", &r),
                     201);
    cJSON_Delete(r);

    /* Readings go back to normal: nothing resolves before 5 s of clear readings... */
    for (; t < 24; t++)
        reading(d, "kitchen-1", t, "\"gas_ppm\":450,\"temperature_c\":22");
    j = alerts_of(d, "kitchen-1");
    assert_string_equal(str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "alerts"), 0), "state"),
                        "acknowledged");
    cJSON_Delete(j);
    /* ... and then it resolves itself. */
    for (; t < 27; t++)
        reading(d, "kitchen-1", t, "\"gas_ppm\":450,\"temperature_c\":22");
    char path[64];
    snprintf(path, sizeof path, "/api/v1/alerts/%.0f", id);
    assert_int_equal(http_get_json(d, path, &j), 200);
    assert_string_equal(str(j, "state"), "resolved");
    assert_string_equal(str(j, "resolved_by"), "canary");
    assert_true(json_number(j, "peak") == 6200);
    cJSON *events = cJSON_GetObjectItem(j, "events");
    assert_int_equal(cJSON_GetArraySize(events), 4);
    const char *expected[] = {"opened", "acknowledged", "commented", "resolved"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(str(cJSON_GetArrayItem(events, i), "action"), expected[i]);
    assert_string_equal(str(cJSON_GetArrayItem(events, 1), "note"), "on my way");
    assert_string_equal(str(cJSON_GetArrayItem(events, 2), "actor"), "alice");
    cJSON_Delete(j);

    /* Back within the re-open window: the same alert re-opens. */
    reading(d, "kitchen-1", t++, "\"gas_ppm\":7000,\"temperature_c\":22");
    assert_int_equal(http_get_json(d, path, &j), 200);
    assert_string_equal(str(j, "state"), "open");
    events = cJSON_GetObjectItem(j, "events");
    assert_string_equal(str(cJSON_GetArrayItem(events, cJSON_GetArraySize(events) - 1), "action"),
                        "reopened");
    cJSON_Delete(j);
    j = alerts_of(d, "kitchen-1");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "alerts")), 1);
    cJSON_Delete(j);

    /* An operator resolves it. */
    assert_int_equal(action(d, id, "resolve", "{\"by\":\"bob\"}", &r), 200);
    assert_string_equal(str(r, "state"), "resolved");
    assert_string_equal(str(r, "resolved_by"), "bob");
    cJSON_Delete(r);
    assert_int_equal(action(d, id, "resolve", NULL, &r), 409);
    cJSON_Delete(r);
    assert_int_equal(http_get_json(d, "/api/v1/stats", &j), 200);
    assert_true(json_number(j, "counters.alerts_opened") >= 1);
    cJSON_Delete(j);
}

static void test_noisy_signal_at_a_limit_opens_one_alert(void **state)
{
    struct daemon *d = *state;
    int t = 0;
    for (; t < 10; t++)
        reading(d, "noisy-1", t, "\"gas_ppm\":900");
    /* Around the warn level (1000, hysteresis 50) for a minute. */
    for (; t < 70; t++)
        reading(d, "noisy-1", t, t % 2 ? "\"gas_ppm\":1012" : "\"gas_ppm\":985");
    cJSON *j = alerts_of(d, "noisy-1");
    cJSON *list = cJSON_GetObjectItem(j, "alerts");
    assert_int_equal(cJSON_GetArraySize(list), 1);
    cJSON *a = cJSON_GetArrayItem(list, 0);
    assert_string_equal(str(a, "kind"), "gas_leak");
    assert_string_equal(str(a, "severity"), "high");
    assert_string_equal(str(a, "state"), "open");
    cJSON_Delete(j);
}

static void test_fire_needs_flame_and_rising_heat(void **state)
{
    struct daemon *d = *state;
    char v[128];
    /* Temperature rising 18 °C/min, no flame: a rate alert, no fire. */
    for (int t = 0; t < 80; t += 2) {
        snprintf(v, sizeof v, "\"temperature_c\":%.1f,\"flame\":0", 22 + t * 0.3);
        reading(d, "garage-1", t, v);
    }
    cJSON *j = alerts_of(d, "garage-1");
    cJSON *list = cJSON_GetObjectItem(j, "alerts");
    bool rate = false, fire = false;
    cJSON *a;
    cJSON_ArrayForEach(a, list)
    {
        rate = rate || !strcmp(str(a, "kind"), "rate");
        fire = fire || !strcmp(str(a, "kind"), "fire");
    }
    assert_true(rate);
    assert_false(fire);
    cJSON_Delete(j);
    /* Flame appears while it is still rising: fire, critical, on the device. */
    for (int t = 80; t < 90; t += 2) {
        snprintf(v, sizeof v, "\"temperature_c\":%.1f,\"flame\":1", 22 + t * 0.3);
        reading(d, "garage-1", t, v);
    }
    j = alerts_of(d, "garage-1");
    list = cJSON_GetObjectItem(j, "alerts");
    cJSON_ArrayForEach(a, list)
    {
        if (!strcmp(str(a, "kind"), "fire")) {
            fire = true;
            assert_string_equal(str(a, "severity"), "critical");
            assert_string_equal(str(a, "metric"), "device");
            assert_non_null(strstr(str(a, "message"), "flame"));
        }
    }
    assert_true(fire);
    cJSON_Delete(j);
    /* A flame sensor alone opens a threshold alert but no fire. */
    for (int t = 0; t < 4; t++)
        reading(d, "candle-1", t, "\"temperature_c\":21,\"flame\":1");
    j = alerts_of(d, "candle-1");
    list = cJSON_GetObjectItem(j, "alerts");
    assert_int_equal(cJSON_GetArraySize(list), 1);
    assert_string_equal(str(cJSON_GetArrayItem(list, 0), "kind"), "threshold");
    assert_string_equal(str(cJSON_GetArrayItem(list, 0), "metric"), "flame");
    assert_string_equal(str(cJSON_GetArrayItem(list, 0), "severity"), "high");
    cJSON_Delete(j);
}

static void test_alert_queries_and_operator_errors(void **state)
{
    struct daemon *d = *state;
    cJSON *j;
    assert_int_equal(http_get_json(d, "/api/v1/alerts?severity=critical&kind=gas_leak", &j), 200);
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "alerts"))
    {
        assert_string_equal(str(a, "severity"), "critical");
        assert_string_equal(str(a, "kind"), "gas_leak");
    }
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/alerts?state=open&limit=1", &j), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "alerts")), 1);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "next_before")));
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/alerts?state=sleeping", &j), 400);
    assert_string_equal(json_error_field(j), "state");
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/alerts?severity=catastrophic", &j), 400);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/alerts/999999", &j), 404);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(d, "/api/v1/alerts/abc", &j), 400);
    cJSON_Delete(j);
    assert_int_equal(action(d, 999999, "ack", NULL, &j), 404);
    cJSON_Delete(j);
    assert_int_equal(http_post_json(d, "/api/v1/alerts/1/ack", "{\"by\":7}", &j), 400);
    assert_string_equal(json_error_field(j), "by");
    cJSON_Delete(j);
    assert_int_equal(http_post_json(d, "/api/v1/alerts/1/ack", "{\"who\":\"x\"}", &j), 400);
    assert_string_equal(json_error_field(j), "who");
    cJSON_Delete(j);
    assert_int_equal(http_post_json(d, "/api/v1/alerts/1/comments", "{\"by\":\"x\"}", &j), 400);
    assert_string_equal(json_error_field(j), "text");
    cJSON_Delete(j);
}

static bool has_open_offline(void *arg)
{
    cJSON *j = alerts_of(arg, "quiet-1");
    bool found = false;
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "alerts"))
    {
        found = found || (!strcmp(str(a, "kind"), "offline") && !strcmp(str(a, "state"), "open"));
    }
    cJSON_Delete(j);
    return found;
}

static void test_offline_alert_and_recovery(void **state)
{
    (void)state;
    struct daemon d;
    daemon_init(&d, "--set", "devices.stale_after_s=1", "--set", "devices.offline_after_s=2",
                "--set", "alerts.offline_severity=high", NULL);
    daemon_start(&d);
    char body[256];
    snprintf(body, sizeof body, "{\"device\":\"quiet-1\",\"seq\":1,\"values\":{\"gas_ppm\":400}}");
    cJSON *j;
    assert_int_equal(http_post_json(&d, "/api/v1/ingest", body, &j), 200);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(&d, "/api/v1/devices/quiet-1", &j), 200);
    assert_string_equal(str(j, "status"), "online");
    cJSON_Delete(j);
    assert_true(wait_until(has_open_offline, &d, 6000));
    assert_int_equal(http_get_json(&d, "/api/v1/devices/quiet-1", &j), 200);
    assert_string_equal(str(j, "status"), "offline");
    cJSON_Delete(j);
    j = alerts_of(&d, "quiet-1");
    cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "alerts"), 0);
    assert_string_equal(str(a, "severity"), "high");
    assert_string_equal(str(a, "metric"), "device");
    assert_non_null(strstr(str(a, "message"), "offline"));
    cJSON_Delete(j);
    /* It speaks again: the offline alert resolves at once. */
    snprintf(body, sizeof body, "{\"device\":\"quiet-1\",\"seq\":2,\"values\":{\"gas_ppm\":401}}");
    assert_int_equal(http_post_json(&d, "/api/v1/ingest", body, &j), 200);
    cJSON_Delete(j);
    assert_false(has_open_offline(&d));
    /* Restart keeps alerts and their history. */
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_start(&d);
    j = alerts_of(&d, "quiet-1");
    a = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "alerts"), 0);
    assert_string_equal(str(a, "kind"), "offline");
    assert_string_equal(str(a, "state"), "resolved");
    cJSON_Delete(j);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gas_leak_lifecycle),
        cmocka_unit_test(test_noisy_signal_at_a_limit_opens_one_alert),
        cmocka_unit_test(test_fire_needs_flame_and_rising_heat),
        cmocka_unit_test(test_alert_queries_and_operator_errors),
        cmocka_unit_test(test_offline_alert_and_recovery),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
