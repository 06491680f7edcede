/* test_sdk.c — unit tests of the device SDK (sdk/):
 *  - its own SHA-256 and HMAC-SHA256 against FIPS 180 and RFC 4231 vectors and against
 *    OpenSSL on random inputs;
 *  - readings: the JSON of ARCHITECTURE.md byte for byte, read back by canaryd's own parser
 *    (src/ingest) with every value exact; names checked by the same rule as canaryd's (a
 *    differential test on random strings); hostile names, non-finite values, duplicates,
 *    and every buffer size from 0 to the exact fit, with guard bytes behind the buffer;
 *  - JWS: the SDK's token is byte-equal to canary's reference signer (src/verify/jws.c),
 *    verifies with canary's verifier, and its MAC equals OpenSSL's HMAC; keys from the text
 *    `canary device add` prints;
 *  - seq persistence: across simulated reboots (a store in memory that can fail or "lose
 *    power" at any save) no seq is ever handed out twice; the POSIX file store's format,
 *    refusals and atomic replace; and real crashes: a child process handing out seqs from
 *    the file store is killed with SIGKILL at random moments, 40 times, and the seqs of all
 *    its lives are strictly increasing;
 *  - the POSIX key file reader (both formats, modes, hostile and oversized lines), and
 *    numbers under a locale whose decimal point is a comma.
 * The same file is built twice (tests/CMakeLists.txt): test_sdk against the built-in hash,
 * test_sdk_mbedtls against the CDEV_USE_MBEDTLS backend an ESP32 build uses. */
#include "canary_device.h"
#include "canary_sha256.h"
#include "cdev_keyfile.h"
#include "cdev_seq_file.h"
#include "core/metric.h"
#include "ingest/ingest.h"
#include "unit_support.h"
#include "verify/jws.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* ---- helpers ------------------------------------------------------------------------------ */

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* n bytes of value b, malloc'ed. */
static uint8_t *bytes(uint8_t b, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    memset(p, b, n);
    return p;
}

static void expect_sha(const void *data, size_t len, const char *want)
{
    uint8_t d[CDEV_SHA256_LEN];
    char h[2 * CDEV_SHA256_LEN + 1];
    assert_int_equal(cdev_sha256(data, len, d), CDEV_OK);
    hex(d, sizeof d, h);
    assert_string_equal(h, want);
}

static void expect_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len,
                        const char *want)
{
    uint8_t d[CDEV_SHA256_LEN];
    char h[2 * CDEV_SHA256_LEN + 1];
    assert_int_equal(cdev_hmac_sha256(key, key_len, data, len, d), CDEV_OK);
    hex(d, sizeof d, h);
    /* RFC 4231 test case 5 gives only the first 128 bits. */
    assert_memory_equal(h, want, strlen(want));
}

/* ---- SHA-256 and HMAC --------------------------------------------------------------------- */

/* FIPS 180-2 Appendix B (the examples FIPS 180-4's validation refers to), and the empty
 * message. */
static void test_sha256_fips180_vectors(void **state)
{
    (void)state;
    expect_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    expect_sha(two, strlen(two),
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    uint8_t *million = bytes('a', 1000000);
    expect_sha(million, 1000000,
               "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

/* RFC 4231 §4.2-4.8: all seven HMAC-SHA256 test cases. */
static void test_hmac_rfc4231_vectors(void **state)
{
    (void)state;
    uint8_t *k = bytes(0x0b, 20);
    expect_hmac(k, 20, "Hi There", 8,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    free(k);
    expect_hmac((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    k = bytes(0xaa, 20);
    uint8_t *d = bytes(0xdd, 50);
    expect_hmac(k, 20, d, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    free(k);
    free(d);
    uint8_t k4[25];
    for (int i = 0; i < 25; i++)
        k4[i] = (uint8_t)(i + 1);
    d = bytes(0xcd, 50);
    expect_hmac(k4, 25, d, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    free(d);
    k = bytes(0x0c, 20);
    expect_hmac(k, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b");
    free(k);
    /* Keys longer than the block are hashed first (test cases 6 and 7). */
    k = bytes(0xaa, 131);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    expect_hmac(k, 131, m6, strlen(m6),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    const char *m7 = "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the "
                     "HMAC algorithm.";
    expect_hmac(k, 131, m7, strlen(m7),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
    free(k);
}

/* Every message length around the padding boundaries (55/56/63/64/65 bytes and multiples),
 * and key lengths 0..200 (empty, shorter than, equal to and longer than the block), byte for
 * byte against OpenSSL. */
static void test_hash_and_hmac_match_openssl(void **state)
{
    (void)state;
    struct test_rng rng = {0x5d5c0ffee1234567ULL};
    uint8_t data[1100], key[200], mine[CDEV_SHA256_LEN], theirs[EVP_MAX_MD_SIZE];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)test_rng_next(&rng);
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)test_rng_next(&rng);
    for (size_t len = 0; len <= sizeof data; len++) {
        assert_int_equal(cdev_sha256(data, len, mine), CDEV_OK);
        SHA256(data, len, theirs);
        assert_memory_equal(mine, theirs, CDEV_SHA256_LEN);
    }
    for (size_t kl = 0; kl <= sizeof key; kl++) {
        size_t len = test_rng_below(&rng, sizeof data + 1);
        unsigned n = 0;
        assert_int_equal(cdev_hmac_sha256(key, kl, data, len, mine), CDEV_OK);
        /* OpenSSL takes a NULL key only with length 0 and a non-NULL pointer otherwise. */
        assert_non_null(HMAC(EVP_sha256(), key, (int)kl, data, len, theirs, &n));
        assert_int_equal(n, CDEV_SHA256_LEN);
        assert_memory_equal(mine, theirs, CDEV_SHA256_LEN);
    }
}

static void test_wipe(void **state)
{
    (void)state;
    uint8_t k[CDEV_KEY_LEN];
    memset(k, 0x77, sizeof k);
    cdev_wipe(k, sizeof k);
    for (size_t i = 0; i < sizeof k; i++)
        assert_int_equal(k[i], 0);
}

/* ---- readings ---------------------------------------------------------------------------- */

static const struct ingest_limits strict_lim = {.max_batch = 10,
                                                .max_metrics = CDEV_MAX_METRICS,
                                                .max_device_len = CDEV_MAX_DEVICE_LEN,
                                                .max_metric_len = CDEV_MAX_METRIC_LEN,
                                                .strict_fields = true};

/* Parses json with canaryd's parser and returns its one reading, which must be valid; the
 * batch is the caller's to free. */
static const struct reading *canaryd_parse(const char *json, size_t len, struct ingest_batch *b)
{
    struct ingest_fatal fatal;
    ingest_batch_init(b);
    int rc = ingest_parse_json(json, len, &strict_lim, 1000, b, &fatal);
    if (rc != 0)
        fail_msg("canaryd refused %s: %s", json, fatal.reason);
    assert_int_equal(b->n, 1);
    if (b->status[0] != READING_PENDING)
        fail_msg("canaryd refused %s: %s %s", json, b->errors[0].field, b->errors[0].reason);
    return &b->readings[0];
}

static void test_reading_is_the_wire_format(void **state)
{
    (void)state;
    char buf[256];
    struct cdev_reading r;
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "kitchen-1", 1042, 1763676000123LL),
                     CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "gas_ppm", 412.5), CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "temperature_c", 24.1), CDEV_OK);
    long n = cdev_reading_end(&r);
    /* ARCHITECTURE.md's example, exactly. */
    const char *want = "{\"device\":\"kitchen-1\",\"seq\":1042,\"ts\":1763676000123,"
                       "\"values\":{\"gas_ppm\":412.5,\"temperature_c\":24.1}}";
    assert_string_equal(buf, want);
    assert_int_equal(n, (long)strlen(want));
    assert_int_equal(cdev_reading_end(&r), CDEV_EARG); /* ended once */

    /* ts 0 (clock not set) or negative: no ts, and canaryd stamps its receive time. */
    for (int64_t ts = -5; ts <= 0; ts += 5) {
        assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "a", 0, ts), CDEV_OK);
        assert_int_equal(cdev_reading_add_flag(&r, "flame", true), CDEV_OK);
        assert_int_equal(cdev_reading_add_flag(&r, "motion", false), CDEV_OK);
        assert_true(cdev_reading_end(&r) > 0);
        assert_string_equal(buf,
                            "{\"device\":\"a\",\"seq\":0,\"values\":{\"flame\":1,\"motion\":0}}");
        struct ingest_batch b;
        const struct reading *rd = canaryd_parse(buf, strlen(buf), &b);
        assert_false(rd->has_ts);
        assert_int_equal(rd->ts_ms, 1000);
        ingest_batch_free(&b);
    }
    /* The largest seq and ts canaryd takes, and one beyond. */
    uint64_t top = CDEV_SEQ_MAX - 1;
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "a", top, (int64_t)top), CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "x", 1), CDEV_OK);
    long len = cdev_reading_end(&r);
    struct ingest_batch b;
    const struct reading *rd = canaryd_parse(buf, (size_t)len, &b);
    assert_true(rd->seq == top && rd->ts_ms == (int64_t)top);
    ingest_batch_free(&b);
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "a", top + 1, 0), CDEV_ESEQ);
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "a", 1, (int64_t)top + 1),
                     CDEV_EVALUE);
    /* Misuse. */
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "a", 1, 0), CDEV_OK);
    assert_int_equal(cdev_reading_end(&r), CDEV_EEMPTY);
    struct cdev_reading fresh;
    memset(&fresh, 0, sizeof fresh);
    assert_int_equal(cdev_reading_add(&fresh, "x", 1), CDEV_EARG);
    assert_int_equal(cdev_reading_add(NULL, "x", 1), CDEV_EARG);
    assert_int_equal(cdev_reading_begin(&r, NULL, 10, "a", 1, 0), CDEV_EARG);
    assert_string_equal(cdev_error_name(CDEV_ENOSPACE), "no_space");
    assert_string_equal(cdev_error_name(12345), "unknown");
}

/* A double's text must read back, through canaryd's parser, as the same double. */
static void check_value_round_trip(double v)
{
    char buf[256];
    struct cdev_reading r;
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "rt-1", 7, 0), CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "v", v), CDEV_OK);
    long n = cdev_reading_end(&r);
    struct ingest_batch b;
    const struct reading *rd = canaryd_parse(buf, (size_t)n, &b);
    assert_int_equal(rd->n_values, 1);
    if (rd->values[0].value != v)
        fail_msg("%.17g sent as %s read back as %.17g", v, buf, rd->values[0].value);
    ingest_batch_free(&b);
}

static void test_numbers_round_trip_through_canaryd(void **state)
{
    (void)state;
    char t[CDEV_MAX_NUMBER_LEN];
    const struct {
        double v;
        const char *text;
    } exact[] = {{24.1, "24.1"},
                 {412.5, "412.5"},
                 {0.1, "0.1"},
                 {-0.0, "0"},
                 {0, "0"},
                 {1e21, "1e+21"},
                 {-1.5e-7, "-1.5e-07"},
                 {100, "100"},
                 {1.0 / 3, "0.3333333333333333"},
                 {DBL_MAX, "1.7976931348623157e+308"},
                 {5e-324, "4.94065645841247e-324"}};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        long n = cdev_json_number(exact[i].v, t, sizeof t);
        assert_string_equal(t, exact[i].text);
        assert_int_equal(n, (long)strlen(exact[i].text));
        /* The exact fit works, one byte less does not and leaves "". */
        assert_int_equal(cdev_json_number(exact[i].v, t, (size_t)n + 1), n);
        assert_int_equal(cdev_json_number(exact[i].v, t, (size_t)n), CDEV_ENOSPACE);
        assert_string_equal(t, "");
        if (exact[i].v != 0)
            check_value_round_trip(exact[i].v);
    }
    check_value_round_trip(DBL_MIN);
    check_value_round_trip(-DBL_MAX);
    /* Random bit patterns: every finite double, whatever its exponent. */
    struct test_rng rng = {0x1234567890abcdefULL};
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = test_rng_next(&rng);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v) || v == 0)
            continue;
        check_value_round_trip(v);
    }
    /* And sensor-like values. */
    for (int i = 0; i < 5000; i++)
        check_value_round_trip(round(test_rng_gauss(&rng) * 1000) / 10);
}

static void test_non_finite_values_refused(void **state)
{
    (void)state;
    char buf[128], before[128];
    struct cdev_reading r;
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "dht-1", 3, 0), CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "humidity_pct", 55), CDEV_OK);
    memcpy(before, buf, sizeof buf);
    size_t len = r.len;
    const double bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(cdev_reading_add(&r, "temperature_c", bad[i]), CDEV_EVALUE);
        assert_memory_equal(buf, before, sizeof buf); /* all or nothing */
        assert_int_equal(r.len, len);
        char t[8] = "x";
        assert_int_equal(cdev_json_number(bad[i], t, sizeof t), CDEV_EVALUE);
        assert_string_equal(t, "");
    }
    /* The failed sensor is skipped; the rest goes out and canaryd takes it. */
    long n = cdev_reading_end(&r);
    assert_string_equal(buf, "{\"device\":\"dht-1\",\"seq\":3,\"values\":{\"humidity_pct\":55}}");
    struct ingest_batch b;
    canaryd_parse(buf, (size_t)n, &b);
    ingest_batch_free(&b);
}

static void test_fixed_point_values(void **state)
{
    (void)state;
    const struct {
        int64_t scaled;
        unsigned decimals;
        const char *text;
    } cases[] = {{241, 1, "24.1"},
                 {-5, 2, "-0.05"},
                 {0, 3, "0"},
                 {-0, 0, "0"},
                 {1000, 3, "1"},
                 {1230, 3, "1.23"},
                 {7, 0, "7"},
                 {1, 18, "0.000000000000000001"},
                 {INT64_MAX, 0, "9223372036854775807"},
                 {INT64_MIN, 0, "-9223372036854775808"},
                 {INT64_MIN, 18, "-9.223372036854775808"},
                 {-100, 2, "-1"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128], want[128];
        struct cdev_reading r;
        assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "f", 1, 0), CDEV_OK);
        assert_int_equal(cdev_reading_add_fixed(&r, "v", cases[i].scaled, cases[i].decimals),
                         CDEV_OK);
        long n = cdev_reading_end(&r);
        snprintf(want, sizeof want, "{\"device\":\"f\",\"seq\":1,\"values\":{\"v\":%s}}",
                 cases[i].text);
        assert_string_equal(buf, want);
        struct ingest_batch b;
        const struct reading *rd = canaryd_parse(buf, (size_t)n, &b);
        assert_true(fabs(rd->values[0].value - strtod(cases[i].text, NULL)) == 0);
        ingest_batch_free(&b);
    }
    char buf[128];
    struct cdev_reading r;
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "f", 1, 0), CDEV_OK);
    assert_int_equal(cdev_reading_add_fixed(&r, "v", 1, 19), CDEV_EVALUE);
    assert_int_equal(cdev_reading_add_fixed(&r, "Bad", 1, 1), CDEV_EMETRIC);
}

/* Random strings over an alphabet with every class of character (valid, punctuation,
 * quotes, controls, non-ASCII): the SDK and canaryd must agree on every one. */
static void test_names_agree_with_canaryd(void **state)
{
    (void)state;
    static const char alphabet[] = "abcxyzABZ0129_.:-/+# \"\\\x01\x1f\x7f\xc3\xa9";
    struct test_rng rng = {0x42};
    char s[80];
    size_t agree_valid = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len = test_rng_below(&rng, 70);
        for (size_t k = 0; k < len; k++)
            s[k] = alphabet[test_rng_below(&rng, sizeof alphabet - 1)];
        s[len] = '\0';
        bool dev = cdev_device_id_valid(s), met = cdev_metric_name_valid(s);
        assert_int_equal(dev, device_id_valid(s, len, CDEV_MAX_DEVICE_LEN));
        assert_int_equal(met, metric_name_valid(s, len, CDEV_MAX_METRIC_LEN));
        agree_valid += dev + met;
    }
    assert_true(agree_valid > 1000); /* the valid side was exercised too */
    /* Boundaries of length. */
    char *id64 = test_repeat("", "d", 64, ""), *id65 = test_repeat("", "d", 65, "");
    assert_true(cdev_device_id_valid(id64) && cdev_metric_name_valid(id64));
    assert_false(cdev_device_id_valid(id65) || cdev_metric_name_valid(id65));
    assert_false(cdev_device_id_valid("") || cdev_metric_name_valid("") ||
                 cdev_device_id_valid(NULL) || cdev_metric_name_valid(NULL));
    free(id64);
    free(id65);
}

/* Ids and names an attacker or a careless firmware might use: refused before anything is
 * written, so they can never break out of their JSON string or the JWS header. */
static void test_hostile_names_refused(void **state)
{
    (void)state;
    const char *ids[] = {"kitchen\",\"seq\":1}",
                         "a\"b",
                         "a\\b",
                         "a\nb",
                         "a b",
                         "a/b",
                         "canary/+/up",
                         "#",
                         "-lead",
                         ".lead",
                         "k\x7f",
                         "k\xc3\xa9",
                         ""};
    char buf[256], tok[512];
    uint8_t key[CDEV_KEY_LEN] = {1};
    struct cdev_reading r;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        memset(buf, 'Z', sizeof buf);
        assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, ids[i], 1, 0), CDEV_EDEVICE);
        assert_int_equal(buf[0], '\0');
        assert_int_equal(cdev_jws_sign(ids[i], "{}", 2, key, tok, sizeof tok), CDEV_EDEVICE);
        assert_int_equal(cdev_reading_add(&r, "x", 1), CDEV_EARG); /* nothing was begun */
    }
    const char *metrics[] = {"gas\":1,\"x", "gas ppm", "Gas", "gas-ppm", "1gas",
                             "_gas",        "gas\n",   "gás", "gas.ppm", ""};
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "k-1", 1, 0), CDEV_OK);
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++)
        assert_int_equal(cdev_reading_add(&r, metrics[i], 1), CDEV_EMETRIC);
    assert_int_equal(cdev_reading_add(&r, NULL, 1), CDEV_EMETRIC);
    assert_int_equal(cdev_reading_end(&r), CDEV_EEMPTY);
}

/* cdev_json_string (for free text such as a command answer's error) must produce JSON
 * that decodes to the very same bytes, whatever they are. */
static void test_json_string_escaping(void **state)
{
    (void)state;
    char out[600];
    assert_int_equal(cdev_json_string("a\"b\\c\n\t\x01\x1f\x7f/", out, sizeof out), 27);
    assert_string_equal(out, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\x7f/\"");
    struct test_rng rng = {7};
    char s[128];
    for (int i = 0; i < 20000; i++) {
        size_t len = test_rng_below(&rng, sizeof s);
        for (size_t k = 0; k < len; k++)
            s[k] = (char)(1 + test_rng_below(&rng, 127)); /* any ASCII but NUL */
        s[len] = '\0';
        long n = cdev_json_string(s, out, sizeof out);
        assert_true(n >= 2 && (size_t)n == strlen(out));
        cJSON *j = cJSON_Parse(out);
        assert_non_null(j);
        assert_true(cJSON_IsString(j));
        assert_string_equal(j->valuestring, s);
        cJSON_Delete(j);
        /* Every smaller buffer is refused and left empty; the exact fit works. */
        size_t cap = test_rng_below(&rng, (size_t)n + 1);
        memset(out, 'Z', sizeof out);
        assert_int_equal(cdev_json_string(s, out, cap), CDEV_ENOSPACE);
        if (cap > 0)
            assert_int_equal(out[0], '\0');
        assert_int_equal(cdev_json_string(s, out, (size_t)n + 1), n);
    }
}

static void test_duplicates_and_too_many(void **state)
{
    (void)state;
    char buf[2048];
    struct cdev_reading r;
    assert_int_equal(cdev_reading_begin(&r, buf, sizeof buf, "k", 1, 0), CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "gas_ppm", 1), CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "gas_ppm", 2), CDEV_EDUPLICATE);
    assert_int_equal(cdev_reading_add_fixed(&r, "gas_ppm", 2, 0), CDEV_EDUPLICATE);
    assert_int_equal(cdev_reading_add_flag(&r, "gas_ppm", true), CDEV_EDUPLICATE);
    /* A prefix, a suffix and a longer name are other metrics. */
    assert_int_equal(cdev_reading_add(&r, "gas", 3), CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "ppm", 4), CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "gas_ppm_max", 5), CDEV_OK);
    assert_int_equal(cdev_reading_add(&r, "ppm", 4), CDEV_EDUPLICATE);
    char name[16];
    for (int i = 4; i < CDEV_MAX_METRICS; i++) {
        snprintf(name, sizeof name, "m%d", i);
        assert_int_equal(cdev_reading_add(&r, name, i), CDEV_OK);
    }
    assert_int_equal(cdev_reading_add(&r, "one_more", 1), CDEV_ETOO_MANY);
    long n = cdev_reading_end(&r);
    struct ingest_batch b;
    const struct reading *rd = canaryd_parse(buf, (size_t)n, &b);
    assert_int_equal(rd->n_values, CDEV_MAX_METRICS);
    ingest_batch_free(&b);
}

/* Builds the same reading into a buffer of each size from 0 to the exact fit, with guard
 * bytes behind it: never a byte written beyond cap, ENOSPACE at each step that does not
 * fit (and the reading as it was), and the exact fit gives the full reading. What fitted
 * before a refused add can still be ended and is valid for canaryd. */
static int build(char *buf, size_t cap, int64_t ts, long *len)
{
    struct cdev_reading r;
    int rc = cdev_reading_begin(&r, buf, cap, "kitchen-1", 1042, ts);
    if (rc != CDEV_OK)
        return rc;
    const char *names[] = {"gas_ppm", "temperature_c", "humidity_pct", "flame"};
    for (int i = 0; i < 4; i++) {
        size_t before = r.len;
        rc = i == 3   ? cdev_reading_add_flag(&r, names[i], true)
             : i == 2 ? cdev_reading_add_fixed(&r, names[i], 553, 1)
                      : cdev_reading_add(&r, names[i], i ? 24.1 : 412.5);
        if (rc != CDEV_OK) {
            assert_int_equal(rc, CDEV_ENOSPACE);
            assert_int_equal(r.len, before);
            assert_int_equal(buf[r.len], '\0');
            if (i > 0) {
                long n = cdev_reading_end(&r);
                assert_true(n > 0 && (size_t)n < cap);
                struct ingest_batch b;
                assert_int_equal(canaryd_parse(buf, (size_t)n, &b)->n_values, (unsigned)i);
                ingest_batch_free(&b);
            }
            return rc;
        }
    }
    *len = cdev_reading_end(&r);
    return *len < 0 ? (int)*len : CDEV_OK;
}

static void test_every_buffer_size(void **state)
{
    (void)state;
    for (int64_t ts = 0; ts <= 1763676000123LL; ts += 1763676000123LL) {
        char full[512];
        long want = 0;
        assert_int_equal(build(full, sizeof full, ts, &want), CDEV_OK);
        char area[600];
        for (size_t cap = 0; cap <= (size_t)want + 1; cap++) {
            memset(area, 0xA5, sizeof area);
            long got = -1;
            int rc = build(area, cap, ts, &got);
            for (size_t k = cap; k < sizeof area; k++)
                assert_int_equal((unsigned char)area[k], 0xA5);
            if (cap < (size_t)want + 1) {
                assert_int_equal(rc, CDEV_ENOSPACE);
            } else {
                assert_int_equal(rc, CDEV_OK);
                assert_int_equal(got, want);
                assert_string_equal(area, full);
            }
        }
    }
}

/* Random sequences of calls with random names, values and buffer sizes: nothing is ever
 * written past cap, an add that fails leaves the reading unchanged, and every reading that
 * ends successfully is one canaryd parses, holding exactly the values that were accepted. */
static void test_builder_fuzz(void **state)
{
    (void)state;
    struct test_rng rng = {0xf022};
    static const char *const names[] = {"gas_ppm", "temperature_c", "x", "a_1", "gas",
                                        "Gas",     "gas ppm",       "",  "g\"", "_x"};
    static const char *const ids[] = {"kitchen-1", "a", "k:1.2_3", "bad id", "x\"y", ""};
    char area[512];
    int ended = 0;
    for (int round = 0; round < 20000; round++) {
        size_t cap = test_rng_below(&rng, 300);
        memset(area, 0xA5, sizeof area);
        struct cdev_reading r;
        uint64_t seq = test_rng_below(&rng, 10) == 0 ? CDEV_SEQ_MAX : test_rng_next(&rng) >> 12;
        int64_t ts = (int64_t)test_rng_below(&rng, 3) * 881838000061LL;
        const char *id = ids[test_rng_below(&rng, 6)];
        int rc = cdev_reading_begin(&r, area, cap, id, seq, ts);
        double sent[16];
        const char *sent_names[16];
        int n_sent = 0;
        for (int k = 0; rc == CDEV_OK && k < 12; k++) {
            const char *name = names[test_rng_below(&rng, 10)];
            double v = test_rng_gauss(&rng) * 1e3;
            size_t kind = test_rng_below(&rng, 8);
            if (kind == 0)
                v = NAN;
            else if (kind == 1)
                v = -INFINITY;
            char before[512];
            memcpy(before, area, sizeof area);
            size_t len = r.len;
            int arc = cdev_reading_add(&r, name, v);
            if (arc == CDEV_OK) {
                sent[n_sent] = v;
                sent_names[n_sent++] = name;
            } else {
                assert_memory_equal(area, before, sizeof area);
                assert_int_equal(r.len, len);
            }
        }
        long n = rc == CDEV_OK ? cdev_reading_end(&r) : rc;
        for (size_t k = cap; k < sizeof area; k++)
            assert_int_equal((unsigned char)area[k], 0xA5);
        if (n <= 0)
            continue;
        ended++;
        assert_true((size_t)n < cap);
        struct ingest_batch b;
        const struct reading *rd = canaryd_parse(area, (size_t)n, &b);
        assert_int_equal(rd->n_values, n_sent);
        for (int k = 0; k < n_sent; k++) {
            assert_string_equal(rd->values[k].name, sent_names[k]);
            assert_true(rd->values[k].value == sent[k] ||
                        (sent[k] == 0 && rd->values[k].value == 0));
        }
        assert_int_equal(rd->has_ts, ts > 0);
        ingest_batch_free(&b);
    }
    assert_true(ended > 1000);
}

/* ---- keys and JWS ------------------------------------------------------------------------- */

static void test_key_text(void **state)
{
    (void)state;
    struct test_rng rng = {99};
    for (int i = 0; i < 2000; i++) {
        uint8_t raw[32], key[CDEV_KEY_LEN];
        for (int k = 0; k < 32; k++)
            raw[k] = (uint8_t)test_rng_next(&rng);
        char text[64];
        /* canary device add prints what src/verify's encoder makes. */
        assert_int_equal(b64url_encode(raw, 32, text, sizeof text), 43);
        char mine[64];
        assert_int_equal(cdev_b64url_encode(raw, 32, mine, sizeof mine), 43);
        assert_string_equal(mine, text);
        assert_int_equal(cdev_key_parse(text, key), CDEV_OK);
        assert_memory_equal(key, raw, 32);
        /* A non-canonical last character (low bits set) is refused like canaryd does. */
        char alt[64];
        memcpy(alt, text, 44);
        alt[42] = alt[42] == 'A' ? 'B' : 'A' + 1 == alt[42] ? 'C' : 'B';
        bool canonical = b64url_decode(alt, 43, key, sizeof key) == 32;
        assert_int_equal(cdev_key_parse(alt, key) == CDEV_OK, canonical);
    }
    uint8_t key[CDEV_KEY_LEN];
    const char *bad[] = {"",
                         "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* 42 */
                         "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 44 */
                         "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
                         "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                         " 3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                         "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                         "3q2/7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                         "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
                         NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(key, 0x55, sizeof key);
        assert_int_equal(cdev_key_parse(bad[i], key), CDEV_EKEY);
        for (int k = 0; k < CDEV_KEY_LEN; k++)
            assert_int_equal(key[k], 0); /* no half-parsed key left behind */
    }
    /* SECURITY.md's example key. */
    assert_int_equal(cdev_key_parse("3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", key), CDEV_OK);
    assert_int_equal(key[0], 0xde);
    assert_int_equal(key[1], 0xad);
    assert_int_equal(key[2], 0xbe);
    assert_int_equal(key[3], 0xef);
}

static void test_base64url_matches_canary(void **state)
{
    (void)state;
    uint8_t data[100];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof data; len++) {
        char a[200], b[200];
        long n = b64url_encode(data, len, a, sizeof a);
        assert_int_equal(cdev_b64url_encode(data, len, b, sizeof b), n);
        assert_string_equal(a, b);
        assert_int_equal(cdev_b64url_encode(data, len, b, (size_t)n), CDEV_ENOSPACE);
    }
}

/* The SDK's token: byte-equal to canary's reference signer, accepted by canary's verifier
 * with the right key only, MAC equal to OpenSSL's HMAC over the signing input. */
static void test_jws_verifies_with_canary(void **state)
{
    (void)state;
    struct test_rng rng = {2026};
    const char *ids[] = {"kitchen-1", "a", "plant-3:line.2_x", "D0123456789"};
    for (int i = 0; i < 500; i++) {
        uint8_t key[CDEV_KEY_LEN], other[CDEV_KEY_LEN];
        for (int k = 0; k < CDEV_KEY_LEN; k++) {
            key[k] = (uint8_t)test_rng_next(&rng);
            other[k] = (uint8_t)test_rng_next(&rng);
        }
        const char *id = ids[i % 4];
        char json[600];
        struct cdev_reading r;
        assert_int_equal(cdev_reading_begin(&r, json, sizeof json, id,
                                            test_rng_next(&rng) % CDEV_SEQ_MAX,
                                            (int64_t)(test_rng_next(&rng) % 2000000000000ULL)),
                         CDEV_OK);
        size_t nm = 1 + test_rng_below(&rng, 8);
        for (size_t m = 0; m < nm; m++) {
            char name[32];
            snprintf(name, sizeof name, "metric_%zu", m);
            assert_int_equal(cdev_reading_add(&r, name, test_rng_gauss(&rng) * 100), CDEV_OK);
        }
        long jn = cdev_reading_end(&r);
        assert_true(jn > 0);

        char tok[1200], ref[1200];
        size_t size = cdev_jws_size(strlen(id), (size_t)jn);
        long tn = cdev_jws_sign(id, json, (size_t)jn, key, tok, sizeof tok);
        assert_true(tn > 0);
        assert_int_equal((size_t)tn + 1, size); /* the size function is exact */
        assert_int_equal(jws_sign_hs256(id, json, (size_t)jn, key, 32, ref, sizeof ref), tn);
        assert_string_equal(tok, ref);

        struct jws_limits lim = {.max_payload = 4096, .require_kid = true};
        struct jws_token t;
        char err[200];
        assert_int_equal(jws_parse(tok, (size_t)tn, &lim, &t, err, sizeof err), JWS_OK);
        assert_string_equal(t.kid, id);
        assert_int_equal(jws_verify_hs256(&t, key, 32), JWS_OK);
        assert_int_equal(jws_verify_hs256(&t, other, 32), JWS_ESIGNATURE);
        char payload[600];
        assert_int_equal(jws_payload(&t, payload, sizeof payload), jn);
        assert_memory_equal(payload, json, (size_t)jn);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        HMAC(EVP_sha256(), key, 32, (const unsigned char *)tok, t.signing_input_len, mac, &mac_len);
        assert_int_equal(mac_len, 32);
        assert_memory_equal(mac, t.mac, 32);

        /* Every buffer one short of the exact size is refused, with nothing past cap. */
        if (i < 20) {
            char area[1300];
            for (size_t cap = 0; cap < size; cap++) {
                memset(area, 0xA5, sizeof area);
                assert_int_equal(cdev_jws_sign(id, json, (size_t)jn, key, area, cap),
                                 CDEV_ENOSPACE);
                for (size_t k = cap; k < sizeof area; k++)
                    assert_int_equal((unsigned char)area[k], 0xA5);
            }
            assert_int_equal(cdev_jws_sign(id, json, (size_t)jn, key, area, size), tn);
            assert_string_equal(area, tok);
        }
    }
    char tok[256];
    uint8_t key[CDEV_KEY_LEN] = {0};
    assert_int_equal(cdev_jws_sign("k", NULL, 5, key, tok, sizeof tok), CDEV_EARG);
    assert_int_equal(cdev_jws_sign("k", "{}", 2, NULL, tok, sizeof tok), CDEV_EARG);
}

/* ---- seq persistence --------------------------------------------------------------------- */

/* Flash in memory, with faults: a save can fail before writing (power lost before the
 * write) or after writing (power lost before the caller learned of it). */
struct mem_flash {
    bool has;
    uint64_t mark;
    int saves;
    int fail_load;         /* load returns this error when non-zero */
    bool fail_before;      /* the next save fails and writes nothing */
    bool written_then_cut; /* the next save writes, then "power is lost" (returns an error) */
};

static int mem_load(void *ctx, uint64_t *mark)
{
    struct mem_flash *f = ctx;
    if (f->fail_load != 0)
        return f->fail_load;
    if (!f->has)
        return CDEV_ENOTFOUND;
    *mark = f->mark;
    return CDEV_OK;
}

static int mem_save(void *ctx, uint64_t mark)
{
    struct mem_flash *f = ctx;
    if (f->fail_before) {
        f->fail_before = false;
        return CDEV_ESTORE;
    }
    f->has = true;
    f->mark = mark;
    f->saves++;
    if (f->written_then_cut) {
        f->written_then_cut = false;
        return CDEV_ESTORE;
    }
    return CDEV_OK;
}

static void test_seq_blocks(void **state)
{
    (void)state;
    struct mem_flash flash = {0};
    struct cdev_seq_store store = {mem_load, mem_save, &flash};
    struct cdev_seq s;
    assert_int_equal(cdev_seq_start(&s, &store, 100, 1), CDEV_OK);
    assert_int_equal(flash.saves, 0); /* nothing written until a seq is needed */
    uint64_t seq;
    for (uint64_t want = 1; want <= 250; want++) {
        assert_int_equal(cdev_seq_next(&s, &seq), CDEV_OK);
        assert_true(seq == want);
        /* The mark is always beyond every seq handed out. */
        assert_true(flash.has && flash.mark > seq);
    }
    assert_int_equal(flash.saves, 3); /* 1, 101, 201: one write per 100 seqs */
    assert_true(flash.mark == 301);

    /* A reboot resumes from the mark: 251..300 are skipped, never reused. */
    assert_int_equal(cdev_seq_start(&s, &store, 100, 1), CDEV_OK);
    assert_int_equal(cdev_seq_next(&s, &seq), CDEV_OK);
    assert_true(seq == 301 && flash.mark == 401);

    /* A failing save hands out nothing; the next call tries again. */
    struct mem_flash f2 = {0};
    struct cdev_seq_store st2 = {mem_load, mem_save, &f2};
    assert_int_equal(cdev_seq_start(&s, &st2, 2, 5), CDEV_OK);
    f2.fail_before = true;
    assert_int_equal(cdev_seq_next(&s, &seq), CDEV_ESTORE);
    assert_int_equal(cdev_seq_next(&s, &seq), CDEV_OK);
    assert_true(seq == 5);

    /* Unreadable storage: refuse to start (starting at first_seq again could repeat). */
    f2.fail_load = CDEV_ESTORE;
    assert_int_equal(cdev_seq_start(&s, &st2, 2, 5), CDEV_ESTORE);
    assert_int_equal(cdev_seq_next(&s, &seq), CDEV_ESEQ); /* not started */
    f2.fail_load = -999;                                  /* any error at all */
    assert_int_equal(cdev_seq_start(&s, &st2, 2, 5), CDEV_ESTORE);

    /* The end of the range: seqs stop below 2^53, the mark stops at it. */
    struct mem_flash f3 = {0};
    struct cdev_seq_store st3 = {mem_load, mem_save, &f3};
    assert_int_equal(cdev_seq_start(&s, &st3, 100, CDEV_SEQ_MAX - 3), CDEV_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cdev_seq_next(&s, &seq), CDEV_OK);
    assert_true(seq == CDEV_SEQ_MAX - 1 && f3.mark == CDEV_SEQ_MAX);
    assert_int_equal(cdev_seq_next(&s, &seq), CDEV_ESEQ);
    assert_int_equal(cdev_seq_start(&s, &st3, 100, 1), CDEV_ESEQ);

    /* Bad arguments. */
    assert_int_equal(cdev_seq_start(&s, &store, 0, 1), CDEV_EARG);
    assert_int_equal(cdev_seq_start(&s, NULL, 10, 1), CDEV_EARG);
    assert_int_equal(cdev_seq_start(NULL, &store, 10, 1), CDEV_EARG);
    assert_int_equal(cdev_seq_next(NULL, &seq), CDEV_EARG);
}

/* 2,000 boots, each handing out a random number of seqs (often none), with power lost at
 * random: during a save before it wrote, right after it wrote, or between seqs. Across all
 * boots every seq handed out is higher than every earlier one. */
static void test_seq_never_repeats_across_reboots(void **state)
{
    (void)state;
    struct test_rng rng = {0xb007};
    struct mem_flash flash = {0};
    struct cdev_seq_store store = {mem_load, mem_save, &flash};
    uint64_t last = 0, handed = 0;
    bool any = false;
    for (int boot = 0; boot < 2000; boot++) {
        struct cdev_seq s;
        uint32_t block = (uint32_t)(1 + test_rng_below(&rng, 20));
        assert_int_equal(cdev_seq_start(&s, &store, block, 1), CDEV_OK);
        size_t n = test_rng_below(&rng, 60);
        for (size_t i = 0; i < n; i++) {
            size_t fault = test_rng_below(&rng, 40);
            flash.fail_before = fault == 0;
            flash.written_then_cut = fault == 1;
            uint64_t seq;
            int rc = cdev_seq_next(&s, &seq);
            if (rc == CDEV_ESTORE)
                break; /* the power cut: reboot */
            assert_int_equal(rc, CDEV_OK);
            if (any && seq <= last)
                fail_msg("boot %d: seq %llu after %llu", boot, (unsigned long long)seq,
                         (unsigned long long)last);
            last = seq;
            any = true;
            handed++;
        }
        flash.fail_before = flash.written_then_cut = false;
    }
    assert_true(handed > 10000);
    /* Wasted seqs are bounded by a block per boot. */
    assert_true(last < handed + 2000 * 21);
}

/* A device through the whole path: key text, store, clock hook, signed readings that
 * canary's verifier takes, seq rising by one. */
static int64_t clock_value;
static int64_t test_clock(void *ctx)
{
    return *(int64_t *)ctx;
}

static void test_device(void **state)
{
    (void)state;
    struct mem_flash flash = {0};
    struct cdev_seq_store store = {mem_load, mem_save, &flash};
    struct cdev_device d;
    const char *key_text = "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_int_equal(cdev_device_init(&d, "bad id", key_text, &store, 10, 1, NULL, NULL),
                     CDEV_EDEVICE);
    assert_int_equal(cdev_device_init(&d, "kitchen-1", "short", &store, 10, 1, NULL, NULL),
                     CDEV_EKEY);
    flash.fail_load = CDEV_ESTORE;
    assert_int_equal(cdev_device_init(&d, "kitchen-1", key_text, &store, 10, 1, NULL, NULL),
                     CDEV_ESTORE);
    for (size_t i = 0; i < sizeof d.key; i++)
        assert_int_equal(d.key[i], 0); /* a failed init leaves no key behind */
    flash.fail_load = 0;
    clock_value = 0;
    assert_int_equal(
        cdev_device_init(&d, "kitchen-1", key_text, &store, 10, 1, test_clock, &clock_value),
        CDEV_OK);
    uint8_t key[CDEV_KEY_LEN];
    assert_int_equal(cdev_key_parse(key_text, key), CDEV_OK);
    for (int i = 0; i < 25; i++) {
        clock_value = i < 3 ? 0 : 1763676000000LL + i; /* SNTP answers after 3 readings */
        char json[256], tok[512];
        struct cdev_reading r;
        assert_int_equal(cdev_device_begin(&d, &r, json, sizeof json), CDEV_OK);
        assert_int_equal(cdev_reading_add(&r, "gas_ppm", 400 + i), CDEV_OK);
        long tn = cdev_device_sign(&d, &r, tok, sizeof tok);
        assert_true(tn > 0);
        struct jws_limits lim = {.max_payload = 4096, .require_kid = true};
        struct jws_token t;
        char err[200], payload[256];
        assert_int_equal(jws_parse(tok, (size_t)tn, &lim, &t, err, sizeof err), JWS_OK);
        assert_int_equal(jws_verify_hs256(&t, key, 32), JWS_OK);
        long pn = jws_payload(&t, payload, sizeof payload);
        struct ingest_batch b;
        const struct reading *rd = canaryd_parse(payload, (size_t)pn, &b);
        assert_string_equal(rd->device, "kitchen-1");
        assert_true(rd->seq == (uint64_t)i + 1);
        assert_int_equal(rd->has_ts, i >= 3);
        if (i >= 3)
            assert_true(rd->ts_ms == clock_value);
        ingest_batch_free(&b);
    }
    /* A reading that is never signed still used its seq. */
    char json[256], tok[512];
    struct cdev_reading r;
    assert_int_equal(cdev_device_begin(&d, &r, json, sizeof json), CDEV_OK);
    assert_int_equal(cdev_device_sign(&d, &r, tok, sizeof tok), CDEV_EEMPTY);
    assert_int_equal(cdev_device_begin(&d, &r, json, sizeof json), CDEV_OK);
    assert_non_null(strstr(json, "\"seq\":27,"));
    cdev_device_clear(&d);
    for (size_t i = 0; i < sizeof d.key; i++)
        assert_int_equal(d.key[i], 0);
}

/* A fresh directory for file-store tests. */
static void temp_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/canary-sdk-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_seq_file_store(void **state)
{
    (void)state;
    char dir[64], path[128], cmd[160];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/seq", dir);
    struct cdev_seq_file f;
    assert_int_equal(cdev_seq_file_init(&f, path), CDEV_OK);
    uint64_t mark = 0;
    assert_int_equal(cdev_seq_file_load(&f, &mark), CDEV_ENOTFOUND);
    assert_int_equal(cdev_seq_file_save(&f, 4200), CDEV_OK);
    assert_int_equal(cdev_seq_file_load(&f, &mark), CDEV_OK);
    assert_true(mark == 4200);
    char text[64] = "";
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    assert_non_null(fgets(text, sizeof text, in));
    fclose(in);
    assert_string_equal(text, "4200\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(access(f.tmp, F_OK), -1); /* no temporary file left */

    /* A crash while writing the temporary file leaves the old mark in force. */
    write_file(f.tmp, "99");
    assert_int_equal(cdev_seq_file_load(&f, &mark), CDEV_OK);
    assert_true(mark == 4200);
    assert_int_equal(cdev_seq_file_save(&f, 4300), CDEV_OK);
    assert_int_equal(cdev_seq_file_load(&f, &mark), CDEV_OK);
    assert_true(mark == 4300);

    /* Anything but digits and one newline is refused, not read as 0. */
    const char *garbage[] = {"",
                             "\n",
                             "12",
                             "12\n\n",
                             "-1\n",
                             "1 2\n",
                             "0x10\n",
                             "abc\n",
                             " 12\n",
                             "12 \n",
                             "99999999999999999\n",
                             "9007199254740993\n"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        write_file(path, garbage[i]);
        mark = 77;
        assert_int_equal(cdev_seq_file_load(&f, &mark), CDEV_ESTORE);
        assert_true(mark == 77);
    }
    write_file(path, "9007199254740992\n");
    assert_int_equal(cdev_seq_file_load(&f, &mark), CDEV_OK);
    assert_true(mark == CDEV_SEQ_MAX);
    write_file(path, "0\n");
    assert_int_equal(cdev_seq_file_load(&f, &mark), CDEV_OK);
    assert_true(mark == 0);

    /* A path that is a directory, or in a directory that does not exist. */
    struct cdev_seq_file g;
    assert_int_equal(cdev_seq_file_init(&g, dir), CDEV_OK);
    assert_int_equal(cdev_seq_file_load(&g, &mark), CDEV_ESTORE);
    snprintf(cmd, sizeof cmd, "%s/missing/seq", dir);
    assert_int_equal(cdev_seq_file_init(&g, cmd), CDEV_OK);
    assert_int_equal(cdev_seq_file_save(&g, 5), CDEV_ESTORE);
    assert_int_equal(cdev_seq_file_init(&g, ""), CDEV_EARG);
    char *longp = test_repeat("/tmp/", "x", CDEV_SEQ_FILE_PATH_MAX, "");
    assert_int_equal(cdev_seq_file_init(&g, longp), CDEV_EARG);
    free(longp);

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Real crashes: a child hands out seqs from the file store (block 7: a save every 7 seqs)
 * and writes each to a pipe before "sending" it; it is killed with SIGKILL after a random
 * 0-30 ms, 40 times over. The seqs of all its lives must rise strictly. */
static void test_seq_file_survives_kill_9(void **state)
{
    (void)state;
    char dir[64], path[128], cmd[160];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/seq", dir);
    struct test_rng rng = {0xdead};
    uint64_t last = 0, total = 0;
    bool any = false;
    for (int life = 0; life < 40; life++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            struct cdev_seq_file f;
            struct cdev_seq s;
            if (cdev_seq_file_init(&f, path) != CDEV_OK ||
                cdev_seq_start(&s, &f.store, 7, 1) != CDEV_OK)
                _exit(2);
            for (;;) {
                uint64_t seq;
                if (cdev_seq_next(&s, &seq) != CDEV_OK)
                    _exit(3);
                if (write(fds[1], &seq, sizeof seq) != (ssize_t)sizeof seq)
                    _exit(4);
            }
        }
        close(fds[1]);
        struct timespec ts = {0, (long)test_rng_below(&rng, 30000000)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        uint64_t seq;
        while (read(fds[0], &seq, sizeof seq) == (ssize_t)sizeof seq) {
            if (any && seq <= last)
                fail_msg("life %d: seq %llu after %llu", life, (unsigned long long)seq,
                         (unsigned long long)last);
            last = seq;
            any = true;
            total++;
        }
        close(fds[0]);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }
    print_message("kill -9 test: %llu seqs in 40 lives, the last %llu\n", (unsigned long long)total,
                  (unsigned long long)last);
    /* The children did hand out seqs across many saves (most kills land in an fsync), and
     * each life skipped at most a block. */
    assert_true(total > 80);
    assert_true(last <= total + 40 * 7);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- key files and locales ---------------------------------------------------------------- */

static void test_key_file(void **state)
{
    (void)state;
    char dir[64], path[128], cmd[160], key[44], err[256];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/keys", dir);
    const char *k1 = "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const char *k2 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    /* canary device add --keys-out: one line per device; a rotated key appended later wins. */
    char text[512];
    snprintf(text, sizeof text, "# keys\n\nkitchen-1 %s\nporch-1 %s\nkitchen-1 %s\n", k2, k1, k1);
    write_file(path, text);
    chmod(path, 0600);
    assert_int_equal(cdev_keyfile_read(path, "kitchen-1", key, err, sizeof err), 0);
    assert_string_equal(key, k1);
    assert_int_equal(cdev_keyfile_read(path, "porch-1", key, err, sizeof err), 0);
    assert_string_equal(key, k1);
    assert_int_equal(cdev_keyfile_read(path, "garage-1", key, err, sizeof err), -1);
    assert_non_null(strstr(err, "no key for device garage-1"));
    assert_string_equal(key, "");
    /* A bare key, with CRLF and surrounding blanks. */
    snprintf(text, sizeof text, "  %s \r\n", k2);
    write_file(path, text);
    assert_int_equal(cdev_keyfile_read(path, "any-1", key, err, sizeof err), 0);
    assert_string_equal(key, k2);
    /* Readable by group or others: refused, whatever it holds. */
    const mode_t modes[] = {0644, 0640, 0604, 0660};
    for (size_t i = 0; i < 4; i++) {
        chmod(path, modes[i]);
        assert_int_equal(cdev_keyfile_read(path, "any-1", key, err, sizeof err), -1);
        assert_non_null(strstr(err, "chmod 600"));
    }
    chmod(path, 0400);
    assert_int_equal(cdev_keyfile_read(path, "any-1", key, err, sizeof err), 0);
    chmod(path, 0600);
    /* Malformed, oversized and hostile contents: an error naming the line, never a key. */
    char *longline = test_repeat("kitchen-1 ", "A", 600, "\n");
    char *longid = test_repeat("", "k", 700, " 3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    const char *bad[] = {"kitchen-1 3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",   /* 42 */
                         "kitchen-1 3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", /* 44 */
                         "kitchen-1 3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA extra\n",
                         "kitchen-1\t\n",
                         "kitchen-1 \n",
                         longline,
                         "\x01\x02\xff\xfe\n",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i]);
        memset(key, 'Z', sizeof key);
        assert_int_equal(cdev_keyfile_read(path, "kitchen-1", key, err, sizeof err), -1);
        assert_true(err[0] != '\0');
        for (size_t k = 0; k < sizeof key; k++)
            assert_int_equal(key[k], 0); /* nothing of a key left behind */
    }
    /* An id longer than a line buffer is read in pieces; none of them is this device. */
    write_file(path, longid);
    assert_int_equal(cdev_keyfile_read(path, "kitchen-1", key, err, sizeof err), -1);
    free(longline);
    free(longid);
    snprintf(text, sizeof text, "%s/missing", dir);
    assert_int_equal(cdev_keyfile_read(text, "kitchen-1", key, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A device that calls setlocale() for its display must still send JSON numbers: under a
 * German LC_NUMERIC, printf writes "24,1"; the SDK must write "24.1". The locale is compiled
 * into a temporary directory with localedef (Debian's locales package). */
static void test_numbers_under_a_comma_locale(void **state)
{
    (void)state;
    char dir[64], cmd[256];
    temp_dir(dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
    assert_int_equal(system(cmd), 0);
    setenv("LOCPATH", dir, 1);
    assert_non_null(setlocale(LC_NUMERIC, "de_DE.UTF-8"));
    char t[64];
    snprintf(t, sizeof t, "%.1f", 24.1);
    assert_string_equal(t, "24,1"); /* the locale is really in force */
    assert_int_equal(cdev_json_number(24.1, t, sizeof t), 4);
    assert_string_equal(t, "24.1");
    assert_true(cdev_json_number(-1.5e-7, t, sizeof t) > 0);
    assert_string_equal(t, "-1.5e-07");
    assert_true(cdev_json_number(1.0 / 3, t, sizeof t) > 0);
    assert_string_equal(t, "0.3333333333333333");
    setlocale(LC_NUMERIC, "C");
    unsetenv("LOCPATH");
    check_value_round_trip(1.0 / 3);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fips180_vectors),
        cmocka_unit_test(test_hmac_rfc4231_vectors),
        cmocka_unit_test(test_hash_and_hmac_match_openssl),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_reading_is_the_wire_format),
        cmocka_unit_test(test_numbers_round_trip_through_canaryd),
        cmocka_unit_test(test_non_finite_values_refused),
        cmocka_unit_test(test_fixed_point_values),
        cmocka_unit_test(test_names_agree_with_canaryd),
        cmocka_unit_test(test_hostile_names_refused),
        cmocka_unit_test(test_json_string_escaping),
        cmocka_unit_test(test_duplicates_and_too_many),
        cmocka_unit_test(test_every_buffer_size),
        cmocka_unit_test(test_builder_fuzz),
        cmocka_unit_test(test_key_text),
        cmocka_unit_test(test_base64url_matches_canary),
        cmocka_unit_test(test_jws_verifies_with_canary),
        cmocka_unit_test(test_seq_blocks),
        cmocka_unit_test(test_seq_never_repeats_across_reboots),
        cmocka_unit_test(test_device),
        cmocka_unit_test(test_seq_file_store),
        cmocka_unit_test(test_seq_file_survives_kill_9),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_numbers_under_a_comma_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
