/* api_ingest.c — POST /api/v1/ingest: authenticate -> parse -> verify -> pipeline, answered
 * once stored.
 *
 * Content types: application/json (the default when none is given), text/plain (InfluxDB
 * line protocol, with ?precision=ns|us|ms|s) and application/jose (a JWS compact
 * serialization whose payload is the JSON; also recognised under application/json or no
 * type). A plain body may carry "Authorization: Bearer <device token>". Authenticity
 * (verify/auth.h) is judged per request: a refusal answers 401/403 (413 for an oversized
 * JWS part) with the reason as the error code — bad_signature, alg_none, unknown_key,
 * revoked, signature_required, unsigned, device_mismatch, bad_token, ... — and is stored as
 * a security event. Answers:
 *   single reading: 200 accepted; 400 invalid, 409 duplicate, 403 unknown device — each
 *                   with the error shape naming the field;
 *   batch:          200 all accepted; 207 some not accepted; 400 none readable;
 *                   the body counts them and lists every reading that was not accepted:
 *                   {"accepted":98,"rejected":1,"duplicates":1,"results":[{"index":3,
 *                    "status":"invalid","field":"values.gas_ppm","error":"..."}]}
 *   503 with Retry-After when the pipeline is full or stopping (nothing was taken). */
#include "api/api.h"
#include "api/api_limits.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "verify/auth.h"
#include "verify/verify.h"

#include <stdlib.h>
#include <string.h>

static const char *const ingest_params[] = {"precision", NULL};

static struct ingest_limits limits_of(const struct canary_config *cfg)
{
    struct ingest_limits l = {cfg->ingest.max_batch, cfg->ingest.max_metrics,
                              cfg->ingest.max_device_len, cfg->ingest.max_metric_len,
                              cfg->ingest.strict_fields};
    return l;
}

/* Logs (debug) and counts the readings parse and verify rejected. */
static void note_invalid(struct request *req, const struct ingest_batch *b)
{
    uint64_t invalid = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->status[i] != READING_INVALID)
            continue;
        if (invalid < 5)
            log_debug("ingest.rejected", "index=%zu device=%s field=%s reason=\"%s\"", i,
                      b->readings[i].device ? b->readings[i].device : "", b->errors[i].field,
                      b->errors[i].reason);
        invalid++;
    }
    if (invalid)
        pipeline_count(req->api->pipeline, PC_READINGS_INVALID, invalid);
}

/* An authenticated reading outside the timestamp window: a delayed or replayed message
 * (or a device whose clock is off). Recorded once per request. */
static void note_stale(struct request *req, const struct ingest_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->status[i] != READING_INVALID || b->errors[i].field == NULL ||
            strcmp(b->errors[i].field, "ts") != 0)
            continue;
        api_security_event(req, "stale", b->readings[i].device, "ts %s",
                           b->errors[i].reason ? b->errors[i].reason : "");
        return;
    }
}

/* Answers an authenticity refusal and records it as a security event. */
static enum MHD_Result refuse(struct request *req, const struct auth_verdict *v)
{
    api_security_event(req, v->code, v->device, "%s", v->reason);
    return api_respond_error(req, v->http_status, v->code, NULL, "%s", v->reason);
}

enum MHD_Result api_ingest(struct request *req)
{
    if (!api_query_check(req, ingest_params))
        return MHD_YES;
    const struct canary_config *cfg = req->api->cfg;
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type");
    bool line = false, jose = false;
    if (ct != NULL && strncmp(ct, "text/plain", 10) == 0)
        line = true;
    else if (ct != NULL && strncmp(ct, "application/jose", 16) == 0)
        jose = true;
    else if (ct != NULL && strncmp(ct, "application/json", 16) != 0)
        return api_respond_error(req, 415, "unsupported_media_type", NULL,
                                 "Content-Type must be application/json (readings), "
                                 "application/jose (signed readings) or text/plain (InfluxDB "
                                 "line protocol)");
    enum line_precision precision = LINE_PRECISION_NS;
    const char *prec = api_query(req, "precision");
    if (prec != NULL && line_precision_parse(prec, &precision) != 0)
        return api_respond_error(req, 400, "bad_query", "precision", "must be ns, us, ms or s");

    struct job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return api_respond_error(req, 503, "overloaded", NULL, "out of memory");
    job->kind = JOB_INGEST;
    ingest_batch_init(&job->batch);
    req->job = job; /* freed with the request */
    struct ingest_limits lim = limits_of(cfg);
    struct ingest_fatal fatal;
    int64_t now = clock_wall_ms();
    struct auth *auth = pipeline_auth(req->api->pipeline);
    struct auth_verdict verdict;
    memset(&verdict, 0, sizeof verdict);
    const char *body = req->body ? req->body : "";
    size_t body_len = req->body_len;
    const char *bearer = NULL;
    if (!line && (jose || auth_looks_like_jws(body, body_len))) {
        if (auth == NULL)
            return api_respond_error(req, 401, "unknown_key", NULL,
                                     "this canaryd has no keyring: signed readings cannot be "
                                     "verified");
        /* The payload lives in the batch's arena, with the readings parsed from it: one block
         * holds both. */
        ingest_batch_size_for(&job->batch, body_len / 2 * 3 + 2);
        char *payload = arena_alloc(&job->batch.arena, body_len + 1);
        if (payload == NULL)
            return api_respond_error(req, 503, "overloaded", NULL, "out of memory");
        if (auth_open_jws(auth, body, body_len, cfg->http.max_body_bytes, now, payload,
                          body_len + 1, &body_len, &verdict) != 0)
            return refuse(req, &verdict);
        body = payload;
    } else {
        const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
        if (h != NULL && strncmp(h, "Bearer ", 7) == 0) {
            verdict.how = AUTH_BEARER;
            bearer = h + 7;
        }
    }
    int rc = line ? ingest_parse_line(body, body_len, &lim, precision, now, &job->batch, &fatal)
                  : ingest_parse_json(body, body_len, &lim, now, &job->batch, &fatal);
    if (rc != 0) {
        pipeline_count(req->api->pipeline,
                       fatal.http_status == 413 ? PC_BODIES_TOO_LARGE : PC_BODIES_MALFORMED, 1);
        const char *code = fatal.http_status == 413   ? "batch_too_large"
                           : fatal.http_status == 503 ? "overloaded"
                                                      : "malformed_body";
        return api_respond_error(req, (unsigned)fatal.http_status, code,
                                 fatal.field[0] ? fatal.field : NULL, "%s", fatal.reason);
    }
    if (auth != NULL && auth_check_batch(auth, &job->batch, bearer, bearer ? strlen(bearer) : 0,
                                         now, &verdict) != 0)
        return refuse(req, &verdict);
    if (auth == NULL && verdict.how == AUTH_BEARER)
        return api_respond_error(req, 401, "bad_token", NULL,
                                 "this canaryd has no keyring: device tokens cannot be checked");
    if (verdict.flagged) {
        ingest_batch_flag_all(&job->batch, FLAG_UNSIGNED);
        api_security_event(req, "unsigned_reading", verdict.device,
                           "an unsigned reading of device '%s' was accepted (security.unsigned "
                           "= flag)",
                           verdict.device);
    }
    struct verify_policy policy = {(int64_t)cfg->ingest.max_past_s * 1000,
                                   (int64_t)cfg->ingest.max_future_s * 1000};
    verify_batch(&job->batch, &policy, now);
    if (verdict.how != AUTH_NONE)
        note_stale(req, &job->batch);
    note_invalid(req, &job->batch);
    enum MHD_Result limited; /* after authenticity: forged messages cost a device nothing */
    if (api_limits_refuse_devices(req, &job->batch, &limited))
        return limited;
    return api_suspend_for_job(req, job);
}

/* True when the request carried a device credential (a signature or a bearer token). */
static bool authenticated(struct request *req)
{
    const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    return (h != NULL && strncmp(h, "Bearer ", 7) == 0) ||
           auth_looks_like_jws(req->body ? req->body : "", req->body_len);
}

/* An authenticated reading whose seq was seen: a replay of a captured message (or a retry of
 * one already stored). Recorded once per request. */
static void note_replay(struct request *req, const struct ingest_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->status[i] != READING_DUPLICATE)
            continue;
        const struct reading *r = &b->readings[i];
        api_security_event(req, "replay", r->device,
                           "an authenticated reading of device '%s' repeats seq %llu: a replay, "
                           "or a retry of a message already stored",
                           r->device ? r->device : "", (unsigned long long)r->seq);
        return;
    }
}

static const char *code_of(enum reading_status s)
{
    switch (s) {
    case READING_DUPLICATE:
        return "duplicate";
    case READING_UNKNOWN_DEVICE:
        return "unknown_device";
    case READING_UNAVAILABLE:
        return "unavailable";
    default:
        return "invalid_field";
    }
}

static unsigned status_of(enum reading_status s)
{
    switch (s) {
    case READING_ACCEPTED:
        return 200;
    case READING_DUPLICATE:
        return 409;
    case READING_UNKNOWN_DEVICE:
        return 403;
    case READING_UNAVAILABLE:
        return 503;
    default:
        return 400;
    }
}

enum MHD_Result api_ingest_resumed(struct request *req)
{
    if (req->submit_rc != 0)
        return api_respond_error(req, 503, "overloaded", NULL,
                                 req->submit_rc == CANARY_ESTOPPED
                                     ? "canaryd is shutting down; retry"
                                     : "canaryd is at its in-flight limit (ingest.max_inflight); "
                                       "retry after the Retry-After delay");
    const struct ingest_batch *b = &req->job->batch;
    size_t accepted = 0, duplicates = 0, rejected = 0;
    for (size_t i = 0; i < b->n; i++) {
        accepted += b->status[i] == READING_ACCEPTED;
        duplicates += b->status[i] == READING_DUPLICATE;
    }
    rejected = b->n - accepted - duplicates;
    if (duplicates > 0 && authenticated(req))
        note_replay(req, b);
    if (!b->is_array && b->status[0] != READING_ACCEPTED) {
        enum reading_status s = b->status[0];
        return api_respond_error(req, status_of(s), code_of(s),
                                 b->errors[0].field ? b->errors[0].field : "", "%s",
                                 b->errors[0].reason ? b->errors[0].reason : "rejected");
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "accepted", (double)accepted);
    cJSON_AddNumberToObject(root, "rejected", (double)rejected);
    cJSON_AddNumberToObject(root, "duplicates", (double)duplicates);
    cJSON *results = cJSON_AddArrayToObject(root, "results");
    bool all_invalid = true;
    for (size_t i = 0; i < b->n; i++) {
        if (b->status[i] == READING_ACCEPTED)
            continue;
        all_invalid = all_invalid && b->status[i] == READING_INVALID;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "index", (double)i);
        cJSON_AddStringToObject(r, "status", reading_status_name(b->status[i]));
        cJSON_AddStringToObject(r, "field", b->errors[i].field ? b->errors[i].field : "");
        cJSON_AddStringToObject(r, "error", b->errors[i].reason ? b->errors[i].reason : "");
        cJSON_AddItemToArray(results, r);
    }
    unsigned status = accepted == b->n ? 200 : (accepted == 0 && all_invalid ? 400 : 207);
    return api_respond_json(req, status, root, NULL);
}
