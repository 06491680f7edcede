/* transport_mqtt.c — signed readings over MQTT with libmosquitto; see transport_mqtt.h. */
#include "transport_mqtt.h"

#include <mosquitto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    (void)mosq;
    struct cdev_mqtt *m = arg;
    m->connack = rc;
    m->connected = rc == 0;
}

static void on_publish(struct mosquitto *mosq, void *arg, int mid)
{
    (void)mosq;
    struct cdev_mqtt *m = arg;
    m->acked_mid = mid;
}

static void on_disconnect(struct mosquitto *mosq, void *arg, int rc)
{
    (void)mosq;
    (void)rc;
    struct cdev_mqtt *m = arg;
    m->connected = false;
}

/* Runs the network loop until (*flag == want) == until_equal, or the time is up. */
static bool loop_until(struct cdev_mqtt *m, const int *flag, int want, bool until_equal,
                       long timeout_ms)
{
    long long end = mono_ms() + timeout_ms;
    while ((*flag == want) != until_equal) {
        if (mono_ms() >= end)
            return false;
        int rc = mosquitto_loop(m->mosq, 50, 1);
        if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
            return false;
    }
    return true;
}

/* Publishes at QoS 1 and waits for the PUBACK. */
static int publish(struct cdev_mqtt *m, const char *topic, const void *p, size_t len, bool retain,
                   long timeout_ms, char *err, size_t errlen)
{
    int mid = 0;
    int rc = mosquitto_publish(m->mosq, &mid, topic, (int)len, p, 1, retain);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "publish to %s: %s", topic, mosquitto_strerror(rc));
        return -1;
    }
    if (!loop_until(m, &m->acked_mid, mid, true, timeout_ms)) {
        snprintf(err, errlen, "publish to %s: no PUBACK within %ld ms", topic, timeout_ms);
        return -1;
    }
    return 0;
}

int cdev_mqtt_open(struct cdev_mqtt *m, const char *host, int port, const char *device,
                   const char *prefix, const char *username, const char *password,
                   const char *ca_file, long timeout_ms, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->connack = -1;
    m->acked_mid = -1;
    snprintf(m->up_topic, sizeof m->up_topic, "%s/%s/up", prefix, device);
    snprintf(m->status_topic, sizeof m->status_topic, "%s/%s/status", prefix, device);
    mosquitto_lib_init();
    struct mosquitto *mosq = mosquitto_new(device, true, m);
    if (mosq == NULL) {
        snprintf(err, errlen, "mosquitto_new failed");
        return -1;
    }
    m->mosq = mosq;
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_publish_callback_set(mosq, on_publish);
    mosquitto_disconnect_callback_set(mosq, on_disconnect);
    mosquitto_will_set(mosq, m->status_topic, 7, "offline", 1, true);
    if (username != NULL)
        mosquitto_username_pw_set(mosq, username, password);
    int rc;
    if (ca_file != NULL) {
        /* libmosquitto verifies the certificate and the host name once a CA is set. */
        rc = mosquitto_tls_set(mosq, ca_file, NULL, NULL, NULL, NULL);
        if (rc == MOSQ_ERR_SUCCESS)
            rc = mosquitto_tls_opts_set(mosq, 1, "tlsv1.2", NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            snprintf(err, errlen, "TLS with CA %s: %s", ca_file, mosquitto_strerror(rc));
            goto fail;
        }
    }
    rc = mosquitto_connect(mosq, host, port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "connect to %s:%d: %s", host, port, mosquitto_strerror(rc));
        goto fail;
    }
    /* Until CONNACK (connack leaves -1), then it must be 0 (accepted). */
    if (!loop_until(m, &m->connack, -1, false, timeout_ms) || m->connack != 0) {
        snprintf(err, errlen, "connect to %s:%d: %s", host, port,
                 m->connack > 0 ? mosquitto_connack_string(m->connack) : "no answer");
        goto fail;
    }
    if (publish(m, m->status_topic, "online", 6, true, timeout_ms, err, errlen) != 0)
        goto fail;
    return 0;
fail:
    mosquitto_destroy(mosq);
    m->mosq = NULL;
    mosquitto_lib_cleanup();
    return -1;
}

int cdev_mqtt_send(struct cdev_mqtt *m, const char *token, size_t len, long timeout_ms, char *err,
                   size_t errlen)
{
    return publish(m, m->up_topic, token, len, false, timeout_ms, err, errlen);
}

void cdev_mqtt_close(struct cdev_mqtt *m)
{
    if (m->mosq == NULL)
        return;
    char err[128];
    if (m->connected)
        publish(m, m->status_topic, "sleeping", 8, true, 2000, err, sizeof err);
    mosquitto_disconnect(m->mosq);
    mosquitto_loop(m->mosq, 50, 1);
    mosquitto_destroy(m->mosq);
    m->mosq = NULL;
    mosquitto_lib_cleanup();
}
