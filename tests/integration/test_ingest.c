/* test_ingest.c — POST /api/v1/ingest against the real canaryd: good readings in both
 * formats, and every kind of bad input (malformed, wrong types, NaN/Inf, missing device,
 * absurd timestamps, duplicate seqs, unknown fields, invalid UTF-8, oversized bodies and
 * batches, slow clients). Each gets its 4xx with the field named, a counter, and nothing
 * half-stored; the server keeps serving throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int start(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    daemon_init(d, "--set", "http.max_body_bytes=4096", "--set", "ingest.max_batch=20", "--set",
                "ingest.max_metrics=4", "--set", "ingest.max_device_len=16", "--set",
                "http.header_timeout_s=2", "--set", "http.request_timeout_s=2", "--log-level",
                "debug", NULL);
    daemon_start(d);
    *state = d;
    return 0;
}

static int stop(void **state)
{
    struct daemon *d = *state;
    assert_int_equal(daemon_stop(d, SIGTERM), 0); /* a clean shutdown after all that abuse */
    daemon_cleanup(d);
    free(d);
    return 0;
}

static double stat_of(struct daemon *d, const char *path)
{
    cJSON *j;
    assert_int_equal(http_get_json(d, "/api/v1/stats", &j), 200);
    double v = json_number(j, path);
    cJSON_Delete(j);
    return v;
}

static long post(struct daemon *d, const char *body, cJSON **json)
{
    return http_post_json(d, "/api/v1/ingest", body, json);
}

/* Posts a single reading that must be rejected with status/code/field. */
static void expect_rejected(struct daemon *d, const char *body, long status, const char *code,
                            const char *field)
{
    cJSON *j = NULL;
    long got = post(d, body, &j);
    if (got != status || j == NULL || strcmp(json_error_code(j), code) != 0 ||
        (field != NULL && strcmp(json_error_field(j), field) != 0)) {
        char *text = j ? cJSON_PrintUnformatted(j) : NULL;
        fail_msg("body %s: got %ld %s, expected %ld %s field %s", body, got, text ? text : "(none)",
                 status, code, field ? field : "-");
    }
    cJSON_Delete(j);
}

static void test_good_readings_json_and_line_protocol(void **state)
{
    struct daemon *d = *state;
    double before = stat_of(d, "readings_total");
    char body[512];
    snprintf(body, sizeof body,
             "{\"device\":\"kitchen-1\",\"seq\":1,\"ts\":%lld,\"values\":{\"gas_ppm\":412.5,"
             "\"temperature_c\":24.1,\"flame\":false}}",
             (long long)now_ms());
    cJSON *j;
    assert_int_equal(post(d, body, &j), 200);
    assert_int_equal(json_number(j, "accepted"), 1);
    cJSON_Delete(j);
    assert_int_equal(post(d,
                          "[{\"device\":\"kitchen-1\",\"seq\":2,\"values\":{\"gas_ppm\":413}},"
                          "{\"device\":\"kitchen-2\",\"seq\":1,\"values\":{\"gas_ppm\":300}}]",
                          &j),
                     200);
    assert_int_equal(json_number(j, "accepted"), 2);
    cJSON_Delete(j);
    struct http_response r;
    const char *lp = "air,device=lp-1,room=hall gas_ppm=401,flame=f,seq=1i\n"
                     "# a comment\n"
                     "air,device=lp-1 gas_ppm=402,seq=2i\n";
    assert_int_equal(http_call(d, "POST", "/api/v1/ingest", "text/plain", lp, strlen(lp), &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"accepted\":2"));
    http_response_free(&r);
    assert_true(stat_of(d, "readings_total") == before + 5);

    /* The stored values come back, flame false as 0. */
    assert_int_equal(http_get_json(d, "/api/v1/devices/kitchen-1/readings?order=asc", &j), 200);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "readings"), 0);
    assert_true(json_number(first, "values.gas_ppm.value") == 412.5);
    assert_true(json_number(first, "values.flame.value") == 0);
    assert_true(json_number(first, "seq") == 1);
    cJSON_Delete(j);
}

static void test_malformed_bodies(void **state)
{
    struct daemon *d = *state;
    double before = stat_of(d, "counters.bodies_malformed");
    expect_rejected(d, "{\"device\":", 400, "malformed_body", NULL);
    expect_rejected(d, "not json at all", 400, "malformed_body", NULL);
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"gas_ppm\":NaN}}", 400,
                    "malformed_body", NULL);
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"gas_ppm\":Infinity}}", 400,
                    "malformed_body", NULL);
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":1}} trailing", 400,
                    "malformed_body", NULL);
    expect_rejected(d, "42", 400, "malformed_body", NULL);
    expect_rejected(d, "[]", 400, "malformed_body", NULL);
    struct http_response r;
    const char bad_utf8[] = "{\"device\":\"a\xc3\x28\",\"seq\":1,\"values\":{\"x\":1}}";
    assert_int_equal(http_call(d, "POST", "/api/v1/ingest", "application/json", bad_utf8,
                               sizeof bad_utf8 - 1, &r),
                     0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "UTF-8"));
    http_response_free(&r);
    const char nul[] = "{\"device\":\"a\",\0\"seq\":1}";
    assert_int_equal(
        http_call(d, "POST", "/api/v1/ingest", "application/json", nul, sizeof nul - 1, &r), 0);
    assert_int_equal(r.status, 400);
    http_response_free(&r);
    assert_true(stat_of(d, "counters.bodies_malformed") == before + 9);
}

static void test_reading_field_errors(void **state)
{
    struct daemon *d = *state;
    double before = stat_of(d, "counters.readings_invalid");
    expect_rejected(d, "{\"seq\":1,\"values\":{\"gas_ppm\":1}}", 400, "invalid_field", "device");
    expect_rejected(d, "{\"device\":7,\"seq\":1,\"values\":{\"gas_ppm\":1}}", 400, "invalid_field",
                    "device");
    expect_rejected(d, "{\"device\":\"a/b\",\"seq\":1,\"values\":{\"gas_ppm\":1}}", 400,
                    "invalid_field", "device");
    expect_rejected(d, "{\"device\":\"much-too-long-device-id\",\"seq\":1,\"values\":{\"x\":1}}",
                    400, "invalid_field", "device");
    expect_rejected(d, "{\"device\":\"a\",\"values\":{\"gas_ppm\":1}}", 400, "invalid_field",
                    "seq");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":-1,\"values\":{\"gas_ppm\":1}}", 400,
                    "invalid_field", "seq");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1.5,\"values\":{\"gas_ppm\":1}}", 400,
                    "invalid_field", "seq");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":\"1\",\"values\":{\"gas_ppm\":1}}", 400,
                    "invalid_field", "seq");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"gas_ppm\":\"high\"}}", 400,
                    "invalid_field", "values.gas_ppm");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"gas_ppm\":null}}", 400,
                    "invalid_field", "values.gas_ppm");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"gas_ppm\":1e999}}", 400,
                    "invalid_field", "values.gas_ppm");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"Gas PPM\":1}}", 400,
                    "invalid_field", "values");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{}}", 400, "invalid_field",
                    "values");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":[1,2]}", 400, "invalid_field",
                    "values");
    expect_rejected(
        d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}}", 400,
        "invalid_field", "values");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"colour\":\"red\",\"values\":{\"x\":1}}", 400,
                    "invalid_field", "colour");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"seq\":2,\"values\":{\"x\":1}}", 400,
                    "invalid_field", "");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"ts\":1763676000,\"values\":{\"x\":1}}", 400,
                    "invalid_field", "ts");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"ts\":99999999999999,\"values\":{\"x\":1}}",
                    400, "invalid_field", "ts");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"humidity_pct\":101}}", 400,
                    "invalid_field", "values.humidity_pct");
    expect_rejected(d, "{\"device\":\"a\",\"seq\":1,\"values\":{\"temperature_c\":-300}}", 400,
                    "invalid_field", "values.temperature_c");
    assert_true(stat_of(d, "counters.readings_invalid") == before + 21);
    /* None of them created a device. */
    cJSON *j;
    assert_int_equal(http_get_json(d, "/api/v1/devices/a", &j), 404);
    cJSON_Delete(j);
}

static void test_duplicates_and_partial_batches(void **state)
{
    struct daemon *d = *state;
    cJSON *j;
    assert_int_equal(post(d, "{\"device\":\"dup-1\",\"seq\":10,\"values\":{\"gas_ppm\":1}}", &j),
                     200);
    cJSON_Delete(j);
    double before_dup = stat_of(d, "counters.readings_duplicate");
    double before_total = stat_of(d, "readings_total");
    expect_rejected(d, "{\"device\":\"dup-1\",\"seq\":10,\"values\":{\"gas_ppm\":1}}", 409,
                    "duplicate", "seq");
    /* A batch: 3 good readings, one duplicate, one invalid, one duplicate inside the batch. */
    assert_int_equal(post(d,
                          "[{\"device\":\"dup-1\",\"seq\":11,\"values\":{\"gas_ppm\":2}},"
                          "{\"device\":\"dup-1\",\"seq\":10,\"values\":{\"gas_ppm\":3}},"
                          "{\"device\":\"dup-1\",\"seq\":12,\"values\":{\"gas_ppm\":\"x\"}},"
                          "{\"device\":\"dup-1\",\"seq\":13,\"values\":{\"gas_ppm\":4}},"
                          "{\"device\":\"dup-1\",\"seq\":13,\"values\":{\"gas_ppm\":5}},"
                          "{\"device\":\"dup-2\",\"seq\":1,\"values\":{\"gas_ppm\":6}}]",
                          &j),
                     207);
    assert_int_equal(json_number(j, "accepted"), 3);
    assert_int_equal(json_number(j, "duplicates"), 2);
    assert_int_equal(json_number(j, "rejected"), 1);
    cJSON *results = cJSON_GetObjectItem(j, "results");
    assert_int_equal(cJSON_GetArraySize(results), 3);
    assert_int_equal(json_number(cJSON_GetArrayItem(results, 0), "index"), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 1), "field")->valuestring,
                        "values.gas_ppm");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 2), "status")->valuestring,
                        "duplicate");
    cJSON_Delete(j);
    /* Exactly the accepted readings are stored. */
    assert_true(stat_of(d, "readings_total") == before_total + 3);
    assert_true(stat_of(d, "counters.readings_duplicate") == before_dup + 3);
    assert_int_equal(
        http_get_json(d, "/api/v1/devices/dup-1/readings?metric=gas_ppm&order=asc", &j), 200);
    cJSON *rs = cJSON_GetObjectItem(j, "readings");
    assert_int_equal(cJSON_GetArraySize(rs), 3);
    assert_true(json_number(cJSON_GetArrayItem(rs, 1), "values.gas_ppm.value") == 2);
    assert_true(json_number(cJSON_GetArrayItem(rs, 2), "values.gas_ppm.value") == 4);
    cJSON_Delete(j);
    /* Out of order within the window is fine once. */
    assert_int_equal(post(d, "{\"device\":\"dup-1\",\"seq\":12,\"values\":{\"gas_ppm\":7}}", &j),
                     200);
    cJSON_Delete(j);
}

static void test_size_limits(void **state)
{
    struct daemon *d = *state;
    double before = stat_of(d, "counters.bodies_too_large");
    /* A declared length over http.max_body_bytes (4096) is refused before it is read. */
    size_t big = 100000;
    char *body = malloc(big + 1);
    memset(body, ' ', big);
    body[big] = '\0';
    body[0] = '[';
    body[big - 1] = ']';
    struct http_response r;
    assert_int_equal(http_call(d, "POST", "/api/v1/ingest", "application/json", body, big, &r), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"field\":\"http.max_body_bytes\""));
    http_response_free(&r);
    free(body);
    /* A batch over ingest.max_batch (20). */
    char batch[4096] = "[";
    for (int i = 0; i < 21; i++) {
        char one[64];
        snprintf(one, sizeof one, "%s{\"device\":\"b\",\"seq\":%d,\"values\":{\"x\":1}}",
                 i ? "," : "", i + 1);
        strcat(batch, one);
    }
    strcat(batch, "]");
    cJSON *j;
    assert_int_equal(post(d, batch, &j), 413);
    assert_string_equal(json_error_code(j), "batch_too_large");
    assert_string_equal(json_error_field(j), "ingest.max_batch");
    cJSON_Delete(j);
    assert_true(stat_of(d, "counters.bodies_too_large") == before + 2);
    /* A chunked body with no length that grows past the limit: 413 as well. */
    int fd = raw_connect(d);
    assert_true(fd >= 0);
    const char *head =
        "POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    assert_true(write(fd, head, strlen(head)) > 0);
    char chunk[1100];
    memset(chunk, ' ', sizeof chunk);
    for (int i = 0; i < 6; i++) {
        char size_line[16];
        snprintf(size_line, sizeof size_line, "%zx\r\n", sizeof chunk);
        if (write(fd, size_line, strlen(size_line)) < 0 || write(fd, chunk, sizeof chunk) < 0 ||
            write(fd, "\r\n", 2) < 0)
            break;
    }
    if (write(fd, "0\r\n\r\n", 5) < 0) {
        /* the server may already have answered and closed */
    }
    char resp[1024] = "";
    ssize_t n = 0, got;
    while ((got = read(fd, resp + n, sizeof resp - 1 - (size_t)n)) > 0)
        n += got;
    close(fd);
    assert_non_null(strstr(resp, "413"));
}

static void test_wrong_content_type_method_and_path(void **state)
{
    struct daemon *d = *state;
    struct http_response r;
    assert_int_equal(http_call(d, "POST", "/api/v1/ingest", "application/xml", "<a/>", 4, &r), 0);
    assert_int_equal(r.status, 415);
    assert_non_null(strstr(r.body, "unsupported_media_type"));
    http_response_free(&r);
    assert_int_equal(http_call(d, "GET", "/api/v1/ingest", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 405);
    http_response_free(&r);
    assert_int_equal(http_call(d, "POST", "/api/v1/ingest?precision=ks", "text/plain", "x", 1, &r),
                     0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"field\":\"precision\""));
    http_response_free(&r);
    assert_int_equal(http_call(d, "GET", "/api/v2/nothing", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.content_type, "application/json");
    http_response_free(&r);
}

static bool closed_by_server(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0)
        return false;
    char b[512];
    ssize_t n = read(fd, b, sizeof b);
    return n <= 0 || n > 0; /* EOF, reset, or an error answer: the server ended it */
}

static void test_slow_clients_are_cut_off(void **state)
{
    struct daemon *d = *state;
    double before = stat_of(d, "counters.connections_timed_out");
    /* Headers trickling in: one byte every 300 ms never completes within 2 s. */
    int slow = raw_connect(d);
    assert_true(slow >= 0);
    const char *head = "POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
    int64_t t0 = now_ms();
    bool cut = false;
    for (size_t i = 0; i < strlen(head) && now_ms() - t0 < 6000; i++) {
        if (send(slow, head + i, 1, MSG_NOSIGNAL) != 1) {
            cut = true;
            break;
        }
        /* Meanwhile ordinary clients are served. */
        if (i == 3) {
            cJSON *j;
            assert_int_equal(http_get_json(d, "/healthz", &j), 200);
            cJSON_Delete(j);
        }
        if (closed_by_server(slow, 300)) {
            cut = true;
            break;
        }
    }
    int64_t took = now_ms() - t0;
    close(slow);
    assert_true(cut);
    assert_true(took >= 1900 && took < 4500);
    /* A body trickling in after complete headers is cut off by request_timeout_s (2 s). */
    int body = raw_connect(d);
    const char *h2 = "POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 1000\r\n\r\n{";
    assert_true(send(body, h2, strlen(h2), MSG_NOSIGNAL) > 0);
    t0 = now_ms();
    cut = false;
    while (now_ms() - t0 < 6000) {
        if (send(body, " ", 1, MSG_NOSIGNAL) != 1 || closed_by_server(body, 300)) {
            cut = true;
            break;
        }
    }
    close(body);
    assert_true(cut);
    assert_true(stat_of(d, "counters.connections_timed_out") >= before + 2);
}

static void test_garbage_never_crashes(void **state)
{
    struct daemon *d = *state;
    unsigned seed = 42;
    char buf[600];
    for (int i = 0; i < 300; i++) {
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = (char)(rand_r(&seed) & 0xff);
        /* Sometimes start like JSON so the parser goes deeper. */
        if (n > 2 && i % 3 == 0)
            memcpy(buf, "[{", 2);
        struct http_response r;
        const char *ct = i % 2 ? "application/json" : "text/plain";
        assert_int_equal(http_call(d, "POST", "/api/v1/ingest", ct, buf, n, &r), 0);
        assert_true(r.status == 400 || r.status == 413 || r.status == 207 || r.status == 200 ||
                    r.status == 403 || r.status == 409);
        http_response_free(&r);
    }
    /* Raw protocol garbage on the socket. */
    for (int i = 0; i < 20; i++) {
        int fd = raw_connect(d);
        assert_true(fd >= 0);
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof buf) + 1;
        for (size_t k = 0; k < n; k++)
            buf[k] = (char)(rand_r(&seed) & 0xff);
        if (send(fd, buf, n, MSG_NOSIGNAL) < 0) {
            /* closed early: fine */
        }
        close(fd);
    }
    cJSON *j;
    assert_int_equal(http_get_json(d, "/healthz", &j), 200);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_readings_json_and_line_protocol),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_reading_field_errors),
        cmocka_unit_test(test_duplicates_and_partial_batches),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_wrong_content_type_method_and_path),
        cmocka_unit_test(test_slow_clients_are_cut_off),
        cmocka_unit_test(test_garbage_never_crashes),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
