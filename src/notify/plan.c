/* plan.c — outbox rows for an alert's cycle, escalation steps and all-clear; see plan.h
 * (pure: no I/O, no state). */
#include "notify/plan.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

bool notify_event_starts_cycle(enum alert_action action)
{
    return action == ALERT_ACTION_OPENED || action == ALERT_ACTION_REOPENED ||
           action == ALERT_ACTION_ESCALATED;
}

/* A JSON number, or null for what is not finite. */
static void json_number(char *buf, size_t len, double v)
{
    if (isfinite(v))
        snprintf(buf, len, "%.17g", v);
    else
        snprintf(buf, len, "null");
}

static void write_payload(char *buf, size_t len, enum alert_action event, int64_t cycle_ms,
                          int64_t at_ms, const struct alert *a)
{
    char value[40], peak[40];
    json_number(value, sizeof value, a->value);
    json_number(peak, sizeof peak, a->peak);
    snprintf(buf, len,
             "{\"event\":\"%s\",\"cycle\":%lld,\"at\":%lld,\"severity\":\"%s\",\"value\":%s,"
             "\"peak\":%s}",
             alert_action_name(event), (long long)cycle_ms, (long long)at_ms,
             alert_severity_name(a->severity), value, peak);
}

static void fill_row(struct store_notification *row, const struct alert *a, const char *kind,
                     unsigned step, const char *recipient, enum notify_channel ch,
                     const char *address, int64_t now_ms)
{
    memset(row, 0, sizeof *row);
    row->alert_id = a->id;
    row->step = step;
    snprintf(row->kind, sizeof row->kind, "%s", kind);
    snprintf(row->channel, sizeof row->channel, "%s", notify_channel_name(ch));
    snprintf(row->recipient, sizeof row->recipient, "%s", recipient);
    snprintf(row->address, sizeof row->address, "%s", address);
    row->created_ms = now_ms;
    row->next_attempt_ms = now_ms;
}

size_t notify_plan_step(const struct canary_config *cfg, const struct alert *a,
                        enum alert_action event, unsigned step, int64_t cycle_ms, int64_t now_ms,
                        struct notify_plan *plan, struct store_notification *rows, size_t cap,
                        bool *more_steps)
{
    notify_route_plan(cfg, a, step, now_ms, plan);
    if (more_steps != NULL)
        *more_steps = plan->more_steps;
    const char *kind = step == 0 ? "alert" : "escalation";
    size_t n = 0;
    for (size_t i = 0; i < plan->n && n < cap; i++) {
        const struct notify_target *t = &plan->targets[i];
        struct store_notification *row = &rows[n++];
        fill_row(row, a, kind, step, t->recipient, t->channel, t->address, now_ms);
        snprintf(row->dedupe_key, sizeof row->dedupe_key, "a%llu/c%lld/%s/s%u/%s/%s",
                 (unsigned long long)a->id, (long long)cycle_ms, kind, step, t->recipient,
                 notify_channel_name(t->channel));
        write_payload(row->payload, sizeof row->payload, event, cycle_ms, now_ms, a);
    }
    return n;
}

bool notify_row_wants_all_clear(const struct store_notification *n)
{
    return (strcmp(n->kind, "alert") == 0 || strcmp(n->kind, "escalation") == 0) &&
           (strcmp(n->status, "pending") == 0 || strcmp(n->status, "sending") == 0 ||
            strcmp(n->status, "delivered") == 0);
}

size_t notify_plan_all_clear(const struct canary_config *cfg, const struct alert *a,
                             const struct store_notification *notified, size_t n_notified,
                             int64_t now_ms, struct store_notification *rows, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < n_notified && n < cap; i++) {
        const struct store_notification *old = &notified[i];
        enum notify_channel ch;
        if (!notify_row_wants_all_clear(old) || old->alert_id != a->id ||
            notify_channel_parse(old->channel, &ch) != 0)
            continue;
        const char *address = old->address;
        if (ch == NOTIFY_CHANNEL_VOICE) {
            const struct config_recipient *r = config_recipient_find(cfg, old->recipient);
            if (r != NULL && r->sms[0] != '\0') {
                ch = NOTIFY_CHANNEL_SMS;
                address = r->sms;
            }
        }
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(rows[k].recipient, old->recipient) == 0 &&
                  strcmp(rows[k].channel, notify_channel_name(ch)) == 0;
        if (dup)
            continue;
        struct store_notification *row = &rows[n++];
        fill_row(row, a, "all_clear", 0, old->recipient, ch, address, now_ms);
        int64_t resolved = a->resolved_ms ? a->resolved_ms : now_ms;
        snprintf(row->dedupe_key, sizeof row->dedupe_key, "a%llu/r%lld/all_clear/%s/%s",
                 (unsigned long long)a->id, (long long)resolved, old->recipient,
                 notify_channel_name(ch));
        write_payload(row->payload, sizeof row->payload, ALERT_ACTION_RESOLVED, resolved, resolved,
                      a);
    }
    return n;
}

int notify_payload_parse(const char *json, struct notify_payload *out)
{
    memset(out, 0, sizeof *out);
    out->value = out->peak = NAN;
    cJSON *root = cJSON_Parse(json);
    if (root == NULL)
        return CANARY_EINVAL;
    int rc = CANARY_EINVAL;
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(root, "event");
    const cJSON *cycle = cJSON_GetObjectItemCaseSensitive(root, "cycle");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "at");
    const cJSON *severity = cJSON_GetObjectItemCaseSensitive(root, "severity");
    if (cJSON_IsString(event) && cJSON_IsNumber(cycle) && cJSON_IsNumber(at) &&
        cJSON_IsString(severity) && alert_action_parse(event->valuestring, &out->event) == 0 &&
        alert_severity_parse(severity->valuestring, &out->severity) == 0) {
        out->cycle_ms = (int64_t)cycle->valuedouble;
        out->at_ms = (int64_t)at->valuedouble;
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(root, "value");
        const cJSON *peak = cJSON_GetObjectItemCaseSensitive(root, "peak");
        if (cJSON_IsNumber(value))
            out->value = value->valuedouble;
        if (cJSON_IsNumber(peak))
            out->peak = peak->valuedouble;
        rc = CANARY_OK;
    }
    cJSON_Delete(root);
    return rc;
}
