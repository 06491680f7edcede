/* test_jws.c — unit tests of src/verify/jws.c: RFC 7515's own HS256 example verified
 * exactly, canary's signer, every refusal of the strict profile (alg none, other algs,
 * kid, base64 form, dots, sizes, duplicate members, crit), and a fuzz loop of mutated
 * tokens that must never crash and never be accepted. */
#include "unit_support.h"
#include "verify/jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* RFC 7515 Appendix A.1: the JWS, and the JWK's "k" (the HMAC key, base64url). */
static const char rfc_token[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
    "cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char rfc_k[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
static const char rfc_payload[] =
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

static const struct jws_limits canary_lim = {.max_payload = 4096, .require_kid = true};
static const struct jws_limits rfc_lim = {.max_payload = 4096, .require_kid = false};

static const uint8_t key32[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static const char reading[] =
    "{\"device\":\"kitchen-1\",\"seq\":1042,\"ts\":1763676000123,\"values\":{\"gas_ppm\":412.5}}";

/* Parses and verifies with key32 (or key); returns the first failure. */
static enum jws_error check(const char *tok, const struct jws_limits *lim, const uint8_t *key,
                            size_t key_len)
{
    struct jws_token t;
    char err[256];
    enum jws_error rc = jws_parse(tok, strlen(tok), lim, &t, err, sizeof err);
    if (rc != JWS_OK) {
        assert_true(err[0] != '\0');
        return rc;
    }
    return jws_verify_hs256(&t, key, key_len);
}

static void test_rfc7515_a1_verifies(void **state)
{
    (void)state;
    uint8_t key[128];
    long kn = b64url_decode(rfc_k, strlen(rfc_k), key, sizeof key);
    assert_int_equal(kn, 64);
    struct jws_token t;
    char err[256] = "";
    assert_int_equal(jws_parse(rfc_token, strlen(rfc_token), &rfc_lim, &t, err, sizeof err),
                     JWS_OK);
    assert_string_equal(t.kid, "");
    assert_true(t.has_typ);
    assert_int_equal(jws_verify_hs256(&t, key, (size_t)kn), JWS_OK);
    char payload[256];
    long pn = jws_payload(&t, payload, sizeof payload);
    assert_int_equal(pn, (long)strlen(rfc_payload));
    assert_memory_equal(payload, rfc_payload, strlen(rfc_payload));
    /* The same token under canary's profile: no kid, refused. */
    assert_int_equal(check(rfc_token, &canary_lim, key, (size_t)kn), JWS_EKID);
    /* One bit of the key changed: refused. */
    key[0] ^= 1;
    assert_int_equal(jws_verify_hs256(&t, key, (size_t)kn), JWS_ESIGNATURE);
}

static void test_base64url(void **state)
{
    (void)state;
    char out[64];
    uint8_t back[64];
    /* RFC 4648 §10 vectors, unpadded and URL-safe. */
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(b64url_encode(plain[i], strlen(plain[i]), out, sizeof out),
                         (long)strlen(enc[i]));
        assert_string_equal(out, enc[i]);
        assert_int_equal(b64url_decode(enc[i], strlen(enc[i]), back, sizeof back),
                         (long)strlen(plain[i]));
        assert_memory_equal(back, plain[i], strlen(plain[i]));
    }
    const uint8_t hi[] = {0xfb, 0xff};
    assert_int_equal(b64url_encode(hi, 2, out, sizeof out), 3);
    assert_string_equal(out, "-_8");
    /* Refused: padding, the standard alphabet, whitespace, impossible length, non-zero
     * trailing bits (a second encoding of "f"), too small a buffer. */
    assert_int_equal(b64url_decode("Zg==", 4, back, sizeof back), -1);
    assert_int_equal(b64url_decode("+/8", 3, back, sizeof back), -1);
    assert_int_equal(b64url_decode("Zm 9v", 5, back, sizeof back), -1);
    assert_int_equal(b64url_decode("Zm9vY", 5, back, sizeof back), -1);
    assert_int_equal(b64url_decode("Zh", 2, back, sizeof back), -1);
    assert_int_equal(b64url_decode("Zm9v", 4, back, 2), -1);
    assert_int_equal(b64url_encode("foo", 3, out, 4), -1);
}

static void test_sign_and_verify(void **state)
{
    (void)state;
    char tok[1024];
    long n =
        jws_sign_hs256("kitchen-1", reading, strlen(reading), key32, sizeof key32, tok, sizeof tok);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(tok));
    assert_true((size_t)n <= jws_token_size(strlen(reading), strlen("kitchen-1")));
    /* The header is exactly what ARCHITECTURE.md describes. */
    assert_memory_equal(tok, "eyJhbGciOiJIUzI1NiIsImtpZCI6ImtpdGNoZW4tMSJ9.", 45);
    struct jws_token t;
    char err[256];
    assert_int_equal(jws_parse(tok, (size_t)n, &canary_lim, &t, err, sizeof err), JWS_OK);
    assert_string_equal(t.kid, "kitchen-1");
    assert_int_equal(jws_verify_hs256(&t, key32, sizeof key32), JWS_OK);
    char payload[512];
    assert_int_equal(jws_payload(&t, payload, sizeof payload), (long)strlen(reading));
    assert_string_equal(payload, reading);
    assert_int_equal(jws_payload(&t, payload, 10), -1);
    /* Wrong key. */
    uint8_t other[32];
    memcpy(other, key32, 32);
    other[31] ^= 0x80;
    assert_int_equal(jws_verify_hs256(&t, other, sizeof other), JWS_ESIGNATURE);
    assert_int_equal(jws_verify_hs256(&t, NULL, 0), JWS_ESIGNATURE);
    /* Too small an output, a kid that would need escaping. */
    assert_int_equal(jws_sign_hs256("kitchen-1", reading, strlen(reading), key32, 32, tok, 40), -1);
    assert_int_equal(jws_sign_hs256("a\"b", reading, strlen(reading), key32, 32, tok, sizeof tok),
                     -1);
    assert_int_equal(jws_sign_hs256("", reading, strlen(reading), key32, 32, tok, sizeof tok), -1);
}

static void test_altered_payload_refused(void **state)
{
    (void)state;
    char tok[1024];
    long n = jws_sign_hs256("kitchen-1", reading, strlen(reading), key32, 32, tok, sizeof tok);
    assert_true(n > 0);
    /* Re-sign a different payload but splice the old signature on. */
    char forged[1024];
    const char *evil =
        "{\"device\":\"kitchen-1\",\"seq\":1042,\"ts\":1763676000123,\"values\":{\"gas_ppm\":0}}";
    long m = jws_sign_hs256("kitchen-1", evil, strlen(evil), key32, 32, forged, sizeof forged);
    assert_true(m > 0);
    const char *old_sig = strrchr(tok, '.');
    char *new_sig = strrchr(forged, '.');
    memcpy(new_sig, old_sig, strlen(old_sig) + 1);
    assert_int_equal(check(forged, &canary_lim, key32, 32), JWS_ESIGNATURE);
    /* Signature stripped. */
    char stripped[1024];
    snprintf(stripped, sizeof stripped, "%.*s.", (int)(strrchr(tok, '.') - tok), tok);
    assert_int_equal(check(stripped, &canary_lim, key32, 32), JWS_EFORMAT);
}

/* base64url of a header + "." + base64url payload + "." + a 43-character signature. */
static char *token_with_header(const char *header)
{
    char *out = malloc(8192);
    assert_non_null(out);
    long a = b64url_encode(header, strlen(header), out, 4096);
    assert_true(a >= 0);
    out[a] = '.';
    long b = b64url_encode(reading, strlen(reading), out + a + 1, 4096);
    assert_true(b > 0);
    strcpy(out + a + 1 + b, ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    return out;
}

static void expect_header(const char *header, enum jws_error want)
{
    char *tok = token_with_header(header);
    enum jws_error got = check(tok, &canary_lim, key32, 32);
    if (got != want)
        fail_msg("header %s: got %s, want %s", header, jws_error_name(got), jws_error_name(want));
    free(tok);
}

static void test_header_refusals(void **state)
{
    (void)state;
    expect_header("{\"alg\":\"none\",\"kid\":\"kitchen-1\"}", JWS_EALG_NONE);
    expect_header("{\"alg\":\"None\",\"kid\":\"kitchen-1\"}", JWS_EALG_NONE);
    expect_header("{\"alg\":\"HS512\",\"kid\":\"kitchen-1\"}", JWS_EALG);
    expect_header("{\"alg\":\"RS256\",\"kid\":\"kitchen-1\"}", JWS_EALG);
    expect_header("{\"alg\":\"hs256\",\"kid\":\"kitchen-1\"}", JWS_EALG);
    expect_header("{\"kid\":\"kitchen-1\"}", JWS_EALG);
    expect_header("{\"alg\":\"HS256\"}", JWS_EKID);
    expect_header("{\"alg\":\"HS256\",\"kid\":\"\"}", JWS_EKID);
    expect_header("{\"alg\":\"HS256\",\"kid\":\"a b\"}", JWS_EKID);
    expect_header("{\"alg\":\"HS256\",\"kid\":7}", JWS_EHEADER);
    expect_header("{\"alg\":[\"HS256\"],\"kid\":\"kitchen-1\"}", JWS_EHEADER);
    expect_header("{\"alg\":\"HS256\",\"alg\":\"none\",\"kid\":\"kitchen-1\"}", JWS_EHEADER);
    expect_header("{\"alg\":\"HS256\",\"kid\":\"a\",\"kid\":\"kitchen-1\"}", JWS_EHEADER);
    expect_header("{\"alg\":\"HS256\",\"kid\":\"kitchen-1\",\"crit\":[\"exp\"]}", JWS_ECRIT);
    expect_header("{\"alg\":\"HS256\",\"kid\":\"kitchen-1\",\"jku\":\"http://x\"}", JWS_ECRIT);
    expect_header("{\"alg\":\"HS256\",\"kid\":\"kitchen-1\",\"b64\":false}", JWS_ECRIT);
    expect_header("[\"HS256\"]", JWS_EHEADER);
    expect_header("{\"alg\":\"HS256\",\"kid\":\"kitchen-1\"", JWS_EHEADER);
    expect_header("not json", JWS_EHEADER);
    /* A valid header shape with a made-up signature: only the MAC fails. */
    expect_header("{\"alg\":\"HS256\",\"kid\":\"kitchen-1\",\"typ\":\"JWT\"}", JWS_ESIGNATURE);
    /* Oversized header. */
    char *big = test_repeat("{\"alg\":\"HS256\",\"kid\":\"kitchen-1\",\"typ\":\"", "x", 600, "\"}");
    expect_header(big, JWS_ETOO_LARGE);
    free(big);
}

static void test_shape_refusals(void **state)
{
    (void)state;
    char tok[1024];
    long n = jws_sign_hs256("kitchen-1", reading, strlen(reading), key32, 32, tok, sizeof tok);
    assert_true(n > 0);
    assert_int_equal(check(tok, &canary_lim, key32, 32), JWS_OK);
    char buf[1100];
    /* Extra dot (a fourth part), two parts, a leading or trailing dot. */
    snprintf(buf, sizeof buf, "%s.AAAA", tok);
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_EFORMAT);
    snprintf(buf, sizeof buf, "%.*s", (int)(strrchr(tok, '.') - tok), tok);
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_EFORMAT);
    snprintf(buf, sizeof buf, ".%s", tok);
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_EFORMAT);
    snprintf(buf, sizeof buf, "%s.", tok);
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_EFORMAT);
    assert_int_equal(check("..", &canary_lim, key32, 32), JWS_EFORMAT);
    assert_int_equal(check("", &canary_lim, key32, 32), JWS_EFORMAT);
    /* Whitespace around or inside, padding, the standard alphabet. */
    snprintf(buf, sizeof buf, "%s\n", tok);
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_ETOO_LARGE);
    snprintf(buf, sizeof buf, "%s", tok);
    buf[50] = ' ';
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_EBASE64);
    snprintf(buf, sizeof buf, " %s", tok);
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_EBASE64);
    snprintf(buf, sizeof buf, "%s", tok);
    buf[10] = '+';
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_EBASE64);
    char *dot = strchr(tok, '.');
    snprintf(buf, sizeof buf, "%.*s=%s", (int)(dot - tok), tok, dot);
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_EBASE64);
    /* Signature too long, too short. */
    snprintf(buf, sizeof buf, "%sAAAA", tok);
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_ETOO_LARGE);
    snprintf(buf, sizeof buf, "%.*s", (int)(n - 1), tok);
    assert_int_equal(check(buf, &canary_lim, key32, 32), JWS_EBASE64);
    /* Payload above the limit. */
    struct jws_limits small = {.max_payload = 16, .require_kid = true};
    assert_int_equal(check(tok, &small, key32, 32), JWS_ETOO_LARGE);
    /* The token is read only within its length: a NUL-less buffer cut at the signature. */
    struct jws_token t;
    char err[128];
    assert_int_equal(jws_parse(tok, (size_t)n - 5, &canary_lim, &t, err, sizeof err), JWS_EBASE64);
    for (int e = 0; e < JWS_ERROR_COUNT; e++)
        assert_string_not_equal(jws_error_name((enum jws_error)e), "?");
}

/* Mutated tokens: never a crash (ASan/UBSan builds check that), never accepted unless the
 * mutation gave back the original bytes. */
static void test_fuzz_mutations(void **state)
{
    (void)state;
    char tok[1024];
    long n = jws_sign_hs256("kitchen-1", reading, strlen(reading), key32, 32, tok, sizeof tok);
    assert_true(n > 0);
    const char alphabet[] = "AZaz09-_.=+/ \"{}\\\x01\xff";
    struct test_rng rng = {0x5eed0fca2a4ULL};
    unsigned accepted_same = 0, refused = 0;
    for (int i = 0; i < 40000; i++) {
        char buf[2048];
        memcpy(buf, tok, (size_t)n);
        size_t len = (size_t)n;
        unsigned edits = 1 + (unsigned)test_rng_below(&rng, 4);
        for (unsigned e = 0; e < edits; e++) {
            char c = alphabet[test_rng_below(&rng, sizeof alphabet - 1)];
            len = test_fuzz_edit(&rng, buf, len, sizeof buf - 1, c, 20);
        }
        /* Run on an exact-size heap copy so ASan sees any read past the end. */
        char *heap = malloc(len ? len : 1);
        assert_non_null(heap);
        memcpy(heap, buf, len);
        struct jws_token t;
        char err[128];
        enum jws_error rc = jws_parse(heap, len, &canary_lim, &t, err, sizeof err);
        if (rc == JWS_OK)
            rc = jws_verify_hs256(&t, key32, 32);
        if (rc == JWS_OK) {
            assert_int_equal(len, (size_t)n);
            assert_memory_equal(heap, tok, len);
            accepted_same++;
        } else {
            refused++;
        }
        free(heap);
    }
    /* Identity edits (a truncation not drawn) leave some tokens as they were. */
    assert_int_equal(refused + accepted_same, 40000);
    assert_true(refused > 30000);
    print_message("fuzz: %u mutated tokens refused, %u unchanged ones accepted\n", refused,
                  accepted_same);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_a1_verifies), cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_sign_and_verify),     cmocka_unit_test(test_altered_payload_refused),
        cmocka_unit_test(test_header_refusals),     cmocka_unit_test(test_shape_refusals),
        cmocka_unit_test(test_fuzz_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
