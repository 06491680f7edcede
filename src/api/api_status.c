/* api_status.c — how canaryd is doing:
 *   GET /healthz         the process answers (always 200 while it runs)
 *   GET /readyz          200 when the store accepts writes and canaryd is not stopping,
 *                        else 503 — for load balancers and orchestrators
 *   GET /api/v1/stats    devices, readings, alerts, ingest rate, anomalies in the last
 *                        hour, rejection counters, pipeline health
 *   GET /api/v1/metrics  the metric catalogue: units, plausible ranges, default limits
 *   GET /                where to look */
#include "api/api.h"
#include "api/api_limits.h"

#include "core/clock.h"
#include "core/metric.h"
#include "mqtt/mqtt.h"
#include "verify/auth.h"

#include <math.h>
#include <string.h>

enum MHD_Result api_healthz(struct request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "version", CANARY_VERSION);
    cJSON_AddNumberToObject(o, "uptime_s", (double)(clock_wall_ms() - req->api->started_ms) / 1000);
    cJSON_AddNumberToObject(o, "schema_version", store_schema_version());
    struct mqtt_status ms;
    mqtt_get_status(req->api->mqtt, &ms);
    cJSON *mq = cJSON_AddObjectToObject(o, "mqtt");
    cJSON_AddStringToObject(mq, "state", mqtt_state_name(ms.state));
    cJSON_AddNumberToObject(mq, "since_ms", (double)ms.since_ms);
    if (ms.last_error[0])
        cJSON_AddStringToObject(mq, "last_error", ms.last_error);
    return api_respond_json(req, 200, o, NULL);
}

enum MHD_Result api_readyz(struct request *req)
{
    bool ready = pipeline_ready(req->api->pipeline);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ready ? "ready" : "not_ready");
    struct pipeline_stats ps;
    pipeline_stats(req->api->pipeline, &ps);
    cJSON_AddBoolToObject(o, "store_ok", ps.store_ok);
    return ready ? api_respond_json(req, 200, o, NULL)
                 : api_respond_json(req, 503, o, "Retry-After", "1", NULL);
}

enum MHD_Result api_stats(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    struct store_stats st;
    char err[512];
    int rc = store_stats(s, &st, err, sizeof err);
    api_reader_release(req, s);
    if (rc != 0)
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    struct pipeline_stats ps;
    pipeline_stats(req->api->pipeline, &ps);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "uptime_s", (double)(clock_wall_ms() - req->api->started_ms) / 1000);
    cJSON_AddNumberToObject(o, "devices", (double)st.devices);
    cJSON_AddNumberToObject(o, "readings_total", (double)st.readings_total);
    cJSON_AddNumberToObject(o, "ingest_per_s", round(ps.ingest_per_s * 10) / 10);
    cJSON_AddNumberToObject(o, "anomalies_last_hour", (double)ps.anomalies_last_hour);
    cJSON *alerts = cJSON_AddObjectToObject(o, "alerts_open");
    cJSON_AddNumberToObject(alerts, "total", (double)st.alerts_open);
    for (int i = 0; i < SEVERITY_COUNT; i++)
        cJSON_AddNumberToObject(alerts, alert_severity_name((enum alert_severity)i),
                                (double)st.alerts_by_severity[i]);
    cJSON *counters = cJSON_AddObjectToObject(o, "counters");
    for (int i = 0; i < PC_COUNT; i++)
        cJSON_AddNumberToObject(counters, pipeline_counter_name((enum pipeline_counter)i),
                                (double)ps.counters[i]);
    cJSON_AddItemToObject(o, "access", api_access_stats_json(req->api->access)); /* ACCESS.md */
    cJSON *pl = cJSON_AddObjectToObject(o, "pipeline");
    cJSON_AddNumberToObject(pl, "workers", ps.workers);
    cJSON_AddNumberToObject(pl, "inflight", (double)ps.inflight);
    cJSON_AddNumberToObject(pl, "max_inflight", (double)ps.max_inflight);
    cJSON_AddBoolToObject(pl, "store_ok", ps.store_ok);
    cJSON_AddNumberToObject(pl, "commit_ms_avg", round(ps.commit_ms_avg * 1000) / 1000);
    if (ps.last_commit_ms)
        cJSON_AddNumberToObject(pl, "last_commit_ms", (double)ps.last_commit_ms);
    else
        cJSON_AddNullToObject(pl, "last_commit_ms");
    cJSON *lag = cJSON_AddObjectToObject(o, "ingest_lag_ms");
    cJSON_AddNumberToObject(lag, "count", (double)ps.lag_count);
    cJSON_AddNumberToObject(lag, "p50", ps.lag_p50_ms);
    cJSON_AddNumberToObject(lag, "p90", ps.lag_p90_ms);
    cJSON_AddNumberToObject(lag, "p99", ps.lag_p99_ms);
    cJSON_AddNumberToObject(lag, "max", ps.lag_max_ms);
    struct mqtt_status ms;
    mqtt_get_status(req->api->mqtt, &ms);
    cJSON *mq = cJSON_AddObjectToObject(o, "mqtt");
    cJSON_AddStringToObject(mq, "state", mqtt_state_name(ms.state));
    cJSON_AddNumberToObject(mq, "since_ms", (double)ms.since_ms);
    if (ms.last_error[0])
        cJSON_AddStringToObject(mq, "last_error", ms.last_error);
    else
        cJSON_AddNullToObject(mq, "last_error");
    const struct {
        const char *name;
        uint64_t v;
    } mqc[] = {{"connects", ms.connects},
               {"connect_failures", ms.connect_failures},
               {"messages", ms.messages},
               {"readings_messages", ms.readings_messages},
               {"status_messages", ms.status_messages},
               {"command_acks", ms.acks},
               {"rejected", ms.rejected},
               {"topic_mismatches", ms.mismatched},
               {"events_suppressed", ms.events_suppressed},
               {"queued", ms.queued},
               {"journal_unreleased", ms.journal_unreleased},
               {"journal_replayed", ms.journal_replayed},
               {"commands_sent", ms.commands_sent},
               {"commands_pending", ms.commands_pending},
               {"published", ms.published}};
    for (size_t i = 0; i < sizeof mqc / sizeof mqc[0]; i++)
        cJSON_AddNumberToObject(mq, mqc[i].name, (double)mqc[i].v);
    struct stream_stats ss;
    stream_hub_stats(req->api->stream, &ss);
    cJSON *stream = cJSON_AddObjectToObject(o, "stream");
    cJSON_AddNumberToObject(stream, "clients", ss.clients);
    cJSON_AddNumberToObject(stream, "connects", (double)ss.connects);
    cJSON_AddNumberToObject(stream, "events", (double)ss.events);
    cJSON_AddNumberToObject(stream, "events_sent", (double)ss.sent);
    cJSON_AddNumberToObject(stream, "clients_dropped", (double)ss.dropped);
    cJSON_AddNumberToObject(stream, "clients_ended", (double)ss.ended);
    cJSON_AddItemToObject(o, "limits", api_limits_stats_json(req->api)); /* api_limits.h */
    struct auth_stats as;
    auth_stats(pipeline_auth(req->api->pipeline), &as);
    cJSON *sec = cJSON_AddObjectToObject(o, "security");
    cJSON_AddStringToObject(sec, "unsigned_policy", req->api->cfg->security.unsigned_policy);
    cJSON_AddNumberToObject(sec, "signed_accepted", (double)as.signed_ok);
    cJSON_AddNumberToObject(sec, "bearer_accepted", (double)as.bearer_ok);
    cJSON_AddNumberToObject(sec, "unsigned_accepted", (double)as.unsigned_ok);
    cJSON_AddNumberToObject(sec, "unsigned_flagged", (double)as.unsigned_flagged);
    cJSON_AddNumberToObject(sec, "rejected", (double)as.rejected);
    cJSON_AddNumberToObject(sec, "devices_with_credentials", (double)as.devices);
    cJSON_AddNumberToObject(sec, "credentials", (double)as.keys);
    cJSON_AddNumberToObject(sec, "credentials_unreadable", (double)as.unreadable);
    cJSON *store = cJSON_AddObjectToObject(o, "store");
    cJSON_AddNumberToObject(store, "bytes", (double)st.db_bytes);
    cJSON_AddNumberToObject(store, "chunks", (double)st.chunks);
    cJSON_AddNumberToObject(store, "log_rows", (double)st.log_rows);
    return api_respond_json(req, 200, o, NULL);
}

enum MHD_Result api_metrics_catalogue(struct request *req)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < metric_catalogue_size(); i++) {
        const struct metric_info *m = metric_catalogue_entry(i);
        struct metric_limits l;
        config_metric_limits(req->api->cfg, NULL, m->name, &l);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddStringToObject(o, "label", m->label);
        cJSON_AddStringToObject(o, "unit", m->unit);
        api_add_number(o, "min", m->min);
        api_add_number(o, "max", m->max);
        cJSON_AddNumberToObject(o, "resolution", m->resolution);
        cJSON_AddBoolToObject(o, "binary", m->binary);
        cJSON *lim = cJSON_AddObjectToObject(o, "limits");
        api_add_number(lim, "warn_high", l.warn_high);
        api_add_number(lim, "crit_high", l.crit_high);
        api_add_number(lim, "warn_low", l.warn_low);
        api_add_number(lim, "crit_low", l.crit_low);
        api_add_number(lim, "hysteresis", l.hysteresis);
        api_add_number(lim, "max_rate_per_min", l.max_rate_per_min);
        cJSON_AddNumberToObject(lim, "flatline_count", l.flatline_count);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "metrics", arr);
    return api_respond_json(req, 200, root, NULL);
}

enum MHD_Result api_index(struct request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "service", "canaryd");
    cJSON_AddStringToObject(o, "version", CANARY_VERSION);
    cJSON *links = cJSON_AddObjectToObject(o, "links");
    cJSON_AddStringToObject(links, "ingest", "/api/v1/ingest");
    cJSON_AddStringToObject(links, "devices", "/api/v1/devices");
    cJSON_AddStringToObject(links, "latest", "/api/v1/latest");
    cJSON_AddStringToObject(links, "maxima", "/api/v1/maxima");
    cJSON_AddStringToObject(links, "alerts", "/api/v1/alerts");
    cJSON_AddStringToObject(links, "stats", "/api/v1/stats");
    cJSON_AddStringToObject(links, "metrics", "/api/v1/metrics");
    cJSON_AddStringToObject(links, "health", "/healthz");
    cJSON_AddStringToObject(links, "docs", "docs/API.md in the canary source");
    return api_respond_json(req, 200, o, NULL);
}
