/* mitm_tamper.c — what a network attacker does to one payload (mitm.h): read its device and
 * seq, change a value (inside a JWS: a re-encoded payload between the original header and
 * signature, so the token is well-formed and only its MAC can tell), strip the signature,
 * forge a reading with a key the attacker made up. Pure: no I/O, no globals; the forged
 * key comes from OpenSSL's RAND_bytes. */
#include "cli/mitm.h"

#include "verify/jws.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mitm_kind_name(int kind)
{
    static const char *const names[MITM_KIND_COUNT] = {
        "alter", "drop",           "delay", "reorder",     "replay",
        "forge", "forge-unsigned", "strip", "token-strip", "token-swap"};
    return kind >= 0 && kind < MITM_KIND_COUNT ? names[kind] : "none";
}

/* The positions of a JWS's two dots, or false when payload is not one. */
static bool jws_dots(const char *p, size_t len, size_t *d1, size_t *d2)
{
    if (len < 5 || memcmp(p, "eyJ", 3) != 0)
        return false;
    const char *a = memchr(p, '.', len);
    if (a == NULL)
        return false;
    const char *b = memchr(a + 1, '.', len - (size_t)(a + 1 - p));
    if (b == NULL || memchr(b + 1, '.', len - (size_t)(b + 1 - p)) != NULL)
        return false;
    *d1 = (size_t)(a - p);
    *d2 = (size_t)(b - p);
    return true;
}

/* Decodes a JWS's payload into a malloc'd NUL-terminated string; NULL when it is not
 * base64url or too large. */
static char *jws_decode_payload(const char *p, size_t d1, size_t d2, size_t *out_len)
{
    size_t enc = d2 - d1 - 1;
    size_t cap = enc * 3 / 4 + 4;
    if (cap > MITM_MAX_PAYLOAD)
        return NULL;
    char *buf = malloc(cap + 1);
    if (buf == NULL)
        return NULL;
    long n = b64url_decode(p + d1 + 1, enc, (uint8_t *)buf, cap);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *out_len = (size_t)n;
    return buf;
}

/* The kid of a JWS header, or "" */
static void jws_kid(const char *p, size_t d1, char *kid, size_t cap)
{
    kid[0] = '\0';
    uint8_t hdr[JWS_MAX_HEADER + 1];
    long n = d1 <= JWS_MAX_HEADER * 4 / 3 + 4 ? b64url_decode(p, d1, hdr, JWS_MAX_HEADER) : -1;
    if (n < 0)
        return;
    cJSON *h = cJSON_ParseWithLength((const char *)hdr, (size_t)n);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(h, "kid");
    if (cJSON_IsString(k))
        snprintf(kid, cap, "%s", k->valuestring);
    cJSON_Delete(h);
}

/* The reading a payload's JSON holds: the object, or a batch's first element. */
static cJSON *first_reading(cJSON *root)
{
    if (cJSON_IsArray(root))
        root = cJSON_GetArrayItem(root, 0);
    return cJSON_IsObject(root) ? root : NULL;
}

static void read_reading(cJSON *root, struct mitm_info *info)
{
    cJSON *r = first_reading(root);
    if (r == NULL)
        return;
    info->parsed = true;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "device");
    if (info->device[0] == '\0' && cJSON_IsString(d))
        snprintf(info->device, sizeof info->device, "%s", d->valuestring);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "seq");
    if (cJSON_IsNumber(s)) {
        info->has_seq = true;
        info->seq = s->valuedouble;
    }
}

void mitm_inspect(const char *payload, size_t len, struct mitm_info *info)
{
    memset(info, 0, sizeof *info);
    size_t d1, d2;
    if (jws_dots(payload, len, &d1, &d2)) {
        info->is_jws = true;
        jws_kid(payload, d1, info->device, sizeof info->device);
        size_t n;
        char *json = jws_decode_payload(payload, d1, d2, &n);
        if (json != NULL) {
            cJSON *root = cJSON_ParseWithLength(json, n);
            read_reading(root, info);
            cJSON_Delete(root);
            free(json);
        }
        return;
    }
    if (len > MITM_MAX_PAYLOAD)
        return;
    cJSON *root = cJSON_ParseWithLength(payload, len);
    read_reading(root, info);
    cJSON_Delete(root);
}

double mitm_altered_value(const char *metric, double value)
{
    size_t n = strlen(metric);
    if (strcmp(metric, "gas_ppm") == 0 || strcmp(metric, "co_ppm") == 0)
        return value >= 1000 ? 400 : value + 4000;
    if (n > 4 && strcmp(metric + n - 4, "_pct") == 0)
        return value >= 50 ? value - 20 : value + 20;
    if (value == 0 || value == 1)
        return 1 - value;
    return value + 10;
}

/* Changes one value of the reading (gas_ppm when there is one, else the first number) and
 * records it in chg. False when the reading has no numeric value. */
static bool alter_reading(cJSON *reading, struct mitm_change *chg)
{
    cJSON *values = cJSON_GetObjectItemCaseSensitive(reading, "values");
    if (!cJSON_IsObject(values))
        return false;
    cJSON *pick = cJSON_GetObjectItemCaseSensitive(values, "gas_ppm");
    if (!cJSON_IsNumber(pick)) {
        pick = NULL;
        for (cJSON *v = values->child; v != NULL && pick == NULL; v = v->next)
            if (cJSON_IsNumber(v) && v->string != NULL)
                pick = v;
    }
    if (pick == NULL)
        return false;
    snprintf(chg->metric, sizeof chg->metric, "%s", pick->string);
    chg->from = pick->valuedouble;
    chg->to = mitm_altered_value(pick->string, chg->from);
    cJSON_SetNumberValue(pick, chg->to);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(reading, "seq");
    chg->has_seq = cJSON_IsNumber(s);
    chg->seq = chg->has_seq ? s->valuedouble : 0;
    return true;
}

/* Parses json, alters its reading and prints it into a malloc'd string; NULL on failure. */
static char *alter_json(const char *json, size_t len, struct mitm_change *chg)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    cJSON *r = first_reading(root);
    char *out = r != NULL && alter_reading(r, chg) ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}

long mitm_alter(const char *payload, size_t len, char *out, size_t cap, struct mitm_change *chg)
{
    memset(chg, 0, sizeof *chg);
    size_t d1, d2;
    if (jws_dots(payload, len, &d1, &d2)) {
        size_t n;
        char *json = jws_decode_payload(payload, d1, d2, &n);
        char *altered = json != NULL ? alter_json(json, n, chg) : NULL;
        free(json);
        if (altered == NULL)
            return -1;
        /* header "." BASE64URL(altered) "." the old signature */
        size_t alen = strlen(altered), sig = len - d2;
        size_t need = d1 + 1 + (alen * 4 + 2) / 3 + sig + 1;
        long w = -1;
        if (need <= cap) {
            memcpy(out, payload, d1 + 1);
            long e = b64url_encode(altered, alen, out + d1 + 1, cap - d1 - 1);
            if (e >= 0 && d1 + 1 + (size_t)e + sig < cap) {
                memcpy(out + d1 + 1 + e, payload + d2, sig);
                w = (long)(d1 + 1 + (size_t)e + sig);
                out[w] = '\0';
            }
        }
        free(altered);
        return w;
    }
    if (len > MITM_MAX_PAYLOAD)
        return -1;
    char *altered = alter_json(payload, len, chg);
    if (altered == NULL)
        return -1;
    size_t alen = strlen(altered);
    long w = alen < cap ? (long)alen : -1;
    if (w >= 0)
        memcpy(out, altered, alen + 1);
    free(altered);
    return w;
}

long mitm_strip(const char *payload, size_t len, char *out, size_t cap)
{
    size_t d1, d2;
    if (!jws_dots(payload, len, &d1, &d2))
        return -1;
    size_t n;
    char *json = jws_decode_payload(payload, d1, d2, &n);
    if (json == NULL || n >= cap) {
        free(json);
        return -1;
    }
    memcpy(out, json, n + 1);
    free(json);
    return (long)n;
}

long mitm_forge(const char *payload, size_t len, bool sign, int64_t now_ms, char *out, size_t cap,
                struct mitm_change *chg)
{
    memset(chg, 0, sizeof *chg);
    char *decoded = NULL;
    const char *json = payload;
    size_t jlen = len, d1, d2;
    char kid[MITM_MAX_DEVICE + 1] = "";
    if (jws_dots(payload, len, &d1, &d2)) {
        decoded = jws_decode_payload(payload, d1, d2, &jlen);
        jws_kid(payload, d1, kid, sizeof kid);
        json = decoded;
    } else if (len > MITM_MAX_PAYLOAD) {
        return -1;
    }
    cJSON *root = json != NULL ? cJSON_ParseWithLength(json, jlen) : NULL;
    free(decoded);
    cJSON *r = first_reading(root);
    cJSON *seq = cJSON_GetObjectItemCaseSensitive(r, "seq");
    cJSON *dev = cJSON_GetObjectItemCaseSensitive(r, "device");
    long w = -1;
    if (r != NULL && cJSON_IsNumber(seq) && cJSON_IsString(dev) && alter_reading(r, chg)) {
        /* One reading, never the batch it came in. */
        cJSON *one = cJSON_Duplicate(r, true);
        cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(one, "seq"),
                             seq->valuedouble + MITM_FORGE_SEQ_OFFSET);
        cJSON *ts = cJSON_GetObjectItemCaseSensitive(one, "ts");
        if (cJSON_IsNumber(ts))
            cJSON_SetNumberValue(ts, (double)now_ms);
        chg->seq = seq->valuedouble + MITM_FORGE_SEQ_OFFSET;
        chg->has_seq = true;
        char *text = cJSON_PrintUnformatted(one);
        cJSON_Delete(one);
        if (text != NULL) {
            size_t tlen = strlen(text);
            if (sign) {
                uint8_t key[32];
                if (RAND_bytes(key, sizeof key) == 1)
                    w = jws_sign_hs256(kid[0] ? kid : dev->valuestring, text, tlen, key, sizeof key,
                                       out, cap);
                OPENSSL_cleanse(key, sizeof key);
            } else if (tlen < cap) {
                memcpy(out, text, tlen + 1);
                w = (long)tlen;
            }
            free(text);
        }
    }
    cJSON_Delete(root);
    return w;
}
