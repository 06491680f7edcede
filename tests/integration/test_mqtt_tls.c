/* test_mqtt_tls.c — canaryd reading from a real Mosquitto over TLS only: the broker's listener
 * uses a pair from this build's `canary cert` (written by `canary broker-config --tls-cert
 * --tls-key --no-plain`, the documented way), canaryd has mqtt.tls_ca = that certificate;
 *   - a device publishing over TLS (libmosquitto with the same CA) gets its reading stored;
 *   - canaryd with another certificate as its CA never connects, and says why in one log
 *     line (mqtt.connect_failed ... TLS ... certificate verify failed) and in /api/v1/stats;
 *   - a plain (non-TLS) client cannot reach the broker's TLS port. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

struct fixture {
    char dir[64];
    char cert[128], key[128], other_cert[128];
    unsigned port;
    pid_t broker;
    char set_port[64], set_ca[192];
    struct daemon d;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/canary-mqtls-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s cert --out-dir %s/tls --host localhost --ip 127.0.0.1 >/dev/null && "
             "%s cert --out-dir %s/other >/dev/null",
             CANARY_CLI_PATH, f->dir, CANARY_CLI_PATH, f->dir);
    assert_int_equal(system(cmd), 0);
    snprintf(f->cert, sizeof f->cert, "%s/tls/cert.pem", f->dir);
    snprintf(f->key, sizeof f->key, "%s/tls/key.pem", f->dir);
    snprintf(f->other_cert, sizeof f->other_cert, "%s/other/cert.pem", f->dir);
    /* The broker's configuration as the documentation says: broker-config with the pair, TLS
     * only; anonymous clients allowed here by appending to it (the ACL is tested elsewhere). */
    f->port = free_port();
    snprintf(cmd, sizeof cmd,
             "mkdir %s/broker && %s broker-config --out-dir %s/broker --device tls-dev "
             "--tls-cert %s --tls-key %s --tls-port %u --no-plain --bind 127.0.0.1 >/dev/null",
             f->dir, CANARY_CLI_PATH, f->dir, f->cert, f->key, f->port);
    assert_int_equal(system(cmd), 0);
    char conf[160];
    snprintf(conf, sizeof conf, "%s/broker/test.conf", f->dir);
    FILE *fp = fopen(conf, "w");
    assert_non_null(fp);
    /* As root, mosquitto would switch to user "mosquitto", who cannot read the 0600 key. */
    struct passwd *pw = getpwuid(getuid());
    fprintf(fp,
            "per_listener_settings false\nallow_anonymous true\npersistence false\n"
            "log_dest file %s/broker/mosquitto.log\nuser %s\nlistener %u 127.0.0.1\n"
            "certfile %s\nkeyfile %s\n",
            f->dir, pw != NULL ? pw->pw_name : "root", f->port, f->cert, f->key);
    fclose(fp);
    /* broker-config's own file must say the same about TLS. */
    snprintf(cmd, sizeof cmd,
             "grep -q '^listener %u 127.0.0.1$' %s/broker/mosquitto.conf && "
             "grep -q '^certfile %s$' %s/broker/mosquitto.conf && "
             "! grep -q '^listener 1883' %s/broker/mosquitto.conf",
             f->port, f->dir, f->cert, f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    f->broker = fork();
    assert_true(f->broker >= 0);
    if (f->broker == 0) {
        child_dies_with_test();
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("mosquitto", "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250 && !port_open(f->port); i++)
        sleep_ms(20);
    assert_true(port_open(f->port));
    snprintf(f->set_port, sizeof f->set_port, "mqtt.port=%u", f->port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->d.pid > 0)
        assert_int_equal(daemon_stop(&f->d, SIGTERM), 0);
    if (f->d.dir[0] != '\0')
        daemon_cleanup(&f->d);
    kill(f->broker, SIGTERM);
    waitpid(f->broker, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void start_canaryd(struct fixture *f, const char *ca)
{
    snprintf(f->set_ca, sizeof f->set_ca, "mqtt.tls_ca=%s", ca);
    daemon_init(&f->d, "--set", "mqtt.enabled=true", "--set", "mqtt.host=127.0.0.1", "--set",
                f->set_port, "--set", f->set_ca, "--set", "mqtt.reconnect_max_ms=500", NULL);
    daemon_start(&f->d);
}

static const char *mqtt_state(struct daemon *d, char *err, size_t errlen)
{
    static char state[32];
    cJSON *j = NULL;
    state[0] = '\0';
    if (http_get_json(d, "/api/v1/stats", &j) == 200) {
        cJSON *mq = cJSON_GetObjectItem(j, "mqtt");
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(mq, "state"));
        const char *e = cJSON_GetStringValue(cJSON_GetObjectItem(mq, "last_error"));
        snprintf(state, sizeof state, "%s", s != NULL ? s : "");
        if (err != NULL)
            snprintf(err, errlen, "%s", e != NULL ? e : "");
    }
    cJSON_Delete(j);
    return state;
}

static bool connected(void *arg)
{
    return strcmp(mqtt_state(arg, NULL, 0), "connected") == 0;
}

static bool reading_stored(void *arg)
{
    cJSON *j = NULL;
    char *text = http_get_json(arg, "/api/v1/devices/tls-dev/latest", &j) == 200
                     ? cJSON_PrintUnformatted(j)
                     : NULL;
    bool ok = text != NULL && strstr(text, "417.5") != NULL;
    free(text);
    cJSON_Delete(j);
    return ok;
}

static void on_connack(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    *(int *)obj = rc;
}

/* Connects over TLS trusting cafile and, once the broker has answered, publishes one message
 * at QoS 1 and lets it go out. Returns the CONNACK's code, or -1 when none came (the TLS
 * handshake failed). */
static int publish_tls(struct fixture *f, const char *cafile, const char *payload)
{
    int connack = -1;
    struct mosquitto *m = mosquitto_new("tls-dev-client", true, &connack);
    assert_non_null(m);
    mosquitto_connect_callback_set(m, on_connack);
    assert_int_equal(mosquitto_tls_set(m, cafile, NULL, NULL, NULL, NULL), MOSQ_ERR_SUCCESS);
    int rc = mosquitto_connect(m, "127.0.0.1", (int)f->port, 30);
    for (int i = 0; rc == MOSQ_ERR_SUCCESS && connack < 0 && i < 250; i++)
        if (mosquitto_loop(m, 20, 1) != MOSQ_ERR_SUCCESS)
            break;
    if (connack == 0) {
        int mid = 0;
        assert_int_equal(mosquitto_publish(m, &mid, "canary/tls-dev/up", (int)strlen(payload),
                                           payload, 1, false),
                         MOSQ_ERR_SUCCESS);
        for (int i = 0; i < 50; i++)
            mosquitto_loop(m, 20, 1);
        mosquitto_disconnect(m);
        mosquitto_loop(m, 20, 1);
    }
    mosquitto_destroy(m);
    return connack;
}

static void test_ingest_over_tls(void **state)
{
    struct fixture *f = *state;
    start_canaryd(f, f->cert);
    assert_true(wait_until(connected, &f->d, 15000));
    assert_int_equal(
        publish_tls(f, f->cert,
                    "{\"device\":\"tls-dev\",\"seq\":1,\"values\":{\"gas_ppm\":417.5}}"),
        0); /* CONNACK: accepted */
    assert_true(wait_until(reading_stored, &f->d, 10000));
    /* A client without TLS gets no CONNACK from the TLS port. */
    int connack = -1;
    struct mosquitto *m = mosquitto_new("plain-client", true, &connack);
    mosquitto_connect_callback_set(m, on_connack);
    int rc = mosquitto_connect(m, "127.0.0.1", (int)f->port, 30);
    for (int i = 0; rc == MOSQ_ERR_SUCCESS && i < 50; i++)
        if (mosquitto_loop(m, 20, 1) != MOSQ_ERR_SUCCESS)
            break;
    assert_int_equal(connack, -1);
    mosquitto_destroy(m);
}

static bool tls_refusal_logged(void *arg)
{
    struct fixture *f = arg;
    FILE *fp = fopen(f->d.log, "r");
    if (fp == NULL)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof line, fp) != NULL)
        found = strstr(line, "mqtt.connect_failed") != NULL &&
                strstr(line, "certificate verify failed") != NULL;
    fclose(fp);
    return found;
}

static void test_wrong_ca_refused(void **state)
{
    struct fixture *f = *state;
    start_canaryd(f, f->other_cert);
    if (!wait_until(tls_refusal_logged, f, 10000)) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "grep mqtt %s >&2", f->d.log);
        assert_int_equal(system(cmd), 0);
        fail_msg("no mqtt.connect_failed line naming the certificate check");
    }
    sleep_ms(1500);
    char err[512];
    const char *st = mqtt_state(&f->d, err, sizeof err);
    print_message("state %s, last_error \"%s\"\n", st, err);
    assert_string_not_equal(st, "connected");
    assert_non_null(strstr(err, "certificate verify failed"));
    /* And a device with the wrong CA cannot connect either. */
    assert_int_equal(publish_tls(f, f->other_cert, "{}"), -1);
}

int main(void)
{
    mosquitto_lib_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_over_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_ca_refused, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mosquitto_lib_cleanup();
    return rc;
}
