/* test_limits.c — the rate limits of a real canaryd (docs/HARDENING.md):
 *   - per address over HTTP: past the burst a client gets 429 with Retry-After and a JSON body
 *     naming limits.http_rate; it passes again after the delay; another address is not
 *     affected; loopback is exempt by default;
 *   - a flood of client addresses (many 127.x.y.z sources) against a table of 64 stays at 64
 *     entries and evicts the rest, and canaryd keeps answering;
 *   - per device over HTTP: 429 naming limits.device_rate once a device's burst is spent, none
 *     of the refused batch stored, other devices unaffected, a batch larger than the burst
 *     refused; a rate_limited security event; counters in /api/v1/stats;
 *   - forged messages (wrong key) for a signed device do not spend its budget: after 40
 *     refused forgeries, its real readings still pass;
 *   - http.max_body_bytes holds for callers with the admin credential or a device token;
 *   - over MQTT (a private Mosquitto): messages past the device's burst are dropped, counted,
 *     and recorded as rate_limited security events; another device's readings go on. */
#include "broker.h"
#include "harness.h"
#include "verify/jws.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define ADMIN_TOKEN "limits-admin-token-0123456789abcdef"
#define MASTER_KEY  "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int stop(void **state)
{
    struct daemon *d = *state;
    if (d->pid > 0)
        assert_int_equal(daemon_stop(d, SIGTERM), 0);
    daemon_cleanup(d);
    free(d);
    return 0;
}

static double stat_of(struct daemon *d, const char *path)
{
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/stats", &j), 200);
    double v = json_number(j, path);
    cJSON_Delete(j);
    return v;
}

/* Checks a 429 answer: Retry-After >= 1 (and at most max_s), the error shape naming field. */
static void expect_429(struct http_response *r, const char *field, double rate, long max_s)
{
    assert_int_equal(r->status, 429);
    long retry = atol(r->retry_after);
    if (retry < 1 || retry > max_s)
        fail_msg("Retry-After '%s' not in [1, %ld]", r->retry_after, max_s);
    cJSON *j = cJSON_Parse(r->body);
    assert_non_null(j);
    assert_string_equal(json_error_code(j), "rate_limited");
    assert_string_equal(json_error_field(j), field);
    assert_true(json_number(j, "error.status") == 429);
    assert_true(json_number(j, "error.retry_after_s") == (double)retry);
    assert_true(json_number(j, "error.limit.rate") == rate);
    cJSON_Delete(j);
}

/* ---- per address ---- */

static int start_address(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    daemon_init(d, "--set", "limits.http_exempt_loopback=false", "--set", "limits.http_rate=1",
                "--set", "limits.http_burst=5", "--set", "limits.http_table=64", NULL);
    daemon_start(d);
    *state = d;
    return 0;
}

static size_t collect(char *p, size_t size, size_t n, void *u)
{
    struct http_response *r = u;
    char *grown = realloc(r->body, r->body_len + size * n + 1);
    if (grown == NULL)
        return 0;
    r->body = grown;
    memcpy(r->body + r->body_len, p, size * n);
    r->body_len += size * n;
    r->body[r->body_len] = '\0';
    return size * n;
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

/* A GET /healthz from a given source address (CURLOPT_INTERFACE); returns the status. */
static long get_from(struct daemon *d, const char *source, struct http_response *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", d->base_url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (source != NULL)
        curl_easy_setopt(c, CURLOPT_INTERFACE, source);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void test_address_limit(void **state)
{
    struct daemon *d = *state;
    struct http_response r;
    /* The burst (5) passes, the sixth is refused. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(http_call(d, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        assert_int_equal(r.status, 200);
        http_response_free(&r);
    }
    assert_int_equal(http_call(d, "GET", "/api/v1/devices", NULL, NULL, 0, &r), 0);
    expect_429(&r, "limits.http_rate", 1, 1);
    assert_non_null(strstr(r.body, "127.0.0.1"));
    http_response_free(&r);
    /* An ingest is refused the same way, before its body is looked at. */
    const char body[] = "{\"device\":\"addr-1\",\"seq\":1,\"values\":{\"gas_ppm\":400}}";
    assert_int_equal(
        http_call(d, "POST", "/api/v1/ingest", "application/json", body, sizeof body - 1, &r), 0);
    expect_429(&r, "limits.http_rate", 1, 1);
    http_response_free(&r);
    /* Another address is not affected. */
    assert_int_equal(get_from(d, "127.0.0.2", &r), 200);
    /* After the Retry-After delay (a token a second) the first address passes again. */
    sleep_ms(1100);
    assert_int_equal(http_call(d, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    sleep_ms(2100); /* tokens for the stats calls below */
    assert_true(stat_of(d, "limits.http_address.requests_refused") >= 2);
    assert_true(stat_of(d, "limits.http_address.rate") == 1);
}

static void test_address_flood_stays_bounded(void **state)
{
    struct daemon *d = *state;
    /* 300 client addresses against a table of 64: every one of them gets its first request
     * through (a new address starts with a full bucket), the table holds 64, the rest were
     * evicted. */
    for (int i = 0; i < 300; i++) {
        char src[32];
        snprintf(src, sizeof src, "127.0.%d.%d", 10 + i / 200, 1 + i % 200);
        struct http_response r;
        long st = get_from(d, src, &r);
        if (st != 200)
            fail_msg("request %d from %s: %ld", i, src, st);
    }
    sleep_ms(3100);
    double entries = stat_of(d, "limits.http_address.addresses");
    double evicted = stat_of(d, "limits.http_address.evicted");
    print_message("300 addresses, table of 64: %.0f held, %.0f evicted\n", entries, evicted);
    assert_true(entries <= 64);
    assert_true(evicted >= 300 - 64);
    assert_true(stat_of(d, "limits.http_address.table") == 64);
}

static int start_default_limits(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    daemon_init(d, "--set", "limits.http_rate=1", "--set", "limits.http_burst=1", NULL);
    daemon_start(d);
    *state = d;
    return 0;
}

static void test_loopback_exempt_by_default(void **state)
{
    struct daemon *d = *state;
    for (int i = 0; i < 30; i++) {
        cJSON *j = NULL;
        assert_int_equal(http_get_json(d, "/healthz", &j), 200);
        cJSON_Delete(j);
    }
    assert_true(stat_of(d, "limits.http_address.requests_refused") == 0);
}

/* ---- per device, HTTP ---- */

static char master_file[192], set_master[256];

static int start_device(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    setenv("CANARY_API_ADMIN_TOKEN", ADMIN_TOKEN, 1);
    daemon_init(d, "--set", "limits.device_rate=1", "--set", "limits.device_burst=3", "--set",
                "http.max_body_bytes=65536", NULL);
    snprintf(master_file, sizeof master_file, "%s/master.key", d->dir);
    int fd = open(master_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, MASTER_KEY "\n", strlen(MASTER_KEY) + 1),
                     (ssize_t)strlen(MASTER_KEY) + 1);
    close(fd);
    snprintf(set_master, sizeof set_master, "security.master_key_file=%s", master_file);
    int n = 0;
    while (d->extra[n] != NULL)
        n++;
    d->extra[n] = "--set";
    d->extra[n + 1] = set_master;
    d->extra[n + 2] = NULL;
    daemon_start(d);
    *state = d;
    return 0;
}

static long ingest(struct daemon *d, const char *ct, const char *body, struct http_response *r)
{
    assert_int_equal(http_call(d, "POST", "/api/v1/ingest", ct, body, strlen(body), r), 0);
    return r->status;
}

static const char *reading(const char *device, int seq)
{
    static char buf[256];
    snprintf(buf, sizeof buf,
             "{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{\"gas_ppm\":%d}}", device, seq,
             (long long)now_ms(), 400 + seq);
    return buf;
}

static double stored_readings(struct daemon *d, const char *device)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/devices/%s/readings?metric=gas_ppm&from=-1h", device);
    cJSON *j = NULL;
    long st = http_get_json(d, path, &j);
    double n = st == 200 ? (double)cJSON_GetArraySize(cJSON_GetObjectItem(j, "readings")) : -1;
    cJSON_Delete(j);
    return n;
}

struct kind_wait {
    struct daemon *d;
    const char *kind, *device;
};

static bool event_stored(void *arg)
{
    struct kind_wait *w = arg;
    char path[192];
    snprintf(path, sizeof path, "/api/v1/events?category=security&kind=%s&device=%s", w->kind,
             w->device);
    cJSON *j = NULL;
    long st = http_get_json(w->d, path, &j);
    bool ok = st == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(j, "events")) > 0;
    cJSON_Delete(j);
    return ok;
}

static void test_device_limit_http(void **state)
{
    struct daemon *d = *state;
    struct http_response r;
    for (int seq = 1; seq <= 3; seq++) {
        assert_int_equal(ingest(d, "application/json", reading("dev-a", seq), &r), 200);
        http_response_free(&r);
    }
    assert_int_equal(ingest(d, "application/json", reading("dev-a", 4), &r), 429);
    expect_429(&r, "limits.device_rate", 1, 2);
    assert_non_null(strstr(r.body, "dev-a"));
    http_response_free(&r);
    /* Another device has its own budget; a batch of two devices where one is over is refused
     * whole, and what it charged the other is given back. */
    assert_int_equal(ingest(d, "application/json", reading("dev-b", 1), &r), 200);
    http_response_free(&r);
    char batch[1024];
    snprintf(batch, sizeof batch, "[%s,", reading("dev-b", 2));
    snprintf(batch + strlen(batch), sizeof batch - strlen(batch), "%s]", reading("dev-a", 5));
    assert_int_equal(ingest(d, "application/json", batch, &r), 429);
    http_response_free(&r);
    /* dev-b still has 2 tokens: two more readings pass, the third does not. */
    assert_int_equal(ingest(d, "application/json", reading("dev-b", 3), &r), 200);
    http_response_free(&r);
    assert_int_equal(ingest(d, "application/json", reading("dev-b", 4), &r), 200);
    http_response_free(&r);
    assert_int_equal(ingest(d, "application/json", reading("dev-b", 5), &r), 429);
    http_response_free(&r);
    /* A batch larger than the burst never passes. */
    sleep_ms(3100);
    char big[2048] = "[";
    for (int seq = 10; seq < 14; seq++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s%s", seq > 10 ? "," : "",
                 reading("dev-c", seq));
    strcat(big, "]");
    assert_int_equal(ingest(d, "application/json", big, &r), 429);
    http_response_free(&r);

    assert_true(stored_readings(d, "dev-a") == 3);
    assert_true(stored_readings(d, "dev-b") == 3);
    assert_true(stored_readings(d, "dev-c") <= 0); /* none: not even the device (404) */
    struct kind_wait w = {d, "rate_limited", "dev-a"};
    assert_true(wait_until(event_stored, &w, 5000));
    assert_true(stat_of(d, "limits.device.http_requests_refused") == 4);
    assert_true(stat_of(d, "limits.device.http_readings_refused") == 1 + 2 + 1 + 4);
    assert_true(stat_of(d, "limits.device.rate") == 1);
    assert_true(stat_of(d, "limits.device.burst") == 3);
}

static void test_forgeries_do_not_spend_the_budget(void **state)
{
    struct daemon *d = *state;
    /* A device with a key. */
    const char *const admin[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
    struct http_response r;
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices", admin, "application/json",
                                    "{\"id\":\"signed-1\"}", 17, &r),
                     0);
    http_response_free(&r);
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices/signed-1/keys", admin,
                                    "application/json", "{}", 2, &r),
                     0);
    if (r.status != 200 && r.status != 201)
        fail_msg("POST /api/v1/devices/signed-1/keys: %ld %s", r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    const char *key_text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "key"));
    assert_non_null(key_text);
    uint8_t key[32], wrong[32];
    assert_int_equal(b64url_decode(key_text, strlen(key_text), key, 32), 32);
    cJSON_Delete(j);
    http_response_free(&r);
    memcpy(wrong, key, 32);
    wrong[0] ^= 0x5a;
    /* 40 forged readings (a made-up key), then unsigned ones: all refused before the limit. */
    char tok[1024];
    for (int i = 0; i < 40; i++) {
        const char *body = reading("signed-1", 100 + i);
        assert_true(jws_sign_hs256("signed-1", body, strlen(body), wrong, 32, tok, sizeof tok) > 0);
        assert_int_equal(ingest(d, "application/jose", tok, &r), 401);
        http_response_free(&r);
        assert_int_equal(ingest(d, "application/json", reading("signed-1", 200 + i), &r), 401);
        http_response_free(&r);
    }
    /* The device's own three readings (its burst) pass; the fourth is over its limit. */
    for (int seq = 1; seq <= 4; seq++) {
        const char *body = reading("signed-1", seq);
        assert_true(jws_sign_hs256("signed-1", body, strlen(body), key, 32, tok, sizeof tok) > 0);
        long st = ingest(d, "application/jose", tok, &r);
        http_response_free(&r);
        if (st != (seq <= 3 ? 200 : 429))
            fail_msg("signed reading %d: %ld", seq, st);
    }
}

/* POSTs len bytes of JSON-ish filler to path with an Authorization header, announcing the
 * length (with Expect: 100-continue, so a 413 comes before the body) or chunked (the length
 * unknown until the end). Returns the status; the error code goes to code. */
static long post_big(struct daemon *d, const char *path, const char *auth, size_t len, bool chunked,
                     char *code, size_t cap)
{
    char *body = malloc(len + 1);
    memset(body, ' ', len);
    body[0] = '{';
    body[len - 1] = '}';
    body[len] = '\0';
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s%s", d->base_url, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, chunked ? "Transfer-Encoding: chunked" : "Expect: 100-continue");
    h = curl_slist_append(h, auth);
    struct http_response r = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (!chunked)
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cJSON *j = r.body != NULL ? cJSON_Parse(r.body) : NULL;
    const char *e = j != NULL ? json_error_code(j) : NULL;
    snprintf(code, cap, "%s", e != NULL ? e : "");
    cJSON_Delete(j);
    free(r.body);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(body);
    return status;
}

/* http.max_body_bytes holds for a caller with the admin credential and for a device with its
 * token, on every path, announced or chunked. */
static void test_body_limit_with_credentials(void **state)
{
    struct daemon *d = *state;
    const char *const admin[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
    struct http_response r;
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices", admin, "application/json",
                                    "{\"id\":\"tok-1\"}", 14, &r),
                     0);
    http_response_free(&r);
    assert_int_equal(http_call_with(d, "POST", "/api/v1/devices/tok-1/keys", admin,
                                    "application/json", "{\"kind\":\"token\"}", 16, &r),
                     0);
    cJSON *j = cJSON_Parse(r.body);
    const char *token = cJSON_GetStringValue(cJSON_GetObjectItem(j, "token"));
    assert_non_null(token);
    char device_auth[256];
    snprintf(device_auth, sizeof device_auth, "Authorization: Bearer %s", token);
    cJSON_Delete(j);
    http_response_free(&r);
    const char *paths[] = {"/api/v1/devices", "/api/v1/ingest", "/api/v1/alerts/1/ack"};
    const char *auths[] = {admin[0], device_auth, admin[0]};
    for (int i = 0; i < 3; i++) {
        for (int chunked = 0; chunked < 2; chunked++) {
            char code[64];
            long st = post_big(d, paths[i], auths[i], 65537, chunked, code, sizeof code);
            if (st != 413 || strcmp(code, "body_too_large") != 0)
                fail_msg("%s (%s): %ld %s", paths[i], chunked ? "chunked" : "announced", st, code);
        }
    }
    /* Just under the limit is read (and judged on its content). */
    char code[64];
    long st = post_big(d, "/api/v1/ingest", device_auth, 65536, true, code, sizeof code);
    assert_int_not_equal(st, 413);
}

/* ---- per device, MQTT ---- */

struct mqtt_fixture {
    struct broker b;
    struct daemon d;
    char set_port[64];
};

static int start_mqtt(void **state)
{
    struct mqtt_fixture *f = calloc(1, sizeof *f);
    broker_start(&f->b);
    snprintf(f->set_port, sizeof f->set_port, "mqtt.port=%u", f->b.port);
    daemon_init(&f->d, "--set", "mqtt.enabled=true", "--set", f->set_port, "--set",
                "limits.device_rate=1", "--set", "limits.device_burst=3", NULL);
    daemon_start(&f->d);
    *state = f;
    return 0;
}

static int stop_mqtt(void **state)
{
    struct mqtt_fixture *f = *state;
    if (f->d.pid > 0)
        assert_int_equal(daemon_stop(&f->d, SIGTERM), 0);
    daemon_cleanup(&f->d);
    broker_cleanup(&f->b);
    free(f);
    return 0;
}

struct count_wait {
    struct daemon *d;
    const char *device;
    double want;
};

static bool stored_count_is(void *arg)
{
    struct count_wait *w = arg;
    return stored_readings(w->d, w->device) == w->want;
}

static bool mqtt_connected(void *arg)
{
    cJSON *j = NULL;
    bool ok =
        http_get_json(arg, "/api/v1/stats", &j) == 200 &&
        strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "mqtt"), "state")),
               "connected") == 0;
    cJSON_Delete(j);
    return ok;
}

static void test_device_limit_mqtt(void **state)
{
    struct mqtt_fixture *f = *state;
    assert_true(wait_until(mqtt_connected, &f->d, 10000));
    struct mq_client c;
    mq_connect(&c, &f->b, "limits-pub", NULL, NULL, NULL);
    for (int seq = 1; seq <= 10; seq++)
        assert_true(mq_publish(&c, "canary/mq-a/up", reading("mq-a", seq), 1, false));
    assert_true(mq_publish(&c, "canary/mq-b/up", reading("mq-b", 1), 1, false));
    struct count_wait wb = {&f->d, "mq-b", 1};
    assert_true(wait_until(stored_count_is, &wb, 10000));
    struct count_wait wa = {&f->d, "mq-a", 3};
    assert_true(wait_until(stored_count_is, &wa, 5000));
    sleep_ms(300);
    assert_true(stored_readings(&f->d, "mq-a") == 3);
    assert_true(stat_of(&f->d, "limits.device.mqtt_messages_dropped") == 7);
    assert_true(stat_of(&f->d, "limits.device.mqtt_readings_dropped") == 7);
    struct kind_wait w = {&f->d, "rate_limited", "mq-a"};
    assert_true(wait_until(event_stored, &w, 5000));
    /* After a second, one more passes. */
    sleep_ms(1100);
    assert_true(mq_publish(&c, "canary/mq-a/up", reading("mq-a", 11), 1, false));
    wa.want = 4;
    assert_true(wait_until(stored_count_is, &wa, 5000));
    mq_close(&c, true);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_address_limit, start_address, stop),
        cmocka_unit_test_setup_teardown(test_address_flood_stays_bounded, start_address, stop),
        cmocka_unit_test_setup_teardown(test_loopback_exempt_by_default, start_default_limits,
                                        stop),
        cmocka_unit_test_setup_teardown(test_device_limit_http, start_device, stop),
        cmocka_unit_test_setup_teardown(test_forgeries_do_not_spend_the_budget, start_device, stop),
        cmocka_unit_test_setup_teardown(test_body_limit_with_credentials, start_device, stop),
        cmocka_unit_test_setup_teardown(test_device_limit_mqtt, start_mqtt, stop_mqtt),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
