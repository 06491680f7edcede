/* fake_webhook.h — a webhook receiver for the notification tests, on a free loopback port.
 *
 * It verifies each request the way docs/ALERTING.md tells receivers to, with its own code
 * (OpenSSL's one-shot HMAC, not canary's): X-Canary-Timestamp within 5 minutes of its clock,
 * X-Canary-Signature == "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body), and a
 * JSON content type. A request that fails the check gets 401; one that passes gets the
 * answer the test set (status, Retry-After, body, or no answer until the fake stops). Every
 * request is recorded. */
#ifndef CANARY_TESTS_FAKE_WEBHOOK_H
#define CANARY_TESTS_FAKE_WEBHOOK_H

#include "fake_http.h"

#include <pthread.h>
#include <stdbool.h>

struct fake_webhook_request {
    char method[16];
    char path[256];
    char content_type[128];
    char timestamp[32];
    char signature[128];
    char idempotency_key[160];
    char body[FAKE_HTTP_BODY_MAX];
    bool signed_ok;    /* timestamp fresh and signature right */
    char problem[128]; /* why not, "" when fine */
    int status;        /* what the fake answered */
};

struct fake_webhook {
    struct fake_http http;
    char url[128];    /* base URL + "/hooks/canary" */
    char secret[128]; /* "" = expect unsigned requests */
    pthread_mutex_t lock;
    /* The answer to a verified request (fake_webhook_answer). */
    int status;
    char retry_after[16];
    char body[512];
    int delay_ms;
    int requests;
    struct fake_webhook_request last;
};

void fake_webhook_start(struct fake_webhook *w, const char *secret);
void fake_webhook_stop(struct fake_webhook *w);

/* What to answer from now on: status (200 at start), Retry-After ("" = none), body, delay
 * (< 0: never answer). */
void fake_webhook_answer(struct fake_webhook *w, int status, const char *retry_after,
                         const char *body, int delay_ms);

/* A copy of the last request, and the number of requests so far. */
int fake_webhook_last(struct fake_webhook *w, struct fake_webhook_request *out);

#endif
