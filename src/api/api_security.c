/* api_security.c — device credentials over the REST API, and security events from HTTP.
 *
 *   POST /api/v1/devices/{id}/keys    {"kind":"hmac"|"token"} (default hmac): a new key or
 *                                     token, returned ONCE in the answer; when the device
 *                                     already has a valid one of that kind this is a rotation
 *                                     and the old ones stay valid security.key_overlap_s
 *                                     (or {"overlap_s": n}) longer
 *   GET  /api/v1/devices/{id}/keys    versions and states, never the secrets
 *   POST /api/v1/devices/{id}/revoke  revokes every credential of the device
 *
 * These need api.admin_token to be configured (403 otherwise: an open endpoint handing out
 * device keys would defeat them) and presented. After a change the keyring (verify/auth.h)
 * is reloaded before the answer, so the next message is judged by the new state.
 *
 * Credential changes are recorded as security events too (key_created, key_rotated,
 * credentials_revoked, with the caller's address): who gave a device a key is worth knowing.
 *
 * api_security_event() stores one security event for an ingest refusal: rate-limited (the
 * keyring's token bucket; the excess is counted in one "suppressed" event) and submitted as
 * a fire-and-forget JOB_RECORDS job, so a flood of forgeries cannot fill the disk or hold an
 * HTTP thread. */
#include "api/api.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "verify/auth.h"
#include "verify/devkey.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- security events --------------------------------------------------------------------- */

struct records_job {
    struct job job;
    struct event_record records[2];
};

static void records_done(struct job *job)
{
    if (job->result != 0)
        log_error("api.events_lost", "events=%zu reason=store_unavailable", job->n_records);
    free(job);
}

static void client_address(struct MHD_Connection *conn, char *buf, size_t len)
{
    snprintf(buf, len, "?");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  (socklen_t)len);
}

void api_security_event(struct request *req, const char *kind, const char *device, const char *fmt,
                        ...)
{
    struct auth *a = pipeline_auth(req->api->pipeline);
    char addr[64];
    client_address(req->conn, addr, sizeof addr);
    char detail[EVENT_DETAIL_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    uint64_t suppressed = 0;
    if (a != NULL && !auth_event_allow(a, clock_mono_ms(), &suppressed))
        return;
    log_warn("api.security_event", "kind=%s device=%s source=\"http %s\" detail=\"%s\"", kind,
             device != NULL ? device : "", addr, detail);
    struct records_job *r = calloc(1, sizeof *r);
    if (r == NULL)
        return;
    int64_t now = clock_wall_ms();
    size_t n = 0;
    if (suppressed > 0) {
        struct event_record *s = &r->records[n++];
        s->ts_ms = now;
        s->category = EVENT_SECURITY;
        snprintf(s->kind, sizeof s->kind, "suppressed");
        snprintf(s->source, sizeof s->source, "http");
        snprintf(s->detail, sizeof s->detail,
                 "%llu security events were not stored individually: more than 10 a second "
                 "arrived",
                 (unsigned long long)suppressed);
        s->count = (uint32_t)(suppressed > UINT32_MAX ? UINT32_MAX : suppressed);
    }
    struct event_record *e = &r->records[n++];
    e->ts_ms = now;
    e->category = EVENT_SECURITY;
    e->count = 1;
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    snprintf(e->device, sizeof e->device, "%s", device != NULL ? device : "");
    snprintf(e->source, sizeof e->source, "http %s", addr);
    snprintf(e->detail, sizeof e->detail, "%s", detail);
    r->job.kind = JOB_RECORDS;
    r->job.records = r->records;
    r->job.n_records = n;
    r->job.done = records_done;
    if (pipeline_submit(req->api->pipeline, &r->job) != 0) {
        log_error("api.events_lost", "events=%zu reason=overloaded", n);
        free(r);
    }
}

/* ---- credentials ------------------------------------------------------------------------- */

/* Admin calls on credentials: a configured and presented admin token, and a master key for
 * HMAC keys. Answers and returns NULL otherwise. */
static struct auth *admin_auth(struct request *req)
{
    if (req->api->cfg->api.admin_token[0] == '\0' && !api_access_on(req)) {
        api_respond_error(req, 403, "admin_token_required", NULL,
                          "device credentials can be managed only when api.admin_token is set");
        return NULL;
    }
    if (!api_authorized(req))
        return NULL;
    struct auth *a = pipeline_auth(req->api->pipeline);
    if (a == NULL)
        api_respond_error(req, 503, "unavailable", NULL, "this canaryd has no keyring");
    return a;
}

static const char *key_state(const struct store_device_key *k, int64_t now)
{
    if (k->revoked_ms != 0)
        return "revoked";
    if (k->expires_ms != 0 && now >= k->expires_ms)
        return "expired";
    return k->expires_ms != 0 ? "overlap" : "active";
}

struct list_ctx {
    cJSON *arr;
    int64_t now;
    bool has_valid[2]; /* per kind */
};

static void list_key(void *arg, const struct store_device_key *k)
{
    struct list_ctx *c = arg;
    const char *state = key_state(k, c->now);
    if (strcmp(state, "active") == 0 || strcmp(state, "overlap") == 0)
        c->has_valid[k->kind == STORE_KEY_TOKEN] = true;
    if (c->arr == NULL)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", store_key_kind_name(k->kind));
    cJSON_AddNumberToObject(o, "version", k->version);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddNumberToObject(o, "created_ms", (double)k->created_ms);
    if (k->expires_ms != 0)
        cJSON_AddNumberToObject(o, "expires_ms", (double)k->expires_ms);
    else
        cJSON_AddNullToObject(o, "expires_ms");
    if (k->revoked_ms != 0)
        cJSON_AddNumberToObject(o, "revoked_ms", (double)k->revoked_ms);
    else
        cJSON_AddNullToObject(o, "revoked_ms");
    cJSON_AddItemToArray(c->arr, o);
}

enum MHD_Result api_device_keys_list(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    const char *id = api_device_segment(req);
    if (id == NULL)
        return MHD_YES;
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    char err[512];
    struct store_device d;
    int rc = store_device_get(s, id, &d, err, sizeof err);
    struct list_ctx c = {cJSON_CreateArray(), clock_wall_ms(), {false, false}};
    if (rc == 0)
        rc = store_keys_each(s, id, list_key, &c, err, sizeof err);
    api_reader_release(req, s);
    if (rc != 0) {
        cJSON_Delete(c.arr);
        return rc == CANARY_ENOTFOUND
                   ? api_respond_error(req, 404, "not_found", NULL, "no device '%s'", id)
                   : api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "device", id);
    cJSON_AddItemToObject(root, "keys", c.arr);
    return api_respond_json(req, 200, root, NULL);
}

enum MHD_Result api_device_key_create(struct request *req)
{
    static const char *const fields[] = {"kind", "overlap_s", NULL};
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    struct auth *a = admin_auth(req);
    if (a == NULL)
        return MHD_YES;
    const char *id = api_device_segment(req);
    if (id == NULL)
        return MHD_YES;
    enum store_key_kind kind = STORE_KEY_HMAC;
    double overlap_s = req->api->cfg->security.key_overlap_s;
    if (req->body_len > 0) {
        cJSON *body = api_body_object(req, fields);
        if (body == NULL)
            return MHD_YES;
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(body, "kind");
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(body, "overlap_s");
        bool bad_kind = k != NULL && (!cJSON_IsString(k) || (strcmp(k->valuestring, "hmac") != 0 &&
                                                             strcmp(k->valuestring, "token") != 0));
        bool bad_overlap =
            o != NULL && (!cJSON_IsNumber(o) || o->valuedouble < 0 || o->valuedouble > 31536000);
        if (k != NULL && !bad_kind && strcmp(k->valuestring, "token") == 0)
            kind = STORE_KEY_TOKEN;
        if (o != NULL && !bad_overlap)
            overlap_s = o->valuedouble;
        cJSON_Delete(body);
        if (bad_kind)
            return api_respond_error(req, 400, "invalid_field", "kind",
                                     "must be \"hmac\" (signed readings) or \"token\" (HTTP "
                                     "bearer token)");
        if (bad_overlap)
            return api_respond_error(req, 400, "invalid_field", "overlap_s",
                                     "must be a number of seconds from 0 to 31536000");
    }
    if (kind == STORE_KEY_HMAC && !auth_has_master(a))
        return api_respond_error(req, 409, "master_key_missing", NULL,
                                 "device keys are stored encrypted: set security.master_key "
                                 "(or CANARY_MASTER_KEY) and restart canaryd");
    int64_t now = clock_wall_ms();
    struct store_device_key k;
    memset(&k, 0, sizeof k);
    snprintf(k.device, sizeof k.device, "%s", id);
    k.kind = kind;
    k.created_ms = now;
    uint8_t key[DEVKEY_LEN];
    char secret[DEVKEY_TOKEN_LEN + 1] = "";
    char err[512];
    pthread_mutex_lock(&req->api->admin_lock);
    struct store_device d;
    struct list_ctx c = {NULL, now, {false, false}};
    int rc = store_device_get(req->api->admin, id, &d, err, sizeof err);
    if (rc == 0)
        rc = store_keys_each(req->api->admin, id, list_key, &c, err, sizeof err);
    if (rc == 0)
        rc = store_key_next_version(req->api->admin, id, kind, &k.version, err, sizeof err);
    if (rc == 0 && kind == STORE_KEY_HMAC) {
        rc = devkey_random(key, sizeof key);
        if (rc == 0)
            rc = devkey_seal(auth_master(a), id, k.version, key, k.material);
        k.material_len = DEVKEY_SEALED_LEN;
        devkey_format(key, secret);
        OPENSSL_cleanse(key, sizeof key);
        if (rc != 0)
            snprintf(err, sizeof err, "cannot make a key (OpenSSL)");
    } else if (rc == 0) {
        rc = devkey_token_new(secret, k.material);
        k.material_len = DEVKEY_HASH_LEN;
        if (rc != 0)
            snprintf(err, sizeof err, "cannot make a token (OpenSSL)");
    }
    bool rotation = c.has_valid[kind == STORE_KEY_TOKEN];
    int64_t overlap_until = rotation ? now + (int64_t)(overlap_s * 1000) : 0;
    if (rotation && overlap_until == 0)
        overlap_until = now; /* overlap 0: the old ones end now */
    if (rc == 0)
        rc = store_key_add(req->api->admin, &k, overlap_until, err, sizeof err);
    if (rc == 0)
        rc = auth_reload(a, req->api->admin, err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    if (rc != 0) {
        OPENSSL_cleanse(secret, sizeof secret);
        if (rc == CANARY_ENOTFOUND)
            return api_respond_error(req, 404, "not_found", NULL,
                                     "no device '%s': create it first (POST /api/v1/devices)", id);
        return api_respond_error(req, rc == CANARY_ECONFLICT ? 409 : 503,
                                 rc == CANARY_ECONFLICT ? "conflict" : "store_unavailable", NULL,
                                 "%s", err);
    }
    log_info("api.device_key_created", "device=%s kind=%s version=%u rotation=%s", id,
             store_key_kind_name(kind), k.version, rotation ? "true" : "false");
    api_security_event(req, rotation ? "key_rotated" : "key_created", id,
                       "%s version %u of device '%s' was created through the API%s",
                       store_key_kind_name(kind), k.version, id,
                       rotation ? "; the previous one stays valid during the overlap" : "");
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "device", id);
    cJSON_AddStringToObject(root, "kind", store_key_kind_name(kind));
    cJSON_AddNumberToObject(root, "version", k.version);
    /* The only time the secret leaves canaryd. */
    cJSON_AddStringToObject(root, kind == STORE_KEY_HMAC ? "key" : "token", secret);
    OPENSSL_cleanse(secret, sizeof secret);
    if (rotation)
        cJSON_AddNumberToObject(root, "previous_valid_until_ms", (double)overlap_until);
    else
        cJSON_AddNullToObject(root, "previous_valid_until_ms");
    return api_respond_json(req, 201, root, "Cache-Control", "no-store", NULL);
}

enum MHD_Result api_device_revoke(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    struct auth *a = admin_auth(req);
    if (a == NULL)
        return MHD_YES;
    const char *id = api_device_segment(req);
    if (id == NULL)
        return MHD_YES;
    char err[512];
    size_t n = 0;
    struct store_device d;
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = store_device_get(req->api->admin, id, &d, err, sizeof err);
    if (rc == 0)
        rc = store_keys_revoke(req->api->admin, id, clock_wall_ms(), &n, err, sizeof err);
    if (rc == 0)
        rc = auth_reload(a, req->api->admin, err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    if (rc == CANARY_ENOTFOUND)
        return api_respond_error(req, 404, "not_found", NULL, "no device '%s'", id);
    if (rc != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    log_info("api.device_revoked", "device=%s credentials=%zu", id, n);
    api_security_event(req, "credentials_revoked", id,
                       "%zu credential(s) of device '%s' were revoked through the API", n, id);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "device", id);
    cJSON_AddNumberToObject(root, "revoked", (double)n);
    return api_respond_json(req, 200, root, NULL);
}
