/* model_set.c — a set of live models built from the configuration: each model file loaded,
 * its features checked to be something canaryd can compute live, and its device binding
 * (models.h). */
#include "models/models.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metric.h"
#include "ml/features.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Window features: names are "<metric>.<feature>" in groups of FEATURES_PER_SERIES, then the
 * time of day — exactly what feature_column_name() makes, so that is what is checked. */
static int parse_window(struct model_entry *e, char *err, size_t errlen)
{
    size_t n = e->n_features;
    if (n < FEATURES_PER_SERIES + FEATURES_TIME_OF_DAY ||
        (n - FEATURES_TIME_OF_DAY) % FEATURES_PER_SERIES != 0) {
        snprintf(err, errlen,
                 "%zu features: a window model has %d per metric plus %d for the time of day", n,
                 FEATURES_PER_SERIES, FEATURES_TIME_OF_DAY);
        return CANARY_EINVAL;
    }
    e->n_metrics = (n - FEATURES_TIME_OF_DAY) / FEATURES_PER_SERIES;
    if (e->n_metrics > MODEL_MAX_METRICS) {
        snprintf(err, errlen, "%zu metrics: at most %d", e->n_metrics, MODEL_MAX_METRICS);
        return CANARY_EINVAL;
    }
    const char *names[MODEL_MAX_METRICS];
    for (size_t m = 0; m < e->n_metrics; m++) {
        const char *f = iforest_feature_name(e->forest, m * FEATURES_PER_SERIES);
        const char *dot = strrchr(f, '.');
        if (dot == NULL || !metric_name_valid(f, (size_t)(dot - f), READING_MAX_METRIC_LEN)) {
            snprintf(err, errlen, "feature '%s' does not name a metric (<metric>.<feature>)", f);
            return CANARY_EINVAL;
        }
        memcpy(e->metrics[m], f, (size_t)(dot - f));
        e->metrics[m][dot - f] = '\0';
        names[m] = e->metrics[m];
    }
    for (size_t i = 0; i < n; i++) {
        char want[IFOREST_NAME_MAX + READING_METRIC_BUF];
        feature_column_name(names, e->n_metrics, i, want, sizeof want);
        if (strcmp(want, iforest_feature_name(e->forest, i)) != 0) {
            snprintf(err, errlen, "feature %zu is '%s' where canaryd computes '%s'", i,
                     iforest_feature_name(e->forest, i), want);
            return CANARY_EINVAL;
        }
    }
    e->window_len = iforest_meta_of(e->forest)->window;
    if (e->window_len < 1 || e->window_len > FEATURE_WINDOW_MAX) {
        snprintf(err, errlen, "window of %u readings: must be 1 to %d", e->window_len,
                 FEATURE_WINDOW_MAX);
        return CANARY_EINVAL;
    }
    return CANARY_OK;
}

/* Raw features: every feature is a metric's latest value. */
static int parse_raw(struct model_entry *e, char *err, size_t errlen)
{
    if (e->n_features > MODEL_MAX_METRICS) {
        snprintf(err, errlen, "%zu features: at most %d metrics", e->n_features, MODEL_MAX_METRICS);
        return CANARY_EINVAL;
    }
    e->n_metrics = e->n_features;
    for (size_t i = 0; i < e->n_features; i++) {
        const char *f = iforest_feature_name(e->forest, i);
        if (!metric_name_valid(f, strlen(f), READING_MAX_METRIC_LEN)) {
            snprintf(err, errlen,
                     "feature '%s' is not a metric name: a raw model scored live must be trained "
                     "on columns named like the readings' metrics (gas_ppm, temperature_c, ...)",
                     f);
            return CANARY_EINVAL;
        }
        snprintf(e->metrics[i], sizeof e->metrics[i], "%s", f);
    }
    return CANARY_OK;
}

static int load_entry(struct model_entry *e, const struct canary_config *cfg,
                      const struct config_model *def, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", def->name);
    e->def = *def;
    char why[512];
    if (iforest_load(&e->forest, def->path, why, sizeof why) != 0) {
        snprintf(err, errlen, "model.%s: %s", def->name, why);
        return CANARY_EINVAL;
    }
    struct stat st;
    if (stat(def->path, &st) == 0) {
        e->file_mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        e->file_bytes = (uint64_t)st.st_size;
    }
    e->n_features = iforest_n_features(e->forest);
    const char *kind = iforest_meta_of(e->forest)->features_kind;
    e->window = strcmp(kind, "window") == 0;
    int rc = e->window ? parse_window(e, why, sizeof why) : parse_raw(e, why, sizeof why);
    if (rc != 0) {
        snprintf(err, errlen, "model.%s (%s): %s", def->name, def->path, why);
        return rc;
    }
    e->threshold = isnan(def->threshold) ? iforest_threshold(e->forest) : def->threshold;
    e->consecutive = def->consecutive ? def->consecutive : cfg->models.consecutive;
    return CANARY_OK;
}

static void free_entries(struct model_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        iforest_free(e[i].forest);
    free(e);
}

int model_set_load(struct model_set **out, const struct canary_config *cfg, uint64_t generation,
                   char *err, size_t errlen)
{
    struct model_set *s = calloc(1, sizeof *s);
    struct model_entry *e = calloc(cfg->n_model_defs ? cfg->n_model_defs : 1, sizeof *e);
    if (s == NULL || e == NULL) {
        free(s);
        free(e);
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_model_defs; i++) {
        int rc = load_entry(&e[i], cfg, &cfg->model_defs[i], err, errlen);
        if (rc != 0) {
            free_entries(e, i + 1);
            free(s);
            return rc;
        }
    }
    atomic_init(&s->refs, 1);
    s->generation = generation;
    s->loaded_ms = clock_wall_ms();
    s->n = cfg->n_model_defs;
    s->entries = e;
    *out = s;
    return CANARY_OK;
}

void model_set_retain(struct model_set *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void model_set_release(struct model_set *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    free_entries(s->entries, s->n);
    free(s);
}

bool model_entry_applies(const struct model_entry *m, const char *device, const char *kind)
{
    if (m->def.kind[0] != '\0' && kind != NULL && strcmp(m->def.kind, kind) == 0)
        return true;
    const char *p = m->def.devices;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end != '\0' && *end != ',')
            end++;
        const char *last = end;
        while (last > p && last[-1] == ' ')
            last--;
        size_t n = (size_t)(last - p);
        if (n > 0 && n < READING_ID_BUF + 32) {
            char pattern[READING_ID_BUF + 32];
            memcpy(pattern, p, n);
            pattern[n] = '\0';
            if (fnmatch(pattern, device, 0) == 0)
                return true;
        }
        p = end;
    }
    return false;
}
