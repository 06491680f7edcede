/* api_commands.c — commands to devices and recorded events:
 *   POST /api/v1/devices/<id>/commands   {"command":"buzzer","state":"on"} -> 202 with the
 *        command (pending), once it is published and its record stored; 400 naming the
 *        field; 503 when canaryd is not connected to the broker; 409 when MQTT is disabled
 *   GET  /api/v1/devices/<id>/commands   newest first (?limit, ?before=<id>)
 *   GET  /api/v1/commands/<id>           one command: pending, acked, failed or timed_out
 *   GET  /api/v1/events                  security and ingest events, newest first
 *        (?category=security|ingest, ?kind, ?device, ?from, ?to, ?before=<id>, ?limit) */
#include "api/api.h"

#include "core/clock.h"
#include "core/error.h"
#include "mqtt/mqtt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 1000

cJSON *api_command_json(const struct device_command *c)
{
    cJSON *o = cJSON_CreateObject();
    char id[32];
    snprintf(id, sizeof id, "c-%" PRIu64, c->id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "device", c->device);
    cJSON_AddStringToObject(o, "command", c->command);
    if (strcmp(c->command, "interval_s") == 0)
        cJSON_AddNumberToObject(o, "value", c->value);
    else
        cJSON_AddStringToObject(o, "state", c->state);
    cJSON_AddStringToObject(o, "status", command_status_name(c->status));
    if (c->alert_id)
        cJSON_AddNumberToObject(o, "alert_id", (double)c->alert_id);
    else
        cJSON_AddNullToObject(o, "alert_id");
    cJSON_AddStringToObject(o, "by", c->actor);
    cJSON_AddNumberToObject(o, "created_ms", (double)c->created_ms);
    cJSON_AddNumberToObject(o, "updated_ms", (double)c->updated_ms);
    if (c->error[0])
        cJSON_AddStringToObject(o, "error", c->error);
    return o;
}

enum MHD_Result api_device_command(struct request *req)
{
    static const char *const params[] = {NULL};
    static const char *const fields[] = {"command", "state", "value", "by", NULL};
    if (!api_query_check(req, params) || !api_authorized(req))
        return MHD_YES;
    const char *device = api_device_segment(req);
    if (device == NULL)
        return MHD_YES;
    cJSON *body = api_body_object(req, fields);
    if (body == NULL)
        return MHD_YES;
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(body, "command");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(body, "state");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(body, "value");
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(body, "by");
    const char *bad = NULL;
    if (!cJSON_IsString(cmd))
        bad = "command";
    else if (state != NULL && !cJSON_IsString(state))
        bad = "state";
    else if (value != NULL && !cJSON_IsNumber(value))
        bad = "value";
    else if (by != NULL && (!cJSON_IsString(by) || strlen(by->valuestring) >= COMMAND_ACTOR_LEN))
        bad = "by";
    if (bad != NULL) {
        cJSON_Delete(body);
        return api_respond_error(req, 400, "invalid_field", bad, "must be a %s",
                                 strcmp(bad, "value") == 0 ? "number"
                                 : strcmp(bad, "by") == 0  ? "string of at most 63 bytes"
                                                           : "string");
    }
    char why[160];
    const char *field = NULL;
    if (command_check(cmd->valuestring, state ? state->valuestring : NULL,
                      value ? value->valuedouble : 0, value != NULL, why, sizeof why,
                      &field) != 0) {
        cJSON_Delete(body);
        return api_respond_error(req, 400, "invalid_field", field, "%s", why);
    }
    struct job *job = calloc(1, sizeof *job);
    struct device_command *c = calloc(1, sizeof *c);
    if (job == NULL || c == NULL) {
        free(job);
        free(c);
        cJSON_Delete(body);
        return api_respond_error(req, 503, "overloaded", NULL, "out of memory");
    }
    snprintf(c->device, sizeof c->device, "%s", device);
    snprintf(c->command, sizeof c->command, "%s", cmd->valuestring);
    snprintf(c->state, sizeof c->state, "%s", state ? state->valuestring : "");
    c->value = value ? value->valuedouble : 0;
    snprintf(c->actor, sizeof c->actor, "%s", by ? by->valuestring : "api");
    api_actor_override(req, c->actor, sizeof c->actor);
    cJSON_Delete(body);
    char err[200];
    int rc = mqtt_send_command(req->api->mqtt, c, err, sizeof err);
    if (rc != 0) {
        free(job);
        free(c);
        return rc == CANARY_EBUSY
                   ? api_respond_error(req, 503, "broker_unavailable", NULL, "%s", err)
                   : api_respond_error(req, 409, "mqtt_disabled", NULL, "%s", err);
    }
    job->kind = JOB_RECORDS;
    ingest_batch_init(&job->batch);
    job->commands = c;
    job->n_commands = 1;
    req->job = job;       /* freed with the request */
    req->job_payload = c; /* likewise */
    return api_suspend_for_job(req, job);
}

enum MHD_Result api_device_command_resumed(struct request *req)
{
    if (req->submit_rc != 0 || req->job->result != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL,
                                 "the command was sent but its record could not be stored");
    return api_respond_json(req, 202, api_command_json(req->job->commands), NULL);
}

enum MHD_Result api_device_commands(struct request *req)
{
    static const char *const params[] = {"limit", "before", NULL};
    uint64_t limit = 100, before = 0;
    if (!api_query_check(req, params) || !api_query_uint(req, "limit", 1, LIST_MAX, &limit) ||
        !api_query_uint(req, "before", 1, UINT64_MAX, &before))
        return MHD_YES;
    const char *device = api_device_segment(req);
    if (device == NULL)
        return MHD_YES;
    struct device_command *out = calloc(limit, sizeof *out);
    struct store *s = out ? api_reader(req) : NULL;
    if (s == NULL) {
        free(out);
        return out ? MHD_YES : api_respond_error(req, 503, "overloaded", NULL, "out of memory");
    }
    char err[512];
    int n = store_commands_list(s, device, 0, before, out, limit, err, sizeof err);
    api_reader_release(req, s);
    if (n < 0) {
        free(out);
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "commands");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, api_command_json(&out[i]));
    if ((uint64_t)n == limit) {
        char next[64];
        snprintf(next, sizeof next, "%" PRIu64, out[n - 1].id);
        cJSON_AddStringToObject(root, "next_before", next);
    } else {
        cJSON_AddNullToObject(root, "next_before");
    }
    free(out);
    return api_respond_json(req, 200, root, NULL);
}

enum MHD_Result api_command_get(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    uint64_t id = 0;
    if (command_id_parse(req->segments[3], &id) != 0)
        return api_respond_error(req, 400, "invalid_path", "id", "a command id looks like c-42");
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    struct device_command c;
    char err[512];
    int rc = store_command_get(s, id, &c, err, sizeof err);
    api_reader_release(req, s);
    if (rc == CANARY_ENOTFOUND)
        return api_respond_error(req, 404, "not_found", "id", "no command c-%" PRIu64, id);
    if (rc != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    return api_respond_json(req, 200, api_command_json(&c), NULL);
}

cJSON *api_alert_actions_json(struct store *s, uint64_t alert_id)
{
    struct device_command cmds[32];
    char err[256];
    int n = store_commands_list(s, NULL, alert_id, 0, cmds, 32, err, sizeof err);
    cJSON *arr = cJSON_CreateArray();
    for (int i = n - 1; i >= 0; i--) /* oldest first, like the events */
        cJSON_AddItemToArray(arr, api_command_json(&cmds[i]));
    return arr;
}

enum MHD_Result api_events(struct request *req)
{
    static const char *const params[] = {"category", "kind",   "device", "from",
                                         "to",       "before", "limit",  NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    struct store_event_filter f = {-1, NULL, NULL, 0, 0, 0, 100};
    const char *cat = api_query(req, "category");
    if (cat != NULL) {
        enum event_category c;
        if (event_category_parse(cat, &c) != 0)
            return api_respond_error(req, 400, "bad_query", "category",
                                     "must be security or ingest");
        f.category = (int)c;
    }
    f.kind = api_query(req, "kind");
    f.device = api_query(req, "device");
    int64_t now = clock_wall_ms();
    uint64_t limit = 100, before = 0;
    if (!api_query_time(req, "from", now, &f.from_ms) ||
        !api_query_time(req, "to", now, &f.to_ms) ||
        !api_query_uint(req, "limit", 1, LIST_MAX, &limit) ||
        !api_query_uint(req, "before", 1, UINT64_MAX, &before))
        return MHD_YES;
    f.limit = limit;
    f.before_id = before;
    struct event_record *out = calloc(limit, sizeof *out);
    struct store *s = out ? api_reader(req) : NULL;
    if (s == NULL) {
        free(out);
        return out ? MHD_YES : api_respond_error(req, 503, "overloaded", NULL, "out of memory");
    }
    char err[512];
    int n = store_events_list(s, &f, out, err, sizeof err);
    api_reader_release(req, s);
    if (n < 0) {
        free(out);
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "events");
    for (int i = 0; i < n; i++) {
        const struct event_record *e = &out[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)e->id);
        cJSON_AddNumberToObject(o, "ts_ms", (double)e->ts_ms);
        cJSON_AddStringToObject(o, "category", event_category_name(e->category));
        cJSON_AddStringToObject(o, "kind", e->kind);
        if (e->device[0])
            cJSON_AddStringToObject(o, "device", e->device);
        else
            cJSON_AddNullToObject(o, "device");
        cJSON_AddStringToObject(o, "source", e->source);
        cJSON_AddStringToObject(o, "detail", e->detail);
        cJSON_AddNumberToObject(o, "count", e->count);
        cJSON_AddItemToArray(arr, o);
    }
    api_add_next_before(root, (uint64_t)n == limit, n > 0 ? out[n - 1].id : 0);
    free(out);
    return api_respond_json(req, 200, root, NULL);
}
