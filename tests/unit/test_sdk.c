/* test_sdk.c — unit tests of the device SDK (sdk/): its own SHA-256 and HMAC-SHA256 against
 * FIPS 180 and RFC 4231 vectors and against OpenSSL on random inputs. The same file is built
 * twice (tests/CMakeLists.txt): test_sdk against the built-in hash, test_sdk_mbedtls against
 * the CDEV_USE_MBEDTLS backend an ESP32 build uses. */
#include "canary_device.h"
#include "canary_sha256.h"
#include "unit_support.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fips180_vectors),
        cmocka_unit_test(test_hmac_rfc4231_vectors),
        cmocka_unit_test(test_hash_and_hmac_match_openssl),
        cmocka_unit_test(test_wipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
