/* mqtt_topic.h — the topic contract of ARCHITECTURE.md, as a pure parser:
 *   <prefix>/<device>/up        readings (JSON, as HTTP ingest)
 *   <prefix>/<device>/status    retained online | offline (last will) | sleeping
 *   <prefix>/<device>/cmd       commands to the device (canaryd publishes)
 *   <prefix>/<device>/cmd/ack   the device's answers to commands
 *   <prefix>/<device>/state     canaryd's retained summary of the device (Home Assistant)
 *   <ha_prefix>/status          Home Assistant's birth message ("online")
 * No I/O, no allocation: the device id is returned as a slice of the topic. */
#ifndef CANARY_MQTT_MQTT_TOPIC_H
#define CANARY_MQTT_MQTT_TOPIC_H

#include <stddef.h>

enum mqtt_topic_kind {
    TOPIC_INVALID = 0, /* under the prefix but of a shape we do not know, or a bad device id */
    TOPIC_UP,
    TOPIC_STATUS,
    TOPIC_CMD_ACK,
    TOPIC_HA_STATUS,
    TOPIC_IGNORED, /* ours but not for us to read (cmd, state), or outside our prefixes */
};

struct mqtt_topic {
    enum mqtt_topic_kind kind;
    const char *device; /* points into the topic; not NUL-terminated */
    size_t device_len;
    const char *error; /* TOPIC_INVALID: why */
};

/* Classifies topic (NUL-terminated). max_device_len bounds the device id. */
void mqtt_topic_parse(const char *prefix, const char *ha_prefix, const char *topic,
                      size_t max_device_len, struct mqtt_topic *out);

#endif
