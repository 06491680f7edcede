/* test_stream.c — GET /api/v1/stream (Server-Sent Events) against the real canaryd: committed
 * readings, alert transitions and device status changes arrive as events; a client reconnecting
 * with Last-Event-ID gets what it missed, or a reset when it cannot; idle streams cost no CPU
 * (libmicrohttpd busy-loops on a callback response with nothing to send unless it is suspended); a
 * client that does not read is dropped while ingest goes on at full speed; shutdown is not held up
 * by open streams; a device's MQTT status (online, sleeping, offline: its retained status topic on
 * a private Mosquitto) arrives as a `devices` event; GET /api/v1/stats counts the stream's clients,
 * events and drops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "broker.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One SSE connection over a raw socket. HTTP/1.0, so the body is not chunked. */
struct sse {
    int fd;
    char *buf;
    size_t len, cap;
    bool eof;
};

static void sse_open(struct sse *s, struct daemon *d, const char *last_id, int rcvbuf)
{
    memset(s, 0, sizeof *s);
    if (rcvbuf > 0) {
        /* The receive window must be small before connecting to stay small. */
        s->fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    } else {
        s->fd = raw_connect(d);
        assert_true(s->fd >= 0);
    }
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET /api/v1/stream HTTP/1.0\r\n%s%s%sHost: x\r\n\r\n",
                 last_id ? "Last-Event-ID: " : "", last_id ? last_id : "", last_id ? "\r\n" : "");
    assert_int_equal(write(s->fd, req, (size_t)n), n);
}

static void sse_close(struct sse *s)
{
    close(s->fd);
    free(s->buf);
}

/* Reads until needle appears (after offset `from`) or timeout_ms passes. */
static bool sse_wait_for(struct sse *s, size_t from, const char *needle, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        if (s->buf != NULL && from < s->len && strstr(s->buf + from, needle) != NULL)
            return true;
        int64_t left = deadline - now_ms();
        if (left <= 0 || s->eof)
            return false;
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        if (s->len + 65536 + 1 > s->cap) {
            s->cap = (s->len + 65536 + 1) * 2;
            s->buf = realloc(s->buf, s->cap);
            assert_non_null(s->buf);
        }
        ssize_t n = read(s->fd, s->buf + s->len, 65536);
        if (n <= 0) {
            s->eof = true;
            continue;
        }
        s->len += (size_t)n;
        s->buf[s->len] = '\0';
    }
}

/* Reads what arrives until the stream has been quiet for quiet_ms. */
static void sse_drain(struct sse *s, int quiet_ms)
{
    size_t before;
    do {
        before = s->len;
        sse_wait_for(s, s->len, "\x01", quiet_ms);
    } while (s->len != before && !s->eof);
}

/* The id of the last event received ("" if none). */
static void sse_last_id(const struct sse *s, char *out, size_t len)
{
    out[0] = '\0';
    const char *p = s->buf, *last = NULL;
    while (p != NULL && (p = strstr(p, "\nid: ")) != NULL) {
        last = p + 5;
        p++;
    }
    if (last != NULL) {
        size_t n = strcspn(last, "\n");
        snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), last);
    }
}

static void post_reading(struct daemon *d, const char *device, int seq, double gas)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"device\":\"%s\",\"seq\":%d,\"values\":{\"gas_ppm\":%g,\"temperature_c\":21}}",
             device, seq, gas);
    cJSON *j = NULL;
    assert_int_equal(http_post_json(d, "/api/v1/ingest", body, &j), 200);
    cJSON_Delete(j);
}

static int start(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    daemon_init(d, NULL);
    daemon_start(d);
    *state = d;
    return 0;
}

static int start_fast_status(void **state)
{
    struct daemon *d = calloc(1, sizeof *d);
    daemon_init(d, "--set", "devices.stale_after_s=1", "--set", "devices.offline_after_s=2", NULL);
    daemon_start(d);
    *state = d;
    return 0;
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

static void test_headers_and_hello(void **state)
{
    struct daemon *d = *state;
    struct sse s;
    sse_open(&s, d, NULL, 0);
    assert_true(sse_wait_for(&s, 0, "event: hello\ndata: {", 3000));
    assert_true(strncmp(s.buf, "HTTP/1.1 200", 12) == 0 || strncmp(s.buf, "HTTP/1.0 200", 12) == 0);
    assert_non_null(strstr(s.buf, "Content-Type: text/event-stream"));
    assert_non_null(strstr(s.buf, "Cache-Control: no-store"));
    assert_non_null(strstr(s.buf, "retry: "));
    assert_non_null(strstr(s.buf, "\"stale_after_s\":"));
    sse_close(&s);
    /* Unknown query parameters are refused, as everywhere in the API. */
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/stream?bogus=1", &j), 400);
    assert_string_equal(json_error_field(j), "bogus");
    cJSON_Delete(j);
}

static void test_readings_and_alerts_arrive(void **state)
{
    struct daemon *d = *state;
    struct sse s;
    sse_open(&s, d, NULL, 0);
    assert_true(sse_wait_for(&s, 0, "event: hello", 3000));
    size_t mark = s.len;
    int64_t t = now_ms();
    post_reading(d, "live-1", 1, 412.5);
    assert_true(sse_wait_for(&s, mark, "\"device\":\"live-1\",\"seq\":1,", 2000));
    int64_t latency = now_ms() - t;
    print_message("reading committed -> event received: %lld ms (incl. the ingest round trip)\n",
                  (long long)latency);
    assert_true(latency < 1000);
    assert_non_null(strstr(s.buf + mark, "event: readings\ndata: {\"readings\":["));
    assert_non_null(strstr(s.buf + mark, "\"gas_ppm\":{\"value\":412.5,\"score\":"));
    /* A gas leak: the alert and its "opened" event are pushed. */
    mark = s.len;
    post_reading(d, "live-1", 2, 6000);
    assert_true(sse_wait_for(&s, mark, "event: alert", 2000));
    assert_true(sse_wait_for(&s, mark, "\"action\":\"opened\"", 2000));
    assert_non_null(strstr(s.buf + mark, "\"kind\":\"gas_leak\""));
    assert_non_null(strstr(s.buf + mark, "\"severity\":\"critical\""));
    /* Acknowledging it through the API is pushed too. */
    cJSON *alerts = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/alerts?device=live-1", &alerts), 200);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(alerts, "alerts"), 0);
    assert_non_null(first);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/alerts/%d/ack",
             (int)cJSON_GetObjectItem(first, "id")->valuedouble);
    cJSON_Delete(alerts);
    mark = s.len;
    cJSON *j = NULL;
    assert_int_equal(http_post_json(d, path, "{\"by\":\"alice\",\"comment\":\"on my way\"}", &j),
                     200);
    cJSON_Delete(j);
    assert_true(sse_wait_for(&s, mark, "\"action\":\"acknowledged\"", 2000));
    assert_non_null(strstr(s.buf + mark, "\"state\":\"acknowledged\""));
    assert_non_null(strstr(s.buf + mark, "\"actor\":\"alice\""));
    sse_close(&s);
}

static void test_last_event_id_catch_up(void **state)
{
    struct daemon *d = *state;
    struct sse s;
    sse_open(&s, d, NULL, 0);
    assert_true(sse_wait_for(&s, 0, "event: hello", 3000));
    post_reading(d, "blip-1", 1, 400);
    assert_true(sse_wait_for(&s, 0, "\"device\":\"blip-1\",\"seq\":1,", 2000));
    char last[64];
    sse_last_id(&s, last, sizeof last);
    assert_true(strlen(last) > 2);
    sse_close(&s); /* the network blip */

    post_reading(d, "blip-1", 2, 401);
    post_reading(d, "blip-1", 3, 402);
    post_reading(d, "blip-1", 4, 403);

    sse_open(&s, d, last, 0);
    assert_true(sse_wait_for(&s, 0, "\"device\":\"blip-1\",\"seq\":4,", 2000));
    assert_non_null(strstr(s.buf, "\"device\":\"blip-1\",\"seq\":2,"));
    assert_non_null(strstr(s.buf, "\"device\":\"blip-1\",\"seq\":3,"));
    assert_null(strstr(s.buf, "\"device\":\"blip-1\",\"seq\":1,")); /* seen before the blip */
    assert_null(strstr(s.buf, "event: reset"));
    /* In order. */
    assert_true(strstr(s.buf, "\"seq\":2,") < strstr(s.buf, "\"seq\":3,"));
    sse_close(&s);

    /* An id of another canaryd run (or garbage): a reset, so the client reloads. */
    sse_open(&s, d, "12345-7", 0);
    assert_true(sse_wait_for(&s, 0, "event: reset\ndata: {\"reason\":", 2000));
    sse_close(&s);
    sse_open(&s, d, "not-an-id", 0);
    assert_true(sse_wait_for(&s, 0, "event: reset", 2000));
    sse_close(&s);
}

static void test_device_status_events(void **state)
{
    struct daemon *d = *state;
    struct sse s;
    sse_open(&s, d, NULL, 0);
    assert_true(sse_wait_for(&s, 0, "event: hello", 3000));
    post_reading(d, "st-1", 1, 400);
    assert_true(sse_wait_for(&s, 0,
                             "event: devices\ndata: {\"devices\":[{\"device\":\"st-1\","
                             "\"status\":\"online\"",
                             2000));
    /* Silent for stale_after_s (1 s), then offline_after_s (2 s), checked every second. */
    assert_true(sse_wait_for(&s, 0, "{\"device\":\"st-1\",\"status\":\"stale\"", 3000));
    assert_true(sse_wait_for(&s, 0, "{\"device\":\"st-1\",\"status\":\"offline\"", 3000));
    /* A reading brings it back. */
    size_t mark = s.len;
    post_reading(d, "st-1", 2, 401);
    assert_true(sse_wait_for(&s, mark, "{\"device\":\"st-1\",\"status\":\"online\"", 2000));
    /* In order: online, stale, offline, online. */
    const char *on = strstr(s.buf, "\"status\":\"online\"");
    const char *stale = strstr(s.buf, "\"status\":\"stale\"");
    const char *off = strstr(s.buf, "\"status\":\"offline\"");
    assert_true(on < stale && stale < off && off < s.buf + mark);
    sse_close(&s);
}

static bool mqtt_connected(void *arg)
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

static void test_mqtt_link_events(void **state)
{
    (void)state;
    struct broker b = {0};
    broker_start(&b);
    char port_arg[64];
    snprintf(port_arg, sizeof port_arg, "mqtt.port=%u", b.port);
    struct daemon d;
    daemon_init(&d, "--set", "mqtt.enabled=true", "--set", port_arg, "--set",
                "mqtt.client_id=it-stream", "--set", "mqtt.reconnect_min_ms=50", NULL);
    daemon_start(&d);
    assert_true(wait_until(mqtt_connected, &d, 5000));
    struct sse s;
    sse_open(&s, &d, NULL, 0);
    assert_true(sse_wait_for(&s, 0, "event: hello", 3000));

    post_reading(&d, "link-1", 1, 400); /* known to the store, for GET /api/v1/devices */
    assert_true(sse_wait_for(&s, 0, "\"device\":\"link-1\",\"seq\":1,", 2000));

    /* The device says it is online (retained), then goes to sleep with a goodbye. */
    struct mq_client dev;
    mq_connect(&dev, &b, "it-link-1", "canary/link-1/status", "offline", NULL);
    assert_true(mq_publish(&dev, "canary/link-1/status", "online", 1, true));
    size_t mark = s.len;
    assert_true(sse_wait_for(&s, mark,
                             "event: devices\ndata: {\"devices\":[{\"device\":\"link-1\","
                             "\"connection\":\"online\",\"connection_since_ms\":",
                             3000));
    mark = s.len;
    assert_true(mq_publish(&dev, "canary/link-1/status", "sleeping", 1, true));
    assert_true(sse_wait_for(&s, mark, "{\"device\":\"link-1\",\"connection\":\"sleeping\"", 3000));
    /* Back online, then a drop without a goodbye: the broker publishes its will. */
    mark = s.len;
    assert_true(mq_publish(&dev, "canary/link-1/status", "online", 1, true));
    assert_true(sse_wait_for(&s, mark, "{\"device\":\"link-1\",\"connection\":\"online\"", 3000));
    mark = s.len;
    mq_close(&dev, false);
    assert_true(sse_wait_for(&s, mark, "{\"device\":\"link-1\",\"connection\":\"offline\"", 5000));
    /* The stream says what the REST API says. */
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&d, "/api/v1/devices/link-1", &j), 200);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "connection")), "offline");
    cJSON_Delete(j);
    sse_close(&s);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
    broker_cleanup(&b);
}

static double stream_stat(struct daemon *d, const char *name)
{
    char path[64];
    snprintf(path, sizeof path, "stream.%s", name);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/stats", &j), 200);
    double v = json_number(j, path);
    cJSON_Delete(j);
    return v;
}

static void test_stream_stats(void **state)
{
    struct daemon *d = *state;
    assert_true(stream_stat(d, "clients") == 0);
    assert_true(stream_stat(d, "events_sent") == 0);
    struct sse a, b;
    sse_open(&a, d, NULL, 0);
    sse_open(&b, d, NULL, 0);
    assert_true(sse_wait_for(&a, 0, "event: hello", 3000));
    assert_true(sse_wait_for(&b, 0, "event: hello", 3000));
    assert_true(stream_stat(d, "clients") == 2);
    assert_true(stream_stat(d, "connects") == 2);
    post_reading(d, "cnt-1", 1, 400);
    assert_true(sse_wait_for(&a, 0, "\"device\":\"cnt-1\",\"seq\":1,", 2000));
    assert_true(sse_wait_for(&b, 0, "\"device\":\"cnt-1\",\"seq\":1,", 2000));
    /* a `devices` event (cnt-1 online) and a `readings` event, each to both clients */
    assert_true(stream_stat(d, "events") == 2);
    assert_true(stream_stat(d, "events_sent") == 4);
    assert_true(stream_stat(d, "clients_dropped") == 0);
    sse_close(&a);
    sse_close(&b);
    /* Closed connections leave once libmicrohttpd notices (the next write fails). */
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        post_reading(d, "cnt-1", 2 + i, 400);
        gone = stream_stat(d, "clients") == 0;
        if (!gone)
            usleep(50000);
    }
    assert_true(gone);
    assert_true(stream_stat(d, "connects") == 2);
}

static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* fields after the command name */
    long utime = 0, stime = 0;
    assert_int_equal(
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime), 2);
    return utime + stime;
}

static void test_idle_streams_cost_no_cpu(void **state)
{
    struct daemon *d = *state;
    enum { N = 8 };
    struct sse s[N];
    for (int i = 0; i < N; i++) {
        sse_open(&s[i], d, NULL, 0);
        assert_true(sse_wait_for(&s[i], 0, "event: hello", 3000));
    }
    long hz = sysconf(_SC_CLK_TCK);
    long before = cpu_ticks(d->pid);
    sleep(3);
    long used = cpu_ticks(d->pid) - before;
    print_message("canaryd CPU time over 3 s with %d idle streams: %ld ms\n", N, used * 1000 / hz);
    /* A busy-looping stream would use ~3000 ms of a core here. */
    assert_true(used * 1000 / hz < 150);
    /* They are still alive: a reading reaches all of them. */
    size_t marks[N];
    for (int i = 0; i < N; i++)
        marks[i] = s[i].len;
    post_reading(d, "idle-1", 1, 400);
    for (int i = 0; i < N; i++) {
        assert_true(sse_wait_for(&s[i], marks[i], "\"device\":\"idle-1\"", 2000));
        sse_close(&s[i]);
    }
}

static void test_slow_client_dropped(void **state)
{
    struct daemon *d = *state;
    struct sse slow, good;
    sse_open(&slow, d, NULL, 2048); /* then never reads */
    sse_open(&good, d, NULL, 0);
    assert_true(sse_wait_for(&good, 0, "event: hello", 3000));
    /* ~12 MB of events: far beyond the client's buffer and the sockets' buffers. */
    enum { BATCHES = 30, PER = 1000 };
    size_t cap = (size_t)PER * 400;
    char *body = malloc(cap);
    assert_non_null(body);
    int64_t t = now_ms();
    for (int b = 0; b < BATCHES; b++) {
        size_t len = 0;
        body[len++] = '[';
        for (int i = 0; i < PER; i++)
            len +=
                (size_t)snprintf(body + len, cap - len,
                                 "%s{\"device\":\"flood-%d\",\"seq\":%d,\"values\":{\"gas_ppm\":%d,"
                                 "\"temperature_c\":21.5,\"humidity_pct\":40,\"noise_db\":50.5,"
                                 "\"light_lux\":300,\"vibration_mm_s\":0.5}}",
                                 i ? "," : "", i % 50, b * PER / 50 + i / 50 + 1, 400 + i % 7);
        body[len++] = ']';
        body[len] = '\0';
        cJSON *j = NULL;
        assert_int_equal(http_post_json(d, "/api/v1/ingest", body, &j), 200);
        cJSON_Delete(j);
        /* the good client reads along */
        sse_drain(&good, 30);
    }
    int64_t took = now_ms() - t;
    free(body);
    print_message("%d readings ingested in %lld ms with a stalled stream open\n", BATCHES * PER,
                  (long long)took);
    /* The stalled client was cut off: reading what its socket holds ends in EOF. */
    assert_false(sse_wait_for(&slow, 0, "\x01", 10000));
    assert_true(slow.eof);
    print_message("the stalled client got %zu bytes before it was dropped\n", slow.len);
    /* The reading client got everything. */
    char last[32];
    snprintf(last, sizeof last, "\"seq\":%d,", BATCHES * PER / 50);
    assert_true(sse_wait_for(&good, 0, last, 5000));
    assert_false(good.eof);
    sse_close(&slow);
    sse_close(&good);
    FILE *f = fopen(d->log, "r");
    assert_non_null(f);
    char line[1024];
    bool logged = false;
    while (fgets(line, sizeof line, f) != NULL)
        logged = logged || strstr(line, "stream.client_dropped") != NULL;
    fclose(f);
    assert_true(logged);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/stats", &j), 200);
    assert_true(json_number(j, "stream.clients_dropped") >= 1);
    cJSON_Delete(j);
}

static void test_shutdown_not_held_by_streams(void **state)
{
    struct daemon *d = *state;
    struct sse s;
    sse_open(&s, d, NULL, 0);
    assert_true(sse_wait_for(&s, 0, "event: hello", 3000));
    int64_t t = now_ms();
    assert_int_equal(daemon_stop(d, SIGTERM), 0);
    int64_t took = now_ms() - t;
    print_message("canaryd stopped in %lld ms with a stream open\n", (long long)took);
    assert_true(took < 2500); /* http_drain would wait 3 s for a stream that never ends */
    assert_false(sse_wait_for(&s, s.len, "\x01", 2000));
    assert_true(s.eof);
    sse_close(&s);
    d->pid = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_headers_and_hello, start, stop),
        cmocka_unit_test_setup_teardown(test_readings_and_alerts_arrive, start, stop),
        cmocka_unit_test_setup_teardown(test_last_event_id_catch_up, start, stop),
        cmocka_unit_test_setup_teardown(test_device_status_events, start_fast_status, stop),
        cmocka_unit_test(test_mqtt_link_events),
        cmocka_unit_test_setup_teardown(test_stream_stats, start, stop),
        cmocka_unit_test_setup_teardown(test_idle_streams_cost_no_cpu, start, stop),
        cmocka_unit_test_setup_teardown(test_slow_client_dropped, start, stop),
        cmocka_unit_test_setup_teardown(test_shutdown_not_held_by_streams, start, stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
