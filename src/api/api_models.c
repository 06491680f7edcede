/* api_models.c — the models canaryd scores live (docs/MODELS.md, docs/GAS.md):
 *   GET  /api/v1/models          every configured model: file, features, parameters,
 *                                threshold, training data, evaluation figures, the devices
 *                                it applies to, live counters, and the last reload
 *   POST /api/v1/models/reload   re-reads the configuration's [model.*] sections and the
 *                                model files, and swaps them in (admin token when set);
 *                                on any error nothing changes and the answer says why */
#include "api/api.h"

#include "decide/alert.h"
#include "models/models.h"

#include <math.h>
#include <stdio.h>

static void add_time(cJSON *o, const char *name, int64_t ms)
{
    if (ms > 0)
        cJSON_AddNumberToObject(o, name, (double)ms);
    else
        cJSON_AddNullToObject(o, name);
}

static void add_live(cJSON *o, const struct model_entry *e)
{
    cJSON *live = cJSON_AddObjectToObject(o, "live");
    cJSON_AddNumberToObject(live, "devices", (double)atomic_load(&e->devices));
    cJSON_AddNumberToObject(live, "readings_scored", (double)atomic_load(&e->scored));
    cJSON_AddNumberToObject(live, "readings_above_threshold", (double)atomic_load(&e->above));
}

static cJSON *names_json(cJSON *o, const char *key, const struct gas_model *g, bool classes)
{
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    size_t n = classes ? gas_n_classes(g) : gas_n_inputs(g);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(
            arr, cJSON_CreateString(classes ? gas_class_name(g, i) : gas_input_name(g, i)));
    return arr;
}

/* A gas classifier: its classes, what raises its alert, training and held-out figures. */
static cJSON *gas_entry_json(const struct model_entry *e)
{
    const struct gas_model *g = e->gas;
    const struct gas_params *p = gas_model_params(g);
    const struct gas_meta *m = gas_model_meta(g);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", e->name);
    cJSON_AddStringToObject(o, "type", "gas");
    cJSON_AddStringToObject(o, "path", e->def.path);
    cJSON_AddNumberToObject(o, "file_bytes", (double)e->file_bytes);
    add_time(o, "file_modified_ms", e->file_mtime_ms);
    cJSON *applies = cJSON_AddObjectToObject(o, "applies_to");
    cJSON_AddStringToObject(applies, "devices", e->def.devices);
    cJSON_AddStringToObject(applies, "kind", e->def.kind);
    names_json(o, "inputs", g, false);
    cJSON *metrics = cJSON_AddArrayToObject(o, "metrics");
    for (size_t i = 0; i < e->n_metrics; i++)
        cJSON_AddItemToArray(metrics, cJSON_CreateString(e->metrics[i]));
    names_json(o, "classes", g, true);
    cJSON *danger = cJSON_AddArrayToObject(o, "dangerous");
    cJSON *raises = cJSON_CreateObject(); /* class -> the alert kind it raises */
    for (size_t k = 0; k < gas_n_classes(g); k++) {
        if (!e->dangerous[k])
            continue;
        cJSON_AddItemToArray(danger, cJSON_CreateString(gas_class_name(g, k)));
        cJSON_AddStringToObject(raises, gas_class_name(g, k),
                                alert_kind_name((enum alert_kind)e->class_kind[k]));
    }
    cJSON_AddNumberToObject(o, "probability", e->probability);
    cJSON_AddNumberToObject(o, "consecutive", e->consecutive);
    cJSON_AddStringToObject(o, "alert_kind", alert_kind_name((enum alert_kind)e->alert_kind));
    cJSON_AddItemToObject(o, "alert_kinds", raises);
    cJSON *stored = cJSON_AddObjectToObject(o, "stored_as");
    cJSON_AddStringToObject(stored, "class", e->class_metric);
    cJSON_AddStringToObject(stored, "probability", e->prob_metric);
    if (e->all_probabilities) {
        cJSON *each = cJSON_AddObjectToObject(stored, "probabilities");
        for (size_t k = 0; k < gas_n_classes(g); k++)
            cJSON_AddStringToObject(each, gas_class_name(g, k), e->class_prob_metric[k]);
    }
    cJSON_AddStringToObject(o, "features_kind", gas_features_name(p->features));
    cJSON_AddNumberToObject(o, "window", p->window);
    cJSON_AddStringToObject(o, "window_features",
                            p->window ? gas_window_stats_name(p->window_stats) : "none");
    cJSON *params = cJSON_AddObjectToObject(o, "parameters");
    cJSON_AddNumberToObject(params, "rf_trees", p->rf_trees);
    cJSON_AddNumberToObject(params, "gbt_rounds", p->gbt_rounds);
    cJSON_AddNumberToObject(params, "folds", p->folds);
    cJSON_AddNumberToObject(params, "seed", (double)p->seed);
    cJSON *train = cJSON_AddObjectToObject(o, "training");
    cJSON_AddStringToObject(train, "source", m->source);
    cJSON_AddNumberToObject(train, "rows", (double)m->n_rows);
    add_time(train, "created_ms", m->created_ms);
    cJSON_AddNumberToObject(train, "fit_s", m->fit_s);
    cJSON *oof = cJSON_AddObjectToObject(train, "out_of_fold_accuracy");
    for (int l = 0; l < GAS_N_LEARNERS; l++)
        api_add_number(oof, gas_learner_name((enum gas_learner)l), m->oof_accuracy[l]);
    if (m->eval_rows > 0) {
        cJSON *ev = cJSON_AddObjectToObject(o, "evaluation");
        cJSON_AddStringToObject(ev, "split", m->eval_split);
        cJSON_AddNumberToObject(ev, "rows", (double)m->eval_rows);
        api_add_number(ev, "accuracy", m->eval_accuracy);
        api_add_number(ev, "macro_f1", m->eval_macro_f1);
    } else {
        cJSON_AddNullToObject(o, "evaluation");
    }
    add_live(o, e);
    return o;
}

static cJSON *entry_json(const struct model_entry *e)
{
    if (e->type == MODEL_GAS)
        return gas_entry_json(e);
    const struct iforest_params *p = iforest_params_of(e->forest);
    const struct iforest_meta *m = iforest_meta_of(e->forest);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", e->name);
    cJSON_AddStringToObject(o, "type", "iforest");
    cJSON_AddStringToObject(o, "path", e->def.path);
    cJSON_AddNumberToObject(o, "file_bytes", (double)e->file_bytes);
    add_time(o, "file_modified_ms", e->file_mtime_ms);
    cJSON *applies = cJSON_AddObjectToObject(o, "applies_to");
    cJSON_AddStringToObject(applies, "devices", e->def.devices);
    cJSON_AddStringToObject(applies, "kind", e->def.kind);
    cJSON_AddStringToObject(o, "features_kind", e->window ? "window" : "raw");
    if (e->window)
        cJSON_AddNumberToObject(o, "window", e->window_len);
    cJSON *metrics = cJSON_AddArrayToObject(o, "metrics");
    for (size_t i = 0; i < e->n_metrics; i++)
        cJSON_AddItemToArray(metrics, cJSON_CreateString(e->metrics[i]));
    cJSON *features = cJSON_AddArrayToObject(o, "features");
    for (size_t i = 0; i < e->n_features; i++)
        cJSON_AddItemToArray(features, cJSON_CreateString(iforest_feature_name(e->forest, i)));
    cJSON *params = cJSON_AddObjectToObject(o, "parameters");
    cJSON_AddNumberToObject(params, "trees", p->n_trees);
    cJSON_AddNumberToObject(params, "subsample", p->subsample);
    cJSON_AddNumberToObject(params, "max_depth", p->max_depth);
    cJSON_AddNumberToObject(params, "seed", (double)p->seed);
    cJSON_AddNumberToObject(params, "contamination", p->contamination);
    cJSON_AddNumberToObject(o, "threshold", e->threshold);
    cJSON_AddNumberToObject(o, "model_threshold", iforest_threshold(e->forest));
    cJSON_AddNumberToObject(o, "consecutive", e->consecutive);
    cJSON *train = cJSON_AddObjectToObject(o, "training");
    cJSON_AddStringToObject(train, "source", m->source);
    cJSON_AddNumberToObject(train, "rows", (double)m->train_rows);
    add_time(train, "data_from_ms", m->data_from_ms);
    add_time(train, "data_to_ms", m->data_to_ms);
    add_time(train, "created_ms", m->created_ms);
    if (!isnan(m->eval_roc_auc) || !isnan(m->eval_pr_auc)) {
        cJSON *ev = cJSON_AddObjectToObject(o, "evaluation");
        api_add_number(ev, "roc_auc", m->eval_roc_auc);
        api_add_number(ev, "pr_auc", m->eval_pr_auc);
        cJSON_AddNumberToObject(ev, "rows", (double)m->eval_rows);
        cJSON_AddStringToObject(ev, "source", m->eval_source);
    } else {
        cJSON_AddNullToObject(o, "evaluation");
    }
    add_live(o, e);
    return o;
}

static cJSON *models_json(struct models *models)
{
    struct model_set *set = models_acquire(models);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "models");
    for (size_t i = 0; i < set->n; i++)
        cJSON_AddItemToArray(arr, entry_json(&set->entries[i]));
    cJSON_AddNumberToObject(o, "generation", (double)set->generation);
    add_time(o, "loaded_ms", set->loaded_ms);
    model_set_release(set);
    struct models_status st;
    models_status(models, &st);
    cJSON *r = cJSON_AddObjectToObject(o, "reloads");
    cJSON_AddNumberToObject(r, "total", (double)st.reloads);
    cJSON_AddNumberToObject(r, "failed", (double)st.reload_failures);
    add_time(r, "last_ms", st.last_reload_ms);
    if (st.last_error[0])
        cJSON_AddStringToObject(r, "last_error", st.last_error);
    else
        cJSON_AddNullToObject(r, "last_error");
    return o;
}

enum MHD_Result api_models_list(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    return api_respond_json(req, 200, models_json(pipeline_models(req->api->pipeline)), NULL);
}

enum MHD_Result api_models_reload(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params) || !api_authorized(req))
        return MHD_YES;
    struct models *models = pipeline_models(req->api->pipeline);
    char err[1024];
    if (models_reload(models, err, sizeof err) != 0)
        return api_respond_error(req, 422, "reload_failed", "models",
                                 "%s (the models in use are unchanged)", err);
    return api_respond_json(req, 200, models_json(models), NULL);
}
