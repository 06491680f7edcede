/* model_set.c — a set of live models built from the configuration: each model file loaded
 * (an Isolation Forest or a gas classifier bundle, told apart by its magic), its features
 * checked to be something canaryd can compute live, and its device binding (models.h). */
#include "models/models.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metric.h"
#include "decide/alert.h"
#include "ml/features.h"
#include "models/model_latest.h"

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

/* The name of a derived value: prefix and the model's name lower-cased, '-' as '_' (a
 * metric name, core/metric.h). */
static void derived_name(char *out, size_t cap, const char *prefix, const char *model)
{
    int n = snprintf(out, cap, "%s%s", prefix, model);
    for (int i = (int)strlen(prefix); i < n && (size_t)i < cap; i++) {
        char c = out[i];
        out[i] = c == '-' ? '_' : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
}

/* The model's class names, for messages: "Mixture, NoGas, ...". */
static void class_list(const struct gas_model *g, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t k = 0; k < gas_n_classes(g) && len < cap; k++) {
        int w = snprintf(out + len, cap - len, "%s%s", k ? ", " : "", gas_class_name(g, k));
        len += w > 0 ? (size_t)w : 0;
    }
}

/* Names each class's stored probability "gas_p_<model>_<class>", the class lower-cased with
 * anything but letters and digits as '_'. Two classes that would share a name, or a name
 * past the metric length, fall back to the class's index for every class
 * ("gas_p_<model>_<k>", in the order GET /api/v1/models lists them). */
static int class_prob_metrics(struct model_entry *e, char *why, size_t whylen)
{
    size_t n = gas_n_classes(e->gas);
    e->class_prob_metric = calloc(n, sizeof *e->class_prob_metric);
    if (e->class_prob_metric == NULL) {
        snprintf(why, whylen, "out of memory");
        return CANARY_ENOMEM;
    }
    char base[READING_METRIC_BUF];
    derived_name(base, sizeof base, "gas_p_", e->def.name);
    bool by_index = false;
    for (size_t k = 0; k < n && !by_index; k++) {
        char *out = e->class_prob_metric[k];
        const char *c = gas_class_name(e->gas, k);
        int w = snprintf(out, READING_METRIC_BUF, "%s_%s", base, c);
        by_index = w < 0 || w > READING_MAX_METRIC_LEN;
        for (size_t i = strlen(base) + 1; out[i] != '\0'; i++) {
            char ch = out[i];
            out[i] = ch >= 'A' && ch <= 'Z'                                 ? (char)(ch - 'A' + 'a')
                     : (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ? ch
                                                                            : '_';
        }
        for (size_t j = 0; j < k && !by_index; j++)
            by_index = strcmp(e->class_prob_metric[j], out) == 0;
    }
    for (size_t k = 0; k < n && by_index; k++) { /* k < GAS_MAX_CLASSES: 2 digits */
        char *out = e->class_prob_metric[k];
        size_t len =
            strlen(base) < READING_MAX_METRIC_LEN - 3 ? strlen(base) : READING_MAX_METRIC_LEN - 3;
        memcpy(out, base, len);
        out[len++] = '_';
        if (k >= 10)
            out[len++] = (char)('0' + k / 10);
        out[len++] = (char)('0' + k % 10);
        out[len] = '\0';
    }
    if (by_index)
        log_info("models.class_metrics_by_index",
                 "model=%s reason=class names clash or are too long once made metric names",
                 e->def.name);
    return CANARY_OK;
}

/* A gas classifier: inputs become metric names, the configured dangerous classes must be
 * the model's, and the keys of Isolation Forests do not apply. */
static int setup_gas(struct model_entry *e, const struct canary_config *cfg, char *why,
                     size_t whylen)
{
    const struct config_model *def = &e->def;
    const struct gas_model *g = e->gas;
    char classes[1024];
    class_list(g, classes, sizeof classes);
    if (!isnan(def->threshold)) {
        snprintf(why, whylen,
                 "threshold applies to Isolation Forest models; a gas model's level is "
                 "model.%s.probability",
                 def->name);
        return CANARY_EINVAL;
    }
    if (gas_n_inputs(g) > MODEL_MAX_METRICS) {
        snprintf(why, whylen, "%zu inputs: at most %d", gas_n_inputs(g), MODEL_MAX_METRICS);
        return CANARY_EINVAL;
    }
    e->n_metrics = gas_n_inputs(g);
    e->n_features = gas_row_len(g);
    for (size_t i = 0; i < e->n_metrics; i++) {
        const char *in = gas_input_name(g, i);
        size_t n = strlen(in);
        char *m = e->metrics[i];
        for (size_t j = 0; j <= n && j < READING_METRIC_BUF; j++)
            m[j] = in[j] >= 'A' && in[j] <= 'Z' ? (char)(in[j] - 'A' + 'a') : in[j];
        if (!metric_name_valid(m, n, READING_MAX_METRIC_LEN)) {
            snprintf(why, whylen,
                     "input '%s' does not name a metric once lower-cased: train on columns "
                     "named like the readings' metrics (MQ2 or mq2, gas_ppm, ...)",
                     in);
            return CANARY_EINVAL;
        }
    }
    if (def->dangerous[0] == '\0') {
        snprintf(why, whylen,
                 "a gas model needs model.%s.dangerous: the classes that raise its alert (the "
                 "model's classes: %s)",
                 def->name, classes);
        return CANARY_EINVAL;
    }
    e->alert_kind = strcmp(def->alert, "fire") == 0 ? ALERT_KIND_FIRE : ALERT_KIND_GAS_LEAK;
    /* "Smoke:fire, Mixture": every named class must be the model's (a typo would silence
     * the alert); a class without its own kind raises the section's. */
    size_t found = 0;
    const char *p = def->dangerous;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end != '\0' && *end != ',')
            end++;
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *last = colon != NULL ? colon : end;
        while (last > p && last[-1] == ' ')
            last--;
        if (last == p) {
            if (colon != NULL) {
                snprintf(why, whylen, "model.%s.dangerous: '%.*s' names no class", def->name,
                         (int)(end - p), p);
                return CANARY_EINVAL;
            }
            p = end;
            continue;
        }
        size_t n = (size_t)(last - p);
        int kind = e->alert_kind;
        if (colon != NULL) { /* gas_leak or fire: checked with the configuration */
            char name[16];
            const char *kp = colon + 1, *ke = end;
            while (kp < ke && *kp == ' ')
                kp++;
            while (ke > kp && ke[-1] == ' ')
                ke--;
            enum alert_kind parsed;
            snprintf(name, sizeof name, "%.*s", (int)(ke - kp), kp);
            if (alert_kind_parse(name, &parsed) != 0 ||
                (parsed != ALERT_KIND_GAS_LEAK && parsed != ALERT_KIND_FIRE)) {
                snprintf(why, whylen, "model.%s.dangerous: '%s' is not gas_leak or fire", def->name,
                         name);
                return CANARY_EINVAL;
            }
            kind = (int)parsed;
        }
        size_t k = 0;
        while (k < gas_n_classes(g) &&
               !(strlen(gas_class_name(g, k)) == n && memcmp(gas_class_name(g, k), p, n) == 0))
            k++;
        if (k == gas_n_classes(g)) {
            snprintf(why, whylen, "dangerous class '%.*s' is not one of the model's classes (%s)",
                     (int)n, p, classes);
            return CANARY_EINVAL;
        }
        found += !e->dangerous[k];
        e->dangerous[k] = true;
        e->class_kind[k] = kind;
        p = end;
    }
    if (found == 0) {
        snprintf(why, whylen, "model.%s.dangerous names no class (the model's classes: %s)",
                 def->name, classes);
        return CANARY_EINVAL;
    }
    e->probability = isnan(def->probability) ? MODEL_GAS_DEFAULT_PROBABILITY : def->probability;
    e->threshold = e->probability;
    e->consecutive = def->consecutive ? def->consecutive : cfg->models.consecutive;
    const struct gas_params *gp = gas_model_params(g);
    e->window = gp->window > 0;
    e->window_len = gp->window;
    derived_name(e->class_metric, sizeof e->class_metric, "gas_class_", def->name);
    derived_name(e->prob_metric, sizeof e->prob_metric, "gas_prob_", def->name);
    e->all_probabilities = !def->best_probability_only;
    int rc = class_prob_metrics(e, why, whylen);
    if (rc != CANARY_OK)
        return rc;
    e->latest = model_latest_new(gas_n_classes(g));
    if (e->latest == NULL) {
        snprintf(why, whylen, "out of memory");
        return CANARY_ENOMEM;
    }
    return CANARY_OK;
}

/* Does the file start with the gas bundle's magic? (Anything else is read as an Isolation
 * Forest, whose loader says what is wrong with it.) */
static bool is_gas_file(const char *path)
{
    char magic[8];
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    bool gas =
        fread(magic, 1, sizeof magic, f) == sizeof magic && memcmp(magic, "CANARYGS", 8) == 0;
    fclose(f);
    return gas;
}

static int load_entry(struct model_entry *e, const struct canary_config *cfg,
                      const struct config_model *def, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", def->name);
    e->def = *def;
    char why[1536];
    if (is_gas_file(def->path)) {
        e->type = MODEL_GAS;
        if (gas_load(def->path, &e->gas, why, sizeof why) != 0) {
            snprintf(err, errlen, "model.%s: %s", def->name, why);
            return CANARY_EINVAL;
        }
        struct stat st;
        if (stat(def->path, &st) == 0) {
            e->file_mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
            e->file_bytes = (uint64_t)st.st_size;
        }
        int rc = setup_gas(e, cfg, why, sizeof why);
        if (rc != 0)
            snprintf(err, errlen, "model.%s (%s): %s", def->name, def->path, why);
        return rc;
    }
    if (def->dangerous[0] || !isnan(def->probability) || def->alert[0]) {
        snprintf(err, errlen,
                 "model.%s (%s): dangerous, probability and alert apply to gas classifier "
                 "models, and this file is not one",
                 def->name, def->path);
        return CANARY_EINVAL;
    }
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
    for (size_t i = 0; i < n; i++) {
        iforest_free(e[i].forest);
        gas_free(e[i].gas);
        model_latest_free(e[i].latest);
        free(e[i].class_prob_metric);
    }
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
