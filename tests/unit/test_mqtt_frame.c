/* test_mqtt_frame.c — unit tests of src/cli/mqtt_frame.c, the MQTT codec of the attack
 * proxy: remaining lengths at every encoding boundary (0, 127/128, 16383/16384,
 * 2097151/2097152, the maximum and one past it), malformed lengths (a fifth byte), packets
 * cut at every byte, oversized packets refused before they are buffered, PUBLISH at QoS
 * 0/1/2 in MQTT 3.1.1 and 5 (packet ids, properties) round-tripped byte for byte, malformed
 * PUBLISH packets, CONNECT levels and acknowledgements, and a fuzz loop that must never
 * crash or read out of bounds. */
#include "cli/mqtt_frame.h"
#include "unit_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_varint_boundaries(void **state)
{
    (void)state;
    static const struct {
        uint32_t v;
        int len;
        uint8_t bytes[4];
    } cases[] = {
        {0, 1, {0x00}},
        {127, 1, {0x7f}},
        {128, 2, {0x80, 0x01}},
        {16383, 2, {0xff, 0x7f}},
        {16384, 3, {0x80, 0x80, 0x01}},
        {2097151, 3, {0xff, 0xff, 0x7f}},
        {2097152, 4, {0x80, 0x80, 0x80, 0x01}},
        {MQTT_MAX_REMAINING, 4, {0xff, 0xff, 0xff, 0x7f}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t out[4];
        assert_int_equal(mqtt_varint_encode(cases[i].v, out), cases[i].len);
        assert_memory_equal(out, cases[i].bytes, (size_t)cases[i].len);
        uint32_t v;
        size_t used;
        assert_int_equal(mqtt_varint_decode(out, (size_t)cases[i].len, &v, &used), MQTT_FRAME_OK);
        assert_int_equal(v, cases[i].v);
        assert_int_equal(used, (size_t)cases[i].len);
        /* every proper prefix asks for more */
        for (int k = 0; k < cases[i].len; k++)
            assert_int_equal(mqtt_varint_decode(out, (size_t)k, &v, &used), MQTT_FRAME_NEED_MORE);
    }
    uint8_t out[4];
    assert_int_equal(mqtt_varint_encode(MQTT_MAX_REMAINING + 1, out), -1);
    assert_int_equal(mqtt_varint_encode(UINT32_MAX, out), -1);
    /* a fifth byte is never valid, whatever follows */
    const uint8_t five[] = {0xff, 0xff, 0xff, 0xff, 0x01};
    uint32_t v;
    size_t used;
    assert_int_equal(mqtt_varint_decode(five, sizeof five, &v, &used), MQTT_FRAME_MALFORMED);
    assert_int_equal(mqtt_varint_decode(five, 4, &v, &used), MQTT_FRAME_MALFORMED);
}

static void test_peek_lengths(void **state)
{
    (void)state;
    const uint32_t lens[] = {0, 1, 127, 128, 16383, 16384, 70000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t total = 5 + lens[i];
        uint8_t *pkt = calloc(1, total);
        pkt[0] = 0x30; /* PUBLISH QoS 0 (contents do not matter to peek) */
        int hl = 1 + mqtt_varint_encode(lens[i], pkt + 1);
        struct mqtt_frame f;
        assert_int_equal(mqtt_frame_peek(pkt, (size_t)hl + lens[i], SIZE_MAX, &f), MQTT_FRAME_OK);
        assert_int_equal(f.type, MQTT_PUBLISH);
        assert_int_equal(f.header_len, (size_t)hl);
        assert_int_equal(f.remaining, lens[i]);
        assert_int_equal(f.total, (size_t)hl + lens[i]);
        /* one byte short: need more, with the header already read */
        if (lens[i] > 0) {
            memset(&f, 0, sizeof f);
            assert_int_equal(mqtt_frame_peek(pkt, (size_t)hl + lens[i] - 1, SIZE_MAX, &f),
                             MQTT_FRAME_NEED_MORE);
            assert_int_equal(f.total, (size_t)hl + lens[i]);
        }
        /* a limit one below the packet: too large, known from the header alone */
        assert_int_equal(mqtt_frame_peek(pkt, (size_t)hl, (size_t)hl + lens[i] - 1, &f),
                         MQTT_FRAME_TOO_LARGE);
        free(pkt);
    }
    /* the largest length is recognised (and refused by any sane limit) without its bytes */
    const uint8_t max[] = {0x30, 0xff, 0xff, 0xff, 0x7f};
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame_peek(max, sizeof max, 1 << 20, &f), MQTT_FRAME_TOO_LARGE);
    assert_int_equal(f.remaining, MQTT_MAX_REMAINING);
    assert_int_equal(mqtt_frame_peek(max, sizeof max, SIZE_MAX, &f), MQTT_FRAME_NEED_MORE);
    /* malformed: a fifth length byte, packet type 0 */
    const uint8_t bad_len[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
    assert_int_equal(mqtt_frame_peek(bad_len, sizeof bad_len, SIZE_MAX, &f), MQTT_FRAME_MALFORMED);
    const uint8_t type0[] = {0x00, 0x00};
    assert_int_equal(mqtt_frame_peek(type0, sizeof type0, SIZE_MAX, &f), MQTT_FRAME_MALFORMED);
    /* empty input, PINGREQ */
    assert_int_equal(mqtt_frame_peek(max, 0, SIZE_MAX, &f), MQTT_FRAME_NEED_MORE);
    const uint8_t ping[] = {0xc0, 0x00};
    assert_int_equal(mqtt_frame_peek(ping, 2, SIZE_MAX, &f), MQTT_FRAME_OK);
    assert_int_equal(f.type, MQTT_PINGREQ);
    assert_int_equal(f.total, 2);
    assert_string_equal(mqtt_packet_name(f.type), "PINGREQ");
}

/* Encodes p, checks the bytes against want (when given), re-parses and compares. */
static void round_trip(const struct mqtt_publish *p, int level, const uint8_t *want,
                       size_t want_len)
{
    static uint8_t buf[300000];
    size_t size = mqtt_publish_size(p, level);
    long n = mqtt_publish_encode(p, level, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal((size_t)n, size);
    if (want != NULL) {
        assert_int_equal((size_t)n, want_len);
        assert_memory_equal(buf, want, want_len);
    }
    assert_int_equal(mqtt_publish_encode(p, level, buf, (size_t)n - 1), -1);
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame_peek(buf, (size_t)n, SIZE_MAX, &f), MQTT_FRAME_OK);
    struct mqtt_publish q;
    char err[128];
    assert_int_equal(mqtt_publish_parse(buf, &f, level, &q, err, sizeof err), MQTT_FRAME_OK);
    assert_int_equal(q.qos, p->qos);
    assert_int_equal(q.dup, p->dup);
    assert_int_equal(q.retain, p->retain);
    assert_int_equal(q.packet_id, p->qos > 0 ? p->packet_id : 0);
    assert_int_equal(q.topic_len, p->topic_len);
    assert_memory_equal(q.topic, p->topic, p->topic_len);
    assert_int_equal(q.payload_len, p->payload_len);
    if (p->payload_len > 0)
        assert_memory_equal(q.payload, p->payload, p->payload_len);
    assert_int_equal(q.props_len, level >= 5 ? p->props_len : 0);
    if (level >= 5 && p->props_len > 0)
        assert_memory_equal(q.props, p->props, p->props_len);
    /* re-encoding the parse gives the same bytes */
    static uint8_t again[300000];
    assert_int_equal(mqtt_publish_encode(&q, level, again, sizeof again), n);
    assert_memory_equal(again, buf, (size_t)n);
}

static void test_publish_qos_levels(void **state)
{
    (void)state;
    /* QoS 0, 3.1.1: 0x30, len, topic "a/b", payload "hi" */
    struct mqtt_publish p = {
        .topic = "a/b", .topic_len = 3, .payload = (const uint8_t *)"hi", .payload_len = 2};
    const uint8_t q0[] = {0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'};
    round_trip(&p, 4, q0, sizeof q0);
    /* QoS 1 with packet id 0x1234, retain */
    p.qos = 1;
    p.packet_id = 0x1234;
    p.retain = true;
    const uint8_t q1[] = {0x33, 9, 0, 3, 'a', '/', 'b', 0x12, 0x34, 'h', 'i'};
    round_trip(&p, 4, q1, sizeof q1);
    /* QoS 2, DUP, packet id 65535 */
    p.qos = 2;
    p.packet_id = 65535;
    p.retain = false;
    p.dup = true;
    const uint8_t q2[] = {0x3c, 9, 0, 3, 'a', '/', 'b', 0xff, 0xff, 'h', 'i'};
    round_trip(&p, 4, q2, sizeof q2);
    /* MQTT 5: no properties (a zero length byte), then with some */
    p.qos = 1;
    p.packet_id = 7;
    p.dup = false;
    const uint8_t v5[] = {0x32, 10, 0, 3, 'a', '/', 'b', 0, 7, 0, 'h', 'i'};
    round_trip(&p, 5, v5, sizeof v5);
    const uint8_t props[] = {0x01, 0x01, 0x23, 0x00, 0x05}; /* payload format, topic alias */
    p.props = props;
    p.props_len = sizeof props;
    const uint8_t v5p[] = {0x32, 15, 0,    3,    'a',  '/', 'b', 0,  7,
                           5,    1,  0x01, 0x23, 0x00, 5,   'h', 'i'};
    round_trip(&p, 5, v5p, sizeof v5p);
    /* empty payload */
    p.payload_len = 0;
    round_trip(&p, 5, NULL, 0);
    /* a payload whose packet crosses each length boundary: 127/128, 16383/16384 */
    static uint8_t big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    struct mqtt_publish b = {.topic = "t", .topic_len = 1, .payload = big};
    const size_t rems[] = {127, 128, 16383, 16384, 150000};
    for (size_t i = 0; i < sizeof rems / sizeof rems[0]; i++) {
        b.payload_len = rems[i] - 3; /* 2 + topic 1 */
        static uint8_t buf[200010];
        long n = mqtt_publish_encode(&b, 4, buf, sizeof buf);
        struct mqtt_frame f;
        assert_int_equal(mqtt_frame_peek(buf, (size_t)n, SIZE_MAX, &f), MQTT_FRAME_OK);
        assert_int_equal(f.remaining, rems[i]);
        round_trip(&b, 4, NULL, 0);
    }
    /* packet id 0 at QoS > 0, an empty topic, a topic over 65535 bytes: not encodable */
    struct mqtt_publish bad = {.topic = "t", .topic_len = 1, .qos = 1, .packet_id = 0};
    uint8_t buf[64];
    assert_int_equal(mqtt_publish_size(&bad, 4), 0);
    assert_int_equal(mqtt_publish_encode(&bad, 4, buf, sizeof buf), -1);
    bad.qos = 0;
    bad.topic_len = 0;
    assert_int_equal(mqtt_publish_encode(&bad, 4, buf, sizeof buf), -1);
    bad.topic_len = 70000;
    assert_int_equal(mqtt_publish_size(&bad, 4), 0);
    bad.topic_len = 1;
    bad.payload_len = MQTT_MAX_REMAINING; /* + topic: one past the maximum */
    assert_int_equal(mqtt_publish_size(&bad, 4), 0);
}

static enum mqtt_frame_status parse_bytes(const uint8_t *b, size_t len, int level)
{
    struct mqtt_frame f;
    enum mqtt_frame_status st = mqtt_frame_peek(b, len, SIZE_MAX, &f);
    if (st != MQTT_FRAME_OK)
        return st;
    struct mqtt_publish p;
    char err[128] = "";
    st = mqtt_publish_parse(b, &f, level, &p, err, sizeof err);
    if (st != MQTT_FRAME_OK)
        assert_true(err[0] != '\0' && test_printable(err));
    return st;
}

static void test_publish_malformed(void **state)
{
    (void)state;
    const uint8_t qos3[] = {0x36, 5, 0, 1, 't', 0, 1};
    assert_int_equal(parse_bytes(qos3, sizeof qos3, 4), MQTT_FRAME_MALFORMED);
    const uint8_t no_topic_len[] = {0x30, 1, 0};
    assert_int_equal(parse_bytes(no_topic_len, sizeof no_topic_len, 4), MQTT_FRAME_MALFORMED);
    const uint8_t topic_too_long[] = {0x30, 4, 0, 9, 'a', 'b'};
    assert_int_equal(parse_bytes(topic_too_long, sizeof topic_too_long, 4), MQTT_FRAME_MALFORMED);
    const uint8_t empty_topic[] = {0x30, 2, 0, 0};
    assert_int_equal(parse_bytes(empty_topic, sizeof empty_topic, 4), MQTT_FRAME_MALFORMED);
    const uint8_t qos1_no_id[] = {0x32, 4, 0, 1, 't', 0};
    assert_int_equal(parse_bytes(qos1_no_id, sizeof qos1_no_id, 4), MQTT_FRAME_MALFORMED);
    const uint8_t qos1_id0[] = {0x32, 5, 0, 1, 't', 0, 0};
    assert_int_equal(parse_bytes(qos1_id0, sizeof qos1_id0, 4), MQTT_FRAME_MALFORMED);
    const uint8_t qos2_id0[] = {0x34, 5, 0, 1, 't', 0, 0};
    assert_int_equal(parse_bytes(qos2_id0, sizeof qos2_id0, 4), MQTT_FRAME_MALFORMED);
    /* MQTT 5: property length beyond the packet, a malformed property length */
    const uint8_t props_long[] = {0x30, 5, 0, 1, 't', 9, 1};
    assert_int_equal(parse_bytes(props_long, sizeof props_long, 5), MQTT_FRAME_MALFORMED);
    const uint8_t props_cut[] = {0x30, 4, 0, 1, 't', 0x80};
    assert_int_equal(parse_bytes(props_cut, sizeof props_cut, 5), MQTT_FRAME_MALFORMED);
    /* the same bytes at 3.1.1 are a valid packet whose payload is those bytes */
    assert_int_equal(parse_bytes(props_long, sizeof props_long, 4), MQTT_FRAME_OK);
    /* not a PUBLISH */
    const uint8_t ping[] = {0xc0, 0};
    assert_int_equal(parse_bytes(ping, sizeof ping, 4), MQTT_FRAME_MALFORMED);
}

/* A packet cut at every byte is never OK, and completing it gives the same packet. */
static void test_truncated(void **state)
{
    (void)state;
    char payload[300];
    memset(payload, 'x', sizeof payload);
    struct mqtt_publish p = {.topic = "canary/d-1/up",
                             .topic_len = 13,
                             .qos = 1,
                             .packet_id = 9,
                             .payload = (const uint8_t *)payload,
                             .payload_len = sizeof payload};
    uint8_t buf[512];
    long enc = mqtt_publish_encode(&p, 4, buf, sizeof buf);
    assert_true(enc > 0 && enc <= 512);
    size_t n = enc > 0 && enc <= 512 ? (size_t)enc : 0;
    for (size_t k = 0; k < n; k++) {
        struct mqtt_frame f;
        assert_int_equal(mqtt_frame_peek(buf, k, SIZE_MAX, &f), MQTT_FRAME_NEED_MORE);
    }
    /* two packets back to back: the first is cut out exactly */
    uint8_t two[1100];
    memcpy(two, buf, n);
    memcpy(two + n, buf, n);
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame_peek(two, 2 * n, SIZE_MAX, &f), MQTT_FRAME_OK);
    assert_int_equal(f.total, n);
    assert_int_equal(mqtt_frame_peek(two + f.total, n, SIZE_MAX, &f), MQTT_FRAME_OK);
}

static void test_connect_and_acks(void **state)
{
    (void)state;
    const uint8_t c4[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0};
    const uint8_t c5[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 0, 0, 0};
    const uint8_t c3[] = {0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 60, 0, 0};
    const uint8_t bad[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 0};
    const uint8_t cut[] = {0x10, 3, 0, 9, 'M'};
    struct {
        const uint8_t *b;
        size_t len;
        int level;
    } cases[] = {{c4, sizeof c4, 4},
                 {c5, sizeof c5, 5},
                 {c3, sizeof c3, 3},
                 {bad, sizeof bad, -1},
                 {cut, sizeof cut, -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mqtt_frame f;
        assert_int_equal(mqtt_frame_peek(cases[i].b, cases[i].len, SIZE_MAX, &f), MQTT_FRAME_OK);
        assert_int_equal(mqtt_connect_level(cases[i].b, &f), cases[i].level);
    }
    uint8_t a[4];
    assert_int_equal(mqtt_ack_encode(MQTT_PUBACK, 0x0102, a), 4);
    assert_memory_equal(a, ((uint8_t[]){0x40, 2, 1, 2}), 4);
    assert_int_equal(mqtt_ack_encode(MQTT_PUBREL, 5, a), 4);
    assert_memory_equal(a, ((uint8_t[]){0x62, 2, 0, 5}), 4);
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame_peek(a, 4, SIZE_MAX, &f), MQTT_FRAME_OK);
    assert_int_equal(mqtt_ack_packet_id(a, &f), 5);
    assert_int_equal(mqtt_ack_encode(MQTT_PUBLISH, 5, a), -1);
    assert_int_equal(mqtt_ack_encode(MQTT_PUBACK, 0, a), -1);
    /* an MQTT 5 PUBACK with a reason code and properties still has its id first */
    const uint8_t ack5[] = {0x40, 4, 0, 9, 0x10, 0};
    assert_int_equal(mqtt_frame_peek(ack5, sizeof ack5, SIZE_MAX, &f), MQTT_FRAME_OK);
    assert_int_equal(mqtt_ack_packet_id(ack5, &f), 9);
    const uint8_t ack_short[] = {0x40, 1, 0};
    assert_int_equal(mqtt_frame_peek(ack_short, sizeof ack_short, SIZE_MAX, &f), MQTT_FRAME_OK);
    assert_int_equal(mqtt_ack_packet_id(ack_short, &f), -1);
}

/* Random bytes and mutated packets: every answer is one of the four, and nothing reads
 * out of bounds (ASan build). */
static void test_fuzz(void **state)
{
    (void)state;
    struct test_rng r = {0x5eed1234abcdull};
    struct mqtt_publish p = {.topic = "canary/x/up",
                             .topic_len = 11,
                             .qos = 1,
                             .packet_id = 3,
                             .payload = (const uint8_t *)"{\"a\":1}",
                             .payload_len = 7};
    uint8_t good[64];
    long n = mqtt_publish_encode(&p, 5, good, sizeof good);
    for (int i = 0; i < 20000; i++) {
        uint8_t buf[80];
        size_t len;
        if (i % 2) {
            len = test_rng_below(&r, sizeof buf);
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)test_rng_next(&r);
        } else {
            memcpy(buf, good, (size_t)n);
            len = (size_t)n;
            buf[test_rng_below(&r, len)] = (uint8_t)test_rng_next(&r);
            len = test_rng_below(&r, len + 1);
        }
        /* copy into an exact-size heap buffer so ASan sees any overread */
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        struct mqtt_frame f;
        enum mqtt_frame_status st = mqtt_frame_peek(exact, len, 1 << 16, &f);
        assert_true(st == MQTT_FRAME_OK || st == MQTT_FRAME_NEED_MORE ||
                    st == MQTT_FRAME_MALFORMED || st == MQTT_FRAME_TOO_LARGE);
        if (st == MQTT_FRAME_OK) {
            struct mqtt_publish q;
            char err[128];
            if (f.type == MQTT_PUBLISH)
                (void)mqtt_publish_parse(exact, &f, 4 + (i & 1), &q, err, sizeof err);
            (void)mqtt_connect_level(exact, &f);
            (void)mqtt_ack_packet_id(exact, &f);
        }
        free(exact);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_boundaries),
        cmocka_unit_test(test_peek_lengths),
        cmocka_unit_test(test_publish_qos_levels),
        cmocka_unit_test(test_publish_malformed),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_connect_and_acks),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
