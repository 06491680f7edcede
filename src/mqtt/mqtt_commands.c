/* mqtt_commands.c — commands to devices over MQTT: sending, answers, timeouts, and the
 * automatic actions taken when an alert opens.
 *
 * A command is published to <prefix>/<device>/cmd at QoS 1 with its id ("c-42"). It waits
 * here (in memory; pending commands of an earlier run are reloaded at start) until the
 * device answers on <prefix>/<device>/cmd/ack, or mqtt.command_timeout_s passes. Each
 * change is stored (the commands table) with a records job. An answer naming a command of
 * another device is a security event, not an acknowledgement.
 *
 * Automatic actions: the pipeline's commit listener hands us every committed alert event;
 * when an alert opens (or escalates, or re-opens) at a severity that an actions.<kind> rule
 * covers, its commands are sent with the alert's id, once per alert. The alert's record in
 * the API lists them with their state (GET /api/v1/alerts/<id>). */
#include "mqtt/mqtt_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WAITS 65536

/* Keeps c waiting for its answer. Caller holds cmd_lock. */
static void wait_for(struct mqtt *m, const struct device_command *c)
{
    for (size_t i = 0; i < m->n_waits; i++) {
        if (!m->waits[i].used) {
            m->waits[i].cmd = *c;
            m->waits[i].used = true;
            return;
        }
    }
    if (m->n_waits >= MAX_WAITS)
        return; /* its answer will be ignored; the stored record stays pending */
    struct command_wait *w = realloc(m->waits, (m->n_waits + 1) * sizeof *w);
    if (w == NULL)
        return;
    m->waits = w;
    m->waits[m->n_waits].cmd = *c;
    m->waits[m->n_waits].used = true;
    m->n_waits++;
}

int commands_init(struct mqtt *m, char *err, size_t errlen)
{
    struct store *s = NULL;
    struct store_options opt = {
        m->cfg.store.path, true, false, m->cfg.store.busy_timeout_ms, 0, 0, false};
    int rc = store_open(&s, &opt, err, errlen);
    uint64_t max_id = 0;
    if (rc == 0)
        rc = store_command_max_id(s, &max_id, err, errlen);
    atomic_store(&m->next_command_id, max_id + 1);
    /* Commands still pending from an earlier run keep waiting for their answer. */
    struct device_command *recent = rc == 0 ? calloc(1000, sizeof *recent) : NULL;
    int n = recent != NULL ? store_commands_list(s, NULL, 0, 0, recent, 1000, err, errlen) : 0;
    pthread_mutex_lock(&m->cmd_lock);
    for (int i = 0; i < n; i++) {
        if (recent[i].status == COMMAND_PENDING)
            wait_for(m, &recent[i]);
    }
    pthread_mutex_unlock(&m->cmd_lock);
    free(recent);
    store_close(s);
    return rc;
}

void commands_free(struct mqtt *m)
{
    free(m->waits);
    m->waits = NULL;
    m->n_waits = 0;
}

int mqtt_send_command(struct mqtt *m, struct device_command *c, char *err, size_t errlen)
{
    if (m == NULL || !m->enabled) {
        snprintf(err, errlen,
                 "MQTT is not enabled (mqtt.enabled = false): commands cannot be "
                 "sent");
        return CANARY_EINVAL;
    }
    if (!atomic_load(&m->connected)) {
        snprintf(err, errlen, "canaryd is not connected to the MQTT broker; retry later");
        return CANARY_EBUSY;
    }
    c->id = atomic_fetch_add(&m->next_command_id, 1);
    c->created_ms = c->updated_ms = clock_wall_ms();
    c->status = COMMAND_PENDING;
    c->error[0] = '\0';
    char topic[256], payload[COMMAND_JSON_MAX];
    snprintf(topic, sizeof topic, "%s/%s/cmd", m->cfg.mqtt.topic_prefix, c->device);
    int len = command_json(c, payload, sizeof payload);
    if (len < 0 || mqtt_publish(m, topic, payload, (size_t)len, 1, false) != 0) {
        snprintf(err, errlen, "the broker connection refused the command; retry later");
        return CANARY_EBUSY;
    }
    atomic_fetch_add(&m->commands_sent, 1);
    pthread_mutex_lock(&m->cmd_lock);
    wait_for(m, c);
    pthread_mutex_unlock(&m->cmd_lock);
    log_info("mqtt.command_sent",
             "id=c-%" PRIu64 " device=%s command=%s state=%s alert=%" PRIu64 " actor=%s", c->id,
             c->device, c->command, c->state, c->alert_id, c->actor);
    return CANARY_OK;
}

void commands_on_ack(struct mqtt *m, const char *device, const char *payload, size_t len)
{
    char topic[256];
    snprintf(topic, sizeof topic, "%s/%s/cmd/ack", m->cfg.mqtt.topic_prefix, device);
    cJSON *root = cJSON_ParseWithLength(payload, len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "status");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    uint64_t cid = 0;
    if (!cJSON_IsObject(root) || !cJSON_IsString(id) || !cJSON_IsString(status) ||
        command_id_parse(id->valuestring, &cid) != 0 ||
        (strcmp(status->valuestring, "ok") != 0 && strcmp(status->valuestring, "error") != 0)) {
        atomic_fetch_add(&m->rejected, 1);
        ingest_event(m, EVENT_INGEST, "bad_command_ack", device, topic,
                     "a command answer must be {\"id\":\"c-N\",\"status\":\"ok\"|\"error\"}");
        cJSON_Delete(root);
        return;
    }
    bool ok = strcmp(status->valuestring, "ok") == 0;
    struct device_command done;
    bool found = false, other_device = false;
    pthread_mutex_lock(&m->cmd_lock);
    for (size_t i = 0; i < m->n_waits; i++) {
        struct command_wait *w = &m->waits[i];
        if (!w->used || w->cmd.id != cid)
            continue;
        if (strcmp(w->cmd.device, device) != 0) {
            other_device = true;
            break;
        }
        w->used = false;
        w->cmd.status = ok ? COMMAND_ACKED : COMMAND_FAILED;
        w->cmd.updated_ms = clock_wall_ms();
        snprintf(w->cmd.error, sizeof w->cmd.error, "%s",
                 ok                      ? ""
                 : cJSON_IsString(error) ? error->valuestring
                                         : "the device refused it");
        done = w->cmd;
        found = true;
        break;
    }
    pthread_mutex_unlock(&m->cmd_lock);
    cJSON_Delete(root);
    if (other_device) {
        ingest_event(m, EVENT_SECURITY, "command_ack_mismatch", device, topic,
                     "device '%s' answered command c-%" PRIu64 ", which was sent to another "
                     "device",
                     device, cid);
        return;
    }
    if (!found) {
        log_info("mqtt.command_ack_unknown",
                 "device=%s id=c-%" PRIu64 " (already answered, timed out, or not ours)", device,
                 cid);
        return;
    }
    log_info("mqtt.command_answered", "id=c-%" PRIu64 " device=%s status=%s", cid, device,
             command_status_name(done.status));
    ingest_store_records(m, NULL, 0, &done, 1);
}

void commands_tick(struct mqtt *m, int64_t now_ms)
{
    int64_t timeout = (int64_t)m->cfg.mqtt.command_timeout_s * 1000;
    struct device_command expired[64];
    size_t n = 0;
    pthread_mutex_lock(&m->cmd_lock);
    for (size_t i = 0; i < m->n_waits && n < 64; i++) {
        struct command_wait *w = &m->waits[i];
        if (!w->used || now_ms - w->cmd.created_ms < timeout)
            continue;
        w->used = false;
        w->cmd.status = COMMAND_TIMED_OUT;
        w->cmd.updated_ms = now_ms;
        snprintf(w->cmd.error, sizeof w->cmd.error,
                 "no answer from the device within %u s (mqtt.command_timeout_s)",
                 m->cfg.mqtt.command_timeout_s);
        expired[n++] = w->cmd;
    }
    pthread_mutex_unlock(&m->cmd_lock);
    for (size_t i = 0; i < n; i++)
        log_warn("mqtt.command_timed_out", "id=c-%" PRIu64 " device=%s command=%s", expired[i].id,
                 expired[i].device, expired[i].command);
    if (n > 0)
        ingest_store_records(m, NULL, 0, expired, n);
}

/* True the first time an alert id is seen (a small ring of recent ones). */
static bool first_action(struct mqtt *m, uint64_t alert_id)
{
    unsigned cap = sizeof m->actioned / sizeof m->actioned[0];
    unsigned n = m->n_actioned < cap ? m->n_actioned : cap;
    for (unsigned i = 0; i < n; i++) {
        if (m->actioned[i] == alert_id)
            return false;
    }
    m->actioned[m->n_actioned++ % cap] = alert_id;
    return true;
}

void commands_on_commit(struct mqtt *m, const struct commit_view *c)
{
    for (size_t e = 0; e < c->n_events; e++) {
        const struct alert_event *ev = &c->events[e];
        if (ev->action != ALERT_ACTION_OPENED && ev->action != ALERT_ACTION_ESCALATED &&
            ev->action != ALERT_ACTION_REOPENED)
            continue;
        const struct alert *a = NULL;
        for (size_t i = c->n_alerts; i-- > 0;) {
            if (c->alerts[i].id == ev->alert_id) {
                a = &c->alerts[i];
                break;
            }
        }
        if (a == NULL)
            continue;
        const struct action_rule *rule = action_rules_match(&m->actions, a->kind, ev->severity);
        if (rule == NULL || !first_action(m, a->id))
            continue;
        struct device_command sent[ACTION_MAX_COMMANDS];
        size_t n = 0;
        for (unsigned k = 0; k < rule->n; k++) {
            struct device_command cmd;
            memset(&cmd, 0, sizeof cmd);
            snprintf(cmd.device, sizeof cmd.device, "%s", a->device);
            snprintf(cmd.command, sizeof cmd.command, "%s", rule->commands[k].command);
            snprintf(cmd.state, sizeof cmd.state, "%s", rule->commands[k].state);
            cmd.value = rule->commands[k].value;
            cmd.alert_id = a->id;
            snprintf(cmd.actor, sizeof cmd.actor, "canary");
            char err[160];
            if (mqtt_send_command(m, &cmd, err, sizeof err) != 0) {
                /* Not connected: record that it could not be sent, so the alert shows it. */
                cmd.id = atomic_fetch_add(&m->next_command_id, 1);
                cmd.created_ms = cmd.updated_ms = clock_wall_ms();
                cmd.status = COMMAND_FAILED;
                snprintf(cmd.error, sizeof cmd.error, "%s", err);
                log_warn("mqtt.action_failed",
                         "alert=%" PRIu64 " device=%s command=%s error=\"%s\"", a->id, a->device,
                         cmd.command, err);
            }
            sent[n++] = cmd;
        }
        if (n > 0)
            ingest_store_records(m, NULL, 0, sent, n);
    }
}
