/* api_readings.c — readings over HTTP:
 *   GET /api/v1/devices/<id>/readings?metric=&from=&to=&limit=&order=asc|desc
 *       raw readings in a time range (default: the last hour, newest first, 1000 at most);
 *       with &points=N (and a metric): N buckets with count/min/max/avg for a chart, and
 *       the metric's alert limits to draw
 *   GET /api/v1/devices/<id>/latest    the newest value of each metric of a device, and
 *                                      each gas classifier's newest class probabilities
 *   GET /api/v1/latest                 the same for every device
 *   GET /api/v1/maxima, /api/v1/devices/<id>/maxima
 *                                      the highest and lowest values recorded per metric */
#include "api/api.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/metric.h"
#include "models/model_latest.h"
#include "models/models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RAW_LIMIT 10000
#define MAX_POINTS    10000

static bool device_known(struct request *req, struct store *s, const char *id)
{
    struct store_device d;
    char err[512];
    int rc = store_device_get(s, id, &d, err, sizeof err);
    if (rc == 0)
        return true;
    if (rc == CANARY_ENOTFOUND)
        api_respond_error(req, 404, "not_found", "device", "no device '%s'", id);
    else
        api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    return false;
}

static cJSON *limits_json(const struct canary_config *cfg, const char *device, const char *metric)
{
    struct metric_limits l;
    config_metric_limits(cfg, device, metric, &l);
    cJSON *o = cJSON_CreateObject();
    api_add_number(o, "warn_high", l.warn_high);
    api_add_number(o, "crit_high", l.crit_high);
    api_add_number(o, "warn_low", l.warn_low);
    api_add_number(o, "crit_low", l.crit_low);
    return o;
}

static enum MHD_Result downsampled(struct request *req, struct store *s, const char *device,
                                   const char *metric, int64_t from, int64_t to, size_t points)
{
    struct store_bucket *b = calloc(points, sizeof *b);
    if (b == NULL) {
        api_reader_release(req, s);
        return api_respond_error(req, 503, "overloaded", NULL, "out of memory");
    }
    char err[512];
    int rc = store_downsample(s, device, metric, from, to, b, points, err, sizeof err);
    api_reader_release(req, s);
    if (rc != 0) {
        free(b);
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "device", device);
    cJSON_AddStringToObject(root, "metric", metric);
    cJSON_AddStringToObject(root, "unit", metric_info_or_generic(metric)->unit);
    cJSON_AddNumberToObject(root, "from_ms", (double)from);
    cJSON_AddNumberToObject(root, "to_ms", (double)to);
    cJSON_AddItemToObject(root, "limits", limits_json(req->api->cfg, device, metric));
    cJSON *arr = cJSON_AddArrayToObject(root, "points");
    for (size_t i = 0; i < points; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "from_ms", (double)b[i].from_ms);
        cJSON_AddNumberToObject(p, "to_ms", (double)b[i].to_ms);
        cJSON_AddNumberToObject(p, "count", b[i].count);
        if (b[i].count > 0) {
            cJSON_AddNumberToObject(p, "min", b[i].min);
            cJSON_AddNumberToObject(p, "max", b[i].max);
            cJSON_AddNumberToObject(p, "avg", b[i].sum / b[i].count);
        } else {
            cJSON_AddNullToObject(p, "min");
            cJSON_AddNullToObject(p, "max");
            cJSON_AddNullToObject(p, "avg");
        }
        cJSON_AddNumberToObject(p, "anomalies", b[i].anomalies);
        cJSON_AddItemToObject(p, "flags", api_flags_json(b[i].flags));
        cJSON_AddItemToArray(arr, p);
    }
    free(b);
    return api_respond_json(req, 200, root, NULL);
}

static cJSON *value_json(const struct store_value *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "value", v->value);
    cJSON_AddNumberToObject(o, "score", round((double)v->score * 10000) / 10000);
    cJSON_AddItemToObject(o, "flags", api_flags_json(v->flags));
    return o;
}

enum MHD_Result api_device_readings(struct request *req)
{
    static const char *const params[] = {"metric", "from", "to", "limit", "order", "points", NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    const char *device = api_device_segment(req);
    if (device == NULL)
        return MHD_YES;
    int64_t now = clock_wall_ms();
    int64_t to = now, from = INT64_MIN;
    uint64_t limit = 1000, points = 0;
    if (!api_query_time(req, "to", now, &to) || !api_query_time(req, "from", now, &from) ||
        !api_query_uint(req, "limit", 1, MAX_RAW_LIMIT, &limit) ||
        !api_query_uint(req, "points", 1, MAX_POINTS, &points))
        return MHD_YES;
    if (from == INT64_MIN)
        from = to - 3600000;
    if (from > to)
        return api_respond_error(req, 400, "bad_query", "from", "must not be after 'to'");
    const char *metric = api_query(req, "metric");
    if (metric != NULL && !metric_name_valid(metric, strlen(metric), READING_MAX_METRIC_LEN))
        return api_respond_error(req, 400, "bad_query", "metric", "not a valid metric name");
    const char *order = api_query(req, "order");
    if (order != NULL && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)
        return api_respond_error(req, 400, "bad_query", "order", "must be asc or desc");
    if (points > 0 && metric == NULL)
        return api_respond_error(req, 400, "bad_query", "metric",
                                 "downsampling (points) needs a metric");
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    if (!device_known(req, s, device)) {
        api_reader_release(req, s);
        return MHD_YES;
    }
    if (points > 0)
        return downsampled(req, s, device, metric, from, to, points);
    bool desc = order == NULL || strcmp(order, "desc") == 0;
    struct store_readings_query q = {device, metric, from, to, limit, desc};
    struct store_readings_result res;
    char err[512];
    int rc = store_readings(s, &q, &res, err, sizeof err);
    api_reader_release(req, s);
    if (rc != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "device", device);
    cJSON_AddNumberToObject(root, "from_ms", (double)from);
    cJSON_AddNumberToObject(root, "to_ms", (double)to);
    cJSON_AddStringToObject(root, "order", desc ? "desc" : "asc");
    cJSON *arr = cJSON_AddArrayToObject(root, "readings");
    for (size_t i = 0; i < res.n; i++) {
        const struct store_reading *r = &res.rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "ts_ms", (double)r->ts_ms);
        cJSON_AddNumberToObject(o, "recv_ms", (double)r->recv_ms);
        if (r->has_seq)
            cJSON_AddNumberToObject(o, "seq", (double)r->seq);
        else
            cJSON_AddNullToObject(o, "seq");
        cJSON *vals = cJSON_AddObjectToObject(o, "values");
        for (uint32_t k = 0; k < r->n_values; k++)
            cJSON_AddItemToObject(vals, r->values[k].metric, value_json(&r->values[k]));
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddBoolToObject(root, "more", res.more);
    if (res.more && res.n > 0)
        cJSON_AddNumberToObject(root, "next_ts_ms", (double)res.rows[res.n - 1].ts_ms);
    else
        cJSON_AddNullToObject(root, "next_ts_ms");
    store_readings_free(&res);
    return api_respond_json(req, 200, root, NULL);
}

/* Groups series summaries by device into {"device": id, "metrics": {...}} objects. */
struct latest_ctx {
    cJSON *devices; /* array */
    cJSON *current; /* the object of the device being filled */
    char device[READING_ID_BUF];
    bool maxima;
};

static void on_series(void *arg, const struct store_series *ser)
{
    struct latest_ctx *c = arg;
    const char *unit = metric_info_or_generic(ser->metric)->unit;
    if (c->maxima) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", ser->device);
        cJSON_AddStringToObject(o, "metric", ser->metric);
        cJSON_AddStringToObject(o, "unit", unit);
        cJSON_AddNumberToObject(o, "max", ser->max_value);
        cJSON_AddNumberToObject(o, "max_ts_ms", (double)ser->max_ts_ms);
        cJSON_AddNumberToObject(o, "min", ser->min_value);
        cJSON_AddNumberToObject(o, "min_ts_ms", (double)ser->min_ts_ms);
        cJSON_AddNumberToObject(o, "count", (double)ser->count);
        cJSON_AddItemToArray(c->devices, o);
        return;
    }
    if (c->current == NULL || strcmp(c->device, ser->device) != 0) {
        c->current = cJSON_CreateObject();
        cJSON_AddStringToObject(c->current, "device", ser->device);
        cJSON_AddObjectToObject(c->current, "metrics");
        cJSON_AddItemToArray(c->devices, c->current);
        snprintf(c->device, sizeof c->device, "%s", ser->device);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "value", ser->last_value);
    cJSON_AddStringToObject(o, "unit", unit);
    cJSON_AddNumberToObject(o, "ts_ms", (double)ser->last_ts_ms);
    cJSON_AddNumberToObject(o, "score", round((double)ser->last_score * 10000) / 10000);
    cJSON_AddItemToObject(o, "flags", api_flags_json(ser->last_flags));
    cJSON_AddItemToObject(cJSON_GetObjectItem(c->current, "metrics"), ser->metric, o);
}

/* {"<model>": {"type": "gas", "ts_ms", "class", "probability", "probabilities": {class: p}}}
 * for each gas classifier that has classified a reading of the device since it was loaded
 * (model_latest.h: kept in memory; the stored values hold only the winning class). */
static cJSON *predictions_json(const struct model_set *set, const char *device)
{
    cJSON *o = cJSON_CreateObject();
    double proba[GAS_MAX_CLASSES];
    for (size_t i = 0; set != NULL && i < set->n; i++) {
        const struct model_entry *e = &set->entries[i];
        int64_t ts;
        if (e->type != MODEL_GAS || e->latest == NULL ||
            !model_latest_get(e->latest, device, &ts, proba))
            continue;
        size_t best = 0, K = gas_n_classes(e->gas);
        cJSON *m = cJSON_AddObjectToObject(o, e->name);
        cJSON_AddStringToObject(m, "type", "gas");
        cJSON_AddNumberToObject(m, "ts_ms", (double)ts);
        cJSON *all = cJSON_CreateObject();
        for (size_t k = 0; k < K; k++) {
            best = proba[k] > proba[best] ? k : best;
            cJSON_AddNumberToObject(all, gas_class_name(e->gas, k), round(proba[k] * 1e6) / 1e6);
        }
        cJSON_AddStringToObject(m, "class", gas_class_name(e->gas, best));
        cJSON_AddNumberToObject(m, "probability", round(proba[best] * 1e6) / 1e6);
        cJSON_AddItemToObject(m, "probabilities", all);
    }
    return o;
}

static enum MHD_Result series_answer(struct request *req, const char *device, bool maxima)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    if (device != NULL && !device_known(req, s, device)) {
        api_reader_release(req, s);
        return MHD_YES;
    }
    struct latest_ctx c = {cJSON_CreateArray(), NULL, "", maxima};
    char err[512];
    int rc = store_series_list(s, device, on_series, &c, err, sizeof err);
    api_reader_release(req, s);
    if (rc != 0) {
        cJSON_Delete(c.devices);
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    }
    if (device != NULL && !maxima) {
        cJSON *one = cJSON_GetArrayItem(c.devices, 0);
        cJSON *root = one != NULL ? cJSON_DetachItemFromArray(c.devices, 0) : cJSON_CreateObject();
        if (one == NULL) {
            cJSON_AddStringToObject(root, "device", device);
            cJSON_AddObjectToObject(root, "metrics");
        }
        struct model_set *set = models_acquire(pipeline_models(req->api->pipeline));
        cJSON_AddItemToObject(root, "models", predictions_json(set, device));
        model_set_release(set);
        cJSON_Delete(c.devices);
        return api_respond_json(req, 200, root, NULL);
    }
    if (!maxima) {
        struct model_set *set = models_acquire(pipeline_models(req->api->pipeline));
        cJSON *dev;
        cJSON_ArrayForEach(dev, c.devices)
        {
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(dev, "device"));
            if (id != NULL)
                cJSON_AddItemToObject(dev, "models", predictions_json(set, id));
        }
        model_set_release(set);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, maxima ? "maxima" : "devices", c.devices);
    return api_respond_json(req, 200, root, NULL);
}

enum MHD_Result api_device_latest(struct request *req)
{
    const char *device = api_device_segment(req);
    return device == NULL ? MHD_YES : series_answer(req, device, false);
}

enum MHD_Result api_latest(struct request *req)
{
    return series_answer(req, NULL, false);
}

enum MHD_Result api_maxima(struct request *req)
{
    if (req->n_segments == 5) { /* /api/v1/devices/<id>/maxima */
        const char *device = api_device_segment(req);
        return device == NULL ? MHD_YES : series_answer(req, device, true);
    }
    return series_answer(req, NULL, true);
}
