/* test_sim_mqtt.c — `canary simulate --transport mqtt` (this build's) against a private
 * Mosquitto (broker.h), watched by a test client subscribed to everything under canary/.
 *
 * What it checks: every device's readings arrive with consecutive seqs, exactly as many as
 * fell due; each device announces itself "online" (retained); a command is acked and the
 * device's next readings carry the actuator's state; a malformed command is refused with an
 * error ack; a clean stop leaves "sleeping" retained; a kill -9 makes the broker publish
 * each device's will, "offline"; a broker restart mid-run loses no reading. With --register
 * and a canaryd reading the same broker, every device ends up with its name, location and
 * kind (at QoS 1 and 0, with a client per device and shared ones); against a canaryd that
 * never sees the readings, the 404s are retried and the run still ends on time. */
#include "broker.h"
#include "cli_run.h"
#include "harness.h"

#include "cli/sim_fleet.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts `canary simulate --transport mqtt --broker 127.0.0.1:<port>` with the given extra
 * arguments (NULL-terminated); stdout goes to <broker dir>/sim.out, stderr to sim.err. */
static pid_t sim_start(const struct broker *b, ...)
{
    char broker[32], out[128], err[128];
    snprintf(broker, sizeof broker, "127.0.0.1:%u", b->port);
    snprintf(out, sizeof out, "%s/sim.out", b->dir);
    snprintf(err, sizeof err, "%s/sim.err", b->dir);
    const char *argv[40] = {"canary", "simulate", "--transport", "mqtt", "--broker", broker};
    size_t n = 6;
    va_list ap;
    va_start(ap, b);
    for (const char *a; n < 39 && (a = va_arg(ap, const char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return cli_spawn(out, err, NULL, argv);
}

/* Reads a small file into buf (NUL-terminated; "" when missing). */
static const char *slurp(const struct broker *b, const char *name, char *buf, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", b->dir, name);
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        size_t n = fread(buf, 1, len - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

/* Waits for the simulator to exit (timeout_ms at most) and returns its exit status; prints
 * its stderr when the status is not want. */
static int sim_wait(const struct broker *b, pid_t pid, int timeout_ms, int want)
{
    int st = 0;
    for (int waited = 0; waitpid(pid, &st, WNOHANG) == 0; waited += 20) {
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("canary simulate did not finish within %d ms", timeout_ms);
        }
        sleep_ms(20);
    }
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (rc != want) {
        char err[8192];
        fprintf(stderr, "canary simulate exited %d; its stderr:\n%s\n", rc,
                slurp(b, "sim.err", err, sizeof err));
    }
    return rc;
}

/* Every test: a private broker and a watcher subscribed to everything under canary/. */
struct fixture {
    struct broker b;
    struct mq_client w;
    bool watching;
};

static int fixture_setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    broker_start(&fx->b);
    mq_connect(&fx->w, &fx->b, "test-watcher", NULL, NULL, "canary/#");
    fx->watching = true;
    *state = fx;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *fx = *state;
    if (fx->watching)
        mq_close(&fx->w, true);
    broker_cleanup(&fx->b);
    free(fx);
    return 0;
}

static void wait_for(struct mq_client *c, const char *topic, const char *needle)
{
    if (mq_wait_message(c, topic, needle, 10000) < 0)
        fail_msg("no message on %s containing '%s' within 10 s", topic, needle ? needle : "");
}

/* The readings of one device, in the order the watcher got them: seqs consecutive, ts rising.
 * Returns how many. With after_ack >= 0 (the index of a buzzer-on ack in the watcher's list),
 * readings before it must not carry "buzzer", and *buzzer_after_ack tells whether every one
 * after it carries "buzzer":1. */
static int check_device_readings(struct mq_client *c, const char *device, int after_ack,
                                 bool *buzzer_after_ack)
{
    char topic[64];
    snprintf(topic, sizeof topic, "canary/%s/up", device);
    pthread_mutex_lock(&c->lock);
    int n = 0;
    double last_seq = 0, last_ts = 0;
    *buzzer_after_ack = true;
    for (size_t i = 0; i < c->n_messages; i++) {
        const struct mq_message *m = &c->messages[i];
        if (strcmp(m->topic, topic) != 0)
            continue;
        cJSON *r = cJSON_Parse(m->payload);
        assert_non_null(r);
        assert_string_equal(cJSON_GetObjectItem(r, "device")->valuestring, device);
        double seq = cJSON_GetObjectItem(r, "seq")->valuedouble;
        double ts = cJSON_GetObjectItem(r, "ts")->valuedouble;
        if (n > 0 && seq != last_seq + 1)
            fail_msg("%s: seq %.0f follows %.0f", device, seq, last_seq);
        assert_true(n == 0 || ts > last_ts);
        const cJSON *buzzer = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "values"), "buzzer");
        if (after_ack >= 0 && (int)i < after_ack)
            assert_null(buzzer); /* published before the command was carried out */
        if (after_ack >= 0 && (int)i > after_ack)
            *buzzer_after_ack &= cJSON_IsNumber(buzzer) && buzzer->valuedouble == 1;
        last_seq = seq;
        last_ts = ts;
        n++;
        cJSON_Delete(r);
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

static void readings_statuses_and_commands(void **state)
{
    struct fixture *fx = *state;
    struct broker *b = &fx->b;
    struct mq_client *w = &fx->w;
    pid_t pid = sim_start(b, "--devices", "5", "--rate", "5", "--duration", "3", NULL);
    for (int d = 1; d <= 5; d++) {
        char topic[64];
        snprintf(topic, sizeof topic, "canary/sim-%04d/status", d);
        wait_for(w, topic, "online");
    }
    /* "online" is retained: a client that comes later still sees it */
    struct mq_client late;
    mq_connect(&late, b, "test-late", NULL, NULL, "canary/+/status");
    int i = mq_wait_message(&late, "canary/sim-0003/status", "online", 5000);
    assert_true(i >= 0);
    assert_true(late.messages[i].retained);
    mq_close(&late, true);

    wait_for(w, "canary/sim-0001/up", NULL);
    assert_true(mq_publish(w, "canary/sim-0001/cmd",
                           "{\"id\":\"c-1\",\"command\":\"buzzer\",\"state\":\"on\"}", 1, false));
    int ack = mq_wait_message(w, "canary/sim-0001/cmd/ack", "\"id\":\"c-1\"", 5000);
    assert_true(ack >= 0);
    assert_string_equal(w->messages[ack].payload, "{\"id\":\"c-1\",\"status\":\"ok\"}");
    assert_true(mq_publish(w, "canary/sim-0002/cmd", "{\"id\":\"c-2\",\"command\":", 1, false));
    wait_for(w, "canary/sim-0002/cmd/ack", "\"status\":\"error\"");
    assert_true(mq_publish(w, "canary/sim-0002/cmd",
                           "{\"id\":\"c-3\",\"command\":\"valve\",\"state\":\"ajar\"}", 1, false));
    wait_for(w, "canary/sim-0002/cmd/ack", "{\"id\":\"c-3\",\"status\":\"error\",\"error\":");

    assert_int_equal(sim_wait(b, pid, 20000, 0), 0);
    char out[1024];
    slurp(b, "sim.out", out, sizeof out);
    assert_non_null(strstr(out, "simulate: transport=mqtt devices=5 sent=75 acked=75 failed=0 "
                                "commands=3 "));
    for (int d = 1; d <= 5; d++) {
        char topic[64], device[16];
        snprintf(device, sizeof device, "sim-%04d", d);
        snprintf(topic, sizeof topic, "canary/%s/status", device);
        wait_for(w, topic, "sleeping");
        bool buzzer_ok;
        assert_int_equal(check_device_readings(w, device, d == 1 ? ack : -1, &buzzer_ok), 15);
        assert_true(buzzer_ok);
    }
    /* the error ack of the malformed command names no id */
    pthread_mutex_lock(&w->lock);
    bool empty_id = false;
    for (size_t k = 0; k < w->n_messages; k++)
        empty_id |= strstr(w->messages[k].payload, "{\"id\":\"\",\"status\":\"error\"") != NULL;
    pthread_mutex_unlock(&w->lock);
    assert_true(empty_id);
    /* the last word is "sleeping", retained: no "offline" after it */
    struct mq_client after;
    mq_connect(&after, b, "test-after", NULL, NULL, "canary/+/status");
    for (int d = 1; d <= 5; d++) {
        char topic[64];
        snprintf(topic, sizeof topic, "canary/sim-%04d/status", d);
        assert_true(mq_wait_message(&after, topic, "sleeping", 5000) >= 0);
    }
    sleep_ms(300);
    assert_true(mq_wait_message(&after, "canary/sim-0001/status", "offline", 0) < 0);
    mq_close(&after, true);
}

static void kill_9_leaves_the_will(void **state)
{
    struct fixture *fx = *state;
    struct broker *b = &fx->b;
    struct mq_client *w = &fx->w;
    pid_t pid = sim_start(b, "--devices", "2", "--duration", "60", NULL);
    wait_for(w, "canary/sim-0001/status", "online");
    wait_for(w, "canary/sim-0002/status", "online");
    kill(pid, SIGKILL);
    assert_int_equal(sim_wait(b, pid, 5000, 128 + SIGKILL), 128 + SIGKILL);
    wait_for(w, "canary/sim-0001/status", "offline");
    wait_for(w, "canary/sim-0002/status", "offline");
}

/* The broker goes away mid-run and comes back on the same port: the simulator reconnects,
 * publishes again what was not acknowledged, and every reading is acked in the end. */
static void broker_restart_loses_nothing(void **state)
{
    struct fixture *fx = *state;
    struct broker *b = &fx->b;
    pid_t pid =
        sim_start(b, "--devices", "4", "--rate", "10", "--duration", "5", "--drain", "20", NULL);
    wait_for(&fx->w, "canary/sim-0004/status", "online");
    mq_close(&fx->w, false); /* it would lose its connection anyway */
    fx->watching = false;
    sleep_ms(1000);
    kill(b->pid, SIGSTOP); /* PUBACKs stop: readings pile up unacknowledged */
    sleep_ms(500);
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
    sleep_ms(500);
    broker_start(b);
    assert_int_equal(sim_wait(b, pid, 40000, 0), 0);
    char out[1024], err[8192];
    slurp(b, "sim.out", out, sizeof out);
    assert_non_null(strstr(out, "sent=200 acked=200 failed=0 "));
    slurp(b, "sim.err", err, sizeof err);
    assert_non_null(strstr(err, "lost; reconnecting with backoff"));
    assert_null(strstr(err, " 0 readings published again"));
}

/* canaryd subscribed to the private broker, as `make demo` runs it. */
static void daemon_on_broker(struct daemon *d, const struct broker *b)
{
    static char port_arg[64];
    snprintf(port_arg, sizeof port_arg, "mqtt.port=%u", b->port);
    daemon_init(d, "--set", "mqtt.enabled=true", "--set", port_arg, "--set",
                "mqtt.client_id=canaryd-sim-test", NULL);
    daemon_start(d);
}

static bool mqtt_connected(void *arg)
{
    cJSON *j = NULL;
    bool ok = false;
    if (http_get_json(arg, "/healthz", &j) == 200) {
        const cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "mqtt"), "state");
        ok = cJSON_IsString(st) && strcmp(st->valuestring, "connected") == 0;
    }
    cJSON_Delete(j);
    return ok;
}

/* The number after "key=" in the simulator's summary line, or -1. */
static long summary_count(const char *out, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(out, k);
    return p != NULL ? strtol(p + strlen(k), NULL, 10) : -1;
}

/* Checks that canaryd holds the name, location and kind of each of the n devices of the
 * fleet with this seed and prefix (built here as the simulator builds it). */
static void check_registered(struct daemon *d, uint64_t seed, unsigned n, const char *prefix)
{
    struct sim_fleet fleet;
    struct sim_fleet_config cfg = {.seed = seed, .n_devices = n, .prefix = prefix};
    char err[256];
    assert_int_equal(sim_fleet_init(&fleet, &cfg, err, sizeof err), 0);
    for (unsigned i = 0; i < n; i++) {
        const struct sim_device_info *info = sim_fleet_device(&fleet, i);
        char path[128];
        snprintf(path, sizeof path, "/api/v1/devices/%s", info->id);
        cJSON *j = NULL;
        assert_int_equal(http_get_json(d, path, &j), 200);
        assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, info->name);
        assert_string_equal(cJSON_GetObjectItem(j, "location")->valuestring, info->location);
        assert_string_equal(cJSON_GetObjectItem(j, "kind")->valuestring, info->kind);
        cJSON_Delete(j);
    }
    sim_fleet_free(&fleet);
}

static void register_names_every_device(void **state)
{
    struct fixture *fx = *state;
    struct broker *b = &fx->b;
    struct daemon d;
    daemon_on_broker(&d, b);
    assert_true(wait_until(mqtt_connected, &d, 10000));
    char out[1024];
    /* a client per device, QoS 1: queued after the PUBACK */
    pid_t pid = sim_start(b, "--devices", "7", "--rate", "2", "--duration", "3", "--register",
                          "--url", d.base_url, NULL);
    assert_int_equal(sim_wait(b, pid, 30000, 0), 0);
    slurp(b, "sim.out", out, sizeof out);
    assert_non_null(strstr(out, "simulate: transport=mqtt devices=7 sent=42 acked=42 failed=0 "));
    assert_int_equal(summary_count(out, "registered"), 7);
    assert_int_equal(summary_count(out, "register_failed"), 0);
    assert_true(summary_count(out, "register_404") >= 0);
    check_registered(&d, 1, 7, "sim");
    /* shared clients at QoS 0: queued once the first reading is written */
    pid = sim_start(b, "--devices", "9", "--rate", "2", "--duration", "2", "--qos", "0",
                    "--mqtt-connections", "2", "--seed", "5", "--prefix", "q0", "--register",
                    "--url", d.base_url, NULL);
    assert_int_equal(sim_wait(b, pid, 30000, 0), 0);
    slurp(b, "sim.out", out, sizeof out);
    assert_int_equal(summary_count(out, "registered"), 9);
    assert_int_equal(summary_count(out, "register_failed"), 0);
    check_registered(&d, 5, 9, "q0");
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
}

/* canaryd without MQTT never learns of the devices: every PATCH answers 404 and is retried
 * until the run's drain is over; the stop abandons them, counts them failed, and the run
 * still ends on time with exit status 0 (every reading reached the broker). */
static void register_404s_are_retried_until_the_end(void **state)
{
    struct fixture *fx = *state;
    struct broker *b = &fx->b;
    struct daemon d;
    daemon_init(&d, NULL);
    daemon_start(&d);
    int64_t t0 = now_ms();
    pid_t pid = sim_start(b, "--devices", "2", "--duration", "2", "--drain", "2", "--register",
                          "--url", d.base_url, NULL);
    assert_int_equal(sim_wait(b, pid, 20000, 0), 0);
    int64_t took_ms = now_ms() - t0;
    char out[1024], err[8192];
    slurp(b, "sim.out", out, sizeof out);
    slurp(b, "sim.err", err, sizeof err);
    assert_non_null(strstr(out, " failed=0 "));
    assert_int_equal(summary_count(out, "registered"), 0);
    assert_int_equal(summary_count(out, "register_failed"), 2);
    /* 250 ms, 500 ms, 1 s, ... apart: several tries each within the 2 s drain */
    assert_true(summary_count(out, "register_404") >= 4);
    assert_non_null(strstr(err, "2 still waiting at the end"));
    /* 2 s of run, 2 s of drain, the goodbye: not the 30 s of a give-up */
    assert_true(took_ms < 9000);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(&d, "/api/v1/devices/sim-0001", &j), 404);
    cJSON_Delete(j);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(readings_statuses_and_commands, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(kill_9_leaves_the_will, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(broker_restart_loses_nothing, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(register_names_every_device, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(register_404s_are_retried_until_the_end, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
