/* test_mitm_tamper.c — unit tests of src/cli/mitm_tamper.c and mitm_plan.c, what the attack
 * proxies do to payloads: an altered JWS is still a well-formed token of canary's profile
 * (jws_parse accepts it) with the same header and the very same signature, its payload
 * parses and carries the changed value, and the MAC no longer verifies; a plain reading is
 * changed as JSON; a stripped JWS is its payload; a forged reading has a fresh seq, its
 * device as kid and a MAC no real key gives; hostile inputs (not JSON, no values, huge,
 * truncated tokens) are refused, not crashed on. Also --attack parsing and the draw. */
#include "cli/mitm.h"
#include "unit_support.h"
#include "verify/jws.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static const uint8_t key[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6,
                                7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2};
static const char reading[] = "{\"device\":\"kitchen-1\",\"seq\":1795218882097,\"ts\":"
                              "1795218882097,\"values\":{\"temperature_c\":21.5,\"gas_ppm\":412}}";
static const struct jws_limits lim = {.max_payload = 65536, .require_kid = true};

static long sign(const char *json, char *out, size_t cap)
{
    return jws_sign_hs256("kitchen-1", json, strlen(json), key, 32, out, cap);
}

/* The payload of a token, parsed. */
static cJSON *payload_of(const char *tok)
{
    struct jws_token t;
    char err[128];
    assert_int_equal(jws_parse(tok, strlen(tok), &lim, &t, err, sizeof err), JWS_OK);
    char buf[4096];
    assert_true(jws_payload(&t, buf, sizeof buf) >= 0);
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    return j;
}

static void test_alter_jws(void **state)
{
    (void)state;
    char tok[1024], out[1024];
    long n = sign(reading, tok, sizeof tok);
    assert_true(n > 0);
    struct mitm_change chg;
    long m = mitm_alter(tok, (size_t)n, out, sizeof out, &chg);
    assert_true(m > 0);
    assert_int_equal((size_t)m, strlen(out));
    assert_string_not_equal(out, tok);
    /* same header, same signature */
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    assert_memory_equal(out, tok, (size_t)(d1 - tok + 1));
    assert_string_equal(strrchr(out, '.'), d2);
    /* well-formed: the strict parser takes it; only the MAC tells */
    struct jws_token t;
    char err[128];
    assert_int_equal(jws_parse(out, (size_t)m, &lim, &t, err, sizeof err), JWS_OK);
    assert_string_equal(t.kid, "kitchen-1");
    assert_int_equal(jws_verify_hs256(&t, key, 32), JWS_ESIGNATURE);
    /* the untouched token verifies, so the test is not vacuous */
    assert_int_equal(jws_parse(tok, (size_t)n, &lim, &t, err, sizeof err), JWS_OK);
    assert_int_equal(jws_verify_hs256(&t, key, 32), JWS_OK);
    /* gas_ppm is the value changed: 412 (quiet) becomes a leak */
    assert_string_equal(chg.metric, "gas_ppm");
    assert_true(chg.from == 412 && chg.to == 4412);
    assert_true(chg.has_seq && chg.seq == 1795218882097.0);
    cJSON *j = payload_of(out);
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(j, "values");
    assert_true(cJSON_GetObjectItemCaseSensitive(values, "gas_ppm")->valuedouble == 4412);
    assert_true(cJSON_GetObjectItemCaseSensitive(values, "temperature_c")->valuedouble == 21.5);
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "seq")->valuedouble == 1795218882097.0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "device")->valuestring, "kitchen-1");
    cJSON_Delete(j);
    /* too small an output buffer: -1, never an overflow */
    assert_int_equal(mitm_alter(tok, (size_t)n, out, 40, &chg), -1);
}

static void test_alter_plain_and_values(void **state)
{
    (void)state;
    char out[1024];
    struct mitm_change chg;
    long m = mitm_alter(reading, strlen(reading), out, sizeof out, &chg);
    assert_true(m > 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_true(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "values"), "gas_ppm")
            ->valuedouble == 4412);
    cJSON_Delete(j);
    /* a batch: its first reading */
    const char *batch = "[{\"device\":\"d\",\"seq\":5,\"values\":{\"humidity_pct\":70}},"
                        "{\"device\":\"d\",\"seq\":6,\"values\":{\"humidity_pct\":71}}]";
    m = mitm_alter(batch, strlen(batch), out, sizeof out, &chg);
    assert_true(m > 0);
    assert_string_equal(chg.metric, "humidity_pct");
    assert_true(chg.from == 70 && chg.to == 50 && chg.seq == 5);
    /* the attacker's values stay plausible */
    assert_true(mitm_altered_value("gas_ppm", 6000) == 400);
    assert_true(mitm_altered_value("humidity_pct", 10) == 30);
    assert_true(mitm_altered_value("flame", 1) == 0);
    assert_true(mitm_altered_value("temperature_c", 20) == 30);
    /* nothing to alter: not JSON, no values, only booleans, a JWS of garbage, empty */
    const char *bad[] = {"not json",
                         "{\"device\":\"d\",\"seq\":1}",
                         "{\"device\":\"d\",\"seq\":1,\"values\":{\"flame\":true}}",
                         "eyJhbGciOiJIUzI1NiJ9.!!!.sig",
                         "eyJ.a.b.c",
                         "",
                         "[]",
                         "[1,2]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mitm_alter(bad[i], strlen(bad[i]), out, sizeof out, &chg), -1);
    /* a payload beyond the limit is not opened */
    char *huge = test_repeat("{\"device\":\"d\",\"seq\":1,\"values\":{\"a_c\":1},\"x\":\"", "x",
                             MITM_MAX_PAYLOAD, "\"}");
    assert_int_equal(mitm_alter(huge, strlen(huge), out, sizeof out, &chg), -1);
    free(huge);
}

static void test_strip_and_inspect(void **state)
{
    (void)state;
    char tok[1024], out[1024];
    long n = sign(reading, tok, sizeof tok);
    assert_int_equal(mitm_strip(tok, (size_t)n, out, sizeof out), (long)strlen(reading));
    assert_string_equal(out, reading);
    assert_int_equal(mitm_strip(reading, strlen(reading), out, sizeof out), -1);
    assert_int_equal(mitm_strip(tok, (size_t)n, out, 10), -1);
    struct mitm_info info;
    mitm_inspect(tok, (size_t)n, &info);
    assert_true(info.is_jws && info.parsed && info.has_seq);
    assert_string_equal(info.device, "kitchen-1");
    assert_true(info.seq == 1795218882097.0);
    mitm_inspect(reading, strlen(reading), &info);
    assert_true(!info.is_jws && info.parsed);
    assert_string_equal(info.device, "kitchen-1");
    /* truncated tokens and garbage: no crash; cut before the signature nothing is read,
     * cut inside it the payload is still there to read (the MAC is canaryd's to judge) */
    size_t d2 = (size_t)(strrchr(tok, '.') - tok);
    for (long k = 0; k < n; k++) {
        mitm_inspect(tok, (size_t)k, &info);
        assert_int_equal(info.parsed, (size_t)k > d2);
    }
    mitm_inspect("\xff\xfe{", 3, &info);
    assert_false(info.parsed);
}

static void test_forge(void **state)
{
    (void)state;
    char tok[1024], out[1024];
    long n = sign(reading, tok, sizeof tok);
    struct mitm_change chg;
    long m = mitm_forge(tok, (size_t)n, true, 1795218999000, out, sizeof out, &chg);
    assert_true(m > 0);
    assert_true(chg.has_seq && chg.seq == 1795218882097.0 + MITM_FORGE_SEQ_OFFSET);
    struct jws_token t;
    char err[128];
    assert_int_equal(jws_parse(out, (size_t)m, &lim, &t, err, sizeof err), JWS_OK);
    assert_string_equal(t.kid, "kitchen-1");
    assert_int_equal(jws_verify_hs256(&t, key, 32), JWS_ESIGNATURE); /* a made-up key */
    cJSON *j = payload_of(out);
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "seq")->valuedouble == chg.seq);
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "ts")->valuedouble == 1795218999000.0);
    cJSON_Delete(j);
    /* two forgeries use two keys */
    char out2[1024];
    assert_true(mitm_forge(tok, (size_t)n, true, 1795218999000, out2, sizeof out2, &chg) > 0);
    assert_string_not_equal(strrchr(out, '.'), strrchr(out2, '.'));
    /* unsigned: plain JSON of one reading, from a batch too */
    m = mitm_forge(reading, strlen(reading), false, 5, out, sizeof out, &chg);
    assert_true(m > 0 && out[0] == '{');
    const char *batch = "[{\"device\":\"d\",\"seq\":5,\"values\":{\"gas_ppm\":7000}},{}]";
    m = mitm_forge(batch, strlen(batch), false, 5, out, sizeof out, &chg);
    assert_true(m > 0 && out[0] == '{');
    assert_true(chg.to == 400 && chg.seq == 5 + MITM_FORGE_SEQ_OFFSET);
    /* nothing to imitate: no seq, no device */
    const char *noseq = "{\"device\":\"d\",\"values\":{\"gas_ppm\":7}}";
    assert_int_equal(mitm_forge(noseq, strlen(noseq), true, 5, out, sizeof out, &chg), -1);
    const char *nodev = "{\"seq\":1,\"values\":{\"gas_ppm\":7}}";
    assert_int_equal(mitm_forge(nodev, strlen(nodev), false, 5, out, sizeof out, &chg), -1);
}

static void test_plan(void **state)
{
    (void)state;
    struct mitm_plan p = {0};
    char err[200];
    assert_int_equal(mitm_plan_add(&p, "alter", err, sizeof err), 0);
    assert_true(p.rate[MITM_ALTER] == 0.1);
    assert_int_equal(mitm_plan_add(&p, "drop:0.5", err, sizeof err), 0);
    assert_int_equal(mitm_plan_add(&p, "replay:0.5", err, sizeof err), -1);
    assert_non_null(strstr(err, "add up"));
    assert_int_equal(mitm_plan_add(&p, "bogus:0.1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown kind"));
    assert_int_equal(mitm_plan_add(&p, "token-swap", err, sizeof err), -1);
    assert_non_null(strstr(err, "HTTP"));
    const char *bad_rates[] = {"forge:0", "forge:-1",  "forge:1.5", "forge:x",
                               "forge:",  "forge:nan", ":0.1"};
    for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; i++)
        assert_int_equal(mitm_plan_add(&p, bad_rates[i], err, sizeof err), -1);
    /* the draw follows the rates */
    struct mitm_plan q = {.http = true};
    assert_int_equal(mitm_plan_add(&q, "forge:0.25", err, sizeof err), 0);
    assert_int_equal(mitm_plan_add(&q, "token-swap:0.5", err, sizeof err), 0);
    struct rng r;
    rng_seed_state(&r, 42);
    int counts[MITM_KIND_COUNT + 1] = {0};
    for (int i = 0; i < 40000; i++) {
        int k = mitm_plan_choose(&q, &r);
        counts[k == MITM_NONE ? MITM_KIND_COUNT : k]++;
    }
    assert_in_range(counts[MITM_FORGE], 9500, 10500);
    assert_in_range(counts[MITM_TOKEN_SWAP], 19500, 20500);
    assert_in_range(counts[MITM_KIND_COUNT], 9500, 10500);
    char host[64];
    unsigned port;
    assert_int_equal(mitm_split_hostport("127.0.0.1:1883", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 1883);
    assert_int_equal(mitm_split_hostport("[::1]:80", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    const char *bad_hp[] = {"localhost", ":80", "h:", "h:65536", "h:8x", "[::1]80", "[]:1"};
    for (size_t i = 0; i < sizeof bad_hp / sizeof bad_hp[0]; i++)
        assert_int_equal(mitm_split_hostport(bad_hp[i], host, sizeof host, &port), -1);
}

static void test_history(void **state)
{
    (void)state;
    struct mitm_history *h = mitm_history_new();
    char *p, *w, *a;
    assert_int_equal(mitm_history_oldest(h, "d1", &p, &w, &a), -1);
    for (int i = 0; i < 20; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "m%d", i);
        assert_int_equal(
            mitm_history_add(h, "d1", "t", msg, strlen(msg), "Authorization: Bearer tok-1"),
            (uint64_t)i + 1);
        if (i == 0)
            assert_int_equal(mitm_history_oldest(h, "d1", &p, &w, &a), -1);
    }
    assert_int_equal(mitm_history_oldest(h, "d1", &p, &w, &a), 3);
    assert_string_equal(p, "m12"); /* 8 back */
    assert_string_equal(w, "t");
    free(p);
    free(w);
    free(a);
    char tok[64];
    assert_false(mitm_history_other_aux(h, "d1", "Bearer ", tok, sizeof tok));
    mitm_history_add(h, "d2", "t", "x", 1, NULL);
    assert_true(mitm_history_other_aux(h, "d2", "Bearer ", tok, sizeof tok));
    assert_string_equal(tok, "Bearer tok-1");
    mitm_history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alter_jws),
        cmocka_unit_test(test_alter_plain_and_values),
        cmocka_unit_test(test_strip_and_inspect),
        cmocka_unit_test(test_forge),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
