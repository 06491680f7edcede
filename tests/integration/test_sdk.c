/* test_sdk.c — the device SDK end to end: canary-device-example (sdk/posix/, built on the SDK)
 * against a real canaryd with security.unsigned = reject and a real Mosquitto. Devices are
 * provisioned with the real `canary device add --keys-out`, whose file the example reads.
 *  - HTTP: its signed readings are accepted, with seq 1, 2, 3 and the values it sent; a
 *    restart of the program (a device reboot) continues from the seq file's reserved mark
 *    with no replay refusal, and again after that; readings without ts are accepted; a lost
 *    seq file makes counting from 1 a replay (409), and --first-seq clock recovers;
 *  - MQTT: the same through the broker, no duplicate at canaryd after the restart, and the
 *    device's retained status ends as "sleeping";
 *  - a wrong key is refused (401 bad_signature over HTTP, a bad_signature security event over
 *    MQTT) and stores nothing; an unreadable seq file or a world-readable key file stops the
 *    program before it sends anything, as do non-finite values and bad metric names; an
 *    unreachable canaryd or broker is exit status 4. */
#include "broker.h"
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define ADMIN_TOKEN "sdk-admin-token-0123456789abcdef"

struct fixture {
    struct broker b;
    struct daemon d;
    char mqtt_addr[64];
};

static int start(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    setenv("CANARY_API_ADMIN_TOKEN", ADMIN_TOKEN, 1);
    setenv("CANARY_MASTER_KEY", "Zb0Cd1Ef2Gh3Ij4Kl5Mn6Op7Qr8St9Uv0Wx1Yz2_-AA", 1);
    broker_start(&f->b);
    static char port_arg[64];
    snprintf(port_arg, sizeof port_arg, "mqtt.port=%u", f->b.port);
    snprintf(f->mqtt_addr, sizeof f->mqtt_addr, "127.0.0.1:%u", f->b.port);
    daemon_init(&f->d, "--set", "mqtt.enabled=true", "--set", port_arg, "--set",
                "mqtt.client_id=canaryd-sdk", "--set", "mqtt.reconnect_min_ms=50", "--set",
                "security.unsigned=reject", NULL);
    daemon_start(&f->d);
    *state = f;
    return 0;
}

static int stop(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(daemon_stop(&f->d, SIGTERM), 0);
    daemon_cleanup(&f->d);
    broker_cleanup(&f->b);
    unsetenv("CANARY_MASTER_KEY");
    free(f);
    return 0;
}

/* Runs path with argv (NULL-terminated, argv[0] included); stdout and stderr go to out.
 * Returns the exit status (128 + signal when killed). */
static int run(const char *path, const char *const *argv, char *out, size_t cap)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = read(pipefd[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* `canary device add id --keys-out <dir>/<id>.keys`; checks the key it printed is the one in
 * the file, and returns the file's path. */
static void provision(struct fixture *f, const char *id, char *keys, size_t cap)
{
    snprintf(keys, cap, "%s/%s.keys", f->d.dir, id);
    const char *argv[] = {"canary",      "device",     "add", id,  "--url",
                          f->d.base_url, "--keys-out", keys,  NULL};
    char out[2048];
    assert_int_equal(run(CANARY_CLI_PATH, argv, out, sizeof out), 0);
    const char *k = strstr(out, "key: ");
    assert_non_null(k);
    char printed[64], line[256], want[128];
    snprintf(printed, sizeof printed, "%.*s", (int)strcspn(k + 5, "\n"), k + 5);
    assert_int_equal(strlen(printed), 43);
    FILE *in = fopen(keys, "r");
    assert_non_null(in);
    assert_non_null(fgets(line, sizeof line, in));
    fclose(in);
    snprintf(want, sizeof want, "%s %s\n", id, printed);
    assert_string_equal(line, want);
}

/* Runs canary-device-example for device with extra arguments (NULL-terminated). */
static int example(struct fixture *f, const char *id, const char *keys, const char *transport,
                   const char *addr, char *out, size_t cap, ...)
{
    char seq[160];
    snprintf(seq, sizeof seq, "%s/%s.seq", f->d.dir, id);
    const char *argv[40] = {"canary-device-example",
                            "--device",
                            id,
                            "--key-file",
                            keys,
                            "--seq-file",
                            seq,
                            transport,
                            addr,
                            "--interval-ms",
                            "0"};
    int n = 11;
    va_list ap;
    va_start(ap, cap);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 38)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return run(CANARY_DEVICE_EXAMPLE_PATH, argv, out, cap);
}

/* The seqs of the device's stored readings, oldest first; returns how many. */
static int stored_seqs(struct fixture *f, const char *id, long long *seqs, int cap)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/devices/%s/readings?order=asc&from=-1d", id);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&f->d, path, &j), 200);
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "readings");
    int n = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, arr)
    {
        if (n < cap)
            seqs[n] = (long long)cJSON_GetObjectItemCaseSensitive(r, "seq")->valuedouble;
        n++;
    }
    cJSON_Delete(j);
    return n;
}

/* Security events of a kind for a device. */
static int events(struct fixture *f, const char *kind, const char *id)
{
    char path[200];
    snprintf(path, sizeof path, "/api/v1/events?category=security&kind=%s&device=%s", kind, id);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&f->d, path, &j), 200);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "events"));
    cJSON_Delete(j);
    return n;
}

struct event_wait {
    struct fixture *f;
    const char *kind, *id;
};

static bool event_seen(void *arg)
{
    struct event_wait *w = arg;
    return events(w->f, w->kind, w->id) > 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
}

static void expect_seqs(struct fixture *f, const char *id, const long long *want, int n)
{
    long long got[32];
    int m = stored_seqs(f, id, got, 32);
    if (m != n)
        fail_msg("%s: %d readings stored, expected %d", id, m, n);
    for (int i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("%s: reading %d has seq %lld, expected %lld", id, i, got[i], want[i]);
}

static void test_http_and_reboot(void **state)
{
    struct fixture *f = *state;
    char keys[160], out[8192];
    provision(f, "sdk-http-1", keys, sizeof keys);
    int rc = example(f, "sdk-http-1", keys, "--http", f->d.base_url, out, sizeof out, "--count",
                     "3", "--value", "gas_ppm=412.5", "--value", "temperature_c=24.1", NULL);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, out);
    assert_non_null(strstr(out, "seq=1 http=200"));
    assert_non_null(strstr(out, "seq=3 http=200"));
    expect_seqs(f, "sdk-http-1", (long long[]){1, 2, 3}, 3);
    /* The values arrived as sent. */
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&f->d, "/api/v1/devices/sdk-http-1/latest", &j), 200);
    assert_true(json_number(j, "metrics.gas_ppm.value") == 412.5);
    assert_true(json_number(j, "metrics.temperature_c.value") == 24.1);
    cJSON_Delete(j);

    /* Reboot: the program starts again from the seq file's reserved mark (block 100). */
    rc = example(f, "sdk-http-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "2",
                 NULL);
    if (rc != 0)
        fail_msg("after a restart: exit %d: %s", rc, out);
    assert_non_null(strstr(out, "seq=101 http=200"));
    /* Again, with a small block and without ts (canaryd stamps the reading). */
    rc = example(f, "sdk-http-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "2",
                 "--no-ts", "--block", "1", NULL);
    if (rc != 0)
        fail_msg("second restart: exit %d: %s", rc, out);
    assert_null(strstr(out, "\"ts\""));
    rc = example(f, "sdk-http-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "1",
                 "--block", "1", NULL);
    if (rc != 0)
        fail_msg("third restart: exit %d: %s", rc, out);
    expect_seqs(f, "sdk-http-1", (long long[]){1, 2, 3, 101, 102, 201, 202, 203}, 8);
    assert_int_equal(events(f, "replay", "sdk-http-1"), 0);
    assert_int_equal(events(f, "bad_signature", "sdk-http-1"), 0);

    /* The seq file lost (storage erased): counting from 1 again is a replay to canaryd... */
    char seq[160];
    snprintf(seq, sizeof seq, "%s/sdk-http-1.seq", f->d.dir);
    assert_int_equal(unlink(seq), 0);
    rc = example(f, "sdk-http-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "1",
                 NULL);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "HTTP 409"));
    /* ...and starting from the wall clock (docs/SDK.md) is not. */
    assert_int_equal(unlink(seq), 0);
    int64_t before = now_ms();
    rc = example(f, "sdk-http-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "2",
                 "--first-seq", "clock", NULL);
    if (rc != 0)
        fail_msg("--first-seq clock: exit %d: %s", rc, out);
    long long seqs[16];
    assert_int_equal(stored_seqs(f, "sdk-http-1", seqs, 16), 10);
    assert_true(seqs[8] >= before && seqs[9] == seqs[8] + 1);
}

static void test_wrong_key_and_bad_files(void **state)
{
    struct fixture *f = *state;
    char keys[160], wrong[160], out[8192];
    provision(f, "sdk-key-1", keys, sizeof keys);
    /* Another valid key: a device flashed with the wrong one. */
    snprintf(wrong, sizeof wrong, "%s/wrong.keys", f->d.dir);
    write_file(wrong, "sdk-key-1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", 0600);
    int rc = example(f, "sdk-key-1", wrong, "--http", f->d.base_url, out, sizeof out, "--count",
                     "1", NULL);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "HTTP 401"));
    assert_non_null(strstr(out, "bad_signature"));
    struct event_wait w = {f, "bad_signature", "sdk-key-1"}; /* stored in the background */
    assert_true(wait_until(event_seen, &w, 10000));
    long long none[1];
    assert_int_equal(stored_seqs(f, "sdk-key-1", none, 1), 0);

    /* A key file others can read is refused before anything is sent. */
    char open_keys[160];
    snprintf(open_keys, sizeof open_keys, "%s/open.keys", f->d.dir);
    FILE *in = fopen(keys, "r");
    char line[256];
    assert_non_null(fgets(line, sizeof line, in));
    fclose(in);
    write_file(open_keys, line, 0644);
    rc = example(f, "sdk-key-1", open_keys, "--http", f->d.base_url, out, sizeof out, "--count",
                 "1", NULL);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "chmod 600"));
    /* A key file without this device's line. */
    rc = example(f, "sdk-other-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "1",
                 NULL);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "no key for device sdk-other-1"));
    /* A damaged seq file: the device refuses to start rather than reuse seqs. */
    char seq[160];
    snprintf(seq, sizeof seq, "%s/sdk-key-1.seq", f->d.dir);
    write_file(seq, "12x\n", 0600);
    rc = example(f, "sdk-key-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "1",
                 NULL);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "store_failed"));
    assert_int_equal(stored_seqs(f, "sdk-key-1", none, 1), 0);
    /* With the seq file repaired, the right key works. */
    unlink(seq);
    rc = example(f, "sdk-key-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "1",
                 NULL);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, out);
    expect_seqs(f, "sdk-key-1", (long long[]){1}, 1);
}

/* What the example refuses to send, and what it says when nobody listens. */
static void test_example_refusals(void **state)
{
    struct fixture *f = *state;
    char keys[160], out[8192];
    provision(f, "sdk-val-1", keys, sizeof keys);
    const char *bad_values[] = {"gas_ppm=nan", "gas_ppm=inf", "gas_ppm=-inf",
                                "Gas=1",       "gas ppm=1",   "gas_ppm=1e999"};
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        int rc = example(f, "sdk-val-1", keys, "--http", f->d.base_url, out, sizeof out, "--count",
                         "1", "--value", bad_values[i], NULL);
        if (rc != 3)
            fail_msg("--value %s: exit %d: %s", bad_values[i], rc, out);
        assert_true(strstr(out, "bad_value") != NULL || strstr(out, "bad_metric") != NULL);
    }
    int rc = example(f, "sdk-val-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "1",
                     "--value", "gas_ppm=12abc", NULL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "not a number"));
    rc = example(f, "sdk-val-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "-1",
                 NULL);
    assert_int_equal(rc, 2);
    long long s[4];
    assert_int_equal(stored_seqs(f, "sdk-val-1", s, 4), 0); /* nothing reached canaryd */
    /* canaryd and the broker unreachable (a port nobody listens on). */
    rc = example(f, "sdk-val-1", keys, "--http", "http://127.0.0.1:1", out, sizeof out, "--count",
                 "1", NULL);
    assert_int_equal(rc, 4);
    assert_non_null(strstr(out, "unreachable"));
    rc = example(f, "sdk-val-1", keys, "--mqtt", "127.0.0.1:1", out, sizeof out, "--count", "1",
                 NULL);
    assert_int_equal(rc, 4);
    /* The seqs those runs took are skipped, not reused: the next reading still goes in. */
    rc = example(f, "sdk-val-1", keys, "--http", f->d.base_url, out, sizeof out, "--count", "1",
                 "--value", "gas_ppm=401", NULL);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, out);
    assert_int_equal(stored_seqs(f, "sdk-val-1", s, 4), 1);
}

struct count_wait {
    struct fixture *f;
    const char *id;
    int want;
};

static bool count_reached(void *arg)
{
    struct count_wait *w = arg;
    long long s[32];
    return stored_seqs(w->f, w->id, s, 32) >= w->want;
}

static void wait_count(struct fixture *f, const char *id, int want)
{
    struct count_wait w = {f, id, want};
    if (!wait_until(count_reached, &w, 10000))
        fail_msg("%s: fewer than %d readings stored", id, want);
}

/* HTTPS: a canaryd serving a `canary cert` pair; the example reaches it with --ca and that
 * certificate (readings stored), not without it (the system CAs do not know it: exit 4,
 * nothing sent), and a --ca that cannot be read is a usage error. */
static void test_https_with_ca(void **state)
{
    (void)state;
    struct fixture tf;
    memset(&tf, 0, sizeof tf);
    char cmd[400], cert[200], key[200], set_cert[240], set_key[240];
    daemon_init(&tf.d, "--set", "security.unsigned=reject", NULL);
    snprintf(cmd, sizeof cmd, "%s cert --out-dir %s/tls >/dev/null", CANARY_CLI_PATH, tf.d.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cert, sizeof cert, "%s/tls/cert.pem", tf.d.dir);
    snprintf(key, sizeof key, "%s/tls/key.pem", tf.d.dir);
    snprintf(set_cert, sizeof set_cert, "http.tls_cert=%s", cert);
    snprintf(set_key, sizeof set_key, "http.tls_key=%s", key);
    int n = 0;
    while (tf.d.extra[n] != NULL)
        n++;
    const char *more[] = {"--set", set_cert, "--set", set_key, NULL};
    for (int i = 0; more[i] != NULL; i++)
        tf.d.extra[n++] = more[i];
    tf.d.extra[n] = NULL;
    daemon_start(&tf.d);
    snprintf(tf.d.base_url, sizeof tf.d.base_url, "https://127.0.0.1:%u", tf.d.port);
    tf.d.ca_file = cert;

    char keys[200], out[4096];
    snprintf(keys, sizeof keys, "%s/tls-dev.keys", tf.d.dir);
    const char *add[] = {"canary", "device", "add",        "tls-dev", "--url", tf.d.base_url,
                         "--ca",   cert,     "--keys-out", keys,      NULL};
    assert_int_equal(run(CANARY_CLI_PATH, add, out, sizeof out), 0);

    int rc = example(&tf, "tls-dev", keys, "--http", tf.d.base_url, out, sizeof out, "--count", "1",
                     "--quiet", NULL);
    if (rc != 4)
        fail_msg("without --ca: exit %d, expected 4 (certificate not trusted): %s", rc, out);
    rc = example(&tf, "tls-dev", keys, "--http", tf.d.base_url, out, sizeof out, "--count", "2",
                 "--ca", cert, "--quiet", NULL);
    if (rc != 0)
        fail_msg("with --ca: exit %d: %s", rc, out);
    long long got[8];
    int m = stored_seqs(&tf, "tls-dev", got, 8);
    assert_int_equal(m, 2);
    assert_true(got[0] < got[1]);
    rc = example(&tf, "tls-dev", keys, "--http", tf.d.base_url, out, sizeof out, "--count", "1",
                 "--ca", "/nonexistent/ca.pem", NULL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--ca /nonexistent/ca.pem"));
    assert_int_equal(daemon_stop(&tf.d, SIGTERM), 0);
    daemon_cleanup(&tf.d);
}

static void test_mqtt_and_reboot(void **state)
{
    struct fixture *f = *state;
    char keys[160], out[8192];
    provision(f, "sdk-mqtt-1", keys, sizeof keys);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&f->d, "/api/v1/stats", &j), 200);
    double dup_before = json_number(j, "counters.readings_duplicate"); /* HTTP's 409 above */
    cJSON_Delete(j);
    int rc = example(f, "sdk-mqtt-1", keys, "--mqtt", f->mqtt_addr, out, sizeof out, "--count", "3",
                     NULL);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, out);
    assert_non_null(strstr(out, "seq=3 mqtt=puback"));
    wait_count(f, "sdk-mqtt-1", 3);
    rc = example(f, "sdk-mqtt-1", keys, "--mqtt", f->mqtt_addr, out, sizeof out, "--count", "3",
                 NULL);
    if (rc != 0)
        fail_msg("after a restart: exit %d: %s", rc, out);
    wait_count(f, "sdk-mqtt-1", 6);
    expect_seqs(f, "sdk-mqtt-1", (long long[]){1, 2, 3, 101, 102, 103}, 6);
    assert_int_equal(http_get_json(&f->d, "/api/v1/stats", &j), 200);
    assert_true(json_number(j, "counters.readings_duplicate") == dup_before);
    cJSON_Delete(j);
    assert_int_equal(events(f, "replay", "sdk-mqtt-1"), 0);
    /* It said goodbye: its retained status is "sleeping". */
    assert_int_equal(http_get_json(&f->d, "/api/v1/devices/sdk-mqtt-1", &j), 200);
    cJSON *conn = cJSON_GetObjectItemCaseSensitive(j, "connection");
    assert_true(cJSON_IsString(conn));
    assert_string_equal(conn->valuestring, "sleeping");
    cJSON_Delete(j);

    /* The wrong key: the broker takes it (it cannot tell), canaryd refuses it. */
    char wrong[160];
    snprintf(wrong, sizeof wrong, "%s/wrong-mqtt.keys", f->d.dir);
    write_file(wrong, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", 0600); /* a bare key */
    rc = example(f, "sdk-mqtt-1", wrong, "--mqtt", f->mqtt_addr, out, sizeof out, "--count", "1",
                 NULL);
    assert_int_equal(rc, 0);
    struct event_wait w = {f, "bad_signature", "sdk-mqtt-1"};
    assert_true(wait_until(event_seen, &w, 10000));
    long long s[32];
    assert_int_equal(stored_seqs(f, "sdk-mqtt-1", s, 32), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_and_reboot),  cmocka_unit_test(test_wrong_key_and_bad_files),
        cmocka_unit_test(test_example_refusals), cmocka_unit_test(test_https_with_ca),
        cmocka_unit_test(test_mqtt_and_reboot),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
