/* test_broker_config.c — `canary broker-config` against a real Mosquitto: the command (this
 * build's) writes the configuration, password file and ACL for two devices and canaryd
 * with a non-default topic prefix from canaryd's configuration file; Mosquitto is started
 * with exactly that configuration (plus where to log, and not switching user), and
 * libmosquitto clients logged in with the generated passwords check that:
 *   - device A's reading on its own up topic reaches canaryd's subscription;
 *   - A's message on B's up topic is not delivered (a later one of A's own is);
 *   - A cannot read B's commands (a subscription to them, or to everything, gets nothing),
 *     while canaryd can command A and B and each receives its own;
 *   - a wrong password, an unknown user and an anonymous client are refused;
 *   - the secret files are mode 0600, and a re-run keeps the passwords;
 *   - with --from-api, the devices are canaryd's (a real canaryd, paginated listing), and
 *     an id that cannot be a broker user (':') is refused with nothing written.
 * The hash format and the ACL text are unit-tested in tests/unit/test_broker_config.c. */
#include "broker.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define PREFIX "plant"

struct fixture {
    struct broker b;
    char pw_a[64], pw_b[64], pw_canaryd[64];
};

/* A client that logs in; connack is the broker's answer (-1: none within 5 s). */
struct client {
    struct mosquitto *mosq;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int connack;
    int acked;
    char topics[64][128];
    char payloads[64][128];
    int n;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    struct client *c = obj;
    pthread_mutex_lock(&c->lock);
    c->connack = rc;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    (void)mid;
    struct client *c = obj;
    pthread_mutex_lock(&c->lock);
    c->acked++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    struct client *c = obj;
    pthread_mutex_lock(&c->lock);
    if (c->n < 64) {
        snprintf(c->topics[c->n], sizeof c->topics[0], "%s", msg->topic);
        snprintf(c->payloads[c->n], sizeof c->payloads[0], "%.*s", msg->payloadlen,
                 (const char *)msg->payload);
        c->n++;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Connects as user (NULL: anonymous) and returns the CONNACK code (0 accepted). */
static int client_connect(struct client *c, const struct broker *b, const char *id,
                          const char *user, const char *password)
{
    memset(c, 0, sizeof *c);
    c->connack = -1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    mosquitto_lib_init();
    c->mosq = mosquitto_new(id, true, c);
    assert_non_null(c->mosq);
    mosquitto_connect_callback_set(c->mosq, on_connect);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    mosquitto_message_callback_set(c->mosq, on_message);
    if (user != NULL)
        assert_int_equal(mosquitto_username_pw_set(c->mosq, user, password), 0);
    assert_int_equal(mosquitto_connect(c->mosq, "127.0.0.1", (int)b->port, 5), 0);
    assert_int_equal(mosquitto_loop_start(c->mosq), 0);
    struct timespec ts;
    deadline(&ts, 5000);
    pthread_mutex_lock(&c->lock);
    while (c->connack < 0 && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0) {
    }
    int rc = c->connack;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static void client_close(struct client *c)
{
    mosquitto_disconnect(c->mosq);
    mosquitto_loop_stop(c->mosq, true);
    mosquitto_destroy(c->mosq);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
}

static void subscribe(struct client *c, const char *topic)
{
    assert_int_equal(mosquitto_subscribe(c->mosq, NULL, topic, 1), 0);
    sleep_ms(150); /* let the SUBACK arrive before anyone publishes */
}

/* Publishes at QoS 1 and waits for the PUBACK (the broker acknowledges even what its ACL
 * drops: MQTT 3.1.1 has no way to say no). */
static void publish(struct client *c, const char *topic, const char *payload)
{
    pthread_mutex_lock(&c->lock);
    int before = c->acked;
    pthread_mutex_unlock(&c->lock);
    assert_int_equal(
        mosquitto_publish(c->mosq, NULL, topic, (int)strlen(payload), payload, 1, false), 0);
    struct timespec ts;
    deadline(&ts, 5000);
    pthread_mutex_lock(&c->lock);
    while (c->acked == before && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0) {
    }
    bool ok = c->acked > before;
    pthread_mutex_unlock(&c->lock);
    assert_true(ok);
}

/* Waits up to timeout_ms for payload on topic; true when it came. */
static bool received(struct client *c, const char *topic, const char *payload, int timeout_ms)
{
    struct timespec ts;
    deadline(&ts, timeout_ms);
    pthread_mutex_lock(&c->lock);
    bool found = false;
    for (;;) {
        for (int i = 0; i < c->n && !found; i++)
            found = strcmp(c->topics[i], topic) == 0 && strcmp(c->payloads[i], payload) == 0;
        if (found || pthread_cond_timedwait(&c->cond, &c->lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

static int count(struct client *c)
{
    pthread_mutex_lock(&c->lock);
    int n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Whether every message c received was on topic. */
static bool all_on(struct client *c, const char *topic)
{
    pthread_mutex_lock(&c->lock);
    bool all = c->n > 0;
    for (int i = 0; i < c->n; i++)
        all = all && strcmp(c->topics[i], topic) == 0;
    pthread_mutex_unlock(&c->lock);
    return all;
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

/* Runs `canary broker-config` for dev-a and dev-b into the broker's directory. */
static int run_broker_config(const struct fixture *f)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "env -u CANARY_CONFIG %s broker-config --out-dir %s --config %s/canary.conf "
             "--device dev-a --device dev-b --port %u --bind 127.0.0.1 >%s/out.txt 2>&1",
             CANARY_CLI_PATH, f->b.dir, f->b.dir, f->b.port, f->b.dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void read_password(const struct fixture *f, const char *user, char *out, size_t len)
{
    char path[128], line[256], name[64], pw[64];
    snprintf(path, sizeof path, "%s/credentials", f->b.dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    out[0] = '\0';
    while (fgets(line, sizeof line, fp) != NULL) {
        if (line[0] != '#' && sscanf(line, "%63s %63s", name, pw) == 2 && !strcmp(name, user))
            snprintf(out, len, "%s", pw);
    }
    fclose(fp);
    assert_int_equal(strlen(out), 43);
}

static mode_t file_mode(const struct fixture *f, const char *name)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", f->b.dir, name);
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

static int start(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->b.dir, sizeof f->b.dir, "/tmp/canary-acl-XXXXXX");
    assert_non_null(mkdtemp(f->b.dir));
    f->b.port = free_port();
    snprintf(f->b.port_str, sizeof f->b.port_str, "%u", f->b.port);

    char path[128];
    snprintf(path, sizeof path, "%s/canary.conf", f->b.dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "[mqtt]\ntopic_prefix = " PREFIX "\n");
    fclose(fp);
    assert_int_equal(run_broker_config(f), 0);

    /* The generated configuration as is, plus a log file and, as root, no switch to user
     * "mosquitto" (who could not read this directory). */
    snprintf(path, sizeof path, "%s/mosquitto.conf", f->b.dir);
    fp = fopen(path, "a");
    assert_non_null(fp);
    struct passwd *pw = getpwuid(getuid());
    fprintf(fp, "\nlog_dest file %s/mosquitto.log\nuser %s\n", f->b.dir,
            pw != NULL ? pw->pw_name : "root");
    fclose(fp);
    broker_start(&f->b); /* b.dir is set: runs <dir>/mosquitto.conf on b.port */

    read_password(f, "dev-a", f->pw_a, sizeof f->pw_a);
    read_password(f, "dev-b", f->pw_b, sizeof f->pw_b);
    read_password(f, "canaryd", f->pw_canaryd, sizeof f->pw_canaryd);
    *state = f;
    return 0;
}

static int stop(void **state)
{
    struct fixture *f = *state;
    broker_cleanup(&f->b);
    free(f);
    return 0;
}

static void test_files(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(file_mode(f, "passwd"), 0600);
    assert_int_equal(file_mode(f, "credentials"), 0600);
    assert_int_equal(file_mode(f, "canaryd.password"), 0600);
    /* The passwords are in no file but the credentials (and canaryd's own file), and not in
     * what the command printed. */
    const char *names[] = {"passwd", "acl", "mosquitto.conf", "out.txt"};
    for (size_t i = 0; i < 4; i++) {
        char path[128], buf[8192];
        snprintf(path, sizeof path, "%s/%s", f->b.dir, names[i]);
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        size_t n = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        assert_null(strstr(buf, f->pw_a));
        assert_null(strstr(buf, f->pw_b));
        assert_null(strstr(buf, f->pw_canaryd));
    }
}

static void test_device_publishes_only_its_own(void **state)
{
    struct fixture *f = *state;
    struct client canaryd, a;
    assert_int_equal(client_connect(&canaryd, &f->b, "canaryd", "canaryd", f->pw_canaryd), 0);
    subscribe(&canaryd, PREFIX "/#");
    assert_int_equal(client_connect(&a, &f->b, "dev-a", "dev-a", f->pw_a), 0);

    publish(&a, PREFIX "/dev-a/up", "{\"seq\":1}");
    assert_true(received(&canaryd, PREFIX "/dev-a/up", "{\"seq\":1}", 5000));
    publish(&a, PREFIX "/dev-a/status", "online");
    assert_true(received(&canaryd, PREFIX "/dev-a/status", "online", 5000));

    /* Forged: B's readings, B's status, a command. Then one of A's own: once that has
     * arrived, anything published before it would have too (one connection, in order). */
    publish(&a, PREFIX "/dev-b/up", "forged-up");
    publish(&a, PREFIX "/dev-b/status", "forged-status");
    publish(&a, PREFIX "/dev-b/cmd", "forged-cmd");
    publish(&a, PREFIX "/dev-a/cmd", "self-cmd");
    publish(&a, "elsewhere/x", "forged-elsewhere");
    publish(&a, PREFIX "/dev-a/up", "{\"seq\":2}");
    assert_true(received(&canaryd, PREFIX "/dev-a/up", "{\"seq\":2}", 5000));
    assert_false(received(&canaryd, PREFIX "/dev-b/up", "forged-up", 0));
    assert_false(received(&canaryd, PREFIX "/dev-b/status", "forged-status", 0));
    assert_false(received(&canaryd, PREFIX "/dev-b/cmd", "forged-cmd", 0));
    assert_false(received(&canaryd, PREFIX "/dev-a/cmd", "self-cmd", 0));
    assert_int_equal(count(&canaryd), 3);
    client_close(&a);
    client_close(&canaryd);
}

static void test_device_reads_only_its_own_commands(void **state)
{
    struct fixture *f = *state;
    struct client canaryd, a, b;
    assert_int_equal(client_connect(&canaryd, &f->b, "canaryd", "canaryd", f->pw_canaryd), 0);
    assert_int_equal(client_connect(&a, &f->b, "dev-a", "dev-a", f->pw_a), 0);
    assert_int_equal(client_connect(&b, &f->b, "dev-b", "dev-b", f->pw_b), 0);
    subscribe(&b, PREFIX "/dev-b/cmd");
    /* A tries B's commands, everything under the prefix, and everything; and its own. */
    subscribe(&a, PREFIX "/dev-b/cmd");
    subscribe(&a, PREFIX "/#");
    subscribe(&a, "#");
    subscribe(&a, PREFIX "/dev-a/cmd");

    publish(&canaryd, PREFIX "/dev-b/cmd", "{\"cmd\":\"for-b\"}");
    publish(&canaryd, PREFIX "/dev-a/cmd", "{\"cmd\":\"for-a\"}");
    assert_true(received(&b, PREFIX "/dev-b/cmd", "{\"cmd\":\"for-b\"}", 5000));
    assert_true(received(&a, PREFIX "/dev-a/cmd", "{\"cmd\":\"for-a\"}", 5000));
    /* for-b was published first: had A been given it, it would be there by now. */
    assert_false(received(&a, PREFIX "/dev-b/cmd", "{\"cmd\":\"for-b\"}", 200));
    assert_true(all_on(&a, PREFIX "/dev-a/cmd")); /* its wildcards bring nothing else */

    /* B's readings are not A's to read either. */
    publish(&b, PREFIX "/dev-b/up", "b-reading");
    publish(&canaryd, PREFIX "/dev-a/cmd", "{\"cmd\":\"again\"}");
    assert_true(received(&a, PREFIX "/dev-a/cmd", "{\"cmd\":\"again\"}", 5000));
    assert_false(received(&a, PREFIX "/dev-b/up", "b-reading", 200));
    client_close(&b);
    client_close(&a);
    client_close(&canaryd);
}

static void test_logins_refused(void **state)
{
    struct fixture *f = *state;
    struct client c;
    /* Mosquitto answers 5 (not authorised) to MQTT 3.1.1 clients for all of these. */
    assert_int_not_equal(client_connect(&c, &f->b, "wrong", "dev-a", f->pw_b), 0);
    client_close(&c);
    assert_int_not_equal(client_connect(&c, &f->b, "anon", NULL, NULL), 0);
    client_close(&c);
    assert_int_not_equal(client_connect(&c, &f->b, "nobody", "nobody", f->pw_a), 0);
    client_close(&c);
    assert_int_not_equal(client_connect(&c, &f->b, "empty", "dev-a", ""), 0);
    client_close(&c);
}

static void test_rerun_keeps_passwords(void **state)
{
    struct fixture *f = *state;
    char before[4096], after[4096], path[128];
    snprintf(path, sizeof path, "%s/credentials", f->b.dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    before[fread(before, 1, sizeof before - 1, fp)] = '\0';
    fclose(fp);
    assert_int_equal(run_broker_config(f), 0);
    fp = fopen(path, "r");
    assert_non_null(fp);
    after[fread(after, 1, sizeof after - 1, fp)] = '\0';
    fclose(fp);
    assert_string_equal(before, after);
    /* A hostile device id is refused and nothing is rewritten. */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s broker-config --out-dir %s --device 'x/#' --device ok >/dev/null 2>&1",
             CANARY_CLI_PATH, f->b.dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    fp = fopen(path, "r");
    assert_non_null(fp);
    after[fread(after, 1, sizeof after - 1, fp)] = '\0';
    fclose(fp);
    assert_string_equal(before, after);
}

static bool two_devices(void *arg)
{
    cJSON *j = NULL;
    bool ok = http_get_json(arg, "/api/v1/devices", &j) == 200 &&
              cJSON_GetArraySize(cJSON_GetObjectItem(j, "devices")) >= 2;
    cJSON_Delete(j);
    return ok;
}

static void test_devices_from_api(void **state)
{
    (void)state;
    struct daemon d;
    daemon_init(&d, NULL);
    daemon_start(&d);
    const char *r1 = "{\"device\":\"api-1\",\"seq\":1,\"values\":{\"gas_ppm\":400}}";
    const char *r2 = "{\"device\":\"api.2\",\"seq\":1,\"values\":{\"gas_ppm\":410}}";
    assert_int_equal(http_post_json(&d, "/api/v1/ingest", r1, NULL) / 100, 2);
    assert_int_equal(http_post_json(&d, "/api/v1/ingest", r2, NULL) / 100, 2);
    assert_true(wait_until(two_devices, &d, 10000));

    char out[128], cmd[1024], path[160];
    snprintf(out, sizeof out, "%s/broker", d.dir);
    assert_int_equal(mkdir(out, 0700), 0);
    snprintf(cmd, sizeof cmd,
             "env -u CANARY_CONFIG %s broker-config --out-dir %s --from-api %s --device extra "
             ">/dev/null 2>&1",
             CANARY_CLI_PATH, out, d.base_url);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(path, sizeof path, "%s/acl", out);
    char buf[8192];
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    buf[fread(buf, 1, sizeof buf - 1, fp)] = '\0';
    fclose(fp);
    assert_non_null(strstr(buf, "\nuser api-1\ntopic write canary/api-1/up\n"));
    assert_non_null(strstr(buf, "\nuser api.2\ntopic write canary/api.2/up\n"));
    assert_non_null(strstr(buf, "\nuser extra\n"));

    /* A device canary accepts but Mosquitto's password file cannot name: refused, and the
     * files stay as they were. */
    const char *r3 = "{\"device\":\"lab:3\",\"seq\":1,\"values\":{\"gas_ppm\":420}}";
    assert_int_equal(http_post_json(&d, "/api/v1/ingest", r3, NULL) / 100, 2);
    snprintf(cmd, sizeof cmd, "%s/lab:3", "/api/v1/devices");
    for (int i = 0; i < 500 && http_get_json(&d, cmd, NULL) != 200; i++)
        sleep_ms(20);
    snprintf(cmd, sizeof cmd,
             "env -u CANARY_CONFIG %s broker-config --out-dir %s --from-api %s "
             ">%s/err.txt 2>&1",
             CANARY_CLI_PATH, out, d.base_url, d.dir);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    char again[8192];
    fp = fopen(path, "r");
    assert_non_null(fp);
    again[fread(again, 1, sizeof again - 1, fp)] = '\0';
    fclose(fp);
    assert_string_equal(buf, again);
    snprintf(path, sizeof path, "%s/err.txt", d.dir);
    fp = fopen(path, "r");
    assert_non_null(fp);
    again[fread(again, 1, sizeof again - 1, fp)] = '\0';
    fclose(fp);
    assert_non_null(strstr(again, "lab:3"));

    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_device_publishes_only_its_own),
        cmocka_unit_test(test_device_reads_only_its_own_commands),
        cmocka_unit_test(test_logins_refused),
        cmocka_unit_test(test_rerun_keeps_passwords),
        cmocka_unit_test(test_devices_from_api),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
