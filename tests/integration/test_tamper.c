/* test_tamper.c — tamper defense end to end through the real canaryd: a device that replays
 * a window of its own old readings (validly sent) is flagged and quarantined; the security
 * event, the tamper alert and the trust in the devices API say so; a real gas leak on the
 * quarantined device still opens a critical gas alert that says the data is doubted, and its
 * return to normal does not auto-resolve it; the quarantine survives a restart; an operator
 * releases it (an event, the actor recorded, the tamper alert resolved); release errors get
 * 4xx. A second device made suspect by values off its sensor's resolution still gets its
 * critical gas alert, with the doubt in the message. */
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
#include <unistd.h>

#define STEP_MS 5000

static int64_t base_ts;

static int start(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    daemon_init(d, "--set", "tamper.warmup_readings=30", "--set", "alerts.open_after=1", "--set",
                "alerts.resolve_after_s=5", "--set", "alerts.offline_severity=off", "--set",
                "detect.warmup_readings=5", NULL);
    daemon_start(d);
    base_ts = now_ms() - 3600000;
    *state = d;
    return 0;
}

static int stop(void **state)
{
    struct daemon *d = *state;
    int rc = daemon_stop(d, SIGTERM);
    if (rc != 0) { /* show what canaryd said before it went */
        char cmd[200];
        snprintf(cmd, sizeof cmd, "tail -40 '%s' >&2", d->log);
        if (system(cmd) != 0)
            fprintf(stderr, "no log at %s\n", d->log);
    }
    assert_int_equal(rc, 0);
    daemon_cleanup(d);
    free(d);
    return 0;
}

/* A deterministic noisy gas sensor (2 % noise, whole ppm) and a DHT22 temperature. */
static uint64_t rng_state = 88172645463325252ULL;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(void)
{
    return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

/* Posts readings seq first_seq.. of `device` (values given as JSON members, one string per
 * reading) in one batch; every one must be accepted. */
static void post(struct daemon *d, const char *device, int first_seq, char **values, int n)
{
    size_t cap = (size_t)n * 160 + 16, len = 0;
    char *body = malloc(cap);
    len += (size_t)snprintf(body + len, cap - len, "[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(
            body + len, cap - len, "%s{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{%s}}",
            i ? "," : "", device, first_seq + i,
            (long long)(base_ts + (int64_t)(first_seq + i) * STEP_MS), values[i]);
    snprintf(body + len, cap - len, "]");
    cJSON *j;
    long st = http_post_json(d, "/api/v1/ingest", body, &j);
    if (st != 200) {
        char *t = cJSON_PrintUnformatted(j);
        fail_msg("posting %d readings of %s: %ld %s", n, device, st, t ? t : "");
    }
    cJSON_Delete(j);
    free(body);
}

static char *values_text(double gas, double temp)
{
    char *s = malloc(96);
    snprintf(s, 96, "\"gas_ppm\":%.0f,\"temperature_c\":%.1f", gas, temp);
    return s;
}

/* n readings of a quiet room: gas about 480 ppm (2 % noise, whole ppm), temperature about
 * 21.5 °C (0.1 °C noise, tenths); their "values" text in v (free with free_values). */
static void clean_readings(double *gas, double *temp, char **v, int n)
{
    for (int i = 0; i < n; i++) {
        gas[i] = round(480 * (1 + 0.02 * gauss()));
        temp[i] = round((21.5 + 0.1 * gauss()) * 10) / 10;
        v[i] = values_text(gas[i], temp[i]);
    }
}

static void free_values(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static cJSON *device(struct daemon *d, const char *id)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/devices/%s", id);
    cJSON *j;
    assert_int_equal(http_get_json(d, path, &j), 200);
    return j;
}

static const char *trust_state(cJSON *dev)
{
    return str(cJSON_GetObjectItem(dev, "trust"), "state");
}

/* The alert of a device of a kind (the newest), or NULL. Frees nothing: it points into j. */
static cJSON *alert_of(cJSON *j, const char *kind)
{
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "alerts"))
    {
        if (strcmp(str(a, "kind"), kind) == 0)
            return a;
    }
    return NULL;
}

static cJSON *alerts(struct daemon *d, const char *id)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/alerts?device=%s", id);
    cJSON *j;
    assert_int_equal(http_get_json(d, path, &j), 200);
    return j;
}

/* The event kinds of a device, joined by spaces (newest first). */
static void event_kinds(struct daemon *d, const char *id, char *out, size_t len, cJSON **keep)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/events?category=security&device=%s", id);
    cJSON *j;
    assert_int_equal(http_get_json(d, path, &j), 200);
    out[0] = '\0';
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "events"))
    {
        snprintf(out + strlen(out), len - strlen(out), "%s ", str(e, "kind"));
    }
    if (keep != NULL)
        *keep = j;
    else
        cJSON_Delete(j);
}

/* The flags of the newest reading's gas value, joined by spaces. */
static void latest_gas_flags(struct daemon *d, const char *id, char *out, size_t len)
{
    char path[200];
    snprintf(path, sizeof path, "/api/v1/devices/%s/readings?metric=gas_ppm&order=desc&limit=1",
             id);
    cJSON *j;
    assert_int_equal(http_get_json(d, path, &j), 200);
    char *text = cJSON_PrintUnformatted(j);
    snprintf(out, len, "%s", text ? text : "");
    free(text);
    cJSON_Delete(j);
}

static void test_replayed_window_quarantine_release_restart(void **state)
{
    struct daemon *d = *state;
    const char *id = "tamper-1";
    enum { CLEAN = 150, WINDOW = 30 };
    double gas[CLEAN], temp[CLEAN];
    char *v[CLEAN];
    clean_readings(gas, temp, v, CLEAN);
    post(d, id, 1, v, CLEAN);
    free_values(v, CLEAN);
    cJSON *dev = device(d, id);
    assert_string_equal(trust_state(dev), "trusted");
    cJSON_Delete(dev);

    /* The attack: readings 41..70 again, with fresh seqs and timestamps. */
    for (int i = 0; i < WINDOW; i++)
        v[i] = values_text(gas[40 + i], temp[40 + i]);
    post(d, id, CLEAN + 1, v, 10); /* detected within the first 10 replayed readings */
    dev = device(d, id);
    cJSON *trust = cJSON_GetObjectItem(dev, "trust");
    assert_string_equal(str(trust, "state"), "quarantined");
    assert_true(json_number(trust, "score") < 0.25);
    assert_true(json_number(trust, "since_ms") >= (double)(base_ts + (CLEAN + 1) * STEP_MS));
    cJSON *reason = cJSON_GetArrayItem(cJSON_GetObjectItem(trust, "reasons"), 0);
    assert_non_null(reason);
    assert_string_equal(str(reason, "check"), "replayed_window");
    assert_string_equal(str(reason, "metric"), "gas_ppm");
    assert_non_null(strstr(str(reason, "detail"), "repeat a window"));
    cJSON_Delete(dev);
    post(d, id, CLEAN + 11, v + 10, WINDOW - 10);
    free_values(v, WINDOW);

    /* The list shows the trust too. */
    cJSON *list;
    assert_int_equal(http_get_json(d, "/api/v1/devices", &list), 200);
    cJSON *e;
    bool seen = false;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(list, "devices"))
    {
        if (strcmp(str(e, "id"), id) == 0) {
            assert_string_equal(trust_state(e), "quarantined");
            seen = true;
        }
    }
    assert_true(seen);
    cJSON_Delete(list);

    /* Stored flagged. */
    char flags[4096];
    latest_gas_flags(d, id, flags, sizeof flags);
    assert_non_null(strstr(flags, "\"quarantined\""));

    /* The security event and the tamper alert. */
    char kinds[512];
    event_kinds(d, id, kinds, sizeof kinds, NULL);
    assert_non_null(strstr(kinds, "quarantined"));
    cJSON *j = alerts(d, id);
    cJSON *tamper = alert_of(j, "tamper");
    assert_non_null(tamper);
    assert_string_equal(str(tamper, "state"), "open");
    assert_string_equal(str(tamper, "severity"), "high");
    assert_string_equal(str(tamper, "metric"), "device");
    assert_non_null(strstr(str(tamper, "message"), "quarantined"));
    assert_non_null(strstr(str(tamper, "message"), "replayed_window"));
    double tamper_id = json_number(tamper, "id");
    cJSON_Delete(j);

    /* A real leak on the quarantined device: critical, and the message says why the data is
     * doubted. */
    int seq = CLEAN + WINDOW + 1;
    for (int i = 0; i < 5; i++)
        v[i] = values_text(6200 + 50 * i, 21.5);
    post(d, id, seq, v, 5);
    free_values(v, 5);
    seq += 5;
    j = alerts(d, id);
    cJSON *leak = alert_of(j, "gas_leak");
    assert_non_null(leak);
    assert_string_equal(str(leak, "severity"), "critical");
    assert_string_equal(str(leak, "state"), "open");
    assert_non_null(strstr(str(leak, "message"), "data is doubted"));
    assert_non_null(strstr(str(leak, "message"), "stays critical"));
    double leak_id = json_number(leak, "id");
    cJSON_Delete(j);
    /* Its readings back to normal for a minute do not resolve it: no all clear on doubted
     * data. */
    for (int i = 0; i < 20; i++)
        v[i] = values_text(round(480 * (1 + 0.02 * gauss())), 21.5);
    post(d, id, seq, v, 20);
    free_values(v, 20);
    seq += 20;
    j = alerts(d, id);
    leak = alert_of(j, "gas_leak");
    assert_true(json_number(leak, "id") == leak_id);
    assert_string_equal(str(leak, "state"), "open");
    cJSON_Delete(j);

    /* A restart keeps the quarantine. */
    assert_int_equal(daemon_stop(d, SIGTERM), 0);
    daemon_start(d);
    dev = device(d, id);
    assert_string_equal(trust_state(dev), "quarantined");
    cJSON_Delete(dev);
    v[0] = values_text(481, 21.5);
    post(d, id, seq++, v, 1);
    free_values(v, 1);
    latest_gas_flags(d, id, flags, sizeof flags);
    assert_non_null(strstr(flags, "\"quarantined\""));

    /* Release errors: hostile and malformed bodies, unknown devices. */
    char path[160];
    snprintf(path, sizeof path, "/api/v1/devices/%s/release", id);
    static const char *const bad_bodies[] = {
        "{\"by\":42}",   "{\"by\":\"\"}", "{\"who\":\"x\"}",
        "{\"by\":\"a\"", "[1,2]",         "{\"comment\":\"\\u0001\"}",
    };
    for (size_t i = 0; i < sizeof bad_bodies / sizeof bad_bodies[0]; i++) {
        cJSON *r;
        long st = http_post_json(d, path, bad_bodies[i], &r);
        if (st != 400)
            fail_msg("release with %s: %ld, want 400", bad_bodies[i], st);
        cJSON_Delete(r);
    }
    char longby[300];
    memset(longby, 'x', sizeof longby);
    snprintf(longby, sizeof longby, "{\"by\":\"%0*d\"}", 200, 0);
    cJSON *r;
    assert_int_equal(http_post_json(d, path, longby, &r), 400);
    assert_string_equal(json_error_field(r), "by");
    cJSON_Delete(r);
    assert_int_equal(http_post_json(d, "/api/v1/devices/no-such-device/release", "{}", &r), 404);
    cJSON_Delete(r);
    dev = device(d, id);
    assert_string_equal(trust_state(dev), "quarantined"); /* nothing changed */
    cJSON_Delete(dev);

    /* The release. */
    assert_int_equal(
        http_post_json(d, path, "{\"by\":\"alice\",\"comment\":\"sensor replaced\"}", &r), 200);
    trust = cJSON_GetObjectItem(r, "trust");
    assert_string_equal(str(trust, "state"), "trusted");
    assert_string_equal(str(trust, "released_by"), "alice");
    assert_true(json_number(trust, "score") == 1);
    cJSON_Delete(r);
    assert_int_equal(http_post_json(d, path, NULL, &r), 409); /* trusted: nothing to release */
    cJSON_Delete(r);
    cJSON *evs;
    event_kinds(d, id, kinds, sizeof kinds, &evs);
    assert_true(strncmp(kinds, "released ", 9) == 0);
    cJSON *released = cJSON_GetArrayItem(cJSON_GetObjectItem(evs, "events"), 0);
    assert_string_equal(str(released, "source"), "api alice");
    assert_non_null(strstr(str(released, "detail"), "sensor replaced"));
    cJSON_Delete(evs);
    j = alerts(d, id);
    tamper = alert_of(j, "tamper");
    assert_true(json_number(tamper, "id") == tamper_id);
    assert_string_equal(str(tamper, "state"), "resolved");
    assert_string_equal(str(tamper, "resolved_by"), "alice");
    cJSON_Delete(j);
    /* Released readings are not flagged quarantined. */
    v[0] = values_text(479, 21.6);
    post(d, id, seq++, v, 1);
    free_values(v, 1);
    latest_gas_flags(d, id, flags, sizeof flags);
    assert_null(strstr(flags, "\"quarantined\""));
}

static void test_leak_on_suspect_device_stays_critical(void **state)
{
    struct daemon *d = *state;
    const char *id = "tamper-2";
    enum { CLEAN = 120 };
    char *v[CLEAN];
    /* A DHT11: whole degrees. */
    for (int i = 0; i < CLEAN; i++) {
        char *s = malloc(96);
        snprintf(s, 96, "\"gas_ppm\":%.0f,\"temperature_c\":%.0f",
                 round(450 * (1 + 0.02 * gauss())), round(22.4 + 0.4 * gauss()));
        v[i] = s;
    }
    post(d, id, 1, v, CLEAN);
    free_values(v, CLEAN);
    /* Temperature values no DHT11 reports: suspect. */
    int seq = CLEAN + 1;
    for (int i = 0; i < 2; i++) {
        v[i] = malloc(96);
        snprintf(v[i], 96, "\"gas_ppm\":%.0f,\"temperature_c\":22.4",
                 round(450 * (1 + 0.02 * gauss())));
    }
    post(d, id, seq, v, 2);
    free_values(v, 2);
    seq += 2;
    cJSON *dev = device(d, id);
    assert_string_equal(trust_state(dev), "suspect");
    cJSON *reason =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(dev, "trust"), "reasons"), 0);
    assert_string_equal(str(reason, "check"), "resolution");
    assert_string_equal(str(reason, "metric"), "temperature_c");
    cJSON_Delete(dev);
    char kinds[512];
    event_kinds(d, id, kinds, sizeof kinds, NULL);
    assert_non_null(strstr(kinds, "tamper_suspect"));

    /* The leak. */
    v[0] = malloc(96);
    snprintf(v[0], 96, "\"gas_ppm\":7400,\"temperature_c\":22");
    post(d, id, seq++, v, 1);
    free_values(v, 1);
    cJSON *j = alerts(d, id);
    cJSON *leak = alert_of(j, "gas_leak");
    assert_non_null(leak);
    assert_string_equal(str(leak, "severity"), "critical");
    assert_non_null(strstr(str(leak, "message"), "Gas leak suspected"));
    assert_non_null(strstr(str(leak, "message"), "data is doubted (suspect); the alert stays "
                                                 "critical: check on site. Why: resolution on "
                                                 "temperature_c"));
    assert_null(alert_of(j, "tamper")); /* suspect is not quarantined: no tamper alert */
    cJSON_Delete(j);
}

/* Three devices registered in one room; one of them reports a leak the others do not see:
 * the writer's neighbours check doubts it, and the leak alert still opens at critical. */
static void test_fake_leak_against_neighbours(void **state)
{
    struct daemon *d = *state;
    static const char *const ids[] = {"room-a", "room-b", "room-c"};
    for (int k = 0; k < 3; k++) {
        char body[160];
        snprintf(body, sizeof body, "{\"id\":\"%s\",\"location\":\"Site 9, lab\"}", ids[k]);
        cJSON *r;
        assert_int_equal(http_post_json(d, "/api/v1/devices", body, &r), 201);
        cJSON_Delete(r);
    }
    enum { CLEAN = 80, LEAK = 6 };
    /* The room's clean history, device by device ... */
    for (int k = 0; k < 3; k++) {
        char *v[CLEAN];
        for (int i = 0; i < CLEAN; i++)
            v[i] = values_text(round((420 + 30 * k) * (1 + 0.02 * gauss())),
                               round((21 + 0.1 * gauss()) * 10) / 10);
        post(d, ids[k], 1, v, CLEAN);
        free_values(v, CLEAN);
    }
    /* ... then reading by reading, the neighbours first: only room-a sees the "leak". */
    for (int i = CLEAN; i < CLEAN + LEAK; i++) {
        for (int k = 2; k >= 0; k--) {
            double gas = round((420 + 30 * k) * (1 + 0.02 * gauss()));
            if (k == 0)
                gas += 900.0 * (i - CLEAN + 1);
            char *v = values_text(gas, round((21 + 0.1 * gauss()) * 10) / 10);
            post(d, ids[k], i + 1, &v, 1);
            free(v);
        }
    }
    /* The neighbours' evidence reaches room-a's owner after the commit: poll briefly. */
    cJSON *dev = NULL;
    for (int tries = 0; tries < 100; tries++) {
        cJSON_Delete(dev);
        dev = device(d, "room-a");
        if (strcmp(trust_state(dev), "trusted") != 0)
            break;
        usleep(20000);
    }
    assert_string_not_equal(trust_state(dev), "trusted");
    bool neighbours = false;
    cJSON *reason;
    cJSON_ArrayForEach(reason, cJSON_GetObjectItem(cJSON_GetObjectItem(dev, "trust"), "reasons"))
    {
        if (strcmp(str(reason, "check"), "neighbours") == 0) {
            neighbours = true;
            assert_string_equal(str(reason, "metric"), "gas_ppm");
            assert_non_null(strstr(str(reason, "detail"), "neighbours at the same location"));
        }
    }
    assert_true(neighbours);
    cJSON_Delete(dev);
    char flags[4096];
    latest_gas_flags(d, "room-a", flags, sizeof flags);
    assert_non_null(strstr(flags, "\"tamper\""));
    /* The neighbours themselves are not doubted. */
    for (int k = 1; k < 3; k++) {
        dev = device(d, ids[k]);
        assert_string_equal(trust_state(dev), "trusted");
        cJSON_Delete(dev);
    }
    /* And the leak still alarms. */
    cJSON *j = alerts(d, "room-a");
    cJSON *leak = alert_of(j, "gas_leak");
    assert_non_null(leak);
    assert_string_equal(str(leak, "severity"), "critical");
    cJSON_Delete(j);
}

/* tamper.enabled = false: no checks and no per-series tamper state — the same replayed
 * window that quarantines above leaves the device trusted, nothing flagged, every reading
 * stored. */
static void test_disabled_checks_do_nothing(void **state)
{
    (void)state;
    struct daemon off;
    daemon_init(&off, "--set", "tamper.enabled=false", "--set", "tamper.warmup_readings=30",
                "--set", "alerts.offline_severity=off", NULL);
    daemon_start(&off);
    const char *id = "tamper-off";
    enum { CLEAN = 150, WINDOW = 30 };
    double gas[CLEAN], temp[CLEAN];
    char *v[CLEAN];
    clean_readings(gas, temp, v, CLEAN);
    post(&off, id, 1, v, CLEAN);
    free_values(v, CLEAN);
    for (int i = 0; i < WINDOW; i++)
        v[i] = values_text(gas[40 + i], temp[40 + i]);
    post(&off, id, CLEAN + 1, v, WINDOW);
    free_values(v, WINDOW);
    cJSON *dev = device(&off, id);
    assert_string_equal(trust_state(dev), "trusted");
    cJSON_Delete(dev);
    cJSON *stored;
    assert_int_equal(
        http_get_json(&off, "/api/v1/devices/tamper-off/readings?from=-1d&limit=1000", &stored),
        200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(stored, "readings")), CLEAN + WINDOW);
    cJSON_Delete(stored);
    char flags[256];
    latest_gas_flags(&off, id, flags, sizeof flags);
    assert_null(strstr(flags, "\"tamper\"")); /* the flag, not the device id */
    assert_int_equal(daemon_stop(&off, SIGTERM), 0);
    daemon_cleanup(&off);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replayed_window_quarantine_release_restart),
        cmocka_unit_test(test_leak_on_suspect_device_stays_critical),
        cmocka_unit_test(test_fake_leak_against_neighbours),
        cmocka_unit_test(test_disabled_checks_do_nothing),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
