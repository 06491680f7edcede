/* jws.c — JWS compact serialization, HS256 profile (RFC 7515, RFC 7518 §3.2); see jws.h.
 *
 * Order of checks: cheap, length-only checks first (dots, part sizes), so an oversized or
 * malformed token costs no decoding; then the header; the MAC last, by the caller, once it
 * has found the kid's key. */
#include "verify/jws.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const error_names[JWS_ERROR_COUNT] = {
    [JWS_OK] = "ok",
    [JWS_EFORMAT] = "bad_format",
    [JWS_EBASE64] = "bad_base64",
    [JWS_ETOO_LARGE] = "too_large",
    [JWS_EHEADER] = "bad_header",
    [JWS_EALG_NONE] = "alg_none",
    [JWS_EALG] = "bad_alg",
    [JWS_EKID] = "bad_kid",
    [JWS_ECRIT] = "unsupported_header",
    [JWS_ESIGNATURE] = "bad_signature",
};

const char *jws_error_name(enum jws_error e)
{
    return (unsigned)e < JWS_ERROR_COUNT ? error_names[e] : "?";
}

/* ---- base64url (RFC 4648 §5, without padding as RFC 7515 §2 requires) ----------------- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Encoded length of n bytes. */
static size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

long b64url_encode(const void *in, size_t len, char *out, size_t cap)
{
    const uint8_t *p = in;
    size_t need = b64url_len(len);
    if (need + 1 > cap)
        return -1;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    return (long)o;
}

/* Decodes (out may be NULL: validate and count only). */
long b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len % 4 == 1)
        return -1; /* 6 bits cannot end a byte */
    size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (n > cap)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (out != NULL)
                out[o] = (uint8_t)(acc >> bits);
            o++;
            acc &= (1u << bits) - 1;
        }
    }
    /* Canonical form: the unused low bits of the last character are zero, so one byte
     * string has exactly one encoding. */
    if (acc != 0)
        return -1;
    return (long)o;
}

/* ---- parsing ----------------------------------------------------------------------------- */

/* A kid must be usable as a device id: printable ASCII without quote or backslash. */
static bool kid_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > JWS_MAX_KID)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return false;
    }
    return true;
}

static enum jws_error fail(enum jws_error e, char *err, size_t errlen, const char *fmt,
                           const char *arg)
{
    canary_errf(err, errlen, fmt, arg);
    return e;
}

/* Reads the decoded header JSON (hdr[0..n)). */
static enum jws_error parse_header(const char *hdr, size_t n, const struct jws_limits *lim,
                                   struct jws_token *out, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(hdr, n);
    if (root == NULL || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(JWS_EHEADER, err, errlen, "%s", "the JWS header is not a JSON object");
    }
    enum jws_error rc = JWS_OK;
    const char *alg = NULL;
    for (cJSON *m = root->child; m != NULL && rc == JWS_OK; m = m->next) {
        /* RFC 7515 §4: member names must be unique; we refuse rather than pick one. */
        for (cJSON *o = root->child; o != m; o = o->next) {
            if (strcmp(o->string, m->string) == 0) {
                rc = fail(JWS_EHEADER, err, errlen, "the JWS header has the member \"%.32s\" twice",
                          m->string);
                break;
            }
        }
        if (rc != JWS_OK)
            break;
        const char *name = m->string;
        bool known = strcmp(name, "alg") == 0 || strcmp(name, "kid") == 0 ||
                     strcmp(name, "typ") == 0 || strcmp(name, "cty") == 0;
        if (!known) {
            rc = fail(JWS_ECRIT, err, errlen,
                      strcmp(name, "crit") == 0
                          ? "the JWS header has \"%.32s\": no extension is supported"
                          : "the JWS header parameter \"%.32s\" is not supported (only alg, "
                            "kid, typ, cty)",
                      name);
            break;
        }
        if (!cJSON_IsString(m)) {
            rc = fail(JWS_EHEADER, err, errlen, "the JWS header member \"%.32s\" must be a string",
                      name);
            break;
        }
        if (strcmp(name, "alg") == 0) {
            alg = m->valuestring;
        } else if (strcmp(name, "kid") == 0) {
            if (!kid_valid(m->valuestring)) {
                rc = fail(JWS_EKID, err, errlen, "%s",
                          "the JWS kid must be a device id (1-128 printable characters)");
                break;
            }
            snprintf(out->kid, sizeof out->kid, "%s", m->valuestring);
        } else if (strcmp(name, "typ") == 0) {
            out->has_typ = true;
        }
    }
    if (rc == JWS_OK) {
        if (alg == NULL)
            rc = fail(JWS_EALG, err, errlen, "%s", "the JWS header has no alg");
        else if (strcasecmp(alg, "none") == 0)
            rc = fail(JWS_EALG_NONE, err, errlen, "%s",
                      "alg \"none\" (an unsigned token) is not accepted");
        else if (strcmp(alg, "HS256") != 0)
            rc = fail(JWS_EALG, err, errlen, "alg \"%.16s\" is not accepted: use HS256", alg);
        else if (lim->require_kid && out->kid[0] == '\0')
            rc = fail(JWS_EKID, err, errlen, "%s",
                      "the JWS header has no kid: it must name the device");
    }
    cJSON_Delete(root);
    return rc;
}

enum jws_error jws_parse(const char *token, size_t len, const struct jws_limits *lim,
                         struct jws_token *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot1 == NULL || dot2 == NULL)
        return fail(JWS_EFORMAT, err, errlen, "%s",
                    "a JWS compact serialization has three parts separated by two dots");
    const char *sig = dot2 + 1;
    size_t h_len = (size_t)(dot1 - token), p_len = (size_t)(dot2 - dot1 - 1);
    size_t s_len = len - (size_t)(sig - token);
    if (memchr(sig, '.', s_len) != NULL)
        return fail(JWS_EFORMAT, err, errlen, "%s",
                    "a JWS compact serialization has exactly two dots (JWE and JSON "
                    "serializations are not accepted)");
    if (h_len == 0 || p_len == 0 || s_len == 0)
        return fail(JWS_EFORMAT, err, errlen, "%s",
                    "a JWS part is empty (a detached or unsigned token is not accepted)");
    if (h_len > b64url_len(JWS_MAX_HEADER))
        return fail(JWS_ETOO_LARGE, err, errlen, "%s", "the JWS header is larger than 512 bytes");
    if (p_len > b64url_len(lim->max_payload))
        return fail(JWS_ETOO_LARGE, err, errlen, "%s", "the JWS payload is larger than the limit");
    if (s_len != b64url_len(JWS_MAC_LEN))
        return fail(s_len > b64url_len(JWS_MAC_LEN) ? JWS_ETOO_LARGE : JWS_EBASE64, err, errlen,
                    "%s", "an HS256 signature is 32 bytes (43 base64url characters)");

    char hdr[JWS_MAX_HEADER];
    long hn = b64url_decode(token, h_len, (uint8_t *)hdr, sizeof hdr);
    if (hn < 0)
        return fail(JWS_EBASE64, err, errlen, "%s",
                    "the JWS header is not base64url without padding");
    long pn = b64url_decode(dot1 + 1, p_len, NULL, lim->max_payload);
    if (pn < 0)
        return fail(JWS_EBASE64, err, errlen, "%s",
                    "the JWS payload is not base64url without padding");
    if (b64url_decode(sig, s_len, out->mac, sizeof out->mac) != JWS_MAC_LEN)
        return fail(JWS_EBASE64, err, errlen, "%s",
                    "the JWS signature is not base64url without padding");
    enum jws_error rc = parse_header(hdr, (size_t)hn, lim, out, err, errlen);
    if (rc != JWS_OK)
        return rc;
    out->signing_input = token;
    out->signing_input_len = (size_t)(dot2 - token);
    out->payload_b64 = dot1 + 1;
    out->payload_b64_len = p_len;
    out->payload_len = (size_t)pn;
    return JWS_OK;
}

enum jws_error jws_verify_hs256(const struct jws_token *t, const uint8_t *key, size_t key_len)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (t->signing_input == NULL || key == NULL || key_len == 0 ||
        HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)t->signing_input,
             t->signing_input_len, mac, &mac_len) == NULL ||
        mac_len != JWS_MAC_LEN)
        return JWS_ESIGNATURE;
    /* Constant time: the position of the first differing byte must not leak. */
    int diff = CRYPTO_memcmp(mac, t->mac, JWS_MAC_LEN);
    OPENSSL_cleanse(mac, sizeof mac);
    return diff == 0 ? JWS_OK : JWS_ESIGNATURE;
}

long jws_payload(const struct jws_token *t, char *out, size_t cap)
{
    if (cap < t->payload_len)
        return -1;
    long n = b64url_decode(t->payload_b64, t->payload_b64_len, (uint8_t *)out, cap);
    if (n >= 0 && (size_t)n < cap)
        out[n] = '\0';
    return n;
}

size_t jws_token_size(size_t payload_len, size_t kid_len)
{
    return b64url_len(32 + kid_len) + 1 + b64url_len(payload_len) + 1 + b64url_len(JWS_MAC_LEN) + 1;
}

long jws_sign_hs256(const char *kid, const void *payload, size_t payload_len, const uint8_t *key,
                    size_t key_len, char *out, size_t cap)
{
    if (!kid_valid(kid))
        return -1;
    char hdr[JWS_MAX_HEADER];
    int hn = snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kid);
    if (hn < 0 || (size_t)hn >= sizeof hdr)
        return -1;
    long a = b64url_encode(hdr, (size_t)hn, out, cap);
    if (a < 0 || (size_t)a + 2 > cap)
        return -1;
    out[a] = '.';
    long b = b64url_encode(payload, payload_len, out + a + 1, cap - (size_t)a - 1);
    if (b < 0)
        return -1;
    size_t signed_len = (size_t)a + 1 + (size_t)b;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (signed_len + 2 > cap || HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)out,
                                     signed_len, mac, &mac_len) == NULL)
        return -1;
    out[signed_len] = '.';
    long c = b64url_encode(mac, mac_len, out + signed_len + 1, cap - signed_len - 1);
    OPENSSL_cleanse(mac, sizeof mac);
    if (c < 0)
        return -1;
    return (long)(signed_len + 1 + (size_t)c);
}
