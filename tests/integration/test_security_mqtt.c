/* test_security_mqtt.c — signed readings over MQTT against a real Mosquitto: a JWS payload
 * on canary/<device>/up is verified and stored; altered, wrongly keyed, alg-none, stripped
 * and unsigned payloads (security.unsigned = reject) are refused and stored as security
 * events; a replayed signed message is a duplicate. The master key comes from the
 * environment (CANARY_MASTER_KEY). */
#include "broker.h"
#include "harness.h"
#include "verify/jws.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define ADMIN_TOKEN "mqtt-admin-token-0123456789abcdef"

struct fixture {
    struct broker b;
    struct daemon d;
    struct mq_client c;
};

static int start(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    setenv("CANARY_API_ADMIN_TOKEN", ADMIN_TOKEN, 1);
    setenv("CANARY_MASTER_KEY", "Ab0Cd1Ef2Gh3Ij4Kl5Mn6Op7Qr8St9Uv0Wx1Yz2_-AA", 1);
    broker_start(&f->b);
    static char port_arg[64];
    snprintf(port_arg, sizeof port_arg, "mqtt.port=%u", f->b.port);
    daemon_init(&f->d, "--set", "mqtt.enabled=true", "--set", port_arg, "--set",
                "mqtt.client_id=canaryd-sec", "--set", "mqtt.reconnect_min_ms=50", "--set",
                "security.unsigned=reject", NULL);
    daemon_start(&f->d);
    mq_connect(&f->c, &f->b, "device-sim", NULL, NULL, NULL);
    *state = f;
    return 0;
}

static int stop(void **state)
{
    struct fixture *f = *state;
    mq_close(&f->c, true);
    assert_int_equal(daemon_stop(&f->d, SIGTERM), 0);
    daemon_cleanup(&f->d);
    broker_cleanup(&f->b);
    unsetenv("CANARY_MASTER_KEY");
    free(f);
    return 0;
}

/* Registers a device and returns its key (32 bytes). */
static void provision(struct daemon *d, const char *id, uint8_t key[32])
{
    const char *headers[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
    char body[128], path[128];
    snprintf(body, sizeof body, "{\"id\":\"%s\"}", id);
    struct http_response r;
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices", headers, "application/json", body,
                                    strlen(body), &r),
                     0);
    assert_int_equal(r.status, 201);
    http_response_free(&r);
    snprintf(path, sizeof path, "/api/v1/devices/%s/keys", id);
    assert_int_equal(http_call_with(d, "POST", path, headers, "application/json", "{}", 2, &r), 0);
    assert_int_equal(r.status, 201);
    cJSON *j = cJSON_Parse(r.body);
    const char *k = cJSON_GetObjectItemCaseSensitive(j, "key")->valuestring;
    assert_int_equal(b64url_decode(k, strlen(k), key, 32), 32);
    cJSON_Delete(j);
    http_response_free(&r);
}

static const char *reading(const char *device, int seq)
{
    static char buf[256];
    snprintf(buf, sizeof buf,
             "{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{\"gas_ppm\":%d}}", device, seq,
             (long long)now_ms(), 400 + seq);
    return buf;
}

static const char *sign(const char *kid, const char *device, int seq, const uint8_t key[32])
{
    static char tok[1024];
    const char *r = reading(device, seq);
    assert_true(jws_sign_hs256(kid, r, strlen(r), key, 32, tok, sizeof tok) > 0);
    return tok;
}

struct wait {
    struct daemon *d;
    const char *what; /* a stats path, or an event kind when stat is false */
    double want;
    bool stat;
};

static bool reached(void *arg)
{
    struct wait *w = arg;
    cJSON *j = NULL;
    bool ok = false;
    if (w->stat) {
        if (http_get_json(w->d, "/api/v1/stats", &j) == 200)
            ok = json_number(j, w->what) >= w->want;
    } else {
        char path[160];
        snprintf(path, sizeof path, "/api/v1/events?category=security&kind=%s", w->what);
        if (http_get_json(w->d, path, &j) == 200)
            ok = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "events")) > 0;
    }
    cJSON_Delete(j);
    return ok;
}

static void wait_stat(struct daemon *d, const char *path, double want)
{
    struct wait w = {d, path, want, true};
    if (!wait_until(reached, &w, 5000))
        fail_msg("%s did not reach %g", path, want);
}

static void wait_event(struct daemon *d, const char *kind)
{
    struct wait w = {d, kind, 0, false};
    if (!wait_until(reached, &w, 5000))
        fail_msg("no security event of kind %s", kind);
}

static void test_signed_over_mqtt(void **state)
{
    struct fixture *f = *state;
    uint8_t key[32], wrong[32];
    provision(&f->d, "mq-1", key);
    memcpy(wrong, key, 32);
    wrong[7] ^= 0x40;
    char captured[1024];
    snprintf(captured, sizeof captured, "%s", sign("mq-1", "mq-1", 1, key));
    assert_true(mq_publish(&f->c, "canary/mq-1/up", captured, 1, false));
    assert_true(mq_publish(&f->c, "canary/mq-1/up", sign("mq-1", "mq-1", 2, key), 1, false));
    wait_stat(&f->d, "counters.readings_accepted", 2);
    wait_stat(&f->d, "security.signed_accepted", 2);

    /* Replay: a duplicate, not stored again. */
    assert_true(mq_publish(&f->c, "canary/mq-1/up", captured, 1, false));
    wait_stat(&f->d, "counters.readings_duplicate", 1);

    /* Altered, wrong key, alg none, stripped, unsigned from an unprovisioned device. */
    char altered[1024];
    snprintf(altered, sizeof altered, "%s", sign("mq-1", "mq-1", 3, key));
    char *p = strchr(altered, '.') + 6;
    *p = *p == 'x' ? 'y' : 'x';
    assert_true(mq_publish(&f->c, "canary/mq-1/up", altered, 1, false));
    assert_true(mq_publish(&f->c, "canary/mq-1/up", sign("mq-1", "mq-1", 4, wrong), 1, false));
    char none[1024];
    const char *hdr = "{\"alg\":\"none\",\"kid\":\"mq-1\"}";
    long a = b64url_encode(hdr, strlen(hdr), none, sizeof none);
    none[a] = '.';
    const char *r = reading("mq-1", 5);
    long b = b64url_encode(r, strlen(r), none + a + 1, sizeof none - (size_t)a - 1);
    snprintf(none + a + 1 + b, sizeof none - (size_t)(a + 1 + b), ".%s",
             "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert_true(mq_publish(&f->c, "canary/mq-1/up", none, 1, false));
    assert_true(mq_publish(&f->c, "canary/mq-1/up", reading("mq-1", 6), 1, false));
    assert_true(mq_publish(&f->c, "canary/mq-9/up", reading("mq-9", 1), 1, false));
    wait_event(&f->d, "bad_signature");
    wait_event(&f->d, "alg_none");
    wait_event(&f->d, "signature_required");
    wait_event(&f->d, "unsigned");
    /* A signed message held back beyond ingest.max_past_s: stale. */
    char old_reading[256], old_tok[1024];
    snprintf(old_reading, sizeof old_reading,
             "{\"device\":\"mq-1\",\"seq\":50,\"ts\":%lld,\"values\":{\"gas_ppm\":1}}",
             (long long)(now_ms() - 8LL * 24 * 3600 * 1000));
    assert_true(jws_sign_hs256("mq-1", old_reading, strlen(old_reading), key, 32, old_tok,
                               sizeof old_tok) > 0);
    assert_true(mq_publish(&f->c, "canary/mq-1/up", old_tok, 1, false));
    wait_event(&f->d, "stale");
    /* A valid message still goes through after all that, and nothing refused was stored. */
    assert_true(mq_publish(&f->c, "canary/mq-1/up", sign("mq-1", "mq-1", 7, key), 1, false));
    wait_stat(&f->d, "counters.readings_accepted", 3);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&f->d, "/api/v1/stats", &j), 200);
    assert_true(json_number(j, "counters.readings_accepted") == 3);
    assert_true(json_number(j, "security.rejected") >= 5);
    cJSON_Delete(j);
}

/* A signed message published again later (away from canaryd's own (re)connect, when the
 * broker may redeliver) is a `replay` security event, and is not stored twice. */
static void test_replay_is_a_security_event(void **state)
{
    struct fixture *f = *state;
    uint8_t key[32];
    provision(&f->d, "mq-2", key);
    char captured[1024];
    snprintf(captured, sizeof captured, "%s", sign("mq-2", "mq-2", 1, key));
    double accepted0;
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&f->d, "/api/v1/stats", &j), 200);
    accepted0 = json_number(j, "counters.readings_accepted");
    double dup0 = json_number(j, "counters.readings_duplicate");
    double connected_ms = json_number(j, "mqtt.since_ms");
    cJSON_Delete(j);
    assert_true(mq_publish(&f->c, "canary/mq-2/up", captured, 1, false));
    wait_stat(&f->d, "counters.readings_accepted", accepted0 + 1);
    /* Past the redelivery window after canaryd's CONNECT (10 s). */
    while ((double)now_ms() < connected_ms + 10500)
        usleep(100 * 1000);
    assert_true(mq_publish(&f->c, "canary/mq-2/up", captured, 1, false));
    wait_stat(&f->d, "counters.readings_duplicate", dup0 + 1);
    wait_event(&f->d, "replay");
    assert_int_equal(http_get_json(&f->d, "/api/v1/events?category=security&kind=replay", &j), 200);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "events"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "device")->valuestring, "mq-2");
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(e, "detail")->valuestring, "seq 1"));
    cJSON_Delete(j);
    assert_int_equal(http_get_json(&f->d, "/api/v1/stats", &j), 200);
    assert_true(json_number(j, "counters.readings_accepted") == accepted0 + 1);
    cJSON_Delete(j);
}

/* `canary simulate --transport mqtt --sign FILE`: every reading arrives signed. */
static void test_simulate_sign_over_mqtt(void **state)
{
    struct fixture *f = *state;
    char keys_path[160];
    snprintf(keys_path, sizeof keys_path, "%s/sim.keys", f->d.dir);
    FILE *fp = fopen(keys_path, "w");
    assert_non_null(fp);
    for (int i = 1; i <= 2; i++) {
        char id[32], text[48];
        uint8_t key[32];
        snprintf(id, sizeof id, "msim-%04d", i);
        provision(&f->d, id, key);
        assert_int_equal(b64url_encode(key, 32, text, sizeof text), 43);
        fprintf(fp, "%s %s\n", id, text);
    }
    fclose(fp);
    double before = 0;
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&f->d, "/api/v1/stats", &j), 200);
    before = json_number(j, "security.signed_accepted");
    cJSON_Delete(j);
    char broker[32];
    snprintf(broker, sizeof broker, "127.0.0.1:%u", f->b.port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[] = {"canary", "simulate", "--transport", "mqtt",      "--broker",
                              broker,   "--prefix", "msim",        "--devices", "2",
                              "--rate", "4",        "--duration",  "1.5",       "--drain",
                              "5",      "--sign",   keys_path,     "--quiet",   NULL};
        execv(CANARY_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    wait_stat(&f->d, "security.signed_accepted", before + 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_over_mqtt),
        cmocka_unit_test(test_replay_is_a_security_event),
        cmocka_unit_test(test_simulate_sign_over_mqtt),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
