/* fake_webhook.c — a webhook receiver that verifies canary's signature independently
 * (fake_webhook.h). */
#include "fake_webhook.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The receiver's recipe from docs/ALERTING.md: HMAC-SHA256 over "<timestamp>.<body>". */
static bool verify(const struct fake_webhook *w, struct fake_webhook_request *r, size_t body_len)
{
    if (r->timestamp[0] == '\0' || r->signature[0] == '\0') {
        snprintf(r->problem, sizeof r->problem, "missing signature headers");
        return false;
    }
    char *end;
    long long ts = strtoll(r->timestamp, &end, 10);
    long long now = (long long)time(NULL);
    if (*end != '\0' || ts < now - 300 || ts > now + 300) {
        snprintf(r->problem, sizeof r->problem, "stale or bad timestamp %s", r->timestamp);
        return false;
    }
    size_t tl = strlen(r->timestamp);
    unsigned char *msg = malloc(tl + 1 + body_len);
    if (msg == NULL)
        return false;
    memcpy(msg, r->timestamp, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, r->body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), w->secret, (int)strlen(w->secret), msg, tl + 1 + body_len, mac, &ml);
    free(msg);
    char want[7 + 64 + 1] = "sha256=";
    for (unsigned i = 0; i < ml; i++)
        snprintf(want + 7 + 2 * i, 3, "%02x", mac[i]);
    if (strlen(r->signature) != strlen(want) ||
        CRYPTO_memcmp(r->signature, want, strlen(want)) != 0) {
        snprintf(r->problem, sizeof r->problem, "signature mismatch");
        return false;
    }
    return true;
}

static void handle(void *arg, const struct fake_http_request *req, struct fake_http_response *res)
{
    struct fake_webhook *w = arg;
    struct fake_webhook_request *r = calloc(1, sizeof *r);
    if (r == NULL)
        return;
    snprintf(r->method, sizeof r->method, "%s", req->method);
    snprintf(r->path, sizeof r->path, "%s", req->path);
    const char *h;
    if ((h = fake_http_header(req, "Content-Type")) != NULL)
        snprintf(r->content_type, sizeof r->content_type, "%s", h);
    if ((h = fake_http_header(req, "X-Canary-Timestamp")) != NULL)
        snprintf(r->timestamp, sizeof r->timestamp, "%s", h);
    if ((h = fake_http_header(req, "X-Canary-Signature")) != NULL)
        snprintf(r->signature, sizeof r->signature, "%s", h);
    if ((h = fake_http_header(req, "Idempotency-Key")) != NULL)
        snprintf(r->idempotency_key, sizeof r->idempotency_key, "%s", h);
    size_t n = req->body_len < sizeof r->body - 1 ? req->body_len : sizeof r->body - 1;
    memcpy(r->body, req->body, n);
    r->body[n] = '\0';

    pthread_mutex_lock(&w->lock);
    bool expect_signed = w->secret[0] != '\0';
    int status = w->status, delay = w->delay_ms;
    char retry_after[16], body[512];
    snprintf(retry_after, sizeof retry_after, "%s", w->retry_after);
    snprintf(body, sizeof body, "%s", w->body);
    pthread_mutex_unlock(&w->lock);

    if (expect_signed)
        r->signed_ok = verify(w, r, n);
    else
        r->signed_ok = r->signature[0] == '\0' && r->timestamp[0] == '\0';
    if (strcmp(r->method, "POST") != 0) {
        res->status = 405;
    } else if (strncmp(r->content_type, "application/json", 16) != 0) {
        res->status = 415;
    } else if (!r->signed_ok) {
        res->status = 401;
        snprintf(res->body, sizeof res->body, "{\"error\":\"%s\"}", r->problem);
    } else {
        res->status = status;
        res->delay_ms = delay;
        snprintf(res->retry_after, sizeof res->retry_after, "%s", retry_after);
        snprintf(res->body, sizeof res->body, "%s", body);
    }
    r->status = res->status;
    pthread_mutex_lock(&w->lock);
    w->requests++;
    w->last = *r;
    pthread_mutex_unlock(&w->lock);
    free(r);
}

void fake_webhook_start(struct fake_webhook *w, const char *secret)
{
    memset(w, 0, sizeof *w);
    snprintf(w->secret, sizeof w->secret, "%s", secret);
    pthread_mutex_init(&w->lock, NULL);
    w->status = 200;
    fake_http_start(&w->http, handle, w);
    snprintf(w->url, sizeof w->url, "%s/hooks/canary", w->http.base_url);
}

void fake_webhook_stop(struct fake_webhook *w)
{
    fake_http_stop(&w->http);
    pthread_mutex_destroy(&w->lock);
}

void fake_webhook_answer(struct fake_webhook *w, int status, const char *retry_after,
                         const char *body, int delay_ms)
{
    pthread_mutex_lock(&w->lock);
    w->status = status;
    snprintf(w->retry_after, sizeof w->retry_after, "%s", retry_after ? retry_after : "");
    snprintf(w->body, sizeof w->body, "%s", body ? body : "");
    w->delay_ms = delay_ms;
    pthread_mutex_unlock(&w->lock);
}

int fake_webhook_last(struct fake_webhook *w, struct fake_webhook_request *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->last;
    int n = w->requests;
    pthread_mutex_unlock(&w->lock);
    return n;
}
