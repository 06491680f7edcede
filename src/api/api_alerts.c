/* api_alerts.c — alerts over HTTP:
 *   GET  /api/v1/alerts?state=&severity=&kind=&device=&from=&to=&limit=&before=
 *        newest first; severity is a minimum; before=<id> pages back
 *   GET  /api/v1/alerts/<id>             one alert with its timeline of events
 *   POST /api/v1/alerts/<id>/ack         {"by": "alice", "comment": "..."} (both optional)
 *   POST /api/v1/alerts/<id>/resolve     the same
 *   POST /api/v1/alerts/<id>/comments    {"by": "alice", "text": "..."}
 * Acknowledge and resolve go through the worker that owns the alert's device (it holds
 * the alert's state machine) and are answered once stored. */
#include "api/api.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/metric.h"
#include "notify/compose.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ALERTS_PAGE 500
#define MAX_EVENTS      200

static bool alert_id_segment(struct request *req, uint64_t *id)
{
    const char *s = req->segments[3];
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v == 0) {
        api_respond_error(req, 400, "invalid_field", "id", "an alert id is a positive number");
        return false;
    }
    *id = v;
    return true;
}

static bool enum_param(struct request *req, const char *name, int (*parse)(const char *, int *),
                       int *out)
{
    const char *v = api_query(req, name);
    if (v == NULL)
        return true;
    if (parse(v, out) != 0) {
        api_respond_error(req, 400, "bad_query", name, "unknown value '%.32s'", v);
        return false;
    }
    return true;
}

static int parse_state(const char *s, int *out)
{
    enum alert_state v;
    int rc = alert_state_parse(s, &v);
    *out = (int)v;
    return rc;
}

static int parse_severity(const char *s, int *out)
{
    enum alert_severity v;
    int rc = alert_severity_parse(s, &v);
    *out = (int)v;
    return rc;
}

static int parse_kind(const char *s, int *out)
{
    enum alert_kind v;
    int rc = alert_kind_parse(s, &v);
    *out = (int)v;
    return rc;
}

enum MHD_Result api_alerts_list(struct request *req)
{
    static const char *const params[] = {"state", "severity", "kind",   "device", "from",
                                         "to",    "limit",    "before", NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    struct store_alert_filter f = {-1, -1, -1, NULL, 0, 0, 0, 100};
    uint64_t limit = 100, before = 0;
    int64_t now = clock_wall_ms();
    if (!enum_param(req, "state", parse_state, &f.state) ||
        !enum_param(req, "severity", parse_severity, &f.severity) ||
        !enum_param(req, "kind", parse_kind, &f.kind) ||
        !api_query_time(req, "from", now, &f.from_ms) ||
        !api_query_time(req, "to", now, &f.to_ms) ||
        !api_query_uint(req, "limit", 1, MAX_ALERTS_PAGE, &limit) ||
        !api_query_uint(req, "before", 1, UINT64_MAX, &before))
        return MHD_YES;
    f.device = api_query(req, "device");
    f.limit = limit;
    f.before_id = before;
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    struct alert *list = calloc(limit, sizeof *list);
    char err[512];
    int n = list ? store_alerts_list(s, &f, list, err, sizeof err) : -1;
    api_reader_release(req, s);
    if (n < 0) {
        free(list);
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s",
                                 list ? err : "out of memory");
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "alerts");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, api_alert_json(&list[i]));
    api_add_next_before(root, (uint64_t)n == limit, n > 0 ? list[n - 1].id : 0);
    free(list);
    return api_respond_json(req, 200, root, NULL);
}

static cJSON *events_json(const struct alert_event *ev, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "ts_ms", (double)ev[i].ts_ms);
        cJSON_AddStringToObject(o, "action", alert_action_name(ev[i].action));
        cJSON_AddStringToObject(o, "severity", alert_severity_name(ev[i].severity));
        cJSON_AddStringToObject(o, "actor", ev[i].actor);
        cJSON_AddStringToObject(o, "note", ev[i].note);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* Fetches an alert; answers 404/503 and returns false when it cannot. */
static bool fetch_alert(struct request *req, uint64_t id, struct alert *a, cJSON **events)
{
    struct store *s = api_reader(req);
    if (s == NULL)
        return false;
    char err[512];
    int rc = store_alert_get(s, id, a, err, sizeof err);
    if (rc == 0 && events != NULL) {
        struct alert_event *ev = calloc(MAX_EVENTS, sizeof *ev);
        int n = ev ? store_alert_events(s, id, ev, MAX_EVENTS, err, sizeof err) : CANARY_ENOMEM;
        if (n >= 0)
            *events = events_json(ev, n);
        else
            rc = n;
        free(ev);
    }
    api_reader_release(req, s);
    if (rc == CANARY_ENOTFOUND)
        api_respond_error(req, 404, "not_found", "id", "no alert %llu", (unsigned long long)id);
    else if (rc != 0)
        api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    return rc == 0;
}

enum MHD_Result api_alert_get(struct request *req)
{
    static const char *const params[] = {NULL};
    uint64_t id;
    if (!api_query_check(req, params) || !alert_id_segment(req, &id))
        return MHD_YES;
    struct alert a;
    cJSON *events = NULL;
    if (!fetch_alert(req, id, &a, &events))
        return MHD_YES;
    cJSON *o = api_alert_json(&a);
    cJSON_AddItemToObject(o, "events", events);
    struct store *s = api_reader(req);
    if (s == NULL) {
        cJSON_Delete(o);
        return MHD_YES;
    }
    cJSON_AddItemToObject(o, "actions", api_alert_actions_json(s, id));
    struct composed *c = malloc(sizeof *c); /* large: its e-mail buffers */
    if (c != NULL) {
        compose_explain_alert(c, s, req->api->cfg, &a, clock_wall_ms());
        cJSON *e = cJSON_AddObjectToObject(o, "explanation");
        cJSON_AddStringToObject(e, "title", c->expl.title);
        cJSON_AddStringToObject(e, "description", c->expl.description);
        cJSON_AddStringToObject(e, "action", c->expl.action);
        cJSON_AddStringToObject(e, "short", c->expl.short_text);
        free(c);
    }
    api_reader_release(req, s);
    return api_respond_json(req, 200, o, NULL);
}

/* Reads optional "by" and a text field from an optional JSON body. */
static bool actor_and_text(struct request *req, const char *text_name, char *by, size_t by_len,
                           char *text, size_t text_len)
{
    snprintf(by, by_len, "api");
    text[0] = '\0';
    if (req->body_len == 0)
        return true;
    const char *const fields[] = {"by", text_name, NULL};
    cJSON *body = api_body_object(req, fields);
    if (body == NULL)
        return false;
    const char *names[2] = {"by", text_name};
    char *dst[2] = {by, text};
    size_t len[2] = {by_len, text_len};
    for (int i = 0; i < 2; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(body, names[i]);
        if (v == NULL)
            continue;
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= len[i]) {
            api_respond_error(req, 400, "invalid_field", names[i],
                              "must be a string of at most %zu bytes", len[i] - 1);
            cJSON_Delete(body);
            return false;
        }
        snprintf(dst[i], len[i], "%s", v->valuestring);
        for (char *p = dst[i]; *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = ' ';
    }
    cJSON_Delete(body);
    return true;
}

enum MHD_Result api_alert_action(struct request *req)
{
    static const char *const params[] = {NULL};
    uint64_t id;
    if (!api_query_check(req, params) || !api_authorized(req) || !alert_id_segment(req, &id))
        return MHD_YES;
    bool ack = strcmp(req->segments[4], "ack") == 0;
    struct job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return api_respond_error(req, 503, "overloaded", NULL, "out of memory");
    req->job = job; /* freed with the request */
    if (!actor_and_text(req, "comment", job->actor, sizeof job->actor, job->comment,
                        sizeof job->comment))
        return MHD_YES;
    api_actor_override(req, job->actor, sizeof job->actor);
    struct alert a;
    if (!fetch_alert(req, id, &a, NULL))
        return MHD_YES;
    if (a.state == ALERT_STATE_RESOLVED)
        return api_respond_error(req, 409, "conflict", "state", "alert %llu is already resolved",
                                 (unsigned long long)id);
    if (ack && a.state == ALERT_STATE_ACKNOWLEDGED)
        return api_respond_error(req, 409, "conflict", "state",
                                 "alert %llu is already acknowledged (by %s)",
                                 (unsigned long long)id, a.acknowledged_by);
    job->kind = ack ? JOB_ACKNOWLEDGE : JOB_RESOLVE;
    job->alert_id = id;
    snprintf(job->device, sizeof job->device, "%s", a.device);
    ingest_batch_init(&job->batch);
    return api_suspend_for_job(req, job);
}

enum MHD_Result api_alert_action_resumed(struct request *req)
{
    struct job *job = req->job;
    if (req->submit_rc != 0)
        return api_respond_error(req, 503, "overloaded", NULL, "canaryd is shutting down; retry");
    switch (job->result) {
    case 0:
        return api_respond_json(req, 200, api_alert_json(&job->alert), NULL);
    case CANARY_ENOTFOUND:
    case CANARY_ECONFLICT:
        return api_respond_error(req, 409, "conflict", "state",
                                 "alert %llu changed meanwhile: it is no longer %s",
                                 (unsigned long long)job->alert_id,
                                 job->kind == JOB_ACKNOWLEDGE ? "open" : "open or acknowledged");
    default:
        return api_respond_error(req, 503, "store_unavailable", NULL,
                                 "the change could not be stored; retry");
    }
}

enum MHD_Result api_alert_comment(struct request *req)
{
    static const char *const params[] = {NULL};
    uint64_t id;
    if (!api_query_check(req, params) || !api_authorized(req) || !alert_id_segment(req, &id))
        return MHD_YES;
    if (req->body_len == 0)
        return api_respond_error(req, 400, "invalid_field", "text", "a comment needs a text");
    struct alert_event ev;
    memset(&ev, 0, sizeof ev);
    if (!actor_and_text(req, "text", ev.actor, sizeof ev.actor, ev.note, sizeof ev.note))
        return MHD_YES;
    api_actor_override(req, ev.actor, sizeof ev.actor);
    if (ev.note[0] == '\0')
        return api_respond_error(req, 400, "invalid_field", "text", "a comment needs a text");
    struct alert a;
    if (!fetch_alert(req, id, &a, NULL))
        return MHD_YES;
    ev.alert_id = id;
    ev.ts_ms = clock_wall_ms();
    ev.action = ALERT_ACTION_COMMENTED;
    ev.severity = a.severity;
    struct store_batch b = {.events = &ev, .n_events = 1};
    char err[512];
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = store_write(req->api->admin, &b, err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    if (rc != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    cJSON *arr = events_json(&ev, 1);
    cJSON *o = cJSON_DetachItemFromArray(arr, 0);
    cJSON_Delete(arr);
    return api_respond_json(req, 201, o, NULL);
}
