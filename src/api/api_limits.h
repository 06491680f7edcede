/* api_limits.h — rate limits on canaryd's HTTP side (docs/HARDENING.md):
 *   - per client address: limits.http_rate requests per second with bursts of
 *     limits.http_burst, checked when a request's headers are in, before routing, body or
 *     authentication work; an IPv6 client counts by its /64 (one host usually holds a whole
 *     /64), an IPv4-mapped IPv6 address as the IPv4 address; loopback is exempt while
 *     limits.http_exempt_loopback is true. The table of addresses has a fixed size
 *     (limits.http_table, core/limiter.h), so a flood of addresses cannot grow memory.
 *   - per device on POST /api/v1/ingest: the batch's readings are charged to their devices
 *     (verify/device_limit.h) after authenticity and the timestamp checks.
 * Over a limit the answer is 429 with Retry-After (whole seconds, at least 1) and the error
 * shape of http.h naming the limit:
 *   {"error":{"status":429,"code":"rate_limited","field":"limits.device_rate",
 *             "message":"...","retry_after_s":2,"limit":{"rate":100,"burst":1000}}}
 * Not for use outside src/api/. */
#ifndef CANARY_API_API_LIMITS_H
#define CANARY_API_API_LIMITS_H

#include "api/api.h"
#include "ingest/ingest.h"

/* Creates the address table into api->address_limiter (NULL when limits.http_rate is 0).
 * Returns 0 or CANARY_ENOMEM with a message. */
int api_limits_start(struct api_ctx *api, const struct canary_config *cfg, char *err,
                     size_t errlen);

/* Frees what api_limits_start() made. */
void api_limits_free(struct api_ctx *api);

/* The per-address check of a new request. Returns true when it may go on; otherwise it has
 * answered 429, stored the queueing result in *answered, and returns false. */
bool api_limits_refuse_address(struct request *req, enum MHD_Result *answered);

/* The per-device charge of an ingest batch. Returns true when the batch was refused: 429 is
 * queued (its result in *answered) and a rate_limited security event recorded. */
bool api_limits_refuse_devices(struct request *req, const struct ingest_batch *b,
                               enum MHD_Result *answered);

/* The "limits" object of GET /api/v1/stats: both limits' settings and counters. */
cJSON *api_limits_stats_json(struct api_ctx *api);

#endif
