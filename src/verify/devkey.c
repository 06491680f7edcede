/* devkey.c — sealing device keys with AES-256-GCM and hashing tokens; see devkey.h. */
#include "verify/devkey.h"

#include "core/error.h"
#include "verify/jws.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#define NONCE_LEN 12
#define TAG_LEN   16

int devkey_master_parse(const char *text, uint8_t out[DEVKEY_LEN], char *err, size_t errlen)
{
    while (isspace((unsigned char)*text))
        text++;
    size_t n = strlen(text);
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        n--;
    if (n == 64) {
        for (size_t i = 0; i < 32; i++) {
            unsigned v;
            char pair[3] = {text[2 * i], text[2 * i + 1], 0};
            if (!isxdigit((unsigned char)pair[0]) || !isxdigit((unsigned char)pair[1]) ||
                sscanf(pair, "%2x", &v) != 1)
                goto bad;
            out[i] = (uint8_t)v;
        }
        return CANARY_OK;
    }
    char buf[48];
    if (n == 44 && text[43] == '=')
        n = 43; /* standard base64 with its one '=' */
    if (n == 43) {
        memcpy(buf, text, 43);
        for (size_t i = 0; i < 43; i++)
            buf[i] = buf[i] == '+' ? '-' : buf[i] == '/' ? '_' : buf[i];
        long got = b64url_decode(buf, 43, out, DEVKEY_LEN);
        OPENSSL_cleanse(buf, sizeof buf);
        if (got == DEVKEY_LEN)
            return CANARY_OK;
    }
bad:
    OPENSSL_cleanse(out, DEVKEY_LEN);
    canary_errf(err, errlen,
                "security.master_key must be 32 bytes: 64 hex digits or 43 base64url "
                "characters (make one with `openssl rand -hex 32`)");
    return CANARY_EINVAL;
}

int devkey_random(uint8_t *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? CANARY_OK : CANARY_EIO;
}

/* Associated data: binds a sealed key to its row. */
static int aad_of(const char *device, uint32_t version, char *out, size_t cap)
{
    return snprintf(out, cap, "canary-device-key\n%s\n%u", device, version);
}

int devkey_seal(const uint8_t master[DEVKEY_LEN], const char *device, uint32_t version,
                const uint8_t key[DEVKEY_LEN], uint8_t sealed[DEVKEY_SEALED_LEN])
{
    char aad[256];
    int aad_len = aad_of(device, version, aad, sizeof aad);
    if (aad_len < 0 || (size_t)aad_len >= sizeof aad || devkey_random(sealed, NONCE_LEN) != 0)
        return CANARY_EIO;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = c != NULL;
    ok = ok && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1;
    ok = ok && EVP_EncryptInit_ex(c, NULL, NULL, master, sealed) == 1;
    ok = ok && EVP_EncryptUpdate(c, NULL, &len, (const unsigned char *)aad, aad_len) == 1;
    ok = ok && EVP_EncryptUpdate(c, sealed + NONCE_LEN, &len, key, DEVKEY_LEN) == 1 &&
         len == DEVKEY_LEN;
    ok = ok && EVP_EncryptFinal_ex(c, sealed + NONCE_LEN + len, &len) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
                                   sealed + NONCE_LEN + DEVKEY_LEN) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? CANARY_OK : CANARY_EIO;
}

int devkey_open(const uint8_t master[DEVKEY_LEN], const char *device, uint32_t version,
                const uint8_t sealed[DEVKEY_SEALED_LEN], uint8_t key[DEVKEY_LEN])
{
    char aad[256];
    int aad_len = aad_of(device, version, aad, sizeof aad);
    if (aad_len < 0 || (size_t)aad_len >= sizeof aad)
        return CANARY_EPERM;
    uint8_t tag[TAG_LEN];
    memcpy(tag, sealed + NONCE_LEN + DEVKEY_LEN, TAG_LEN);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = c != NULL;
    ok = ok && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1;
    ok = ok && EVP_DecryptInit_ex(c, NULL, NULL, master, sealed) == 1;
    ok = ok && EVP_DecryptUpdate(c, NULL, &len, (const unsigned char *)aad, aad_len) == 1;
    ok = ok && EVP_DecryptUpdate(c, key, &len, sealed + NONCE_LEN, DEVKEY_LEN) == 1 &&
         len == DEVKEY_LEN;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
    /* The tag is checked here: a wrong master key or an altered row fails. */
    ok = ok && EVP_DecryptFinal_ex(c, key + len, &len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        OPENSSL_cleanse(key, DEVKEY_LEN);
        return CANARY_EPERM;
    }
    return CANARY_OK;
}

void devkey_token_hash(const char *token, size_t len, uint8_t hash[DEVKEY_HASH_LEN])
{
    SHA256((const unsigned char *)token, len, hash);
}

int devkey_token_new(char token[DEVKEY_TOKEN_LEN + 1], uint8_t hash[DEVKEY_HASH_LEN])
{
    uint8_t raw[32];
    if (devkey_random(raw, sizeof raw) != 0)
        return CANARY_EIO;
    memcpy(token, "cnt_", 4);
    b64url_encode(raw, sizeof raw, token + 4, DEVKEY_TOKEN_LEN + 1 - 4);
    OPENSSL_cleanse(raw, sizeof raw);
    devkey_token_hash(token, DEVKEY_TOKEN_LEN, hash);
    return CANARY_OK;
}

int devkey_parse(const char *text, uint8_t key[DEVKEY_LEN])
{
    size_t n = strlen(text);
    if (n != 43 || b64url_decode(text, n, key, DEVKEY_LEN) != DEVKEY_LEN)
        return CANARY_EINVAL;
    return CANARY_OK;
}

void devkey_format(const uint8_t key[DEVKEY_LEN], char out[DEVKEY_TEXT_LEN])
{
    b64url_encode(key, DEVKEY_LEN, out, DEVKEY_TEXT_LEN);
}
