/* password.h — people's passwords at rest: scrypt (RFC 7914) through OpenSSL, in a
 * self-describing string, verified in constant time.
 *
 * A stored password is
 *     $scrypt$ln=15$r=8$p=1$<salt>$<hash>
 * with N = 2^ln, the block size r and the parallelism p of RFC 7914, a 16-byte random salt
 * and a 32-byte derived key, both unpadded base64url. The parameters travel with the hash,
 * so raising them later leaves old hashes verifiable (and password_needs_rehash() says
 * which to renew at the next login). scrypt is memory-hard: one hash with the defaults
 * needs 128 * r * N = 32 MiB and about 60-90 ms of one core here (docs/ACCESS.md), which
 * makes guessing from a stolen database slow and GPU farms costly. Device tokens and API
 * tokens are random 256-bit secrets and need no such thing (SHA-256, verify/devkey.h).
 *
 * Parameters read from a string are bounded (ln 10..20, r 1..32, p 1..16, 128*r*N at most
 * 256 MiB), so a tampered row cannot make a verification take the machine's memory.
 * Plaintext passwords never leave these functions except in the caller's buffer; derived
 * keys are cleansed. Pure functions; randomness from OpenSSL's RAND_bytes. */
#ifndef CANARY_ACCESS_PASSWORD_H
#define CANARY_ACCESS_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSWORD_HASH_MAX   160 /* buffer for the encoded string, with NUL */
#define PASSWORD_MIN_LEN    10  /* characters (bytes of UTF-8) a new password needs at least */
#define PASSWORD_MAX_LEN    256 /* longer input is refused, not hashed */
#define PASSWORD_SALT_LEN   16
#define PASSWORD_KEY_LEN    32
#define PASSWORD_DEFAULT_LN 15
#define PASSWORD_DEFAULT_R  8
#define PASSWORD_DEFAULT_P  1

struct password_params {
    unsigned ln; /* log2 of N */
    unsigned r;
    unsigned p;
};

/* The parameters new hashes use (ln 15, r 8, p 1). */
struct password_params password_default_params(void);

/* Checks a new password's length (PASSWORD_MIN_LEN..PASSWORD_MAX_LEN bytes, no NUL, no
 * control characters). Returns 0 or CANARY_EINVAL with a message that never repeats it. */
int password_policy_check(const char *password, size_t len, char *err, size_t errlen);

/* Hashes password with params and a fresh salt into out. Returns 0, CANARY_EINVAL (bad
 * parameters, over-long password) or CANARY_EIO (OpenSSL failed). */
int password_hash(const char *password, size_t len, struct password_params params,
                  char out[PASSWORD_HASH_MAX], char *err, size_t errlen);

/* Parses an encoded string. Returns 0 with the parameters, salt and key, or CANARY_EINVAL
 * naming what is wrong (unknown scheme, a parameter out of bounds, bad base64url, wrong
 * lengths, trailing text). */
int password_parse(const char *encoded, struct password_params *params,
                   uint8_t salt[PASSWORD_SALT_LEN], uint8_t key[PASSWORD_KEY_LEN], char *err,
                   size_t errlen);

/* Verifies password against encoded: derives the key with the string's own parameters and
 * salt and compares in constant time. Returns 0 when it matches, CANARY_EPERM when it does
 * not, CANARY_EINVAL when encoded is malformed, CANARY_EIO when OpenSSL failed. */
int password_verify(const char *password, size_t len, const char *encoded);

/* Spends the time of one verification with the default parameters and matches nothing:
 * called for unknown or disabled users so the answer's timing does not tell them apart. */
void password_verify_dummy(const char *password, size_t len);

/* True when encoded uses weaker parameters than params (a rehash at the next login). */
bool password_needs_rehash(const char *encoded, struct password_params params);

/* A random password of n base64url characters (n < cap), for `canary user add` without
 * one. Returns 0 or CANARY_EIO. */
int password_generate(char *out, size_t cap, size_t n);

#endif
