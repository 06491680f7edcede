/* test_mqtt.c — canaryd against a real Mosquitto: readings over MQTT take the HTTP path,
 * bad input is refused and recorded without stopping the subscriber, nothing acknowledged
 * is lost on kill -9 (QoS 1 + journal), broker outages end in a reconnect, the device's
 * last will opens an offline alert, commands are acked or time out, a critical gas leak
 * sends buzzer/valve commands, and Home Assistant discovery configs are published. */
#include "broker.h"
#include "harness.h"

#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void start_with_broker(struct daemon *d, struct broker *b, const char *client_id, ...)
{
    static char port_arg[64], id_arg[96];
    snprintf(port_arg, sizeof port_arg, "mqtt.port=%u", b->port);
    snprintf(id_arg, sizeof id_arg, "mqtt.client_id=%s", client_id);
    daemon_init(d, "--set", "mqtt.enabled=true", "--set", port_arg, "--set", id_arg, "--set",
                "mqtt.reconnect_min_ms=50", "--set", "mqtt.reconnect_max_ms=500", NULL);
    int n = 0;
    while (d->extra[n] != NULL)
        n++;
    va_list ap;
    va_start(ap, client_id);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 31)
        d->extra[n++] = a;
    va_end(ap);
    d->extra[n] = NULL;
    daemon_start(d);
}

static double stat_of(struct daemon *d, const char *path)
{
    cJSON *j = NULL;
    if (http_get_json(d, "/api/v1/stats", &j) != 200)
        return NAN;
    double v = json_number(j, path);
    cJSON_Delete(j);
    return v;
}

struct wait_ctx {
    struct daemon *d;
    const char *path;
    double want;
};

static bool stat_reaches(void *arg)
{
    struct wait_ctx *w = arg;
    return stat_of(w->d, w->path) >= w->want;
}

static bool connected(void *arg)
{
    struct daemon *d = arg;
    cJSON *j = NULL;
    bool ok = false;
    if (http_get_json(d, "/healthz", &j) == 200) {
        cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "mqtt"), "state");
        ok = cJSON_IsString(st) && strcmp(st->valuestring, "connected") == 0;
    }
    cJSON_Delete(j);
    return ok;
}

static void reading(char *buf, size_t len, const char *device, uint64_t seq, double gas)
{
    snprintf(buf, len,
             "{\"device\":\"%s\",\"seq\":%" PRIu64 ",\"ts\":%lld,\"values\":{\"gas_ppm\":%g,"
             "\"temperature_c\":21.5}}",
             device, seq, (long long)now_ms(), gas);
}

static double device_readings(struct daemon *d, const char *device)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/devices/%s", device);
    cJSON *j = NULL;
    double v = http_get_json(d, path, &j) == 200 ? json_number(j, "readings") : NAN;
    cJSON_Delete(j);
    return v;
}

/* Stored readings of a device, counted from the readings endpoint (chunks + log). */
static int stored_distinct_seqs(struct daemon *d, const char *device, int expect)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/devices/%s/readings?from=-1d&limit=10000", device);
    cJSON *j = NULL;
    long st = http_get_json(d, path, &j);
    assert_int_equal(st, 200);
    cJSON *rows = cJSON_GetObjectItem(j, "readings");
    int n = cJSON_GetArraySize(rows);
    char *seen = calloc((size_t)expect + 1, 1);
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        double seq = cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, i), "seq"));
        int k = (int)seq;
        assert_true(k >= 1 && k <= expect);
        assert_false(seen[k]); /* stored exactly once */
        seen[k] = 1;
        distinct++;
    }
    free(seen);
    cJSON_Delete(j);
    return distinct;
}

static bool has_event(struct daemon *d, const char *kind)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/events?kind=%s", kind);
    cJSON *j = NULL;
    bool ok = http_get_json(d, path, &j) == 200 &&
              cJSON_GetArraySize(cJSON_GetObjectItem(j, "events")) > 0;
    cJSON_Delete(j);
    return ok;
}

static void test_ingest_and_hostile_input(void **state)
{
    (void)state;
    struct broker b = {0};
    broker_start(&b);
    struct daemon d;
    start_with_broker(&d, &b, "it-ingest", "--set", "mqtt.max_payload=512", NULL);
    assert_true(wait_until(connected, &d, 5000));
    struct mq_client c;
    mq_connect(&c, &b, "it-dev", NULL, NULL, NULL);
    char buf[512];
    for (int i = 1; i <= 20; i++) {
        reading(buf, sizeof buf, "mq-1", (uint64_t)i, 400 + i);
        assert_true(mq_publish(&c, "canary/mq-1/up", buf, 1, false));
    }
    /* Hostile and broken messages: each refused and recorded, none stops the subscriber. */
    reading(buf, sizeof buf, "mq-2", 1, 400); /* another device's reading on mq-1's topic */
    assert_true(mq_publish(&c, "canary/mq-1/up", buf, 1, false));
    assert_true(mq_publish(&c, "canary/mq-1/up", "not json at all", 1, false));
    assert_true(mq_publish(&c, "canary/mq-1/up", "\x01\xff\xfe garbage \x80", 1, false));
    char big[2048];
    memset(big, ' ', sizeof big - 1);
    big[0] = '[';
    big[sizeof big - 2] = ']';
    big[sizeof big - 1] = '\0';
    assert_true(mq_publish(&c, "canary/mq-1/up", big, 1, false));
    assert_true(mq_publish(&c, "canary/mq-1/bogus", "{}", 1, false));
    assert_true(mq_publish(&c, "canary/bad id!/up", "{}", 1, false));
    assert_true(mq_publish(&c, "canary/mq-1/status", "maybe", 1, false));
    assert_true(mq_publish(&c, "canary/mq-1/up",
                           "{\"device\":\"mq-1\",\"seq\":99,\"values\":{\"gas_ppm\":-5}}", 1,
                           false));
    /* ... and the subscriber still works. */
    reading(buf, sizeof buf, "mq-1", 21, 420);
    assert_true(mq_publish(&c, "canary/mq-1/up", buf, 1, false));
    struct wait_ctx w = {&d, "counters.readings_accepted", 21};
    assert_true(wait_until(stat_reaches, &w, 5000));
    assert_int_equal((int)stat_of(&d, "counters.readings_accepted"), 21);
    assert_int_equal(stored_distinct_seqs(&d, "mq-1", 99), 21);
    assert_true(isnan(device_readings(&d, "mq-2"))); /* its reading was refused: no device */
    const char *kinds[] = {"topic_device_mismatch",
                           "malformed_payload",
                           "oversized_payload",
                           "bad_topic",
                           "bad_status",
                           "invalid_reading",
                           NULL};
    for (int i = 0; kinds[i]; i++) {
        if (!has_event(&d, kinds[i]))
            fail_msg("no %s event recorded", kinds[i]);
    }
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&d, "/api/v1/events?category=security", &j), 200);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "events"), 0);
    assert_string_equal(cJSON_GetObjectItem(first, "kind")->valuestring, "topic_device_mismatch");
    cJSON_Delete(j);
    assert_true(stat_of(&d, "mqtt.rejected") >= 5);
    assert_int_equal((int)stat_of(&d, "mqtt.topic_mismatches"), 1);
    mq_close(&c, true);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
    broker_cleanup(&b);
}

struct publisher {
    struct broker *b;
    int n;
    int acked;
};

static void *publish_all(void *arg)
{
    struct publisher *p = arg;
    struct mq_client c;
    mq_connect(&c, p->b, "it-kill-dev", NULL, NULL, NULL);
    char buf[512];
    for (int i = 1; i <= p->n; i++) {
        reading(buf, sizeof buf, "k-1", (uint64_t)i, 400 + i % 7);
        if (mq_publish(&c, "canary/k-1/up", buf, 1, false))
            __atomic_add_fetch(&p->acked, 1, __ATOMIC_SEQ_CST);
    }
    mq_close(&c, true);
    return NULL;
}

static void test_kill9_loses_nothing(void **state)
{
    (void)state;
    struct broker b = {0};
    broker_start(&b);
    struct daemon d;
    start_with_broker(&d, &b, "it-kill", NULL);
    assert_true(wait_until(connected, &d, 5000));
    enum { N = 3000 };
    struct publisher p = {&b, N, 0};
    pthread_t t;
    pthread_create(&t, NULL, publish_all, &p);
    struct wait_ctx w = {&d, "counters.readings_accepted", 800};
    assert_true(wait_until(stat_reaches, &w, 20000));
    assert_int_equal(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
    usleep(300000); /* the broker queues for canaryd's persistent session meanwhile */
    daemon_start(&d);
    pthread_join(t, NULL);
    assert_int_equal(p.acked, N); /* the broker acknowledged every publish */
    struct wait_ctx all = {&d, "counters.readings_accepted", 0};
    (void)all;
    for (int i = 0; i < 500 && stored_distinct_seqs(&d, "k-1", N) < N; i++)
        usleep(20000);
    assert_int_equal(stored_distinct_seqs(&d, "k-1", N), N);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
    broker_cleanup(&b);
}

static bool not_connected(void *arg)
{
    return !connected(arg);
}

static void test_broker_outage(void **state)
{
    (void)state;
    struct broker b = {0};
    broker_start(&b);
    struct daemon d;
    start_with_broker(&d, &b, "it-outage", NULL);
    assert_true(wait_until(connected, &d, 5000));
    struct mq_client c;
    mq_connect(&c, &b, "it-outage-dev", NULL, NULL, NULL);
    char buf[512];
    for (int i = 1; i <= 50; i++) {
        reading(buf, sizeof buf, "o-1", (uint64_t)i, 400);
        assert_true(mq_publish(&c, "canary/o-1/up", buf, 1, false));
    }
    mq_close(&c, true);
    broker_stop(&b);
    assert_true(wait_until(not_connected, &d, 5000));
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&d, "/healthz", &j), 200);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "mqtt"), "state")->valuestring,
                        "reconnecting");
    cJSON_Delete(j);
    usleep(1500000); /* several reconnect attempts: canaryd must neither spin nor crash */
    broker_start(&b);
    assert_true(wait_until(connected, &d, 5000));
    mq_connect(&c, &b, "it-outage-dev", NULL, NULL, NULL);
    for (int i = 51; i <= 100; i++) {
        reading(buf, sizeof buf, "o-1", (uint64_t)i, 400);
        assert_true(mq_publish(&c, "canary/o-1/up", buf, 1, false));
    }
    mq_close(&c, true);
    struct wait_ctx w = {&d, "counters.readings_accepted", 100};
    assert_true(wait_until(stat_reaches, &w, 5000));
    assert_int_equal(stored_distinct_seqs(&d, "o-1", 100), 100);
    assert_true(stat_of(&d, "mqtt.connects") >= 2);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
    broker_cleanup(&b);
}

static cJSON *alert_of(struct daemon *d, const char *device, const char *kind)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/alerts?device=%s&kind=%s", device, kind);
    cJSON *j = NULL;
    if (http_get_json(d, path, &j) != 200)
        return NULL;
    cJSON *a = cJSON_DetachItemFromArray(cJSON_GetObjectItem(j, "alerts"), 0);
    cJSON_Delete(j);
    return a;
}

static const char *str_of(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_device_status_commands_actions_and_ha(void **state)
{
    (void)state;
    struct broker b = {0};
    broker_start(&b);
    struct daemon d;
    start_with_broker(&d, &b, "it-dev", "--set", "mqtt.ha_discovery=true", "--set",
                      "mqtt.command_timeout_s=1", "--set", "mqtt.ha_state_interval_s=0", NULL);
    assert_true(wait_until(connected, &d, 5000));
    struct mq_client ha;
    mq_connect(&ha, &b, "it-ha", NULL, NULL, "homeassistant/#");
    struct mq_client dev;
    mq_connect(&dev, &b, "it-gas-1", "canary/gas-1/status", "offline", "canary/gas-1/cmd");
    assert_true(mq_publish(&dev, "canary/gas-1/status", "online", 1, true));
    char buf[512];
    uint64_t seq = 1;
    for (; seq <= 5; seq++) {
        reading(buf, sizeof buf, "gas-1", seq, 400);
        assert_true(mq_publish(&dev, "canary/gas-1/up", buf, 1, false));
    }
    struct wait_ctx w = {&d, "counters.readings_accepted", 5};
    assert_true(wait_until(stat_reaches, &w, 5000));

    /* Home Assistant: discovery configs for the metrics and the alert state. */
    assert_true(mq_wait_message(&ha, "homeassistant/sensor/canary_gas-1/gas_ppm/config",
                                "value_json['values']['gas_ppm']", 5000) >= 0);
    assert_true(mq_wait_message(&ha, "homeassistant/binary_sensor/canary_gas-1/alert/config",
                                "canary/gas-1/state", 5000) >= 0);

    /* A command round trip, and one that is never answered. */
    const char *hdr = "application/json";
    cJSON *j = NULL;
    assert_int_equal(http_post_json(&d, "/api/v1/devices/gas-1/commands",
                                    "{\"command\":\"buzzer\",\"state\":\"on\"}", &j),
                     202);
    assert_string_equal(str_of(j, "status"), "pending");
    char id[32];
    snprintf(id, sizeof id, "%s", str_of(j, "id"));
    cJSON_Delete(j);
    int k = mq_wait_message(&dev, "canary/gas-1/cmd", id, 3000);
    assert_true(k >= 0);
    assert_non_null(strstr(dev.messages[k].payload, "\"command\":\"buzzer\""));
    char ack[96];
    snprintf(ack, sizeof ack, "{\"id\":\"%s\",\"status\":\"ok\"}", id);
    assert_true(mq_publish(&dev, "canary/gas-1/cmd/ack", ack, 1, false));
    char path[96];
    snprintf(path, sizeof path, "/api/v1/commands/%s", id);
    bool acked = false;
    for (int i = 0; i < 100 && !acked; i++, usleep(20000)) {
        assert_int_equal(http_get_json(&d, path, &j), 200);
        acked = strcmp(str_of(j, "status"), "acked") == 0;
        cJSON_Delete(j);
    }
    assert_true(acked);
    /* A garbage answer is recorded and changes nothing. */
    assert_true(mq_publish(&dev, "canary/gas-1/cmd/ack", "\xff{not json", 1, false));
    bool bad_ack = false;
    for (int i = 0; i < 100 && !bad_ack; i++, usleep(20000))
        bad_ack = has_event(&d, "bad_command_ack");
    assert_true(bad_ack);
    assert_int_equal(http_get_json(&d, "/api/v1/events?category=bogus", &j), 400);
    assert_string_equal(json_error_field(j), "category");
    cJSON_Delete(j);
    assert_int_equal(http_get_json(&d, "/api/v1/commands/42", &j), 400);
    assert_string_equal(json_error_field(j), "id");
    cJSON_Delete(j);
    assert_int_equal(http_get_json(&d, "/api/v1/commands/c-999999", &j), 404);
    cJSON_Delete(j);
    assert_int_equal(http_post_json(&d, "/api/v1/devices/gas-1/commands", "[1,2", &j), 400);
    cJSON_Delete(j);
    assert_int_equal(http_post_json(&d, "/api/v1/devices/gas-1/commands",
                                    "{\"command\":\"interval_s\",\"value\":\"5\"}", &j),
                     400);
    assert_string_equal(json_error_field(j), "value");
    cJSON_Delete(j);
    assert_int_equal(http_post_json(&d, "/api/v1/devices/gas-1/commands",
                                    "{\"command\":\"buzzer\",\"state\":\"on\",\"rogue\":1}", &j),
                     400);
    cJSON_Delete(j);
    assert_int_equal(http_post_json(&d, "/api/v1/devices/bad%20id/commands",
                                    "{\"command\":\"buzzer\",\"state\":\"on\"}", &j),
                     400);
    cJSON_Delete(j);
    assert_int_equal(http_post_json(&d, "/api/v1/devices/gas-1/commands",
                                    "{\"command\":\"valve\",\"state\":\"open\"}", &j),
                     202);
    snprintf(path, sizeof path, "/api/v1/commands/%s", str_of(j, "id"));
    /* Another device answering gas-1's pending command is a security event, not an ack. */
    snprintf(ack, sizeof ack, "{\"id\":\"%s\",\"status\":\"ok\"}", str_of(j, "id"));
    cJSON_Delete(j);
    assert_true(mq_publish(&dev, "canary/other-7/cmd/ack", ack, 1, false));
    bool foreign_ack = false;
    for (int i = 0; i < 100 && !foreign_ack; i++, usleep(10000))
        foreign_ack = has_event(&d, "command_ack_mismatch");
    assert_true(foreign_ack);
    bool timed_out = false;
    for (int i = 0; i < 150 && !timed_out; i++, usleep(20000)) {
        assert_int_equal(http_get_json(&d, path, &j), 200);
        timed_out = strcmp(str_of(j, "status"), "timed_out") == 0;
        cJSON_Delete(j);
    }
    assert_true(timed_out);
    /* Bad commands name the field. */
    assert_int_equal(http_post_json(&d, "/api/v1/devices/gas-1/commands",
                                    "{\"command\":\"valve\",\"state\":\"on\"}", &j),
                     400);
    assert_string_equal(json_error_field(j), "state");
    cJSON_Delete(j);
    assert_int_equal(
        http_post_json(&d, "/api/v1/devices/gas-1/commands", "{\"command\":\"self_destruct\"}", &j),
        400);
    assert_string_equal(json_error_field(j), "command");
    cJSON_Delete(j);
    (void)hdr;

    /* A critical gas leak: the alert opens and buzzer + valve commands go to the device. */
    for (int i = 0; i < 3; i++, seq++) {
        reading(buf, sizeof buf, "gas-1", seq, 8000);
        assert_true(mq_publish(&dev, "canary/gas-1/up", buf, 1, false));
    }
    k = mq_wait_message(&dev, "canary/gas-1/cmd", "\"valve\",\"state\":\"close\"", 5000);
    assert_true(k >= 0);
    int kb = mq_wait_message(&dev, "canary/gas-1/cmd", "\"buzzer\",\"state\":\"on\"", 100);
    assert_true(kb >= 0);
    cJSON *a = alert_of(&d, "gas-1", "gas_leak");
    assert_non_null(a);
    assert_string_equal(str_of(a, "severity"), "critical");
    snprintf(path, sizeof path, "/api/v1/alerts/%d",
             (int)cJSON_GetNumberValue(cJSON_GetObjectItem(a, "id")));
    cJSON_Delete(a);
    assert_int_equal(http_get_json(&d, path, &j), 200);
    cJSON *actions = cJSON_GetObjectItem(j, "actions");
    assert_true(cJSON_GetArraySize(actions) >= 2);
    cJSON_Delete(j);
    assert_true(
        mq_wait_message(&ha, "homeassistant/sensor/canary_gas-1/gas_ppm/config", NULL, 100) >= 0);

    /* The device drops off without a goodbye: the broker publishes its will, the device is
     * offline at once and, having a gas sensor, gets an offline alert. */
    mq_close(&dev, false);
    cJSON *off = NULL;
    for (int i = 0; i < 150 && off == NULL; i++, usleep(20000))
        off = alert_of(&d, "gas-1", "offline");
    assert_non_null(off);
    assert_string_equal(str_of(off, "severity"), "high");
    cJSON_Delete(off);
    assert_int_equal(http_get_json(&d, "/api/v1/devices/gas-1", &j), 200);
    assert_string_equal(str_of(j, "connection"), "offline");
    assert_string_equal(str_of(j, "status"), "offline");
    cJSON_Delete(j);

    mq_close(&ha, true);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
    broker_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_and_hostile_input),
        cmocka_unit_test(test_kill9_loses_nothing),
        cmocka_unit_test(test_broker_outage),
        cmocka_unit_test(test_device_status_commands_actions_and_ha),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
