/* shard.c — per-device processing of readings: duplicate check -> detect (streaming
 * detectors, live models) -> decide, then a gas classifier's derived values (contract in
 * shard.h). */
#include "pipeline/shard.h"

#include "core/error.h"
#include "core/log.h"
#include "core/metric.h"
#include "detect/detect_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The alerts of a device whose data the tamper checks doubt say so, and why, but keep their
 * severity: a real gas leak must not be dismissed as tampering (docs/TAMPER.md). */
static void alert_emit(void *arg, const struct alert *a, const struct alert_event *ev)
{
    struct shard *s = arg;
    const struct shard_device *d = s->deciding;
    if (d == NULL || d->tamper.state == TRUST_TRUSTED || a->kind == ALERT_KIND_TAMPER ||
        a->kind == ALERT_KIND_OFFLINE) {
        s->alert_emit(s->alert_arg, a, ev);
        return;
    }
    struct alert copy = *a;
    char why[200];
    tamper_explain(&d->tamper, why, sizeof why);
    size_t used = strlen(copy.message);
    /* What to do first: a long explanation is what gets cut. */
    snprintf(copy.message + used, sizeof copy.message - used,
             " NOTE: this device's data is doubted (%s); the alert stays %s: check on site. "
             "Why: %s",
             trust_state_name(d->tamper.state), alert_severity_name(copy.severity), why);
    if (ev == NULL) {
        s->alert_emit(s->alert_arg, &copy, NULL);
        return;
    }
    struct alert_event e = *ev;
    if (strcmp(ev->note, a->message) == 0) /* the note was the message: it is now */
        snprintf(e.note, sizeof e.note, "%s", copy.message);
    s->alert_emit(s->alert_arg, &copy, &e);
}

void shard_init(struct shard *s, const struct shard_params *params,
                uint64_t (*next_alert_id)(void *arg), void *id_arg, decide_emit_fn emit,
                void *emit_arg)
{
    s->params = *params;
    s->decide.params = params->decide;
    s->decide.next_alert_id = next_alert_id;
    s->decide.id_arg = id_arg;
    s->decide.emit = alert_emit;
    s->decide.emit_arg = s;
    s->alert_emit = emit;
    s->alert_arg = emit_arg;
    s->deciding = NULL;
    s->trust_emit = NULL;
    s->trust_arg = NULL;
    s->derived = NULL;
    strmap_init(&s->devices);
}

void shard_set_trust_listener(struct shard *s, shard_trust_fn fn, void *arg)
{
    s->trust_emit = fn;
    s->trust_arg = arg;
}

static void free_device(void *arg, const char *key, void *value)
{
    (void)arg;
    (void)key;
    struct shard_device *d = value;
    decide_device_free(&d->decide);
    device_models_free(&d->models);
    free(d->series);
    free(d->tamper_series);
    free(d);
}

void shard_free(struct shard *s)
{
    strmap_each(&s->devices, free_device, NULL);
    strmap_free(&s->devices);
    model_set_release(s->set);
    s->set = NULL;
}

/* Takes the current model set when a reload has made a new one; devices rebind on their
 * next reading. */
static void refresh_models(struct shard *s)
{
    struct models *m = s->params.models;
    if (m == NULL || (s->set != NULL && s->set->generation == models_generation(m)))
        return;
    struct model_set *next = models_acquire(m);
    model_set_release(s->set);
    s->set = next;
}

/* The device's kind as registered through the API (for models bound by kind), or NULL. */
static const char *device_kind(struct shard *s, const char *id, struct store_device *sd)
{
    bool by_kind = false;
    for (size_t i = 0; i < s->set->n; i++)
        by_kind |= s->set->entries[i].def.kind[0] != '\0';
    char err[256];
    if (!by_kind || s->params.reader == NULL ||
        store_device_get(s->params.reader, id, sd, err, sizeof err) != 0)
        return NULL;
    return sd->kind;
}

/* A gas classifier's verdict: the values of its inputs that danger flags FLAG_MODEL, and
 * its alert machines (decide_gas, one per alert kind its dangerous classes raise) hear it:
 * each judged by the most probable dangerous class of its own kind. */
static void gas_verdict(struct shard *s, struct shard_device *d, struct reading *r,
                        const struct model_result *res, const char *detail)
{
    const struct model_entry *e = res->entry;
    for (uint32_t k = 0; k < r->n_values && res->above; k++) {
        for (size_t m = 0; m < e->n_metrics; m++) {
            if (strcmp(e->metrics[m], r->values[k].name) == 0)
                r->values[k].flags |= FLAG_MODEL;
        }
    }
    static const enum alert_kind kinds[] = {ALERT_KIND_GAS_LEAK, ALERT_KIND_FIRE};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        int best = -1;
        for (size_t k = 0; k < gas_n_classes(e->gas); k++) {
            if (e->dangerous[k] && e->class_kind[k] == (int)kinds[i] &&
                (best < 0 || res->proba[k] > res->proba[best]))
                best = (int)k;
        }
        if (best < 0)
            continue; /* no class of this kind */
        double p = res->proba[best];
        struct decide_gas_verdict v = {
            e->name, kinds[i],       p >= e->probability, gas_class_name(e->gas, (size_t)best),
            p,       e->probability, e->consecutive,      detail};
        if (decide_gas(&s->decide, &d->decide, d->id, &v, r->ts_ms) != 0)
            log_error("pipeline.decide_failed", "device=%s reason=out_of_memory", d->id);
    }
}

/* Scores the reading with the device's models: a model's score raises the scores of the
 * values it looked at (on the common scale, model_score_unit) and flags them FLAG_MODEL at
 * or above its threshold; its alert machine hears every verdict. Gas classifiers leave the
 * scores alone (a class is not an anomaly score) and their results go to gas[] (at most
 * CONFIG_MODELS_MAX), for add_derived once the reading is decided. */
static void score_models(struct shard *s, struct shard_device *d, struct reading *r,
                         struct shard_counts *counts, struct model_result *gas, size_t *n_gas)
{
    *n_gas = 0;
    if (s->set == NULL || s->set->n == 0)
        return;
    if (d->models.generation != s->set->generation) {
        struct store_device sd;
        if (device_models_bind(&d->models, s->set, d->id, device_kind(s, d->id, &sd)) != 0)
            log_error("pipeline.models_bind_failed", "device=%s reason=out_of_memory", d->id);
    }
    struct model_result res[CONFIG_MODELS_MAX]; /* every model may apply to a device */
    size_t n = device_models_score(&d->models, r, res, sizeof res / sizeof res[0]);
    for (size_t j = 0; j < n; j++) {
        const struct model_entry *e = res[j].entry;
        bool is_gas = e->type == MODEL_GAS;
        double unit = is_gas ? 0
                             : model_score_unit(res[j].score, e->threshold,
                                                s->params.detect->anomaly_threshold);
        char detail[256];
        size_t len = 0;
        detail[0] = '\0';
        for (uint32_t k = 0; k < r->n_values; k++) {
            struct metric_value *v = &r->values[k];
            bool used = false;
            for (size_t m = 0; m < e->n_metrics && !used; m++)
                used = strcmp(e->metrics[m], v->name) == 0;
            if (!used)
                continue;
            if (!is_gas && unit > v->score)
                v->score = (float)unit;
            if (!is_gas && res[j].above)
                v->flags |= FLAG_MODEL;
            if (len < sizeof detail) {
                int w = snprintf(detail + len, sizeof detail - len, "%s%s %.6g", len ? ", " : "",
                                 v->name, v->value);
                len += w > 0 ? (size_t)w : 0;
            }
        }
        counts->model_scored++;
        counts->model_above += res[j].above;
        if (is_gas) {
            gas_verdict(s, d, r, &res[j], detail);
            gas[(*n_gas)++] = res[j];
            continue;
        }
        struct decide_model_verdict verdict = {e->name,        res[j].above,
                                               res[j].score,   e->threshold,
                                               e->consecutive, s->params.decide->anomaly_severity,
                                               detail};
        if (decide_model(&s->decide, &d->decide, d->id, &verdict, r->ts_ms) != 0)
            log_error("pipeline.decide_failed", "device=%s reason=out_of_memory", d->id);
    }
}

/* The derived values a gas classifier's result adds to its reading (models.h). */
static uint32_t derived_count(const struct model_result *res)
{
    const struct model_entry *e = res->entry;
    return 2 + (e->all_probabilities ? (uint32_t)gas_n_classes(e->gas) : 0);
}

/* Stores each gas classifier's class and probability with the reading as derived values
 * (models.h: class_metric, prob_metric, and every class's probability unless the model
 * stores the best only), in memory from s->derived. Added after the detectors and decide
 * ran, so they are stored, not scored. A device sending one of these names itself keeps its
 * own values and the model adds none. Out of memory, or past READING_MAX_VALUES: the reading
 * is stored without them (logged). */
static void add_derived(struct shard *s, struct reading *r, const struct model_result *gas,
                        size_t n_gas)
{
    if (n_gas == 0 || s->derived == NULL)
        return;
    uint32_t extra = 0;
    for (size_t j = 0; j < n_gas; j++)
        extra += derived_count(&gas[j]);
    struct metric_value *v = NULL;
    if (r->n_values + extra <= READING_MAX_VALUES)
        v = arena_alloc(s->derived, (r->n_values + extra) * sizeof *v);
    if (v == NULL) {
        log_error("pipeline.derived_failed", "device=%s reason=%s", r->device,
                  r->n_values + extra > READING_MAX_VALUES ? "too_many_values" : "out_of_memory");
        return;
    }
    memcpy(v, r->values, r->n_values * sizeof *v);
    uint32_t n = r->n_values;
    for (size_t j = 0; j < n_gas; j++) {
        const struct model_entry *e = gas[j].entry;
        size_t classes = e->all_probabilities ? gas_n_classes(e->gas) : 0;
        bool taken = false;
        for (uint32_t k = 0; k < r->n_values && !taken; k++) {
            const char *name = r->values[k].name;
            taken = strcmp(name, e->class_metric) == 0 || strcmp(name, e->prob_metric) == 0;
            for (size_t c = 0; c < classes && !taken; c++)
                taken = strcmp(name, e->class_prob_metric[c]) == 0;
        }
        if (taken)
            continue;
        v[n++] = (struct metric_value){e->class_metric, (double)gas[j].gas_class, 0, 0};
        v[n++] = (struct metric_value){e->prob_metric, gas[j].gas_prob, 0, 0};
        for (size_t c = 0; c < classes; c++)
            v[n++] = (struct metric_value){e->class_prob_metric[c], gas[j].proba[c], 0, 0};
    }
    r->values = v;
    r->n_values = n;
}

static enum device_status status_at(const struct canary_config *cfg, int64_t last_recv_ms,
                                    int64_t now_ms)
{
    if (last_recv_ms == 0)
        return DEVICE_NEVER;
    int64_t age = now_ms - last_recv_ms;
    if (age >= (int64_t)cfg->devices.offline_after_s * 1000)
        return DEVICE_OFFLINE;
    if (age >= (int64_t)cfg->devices.stale_after_s * 1000)
        return DEVICE_STALE;
    return DEVICE_ONLINE;
}

/* Adds a device, within devices.max_devices over all shards. NULL when refused. */
static struct shard_device *new_device(struct shard *s, const char *id)
{
    _Atomic uint64_t *count = s->params.n_devices;
    if (atomic_fetch_add(count, 1) >= s->params.cfg->devices.max_devices) {
        atomic_fetch_sub(count, 1);
        return NULL;
    }
    struct shard_device *d = calloc(1, sizeof *d);
    if (d == NULL || strmap_put(&s->devices, id, d) != 0) {
        free(d);
        atomic_fetch_sub(count, 1);
        return NULL;
    }
    snprintf(d->id, sizeof d->id, "%s", id);
    tamper_device_init(&d->tamper);
    d->trust_written = 1; /* a new device is trusted: nothing to store */
    return d;
}

static struct shard_device *device_or_new(struct shard *s, const char *id)
{
    struct shard_device *d = strmap_get(&s->devices, id);
    return d != NULL ? d : new_device(s, id);
}

int shard_adopt_device(struct shard *s, const struct store_device *sd, int64_t now_ms)
{
    struct shard_device *d = device_or_new(s, sd->id);
    if (d == NULL)
        return CANARY_ELIMIT;
    d->window = sd->window;
    d->max_ts_ms = sd->max_ts_ms;
    d->last_recv_ms = sd->last_seen_ms;
    d->status = status_at(s->params.cfg, d->last_recv_ms, now_ms);
    return CANARY_OK;
}

int shard_adopt_alert(struct shard *s, const struct alert *a, int64_t now_ms)
{
    struct shard_device *d = device_or_new(s, a->device);
    if (d == NULL)
        return CANARY_ELIMIT;
    return decide_restore(&d->decide, a, now_ms);
}

/* The device of a reading: known, or created when auto-registration allows it (or the
 * store knows it: registered through the API). NULL: refused, the reason in the batch. */
static struct shard_device *device_for(struct shard *s, struct ingest_batch *b, size_t i)
{
    const char *id = b->readings[i].device;
    struct shard_device *d = strmap_get(&s->devices, id);
    if (d != NULL)
        return d;
    if (!s->params.cfg->ingest.auto_register) {
        struct store_device sd;
        char err[256];
        int rc = s->params.reader != NULL
                     ? store_device_get(s->params.reader, id, &sd, err, sizeof err)
                     : CANARY_ENOTFOUND;
        if (rc != 0) {
            if (rc != CANARY_ENOTFOUND)
                log_error("pipeline.device_lookup_failed", "device=%s error=\"%s\"", id, err);
            b->status[i] = READING_UNKNOWN_DEVICE;
            b->errors[i].field = "device";
            b->errors[i].reason = "unknown device: register it first (ingest.auto_register is "
                                  "off)";
            return NULL;
        }
    }
    d = new_device(s, id);
    if (d == NULL) {
        b->status[i] = READING_UNKNOWN_DEVICE;
        b->errors[i].field = "device";
        b->errors[i].reason = "canaryd tracks as many devices as devices.max_devices allows";
    }
    return d;
}

/* The index of a device's series for a metric, or -1. */
static int32_t series_index(const struct shard_device *d, const char *metric)
{
    for (uint32_t i = 0; i < d->n_series; i++) {
        if (strcmp(d->series[i].metric, metric) == 0)
            return (int32_t)i;
    }
    return -1;
}

/* Adds a series for a metric with its resolved limits. Returns its index, or -1 when out of
 * memory. (Adding may move the series array: keep indices, not pointers, across it.) */
static int32_t series_add(struct shard *s, struct shard_device *d, const char *metric)
{
    if (d->n_series == d->cap_series) {
        uint32_t cap = d->cap_series ? d->cap_series * 2 : 4;
        struct device_series *grown = realloc(d->series, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        d->series = grown;
        /* The tamper checks' state (2.3 KB a series) exists only when they run. */
        if (s->params.cfg->tamper.enabled) {
            struct tamper_series *tgrown = realloc(d->tamper_series, cap * sizeof *tgrown);
            if (tgrown == NULL)
                return -1; /* the larger series array is kept; cap_series stays until both grow */
            d->tamper_series = tgrown;
        }
        d->cap_series = cap;
    }
    struct device_series *ser = &d->series[d->n_series];
    snprintf(ser->metric, sizeof ser->metric, "%s", metric);
    detect_series_setup(&ser->state, s->params.cfg, d->id, metric);
    if (d->tamper_series != NULL)
        tamper_series_init(&d->tamper_series[d->n_series], metric);
    return (int32_t)d->n_series++;
}

/* Duplicate check; a fresh reading is recorded as seen. Returns false for a duplicate. */
static bool fresh(struct shard *s, struct shard_device *d, struct ingest_batch *b, size_t i)
{
    const struct reading *r = &b->readings[i];
    if (r->has_seq) {
        unsigned window = s->params.cfg->ingest.seq_window;
        if (!seq_window_fresh(&d->window, r->seq, window)) {
            if (seq_window_too_old(&d->window, r->seq, window))

                ingest_batch_reject(b, i, "seq",
                                    "seq %llu is older than the replay window (newest %llu, "
                                    "window %u)",
                                    (unsigned long long)r->seq, (unsigned long long)d->window.high,
                                    window);
            else
                ingest_batch_reject(b, i, "seq", "seq %llu was already received from this device",
                                    (unsigned long long)r->seq);
            b->status[i] = READING_DUPLICATE;
            return false;
        }
        seq_window_mark(&d->window, r->seq);
    } else if (r->ts_ms <= d->max_ts_ms) {
        ingest_batch_reject(b, i, "ts",
                            "a reading without seq must be newer than the device's newest "
                            "(%lld ms): already received?",
                            (long long)d->max_ts_ms);
        b->status[i] = READING_DUPLICATE;
        return false;
    }
    return true;
}

/* Hands on the device's trust row (and the event of a change of state) when its state
 * changed, or its score moved by 0.05 or more (at most every TRUST_WRITE_MS), and keeps a
 * quarantined device's tamper alert open with the current explanation. */
#define TRUST_WRITE_MS 10000

static void trust_emit(struct shard *s, struct shard_device *d, int64_t now_ms, const char *kind,
                       const char *actor, const char *comment)
{
    d->trust_written = tamper_score(&d->tamper);
    d->trust_written_ms = now_ms;
    if (s->trust_emit == NULL)
        return;
    struct shard_trust_update *u = calloc(1, sizeof *u);
    if (u == NULL) {
        log_error("pipeline.trust_dropped", "device=%s reason=out_of_memory", d->id);
        return;
    }
    struct store_trust *row = &u->row;
    snprintf(row->device, sizeof row->device, "%s", d->id);
    snprintf(row->state, sizeof row->state, "%s", trust_state_name(d->tamper.state));
    row->score = d->trust_written;
    row->since_ms = d->tamper.since_ms;
    row->updated_ms = now_ms;
    tamper_reasons_json(&d->tamper, row->reasons, sizeof row->reasons);
    /* After a restart the findings are not in memory: the stored ones stay. */
    u->keep_reasons = d->tamper.n_reasons == 0 && d->tamper.state != TRUST_TRUSTED;
    if (actor != NULL) {
        row->released_ms = now_ms;
        snprintf(row->released_by, sizeof row->released_by, "%s", actor);
    }
    if (kind != NULL) {
        u->has_event = true;
        struct event_record *e = &u->event;
        e->ts_ms = now_ms;
        e->category = EVENT_SECURITY;
        e->count = 1;
        snprintf(e->kind, sizeof e->kind, "%s", kind);
        snprintf(e->device, sizeof e->device, "%s", d->id);
        if (actor != NULL) {
            snprintf(e->source, sizeof e->source, "api %s", actor);
            snprintf(e->detail, sizeof e->detail, "released by %s%s%s", actor,
                     comment && comment[0] ? ": " : "", comment ? comment : "");
        } else {
            char why[200];
            tamper_explain(&d->tamper, why, sizeof why);
            snprintf(e->source, sizeof e->source, "tamper");
            snprintf(e->detail, sizeof e->detail, "trust %.2f: %s", row->score, why);
        }
    }
    s->trust_emit(s->trust_arg, u);
    free(u);
}

static void trust_moved(struct shard *s, struct shard_device *d, const struct tamper_outcome *o,
                        int64_t now_ms)
{
    if (d->tamper.state == TRUST_QUARANTINED) {
        char why[200];
        tamper_explain(&d->tamper, why, sizeof why);
        enum alert_severity sev = SEVERITY_HIGH;
        alert_severity_parse(s->params.cfg->tamper.alert_severity, &sev);
        if (decide_tamper(&s->decide, &d->decide, d->id, sev, why, now_ms) != 0)
            log_error("pipeline.decide_failed", "device=%s reason=out_of_memory", d->id);
        d->decide.hold_open = true;
    }
    if (o->after != o->before) {
        const char *kind = o->after == TRUST_QUARANTINED ? "quarantined"
                           : o->after == TRUST_SUSPECT   ? "tamper_suspect"
                                                         : NULL; /* recovered: the row says it */
        log_info("tamper.trust", "device=%s state=%s score=%.3f", d->id, trust_state_name(o->after),
                 tamper_score(&d->tamper));
        trust_emit(s, d, now_ms, kind, NULL, NULL);
        return;
    }
    double score = tamper_score(&d->tamper);
    if (fabs(score - d->trust_written) >= 0.05 && now_ms - d->trust_written_ms >= TRUST_WRITE_MS)
        trust_emit(s, d, now_ms, NULL, NULL, NULL);
}

static void process_reading(struct shard *s, struct ingest_batch *b, size_t i,
                            struct shard_counts *counts)
{
    const struct canary_config *cfg = s->params.cfg;
    const struct detect_params *dp = s->params.detect;
    struct reading *r = &b->readings[i];
    struct shard_device *d = device_for(s, b, i);
    if (d == NULL) {
        counts->unknown++;
        return;
    }
    /* Each value's series, looked up once; new metrics are counted before any is added. */
    int32_t idx[READING_MAX_VALUES];
    uint32_t missing = 0;
    for (uint32_t k = 0; k < r->n_values; k++) {
        idx[k] = series_index(d, r->values[k].name);
        missing += idx[k] < 0;
    }
    if (d->n_series + missing > cfg->devices.max_metrics) {
        ingest_batch_reject(b, i, "values",
                            "the device would report more than %u distinct metrics (limit "
                            "devices.max_metrics)",
                            cfg->devices.max_metrics);
        counts->invalid++;
        return;
    }
    if (!fresh(s, d, b, i)) {
        counts->duplicates++;
        return;
    }
    if (r->ts_ms > d->max_ts_ms)
        d->max_ts_ms = r->ts_ms;
    d->last_recv_ms = r->recv_ms;
    d->status = DEVICE_ONLINE;
    for (uint32_t k = 0; k < r->n_values; k++) {
        if (idx[k] < 0 && (idx[k] = series_add(s, d, r->values[k].name)) < 0) {
            /* Out of memory: refuse the reading whole rather than store it unscored (its
             * timing teaches the gap detector nothing either). */
            ingest_batch_reject(b, i, "values", "out of memory");
            counts->invalid++;
            return;
        }
    }
    /* The detectors proper: the same call `canary replay` makes for each row. */
    const struct device_series *value_series[READING_MAX_VALUES];
    struct series_state *states[READING_MAX_VALUES];
    for (uint32_t k = 0; k < r->n_values; k++) {
        value_series[k] = &d->series[idx[k]];
        states[k] = &d->series[idx[k]].state;
    }
    counts->anomalies += detect_reading(&d->gap, states, dp, r->values, r->n_values, r->ts_ms);
    /* The tamper checks (their flags are stored with the values) before decide, whose alerts
     * say when the device's data is doubted. */
    struct tamper_series *tser[READING_MAX_VALUES];
    for (uint32_t k = 0; k < r->n_values; k++)
        tser[k] = d->tamper_series != NULL ? &d->tamper_series[idx[k]] : NULL; /* NULL: off */
    struct tamper_outcome judged;
    tamper_reading(&cfg->tamper, &d->tamper, tser, r, &judged);
    d->decide.hold_open = d->tamper.state == TRUST_QUARANTINED;
    s->deciding = d;
    struct model_result gas[CONFIG_MODELS_MAX];
    size_t n_gas;
    score_models(s, d, r, counts, gas, &n_gas);
    if (decide_reading(&s->decide, &d->decide, d->id, r, d->series, d->n_series, value_series) != 0)
        log_error("pipeline.decide_failed", "device=%s reason=out_of_memory", d->id);
    s->deciding = NULL;
    trust_moved(s, d, &judged, r->recv_ms);
    add_derived(s, r, gas, n_gas);
}

void shard_process(struct shard *s, struct ingest_batch *b, const uint32_t *idx, size_t n,
                   struct shard_counts *counts)
{
    refresh_models(s);
    for (size_t k = 0; k < n; k++)
        process_reading(s, b, idx[k], counts);
}

int shard_adopt_trust(struct shard *s, const struct store_trust *t)
{
    enum trust_state st;
    if (trust_state_parse(t->state, &st) != 0)
        return CANARY_OK; /* the table's CHECK makes this impossible */
    struct shard_device *d = device_or_new(s, t->device);
    if (d == NULL)
        return CANARY_ELIMIT;
    tamper_restore(&d->tamper, st, t->score, t->since_ms);
    d->trust_written = tamper_score(&d->tamper);
    d->decide.hold_open = st == TRUST_QUARANTINED;
    return CANARY_OK;
}

int shard_device_release(struct shard *s, const char *device, const char *actor,
                         const char *comment, int64_t now_ms)
{
    struct shard_device *d = strmap_get(&s->devices, device);
    if (d == NULL)
        return CANARY_ENOTFOUND;
    if (d->tamper.state == TRUST_TRUSTED)
        return CANARY_ECONFLICT;
    enum trust_state was = tamper_release(&d->tamper, now_ms);
    d->decide.hold_open = false;
    decide_tamper_release(&s->decide, &d->decide, actor, comment, now_ms);
    log_info("tamper.released", "device=%s was=%s actor=%s", d->id, trust_state_name(was), actor);
    trust_emit(s, d, now_ms, "released", actor, comment);
    return CANARY_OK;
}

void shard_device_evidence(struct shard *s, const char *device, const char *metric,
                           const char *detail, int64_t ts_ms)
{
    struct shard_device *d = strmap_get(&s->devices, device);
    if (d == NULL)
        return;
    const struct config_tamper *p = &s->params.cfg->tamper;
    struct tamper_outcome o;
    tamper_add_evidence(p, &d->tamper, TAMPER_NEIGHBOURS, metric, p->weight_neighbours, detail,
                        ts_ms, &o);
    trust_moved(s, d, &o, ts_ms);
}

int shard_alert_action(struct shard *s, const char *device, uint64_t id, bool acknowledge,
                       const char *actor, const char *comment, int64_t now_ms)
{
    struct shard_device *d = strmap_get(&s->devices, device);
    if (d == NULL)
        return CANARY_ENOTFOUND;
    return acknowledge ? decide_acknowledge(&s->decide, &d->decide, id, actor, comment, now_ms)
                       : decide_resolve(&s->decide, &d->decide, id, actor, comment, now_ms);
}

void shard_device_link(struct shard *s, const char *device, enum device_link link, int64_t now_ms)
{
    struct shard_device *d = strmap_get(&s->devices, device);
    if (d == NULL)
        return;
    enum device_link before = d->link;
    d->link = link;
    if (link != LINK_OFFLINE || before == LINK_OFFLINE)
        return;
    if (decide_link_lost(&s->decide, &d->decide, d->id, d->series, d->n_series, d->last_recv_ms,
                         now_ms) != 0)
        log_error("pipeline.decide_failed", "device=%s reason=out_of_memory", d->id);
}

struct tick_ctx {
    struct shard *s;
    int64_t now_ms;
};

static void tick_device(void *arg, const char *key, void *value)
{
    (void)key;
    struct tick_ctx *t = arg;
    struct shard_device *d = value;
    enum device_status st = status_at(t->s->params.cfg, d->last_recv_ms, t->now_ms);
    if (st != d->status) {
        if (st == DEVICE_OFFLINE &&
            decide_offline(&t->s->decide, &d->decide, d->id, true, d->last_recv_ms, t->now_ms) != 0)
            log_error("pipeline.decide_failed", "device=%s reason=out_of_memory", d->id);
        d->status = st;
    }
    decide_expire(&t->s->decide, &d->decide, t->now_ms);
}

void shard_tick(struct shard *s, int64_t now_ms)
{
    struct tick_ctx t = {s, now_ms};
    strmap_each(&s->devices, tick_device, &t);
}
