/* api_limits.c — per-address and per-device rate limits of the HTTP server; contracts in
 * api_limits.h. */
#include "api/api_limits.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/limiter.h"
#include "core/log.h"
#include "verify/device_limit.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int api_limits_start(struct api_ctx *api, const struct canary_config *cfg, char *err, size_t errlen)
{
    api->address_limiter = NULL;
    if (cfg->limits.http_rate <= 0)
        return CANARY_OK;
    int rc = limiter_create(&api->address_limiter, cfg->limits.http_rate, cfg->limits.http_burst,
                            cfg->limits.http_table);
    if (rc != 0)
        canary_errf(err, errlen, "cannot make the address table of limits.http_table (%u): %s",
                    cfg->limits.http_table, rc == CANARY_ENOMEM ? "out of memory" : "bad limits");
    return rc;
}

void api_limits_free(struct api_ctx *api)
{
    limiter_free(api->address_limiter);
    api->address_limiter = NULL;
}

/* The table key of a client address: a family byte and the address (IPv6: its /64). Returns
 * its length, or 0 when the address is unknown; *loopback says whether it is 127.0.0.0/8 or
 * ::1. */
static int address_key(const struct sockaddr *sa, uint8_t key[17], char *text, size_t textlen,
                       bool *loopback)
{
    *loopback = false;
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *v4 = NULL;
    snprintf(text, textlen, "?");
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        if (memcmp(a, v4_mapped, 12) == 0) {
            v4 = a + 12;
        } else {
            inet_ntop(AF_INET6, a, text, (socklen_t)textlen);
            *loopback = IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)(const void *)a);
            key[0] = 6;
            memcpy(key + 1, a, 8);
            return 9;
        }
    } else {
        return 0;
    }
    inet_ntop(AF_INET, v4, text, (socklen_t)textlen);
    *loopback = v4[0] == 127;
    key[0] = 4;
    memcpy(key + 1, v4, 4);
    return 5;
}

/* Queues the 429 answer. */
static enum MHD_Result answer_429(struct request *req, const char *field, double rate, double burst,
                                  int64_t retry_after_ms, const char *message)
{
    long secs = (long)((retry_after_ms + 999) / 1000);
    if (secs < 1)
        secs = 1;
    char retry[24];
    snprintf(retry, sizeof retry, "%ld", secs);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddNumberToObject(e, "status", 429);
    cJSON_AddStringToObject(e, "code", "rate_limited");
    cJSON_AddStringToObject(e, "field", field);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddNumberToObject(e, "retry_after_s", (double)secs);
    cJSON *lim = cJSON_AddObjectToObject(e, "limit");
    cJSON_AddNumberToObject(lim, "rate", rate);
    cJSON_AddNumberToObject(lim, "burst", burst);
    log_debug("http.rate_limited", "method=%s path=%s field=%s retry_after_s=%ld", req->method,
              req->path, field, secs);
    return api_respond_json(req, 429, root, "Retry-After", retry, NULL);
}

bool api_limits_refuse_address(struct request *req, enum MHD_Result *answered)
{
    struct api_ctx *api = req->api;
    if (api->address_limiter == NULL)
        return false;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    uint8_t key[17];
    char text[INET6_ADDRSTRLEN];
    bool loopback;
    int n = address_key(ci != NULL ? ci->client_addr : NULL, key, text, sizeof text, &loopback);
    if (n == 0 || (loopback && api->cfg->limits.http_exempt_loopback))
        return false;
    int64_t wait = 0;
    if (limiter_take(api->address_limiter, key, (size_t)n, 1, clock_mono_ms(), &wait))
        return false;
    char msg[256];
    snprintf(msg, sizeof msg,
             "more than %g requests per second (bursts of %g) from %s%s; retry later",
             api->cfg->limits.http_rate, api->cfg->limits.http_burst, text,
             key[0] == 6 ? " (its /64)" : "");
    *answered = answer_429(req, "limits.http_rate", api->cfg->limits.http_rate,
                           api->cfg->limits.http_burst, wait, msg);
    return true;
}

bool api_limits_refuse_devices(struct request *req, const struct ingest_batch *b,
                               enum MHD_Result *answered)
{
    struct api_ctx *api = req->api;
    struct device_limit *dl = pipeline_device_limit(api->pipeline);
    struct device_limit_refusal why;
    if (device_limit_charge(dl, b, DEVICE_LIMIT_HTTP, clock_mono_ms(), &why))
        return false;
    const struct canary_config *cfg = api->cfg;
    char msg[300];
    snprintf(msg, sizeof msg,
             "device '%.64s' sent more than %g readings per second (bursts of %g); none of the "
             "%zu readings was taken: send them again after the Retry-After delay%s",
             why.device, cfg->limits.device_rate, cfg->limits.device_burst, why.readings,
             (double)why.readings > cfg->limits.device_burst
                 ? ", in batches of at most limits.device_burst readings per device"
                 : "");
    api_security_event(req, "rate_limited", why.device,
                       "%zu readings refused: more than %g a second (limits.device_rate)",
                       why.readings, cfg->limits.device_rate);
    *answered = answer_429(req, "limits.device_rate", cfg->limits.device_rate,
                           cfg->limits.device_burst, why.retry_after_ms, msg);
    return true;
}

cJSON *api_limits_stats_json(struct api_ctx *api)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *http = cJSON_AddObjectToObject(o, "http_address");
    struct limiter_stats ls = {0};
    if (api->address_limiter != NULL)
        limiter_stats(api->address_limiter, &ls);
    cJSON_AddBoolToObject(http, "enabled", api->address_limiter != NULL);
    cJSON_AddNumberToObject(http, "rate", api->cfg->limits.http_rate);
    cJSON_AddNumberToObject(http, "burst", api->cfg->limits.http_burst);
    cJSON_AddBoolToObject(http, "exempt_loopback", api->cfg->limits.http_exempt_loopback);
    cJSON_AddNumberToObject(http, "table", (double)ls.capacity);
    cJSON_AddNumberToObject(http, "addresses", (double)ls.entries);
    cJSON_AddNumberToObject(http, "evicted", (double)ls.evicted);
    cJSON_AddNumberToObject(http, "requests_refused", (double)ls.refused);
    struct device_limit_stats ds;
    device_limit_stats(pipeline_device_limit(api->pipeline), &ds);
    cJSON *dev = cJSON_AddObjectToObject(o, "device");
    cJSON_AddBoolToObject(dev, "enabled", ds.enabled);
    cJSON_AddNumberToObject(dev, "rate", api->cfg->limits.device_rate);
    cJSON_AddNumberToObject(dev, "burst", api->cfg->limits.device_burst);
    cJSON_AddNumberToObject(dev, "table", (double)ds.table);
    cJSON_AddNumberToObject(dev, "devices", (double)ds.entries);
    cJSON_AddNumberToObject(dev, "evicted", (double)ds.evicted);
    cJSON_AddNumberToObject(dev, "http_requests_refused", (double)ds.http_refused_requests);
    cJSON_AddNumberToObject(dev, "http_readings_refused", (double)ds.http_refused_readings);
    cJSON_AddNumberToObject(dev, "mqtt_messages_dropped", (double)ds.mqtt_dropped_messages);
    cJSON_AddNumberToObject(dev, "mqtt_readings_dropped", (double)ds.mqtt_refused_readings);
    return o;
}
