/* gas_model.c — the gas classifier's model object: allocation, freeing and the accessors
 * of gas.h (names, meta, parameters, the boosters' JSON). Nothing here can fail but
 * allocation. */
#include "ml/gas_internal.h"

#include <stdlib.h>
#include <string.h>

void gas_params_default(struct gas_params *p)
{
    memset(p, 0, sizeof *p);
    p->features = GAS_FEATURES_LOGRATIO;
    p->window = 24;
    p->window_stats = GAS_WINDOW_MEAN;
    p->seed = 1;
    p->folds = 5;
    p->rf_trees = 50;
    p->rf_depth = 6;
    p->rf_subsample = 0.63;
    p->rf_colsample = 0.6;
    p->gbt_rounds = 100;
    p->gbt_depth = 6;
    p->gbt_eta = 0.3;
    p->lr_rounds = 200;
    p->lr_lambda = 0.01;
    p->meta_c = 1.0;
    p->threads = 0;
}

struct gas_model *gas__alloc(size_t n_inputs, size_t n_classes, enum gas_features f,
                             uint32_t window, uint32_t stats)
{
    struct gas_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->n_inputs = n_inputs;
    m->n_classes = n_classes;
    m->n_features = gas__n_features(f, n_inputs, window, stats);
    m->params.features = f;
    m->params.window = window;
    m->params.window_stats = stats;
    m->input_names = calloc(n_inputs, sizeof *m->input_names);
    m->class_names = calloc(n_classes, sizeof *m->class_names);
    m->mean = calloc(m->n_features, sizeof *m->mean);
    m->inv_sd = calloc(m->n_features, sizeof *m->inv_sd);
    m->meta_w = calloc(n_classes * (GAS_N_BASE * n_classes + 1), sizeof *m->meta_w);
    if (!m->input_names || !m->class_names || !m->mean || !m->inv_sd || !m->meta_w) {
        gas_free(m);
        return NULL;
    }
    return m;
}

void gas_free(struct gas_model *m)
{
    if (!m)
        return;
    for (int l = 0; l < GAS_N_BASE; l++) {
        free(m->json[l]);
        free(m->forest[l].start);
        free(m->forest[l].group);
        free(m->forest[l].nodes);
    }
    free(m->lin_w);
    free(m->input_names);
    free(m->class_names);
    free(m->mean);
    free(m->inv_sd);
    free(m->meta_w);
    free(m);
}

size_t gas_n_inputs(const struct gas_model *m)
{
    return m->n_inputs;
}

const char *gas_input_name(const struct gas_model *m, size_t i)
{
    return i < m->n_inputs ? m->input_names[i] : NULL;
}

size_t gas_row_len(const struct gas_model *m)
{
    return gas_row_len_for(m->n_inputs, m->params.window, m->params.window_stats);
}

size_t gas_n_classes(const struct gas_model *m)
{
    return m->n_classes;
}

const char *gas_class_name(const struct gas_model *m, size_t k)
{
    return k < m->n_classes ? m->class_names[k] : NULL;
}

const struct gas_meta *gas_model_meta(const struct gas_model *m)
{
    return &m->meta;
}

struct gas_meta *gas_model_meta_edit(struct gas_model *m)
{
    return &m->meta;
}

const struct gas_params *gas_model_params(const struct gas_model *m)
{
    return &m->params;
}

const char *gas_learner_name(enum gas_learner l)
{
    static const char *const names[] = {"random_forest", "logistic_regression", "gradient_boosting",
                                        "stack"};
    return (unsigned)l < GAS_N_LEARNERS ? names[l] : "?";
}

const char *gas_features_name(enum gas_features f)
{
    static const char *const names[] = {"raw", "logratio", "raw+logratio"};
    return (unsigned)f <= GAS_FEATURES_BOTH ? names[f] : "?";
}

bool gas_window_stats_parse(const char *s, uint32_t *out)
{
    static const struct {
        const char *text;
        uint32_t stats;
    } forms[] = {{"mean", GAS_WINDOW_MEAN},
                 {"slope", GAS_WINDOW_SLOPE},
                 {"mean,slope", GAS_WINDOW_ALL},
                 {"slope,mean", GAS_WINDOW_ALL}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        if (!strcmp(s, forms[i].text)) {
            *out = forms[i].stats;
            return true;
        }
    }
    return false;
}

const char *gas_window_stats_name(uint32_t stats)
{
    switch (stats & GAS_WINDOW_ALL) {
    case GAS_WINDOW_MEAN:
        return "mean";
    case GAS_WINDOW_SLOPE:
        return "slope";
    case GAS_WINDOW_ALL:
        return "mean,slope";
    default:
        return "none";
    }
}

void gas_booster_json(const struct gas_model *m, enum gas_learner which, const char **json,
                      size_t *len)
{
    bool ok = (unsigned)which < GAS_N_BASE;
    *json = ok ? m->json[which] : NULL;
    *len = ok ? m->json_len[which] : 0;
}
