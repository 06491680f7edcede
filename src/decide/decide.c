/* decide.c — the rules from flags to alert conditions, and the alert messages (decide.h). */
#include "decide/decide.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/metric.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Flame at or above this is "flame seen" (binary sensors send 0/1). */
#define FLAME_ON 0.5
/* The temperature series must be this recent to count for the fire rule. */
#define FIRE_TEMPERATURE_MAX_AGE_MS 120000

static const char *const gas_metrics[] = {"gas_ppm", "co_ppm", "smoke_ppm"};

static bool is_gas_metric(const char *m)
{
    for (size_t i = 0; i < sizeof gas_metrics / sizeof gas_metrics[0]; i++) {
        if (strcmp(m, gas_metrics[i]) == 0)
            return true;
    }
    return false;
}

/* What one rule says about one alert machine for this reading. */
struct condition {
    const char *metric; /* metric name or ALERT_METRIC_DEVICE */
    enum alert_kind kind;
    bool active;
    enum alert_severity severity;
    double value;
    double limit;                           /* NAN if none */
    const struct series_state *series;      /* for the message; may be NULL */
    const struct series_state *temperature; /* fire: the temperature series */
    const char *message;                    /* the whole message, when the rule wrote it */
};

static struct alert_fsm *find_slot(struct decide_device *dd, const char *metric,
                                   enum alert_kind kind)
{
    for (uint32_t i = 0; i < dd->n; i++) {
        struct alert_fsm *f = &dd->slots[i];
        if (f->rec.kind == kind && strcmp(f->rec.metric, metric) == 0)
            return f;
    }
    return NULL;
}

static struct alert_fsm *add_slot(struct decide_device *dd, const char *device, const char *metric,
                                  enum alert_kind kind)
{
    if (dd->n == dd->cap) {
        uint32_t cap = dd->cap ? dd->cap * 2 : 4;
        struct alert_fsm *grown = realloc(dd->slots, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        dd->slots = grown;
        dd->cap = cap;
    }
    struct alert_fsm *f = &dd->slots[dd->n++];
    memset(f, 0, sizeof *f);
    snprintf(f->rec.device, sizeof f->rec.device, "%s", device);
    snprintf(f->rec.metric, sizeof f->rec.metric, "%s", metric);
    f->rec.kind = kind;
    f->rec.limit = NAN;
    return f;
}

static void remove_slot(struct decide_device *dd, struct alert_fsm *f)
{
    uint32_t i = (uint32_t)(f - dd->slots);
    dd->slots[i] = dd->slots[--dd->n];
}

/* A number as the sensor resolves it: as many decimals as its resolution has (a derived
 * quantity — a level, a spread, a rate — one more, at most 4), so a message says "505.7 +/-
 * 11.5 ppm", not "505.663 +/- 11.5416 ppm". Without a known resolution, 4 significant
 * digits. */
static void fmt_value(char *buf, size_t len, double v, const char *unit, double resolution,
                      bool derived)
{
    const char *sep = unit[0] ? " " : "";
    if (!(resolution > 0) || !isfinite(v)) {
        snprintf(buf, len, "%.4g%s%s", v, sep, unit);
        return;
    }
    int decimals = resolution >= 1 ? 0 : (int)ceil(-log10(resolution) - 1e-9);
    decimals += derived ? 1 : 0;
    if (decimals > 4)
        decimals = 4;
    snprintf(buf, len, "%.*f%s%s", decimals, v, sep, unit);
}

static void compose_message(const struct condition *c, struct alert *a)
{
    char *msg = a->message;
    if (c->message != NULL) {
        snprintf(msg, ALERT_MESSAGE_LEN, "%s", c->message);
        return;
    }
    const struct metric_info *m = metric_info_or_generic(c->metric);
    const char *label = m->label[0] ? m->label : c->metric;
    char v[48], l[48];
    double res = m->resolution;
    fmt_value(v, sizeof v, c->value, m->unit, res, false);
    fmt_value(l, sizeof l, c->limit, m->unit, res, false);
    bool low = !isnan(c->limit) && c->value < c->limit;
    const char *level = c->severity >= SEVERITY_CRITICAL ||
                                (c->kind == ALERT_KIND_THRESHOLD && c->severity >= SEVERITY_HIGH)
                            ? "critical"
                            : "warning";
    switch (c->kind) {
    case ALERT_KIND_GAS_LEAK:
        snprintf(msg, ALERT_MESSAGE_LEN, "Gas leak suspected at %s: %s %s, %s the %s level %s.",
                 a->device, label, v, low ? "below" : "above", level, l);
        break;
    case ALERT_KIND_THRESHOLD:
        snprintf(msg, ALERT_MESSAGE_LEN, "%s at %s is %s: %s the %s level %s.", label, a->device, v,
                 low ? "below" : "above", level, l);
        break;
    case ALERT_KIND_ANOMALY: {
        double sigma = 1.2533 * c->series->robust.scale;
        if (sigma < c->series->resolution)
            sigma = c->series->resolution;
        char e[48], s[48];
        fmt_value(e, sizeof e, c->series->robust.level, "", res, true);
        fmt_value(s, sizeof s, sigma, m->unit, res, true);
        snprintf(msg, ALERT_MESSAGE_LEN, "Unusual %s at %s: %s, where about %s +/- %s is normal.",
                 label, a->device, v, e, s);
        break;
    }
    case ALERT_KIND_RATE: {
        char r[48], rl[48];
        fmt_value(r, sizeof r, c->series->rate.per_min, m->unit, res, true);
        fmt_value(rl, sizeof rl, c->series->limits.max_rate_per_min, "", res, true);
        snprintf(msg, ALERT_MESSAGE_LEN,
                 "%s at %s is changing fast: %s per minute (limit %s), now %s.", label, a->device,
                 r, rl, v);
        break;
    }
    case ALERT_KIND_SENSOR_FAULT:
        snprintf(msg, ALERT_MESSAGE_LEN,
                 "%s sensor at %s may be stuck: exactly %s for %u readings in a row.", label,
                 a->device, v, c->series->same_count);
        break;
    case ALERT_KIND_FIRE: {
        char t[48];
        fmt_value(t, sizeof t, c->value, "°C", 0.1, false);
        double rate = c->temperature->rate.per_min;
        if (!isnan(rate) && rate > 0)
            snprintf(msg, ALERT_MESSAGE_LEN,
                     "Fire suspected at %s: flame detected, temperature %s and rising %.3g °C per "
                     "minute.",
                     a->device, t, rate);
        else
            snprintf(msg, ALERT_MESSAGE_LEN,
                     "Fire suspected at %s: flame detected and temperature %s.", a->device, t);
        break;
    }
    case ALERT_KIND_OFFLINE: {
        char when[32];
        snprintf(msg, ALERT_MESSAGE_LEN, "%s is offline: nothing received since %s.", a->device,
                 clock_format_ms((int64_t)c->value, when, sizeof when));
        break;
    }
    case ALERT_KIND_TAMPER:
        snprintf(msg, ALERT_MESSAGE_LEN, "Tampering suspected at %s.", a->device);
        break;
    }
}

static void emit(const struct decide_ctx *ctx, struct alert_fsm *f, enum alert_action action,
                 const char *actor, const char *note, int64_t ts_ms)
{
    if (action == ALERT_ACTION_UPDATED) {
        ctx->emit(ctx->emit_arg, &f->rec, NULL);
        return;
    }
    struct alert_event ev;
    memset(&ev, 0, sizeof ev);
    ev.alert_id = f->rec.id;
    ev.ts_ms = ts_ms;
    ev.action = action;
    ev.severity = f->rec.severity;
    snprintf(ev.actor, sizeof ev.actor, "%s", actor);
    snprintf(ev.note, sizeof ev.note, "%s", note != NULL ? note : f->rec.message);
    ctx->emit(ctx->emit_arg, &f->rec, &ev);
}

static int observe(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                   const struct condition *c, const struct alert_fsm_params *fp, int64_t ts_ms)
{
    struct alert_fsm *f = find_slot(dd, c->metric, c->kind);
    /* A quarantined device's readings do not clear its open alerts (decide.h, hold_open). */
    if (dd->hold_open && !c->active && f != NULL && f->phase == FSM_ACTIVE &&
        c->kind != ALERT_KIND_OFFLINE)
        return CANARY_OK;
    if (f == NULL) {
        if (!c->active)
            return CANARY_OK;
        f = add_slot(dd, device, c->metric, c->kind);
        if (f == NULL)
            return CANARY_ENOMEM;
    }
    enum alert_action action =
        alert_fsm_observe(f, fp, c->active, c->severity, c->value, c->limit, ts_ms);
    if (action == ALERT_ACTION_OPENED)
        f->rec.id = ctx->next_alert_id(ctx->id_arg);
    if (action == ALERT_ACTION_OPENED || action == ALERT_ACTION_ESCALATED ||
        action == ALERT_ACTION_REOPENED)
        compose_message(c, &f->rec);
    if (action != ALERT_ACTION_NONE)
        emit(ctx, f, action, "canary", NULL, ts_ms);
    if (f->phase == FSM_IDLE)
        remove_slot(dd, f);
    return CANARY_OK;
}

static const struct device_series *find_series(const struct device_series *series, size_t n,
                                               const char *metric)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(series[i].metric, metric) == 0)
            return &series[i];
    }
    return NULL;
}

static double crossed_limit(const struct metric_limits *l, uint32_t flags)
{
    bool low = flags & FLAG_LOW;
    if (flags & FLAG_CRITICAL)
        return low ? l->crit_low : l->crit_high;
    if (flags & FLAG_WARN)
        return low ? l->warn_low : l->warn_high;
    return NAN;
}

static int decide_value(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                        const struct metric_value *v, const struct series_state *s, int64_t ts_ms)
{
    const struct alert_fsm_params *fp = &ctx->params->fsm;
    bool gas = is_gas_metric(v->name);
    bool beyond = v->flags & (FLAG_WARN | FLAG_CRITICAL);
    bool critical = v->flags & FLAG_CRITICAL;
    struct condition c = {v->name,  gas ? ALERT_KIND_GAS_LEAK : ALERT_KIND_THRESHOLD,
                          beyond,   SEVERITY_INFO,
                          v->value, crossed_limit(&s->limits, v->flags),
                          s,        NULL,
                          NULL};
    if (gas)
        c.severity = critical ? SEVERITY_CRITICAL : SEVERITY_HIGH;
    else
        c.severity = critical ? SEVERITY_HIGH : SEVERITY_MEDIUM;
    int rc = observe(ctx, dd, device, &c, fp, ts_ms);

    c.kind = ALERT_KIND_ANOMALY;
    c.active = (v->flags & FLAG_ANOMALY) && !beyond;
    c.severity = ctx->params->anomaly_severity;
    c.limit = NAN;
    if (rc == 0)
        rc = observe(ctx, dd, device, &c, fp, ts_ms);

    c.kind = ALERT_KIND_RATE;
    c.active = v->flags & FLAG_RATE;
    /* Gas falling fast is good news (a leak clearing, a window opened), not an alert. */
    if (gas && !(s->rate.per_min > 0))
        c.active = false;

    c.severity = SEVERITY_MEDIUM;
    if (rc == 0)
        rc = observe(ctx, dd, device, &c, fp, ts_ms);

    c.kind = ALERT_KIND_SENSOR_FAULT;
    c.active = v->flags & FLAG_FLATLINE;
    if (rc == 0)
        rc = observe(ctx, dd, device, &c, fp, ts_ms);
    return rc;
}

static int decide_fire(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                       const struct device_series *series, size_t n, int64_t ts_ms)
{
    const struct device_series *flame = find_series(series, n, "flame");
    const struct device_series *temp = find_series(series, n, "temperature_c");
    if (flame == NULL || temp == NULL)
        return CANARY_OK;
    const struct series_state *t = &temp->state;
    bool fresh = ts_ms - t->last_ts_ms <= FIRE_TEMPERATURE_MAX_AGE_MS;
    bool rising = !isnan(t->rate.per_min) && t->rate.per_min > 0 &&
                  !isnan(t->limits.max_rate_per_min) &&
                  t->rate.per_min > t->limits.max_rate_per_min;
    bool hot = t->threshold.high >= THRESHOLD_WARN;
    struct condition c = {ALERT_METRIC_DEVICE,
                          ALERT_KIND_FIRE,
                          flame->state.last_value >= FLAME_ON && fresh && (rising || hot),
                          SEVERITY_CRITICAL,
                          t->last_value,
                          NAN,
                          NULL,
                          t,
                          NULL};
    return observe(ctx, dd, device, &c, &ctx->params->fsm, ts_ms);
}

int decide_reading(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                   const struct reading *r, const struct device_series *series, size_t n_series,
                   const struct device_series *const *value_series)
{
    int rc = CANARY_OK;
    bool fire_inputs = false;
    for (uint32_t i = 0; i < r->n_values && rc == 0; i++) {
        const struct metric_value *v = &r->values[i];
        const struct device_series *s =
            value_series != NULL ? value_series[i] : find_series(series, n_series, v->name);
        if (s == NULL)
            continue;
        rc = decide_value(ctx, dd, device, v, &s->state, r->ts_ms);
        if (v->name[0] == 'f' ? !strcmp(v->name, "flame") : !strcmp(v->name, "temperature_c"))
            fire_inputs = true;
    }

    if (rc == 0 && fire_inputs)
        rc = decide_fire(ctx, dd, device, series, n_series, r->ts_ms);
    if (rc == 0)
        rc = decide_offline(ctx, dd, device, false, r->recv_ms, r->recv_ms);
    return rc;
}

/* The offline condition: active or clear, with its severity when active. */
static int offline_condition(const struct decide_ctx *ctx, struct decide_device *dd,
                             const char *device, bool active, enum alert_severity severity,
                             int64_t last_seen_ms, int64_t now_ms)
{
    struct alert_fsm_params fp = ctx->params->fsm;
    fp.open_after = 1;
    fp.resolve_after_ms = 0;
    struct condition c = {ALERT_METRIC_DEVICE,
                          ALERT_KIND_OFFLINE,
                          active,
                          severity,
                          (double)last_seen_ms,
                          NAN,
                          NULL,
                          NULL,
                          NULL};
    return observe(ctx, dd, device, &c, &fp, now_ms);
}

int decide_link_lost(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                     const struct device_series *series, size_t n_series, int64_t last_seen_ms,
                     int64_t now_ms)
{
    if (!ctx->params->link_lost_alerts)
        return CANARY_OK;
    bool gas = false;
    for (size_t i = 0; i < n_series && !gas; i++)
        gas = is_gas_metric(series[i].metric);
    if (!gas)
        return CANARY_OK;
    return offline_condition(ctx, dd, device, true, ctx->params->link_lost_severity, last_seen_ms,
                             now_ms);
}

int decide_offline(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                   bool offline, int64_t last_seen_ms, int64_t now_ms)
{
    if (!ctx->params->offline_alerts &&
        find_slot(dd, ALERT_METRIC_DEVICE, ALERT_KIND_OFFLINE) == NULL)
        return CANARY_OK;
    /* Offline opens on the first observation and resolves on the first reading. */
    return offline_condition(ctx, dd, device, offline && ctx->params->offline_alerts,
                             ctx->params->offline_severity, last_seen_ms, now_ms);
}

static struct alert_fsm *find_id(struct decide_device *dd, uint64_t id)
{
    for (uint32_t i = 0; i < dd->n; i++) {
        if (dd->slots[i].rec.id == id && dd->slots[i].phase != FSM_IDLE)
            return &dd->slots[i];
    }
    return NULL;
}

int decide_acknowledge(const struct decide_ctx *ctx, struct decide_device *dd, uint64_t id,
                       const char *actor, const char *comment, int64_t now_ms)
{
    struct alert_fsm *f = find_id(dd, id);
    if (f == NULL)
        return CANARY_ENOTFOUND;
    int rc = alert_fsm_acknowledge(f, actor, now_ms);
    if (rc == 0)
        emit(ctx, f, ALERT_ACTION_ACKNOWLEDGED, f->rec.acknowledged_by, comment ? comment : "",
             now_ms);
    return rc;
}

int decide_resolve(const struct decide_ctx *ctx, struct decide_device *dd, uint64_t id,
                   const char *actor, const char *comment, int64_t now_ms)
{
    struct alert_fsm *f = find_id(dd, id);
    if (f == NULL)
        return CANARY_ENOTFOUND;
    int rc = alert_fsm_resolve(f, actor, now_ms);
    if (rc == 0)
        emit(ctx, f, ALERT_ACTION_RESOLVED, f->rec.resolved_by, comment ? comment : "", now_ms);
    return rc;
}

int decide_restore(struct decide_device *dd, const struct alert *a, int64_t now_ms)
{
    struct alert_fsm *f = find_slot(dd, a->metric, a->kind);
    if (f == NULL)
        f = add_slot(dd, a->device, a->metric, a->kind);
    if (f == NULL)
        return CANARY_ENOMEM;
    f->rec = *a;
    f->count = 0;
    f->low = !isnan(a->limit) && a->peak < a->limit;
    if (a->state == ALERT_STATE_RESOLVED) {
        f->phase = FSM_RESOLVED;
    } else {
        /* Treat the condition as seen now: it resolves only after resolve_after of clear
         * readings, never merely because canaryd restarted. */
        f->phase = FSM_ACTIVE;
        f->last_active_ms = now_ms;
    }
    return CANARY_OK;
}

void decide_expire(const struct decide_ctx *ctx, struct decide_device *dd, int64_t now_ms)
{
    for (uint32_t i = 0; i < dd->n;) {
        if (alert_fsm_expired(&dd->slots[i], &ctx->params->fsm, now_ms))
            dd->slots[i] = dd->slots[--dd->n];
        else
            i++;
    }
}

void decide_device_free(struct decide_device *dd)
{
    free(dd->slots);
    dd->slots = NULL;
    dd->n = dd->cap = 0;
}

int decide_gas(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
               const struct decide_gas_verdict *v, int64_t ts_ms)
{
    char metric[READING_METRIC_BUF];
    snprintf(metric, sizeof metric, "%s%s", DECIDE_MODEL_PREFIX, v->model);
    char message[ALERT_MESSAGE_LEN];
    bool fire = v->kind == ALERT_KIND_FIRE;
    snprintf(message, sizeof message,
             "%s at %s: the gas classifier %s reads %s with probability %.2f (level %.2f) for "
             "%u readings in a row (%s). %s",
             fire ? "Possible fire" : "Possible gas leak", device, v->model, v->class_name,
             v->probability, v->level, v->consecutive, v->detail,
             fire ? "Check for smoke or flame now; leave and call the fire service if you see "
                    "or smell it."
                  : "Ventilate, do not switch anything on or off, shut the gas supply if it is "
                    "safe, and leave if the smell is strong.");
    struct alert_fsm_params fp = ctx->params->fsm;
    fp.open_after = v->consecutive;
    /* The alert is critical, but a critical condition opens at once (alert_fsm.h): until
     * the N-th dangerous reading in a row it is observed as high, so it waits for N. */
    enum alert_severity sev = SEVERITY_CRITICAL;
    const struct alert_fsm *f = find_slot(dd, metric, v->kind);
    uint32_t seen = f != NULL && f->phase == FSM_PENDING ? f->count : 0;
    if (v->above && (f == NULL || f->phase != FSM_ACTIVE) && seen + 1 < fp.open_after)
        sev = SEVERITY_HIGH;
    struct condition c = {metric,   v->kind, v->above, sev,    v->probability,
                          v->level, NULL,    NULL,     message};
    return observe(ctx, dd, device, &c, &fp, ts_ms);
}

int decide_model(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                 const struct decide_model_verdict *v, int64_t ts_ms)
{
    char metric[READING_METRIC_BUF];
    snprintf(metric, sizeof metric, "%s%s", DECIDE_MODEL_PREFIX, v->model);
    char message[ALERT_MESSAGE_LEN];
    snprintf(message, sizeof message,
             "Unusual pattern at %s: model %s scores %.3f, at or above its threshold %.3f for %u "
             "readings in a row (%s). Check the device and its surroundings; if the pattern is "
             "normal now, retrain the model on recent data.",
             device, v->model, v->score, v->threshold, v->consecutive, v->detail);
    struct alert_fsm_params fp = ctx->params->fsm;
    fp.open_after = v->consecutive;
    struct condition c = {metric,   ALERT_KIND_ANOMALY, v->above, v->severity,
                          v->score, v->threshold,       NULL,     NULL,
                          message};
    return observe(ctx, dd, device, &c, &fp, ts_ms);
}

int decide_tamper(const struct decide_ctx *ctx, struct decide_device *dd, const char *device,
                  enum alert_severity severity, const char *explanation, int64_t ts_ms)
{
    char message[ALERT_MESSAGE_LEN];
    snprintf(message, sizeof message,
             "%s is quarantined: its data is doubted (%s). Its readings are kept but flagged; "
             "check the device, then release it.",
             device, explanation);
    struct alert_fsm_params fp = ctx->params->fsm;
    fp.open_after = 1;
    fp.resolve_after_ms = INT64_MAX / 4; /* only a release resolves it */
    struct condition c = {
        ALERT_METRIC_DEVICE, ALERT_KIND_TAMPER, true, severity, 0, NAN, NULL, NULL, message};
    struct alert_fsm *f = find_slot(dd, ALERT_METRIC_DEVICE, ALERT_KIND_TAMPER);
    if (f != NULL && f->phase == FSM_ACTIVE && strcmp(f->rec.message, message) != 0) {
        /* A new explanation: the record says it (stored without an event). */
        compose_message(&c, &f->rec);
        f->rec.updated_ms = ts_ms;
        ctx->emit(ctx->emit_arg, &f->rec, NULL);
    }
    return observe(ctx, dd, device, &c, &fp, ts_ms);
}

int decide_tamper_release(const struct decide_ctx *ctx, struct decide_device *dd, const char *actor,
                          const char *comment, int64_t now_ms)
{
    struct alert_fsm *f = find_slot(dd, ALERT_METRIC_DEVICE, ALERT_KIND_TAMPER);
    if (f == NULL || f->phase != FSM_ACTIVE)
        return CANARY_OK;
    if (alert_fsm_resolve(f, actor, now_ms) == 0)
        emit(ctx, f, ALERT_ACTION_RESOLVED, f->rec.resolved_by, comment ? comment : "", now_ms);
    return CANARY_OK;
}
