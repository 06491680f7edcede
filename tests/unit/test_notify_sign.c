/* test_notify_sign.c — unit tests of the webhook signature (src/notify/webhook.c): HMAC-SHA256
 * against RFC 4231's test vectors, the webhook signature against a value computed by hand
 * (Python's hmac module and `openssl dgst -sha256 -hmac`, the two recipes docs/ALERTING.md
 * gives receivers), the receiver's check (tampered body, wrong secret, stale or future
 * timestamps, malformed headers), and the webhook payload's shape. */
#include "core/error.h"
#include "notify/explain.h"
#include "notify/notify.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* RFC 4231 §4.2, §4.3 and §4.7 (test cases 1, 2 and 6), HMAC-SHA-256. */
static void test_hmac_rfc4231(void **state)
{
    (void)state;
    unsigned char mac[32];
    char h[65];

    unsigned char key1[20];
    memset(key1, 0x0b, sizeof key1);
    assert_int_equal(notify_hmac_sha256(key1, sizeof key1, "Hi There", 8, mac), 0);
    hex(mac, 32, h);
    assert_string_equal(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    const char *data2 = "what do ya want for nothing?";
    assert_int_equal(notify_hmac_sha256("Jefe", 4, data2, strlen(data2), mac), 0);
    hex(mac, 32, h);
    assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    /* A key longer than SHA-256's block is hashed first. */
    unsigned char key6[131];
    memset(key6, 0xaa, sizeof key6);
    const char *data6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    assert_int_equal(notify_hmac_sha256(key6, sizeof key6, data6, strlen(data6), mac), 0);
    hex(mac, 32, h);
    assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

#define BODY                                                                                       \
    "{\"type\":\"alert.opened\",\"id\":\"n-42-1\",\"alert\":{\"device\":\"kitchen-1\","            \
    "\"kind\":\"gas_leak\"}}"
#define SECRET "whsec_test_5ecret"
#define TS     1763676000LL
/* printf '%s' '1763676000.<BODY>' | openssl dgst -sha256 -hmac 'whsec_test_5ecret'
 * and hmac.new(b'whsec_test_5ecret', b'1763676000.' + body, hashlib.sha256).hexdigest() */
#define SIGNATURE "172978d5351ee0a5e8e36aaf41e7d343531413a8e6a65553ddfec30cf80fe3b1"

static void test_webhook_signature_by_hand(void **state)
{
    (void)state;
    char h[NOTIFY_SIGNATURE_HEX_LEN + 1];
    assert_int_equal(notify_webhook_signature(SECRET, TS, BODY, strlen(BODY), h), 0);
    assert_string_equal(h, SIGNATURE);
    /* The signature covers the timestamp: another second, another signature. */
    assert_int_equal(notify_webhook_signature(SECRET, TS + 1, BODY, strlen(BODY), h), 0);
    assert_string_not_equal(h, SIGNATURE);
}

static void test_webhook_verify(void **state)
{
    (void)state;
    const char *sig = "sha256=" SIGNATURE;
    const size_t n = strlen(BODY);
    assert_true(notify_webhook_verify(SECRET, "1763676000", sig, BODY, n, TS, 300));
    assert_true(notify_webhook_verify(SECRET, "1763676000", sig, BODY, n, TS + 300, 300));
    assert_true(notify_webhook_verify(SECRET, "1763676000", sig, BODY, n, TS - 300, 300));
    /* Upper-case hex is the same signature. */
    char upper[80];
    snprintf(upper, sizeof upper, "sha256=%s", SIGNATURE);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_true(notify_webhook_verify(SECRET, "1763676000", upper, BODY, n, TS, 300));

    /* Replays outside the window, either way. */
    assert_false(notify_webhook_verify(SECRET, "1763676000", sig, BODY, n, TS + 301, 300));
    assert_false(notify_webhook_verify(SECRET, "1763676000", sig, BODY, n, TS - 301, 300));
    /* A changed body, a changed timestamp, another secret. */
    char tampered[] = BODY;
    tampered[strlen(tampered) - 3] = 'X';
    assert_false(notify_webhook_verify(SECRET, "1763676000", sig, tampered, n, TS, 300));
    assert_false(notify_webhook_verify(SECRET, "1763676001", sig, BODY, n, TS, 300));
    assert_false(notify_webhook_verify("other", "1763676000", sig, BODY, n, TS, 300));
    /* Malformed headers. */
    assert_false(notify_webhook_verify(SECRET, "1763676000", SIGNATURE, BODY, n, TS, 300));
    assert_false(notify_webhook_verify(SECRET, "1763676000", "sha1=" SIGNATURE, BODY, n, TS, 300));
    assert_false(notify_webhook_verify(SECRET, "1763676000", "sha256=abc", BODY, n, TS, 300));
    assert_false(
        notify_webhook_verify(SECRET, "1763676000", "sha256=" SIGNATURE "00", BODY, n, TS, 300));
    assert_false(notify_webhook_verify(SECRET, "", sig, BODY, n, TS, 300));
    assert_false(notify_webhook_verify(SECRET, "-1763676000", sig, BODY, n, TS, 300));
    assert_false(notify_webhook_verify(SECRET, "1763676000 ", sig, BODY, n, TS, 300));
    assert_false(notify_webhook_verify(SECRET, "99999999999999999999", sig, BODY, n, TS, 300));
    assert_false(notify_webhook_verify(SECRET, NULL, sig, BODY, n, TS, 300));
    assert_false(notify_webhook_verify(SECRET, "1763676000", NULL, BODY, n, TS, 300));
}

static void test_empty_body_and_secret(void **state)
{
    (void)state;
    /* HMAC with an empty key and an empty message is defined (and stable). */
    char h[NOTIFY_SIGNATURE_HEX_LEN + 1];
    assert_int_equal(notify_webhook_signature("", 0, "", 0, h), 0);
    assert_int_equal(strlen(h), NOTIFY_SIGNATURE_HEX_LEN);
    unsigned char mac[32];
    char hh[65];
    assert_int_equal(notify_hmac_sha256("", 0, "0.", 2, mac), 0);
    hex(mac, 32, hh);
    assert_string_equal(h, hh);
}

static void test_payload_shape(void **state)
{
    (void)state;
    struct alert a;
    memset(&a, 0, sizeof a);
    a.id = 42;
    snprintf(a.device, sizeof a.device, "kitchen-1");
    snprintf(a.metric, sizeof a.metric, "gas_ppm");
    a.kind = ALERT_KIND_GAS_LEAK;
    a.severity = SEVERITY_CRITICAL;
    a.state = ALERT_STATE_OPEN;
    a.opened_ms = 1763676000123LL;
    a.updated_ms = 1763676060000LL;
    a.value = 4800;
    a.peak = 5100;
    a.limit = NAN;
    snprintf(a.message, sizeof a.message, "Gas \"leak\"\nsuspected");
    struct explanation e;
    struct explain_context ctx;
    explain_context_init(&ctx);
    explain_context_from_alert(&ctx, &a);
    explain_alert(&ctx, &e);

    char *s = notify_webhook_payload(&a, &e, "opened", "n-42-1", 1763676061000LL);
    assert_non_null(s);
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "alert.opened");
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "n-42-1");
    assert_string_equal(cJSON_GetObjectItem(j, "sent_at")->valuestring, "2025-11-20T22:01:01.000Z");
    cJSON *al = cJSON_GetObjectItem(j, "alert");
    assert_int_equal((int)cJSON_GetObjectItem(al, "id")->valuedouble, 42);
    assert_string_equal(cJSON_GetObjectItem(al, "kind")->valuestring, "gas_leak");
    assert_string_equal(cJSON_GetObjectItem(al, "severity")->valuestring, "critical");
    assert_string_equal(cJSON_GetObjectItem(al, "state")->valuestring, "open");
    assert_string_equal(cJSON_GetObjectItem(al, "opened_at")->valuestring,
                        "2025-11-20T22:00:00.123Z");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(al, "limit")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(al, "resolved_at")));
    assert_int_equal((int)cJSON_GetObjectItem(al, "value")->valuedouble, 4800);
    assert_string_equal(cJSON_GetObjectItem(al, "message")->valuestring, "Gas \"leak\"\nsuspected");
    cJSON *ex = cJSON_GetObjectItem(j, "explanation");
    assert_string_equal(cJSON_GetObjectItem(ex, "title")->valuestring, e.title);
    assert_string_equal(cJSON_GetObjectItem(ex, "short")->valuestring, e.short_text);
    cJSON_Delete(j);
    free(s);

    /* Without an explanation or id. */
    s = notify_webhook_payload(&a, NULL, "resolved", NULL, 0);
    j = cJSON_Parse(s);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "alert.resolved");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "id")));
    assert_null(cJSON_GetObjectItem(j, "explanation"));
    cJSON_Delete(j);
    free(s);
}

static void test_names(void **state)
{
    (void)state;
    enum notify_channel ch;
    for (int i = 0; i < NOTIFY_CHANNEL_COUNT; i++) {
        assert_int_equal(notify_channel_parse(notify_channel_name((enum notify_channel)i), &ch), 0);
        assert_int_equal((int)ch, i);
    }
    assert_int_equal(notify_channel_parse("pager", &ch), CANARY_EINVAL);
    assert_string_equal(notify_outcome_name(NOTIFY_RETRY), "retry");
    assert_string_equal(notify_outcome_name(NOTIFY_PERMANENT_FAILURE), "permanent_failure");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_rfc4231),   cmocka_unit_test(test_webhook_signature_by_hand),
        cmocka_unit_test(test_webhook_verify), cmocka_unit_test(test_empty_body_and_secret),
        cmocka_unit_test(test_payload_shape),  cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
