/* webhook.c — signed JSON webhooks (notify.h): the signature scheme, its verification, the
 * payload canary sends, and the POST.
 *
 * The signature follows the scheme Stripe and Slack use for theirs: the sender puts the Unix
 * time in one header and an HMAC-SHA256 (RFC 2104) over "<timestamp>.<body>" in another,
 *   X-Canary-Timestamp: 1763676000
 *   X-Canary-Signature: sha256=<64 lower-case hex digits>
 * so a receiver that knows the secret can tell the body is canary's and unmodified, and can
 * refuse an old request replayed later (compare the timestamp with its clock). Retries of
 * one notification carry the same Idempotency-Key header (and "id" in the body) so a
 * receiver can drop duplicates; each attempt is signed afresh with its own timestamp. */
#include "notify/notify_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "notify/explain.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* HMAC-SHA256 over the concatenation of parts, without concatenating them. */
static int hmac_parts(const void *key, size_t key_len, const void *const *parts, const size_t *lens,
                      size_t n, unsigned char out[32])
{
    int rc = CANARY_EIO;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    if (ctx == NULL)
        goto out;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    /* An empty key is valid HMAC; OpenSSL wants a non-NULL pointer for it. */
    static const unsigned char empty[1] = {0};
    if (EVP_MAC_init(ctx, key_len > 0 ? key : empty, key_len, params) != 1)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > 0 && EVP_MAC_update(ctx, parts[i], lens[i]) != 1)
            goto out;
    }
    size_t outl = 0;
    if (EVP_MAC_final(ctx, out, &outl, 32) != 1 || outl != 32)
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int notify_hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len,
                       unsigned char out[32])
{
    const void *parts[1] = {data};
    size_t lens[1] = {data_len};
    return hmac_parts(key, key_len, parts, lens, 1, out);
}

int notify_webhook_signature(const char *secret, int64_t timestamp_s, const char *body,
                             size_t body_len, char hex[NOTIFY_SIGNATURE_HEX_LEN + 1])
{
    char ts[24];
    int tl = snprintf(ts, sizeof ts, "%lld", (long long)timestamp_s);
    const void *parts[3] = {ts, ".", body};
    size_t lens[3] = {(size_t)tl, 1, body_len};
    unsigned char mac[32];
    hex[0] = '\0';
    if (hmac_parts(secret, strlen(secret), parts, lens, 3, mac) != 0)
        return CANARY_EIO;
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 15];
    }
    hex[NOTIFY_SIGNATURE_HEX_LEN] = '\0';
    return 0;
}

bool notify_webhook_verify(const char *secret, const char *timestamp_header,
                           const char *signature_header, const char *body, size_t body_len,
                           int64_t now_s, int64_t tolerance_s)
{
    if (secret == NULL || timestamp_header == NULL || signature_header == NULL)
        return false;
    /* The timestamp: decimal digits only, within the tolerance. */
    size_t tl = strlen(timestamp_header);
    if (tl == 0 || tl > 18)
        return false;
    int64_t ts = 0;
    for (size_t i = 0; i < tl; i++) {
        if (timestamp_header[i] < '0' || timestamp_header[i] > '9')
            return false;
        ts = ts * 10 + (timestamp_header[i] - '0');
    }
    if (ts < now_s - tolerance_s || ts > now_s + tolerance_s)
        return false;
    if (strncmp(signature_header, "sha256=", 7) != 0 ||
        strlen(signature_header + 7) != NOTIFY_SIGNATURE_HEX_LEN)
        return false;
    char want[NOTIFY_SIGNATURE_HEX_LEN + 1];
    if (notify_webhook_signature(secret, ts, body, body_len, want) != 0)
        return false;
    /* Lower-case hex either way; compare in constant time. */
    char got[NOTIFY_SIGNATURE_HEX_LEN];
    for (int i = 0; i < NOTIFY_SIGNATURE_HEX_LEN; i++) {
        char ch = signature_header[7 + i];
        got[i] = (ch >= 'A' && ch <= 'F') ? (char)(ch - 'A' + 'a') : ch;
    }
    return CRYPTO_memcmp(got, want, NOTIFY_SIGNATURE_HEX_LEN) == 0;
}

/* ---- payload ---- */

static void add_time(cJSON *o, const char *name, int64_t ms)
{
    if (ms <= 0) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    char buf[32];
    cJSON_AddStringToObject(o, name, clock_format_ms(ms, buf, sizeof buf));
}

static void add_number(cJSON *o, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

char *notify_webhook_payload(const struct alert *a, const struct explanation *e, const char *event,
                             const char *id, int64_t sent_ms)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return NULL;
    char type[64];
    snprintf(type, sizeof type, "alert.%s", event != NULL ? event : "opened");
    cJSON_AddStringToObject(root, "type", type);
    if (id != NULL)
        cJSON_AddStringToObject(root, "id", id);
    else
        cJSON_AddNullToObject(root, "id");
    add_time(root, "sent_at", sent_ms);

    cJSON *al = cJSON_AddObjectToObject(root, "alert");
    if (al != NULL) {
        cJSON_AddNumberToObject(al, "id", (double)a->id);
        cJSON_AddStringToObject(al, "device", a->device);
        cJSON_AddStringToObject(al, "metric", a->metric);
        cJSON_AddStringToObject(al, "kind", alert_kind_name(a->kind));
        cJSON_AddStringToObject(al, "severity", alert_severity_name(a->severity));
        cJSON_AddStringToObject(al, "state", alert_state_name(a->state));
        add_time(al, "opened_at", a->opened_ms);
        add_time(al, "updated_at", a->updated_ms);
        add_time(al, "acknowledged_at", a->acknowledged_ms);
        add_time(al, "resolved_at", a->resolved_ms);
        add_number(al, "value", a->value);
        add_number(al, "peak", a->peak);
        add_number(al, "limit", a->limit);
        cJSON_AddStringToObject(al, "message", a->message);
    }
    if (e != NULL) {
        cJSON *ex = cJSON_AddObjectToObject(root, "explanation");
        if (ex != NULL) {
            cJSON_AddStringToObject(ex, "title", e->title);
            cJSON_AddStringToObject(ex, "description", e->description);
            cJSON_AddStringToObject(ex, "action", e->action);
            cJSON_AddStringToObject(ex, "short", e->short_text);
        }
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* ---- sending ---- */

enum notify_outcome notify_webhook_send(struct notify_client *c,
                                        const struct notify_webhook_config *cfg,
                                        const struct notify_message *m, unsigned timeout_ms,
                                        struct notify_result *res)
{
    int64_t start = notify__now_ms();
    notify__result_start(res);
    const char *secrets[] = {cfg->secret, NULL};
    char origin[NOTIFY_URL_MAX];
    notify__url_origin(cfg->url, origin, sizeof origin);

    if (cfg->url[0] == '\0' || strcmp(origin, "?") == 0)
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "webhook: no valid URL configured");
    if (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0)
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "webhook: the URL must be http:// or https://");
    if (m->json == NULL || m->json[0] == '\0')
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets, "webhook: empty body");
    if (m->idempotency_key != NULL && !notify__key_valid(m->idempotency_key))
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "webhook: invalid idempotency key (1 to 128 of A-Z a-z 0-9 . _ : -)");

    size_t body_len = strlen(m->json);
    struct curl_slist *headers = NULL;
    char line[160];
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: */*");
    headers = curl_slist_append(headers, "Expect:");
    if (cfg->secret[0] != '\0') {
        int64_t ts = time(NULL);
        char hex[NOTIFY_SIGNATURE_HEX_LEN + 1];
        if (notify_webhook_signature(cfg->secret, ts, m->json, body_len, hex) != 0) {
            curl_slist_free_all(headers);
            return notify__finish(res, NOTIFY_RETRY, start, secrets,
                                  "webhook: computing the signature failed (libcrypto)");
        }
        snprintf(line, sizeof line, "X-Canary-Timestamp: %lld", (long long)ts);
        headers = curl_slist_append(headers, line);
        snprintf(line, sizeof line, "X-Canary-Signature: sha256=%s", hex);
        headers = curl_slist_append(headers, line);
    }
    if (m->idempotency_key != NULL) {
        snprintf(line, sizeof line, "Idempotency-Key: %s", m->idempotency_key);
        headers = curl_slist_append(headers, line);
    }

    unsigned timeout = notify__timeout(timeout_ms, cfg->timeout_ms);
    CURL *h = c->curl;
    notify__curl_prepare(c, h, "http,https", timeout, cfg->connect_timeout_ms, &cfg->tls);
    curl_easy_setopt(h, CURLOPT_URL, cfg->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, m->json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    notify__redact(c->body.data, c->body.len, secrets);

    /* Errors name the URL's origin only: webhook paths often carry a token. */
    if (rc != CURLE_OK) {
        char err[CURL_ERROR_SIZE];
        notify__copy_text(err, sizeof err, notify__curl_error(c, rc));
        notify__redact(err, strlen(err), secrets);
        return notify__finish(res,
                              notify__curl_retryable(rc) ? NOTIFY_RETRY : NOTIFY_PERMANENT_FAILURE,
                              start, secrets, "webhook %s: %s", origin,
                              strstr(err, cfg->url) != NULL ? curl_easy_strerror(rc) : err);
    }
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    res->http_status = st;
    if (st >= 200 && st < 300)
        return notify__finish(res, NOTIFY_DELIVERED, start, secrets, NULL);
    curl_off_t retry_s = 0;
    if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_s) == CURLE_OK && retry_s > 0)
        res->retry_after_ms = (int64_t)retry_s * 1000;
    enum notify_outcome o =
        (st == 408 || st == 429 || st >= 500) ? NOTIFY_RETRY : NOTIFY_PERMANENT_FAILURE;
    char excerpt[160] = "";
    if (c->body.len > 0)
        notify__copy_text(excerpt, sizeof excerpt, c->body.data);
    return notify__finish(res, o, start, secrets, "webhook %s: HTTP %ld%s%s%s", origin, st,
                          st >= 300 && st < 400 ? " (redirects are not followed)" : "",
                          excerpt[0] ? ": " : "", excerpt);
}
