/* api_util.c — helpers every endpoint uses: JSON responses and the error shape, reader
 * handles, query parameters, JSON bodies, the admin token, suspension for pipeline jobs. */
#include "api/api.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metric.h"
#include "core/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result api_respond_json(struct request *req, unsigned status, cJSON *body, ...)
{
    char *text = body != NULL ? cJSON_PrintUnformatted(body) : strdup("{}");
    cJSON_Delete(body);
    if (text == NULL)
        return MHD_NO;
    size_t len = strlen(text);
    text[len] = '\0';
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    va_list ap;
    va_start(ap, body);
    for (;;) {
        const char *name = va_arg(ap, const char *);
        if (name == NULL)
            break;
        const char *value = va_arg(ap, const char *);
        MHD_add_response_header(resp, name, value);
    }
    va_end(ap);
    req->status = status;
    enum MHD_Result r = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result api_respond_error(struct request *req, unsigned status, const char *code,
                                  const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddNumberToObject(e, "status", status);
    cJSON_AddStringToObject(e, "code", code);
    if (field != NULL)
        cJSON_AddStringToObject(e, "field", field);
    cJSON_AddStringToObject(e, "message", msg);
    if (req->audit_detail[0] == '\0')
        snprintf(req->audit_detail, sizeof req->audit_detail, "%s", code);
    log_debug("http.error", "method=%s path=%s status=%u code=%s field=%s message=\"%s\"",
              req->method, req->path, status, code, field ? field : "", msg);
    if (status == 503)
        return api_respond_json(req, status, root, "Retry-After", "1", NULL);
    if (status == 401)
        return api_respond_json(req, status, root, "WWW-Authenticate", "Bearer realm=\"canary\"",
                                NULL);
    return api_respond_json(req, status, root, NULL);
}

static void job_done(struct job *job)
{
    struct request *req = job->user;
    atomic_store(&req->job_done, true);
    MHD_resume_connection(req->conn);
}

enum MHD_Result api_suspend_for_job(struct request *req, struct job *job)
{
    job->done = job_done;
    job->user = req;
    req->job = job;
    /* Suspend before submitting: done() may run on another thread at once. */
    req->suspended = true;
    MHD_suspend_connection(req->conn);
    int rc = pipeline_submit(req->api->pipeline, job);
    if (rc != 0) {
        req->submit_rc = rc;
        atomic_store(&req->job_done, true);
        MHD_resume_connection(req->conn);
    }
    return MHD_YES;
}

struct store *api_store_borrow(struct api_ctx *api, char *err, size_t errlen)
{
    struct store_pool *pool = &api->readers;
    pthread_mutex_lock(&pool->lock);
    struct store *s = pool->n_free > 0 ? pool->free[--pool->n_free] : NULL;
    pthread_mutex_unlock(&pool->lock);
    if (s != NULL)
        return s;
    if (store_open(&s, &pool->opt, err, errlen) != 0) {
        log_error("api.store_open_failed", "error=\"%s\"", err);
        return NULL;
    }
    return s;
}

struct store *api_reader(struct request *req)
{
    char err[512];
    struct store *s = api_store_borrow(req->api, err, sizeof err);
    if (s == NULL)
        api_respond_error(req, 503, "store_unavailable", NULL, "the store cannot be read: %s", err);
    return s;
}

void api_reader_release(struct request *req, struct store *s)
{
    api_store_return(req->api, s);
}

void api_store_return(struct api_ctx *api, struct store *s)
{
    struct store_pool *pool = &api->readers;
    pthread_mutex_lock(&pool->lock);
    if (pool->n_free == pool->cap) {
        size_t cap = pool->cap ? pool->cap * 2 : 8;
        struct store **grown = realloc(pool->free, cap * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&pool->lock);
            store_close(s);
            return;
        }
        pool->free = grown;
        pool->cap = cap;
    }
    pool->free[pool->n_free++] = s;
    pthread_mutex_unlock(&pool->lock);
}

struct query_check {
    const char *const *allowed;
    const char *bad;
};

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    (void)value;
    struct query_check *qc = cls;
    for (const char *const *a = qc->allowed; *a != NULL; a++) {
        if (strcmp(*a, key) == 0)
            return MHD_YES;
    }
    qc->bad = key;
    return MHD_NO;
}

bool api_query_check(struct request *req, const char *const *allowed)
{
    struct query_check qc = {allowed, NULL};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_arg, &qc);
    if (qc.bad == NULL)
        return true;
    char list[256] = "";
    for (const char *const *a = allowed; *a != NULL; a++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *a);
    }
    char name[48];
    snprintf(name, sizeof name, "%.40s", qc.bad);
    for (char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
            *p = '?';
    api_respond_error(req, 400, "bad_query", name, "unknown query parameter (allowed: %s)",
                      list[0] ? list : "none");
    return false;
}

const char *api_query(struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool api_query_time(struct request *req, const char *name, int64_t now_ms, int64_t *out)
{
    const char *v = api_query(req, name);
    if (v == NULL)
        return true;
    if (strcmp(v, "now") == 0) {
        *out = now_ms;
        return true;
    }
    char *end;
    errno = 0;
    if (v[0] == '-' && v[1] >= '0' && v[1] <= '9') {
        long long n = strtoll(v + 1, &end, 10);
        int64_t unit = 0;
        if (errno == 0 && end[0] != '\0' && end[1] == '\0') {
            switch (end[0]) {
            case 's':
                unit = 1000;
                break;
            case 'm':
                unit = 60000;
                break;
            case 'h':
                unit = 3600000;
                break;
            case 'd':
                unit = 86400000;
                break;
            }
        }
        if (unit != 0 && n <= 36500LL * 86400) {
            *out = now_ms - (int64_t)n * unit;
            return true;
        }
    } else if (v[0] >= '0' && v[0] <= '9') {
        long long n = strtoll(v, &end, 10);
        if (errno == 0 && *end == '\0') {
            *out = n;
            return true;
        }
    }
    api_respond_error(req, 400, "bad_query", name,
                      "must be Unix milliseconds, \"now\", or relative like -15m, -2h, -7d");
    return false;
}

bool api_query_uint(struct request *req, const char *name, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    const char *v = api_query(req, name);
    if (v == NULL)
        return true;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < min || n > max) {
        api_respond_error(req, 400, "bad_query", name, "must be a whole number from %llu to %llu",
                          (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = n;
    return true;
}

cJSON *api_body_object(struct request *req, const char *const *allowed)
{
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type");
    if (ct != NULL && strncmp(ct, "application/json", 16) != 0) {
        api_respond_error(req, 415, "unsupported_media_type", NULL,
                          "send the body as application/json");
        return NULL;
    }
    size_t bad;
    if (req->body_len == 0) {
        api_respond_error(req, 400, "malformed_body", NULL, "a JSON object body is required");
        return NULL;
    }
    if (memchr(req->body, '\0', req->body_len) != NULL ||
        !utf8_valid(req->body, req->body_len, &bad)) {
        api_respond_error(req, 400, "malformed_body", NULL, "the body is not valid UTF-8 text");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    if (root == NULL || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        api_respond_error(req, 400, "malformed_body", NULL, "the body must be a JSON object");
        return NULL;
    }
    for (cJSON *c = root->child; c != NULL; c = c->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a != NULL && !ok; a++)
            ok = strcmp(*a, c->string) == 0;
        if (!ok) {
            char name[48];
            snprintf(name, sizeof name, "%.40s", c->string);
            for (char *p = name; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
                    *p = '?';
            cJSON_Delete(root);
            api_respond_error(req, 400, "invalid_field", name, "unknown field");
            return NULL;
        }
    }
    return root;
}

/* Compares in time independent of where the strings differ. */
static bool equal_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

bool api_authorized(struct request *req)
{
    /* With access control on, api_access_check() has checked the route's role already. */
    if (api_access_on(req) || req->who.role == STORE_ROLE_ADMIN)
        return true;
    const char *token = req->api->cfg->api.admin_token;
    if (token[0] == '\0')
        return true;
    const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    if (h != NULL && strncmp(h, "Bearer ", 7) == 0 && equal_secret(h + 7, token))
        return true;
    api_respond_error(
        req, 401, "unauthorized", NULL,
        "this call changes state and needs 'Authorization: Bearer <api.admin_token>'");
    return false;
}

cJSON *api_flags_json(uint32_t flags)
{
    cJSON *arr = cJSON_CreateArray();
    for (uint32_t bit = 1; bit != 0 && bit <= flags; bit <<= 1) {
        const char *name = (flags & bit) ? reading_flag_name(bit) : NULL;
        if (name != NULL)
            cJSON_AddItemToArray(arr, cJSON_CreateString(name));
    }
    return arr;
}

static void add_time(cJSON *obj, const char *name, int64_t ms)
{
    if (ms == 0) {
        cJSON_AddNullToObject(obj, name);
        return;
    }
    cJSON_AddNumberToObject(obj, name, (double)ms);
}

void api_add_next_before(cJSON *root, bool full_page, uint64_t last_id)
{
    if (full_page)
        cJSON_AddNumberToObject(root, "next_before", (double)last_id);
    else
        cJSON_AddNullToObject(root, "next_before");
}

void api_add_number(cJSON *obj, const char *name, double v)
{
    if (!isfinite(v))
        cJSON_AddNullToObject(obj, name);
    else
        cJSON_AddNumberToObject(obj, name, v);
}

const char *api_device_segment(struct request *req)
{
    const char *id = req->segments[3];
    if (!device_id_valid(id, strlen(id), req->api->cfg->ingest.max_device_len)) {
        api_respond_error(req, 400, "invalid_field", "device",
                          "not a valid device id (letters, digits and . _ : -)");
        return NULL;
    }
    return id;
}

cJSON *api_alert_json(const struct alert *a)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)a->id);
    cJSON_AddStringToObject(o, "device", a->device);
    cJSON_AddStringToObject(o, "metric", a->metric);
    cJSON_AddStringToObject(o, "kind", alert_kind_name(a->kind));
    cJSON_AddStringToObject(o, "severity", alert_severity_name(a->severity));
    cJSON_AddStringToObject(o, "state", alert_state_name(a->state));
    cJSON_AddStringToObject(o, "message", a->message);
    api_add_number(o, "value", a->value);
    api_add_number(o, "peak", a->peak);
    api_add_number(o, "limit", a->limit);
    add_time(o, "opened_ms", a->opened_ms);
    add_time(o, "updated_ms", a->updated_ms);
    add_time(o, "acknowledged_ms", a->acknowledged_ms);
    if (a->acknowledged_by[0])
        cJSON_AddStringToObject(o, "acknowledged_by", a->acknowledged_by);
    else
        cJSON_AddNullToObject(o, "acknowledged_by");
    add_time(o, "resolved_ms", a->resolved_ms);
    if (a->resolved_by[0])
        cJSON_AddStringToObject(o, "resolved_by", a->resolved_by);
    else
        cJSON_AddNullToObject(o, "resolved_by");
    return o;
}
