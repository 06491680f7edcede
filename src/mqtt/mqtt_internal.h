/* mqtt_internal.h — what the files of src/mqtt/ share: the client object and the hand-offs
 * between its parts. Not for use outside src/mqtt/.
 *
 *   mqtt.c          life cycle, status, the connection thread (libmosquitto, backoff)
 *   mqtt_ingest.c   on_message routing, the journal hand-off, the flusher thread, events
 *   mqtt_commands.c commands out, their answers and timeouts, automatic actions
 *   mqtt_ha.c       Home Assistant discovery and device states */
#ifndef CANARY_MQTT_INTERNAL_H
#define CANARY_MQTT_INTERNAL_H

#include "core/rate_limit.h"
#include "core/strmap.h"
#include "decide/action.h"
#include "mqtt/journal.h"
#include "mqtt/mqtt.h"

#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>

/* A received message waiting for the flusher. */
struct pending_msg {
    struct pending_msg *next;
    uint64_t seqno; /* in the journal; 0 when it could not be journaled */
    int64_t recv_ms;
    bool from_journal; /* replayed from the journal at start, not received now */
    size_t topic_len, payload_len;
    char data[]; /* topic, NUL, payload, NUL */
};

/* A job handed to the pipeline, waiting for its commit to release the journal. */
struct inflight {
    uint64_t last_seqno;
    bool done;
};

/* A command waiting for its answer. */
struct command_wait {
    struct device_command cmd;
    bool used;
};

/* Per-device state for Home Assistant. */
struct ha_device {
    char id[READING_ID_BUF];
    char metrics[16][READING_METRIC_BUF];
    double values[16];
    unsigned n_metrics;
    unsigned announced; /* metrics whose discovery config was published */
    bool anomaly;
    int alert_severity; /* highest open alert severity, -1 = none */
    uint64_t open_alerts[8];
    int open_severity[8];
    unsigned n_open;
    bool dirty, rediscover;
    int64_t published_ms;
};

struct mqtt {
    struct canary_config cfg; /* copy (without the override list) */
    struct pipeline *pipeline;
    struct mosquitto *mosq;
    struct journal *journal;
    bool enabled;

    /* Connection (mqtt.c). */
    pthread_t conn_thread;
    bool conn_started;
    pthread_mutex_t lock; /* state, stop, wake-ups, the link map */
    pthread_cond_t wake;
    bool stop;
    enum mqtt_state state;
    int64_t since_ms;
    char last_error[160];
    char tls_error[160]; /* OpenSSL's reason for the last failed TLS handshake (on_mosq_log) */
    _Atomic bool connected;
    _Atomic bool refused;              /* the broker answered the last CONNECT with an error */
    _Atomic int64_t connected_wall_ms; /* when the last CONNECT succeeded (Unix ms) */
    struct strmap links;               /* device -> struct link_entry * */

    /* Ingest (mqtt_ingest.c). */
    pthread_t flusher;
    bool flusher_started;
    pthread_mutex_t q_lock;
    pthread_cond_t q_wake;  /* the flusher: messages arrived / stop */
    pthread_cond_t q_space; /* the loop thread: the queue has room again / a job completed */
    struct pending_msg *q_head, *q_tail;
    size_t q_count, q_bytes;
    int64_t q_oldest_ms; /* monotonic time the oldest queued message arrived */
    bool q_stop;
    struct inflight *fifo; /* jobs in commit order of submission */
    size_t fifo_head, fifo_len, fifo_cap;
    uint64_t released;            /* journal seqnos released so far */
    bool release_frozen;          /* a job could not be stored: keep the journal from here on */
    uint64_t unjournaled_waiting; /* messages that could not be journaled, not yet stored */
    _Atomic int64_t journal_failed_log_ms; /* last "journal failed" log line (monotonic) */
    struct rate_limit event_limit;

    /* Commands (mqtt_commands.c). */
    pthread_mutex_t cmd_lock;
    struct command_wait *waits;
    size_t n_waits;
    _Atomic uint64_t next_command_id;
    struct action_rules actions;
    uint64_t actioned[64]; /* alerts whose actions were sent (ring) */
    unsigned n_actioned;

    /* Home Assistant (mqtt_ha.c). */
    pthread_mutex_t ha_lock;
    struct strmap ha; /* device -> struct ha_device * */
    _Atomic bool ha_rediscover_all;

    /* Counters. */
    _Atomic uint64_t connects, connect_failures, messages, readings_messages, status_messages, acks,
        rejected, mismatched, suppressed, commands_sent, published, replayed;
};

/* mqtt_ingest.c */
void ingest_on_message(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos);
int ingest_start(struct mqtt *m, char *err, size_t errlen); /* replay + flusher */
void ingest_stop(struct mqtt *m);                           /* flush everything, join */
/* Records an event (rate-limited per kind), stored in a job of its own. */
void ingest_event(struct mqtt *m, enum event_category cat, const char *kind, const char *device,
                  const char *topic, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Stores records with a fire-and-forget job (freed when done). */
void ingest_store_records(struct mqtt *m, const struct event_record *records, size_t n_records,
                          const struct device_command *commands, size_t n_commands);

/* mqtt.c */
int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                 bool retain);
void mqtt_set_link(struct mqtt *m, const char *device, enum device_link link, int64_t now_ms);

/* mqtt_commands.c */
int commands_init(struct mqtt *m, char *err, size_t errlen);
void commands_free(struct mqtt *m);
void commands_on_ack(struct mqtt *m, const char *device, const char *payload, size_t len);
void commands_tick(struct mqtt *m, int64_t now_ms);
void commands_on_commit(struct mqtt *m, const struct commit_view *c);

/* mqtt_ha.c */
void ha_init(struct mqtt *m);
void ha_free(struct mqtt *m);
void ha_on_connect(struct mqtt *m);
void ha_on_commit(struct mqtt *m, const struct commit_view *c);
void ha_tick(struct mqtt *m, int64_t now_ms);

#endif
