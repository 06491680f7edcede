/* mqtt_frame.h — MQTT 3.1.1 and 5 control packets as bytes, for `canary attack mitm-mqtt`.
 *
 * Why canary has its own MQTT frame code when it links libmosquitto: a man-in-the-middle
 * proxy must see and rewrite the bytes on the wire (cut the stream into packets, open a
 * PUBLISH, re-encode it with a changed payload, answer a PUBACK itself), and libmosquitto
 * hides exactly those bytes behind its client API. This is the product of the attack
 * simulator, not a second MQTT client: only the fixed header (OASIS MQTT 3.1.1 §2.2, MQTT 5
 * §2.1), the Variable Byte Integer of the remaining length (3.1.1 §2.2.3, 5 §1.5.5), the
 * PUBLISH packet (3.1.1 §3.3, 5 §3.3, properties kept as opaque bytes), the protocol level of
 * CONNECT and the four-byte acknowledgements are understood; every other packet is passed
 * through byte-exact by the proxy.
 *
 * Everything here is pure: no I/O, no allocation, no globals. Parsers never read beyond the
 * length they are given and point into the caller's buffer. */
#ifndef CANARY_CLI_MQTT_FRAME_H
#define CANARY_CLI_MQTT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQTT_MAX_REMAINING    268435455u /* the largest 4-byte Variable Byte Integer */
#define MQTT_MAX_FIXED_HEADER 5          /* type byte + up to 4 length bytes */

enum mqtt_packet_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15, /* MQTT 5 only */
};

/* What a parser says about its input. */
enum mqtt_frame_status {
    MQTT_FRAME_OK = 0,
    MQTT_FRAME_NEED_MORE = 1,  /* a valid prefix: wait for more bytes */
    MQTT_FRAME_MALFORMED = -1, /* can never become a valid packet */
    MQTT_FRAME_TOO_LARGE = -2, /* valid, but longer than the caller's limit */
};

/* The fixed header of one packet. */
struct mqtt_frame {
    uint8_t type;      /* enum mqtt_packet_type */
    uint8_t flags;     /* the low four bits of the first byte */
    size_t header_len; /* 2..5: first byte + the remaining length's bytes */
    size_t remaining;  /* bytes after the fixed header */
    size_t total;      /* header_len + remaining: the whole packet */
};

/* Encodes v (at most MQTT_MAX_REMAINING) as a Variable Byte Integer into out; returns the
 * number of bytes (1..4), or -1 when v is too large. */
int mqtt_varint_encode(uint32_t v, uint8_t out[4]);

/* Decodes a Variable Byte Integer from buf[0..len): MQTT_FRAME_OK with *v and *used,
 * NEED_MORE when len ends inside it, MALFORMED when a fourth byte still has the
 * continuation bit (a fifth byte is never valid). */
enum mqtt_frame_status mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *v,
                                          size_t *used);

/* Reads the fixed header of the packet at buf[0..len). OK when the whole packet is in the
 * buffer (out->total <= len), NEED_MORE when more bytes are needed (out is filled once the
 * header is complete), MALFORMED for packet type 0 or a bad length, TOO_LARGE when the
 * packet would be longer than max_total bytes (out is filled). */
enum mqtt_frame_status mqtt_frame_peek(const uint8_t *buf, size_t len, size_t max_total,
                                       struct mqtt_frame *out);

/* A PUBLISH packet. Pointers point into the parsed packet. */
struct mqtt_publish {
    bool dup, retain;
    uint8_t qos;       /* 0, 1 or 2 */
    const char *topic; /* not NUL-terminated */
    size_t topic_len;
    uint16_t packet_id;   /* 0 at QoS 0 */
    const uint8_t *props; /* MQTT 5: the property bytes (after their length), else NULL */
    size_t props_len;
    const uint8_t *payload;
    size_t payload_len;
};

/* Opens the PUBLISH packet pkt[0..f->total) (f from mqtt_frame_peek) of a connection that
 * speaks protocol level `level` (4 = 3.1.1, 5 = MQTT 5, 3 = 3.1). Returns OK or MALFORMED
 * (QoS 3, a topic longer than the packet or empty, packet id 0 at QoS 1/2, MQTT 5
 * properties longer than the packet), with a sentence in err. */
enum mqtt_frame_status mqtt_publish_parse(const uint8_t *pkt, const struct mqtt_frame *f, int level,
                                          struct mqtt_publish *out, char *err, size_t errlen);

/* The encoded size of p for protocol level `level`, or 0 when it cannot be encoded (topic
 * over 65535 bytes, packet larger than MQTT_MAX_REMAINING allows, packet id 0 at QoS > 0). */
size_t mqtt_publish_size(const struct mqtt_publish *p, int level);

/* Encodes p into out; returns the packet's length, or -1 when it cannot be encoded or does
 * not fit in cap. At level 5 the properties are written as given (none when props_len 0). */
long mqtt_publish_encode(const struct mqtt_publish *p, int level, uint8_t *out, size_t cap);

/* The protocol level of a CONNECT packet (3, 4 or 5), or -1 when it is not a CONNECT whose
 * protocol name is "MQTT" (level 4, 5) or "MQIsdp" (level 3). */
int mqtt_connect_level(const uint8_t *pkt, const struct mqtt_frame *f);

/* Writes the 4-byte PUBACK, PUBREC, PUBREL (flags 0010) or PUBCOMP for packet_id; returns 4,
 * or -1 for another type or packet id 0. Valid in 3.1.1 and in 5 (reason code omitted:
 * success, MQTT 5 §3.4.2.1). */
int mqtt_ack_encode(uint8_t type, uint16_t packet_id, uint8_t out[4]);

/* The packet id of a PUBACK, PUBREC, PUBREL or PUBCOMP (any level), or -1. */
int mqtt_ack_packet_id(const uint8_t *pkt, const struct mqtt_frame *f);

/* "CONNECT", "PUBLISH", ... ("?" for type 0). */
const char *mqtt_packet_name(uint8_t type);

#endif
