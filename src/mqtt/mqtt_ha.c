/* mqtt_ha.c — Home Assistant MQTT discovery (mqtt.ha_discovery = true).
 *
 * For every device canary knows, retained configs under <ha_prefix>/ (docs/MQTT.md has the
 * exact topics and payloads):
 *   <ha>/sensor/canary_<dev>/<metric>/config           one per numeric metric
 *   <ha>/binary_sensor/canary_<dev>/<metric>/config    flame, motion, actuator states
 *   <ha>/binary_sensor/canary_<dev>/alert/config       an alert is open (problem)
 *   <ha>/binary_sensor/canary_<dev>/anomaly/config     the latest reading was anomalous
 * all reading canary's retained device state <prefix>/<dev>/state:
 *   {"values":{"gas_ppm":412,...},"alert":"ON","severity":"critical","anomaly":"OFF",
 *    "availability":"online","ts":1763676000123}
 * States go out at most every mqtt.ha_state_interval_s per device, alert changes at once.
 * Configs are published at every connect, when a device or metric first appears, and when
 * Home Assistant announces itself (<ha>/status = online). Device ids are sanitised to
 * [A-Za-z0-9_-] for Home Assistant's object ids. */
#include "mqtt/mqtt_internal.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/metric.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HA_MAX_METRICS 16

static struct ha_device *ha_get(struct mqtt *m, const char *device)
{
    struct ha_device *d = strmap_get(&m->ha, device);
    if (d != NULL)
        return d;
    d = calloc(1, sizeof *d);
    if (d == NULL || strmap_put(&m->ha, device, d) != 0) {
        free(d);
        return NULL;
    }
    snprintf(d->id, sizeof d->id, "%s", device);
    d->alert_severity = -1;
    d->rediscover = true;
    d->dirty = true;
    return d;
}

static int metric_index(struct ha_device *d, const char *metric, bool add)
{
    for (unsigned i = 0; i < d->n_metrics; i++) {
        if (strcmp(d->metrics[i], metric) == 0)
            return (int)i;
    }
    if (!add || d->n_metrics == HA_MAX_METRICS)
        return -1;
    snprintf(d->metrics[d->n_metrics], READING_METRIC_BUF, "%s", metric);
    d->rediscover = true;
    return (int)d->n_metrics++;
}

static void load_series(void *arg, const struct store_series *s)
{
    struct mqtt *m = arg;
    struct ha_device *d = ha_get(m, s->device);
    int i = d != NULL ? metric_index(d, s->metric, true) : -1;
    if (i >= 0)
        d->values[i] = s->last_value;
}

void ha_init(struct mqtt *m)
{
    if (!m->cfg.mqtt.ha_discovery)
        return;
    struct store *s = NULL;
    struct store_options opt = {
        m->cfg.store.path, true, false, m->cfg.store.busy_timeout_ms, 0, 0, false};
    char err[256];
    pthread_mutex_lock(&m->ha_lock);
    if (store_open(&s, &opt, err, sizeof err) == 0)
        store_series_list(s, NULL, load_series, m, err, sizeof err);
    pthread_mutex_unlock(&m->ha_lock);
    store_close(s);
}

static void free_dev(void *arg, const char *key, void *value)
{
    (void)arg;
    (void)key;
    free(value);
}

void ha_free(struct mqtt *m)
{
    strmap_each(&m->ha, free_dev, NULL);
    strmap_free(&m->ha);
}

void ha_on_connect(struct mqtt *m)
{
    if (m->cfg.mqtt.ha_discovery)
        atomic_store(&m->ha_rediscover_all, true);
}

void ha_on_commit(struct mqtt *m, const struct commit_view *c)
{
    pthread_mutex_lock(&m->ha_lock);
    for (size_t r = 0; r < c->n_readings; r++) {
        const struct reading *rd = c->readings[r];
        struct ha_device *d = ha_get(m, rd->device);
        if (d == NULL)
            continue;
        bool anomaly = false;
        for (uint32_t v = 0; v < rd->n_values; v++) {
            int i = metric_index(d, rd->values[v].name, true);
            if (i >= 0)
                d->values[i] = rd->values[v].value;
            anomaly = anomaly || (rd->values[v].flags & FLAG_ANOMALY);
        }
        d->anomaly = anomaly;
        d->dirty = true;
    }
    for (size_t a = 0; a < c->n_alerts; a++) {
        const struct alert *al = &c->alerts[a];
        struct ha_device *d = ha_get(m, al->device);
        if (d == NULL)
            continue;
        bool live = al->state != ALERT_STATE_RESOLVED;
        unsigned k = 0;
        while (k < d->n_open && d->open_alerts[k] != al->id)
            k++;
        if (live && k == d->n_open && d->n_open < 8) {
            d->open_alerts[d->n_open] = al->id;
            d->open_severity[d->n_open++] = (int)al->severity;
        } else if (live && k < d->n_open) {
            d->open_severity[k] = (int)al->severity;
        } else if (!live && k < d->n_open) {
            d->open_alerts[k] = d->open_alerts[d->n_open - 1];
            d->open_severity[k] = d->open_severity[d->n_open - 1];
            d->n_open--;
        }
        int sev = -1;
        for (unsigned i = 0; i < d->n_open; i++)
            sev = d->open_severity[i] > sev ? d->open_severity[i] : sev;
        if (sev != d->alert_severity) {
            d->alert_severity = sev;
            d->published_ms = 0; /* alert changes go out at once */
        }
        d->dirty = true;
    }
    pthread_mutex_unlock(&m->ha_lock);
}

/* [A-Za-z0-9_-] only. */
static void object_id(const char *in, char *out, size_t len)
{
    size_t i = 0;
    for (; in[i] && i + 1 < len; i++) {
        char c = in[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

static const char *device_class_of(const char *metric)
{
    static const char *const map[][2] = {
        {"temperature_c", "temperature"},
        {"humidity_pct", "humidity"},
        {"pressure_hpa", "pressure"},
        {"light_lux", "illuminance"},
        {"co_ppm", "carbon_monoxide"},
        {"co2_ppm", "carbon_dioxide"},
        {"noise_db", "sound_pressure"},
        {"motion", "motion"},
        {"flame", "heat"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(map[i][0], metric) == 0)
            return map[i][1];
    }
    return NULL;
}

static void publish_config(struct mqtt *m, const struct ha_device *d, const char *component,
                           const char *object, const char *name, const char *value_template,
                           const char *unit, const char *device_class, bool measurement)
{
    char oid[READING_ID_BUF], topic[512], payload[2048], state[256];
    object_id(d->id, oid, sizeof oid);
    snprintf(topic, sizeof topic, "%s/%s/canary_%s/%s/config", m->cfg.mqtt.ha_prefix, component,
             oid, object);
    snprintf(state, sizeof state, "%s/%s/state", m->cfg.mqtt.topic_prefix, d->id);
    int n = snprintf(
        payload, sizeof payload,
        "{\"name\":\"%s\",\"unique_id\":\"canary_%s_%s\",\"object_id\":\"canary_%s_%s\","
        "\"state_topic\":\"%s\",\"value_template\":\"%s\",\"json_attributes_topic\":\"%s\","
        "\"availability_topic\":\"%s\",\"availability_template\":\"{{ value_json.availability }}\","
        "%s%s%s%s%s%s%s"
        "\"device\":{\"identifiers\":[\"canary_%s\"],\"name\":\"%s\",\"manufacturer\":\"canary\","
        "\"model\":\"canary sensor node\",\"via_device\":\"canaryd\"}}",
        name, oid, object, oid, object, state, value_template, state, state,
        unit != NULL && unit[0] ? "\"unit_of_measurement\":\"" : "",
        unit != NULL && unit[0] ? unit : "", unit != NULL && unit[0] ? "\"," : "",
        device_class ? "\"device_class\":\"" : "", device_class ? device_class : "",
        device_class ? "\"," : "", measurement ? "\"state_class\":\"measurement\"," : "", oid,
        d->id);
    if (n > 0 && (size_t)n < sizeof payload)
        mqtt_publish(m, topic, payload, (size_t)n, 1, true);
}

static void publish_discovery(struct mqtt *m, struct ha_device *d)
{
    char tmpl[256];
    for (unsigned i = 0; i < d->n_metrics; i++) {
        const char *metric = d->metrics[i];
        const struct metric_info *info = metric_info_or_generic(metric);
        const char *label = info->label[0] ? info->label : metric;
        if (info->binary) {
            snprintf(tmpl, sizeof tmpl, "{{ 'ON' if value_json['values']['%s'] == 1 else 'OFF' }}",
                     metric);
            publish_config(m, d, "binary_sensor", metric, label, tmpl, NULL,
                           device_class_of(metric), false);
        } else {
            snprintf(tmpl, sizeof tmpl, "{{ value_json['values']['%s'] }}", metric);
            publish_config(m, d, "sensor", metric, label, tmpl, info->unit, device_class_of(metric),
                           true);
        }
    }
    publish_config(m, d, "binary_sensor", "alert", "Alert", "{{ value_json.alert }}", NULL,
                   "problem", false);
    publish_config(m, d, "binary_sensor", "anomaly", "Anomaly", "{{ value_json.anomaly }}", NULL,
                   "problem", false);
    d->rediscover = false;
}

static void publish_state(struct mqtt *m, struct ha_device *d, int64_t now_ms)
{
    char payload[2048], topic[256];
    size_t off = 0;
    off += (size_t)snprintf(payload, sizeof payload, "{\"values\":{");
    for (unsigned i = 0; i < d->n_metrics && off < sizeof payload - 64; i++)
        off += (size_t)snprintf(payload + off, sizeof payload - off, "%s\"%s\":%.10g", i ? "," : "",
                                d->metrics[i], d->values[i]);
    enum device_link link = mqtt_device_link(m, d->id, NULL);
    int n = snprintf(
        payload + off, sizeof payload - off,
        "},\"alert\":\"%s\",\"severity\":\"%s\",\"anomaly\":\"%s\","
        "\"availability\":\"%s\",\"ts\":%lld}",
        d->alert_severity >= 0 ? "ON" : "OFF",
        d->alert_severity >= 0 ? alert_severity_name((enum alert_severity)d->alert_severity)
                               : "none",
        d->anomaly ? "ON" : "OFF",
        link == LINK_OFFLINE || link == LINK_SLEEPING ? "offline" : "online", (long long)now_ms);
    if (n < 0 || off + (size_t)n >= sizeof payload)
        return;
    snprintf(topic, sizeof topic, "%s/%s/state", m->cfg.mqtt.topic_prefix, d->id);
    if (mqtt_publish(m, topic, payload, off + (size_t)n, 0, true) == 0) {
        d->dirty = false;
        d->published_ms = now_ms;
    }
}

struct tick_ctx {
    struct mqtt *m;
    int64_t now_ms;
    bool all;
};

static void tick_dev(void *arg, const char *key, void *value)
{
    (void)key;
    struct tick_ctx *t = arg;
    struct ha_device *d = value;
    if (t->all) {
        d->rediscover = true;
        d->dirty = true;
        d->published_ms = 0;
    }
    if (d->rediscover)
        publish_discovery(t->m, d);
    if (d->dirty &&
        t->now_ms - d->published_ms >= (int64_t)t->m->cfg.mqtt.ha_state_interval_s * 1000)
        publish_state(t->m, d, t->now_ms);
}

void ha_tick(struct mqtt *m, int64_t now_ms)
{
    if (!atomic_load(&m->connected))
        return;
    struct tick_ctx t = {m, now_ms, atomic_exchange(&m->ha_rediscover_all, false)};
    pthread_mutex_lock(&m->ha_lock);
    strmap_each(&m->ha, tick_dev, &t);
    pthread_mutex_unlock(&m->ha_lock);
}
