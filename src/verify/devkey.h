/* devkey.h — device credentials at rest: the master key, sealed device keys, hashed tokens.
 *
 * A device has two kinds of credential (ARCHITECTURE.md, "Authenticity"):
 *  - an HMAC key (32 random bytes) that signs its readings as JWS HS256. canaryd must be
 *    able to recompute MACs, so the key is stored ENCRYPTED: AES-256-GCM under the master
 *    key (security.master_key), with a random 96-bit nonce and, as associated data, the
 *    device id and key version, so a sealed key copied to another device's row does not
 *    open (NIST SP 800-38D);
 *  - a bearer token ("cnt_" + 43 base64url characters, 256 random bits) for HTTP devices
 *    that cannot sign. canaryd only compares it, so it is stored HASHED (SHA-256: the token
 *    has full entropy, so a slow KDF would add nothing).
 * Secrets are shown to the operator once, at creation, as base64url text; they never reach
 * a log line (the callers log versions and ids only) and buffers holding them are
 * cleansed. Pure functions over caller buffers; randomness from OpenSSL's RAND_bytes. */
#ifndef CANARY_VERIFY_DEVKEY_H
#define CANARY_VERIFY_DEVKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVKEY_LEN        32                     /* HMAC key, master key */
#define DEVKEY_SEALED_LEN (12 + DEVKEY_LEN + 16) /* nonce | ciphertext | GCM tag */
#define DEVKEY_TEXT_LEN   44                     /* base64url of 32 bytes, with NUL */
#define DEVKEY_TOKEN_LEN  (4 + 43)               /* "cnt_" + base64url of 32 bytes */
#define DEVKEY_HASH_LEN   32                     /* SHA-256 */

/* Reads a master key: 64 hex digits, or 32 bytes as base64url (43 characters) or standard
 * base64 (44 with '='); surrounding whitespace is ignored. Returns 0 or CANARY_EINVAL with a
 * message (that never repeats the text). */
int devkey_master_parse(const char *text, uint8_t out[DEVKEY_LEN], char *err, size_t errlen);

/* Fills out with n random bytes. Returns 0 or CANARY_EIO. */
int devkey_random(uint8_t *out, size_t n);

/* Encrypts key for (device, version) under master into sealed. Returns 0 or CANARY_EIO. */
int devkey_seal(const uint8_t master[DEVKEY_LEN], const char *device, uint32_t version,
                const uint8_t key[DEVKEY_LEN], uint8_t sealed[DEVKEY_SEALED_LEN]);

/* Decrypts and authenticates. Returns 0, or CANARY_EPERM when the master key is wrong or the
 * row was altered or moved. */
int devkey_open(const uint8_t master[DEVKEY_LEN], const char *device, uint32_t version,
                const uint8_t sealed[DEVKEY_SEALED_LEN], uint8_t key[DEVKEY_LEN]);

/* A new bearer token (NUL-terminated, DEVKEY_TOKEN_LEN characters) and its hash.
 * Returns 0 or CANARY_EIO. */
int devkey_token_new(char token[DEVKEY_TOKEN_LEN + 1], uint8_t hash[DEVKEY_HASH_LEN]);

/* SHA-256 of a presented token. */
void devkey_token_hash(const char *token, size_t len, uint8_t hash[DEVKEY_HASH_LEN]);

/* Parses a device key shown by `canary device add` (43 base64url characters). Returns 0 or
 * CANARY_EINVAL. */
int devkey_parse(const char *text, uint8_t key[DEVKEY_LEN]);

/* Formats a key as base64url (for showing once). */
void devkey_format(const uint8_t key[DEVKEY_LEN], char out[DEVKEY_TEXT_LEN]);

#endif
