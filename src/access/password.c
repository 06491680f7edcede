/* password.c — scrypt password hashes in a self-describing string; see password.h.
 * RFC 7914 (scrypt) through OpenSSL's EVP_PBE_scrypt; constant-time comparison with
 * CRYPTO_memcmp. */
#include "access/password.h"

#include "core/error.h"
#include "verify/jws.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_MIN     10
#define LN_MAX     20
#define R_MAX      32
#define P_MAX      16
#define MEM_MAX_MB 256

struct password_params password_default_params(void)
{
    struct password_params p = {PASSWORD_DEFAULT_LN, PASSWORD_DEFAULT_R, PASSWORD_DEFAULT_P};
    return p;
}

static bool params_ok(struct password_params p)
{
    if (p.ln < LN_MIN || p.ln > LN_MAX || p.r < 1 || p.r > R_MAX || p.p < 1 || p.p > P_MAX)
        return false;
    uint64_t mem = 128ull * p.r * (1ull << p.ln);
    return mem <= (uint64_t)MEM_MAX_MB << 20;
}

int password_policy_check(const char *password, size_t len, char *err, size_t errlen)
{
    if (len < PASSWORD_MIN_LEN || len > PASSWORD_MAX_LEN) {
        canary_errf(err, errlen, "a password is %d to %d characters long", PASSWORD_MIN_LEN,
                    PASSWORD_MAX_LEN);
        return CANARY_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)password[i];
        if (c < 0x20 || c == 0x7f) {
            canary_errf(err, errlen, "a password cannot hold control characters");
            return CANARY_EINVAL;
        }
    }
    return CANARY_OK;
}

static int derive(const char *password, size_t len, struct password_params p,
                  const uint8_t salt[PASSWORD_SALT_LEN], uint8_t key[PASSWORD_KEY_LEN])
{
    uint64_t n = 1ull << p.ln;
    /* OpenSSL checks the memory it will need against maxmem: 128*r*(N + p) plus a little. */
    uint64_t maxmem = 128ull * p.r * (n + p.p + 2) + (1u << 20);
    int ok = EVP_PBE_scrypt(password, len, salt, PASSWORD_SALT_LEN, n, p.r, p.p, maxmem, key,
                            PASSWORD_KEY_LEN);
    return ok == 1 ? CANARY_OK : CANARY_EIO;
}

int password_hash(const char *password, size_t len, struct password_params params,
                  char out[PASSWORD_HASH_MAX], char *err, size_t errlen)
{
    out[0] = '\0';
    if (!params_ok(params)) {
        canary_errf(err, errlen, "scrypt parameters out of bounds (ln %d..%d, r 1..%d, p 1..%d)",
                    LN_MIN, LN_MAX, R_MAX, P_MAX);
        return CANARY_EINVAL;
    }
    if (len > PASSWORD_MAX_LEN) {
        canary_errf(err, errlen, "a password is at most %d characters long", PASSWORD_MAX_LEN);
        return CANARY_EINVAL;
    }
    uint8_t salt[PASSWORD_SALT_LEN], key[PASSWORD_KEY_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1 || derive(password, len, params, salt, key) != 0) {
        OPENSSL_cleanse(key, sizeof key);
        canary_errf(err, errlen, "cannot hash the password (OpenSSL scrypt failed)");
        return CANARY_EIO;
    }
    char salt64[32], key64[48];
    b64url_encode(salt, sizeof salt, salt64, sizeof salt64);
    b64url_encode(key, sizeof key, key64, sizeof key64);
    OPENSSL_cleanse(key, sizeof key);
    snprintf(out, PASSWORD_HASH_MAX, "$scrypt$ln=%u$r=%u$p=%u$%s$%s", params.ln, params.r, params.p,
             salt64, key64);
    OPENSSL_cleanse(key64, sizeof key64);
    return CANARY_OK;
}

/* Reads "<name>=<decimal>$" at *p (no sign, no leading zero, at most 3 digits). */
static bool read_param(const char **p, const char *name, unsigned *out)
{
    size_t n = strlen(name);
    if (strncmp(*p, name, n) != 0 || (*p)[n] != '=')
        return false;
    const char *d = *p + n + 1;
    unsigned v = 0;
    size_t digits = 0;
    while (d[digits] >= '0' && d[digits] <= '9' && digits < 4)
        v = v * 10 + (unsigned)(d[digits++] - '0');
    if (digits == 0 || digits > 3 || (digits > 1 && d[0] == '0') || d[digits] != '$')
        return false;
    *out = v;
    *p = d + digits + 1;
    return true;
}

/* Decodes the base64url field at *p up to the next '$' or the end into exactly want bytes. */
static bool read_b64(const char **p, uint8_t *out, size_t want, bool last)
{
    const char *end = last ? *p + strlen(*p) : strchr(*p, '$');
    if (end == NULL)
        return false;
    size_t n = (size_t)(end - *p);
    size_t expect = (want * 4 + 2) / 3; /* unpadded */
    if (n != expect)
        return false;
    uint8_t buf[64];
    long got = b64url_decode(*p, n, buf, sizeof buf);
    if (got != (long)want) {
        OPENSSL_cleanse(buf, sizeof buf);
        return false;
    }
    memcpy(out, buf, want);
    OPENSSL_cleanse(buf, sizeof buf);
    *p = last ? end : end + 1;
    return true;
}

int password_parse(const char *encoded, struct password_params *params,
                   uint8_t salt[PASSWORD_SALT_LEN], uint8_t key[PASSWORD_KEY_LEN], char *err,
                   size_t errlen)
{
    if (encoded == NULL || strlen(encoded) >= PASSWORD_HASH_MAX) {
        canary_errf(err, errlen, "not a password hash (empty or longer than %d characters)",
                    PASSWORD_HASH_MAX - 1);
        return CANARY_EINVAL;
    }
    const char *p = encoded;
    if (strncmp(p, "$scrypt$", 8) != 0) {
        canary_errf(err, errlen, "unknown password hash scheme (expected $scrypt$)");
        return CANARY_EINVAL;
    }
    p += 8;
    struct password_params v;
    if (!read_param(&p, "ln", &v.ln) || !read_param(&p, "r", &v.r) || !read_param(&p, "p", &v.p)) {
        canary_errf(err, errlen, "malformed scrypt parameters (expected ln=..$r=..$p=..$)");
        return CANARY_EINVAL;
    }
    if (!params_ok(v)) {
        canary_errf(err, errlen,
                    "scrypt parameters out of bounds (ln %d..%d, r 1..%d, p 1..%d, at most "
                    "%d MiB)",
                    LN_MIN, LN_MAX, R_MAX, P_MAX, MEM_MAX_MB);
        return CANARY_EINVAL;
    }
    if (!read_b64(&p, salt, PASSWORD_SALT_LEN, false) ||
        !read_b64(&p, key, PASSWORD_KEY_LEN, true) || *p != '\0') {
        OPENSSL_cleanse(key, PASSWORD_KEY_LEN);
        canary_errf(err, errlen, "malformed salt or hash (expected %d and %d bytes of base64url)",
                    PASSWORD_SALT_LEN, PASSWORD_KEY_LEN);
        return CANARY_EINVAL;
    }
    *params = v;
    return CANARY_OK;
}

int password_verify(const char *password, size_t len, const char *encoded)
{
    struct password_params p;
    uint8_t salt[PASSWORD_SALT_LEN], want[PASSWORD_KEY_LEN], got[PASSWORD_KEY_LEN];
    if (password_parse(encoded, &p, salt, want, NULL, 0) != 0)
        return CANARY_EINVAL;
    if (len > PASSWORD_MAX_LEN) {
        /* Spend the time anyway: refusing at once would tell over-long guesses apart. */
        password_verify_dummy("", 0);
        OPENSSL_cleanse(want, sizeof want);
        return CANARY_EPERM;
    }
    int rc = derive(password, len, p, salt, got);
    if (rc == 0)
        rc = CRYPTO_memcmp(got, want, sizeof want) == 0 ? CANARY_OK : CANARY_EPERM;
    OPENSSL_cleanse(got, sizeof got);
    OPENSSL_cleanse(want, sizeof want);
    return rc;
}

void password_verify_dummy(const char *password, size_t len)
{
    static const uint8_t salt[PASSWORD_SALT_LEN] = {0};
    uint8_t key[PASSWORD_KEY_LEN];
    if (len > PASSWORD_MAX_LEN)
        len = PASSWORD_MAX_LEN;
    derive(password, len, password_default_params(), salt, key);
    OPENSSL_cleanse(key, sizeof key);
}

bool password_needs_rehash(const char *encoded, struct password_params params)
{
    struct password_params p;
    uint8_t salt[PASSWORD_SALT_LEN], key[PASSWORD_KEY_LEN];
    if (password_parse(encoded, &p, salt, key, NULL, 0) != 0)
        return true;
    OPENSSL_cleanse(key, sizeof key);
    return p.ln < params.ln || p.r < params.r || p.p < params.p;
}

int password_generate(char *out, size_t cap, size_t n)
{
    uint8_t raw[96];
    size_t bytes = (n * 3 + 3) / 4;
    if (n == 0 || n >= cap || bytes > sizeof raw || RAND_bytes(raw, (int)bytes) != 1)
        return CANARY_EIO;
    char tmp[160];
    b64url_encode(raw, bytes, tmp, sizeof tmp);
    OPENSSL_cleanse(raw, sizeof raw);
    memcpy(out, tmp, n);
    out[n] = '\0';
    OPENSSL_cleanse(tmp, sizeof tmp);
    return CANARY_OK;
}
