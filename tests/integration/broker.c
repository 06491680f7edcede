/* broker.c — a private Mosquitto and a test client; see broker.h. */
#include "broker.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

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

static bool accepts(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void broker_start(struct broker *b)
{
    if (b->dir[0] == '\0') {
        snprintf(b->dir, sizeof b->dir, "/tmp/canary-broker-XXXXXX");
        assert_non_null(mkdtemp(b->dir));
        b->port = free_port();
        snprintf(b->port_str, sizeof b->port_str, "%u", b->port);
        char conf[128];
        snprintf(conf, sizeof conf, "%s/mosquitto.conf", b->dir);
        FILE *f = fopen(conf, "w");
        assert_non_null(f);
        struct passwd *pw = getpwuid(getuid());
        /* As root, mosquitto would switch to user "mosquitto", who cannot write here. */
        fprintf(f,
                "listener %u 127.0.0.1\nallow_anonymous true\npersistence true\n"
                "persistence_location %s/\nautosave_interval 1\nmax_queued_messages 1000000\n"
                "max_inflight_messages 100\nlog_dest file %s/mosquitto.log\nuser %s\n",
                b->port, b->dir, b->dir, pw != NULL ? pw->pw_name : "root");
        fclose(f);
    }
    char conf[128];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", b->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_dies_with_test();
        execlp("mosquitto", "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    b->pid = pid;
    for (int i = 0; i < 250; i++) {
        if (accepts(b->port))
            return;
        sleep_ms(20);
    }
    fail_msg("mosquitto did not start on port %u (see %s/mosquitto.log)", b->port, b->dir);
}

void broker_stop(struct broker *b)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGTERM);
    int st;
    waitpid(b->pid, &st, 0);
    b->pid = 0;
}

void broker_cleanup(struct broker *b)
{
    broker_stop(b);
    if (b->dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", b->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "broker: could not remove %s\n", b->dir);
    }
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    struct mq_client *c = obj;
    pthread_mutex_lock(&c->lock);
    c->connected = rc == 0;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    (void)rc;
    struct mq_client *c = obj;
    pthread_mutex_lock(&c->lock);
    c->connected = false;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    (void)mid;
    struct mq_client *c = obj;
    pthread_mutex_lock(&c->lock);
    c->acked++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    struct mq_client *c = obj;
    pthread_mutex_lock(&c->lock);
    if (c->n_messages < MQ_MAX_MESSAGES) {
        struct mq_message *e = &c->messages[c->n_messages++];
        snprintf(e->topic, sizeof e->topic, "%s", msg->topic);
        int len = msg->payloadlen < (int)sizeof e->payload - 1 ? msg->payloadlen
                                                               : (int)sizeof e->payload - 1;
        memcpy(e->payload, msg->payload, (size_t)len);
        e->payload[len] = '\0';
        e->len = msg->payloadlen;
        e->retained = msg->retain;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
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

void mq_connect(struct mq_client *c, const struct broker *b, const char *client_id,
                const char *will_topic, const char *will_payload, const char *sub)
{
    memset(c, 0, sizeof c[0]);
    mosquitto_lib_init();
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->messages = calloc(MQ_MAX_MESSAGES, sizeof *c->messages);
    c->mosq = mosquitto_new(client_id, true, c);
    assert_non_null(c->mosq);
    mosquitto_connect_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
    /* A lost connection is not retried (the tests connect anew when they need to): the loop
     * thread then waits in an interruptible sleep, and mq_close() can end it without
     * cancelling it in the middle of a reconnect. */
    mosquitto_reconnect_delay_set(c->mosq, 3600, 3600, false);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    mosquitto_message_callback_set(c->mosq, on_message);
    if (will_topic != NULL)
        assert_int_equal(mosquitto_will_set(c->mosq, will_topic, (int)strlen(will_payload),
                                            will_payload, 1, true),
                         0);
    assert_int_equal(mosquitto_connect(c->mosq, "127.0.0.1", (int)b->port, 5), 0);
    assert_int_equal(mosquitto_loop_start(c->mosq), 0);
    struct timespec ts;
    deadline(&ts, 5000);
    pthread_mutex_lock(&c->lock);
    while (!c->connected && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0) {
    }
    bool ok = c->connected;
    pthread_mutex_unlock(&c->lock);
    assert_true(ok);
    if (sub != NULL) {
        assert_int_equal(mosquitto_subscribe(c->mosq, NULL, sub, 1), 0);
        sleep_ms(100); /* let the SUBACK arrive before the test publishes */
    }
}

bool mq_publish(struct mq_client *c, const char *topic, const char *payload, int qos, bool retain)
{
    pthread_mutex_lock(&c->lock);
    int before = c->acked;
    pthread_mutex_unlock(&c->lock);
    if (mosquitto_publish(c->mosq, NULL, topic, (int)strlen(payload), payload, qos, retain) != 0)
        return false;
    if (qos == 0)
        return true;
    struct timespec ts;
    deadline(&ts, 10000);
    pthread_mutex_lock(&c->lock);
    while (c->acked == before && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0) {
    }
    bool ok = c->acked > before;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

int mq_wait_message(struct mq_client *c, const char *topic, const char *needle, int timeout_ms)
{
    struct timespec ts;
    deadline(&ts, timeout_ms);
    pthread_mutex_lock(&c->lock);
    int found = -1;
    for (;;) {
        for (size_t i = 0; i < c->n_messages && found < 0; i++) {
            if (strcmp(c->messages[i].topic, topic) == 0 &&
                (needle == NULL || strstr(c->messages[i].payload, needle) != NULL))
                found = (int)i;
        }
        if (found >= 0 || pthread_cond_timedwait(&c->cond, &c->lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

void mq_close(struct mq_client *c, bool disconnect)
{
    if (!disconnect) {
        /* Drop the TCP connection without DISCONNECT: the broker publishes the will. Wait
         * until the loop thread has seen the connection end, so the DISCONNECT below cannot
         * reach the broker on it. */
        int fd = mosquitto_socket(c->mosq);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
        struct timespec ts;
        deadline(&ts, 5000);
        pthread_mutex_lock(&c->lock);
        while (c->connected && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0) {
        }
        pthread_mutex_unlock(&c->lock);
    }
    /* Never mosquitto_loop_stop(..., true): cancelling the thread inside libmosquitto's
     * reconnect leaks its getaddrinfo() result (LeakSanitizer saw it in CI). Disconnecting
     * marks the client as leaving, and the loop thread returns by itself. */
    mosquitto_disconnect(c->mosq);
    mosquitto_loop_stop(c->mosq, false);
    mosquitto_destroy(c->mosq);
    free(c->messages);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
}
