/* http.h — canaryd's HTTP server (libmicrohttpd): ingest and the REST API.
 *
 * Connections are limited in number (http.max_connections, per address
 * http.max_connections_per_ip), in idle time (http.idle_timeout_s), in the time their
 * headers may take (http.header_timeout_s, enforced by a reaper thread: a client that
 * trickles a header byte at a time is cut off, the slow-loris attack) and in the time
 * their body may take (http.request_timeout_s). Bodies larger than http.max_body_bytes
 * get 413 before they are read when they announce their length, and are cut off when
 * they do not.
 *
 * Requests that need the pipeline (ingest, acknowledging alerts) suspend their
 * connection and are resumed when the pipeline completes their job, so waiting requests
 * cost no thread. Every error is JSON of one shape:
 *   {"error": {"status": 400, "code": "invalid_field", "field": "values.gas_ppm",
 *              "message": "must be a finite number, got a string"}}
 * (docs/API.md lists every endpoint and code). */
#ifndef CANARY_API_HTTP_H
#define CANARY_API_HTTP_H

#include "core/config.h"
#include "pipeline/pipeline.h"

#include <stdint.h>

struct http_server;

/* Starts listening on cfg->http.listen. The pipeline must outlive the server. Returns 0,
 * or an error with a message. */
struct mqtt;

/* mqtt may be NULL (no MQTT: commands answer 409). */
int http_start(struct http_server **out, const struct canary_config *cfg, struct pipeline *p,
               struct mqtt *mqtt, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
unsigned http_port(const struct http_server *s);

/* Stops accepting new connections; requests in progress go on. */
void http_quiesce(struct http_server *s);

/* Waits (up to timeout_ms) until no request is in progress. Returns the number still in
 * progress. */
unsigned http_drain(struct http_server *s, int64_t timeout_ms);

/* Stops the server and frees it. Call after the pipeline has completed every job. */
void http_stop(struct http_server *s);

#endif
