/* mqtt_frame.c — MQTT 3.1.1 / 5 fixed headers, remaining lengths, PUBLISH packets and
 * acknowledgements as bytes (mqtt_frame.h), for the man-in-the-middle proxy of
 * `canary attack mitm-mqtt`. A proxy must see what libmosquitto hides, hence this small
 * codec; it is strict where a mistake would desynchronise the stream (lengths) and lenient
 * elsewhere (everything it does not need to open is passed through as it came). */
#include "cli/mqtt_frame.h"

#include "core/error.h"

#include <string.h>

int mqtt_varint_encode(uint32_t v, uint8_t out[4])
{
    if (v > MQTT_MAX_REMAINING)
        return -1;
    int n = 0;
    do {
        uint8_t b = v % 128;
        v /= 128;
        if (v > 0)
            b |= 0x80;
        out[n++] = b;
    } while (v > 0);
    return n;
}

enum mqtt_frame_status mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *v, size_t *used)
{
    uint32_t value = 0, mult = 1;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len)
            return MQTT_FRAME_NEED_MORE;
        value += (uint32_t)(buf[i] & 0x7f) * mult;
        if ((buf[i] & 0x80) == 0) {
            *v = value;
            *used = i + 1;
            return MQTT_FRAME_OK;
        }
        mult *= 128;
    }
    return MQTT_FRAME_MALFORMED; /* a fifth length byte: 3.1.1 §2.2.3 allows four */
}

enum mqtt_frame_status mqtt_frame_peek(const uint8_t *buf, size_t len, size_t max_total,
                                       struct mqtt_frame *out)
{
    if (len < 1)
        return MQTT_FRAME_NEED_MORE;
    uint8_t type = buf[0] >> 4;
    if (type == 0)
        return MQTT_FRAME_MALFORMED; /* reserved in both versions */
    uint32_t rem;
    size_t used;
    enum mqtt_frame_status st = mqtt_varint_decode(buf + 1, len - 1, &rem, &used);
    if (st != MQTT_FRAME_OK)
        return st;
    out->type = type;
    out->flags = buf[0] & 0x0f;
    out->header_len = 1 + used;
    out->remaining = rem;
    out->total = out->header_len + rem;
    if (out->total > max_total)
        return MQTT_FRAME_TOO_LARGE;
    return out->total <= len ? MQTT_FRAME_OK : MQTT_FRAME_NEED_MORE;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

enum mqtt_frame_status mqtt_publish_parse(const uint8_t *pkt, const struct mqtt_frame *f, int level,
                                          struct mqtt_publish *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (f->type != MQTT_PUBLISH) {
        canary_errf(err, errlen, "not a PUBLISH (%s)", mqtt_packet_name(f->type));
        return MQTT_FRAME_MALFORMED;
    }
    out->dup = f->flags & 0x08;
    out->qos = (f->flags >> 1) & 0x03;
    out->retain = f->flags & 0x01;
    if (out->qos == 3) {
        canary_errf(err, errlen, "PUBLISH with QoS 3");
        return MQTT_FRAME_MALFORMED;
    }
    const uint8_t *p = pkt + f->header_len;
    size_t left = f->remaining;
    if (left < 2) {
        canary_errf(err, errlen, "PUBLISH of %zu bytes has no topic length", left);
        return MQTT_FRAME_MALFORMED;
    }
    size_t tlen = be16(p);
    p += 2;
    left -= 2;
    if (tlen == 0 || tlen > left) {
        canary_errf(err, errlen, "PUBLISH topic of %zu bytes in %zu remaining", tlen, left);
        return MQTT_FRAME_MALFORMED;
    }
    out->topic = (const char *)p;
    out->topic_len = tlen;
    p += tlen;
    left -= tlen;
    if (out->qos > 0) {
        if (left < 2) {
            canary_errf(err, errlen, "PUBLISH at QoS %u has no packet id", out->qos);
            return MQTT_FRAME_MALFORMED;
        }
        out->packet_id = be16(p);
        if (out->packet_id == 0) {
            canary_errf(err, errlen, "PUBLISH at QoS %u with packet id 0", out->qos);
            return MQTT_FRAME_MALFORMED;
        }
        p += 2;
        left -= 2;
    }
    if (level >= 5) {
        uint32_t plen;
        size_t used;
        if (mqtt_varint_decode(p, left, &plen, &used) != MQTT_FRAME_OK || plen > left - used) {
            canary_errf(err, errlen, "PUBLISH properties longer than the packet");
            return MQTT_FRAME_MALFORMED;
        }
        out->props = p + used;
        out->props_len = plen;
        p += used + plen;
        left -= used + plen;
    }
    out->payload = p;
    out->payload_len = left;
    return MQTT_FRAME_OK;
}

/* Bytes after the fixed header, or 0 when p cannot be encoded. */
static size_t publish_remaining(const struct mqtt_publish *p, int level)
{
    if (p->topic_len == 0 || p->topic_len > 65535 || p->qos > 2 ||
        (p->qos > 0 && p->packet_id == 0))
        return 0;
    uint64_t n = 2 + (uint64_t)p->topic_len + (p->qos > 0 ? 2 : 0) + p->payload_len;
    if (level >= 5) {
        uint8_t tmp[4];
        if (p->props_len > MQTT_MAX_REMAINING)
            return 0;
        n += (uint64_t)mqtt_varint_encode((uint32_t)p->props_len, tmp) + p->props_len;
    }
    return n > MQTT_MAX_REMAINING ? 0 : (size_t)n;
}

size_t mqtt_publish_size(const struct mqtt_publish *p, int level)
{
    size_t rem = publish_remaining(p, level);
    if (rem == 0)
        return 0;
    uint8_t tmp[4];
    return 1 + (size_t)mqtt_varint_encode((uint32_t)rem, tmp) + rem;
}

long mqtt_publish_encode(const struct mqtt_publish *p, int level, uint8_t *out, size_t cap)
{
    size_t rem = publish_remaining(p, level);
    size_t total = mqtt_publish_size(p, level);
    if (rem == 0 || total > cap)
        return -1;
    uint8_t *w = out;
    *w++ = (uint8_t)(MQTT_PUBLISH << 4 | (p->dup ? 0x08 : 0) | p->qos << 1 | (p->retain ? 1 : 0));
    w += mqtt_varint_encode((uint32_t)rem, w);
    *w++ = (uint8_t)(p->topic_len >> 8);
    *w++ = (uint8_t)(p->topic_len & 0xff);
    memcpy(w, p->topic, p->topic_len);
    w += p->topic_len;
    if (p->qos > 0) {
        *w++ = (uint8_t)(p->packet_id >> 8);
        *w++ = (uint8_t)(p->packet_id & 0xff);
    }
    if (level >= 5) {
        w += mqtt_varint_encode((uint32_t)p->props_len, w);
        if (p->props_len > 0)
            memcpy(w, p->props, p->props_len);
        w += p->props_len;
    }
    if (p->payload_len > 0)
        memcpy(w, p->payload, p->payload_len);
    w += p->payload_len;
    return (long)(w - out);
}

int mqtt_connect_level(const uint8_t *pkt, const struct mqtt_frame *f)
{
    if (f->type != MQTT_CONNECT || f->remaining < 3)
        return -1;
    const uint8_t *p = pkt + f->header_len;
    size_t nlen = be16(p);
    if (f->remaining < 2 + nlen + 1)
        return -1;
    uint8_t level = p[2 + nlen];
    if (nlen == 4 && memcmp(p + 2, "MQTT", 4) == 0 && (level == 4 || level == 5))
        return level;
    if (nlen == 6 && memcmp(p + 2, "MQIsdp", 6) == 0 && level == 3)
        return 3;
    return -1;
}

int mqtt_ack_encode(uint8_t type, uint16_t packet_id, uint8_t out[4])
{
    if (type < MQTT_PUBACK || type > MQTT_PUBCOMP || packet_id == 0)
        return -1;
    out[0] = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 0x02 : 0));
    out[1] = 2;
    out[2] = (uint8_t)(packet_id >> 8);
    out[3] = (uint8_t)(packet_id & 0xff);
    return 4;
}

int mqtt_ack_packet_id(const uint8_t *pkt, const struct mqtt_frame *f)
{
    if (f->type < MQTT_PUBACK || f->type > MQTT_PUBCOMP || f->remaining < 2)
        return -1;
    return be16(pkt + f->header_len);
}

const char *mqtt_packet_name(uint8_t type)
{
    static const char *const names[16] = {"?",         "CONNECT",  "CONNACK",     "PUBLISH",
                                          "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                          "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                          "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};
    return names[type & 0x0f];
}
