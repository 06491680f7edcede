/* config_models.c — the [model.<name>] sections of the configuration: which model files
 * canaryd scores live, and for which devices (config.h, docs/MODELS.md).
 *
 *   [model.boiler-room]
 *   path = /var/lib/canary/models/boiler.cif
 *   devices = site-a-*, kitchen-1      (ids or globs; or:)
 *   kind = boiler                      (devices registered with this kind)
 *   consecutive = 5                    (default models.consecutive)
 *   threshold = 0.62                   (default: the model's own)
 *
 *   [model.kitchen-gas]                (a gas classifier bundle, docs/GAS.md)
 *   path = /var/lib/canary/models/kitchen.cgas
 *   devices = kitchen-*
 *   dangerous = Smoke:fire, Mixture    (the classes that raise an alert, each with its
 *                                       kind or the section's)
 *   probability = 0.9                  (default 0.9)
 *   alert = gas_leak                   (gas_leak, the default, or fire)
 *   probabilities = all                (all, the default, or best: what is stored)
 *
 * Parsing and checking only: the files are read by models/ when canaryd starts or
 * reloads. */
#include "core/config.h"

#include "core/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct config_model *find_or_add(struct canary_config *cfg, const char *name, size_t n)
{
    for (size_t i = 0; i < cfg->n_model_defs; i++) {
        if (strlen(cfg->model_defs[i].name) == n && memcmp(cfg->model_defs[i].name, name, n) == 0)
            return &cfg->model_defs[i];
    }
    if (cfg->n_model_defs >= CONFIG_MODELS_MAX)
        return NULL;
    struct config_model *grown = realloc(cfg->model_defs, (cfg->n_model_defs + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    cfg->model_defs = grown;
    struct config_model *m = &cfg->model_defs[cfg->n_model_defs++];
    memset(m, 0, sizeof *m);
    memcpy(m->name, name, n);
    m->name[n] = '\0';
    m->threshold = NAN;
    m->probability = NAN;
    return m;
}

/* Each item of a dangerous list is "Class" or "Class:kind" with kind gas_leak or fire (the
 * class names are checked against the model's when it is loaded). */
static int check_dangerous(const char *key, const char *value, char *err, size_t errlen)
{
    const char *p = value;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        if (colon != NULL) {
            const char *kind = colon + 1;
            size_t kn = n - (size_t)(kind - p);
            while (kn > 0 && *kind == ' ')
                kind++, kn--;
            while (kn > 0 && kind[kn - 1] == ' ')
                kn--;
            bool known = (kn == 8 && memcmp(kind, "gas_leak", 8) == 0) ||
                         (kn == 4 && memcmp(kind, "fire", 4) == 0);
            if (!known) {
                canary_errf(err, errlen,
                            "%s: '%.*s' is not an alert kind a gas model raises (gas_leak or "
                            "fire), in '%.*s'",
                            key, (int)kn, kind, (int)n, p);
                return CANARY_EINVAL;
            }
        }
        p += n + (end != NULL);
    }
    return CANARY_OK;
}

int config_set_model(struct canary_config *cfg, const char *key, const char *value, char *err,
                     size_t errlen)
{
    const char *name = key + 6; /* "model." */
    const char *dot = strrchr(name, '.');
    if (dot == NULL || !config_name_valid(name, (size_t)(dot - name), CONFIG_MODEL_NAME_MAX)) {
        canary_errf(
            err, errlen,
            "%s: expected model.<name>.<field>, the name made of letters, digits, '-' and '_' "
            "(at most %d)",
            key, CONFIG_MODEL_NAME_MAX - 1);
        return CANARY_EINVAL;
    }
    const char *field = dot + 1;
    struct config_model *m = find_or_add(cfg, name, (size_t)(dot - name));
    if (m == NULL) {
        canary_errf(err, errlen, "%s: at most %d models", key, CONFIG_MODELS_MAX);
        return CANARY_ELIMIT;
    }
    if (strcmp(field, "path") == 0) {
        if (value[0] == '\0' || !config_copy_text(m->path, sizeof m->path, value)) {
            canary_errf(err, errlen, "%s: a file path of 1 to %d bytes", key, CONFIG_PATH_MAX - 1);
            return CANARY_EINVAL;
        }
    } else if (strcmp(field, "devices") == 0) {
        if (!config_copy_text(m->devices, sizeof m->devices, value)) {
            canary_errf(err, errlen, "%s: longer than %d bytes", key, CONFIG_STR_MAX - 1);
            return CANARY_EINVAL;
        }
    } else if (strcmp(field, "kind") == 0) {
        if (!config_copy_text(m->kind, sizeof m->kind, value)) {
            canary_errf(err, errlen, "%s: longer than %zu bytes", key, sizeof m->kind - 1);
            return CANARY_EINVAL;
        }
    } else if (strcmp(field, "consecutive") == 0) {
        char *end;
        unsigned long v = strtoul(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || v < 1 || v > 1000) {
            canary_errf(err, errlen, "%s: '%s' is not a whole number from 1 to 1000", key, value);
            return CANARY_EINVAL;
        }
        m->consecutive = (unsigned)v;
    } else if (strcmp(field, "threshold") == 0) {
        char *end;
        double v = strtod(value, &end);
        if (value[0] == '\0' || *end != '\0' || !(v > 0 && v < 1)) {
            canary_errf(err, errlen, "%s: '%s' is not a score between 0 and 1 (exclusive)", key,
                        value);
            return CANARY_EINVAL;
        }
        m->threshold = v;
    } else if (strcmp(field, "dangerous") == 0) {
        int rc = check_dangerous(key, value, err, errlen);
        if (rc != CANARY_OK)
            return rc; /* refused: the key keeps its value */
        if (!config_copy_text(m->dangerous, sizeof m->dangerous, value)) {
            canary_errf(err, errlen, "%s: longer than %d bytes", key, CONFIG_STR_MAX - 1);
            return CANARY_EINVAL;
        }
    } else if (strcmp(field, "probability") == 0) {
        char *end;
        double v = strtod(value, &end);
        if (value[0] == '\0' || *end != '\0' || !(v > 0 && v <= 1)) {
            canary_errf(err, errlen, "%s: '%s' is not a probability above 0 and at most 1", key,
                        value);
            return CANARY_EINVAL;
        }
        m->probability = v;
    } else if (strcmp(field, "alert") == 0) {
        if (strcmp(value, "gas_leak") != 0 && strcmp(value, "fire") != 0) {
            canary_errf(err, errlen,
                        "%s: '%s' is not an alert kind a gas model raises (gas_leak "
                        "or fire)",
                        key, value);
            return CANARY_EINVAL;
        }
        snprintf(m->alert, sizeof m->alert, "%s", value);
    } else if (strcmp(field, "probabilities") == 0) {
        if (strcmp(value, "all") != 0 && strcmp(value, "best") != 0) {
            canary_errf(err, errlen,
                        "%s: '%s' is not what a gas model stores per reading (all: every "
                        "class's probability; best: the most probable class's only)",
                        key, value);
            return CANARY_EINVAL;
        }
        m->best_probability_only = strcmp(value, "best") == 0;
    } else {
        canary_errf(err, errlen,
                    "%s: unknown field '%s' (known: path, devices, kind, consecutive, threshold, "
                    "dangerous, probability, alert, probabilities)",
                    key, field);
        return CANARY_EINVAL;
    }
    return CANARY_OK;
}

int config_validate_models(const struct canary_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_model_defs; i++) {
        const struct config_model *m = &cfg->model_defs[i];
        if (m->path[0] == '\0') {
            canary_errf(err, errlen,
                        "model.%s: no path (model.%s.path = FILE made by canary train)", m->name,
                        m->name);
            return CANARY_EINVAL;
        }
        if (m->devices[0] == '\0' && m->kind[0] == '\0') {
            canary_errf(
                err, errlen,
                "model.%s: applies to no device: set model.%s.devices (ids or globs, \"*\" for "
                "all) or model.%s.kind",
                m->name, m->name, m->name);
            return CANARY_EINVAL;
        }
    }
    return CANARY_OK;
}

void config_write_models(const struct canary_config *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->n_model_defs; i++) {
        const struct config_model *m = &cfg->model_defs[i];
        fprintf(out, "\n[model.%s]\npath = %s\n", m->name, m->path);
        if (m->devices[0])
            fprintf(out, "devices = %s\n", m->devices);
        if (m->kind[0])
            fprintf(out, "kind = %s\n", m->kind);
        if (m->consecutive)
            fprintf(out, "consecutive = %u\n", m->consecutive);
        if (!isnan(m->threshold))
            fprintf(out, "threshold = %.17g\n", m->threshold);
        if (m->dangerous[0])
            fprintf(out, "dangerous = %s\n", m->dangerous);
        if (!isnan(m->probability))
            fprintf(out, "probability = %.17g\n", m->probability);
        if (m->alert[0])
            fprintf(out, "alert = %s\n", m->alert);
        if (m->best_probability_only)
            fprintf(out, "probabilities = best\n");
    }
}

void config_free_models(struct canary_config *cfg)
{
    free(cfg->model_defs);
    cfg->model_defs = NULL;
    cfg->n_model_defs = 0;
}
