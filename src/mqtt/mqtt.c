/* mqtt.c — the MQTT client's life cycle and its connection thread.
 *
 * libmosquitto runs in "threaded" mode (mosquitto_threaded_set) on a thread of our own that
 * calls mosquitto_loop(): in that mode a QoS 1 PUBACK is queued while on_message runs and
 * written after it returns (measured, ../shared/FACTS.md), so a message is acknowledged only
 * once the callback has put it in the journal. Publishing from other threads (commands,
 * Home Assistant) is safe in that mode.
 *
 * Reconnection is ours, not libmosquitto's: after a lost or refused connection the thread
 * waits min(reconnect_max, reconnect_min * 2^failures), half of it fixed and half random
 * (so a fleet of canaryd restarted together does not reconnect in lock-step), then connects
 * again; the session is persistent (clean start off, and with MQTT 5 a session expiry), so
 * the broker keeps what arrived meanwhile, and subscriptions are renewed on every connect.
 * Each state change is logged once. */
#include "mqtt/mqtt_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOOP_TIMEOUT_MS 100

struct link_entry {
    enum device_link link;
    int64_t since_ms;
};

const char *mqtt_state_name(enum mqtt_state s)
{
    switch (s) {
    case MQTT_DISABLED:
        return "disabled";
    case MQTT_CONNECTING:
        return "connecting";
    case MQTT_CONNECTED:
        return "connected";
    case MQTT_RECONNECTING:
        return "reconnecting";
    case MQTT_STOPPED:
        return "stopped";
    }
    return "?";
}

const char *device_link_name(enum device_link l)
{
    switch (l) {
    case LINK_ONLINE:
        return "online";
    case LINK_OFFLINE:
        return "offline";
    case LINK_SLEEPING:
        return "sleeping";
    default:
        return "unknown";
    }
}

static void set_state(struct mqtt *m, enum mqtt_state s, const char *error)
{
    pthread_mutex_lock(&m->lock);
    bool changed = m->state != s;
    m->state = s;
    if (changed)
        m->since_ms = clock_wall_ms();
    if (error != NULL)
        snprintf(m->last_error, sizeof m->last_error, "%s", error);
    pthread_mutex_unlock(&m->lock);
    atomic_store(&m->connected, s == MQTT_CONNECTED);
}

int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                 bool retain)
{
    if (m->mosq == NULL || !atomic_load(&m->connected))
        return CANARY_EBUSY;
    int rc = mosquitto_publish(m->mosq, NULL, topic, (int)len, payload, qos, retain);
    if (rc != MOSQ_ERR_SUCCESS)
        return CANARY_EBUSY;
    atomic_fetch_add(&m->published, 1);
    return CANARY_OK;
}

void mqtt_set_link(struct mqtt *m, const char *device, enum device_link link, int64_t now_ms)
{
    pthread_mutex_lock(&m->lock);
    struct link_entry *e = strmap_get(&m->links, device);
    if (e == NULL && (e = calloc(1, sizeof *e)) != NULL && strmap_put(&m->links, device, e) != 0) {
        free(e);
        e = NULL;
    }
    if (e != NULL && e->link != link) {
        e->link = link;
        e->since_ms = now_ms;
    }
    pthread_mutex_unlock(&m->lock);
}

enum device_link mqtt_device_link(struct mqtt *m, const char *device, int64_t *since_ms)
{
    if (m == NULL || !m->enabled)
        return LINK_UNKNOWN;
    pthread_mutex_lock(&m->lock);
    struct link_entry *e = strmap_get(&m->links, device);
    enum device_link l = e != NULL ? e->link : LINK_UNKNOWN;
    if (since_ms != NULL)
        *since_ms = e != NULL ? e->since_ms : 0;
    pthread_mutex_unlock(&m->lock);
    return l;
}

/* ---- callbacks (on the connection thread) ---------------------------------------------- */

static void subscribe_all(struct mqtt *m)
{
    char up[128], status[128], ack[128], ha[128];
    const char *pfx = m->cfg.mqtt.topic_prefix;
    snprintf(up, sizeof up, "%s/+/up", pfx);
    snprintf(status, sizeof status, "%s/+/status", pfx);
    snprintf(ack, sizeof ack, "%s/+/cmd/ack", pfx);
    snprintf(ha, sizeof ha, "%s/status", m->cfg.mqtt.ha_prefix);
    int rc = mosquitto_subscribe(m->mosq, NULL, up, (int)m->cfg.mqtt.qos);
    if (rc == 0)
        rc = mosquitto_subscribe(m->mosq, NULL, status, 1);
    if (rc == 0)
        rc = mosquitto_subscribe(m->mosq, NULL, ack, 1);
    if (rc == 0 && m->cfg.mqtt.ha_discovery)
        rc = mosquitto_subscribe(m->mosq, NULL, ha, 1);
    if (rc != 0)
        log_warn("mqtt.subscribe_failed", "error=\"%s\"", mosquitto_strerror(rc));
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    struct mqtt *m = obj;
    if (rc != 0) {
        char why[160];
        snprintf(why, sizeof why, "broker refused the connection: %s",
                 m->cfg.mqtt.protocol[0] == '5' ? mosquitto_reason_string(rc)
                                                : mosquitto_connack_string(rc));
        atomic_fetch_add(&m->connect_failures, 1);
        log_warn("mqtt.refused", "host=%s port=%u reason=\"%s\"", m->cfg.mqtt.host,
                 m->cfg.mqtt.port, why);
        set_state(m, MQTT_RECONNECTING, why);
        atomic_store(&m->refused, true);
        return;
    }
    atomic_fetch_add(&m->connects, 1);
    atomic_store(&m->connected_wall_ms, clock_wall_ms());
    set_state(m, MQTT_CONNECTED, NULL);
    subscribe_all(m);
    log_info("mqtt.connected", "host=%s port=%u client_id=%s session=%s protocol=%s",
             m->cfg.mqtt.host, m->cfg.mqtt.port, m->cfg.mqtt.client_id,
             (flags & 1) ? "resumed" : "new", m->cfg.mqtt.protocol);
    ha_on_connect(m);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    ingest_on_message(obj, msg->topic, msg->payload, (size_t)msg->payloadlen, msg->qos);
}

/* ---- the connection thread ----------------------------------------------------------- */

/* Waits ms or until stop. Returns true when stopping. */
static bool wait_or_stop(struct mqtt *m, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->lock);
    while (!m->stop && pthread_cond_timedwait(&m->wake, &m->lock, &ts) == 0) {
    }
    bool stop = m->stop;
    pthread_mutex_unlock(&m->lock);
    return stop;
}

static bool stopping(struct mqtt *m)
{
    pthread_mutex_lock(&m->lock);
    bool s = m->stop;
    pthread_mutex_unlock(&m->lock);
    return s;
}

static int connect_once(struct mqtt *m)
{
    mosquitto_property *props = NULL;
    if (m->cfg.mqtt.protocol[0] == '5')
        mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                     m->cfg.mqtt.session_expiry_s);
    int rc = mosquitto_connect_bind_v5(m->mosq, m->cfg.mqtt.host, (int)m->cfg.mqtt.port,
                                       (int)m->cfg.mqtt.keepalive_s, NULL, props);
    mosquitto_property_free_all(&props);
    return rc;
}

static void *conn_main(void *arg)
{
    struct mqtt *m = arg;
    int64_t backoff = m->cfg.mqtt.reconnect_min_ms;
    unsigned seed = (unsigned)clock_mono_ns();
    bool logged_down = false;
    while (!stopping(m)) {
        atomic_store(&m->refused, false);
        int rc = connect_once(m);
        if (rc == MOSQ_ERR_SUCCESS) {
            /* Run until the connection ends; the CONNACK arrives in the first loops. */
            while (!stopping(m)) {
                rc = mosquitto_loop(m->mosq, LOOP_TIMEOUT_MS, 1);
                if (rc != MOSQ_ERR_SUCCESS)
                    break;
                if (atomic_load(&m->connected)) {
                    backoff = m->cfg.mqtt.reconnect_min_ms;
                    logged_down = false;
                }
                if (atomic_load(&m->refused))
                    break;
            }
            if (stopping(m))
                break;
        }
        bool was_connected = atomic_load(&m->connected);
        char why[160];
        snprintf(why, sizeof why, "%s",
                 rc == MOSQ_ERR_ERRNO ? "connection failed or lost" : mosquitto_strerror(rc));
        pthread_mutex_lock(&m->lock);
        if (atomic_load(&m->refused))
            snprintf(why, sizeof why, "%s", m->last_error); /* the broker's refusal */
        else if (rc == MOSQ_ERR_TLS && m->tls_error[0] != '\0')
            snprintf(why, sizeof why,
                     "TLS: %.60s (is the broker's certificate from mqtt.tls_ca, for mqtt.host?)",
                     m->tls_error);
        m->tls_error[0] = '\0';
        pthread_mutex_unlock(&m->lock);
        /* A refusal was counted by on_connect; a failed TCP connect is counted here. */
        if (!was_connected && rc != MOSQ_ERR_SUCCESS)
            atomic_fetch_add(&m->connect_failures, 1);
        if (was_connected)
            log_warn("mqtt.disconnected", "host=%s port=%u reason=\"%s\" action=reconnect",
                     m->cfg.mqtt.host, m->cfg.mqtt.port, why);
        else if (!logged_down)
            log_warn("mqtt.connect_failed",
                     "host=%s port=%u reason=\"%s\" action=\"retry with backoff up to %u ms\"",
                     m->cfg.mqtt.host, m->cfg.mqtt.port, why, m->cfg.mqtt.reconnect_max_ms);
        logged_down = true;
        set_state(m, MQTT_RECONNECTING, why);
        mosquitto_disconnect(m->mosq);
        int64_t delay = backoff / 2 + (int64_t)(rand_r(&seed) % (unsigned)(backoff / 2 + 1));
        if (wait_or_stop(m, delay))
            break;
        backoff = backoff * 2 > (int64_t)m->cfg.mqtt.reconnect_max_ms
                      ? (int64_t)m->cfg.mqtt.reconnect_max_ms
                      : backoff * 2;
    }
    if (atomic_load(&m->connected)) {
        mosquitto_disconnect(m->mosq);
        for (int i = 0; i < 10 && mosquitto_loop(m->mosq, 10, 1) == MOSQ_ERR_SUCCESS; i++) {
        }
    }
    set_state(m, MQTT_STOPPED, NULL);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------ */

static void commit_listener(void *arg, const struct commit_view *c)
{
    struct mqtt *m = arg;
    commands_on_commit(m, c);
    if (m->cfg.mqtt.ha_discovery)
        ha_on_commit(m, c);
}

/* libmosquitto says why a TLS handshake failed (OpenSSL's reason: "certificate verify
 * failed", a wrong host name...) only through its log callback; keep the first such line of
 * an attempt for the connect_failed log line and /api/v1/stats. Called on the connection
 * thread. */
static void on_mosq_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
    (void)mosq;
    struct mqtt *m = obj;
    if (level != MOSQ_LOG_ERR || strncmp(str, "OpenSSL Error", 13) != 0)
        return;
    const char *reason = strstr(str, "::");
    pthread_mutex_lock(&m->lock);
    if (m->tls_error[0] == '\0')
        snprintf(m->tls_error, sizeof m->tls_error, "%s", reason != NULL ? reason + 2 : str);
    pthread_mutex_unlock(&m->lock);
}

static int setup_mosq(struct mqtt *m, char *err, size_t errlen)
{
    mosquitto_lib_init();
    m->mosq = mosquitto_new(m->cfg.mqtt.client_id, false, m);
    if (m->mosq == NULL) {
        snprintf(err, errlen, "mqtt: cannot create the client");
        return CANARY_ENOMEM;
    }
    bool v5 = m->cfg.mqtt.protocol[0] == '5';
    mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    if (v5)
        mosquitto_int_option(m->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, (int)m->cfg.mqtt.receive_maximum);
    mosquitto_threaded_set(m->mosq, true);
    mosquitto_connect_v5_callback_set(m->mosq, on_connect);
    mosquitto_log_callback_set(m->mosq, on_mosq_log);
    mosquitto_message_v5_callback_set(m->mosq, on_message);
    int rc = MOSQ_ERR_SUCCESS;
    if (m->cfg.mqtt.username[0] != '\0')
        rc = mosquitto_username_pw_set(m->mosq, m->cfg.mqtt.username,
                                       m->cfg.mqtt.password[0] ? m->cfg.mqtt.password : NULL);
    if (rc == MOSQ_ERR_SUCCESS && m->cfg.mqtt.tls_ca[0] != '\0')
        rc = mosquitto_tls_set(m->mosq, m->cfg.mqtt.tls_ca, NULL,
                               m->cfg.mqtt.tls_cert[0] ? m->cfg.mqtt.tls_cert : NULL,
                               m->cfg.mqtt.tls_key[0] ? m->cfg.mqtt.tls_key : NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "mqtt: %s (mqtt.username / mqtt.tls_*)", mosquitto_strerror(rc));
        return CANARY_EINVAL;
    }
    return CANARY_OK;
}

int mqtt_start(struct mqtt **out, const struct canary_config *cfg, struct pipeline *p, char *err,
               size_t errlen)
{
    struct mqtt *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    m->cfg = *cfg;
    m->cfg.overrides = NULL;
    m->cfg.n_overrides = 0;
    m->pipeline = p;
    m->enabled = cfg->mqtt.enabled;
    m->state = m->enabled ? MQTT_CONNECTING : MQTT_DISABLED;
    m->since_ms = clock_wall_ms();
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_mutex_init(&m->q_lock, NULL);
    pthread_cond_init(&m->q_wake, NULL);
    pthread_cond_init(&m->q_space, NULL);
    pthread_mutex_init(&m->cmd_lock, NULL);
    pthread_mutex_init(&m->ha_lock, NULL);
    strmap_init(&m->links);
    strmap_init(&m->ha);
    *out = m;
    if (!m->enabled)
        return CANARY_OK;
    if (m->cfg.mqtt.journal[0] == '\0')
        snprintf(m->cfg.mqtt.journal, sizeof m->cfg.mqtt.journal, "%.1000s.mqtt", cfg->store.path);
    int rc = action_rules_load(&m->cfg, &m->actions, err, errlen);
    if (rc == 0)
        rc = journal_open(&m->journal, m->cfg.mqtt.journal, 64u << 20, err, errlen);
    if (rc == 0)
        rc = setup_mosq(m, err, errlen);
    if (rc == 0)
        rc = commands_init(m, err, errlen);
    if (rc == 0) {
        ha_init(m);
        rc = ingest_start(m, err, errlen);
    }
    if (rc == 0) {
        pipeline_set_listener(p, commit_listener, m);
        if (pthread_create(&m->conn_thread, NULL, conn_main, m) != 0) {
            snprintf(err, errlen, "mqtt: cannot start the connection thread");
            rc = CANARY_ENOMEM;
        } else {
            m->conn_started = true;
        }
    }
    if (rc != 0) {
        mqtt_stop(m);
        mqtt_free(m);
        *out = NULL;
        return rc;
    }
    log_info("mqtt.started", "broker=%s:%u client_id=%s qos=%u journal=%s", cfg->mqtt.host,
             cfg->mqtt.port, cfg->mqtt.client_id, cfg->mqtt.qos, m->cfg.mqtt.journal);
    return CANARY_OK;
}

void mqtt_stop(struct mqtt *m)
{
    if (m == NULL || !m->enabled)
        return;
    pthread_mutex_lock(&m->lock);
    bool already = m->stop;
    m->stop = true;
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->lock);
    if (already)
        return;
    if (m->conn_started)
        pthread_join(m->conn_thread, NULL);
    m->conn_started = false;
    if (m->pipeline != NULL)
        pipeline_set_listener(m->pipeline, NULL, NULL);
    ingest_stop(m);
    set_state(m, MQTT_STOPPED, NULL);
}

static void free_link(void *arg, const char *key, void *value)
{
    (void)arg;
    (void)key;
    free(value);
}

void mqtt_free(struct mqtt *m)
{
    if (m == NULL)
        return;
    mqtt_stop(m);
    if (m->mosq != NULL) {
        mosquitto_destroy(m->mosq);
        mosquitto_lib_cleanup();
    }
    commands_free(m);
    ha_free(m);
    journal_close(m->journal);
    strmap_each(&m->links, free_link, NULL);
    strmap_free(&m->links);
    free(m->fifo);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->q_wake);
    pthread_cond_destroy(&m->q_space);
    pthread_mutex_destroy(&m->q_lock);
    pthread_mutex_destroy(&m->cmd_lock);
    pthread_mutex_destroy(&m->ha_lock);
    free(m);
}

void mqtt_get_status(struct mqtt *m, struct mqtt_status *out)
{
    memset(out, 0, sizeof *out);
    if (m == NULL)
        return; /* MQTT_DISABLED */
    pthread_mutex_lock(&m->lock);
    out->state = m->state;
    out->since_ms = m->since_ms;
    snprintf(out->last_error, sizeof out->last_error, "%s", m->last_error);
    pthread_mutex_unlock(&m->lock);
    if (!m->enabled)
        return;
    out->connects = atomic_load(&m->connects);
    out->connect_failures = atomic_load(&m->connect_failures);
    out->messages = atomic_load(&m->messages);
    out->readings_messages = atomic_load(&m->readings_messages);
    out->status_messages = atomic_load(&m->status_messages);
    out->acks = atomic_load(&m->acks);
    out->rejected = atomic_load(&m->rejected);
    out->mismatched = atomic_load(&m->mismatched);
    out->events_suppressed = atomic_load(&m->suppressed);
    out->commands_sent = atomic_load(&m->commands_sent);
    out->published = atomic_load(&m->published);
    out->journal_replayed = atomic_load(&m->replayed);
    pthread_mutex_lock(&m->q_lock);
    out->queued = m->q_count;
    pthread_mutex_unlock(&m->q_lock);
    struct journal_stats js;
    if (m->journal != NULL) {
        journal_get_stats(m->journal, &js);
        out->journal_unreleased = js.unreleased;
    }
    pthread_mutex_lock(&m->cmd_lock);
    for (size_t i = 0; i < m->n_waits; i++)
        out->commands_pending += m->waits[i].used;
    pthread_mutex_unlock(&m->cmd_lock);
}
