/* api.h — what the HTTP server and the endpoint handlers share: the request, the
 * response helpers, query-parameter parsing. Not for use outside src/api/.
 *
 * A handler is called once the whole request (headers and body) has arrived. It answers
 * with api_respond_json() / api_respond_error(), or suspends the request
 * (api_suspend_for_job) and answers when resumed (req->job_done is then true). */
#ifndef CANARY_API_API_H
#define CANARY_API_API_H

#include "core/command.h"
#include "core/config.h"
#include "pipeline/pipeline.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read-only store handles shared by the HTTP threads. */
struct store_pool {
    pthread_mutex_t lock;
    struct store **free;
    size_t n_free, cap;
    struct store_options opt;
};

/* What every handler may use. */
struct api_ctx {
    const struct canary_config *cfg;
    bool https; /* the server speaks only HTTPS (http.tls_cert): cookies get Secure */
    struct limiter *address_limiter; /* per-address rate limit (api_limits.h); NULL: off */
    struct pipeline *pipeline;
    struct mqtt *mqtt; /* NULL-safe: mqtt.h functions report MQTT as disabled */
    struct store_pool readers;
    struct store *admin; /* read-write handle for the rare API writes, under admin_lock */
    pthread_mutex_t admin_lock;
    int64_t started_ms;
    struct stream_hub *stream; /* the live stream's clients and recent events (api_stream.c) */
    struct api_access *access; /* users, sessions, login limits, audit (api_access.c) */
};

#define API_MAX_SEGMENTS 6

/* Who is calling (api_access.c), resolved before the handler runs. */
enum api_auth_kind {
    API_AUTH_NONE = 0,    /* no credential (or, before access control is on, an invalid one) */
    API_AUTH_ADMIN_TOKEN, /* api.admin_token: the bootstrap admin */
    API_AUTH_TOKEN,       /* an API token (cnu_...) */
    API_AUTH_SESSION,     /* the dashboard's session cookie */
};

struct api_principal {
    enum api_auth_kind kind;
    int role;                 /* enum store_role; 0 = none */
    int64_t user_id;          /* the session's user or the token's maker; 0 = none */
    int64_t token_id;         /* API_AUTH_TOKEN */
    char name[80];            /* user name, "token:<name>", "admin-token" */
    uint8_t session_hash[32]; /* API_AUTH_SESSION: SHA-256 of the cookie */
    uint8_t token_hash[32];   /* API_AUTH_TOKEN: SHA-256 of the token */
    char csrf[48];
    int64_t session_expires_ms;
};

struct request {
    struct api_ctx *api;
    struct MHD_Connection *conn;
    const char *method;
    char path[512];
    char *segments[API_MAX_SEGMENTS]; /* path split at '/', into path_buf */
    char path_buf[512];
    int n_segments;
    int64_t started_mono_ms;
    /* Body */
    char *body;
    size_t body_len, body_cap;
    bool body_too_large;
    bool body_started;
    /* Suspension for a pipeline job */
    struct job *job;
    void *job_payload; /* memory the job points to, freed with the request */
    bool suspended;
    _Atomic bool job_done;
    int submit_rc;
    /* Response bookkeeping for the request log */
    unsigned status;
    /* Access control and the audit log (api_access.c) */
    struct api_principal who;
    char audit_target[128]; /* set by a handler to name what it changed ("" = from the path) */
    char audit_detail[128]; /* a short note, never a secret; errors put their code here */
    char audit_method[8];   /* the method, copied: MHD's string is gone when it completes */
};

/* Queues a JSON response (takes ownership of body; NULL sends "{}"). Extra headers are
 * name/value pairs ending with NULL. */
enum MHD_Result api_respond_json(struct request *req, unsigned status, cJSON *body, ...);

/* Queues the error shape documented in http.h. field may be NULL. */
enum MHD_Result api_respond_error(struct request *req, unsigned status, const char *code,
                                  const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Suspends the request until the pipeline completes job (whose done/user the function
 * sets). Returns MHD_YES; on a refused submission answers 503 or 409 itself. */
enum MHD_Result api_suspend_for_job(struct request *req, struct job *job);

/* A read-only store handle for the duration of a handler. Returns NULL (after answering
 * 503) when none can be opened. */
struct store *api_reader(struct request *req);
void api_reader_release(struct request *req, struct store *s);
/* The same pool outside a request: NULL (with err) when no handle can be opened. */
struct store *api_store_borrow(struct api_ctx *api, char *err, size_t errlen);
void api_store_return(struct api_ctx *api, struct store *s);

/* Query parameters. api_query_check() answers 400 naming the first parameter that is not
 * in `allowed` (a NULL-terminated list) and returns false. */
bool api_query_check(struct request *req, const char *const *allowed);
const char *api_query(struct request *req, const char *name);

/* Parses an optional parameter. Time accepts Unix milliseconds or a relative "-15m",
 * "-2h", "-7d", "now". On a bad value they answer 400 and return false. */
bool api_query_time(struct request *req, const char *name, int64_t now_ms, int64_t *out);
bool api_query_uint(struct request *req, const char *name, uint64_t min, uint64_t max,
                    uint64_t *out);

/* Parses the request body as a JSON object whose keys are all in `allowed`. Answers 400
 * (or 415) and returns NULL otherwise. */
cJSON *api_body_object(struct request *req, const char *const *allowed);

/* Checks "Authorization: Bearer <api.admin_token>" for state-changing calls when a token
 * is configured. Answers 401 and returns false when it does not match. */
bool api_authorized(struct request *req);

/* Endpoint handlers (api_*.c). Each returns the MHD result of queueing its answer. */
enum MHD_Result api_ingest(struct request *req);
enum MHD_Result api_ingest_resumed(struct request *req);
enum MHD_Result api_devices_list(struct request *req);
enum MHD_Result api_device_get(struct request *req);
enum MHD_Result api_device_create(struct request *req);
enum MHD_Result api_device_patch(struct request *req);
enum MHD_Result api_device_release(struct request *req);
enum MHD_Result api_device_release_resumed(struct request *req);
enum MHD_Result api_device_readings(struct request *req);
enum MHD_Result api_device_latest(struct request *req);
enum MHD_Result api_latest(struct request *req);
enum MHD_Result api_maxima(struct request *req);
enum MHD_Result api_alerts_list(struct request *req);
enum MHD_Result api_alert_get(struct request *req);
enum MHD_Result api_alert_action(struct request *req);
enum MHD_Result api_alert_action_resumed(struct request *req);
enum MHD_Result api_alert_comment(struct request *req);
enum MHD_Result api_stats(struct request *req);
enum MHD_Result api_healthz(struct request *req);
enum MHD_Result api_readyz(struct request *req);
enum MHD_Result api_metrics_catalogue(struct request *req);
enum MHD_Result api_index(struct request *req);
enum MHD_Result api_device_command(struct request *req);
enum MHD_Result api_device_command_resumed(struct request *req);
enum MHD_Result api_device_commands(struct request *req);
enum MHD_Result api_command_get(struct request *req);
enum MHD_Result api_events(struct request *req);
enum MHD_Result api_models_list(struct request *req);
enum MHD_Result api_models_reload(struct request *req);
enum MHD_Result api_notifications_list(struct request *req);
enum MHD_Result api_notification_get(struct request *req);
enum MHD_Result api_stream(struct request *req);
/* The dashboard's embedded files (web/serve.c): GET / and GET /assets/<file>. */
enum MHD_Result api_web(struct request *req);

/* The live stream (api_stream.c): Server-Sent Events of what the pipeline commits, fed by a
 * commit listener. start registers the listener; close removes it and ends every stream (call
 * it when the server stops taking requests); free (after the HTTP daemon has stopped) frees
 * it. start returns 0 or an error code. */
struct stream_hub;
int stream_hub_start(struct stream_hub **out, const struct canary_config *cfg, struct pipeline *p,
                     struct api_ctx *api);
/* A stream lives as long as the credential it was opened with: every STREAM_RECHECK_S the
 * hub asks api_access_still_valid() about each client's, and ends the streams of those that
 * expired, logged out, were revoked or whose user was disabled. recheck asks at once (after
 * a logout, a revocation, a change of users). Thread-safe; NULL-safe. */
void stream_hub_recheck(struct stream_hub *h);
void stream_hub_close(struct stream_hub *h);
void stream_hub_free(struct stream_hub *h);
/* The stream's counters for GET /api/v1/stats (all zero when h is NULL). Thread-safe. */
struct stream_stats {
    unsigned clients;  /* connected now */
    uint64_t connects; /* clients that connected since start */
    uint64_t events;   /* events formatted since start (only while someone watches) */
    uint64_t sent;     /* events handed to clients, live and replayed on reconnect */
    uint64_t dropped;  /* clients disconnected for reading too slowly */
    uint64_t ended;    /* streams ended because their credential no longer admits them */
};
void stream_hub_stats(struct stream_hub *h, struct stream_stats *out);
/* Device credentials and HTTP security events (api_security.c). */
enum MHD_Result api_device_key_create(struct request *req);
enum MHD_Result api_device_keys_list(struct request *req);
enum MHD_Result api_device_revoke(struct request *req);
void api_security_event(struct request *req, const char *kind, const char *device, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* Access control (api_access.c, docs/ACCESS.md). start returns 0 or CANARY_ENOMEM; free
 * after the HTTP daemon has stopped. check runs before every handler: it resolves the
 * caller (req->who) and, once access control is on, answers 401/403 (CSRF, Origin, role)
 * and returns false. audit runs when a request completes and stores state-changing ones. */
struct api_access;
int api_access_start(struct api_access **out, const struct canary_config *cfg);
void api_access_free(struct api_access *a);
bool api_access_check(struct request *req);
void api_access_audit(struct request *req);
/* True when every /api/v1 call needs a credential (a user exists, or api.require_auth). */
bool api_access_on(struct request *req);
/* The "access" object of GET /api/v1/stats. */
cJSON *api_access_stats_json(struct api_access *a);
/* The client's address as text ("?" when unknown). */
void api_client_address(struct request *req, char *buf, size_t len);
/* Replaces a client-claimed actor ("by") with the user name of a session or API token (the
 * bootstrap admin token names no one: its caller's "by" stands). */
void api_actor_override(struct request *req, char *actor, size_t len);
/* Forget the cached user count (after users are added or removed). */
void api_access_users_changed(struct api_access *a);
/* Whether a credential resolved earlier (a live stream's) still admits its caller now: a
 * session not expired or logged out, a token not expired or revoked, their user enabled;
 * no credential only while access control is off. On a store error it says yes (a passing
 * database hiccup must not cut every dashboard off) and logs. Any thread. */
bool api_access_still_valid(struct api_ctx *api, const struct api_principal *who, char *why,
                            size_t why_len);
enum MHD_Result api_session_create(struct request *req);
enum MHD_Result api_session_get(struct request *req);
enum MHD_Result api_session_delete(struct request *req);
/* Users, API tokens and the audit log (api_users.c): admin only. */
enum MHD_Result api_users_list(struct request *req);
enum MHD_Result api_user_create(struct request *req);
enum MHD_Result api_user_patch(struct request *req);
enum MHD_Result api_user_delete(struct request *req);
enum MHD_Result api_tokens_list(struct request *req);
enum MHD_Result api_token_create(struct request *req);
enum MHD_Result api_token_delete(struct request *req);
enum MHD_Result api_audit_list(struct request *req);

/* Ends a page of a list answered newest first: "next_before" is the last item's id when the
 * page is full (there may be more), null on the last page. */
void api_add_next_before(cJSON *root, bool full_page, uint64_t last_id);

/* Adds a number, or null when it is NaN or infinite (JSON has no such numbers). */
void api_add_number(cJSON *obj, const char *name, double v);

/* The device id of a /api/v1/devices/<id>/... path, validated. Answers 400 and returns
 * NULL when invalid. */
const char *api_device_segment(struct request *req);

/* JSON of shared objects. */
cJSON *api_alert_json(const struct alert *a);
cJSON *api_flags_json(uint32_t flags);
cJSON *api_command_json(const struct device_command *c);
/* The commands an alert's automatic actions sent, oldest first. */
cJSON *api_alert_actions_json(struct store *s, uint64_t alert_id);

#endif
