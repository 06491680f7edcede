/* model_live.c — per-device model state and live scoring or classifying (model_live.h). */
#include "models/model_live.h"

#include "core/error.h"
#include "ml/features.h"
#include "models/model_latest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void free_one(struct device_model *m)
{
    if (m->series != NULL) {
        for (size_t k = 0; k < m->entry->n_metrics; k++)
            free(m->series[k]);
        free(m->series);
    }
    gas_stream_free(m->stream);
    free(m->inputs);
    free(m->proba);
    free(m->vec);
    free(m->seen);
    memset(m, 0, sizeof *m);
}

void device_models_free(struct device_models *dm)
{
    for (uint32_t i = 0; i < dm->n; i++)
        free_one(&dm->models[i]);
    free(dm->models);
    memset(dm, 0, sizeof *dm);
}

static int init_one(struct device_model *m, const struct model_entry *e)
{
    memset(m, 0, sizeof *m);
    m->entry = e;
    m->last_score = NAN;
    m->vec = malloc(e->n_features * sizeof *m->vec);
    m->seen = calloc(e->n_metrics, sizeof *m->seen);
    if (m->vec == NULL || m->seen == NULL)
        return CANARY_ENOMEM;
    for (size_t i = 0; i < e->n_features; i++)
        m->vec[i] = NAN;
    if (e->type == MODEL_GAS) {
        const struct gas_params *gp = gas_model_params(e->gas);
        m->stream = gas_stream_new(e->n_metrics, gp->window, gp->window_stats);
        m->inputs = malloc(e->n_metrics * sizeof *m->inputs);
        m->proba = malloc(gas_n_classes(e->gas) * sizeof *m->proba);
        return m->stream && m->inputs && m->proba ? CANARY_OK : CANARY_ENOMEM;
    }
    if (!e->window)
        return CANARY_OK;
    m->series = calloc(e->n_metrics, sizeof *m->series);
    if (m->series == NULL)
        return CANARY_ENOMEM;
    for (size_t k = 0; k < e->n_metrics; k++) {
        m->series[k] = malloc(feature_series_size(e->window_len));
        if (m->series[k] == NULL)
            return CANARY_ENOMEM;
        feature_series_init(m->series[k], e->window_len);
    }
    return CANARY_OK;
}

int device_models_bind(struct device_models *dm, const struct model_set *set, const char *device,
                       const char *kind)
{
    device_models_free(dm);
    dm->generation = set->generation;
    uint32_t n = 0;
    for (size_t i = 0; i < set->n; i++)
        n += model_entry_applies(&set->entries[i], device, kind);
    if (n == 0)
        return CANARY_OK;
    dm->models = calloc(n, sizeof *dm->models);
    if (dm->models == NULL)
        return CANARY_ENOMEM;
    for (size_t i = 0; i < set->n; i++) {
        struct model_entry *e = &set->entries[i];
        if (!model_entry_applies(e, device, kind))
            continue;
        dm->n++; /* counted before init, so a failed init is freed with the rest */
        if (init_one(&dm->models[dm->n - 1], e) != 0) {
            device_models_free(dm);
            dm->generation = set->generation;
            return CANARY_ENOMEM;
        }
        atomic_fetch_add_explicit(&e->devices, 1, memory_order_relaxed);
    }
    return CANARY_OK;
}

static int metric_index(const struct model_entry *e, const char *metric)
{
    for (size_t k = 0; k < e->n_metrics; k++) {
        if (strcmp(e->metrics[k], metric) == 0)
            return (int)k;
    }
    return -1;
}

/* Feeds the reading to a gas model: true when it carries one of the inputs and every input
 * has been seen (a channel missing from this reading keeps its last value), with the
 * model's row in m->vec. */
static bool feed_gas(struct device_model *m, const struct reading *r)
{
    const struct model_entry *e = m->entry;
    bool touched = false;
    for (uint32_t i = 0; i < r->n_values; i++) {
        int k = metric_index(e, r->values[i].name);
        if (k < 0)
            continue;
        touched = true;
        m->inputs[k] = r->values[i].value;
        m->seen[k] = true;
    }
    if (!touched)
        return false;
    for (size_t k = 0; k < e->n_metrics; k++) {
        if (!m->seen[k])
            return false;
    }
    gas_stream_push(m->stream, m->inputs, m->vec);
    return true;
}

/* Classifies the row in m->vec (model_result's gas fields), and leaves every class's
 * probability as the device's latest for the API (model_latest.h). */
static struct model_result classify(struct device_model *m, const struct reading *r)
{
    const struct model_entry *e = m->entry;
    struct model_result res = {.entry = e, .danger_class = -1};
    res.gas_class = gas_predict_row(e->gas, GAS_STACK, m->vec, m->proba);
    (void)model_latest_put(e->latest, r->device, r->ts_ms, m->proba); /* ENOMEM: stale, no harm */
    res.gas_prob = m->proba[res.gas_class];
    res.proba = m->proba;
    for (size_t k = 0; k < gas_n_classes(e->gas); k++) {
        if (e->dangerous[k] && (res.danger_class < 0 || m->proba[k] > m->proba[res.danger_class]))
            res.danger_class = (int)k;
    }
    res.score = res.danger_class >= 0 ? m->proba[res.danger_class] : 0;
    res.above = res.score >= e->probability;
    return res;
}

/* Feeds the reading to one model; true when the model's vector is complete. */
static bool feed(struct device_model *m, const struct reading *r)
{
    if (m->entry->type == MODEL_GAS)
        return feed_gas(m, r);
    const struct model_entry *e = m->entry;
    bool touched = false;
    for (uint32_t i = 0; i < r->n_values; i++) {
        int k = metric_index(e, r->values[i].name);
        if (k < 0)
            continue;
        touched = true;
        if (e->window) {
            double *out = m->vec + (size_t)k * FEATURES_PER_SERIES;
            feature_series_push(m->series[k], r->ts_ms, r->values[i].value, out);
        } else {
            m->vec[k] = r->values[i].value;
        }
        m->seen[k] = true;
    }
    if (!touched)
        return false;
    for (size_t k = 0; k < e->n_metrics; k++) {
        if (!m->seen[k] || (e->window && !feature_series_warm(m->series[k])))
            return false;
    }
    if (e->window)
        feature_time_of_day(r->ts_ms, m->vec + e->n_metrics * FEATURES_PER_SERIES);
    return true;
}

size_t device_models_score(struct device_models *dm, const struct reading *r,
                           struct model_result *out, size_t cap)
{
    size_t n = 0;
    for (uint32_t i = 0; i < dm->n && n < cap; i++) {
        struct device_model *m = &dm->models[i];
        const struct model_entry *e = m->entry;
        if (!feed(m, r))
            continue;
        struct model_result res;
        if (e->type == MODEL_GAS)
            res = classify(m, r);
        else
            res = (struct model_result){.entry = e,
                                        .score = iforest_score_row(e->forest, m->vec),
                                        .gas_class = -1,
                                        .gas_prob = NAN,
                                        .danger_class = -1};
        if (e->type != MODEL_GAS)
            res.above = res.score >= e->threshold;
        m->last_score = res.score;
        atomic_fetch_add_explicit(&((struct model_entry *)e)->scored, 1, memory_order_relaxed);
        if (res.above)
            atomic_fetch_add_explicit(&((struct model_entry *)e)->above, 1, memory_order_relaxed);
        out[n++] = res;
    }
    return n;
}

double model_score_unit(double score, double threshold, double anomaly_threshold)
{
    if (!(score > 0.5))
        return 0;
    if (score >= 1)
        return 1;
    if (!(threshold > 0.5) || threshold >= 1)
        return score; /* a threshold outside (0.5, 1): no mapping to make */
    if (score < threshold)
        return anomaly_threshold * (score - 0.5) / (threshold - 0.5);
    return anomaly_threshold + (1 - anomaly_threshold) * (score - threshold) / (1 - threshold);
}
