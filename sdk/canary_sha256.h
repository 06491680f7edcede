/* canary_sha256.h — SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for the device SDK.
 *
 * Why the SDK carries its own: the devices it runs on (ESP32-class microcontrollers) have no
 * OpenSSL, and the MAC of a signed reading is the only cryptography a device needs. The
 * built-in code is small (one block function, no tables beyond the 64 round constants),
 * allocation-free, and checked in tests/unit/test_sdk.c against FIPS 180 and RFC 4231
 * vectors and against OpenSSL on random inputs. On ESP-IDF, building with
 * CDEV_USE_MBEDTLS defined (the component's Kconfig option) routes both functions to
 * mbedtls' stable md API instead, which uses the chip's SHA accelerator.
 *
 * Both functions are pure and reentrant: no globals, no I/O, no heap (the built-in code);
 * they never fail with the built-in code and return CDEV_ECRYPTO only when mbedtls does. */
#ifndef CANARY_SHA256_H
#define CANARY_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CDEV_SHA256_LEN   32 /* digest bytes */
#define CDEV_SHA256_BLOCK 64 /* block bytes: HMAC's key pad length */

/* out = SHA-256(data[0..len)). Returns 0, or CDEV_ECRYPTO (mbedtls only). */
int cdev_sha256(const void *data, size_t len, uint8_t out[CDEV_SHA256_LEN]);

/* out = HMAC-SHA256(key, data) (RFC 2104; a key longer than 64 bytes is hashed first, as
 * the RFC says). Returns 0, or CDEV_ECRYPTO (mbedtls only). */
int cdev_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[CDEV_SHA256_LEN]);

#endif
