/* compose.c — an outbox row's message from its alert and the store around it; see
 * compose.h. */
#include "notify/compose.h"

#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TREND_WINDOW_MS  (5 * 60000LL)  /* readings looked at before the moment */
#define RATE_WINDOW_MS   (2 * 60000LL)  /* the direction and rate: the last 2 minutes */
#define NORMAL_WINDOW_MS (60 * 60000LL) /* the normal range: the hour before the alert */
#define NORMAL_GAP_MS    60000LL        /* ... ending a minute before it opened */
#define NORMAL_MIN_N     10             /* readings needed for a normal range */
#define READINGS_MAX     4000

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The value of metric in a stored reading, or NAN. Its score through *score. */
static double value_of(const struct store_reading *r, const char *metric, float *score)
{
    for (uint32_t i = 0; i < r->n_values; i++) {
        if (strcmp(r->values[i].metric, metric) == 0) {
            if (score != NULL)
                *score = r->values[i].score;
            return r->values[i].value;
        }
    }
    return NAN;
}

/* Trend: the direction and rate (least squares, per minute) of the metric over the last
 * RATE_WINDOW_MS, and how long it has gone that way: since its lowest point in the window
 * when rising, its highest when falling (a value that peaked and is falling back is not
 * "rising for 3 minutes"). Also the latest score. */
static void gather_recent(struct composed *c, const struct store_readings_result *rr,
                          const char *metric, int64_t at_ms)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    size_t n = 0;
    int64_t first = 0, last = 0;
    for (size_t i = 0; i < rr->n; i++) {
        const struct store_reading *r = &rr->rows[i];
        float score = NAN;
        double v = value_of(r, metric, &score);
        if (!isfinite(v))
            continue;
        if (isfinite(score))
            c->ctx.anomaly_score = score;
        if (r->ts_ms < at_ms - RATE_WINDOW_MS)
            continue;
        double x = (double)(r->ts_ms - at_ms) / 60000.0;
        sx += x;
        sy += v;
        sxx += x * x;
        sxy += x * v;
        if (n++ == 0)
            first = r->ts_ms;
        last = r->ts_ms;
    }
    double den = (double)n * sxx - sx * sx;
    if (n >= 3 && den > 0 && last > first) {
        double rate = ((double)n * sxy - sx * sy) / den;
        /* Since when: the extreme opposite to the direction, within the whole window. */
        double extreme = rate > 0 ? INFINITY : -INFINITY;
        int64_t since = last;
        for (size_t i = 0; i < rr->n; i++) {
            double v = value_of(&rr->rows[i], metric, NULL);
            if (isfinite(v) && (rate > 0 ? v <= extreme : v >= extreme)) {
                extreme = v;
                since = rr->rows[i].ts_ms;
            }
        }
        c->ctx.rate_per_min = rate;
        c->ctx.trend_ms = last > since ? last - since : 0;
    }
    /* Related: the newest value of every other metric, newest reading first. */
    size_t k = 0;
    for (size_t i = rr->n; i-- > 0 && k < EXPLAIN_MAX_RELATED;) {
        const struct store_reading *r = &rr->rows[i];
        for (uint32_t j = 0; j < r->n_values && k < EXPLAIN_MAX_RELATED; j++) {
            const struct store_value *v = &r->values[j];
            if (strcmp(v->metric, metric) == 0 || !isfinite(v->value))
                continue;
            bool seen = false;
            for (size_t q = 0; q < k && !seen; q++)
                seen = strcmp(c->related_metrics[q], v->metric) == 0;
            if (seen)
                continue;
            snprintf(c->related_metrics[k], sizeof c->related_metrics[k], "%s", v->metric);
            c->related[k] = (struct explain_related){c->related_metrics[k], v->value};
            k++;
        }
    }
    c->ctx.related = c->related;
    c->ctx.n_related = k;
}

/* The normal range: 10th to 90th percentile of the hour before the alert opened. */
static void gather_normal(struct composed *c, struct store *s, const char *metric)
{
    struct store_readings_query q = {.device = c->alert.device,
                                     .metric = metric,
                                     .from_ms = c->alert.opened_ms - NORMAL_WINDOW_MS,
                                     .to_ms = c->alert.opened_ms - NORMAL_GAP_MS,
                                     .limit = READINGS_MAX,
                                     .newest_first = true};
    struct store_readings_result rr;
    char err[256];
    if (store_readings(s, &q, &rr, err, sizeof err) != 0)
        return;
    double *v = malloc((rr.n ? rr.n : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; v != NULL && i < rr.n; i++) {
        double x = value_of(&rr.rows[i], metric, NULL);
        if (isfinite(x))
            v[n++] = x;
    }
    if (n >= NORMAL_MIN_N) {
        qsort(v, n, sizeof *v, cmp_double);
        double lo = v[n / 10], hi = v[(n * 9) / 10];
        c->ctx.normal_level = (lo + hi) / 2;
        c->ctx.normal_scale = (hi - lo) / 2;
    }
    free(v);
    store_readings_free(&rr);
}

/* The context around c->alert from the store: device, trend and related readings before
 * at_ms, normal range, times in the configured offset. */
static void gather_context(struct composed *c, struct store *s, const struct canary_config *cfg,
                           int64_t at_ms, int64_t now_ms)
{
    const struct alert *a = &c->alert;
    explain_context_init(&c->ctx);
    explain_context_from_alert(&c->ctx, a);
    c->ctx.now_ms = now_ms;
    c->ctx.anomaly_threshold = cfg->detect.anomaly_threshold;
    int offset = 0;
    if (config_utc_offset_parse(cfg->notify.utc_offset, &offset) == 0)
        c->ctx.utc_offset_min = offset;
    char err[256];
    if (store_device_get(s, a->device, &c->device, err, sizeof err) == 0) {
        c->ctx.device_name = c->device.name[0] ? c->device.name : NULL;
        c->ctx.location = c->device.location[0] ? c->device.location : NULL;
        c->ctx.device_kind = c->device.kind[0] ? c->device.kind : NULL;
        c->ctx.last_seen_ms = c->device.last_seen_ms;
    }
    if (strncmp(a->metric, "model:", 6) == 0) {
        c->ctx.anomaly_score = a->value;
        return;
    }
    if (strcmp(a->metric, ALERT_METRIC_DEVICE) == 0)
        return;
    struct store_readings_query q = {.device = a->device,
                                     .from_ms = at_ms - TREND_WINDOW_MS,
                                     .to_ms = at_ms,
                                     .limit = READINGS_MAX,
                                     .newest_first = false};
    struct store_readings_result rr;
    if (store_readings(s, &q, &rr, err, sizeof err) == 0) {
        gather_recent(c, &rr, a->metric, at_ms);
        store_readings_free(&rr);
    }
    gather_normal(c, s, a->metric);
}

void compose_context(struct composed *c, struct store *s, const struct canary_config *cfg,
                     const struct store_notification *row, const struct alert *a,
                     const struct notify_payload *pl, int64_t now_ms)
{
    memset(c, 0, sizeof *c);
    c->alert = *a;
    /* The moment the row captured: severity and value then, not now. */
    c->alert.severity = pl->severity;
    if (isfinite(pl->value))
        c->alert.value = pl->value;
    if (isfinite(pl->peak))
        c->alert.peak = pl->peak;
    bool escalation = strcmp(row->kind, "escalation") == 0;
    snprintf(c->event, sizeof c->event, "%s",
             escalation ? "escalated" : alert_action_name(pl->event));
    int64_t at = pl->at_ms ? pl->at_ms : now_ms;
    gather_context(c, s, cfg, at, escalation ? now_ms : at);
}

void compose_explain_alert(struct composed *c, struct store *s, const struct canary_config *cfg,
                           const struct alert *a, int64_t now_ms)
{
    memset(c, 0, sizeof *c);
    c->alert = *a;
    bool resolved = a->state == ALERT_STATE_RESOLVED && a->resolved_ms > 0;
    snprintf(c->event, sizeof c->event, "%s", resolved ? "resolved" : "opened");
    gather_context(c, s, cfg, resolved ? a->resolved_ms : now_ms, now_ms);
    if (resolved)
        explain_all_clear(&c->ctx, &c->expl);
    else
        explain_alert(&c->ctx, &c->expl);
}

int compose_message(struct composed *c, const struct store_notification *row, int64_t now_ms)
{
    bool all_clear = strcmp(row->kind, "all_clear") == 0;
    snprintf(c->key, sizeof c->key, "canary-n-%llu", (unsigned long long)row->id);
    struct notify_message *m = &c->msg;
    memset(m, 0, sizeof *m);
    if (notify_channel_parse(row->channel, &m->channel) != 0)
        return CANARY_EINVAL;
    m->to = row->address;
    m->idempotency_key = c->key;
    m->text = c->expl.short_text;
    const char *tag = all_clear                                ? "RESOLVED"
                      : c->alert.severity >= SEVERITY_CRITICAL ? "CRITICAL"
                      : c->alert.severity >= SEVERITY_HIGH     ? "HIGH"
                                                               : "ALERT";
    snprintf(c->subject, sizeof c->subject, "[canary %s] %s", tag, c->expl.title);
    m->subject = c->subject;
    if (m->channel == NOTIFY_CHANNEL_EMAIL) {
        explain_render_text(&c->expl, &c->ctx, all_clear, c->text, sizeof c->text);
        explain_render_html(&c->expl, &c->ctx, all_clear, c->html, sizeof c->html);
        m->text_long = c->text;
        m->html = c->html;
    } else if (m->channel == NOTIFY_CHANNEL_WEBHOOK) {
        c->json = notify_webhook_payload(&c->alert, &c->expl, c->event, c->key, now_ms);
        if (c->json == NULL)
            return CANARY_ENOMEM;
        m->json = c->json;
    }
    return CANARY_OK;
}

void compose_free(struct composed *c)
{
    free(c->json);
    c->json = NULL;
}
