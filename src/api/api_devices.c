/* api_devices.c — the device registry over HTTP:
 *   GET   /api/v1/devices?after=<id>&limit=N   list, ordered by id, paginated
 *   POST  /api/v1/devices                      register {"id","name","location","kind"}
 *   GET   /api/v1/devices/<id>                 one device
 *   PATCH /api/v1/devices/<id>                 change name, location, kind
 *   POST  /api/v1/devices/<id>/release         a person releases a quarantined or suspect
 *                                              device {"by","comment"} (docs/TAMPER.md)
 * Every device carries its "trust" as the tamper checks left it (the device_trust table):
 * state, score, since_ms, reasons, and the last release.
 * A device's status is derived from its last reading: online, stale (devices.stale_after_s),
 * offline (devices.offline_after_s), or never (registered, no reading yet); a device whose
 * MQTT status says offline (its last will) or sleeping is offline at once. "connection" is
 * what it last said on its MQTT status topic (unknown for HTTP-only devices). */
#include "api/api.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/metric.h"
#include "mqtt/mqtt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *status_name(const struct canary_config *cfg, int64_t last_seen_ms, int64_t now)
{
    if (last_seen_ms == 0)
        return "never";
    int64_t age = now - last_seen_ms;
    if (age >= (int64_t)cfg->devices.offline_after_s * 1000)
        return "offline";
    if (age >= (int64_t)cfg->devices.stale_after_s * 1000)
        return "stale";
    return "online";
}

/* The device's trust object from its device_trust row (none: trusted since it was created).
 * A store error leaves the state "unknown" rather than failing the whole answer. */
static cJSON *trust_json(struct store *s, const struct store_device *d)
{
    cJSON *t = cJSON_CreateObject();
    struct store_trust *row = calloc(1, sizeof *row);
    char err[256];
    int rc =
        row != NULL && s != NULL ? store_trust_get(s, d->id, row, err, sizeof err) : CANARY_EIO;
    if (rc == CANARY_ENOTFOUND) {
        cJSON_AddStringToObject(t, "state", "trusted");
        cJSON_AddNumberToObject(t, "score", 1);
        cJSON_AddNumberToObject(t, "since_ms", (double)d->created_ms);
        cJSON_AddArrayToObject(t, "reasons");
    } else if (rc != 0) {
        cJSON_AddStringToObject(t, "state", "unknown");
        cJSON_AddNullToObject(t, "score");
        cJSON_AddNullToObject(t, "since_ms");
        cJSON_AddArrayToObject(t, "reasons");
    } else {
        cJSON_AddStringToObject(t, "state", row->state);
        cJSON_AddNumberToObject(t, "score", round(row->score * 1000) / 1000);
        cJSON_AddNumberToObject(t, "since_ms", (double)row->since_ms);
        cJSON *reasons = row->reasons[0] ? cJSON_Parse(row->reasons) : NULL;
        if (!cJSON_IsArray(reasons)) {
            cJSON_Delete(reasons);
            reasons = cJSON_CreateArray();
        }
        cJSON_AddItemToObject(t, "reasons", reasons);
        cJSON_AddNumberToObject(t, "updated_ms", (double)row->updated_ms);
    }
    if (rc == 0 && row->released_ms) {
        cJSON_AddNumberToObject(t, "released_ms", (double)row->released_ms);
        cJSON_AddStringToObject(t, "released_by", row->released_by);
    } else {
        cJSON_AddNullToObject(t, "released_ms");
        cJSON_AddNullToObject(t, "released_by");
    }
    free(row);
    return t;
}

static cJSON *device_json(const struct canary_config *cfg, struct mqtt *mq, struct store *s,
                          const struct store_device *d, int64_t now)
{
    int64_t link_since = 0;
    enum device_link link = mqtt_device_link(mq, d->id, &link_since);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", d->id);
    cJSON_AddStringToObject(o, "name", d->name);
    cJSON_AddStringToObject(o, "location", d->location);
    cJSON_AddStringToObject(o, "kind", d->kind);
    bool gone = link == LINK_OFFLINE || link == LINK_SLEEPING;
    cJSON_AddStringToObject(o, "status", gone ? "offline" : status_name(cfg, d->last_seen_ms, now));
    cJSON_AddStringToObject(o, "connection", device_link_name(link));
    if (link_since)
        cJSON_AddNumberToObject(o, "connection_since_ms", (double)link_since);
    else
        cJSON_AddNullToObject(o, "connection_since_ms");
    cJSON_AddBoolToObject(o, "registered", d->registered);
    cJSON_AddNumberToObject(o, "created_ms", (double)d->created_ms);
    if (d->first_seen_ms)
        cJSON_AddNumberToObject(o, "first_seen_ms", (double)d->first_seen_ms);
    else
        cJSON_AddNullToObject(o, "first_seen_ms");
    if (d->last_seen_ms)
        cJSON_AddNumberToObject(o, "last_seen_ms", (double)d->last_seen_ms);
    else
        cJSON_AddNullToObject(o, "last_seen_ms");
    cJSON_AddNumberToObject(o, "readings", (double)d->readings);
    cJSON_AddItemToObject(o, "trust", trust_json(s, d));
    return o;
}

enum MHD_Result api_devices_list(struct request *req)
{
    static const char *const params[] = {"after", "limit", NULL};
    uint64_t limit = 100;
    if (!api_query_check(req, params) || !api_query_uint(req, "limit", 1, 1000, &limit))
        return MHD_YES;
    const char *after = api_query(req, "after");
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    struct store_device *list = calloc(limit, sizeof *list);
    char err[512];
    int n = list ? store_devices_list(s, after ? after : "", list, limit, err, sizeof err) : -1;
    if (n < 0) {
        api_reader_release(req, s);
        free(list);
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s",
                                 list ? err : "out of memory");
    }
    int64_t now = clock_wall_ms();
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "devices");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, device_json(req->api->cfg, req->api->mqtt, s, &list[i], now));
    api_reader_release(req, s);
    if ((uint64_t)n == limit)
        cJSON_AddStringToObject(root, "next", list[n - 1].id);
    else
        cJSON_AddNullToObject(root, "next");
    free(list);
    return api_respond_json(req, 200, root, NULL);
}

enum MHD_Result api_device_get(struct request *req)
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
    struct store_device d;
    char err[512];
    int rc = store_device_get(s, id, &d, err, sizeof err);
    cJSON *o = rc == 0 ? device_json(req->api->cfg, req->api->mqtt, s, &d, clock_wall_ms()) : NULL;
    api_reader_release(req, s);
    if (rc == CANARY_ENOTFOUND)
        return api_respond_error(req, 404, "not_found", "device", "no device '%s'", id);
    if (rc != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    return api_respond_json(req, 200, o, NULL);
}

/* Copies an optional string field into dst. Answers 400 when it is not a string or too long. */
static bool text_field(struct request *req, cJSON *body, const char *name, char *dst, size_t len,
                       bool *given)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    *given = false;
    if (v == NULL)
        return true;
    if (!cJSON_IsString(v)) {
        api_respond_error(req, 400, "invalid_field", name, "must be a string");
        return false;
    }
    if (strlen(v->valuestring) >= len) {
        api_respond_error(req, 400, "invalid_field", name, "is longer than %zu bytes", len - 1);
        return false;
    }
    for (const char *p = v->valuestring; *p; p++) {
        if ((unsigned char)*p < 0x20) {
            api_respond_error(req, 400, "invalid_field", name,
                              "must not contain control characters");
            return false;
        }
    }
    snprintf(dst, len, "%s", v->valuestring);
    *given = true;
    return true;
}

enum MHD_Result api_device_create(struct request *req)
{
    static const char *const fields[] = {"id", "name", "location", "kind", NULL};
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params) || !api_authorized(req))
        return MHD_YES;
    cJSON *body = api_body_object(req, fields);
    if (body == NULL)
        return MHD_YES;
    struct store_device d;
    memset(&d, 0, sizeof d);
    bool has_id, given;
    bool ok = text_field(req, body, "id", d.id, sizeof d.id, &has_id) &&
              text_field(req, body, "name", d.name, sizeof d.name, &given) &&
              text_field(req, body, "location", d.location, sizeof d.location, &given) &&
              text_field(req, body, "kind", d.kind, sizeof d.kind, &given);
    cJSON_Delete(body);
    if (!ok)
        return MHD_YES;
    if (!has_id || !device_id_valid(d.id, strlen(d.id), req->api->cfg->ingest.max_device_len))
        return api_respond_error(req, 400, "invalid_field", "id",
                                 "a device id is required: letters, digits and . _ : -");
    char err[512];
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = store_device_create(req->api->admin, &d, clock_wall_ms(), err, sizeof err);
    if (rc == 0)
        rc = store_device_get(req->api->admin, d.id, &d, err, sizeof err);
    cJSON *o =
        rc == 0 ? device_json(req->api->cfg, req->api->mqtt, req->api->admin, &d, clock_wall_ms())
                : NULL;
    pthread_mutex_unlock(&req->api->admin_lock);
    if (rc == CANARY_ECONFLICT)
        return api_respond_error(req, 409, "conflict", "id", "device '%s' already exists", d.id);
    if (rc != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    char location[160];
    snprintf(location, sizeof location, "/api/v1/devices/%s", d.id);
    return api_respond_json(req, 201, o, "Location", location, NULL);
}

enum MHD_Result api_device_patch(struct request *req)
{
    static const char *const fields[] = {"name", "location", "kind", NULL};
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params) || !api_authorized(req))
        return MHD_YES;
    const char *id = api_device_segment(req);
    if (id == NULL)
        return MHD_YES;
    cJSON *body = api_body_object(req, fields);
    if (body == NULL)
        return MHD_YES;
    char name[STORE_TEXT_LEN], location[STORE_TEXT_LEN], kind[STORE_TEXT_LEN];
    bool has_name, has_location, has_kind;
    bool ok = text_field(req, body, "name", name, sizeof name, &has_name) &&
              text_field(req, body, "location", location, sizeof location, &has_location) &&
              text_field(req, body, "kind", kind, sizeof kind, &has_kind);
    cJSON_Delete(body);
    if (!ok)
        return MHD_YES;
    char err[512];
    struct store_device d;
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = store_device_update(req->api->admin, id, has_name ? name : NULL,
                                 has_location ? location : NULL, has_kind ? kind : NULL, err,
                                 sizeof err);
    if (rc == 0)
        rc = store_device_get(req->api->admin, id, &d, err, sizeof err);
    cJSON *o =
        rc == 0 ? device_json(req->api->cfg, req->api->mqtt, req->api->admin, &d, clock_wall_ms())
                : NULL;
    pthread_mutex_unlock(&req->api->admin_lock);
    if (rc == CANARY_ENOTFOUND)
        return api_respond_error(req, 404, "not_found", "device", "no device '%s'", id);
    if (rc != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    return api_respond_json(req, 200, o, NULL);
}

/* POST /api/v1/devices/<id>/release {"by": "alice", "comment": "sensor replaced"} (both
 * optional; "by" defaults to "api"): the device's owner worker releases it (JOB_RELEASE);
 * answered once the release and its event are stored. */
enum MHD_Result api_device_release(struct request *req)
{
    static const char *const params[] = {NULL};
    static const char *const fields[] = {"by", "comment", NULL};
    if (!api_query_check(req, params) || !api_authorized(req))
        return MHD_YES;
    const char *id = api_device_segment(req);
    if (id == NULL)
        return MHD_YES;
    struct job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return api_respond_error(req, 503, "overloaded", NULL, "out of memory");
    req->job = job; /* freed with the request */
    snprintf(job->actor, sizeof job->actor, "api");
    if (req->body_len > 0) {
        cJSON *body = api_body_object(req, fields);
        if (body == NULL)
            return MHD_YES;
        bool given;
        bool ok = text_field(req, body, "by", job->actor, sizeof job->actor, &given) &&
                  text_field(req, body, "comment", job->comment, sizeof job->comment, &given);
        cJSON_Delete(body);
        if (!ok)
            return MHD_YES;
        if (job->actor[0] == '\0')
            return api_respond_error(req, 400, "invalid_field", "by", "must not be empty");
    }
    api_actor_override(req, job->actor, sizeof job->actor); /* a logged-in caller is who */
    job->kind = JOB_RELEASE;
    snprintf(job->device, sizeof job->device, "%s", id);
    ingest_batch_init(&job->batch);
    return api_suspend_for_job(req, job);
}

enum MHD_Result api_device_release_resumed(struct request *req)
{
    struct job *job = req->job;
    if (req->submit_rc != 0)
        return api_respond_error(req, 503, "overloaded", NULL, "canaryd is shutting down; retry");
    if (job->result == CANARY_ENOTFOUND)
        return api_respond_error(req, 404, "not_found", "device", "no device '%s'", job->device);
    if (job->result == CANARY_ECONFLICT)
        return api_respond_error(req, 409, "conflict", "trust",
                                 "device '%s' is trusted: nothing to release", job->device);
    if (job->result != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL,
                                 "the release could not be stored; retry");
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    struct store_device d;
    char err[512];
    int rc = store_device_get(s, job->device, &d, err, sizeof err);
    cJSON *o = rc == 0 ? device_json(req->api->cfg, req->api->mqtt, s, &d, clock_wall_ms()) : NULL;
    api_reader_release(req, s);
    if (rc != 0) /* released in the pipeline, not yet in the devices table: say so plainly */
        return api_respond_json(req, 200, NULL, NULL);
    return api_respond_json(req, 200, o, NULL);
}
