/* mqtt.h — canaryd's MQTT side: readings in from a broker, device status, commands out to
 * devices, automatic actions on alerts, Home Assistant discovery. docs/MQTT.md is the
 * user's guide; ARCHITECTURE.md fixes the topics.
 *
 *   broker --PUBLISH--> loop thread: classify topic, journal (crash-safe), queue --+
 *          <--PUBACK--  (sent after the callback returns: the message is safe)     |
 *   flusher thread: parse -> topic/payload device check -> verify -> one pipeline job
 *   per batch of messages -> (commit) -> journal released
 *
 * Readings take exactly the path of HTTP ingest (ingest_parse_json, verify_batch,
 * pipeline_submit); only the transport differs. Nothing acknowledged is lost: a message is
 * PUBACKed only after it is in the journal, the journal is replayed at start, and the
 * pipeline's (device, seq) check stores a replayed reading once. Broker outages: reconnect
 * with exponential backoff and jitter, resubscribe (the persistent session keeps what
 * arrived meanwhile), one log line per state change. */
#ifndef CANARY_MQTT_MQTT_H
#define CANARY_MQTT_MQTT_H

#include "core/command.h"
#include "core/config.h"
#include "pipeline/pipeline.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mqtt;

enum mqtt_state {
    MQTT_DISABLED = 0, /* mqtt.enabled = false */
    MQTT_CONNECTING,   /* first attempt under way */
    MQTT_CONNECTED,    /* CONNACK received, subscribed */
    MQTT_RECONNECTING, /* lost or refused; waiting out the backoff */
    MQTT_STOPPED,
};

const char *mqtt_state_name(enum mqtt_state s);

struct mqtt_status {
    enum mqtt_state state;
    int64_t since_ms;     /* wall time of the last state change */
    char last_error[160]; /* why the last connection ended or failed */
    uint64_t connects;    /* successful connections */
    uint64_t connect_failures;
    uint64_t messages; /* received on our topics */
    uint64_t readings_messages;
    uint64_t status_messages;
    uint64_t acks;               /* command answers */
    uint64_t rejected;           /* messages refused whole (bad topic, too large, not JSON) */
    uint64_t mismatched;         /* readings naming another device than their topic */
    uint64_t events_suppressed;  /* events not stored by the rate limit */
    uint64_t queued;             /* received, not yet handed to the pipeline */
    uint64_t journal_unreleased; /* in the journal, not yet committed */
    uint64_t journal_replayed;   /* found in the journal at start */
    uint64_t commands_sent;
    uint64_t commands_pending;
    uint64_t published; /* messages canaryd published (commands, discovery, states) */
};

/* Opens the journal and replays it through the pipeline (waiting until it is committed),
 * then starts the connection and flusher threads. With mqtt.enabled = false it returns 0
 * and an object that only reports MQTT_DISABLED. Returns 0, or an error with a message. */
int mqtt_start(struct mqtt **out, const struct canary_config *cfg, struct pipeline *p, char *err,
               size_t errlen);

/* Disconnects, hands everything received to the pipeline and waits until it is committed
 * (the pipeline must still be running), stops the threads and closes the journal. */
void mqtt_stop(struct mqtt *m);

/* Frees a stopped client. NULL is allowed. */
void mqtt_free(struct mqtt *m);

void mqtt_get_status(struct mqtt *m, struct mqtt_status *out);

/* What the device last said on its status topic, and when (wall ms); LINK_UNKNOWN if it
 * said nothing since canaryd started (retained statuses arrive at every connect). */
enum device_link mqtt_device_link(struct mqtt *m, const char *device, int64_t *since_ms);

/* "online", "offline", "sleeping", "unknown". */
const char *device_link_name(enum device_link l);

/* Sends a command (c->device, command, state/value, alert_id, actor filled by the caller):
 * assigns c->id, created_ms, status pending, publishes it to <prefix>/<device>/cmd at QoS
 * 1 and tracks its answer. The caller stores the record (a JOB_RECORDS job) — acks and
 * timeouts are stored by the client. Returns 0, CANARY_EBUSY when not connected to the
 * broker (nothing sent), or CANARY_ESTOPPED / CANARY_EINVAL (MQTT disabled). */
int mqtt_send_command(struct mqtt *m, struct device_command *c, char *err, size_t errlen);

#endif
