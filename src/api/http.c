/* http.c — the HTTP server: libmicrohttpd setup, connection limits and the slow-client
 * reaper, body accumulation, routing, the request log. Contracts in http.h.
 *
 * The reaper: libmicrohttpd's own timeout counts inactivity, so a client sending one
 * header byte every few seconds would hold its connection forever (slow loris). Every
 * connection is watched from the moment it opens, or its previous request completed,
 * until its next request's headers are complete; a connection that takes longer than
 * http.header_timeout_s is shut down. The watch list is guarded by a mutex that
 * libmicrohttpd's close notification also takes, and libmicrohttpd calls that
 * notification before it closes the socket — so the reaper never shuts down a socket
 * number that has already been reused for another connection. */
#include "api/http.h"

#include "api/api.h"
#include "api/api_limits.h"
#include "api/http_tls.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn_watch {
    struct conn_watch *prev, *next;
    MHD_socket fd;
    int64_t idle_since_ms; /* monotonic; 0 while a request is being handled */
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct api_ctx api;
    const struct canary_config *cfg;
    unsigned port;
    pthread_mutex_t watch_lock;
    struct conn_watch *watched;
    pthread_t reaper;
    pthread_mutex_t reaper_lock;
    pthread_cond_t reaper_wake;
    bool reaper_stop;
    _Atomic unsigned active; /* requests in progress */
    struct http_tls tls;     /* HTTPS certificate and key (http_tls.h); off when not set */
};

struct route {
    const char *method;
    const char *pattern; /* '*' matches one path segment */
    enum MHD_Result (*handler)(struct request *req);
    enum MHD_Result (*resumed)(struct request *req);
};

static const struct route routes[] = {
    {"POST", "/api/v1/ingest", api_ingest, api_ingest_resumed},
    {"GET", "/api/v1/devices", api_devices_list, NULL},
    {"POST", "/api/v1/devices", api_device_create, NULL},
    {"GET", "/api/v1/devices/*", api_device_get, NULL},
    {"PATCH", "/api/v1/devices/*", api_device_patch, NULL},
    {"GET", "/api/v1/devices/*/readings", api_device_readings, NULL},
    {"GET", "/api/v1/devices/*/latest", api_device_latest, NULL},
    {"GET", "/api/v1/devices/*/maxima", api_maxima, NULL},
    {"POST", "/api/v1/devices/*/commands", api_device_command, api_device_command_resumed},
    {"GET", "/api/v1/devices/*/commands", api_device_commands, NULL},
    {"POST", "/api/v1/devices/*/keys", api_device_key_create, NULL},
    {"GET", "/api/v1/devices/*/keys", api_device_keys_list, NULL},
    {"POST", "/api/v1/devices/*/revoke", api_device_revoke, NULL},
    {"POST", "/api/v1/devices/*/release", api_device_release, api_device_release_resumed},
    {"GET", "/api/v1/commands/*", api_command_get, NULL},
    {"GET", "/api/v1/events", api_events, NULL},
    {"GET", "/api/v1/models", api_models_list, NULL},
    {"POST", "/api/v1/models/reload", api_models_reload, NULL},
    {"GET", "/api/v1/latest", api_latest, NULL},
    {"GET", "/api/v1/maxima", api_maxima, NULL},
    {"GET", "/api/v1/alerts", api_alerts_list, NULL},
    {"GET", "/api/v1/alerts/*", api_alert_get, NULL},
    {"POST", "/api/v1/alerts/*/ack", api_alert_action, api_alert_action_resumed},
    {"POST", "/api/v1/alerts/*/resolve", api_alert_action, api_alert_action_resumed},
    {"POST", "/api/v1/alerts/*/comments", api_alert_comment, NULL},
    {"GET", "/api/v1/notifications", api_notifications_list, NULL},
    {"GET", "/api/v1/notifications/*", api_notification_get, NULL},
    {"GET", "/api/v1/stream", api_stream, NULL},
    {"GET", "/api/v1/stats", api_stats, NULL},
    {"GET", "/api/v1/metrics", api_metrics_catalogue, NULL},
    {"POST", "/api/v1/session", api_session_create, NULL},
    {"GET", "/api/v1/session", api_session_get, NULL},
    {"DELETE", "/api/v1/session", api_session_delete, NULL},
    {"GET", "/api/v1/users", api_users_list, NULL},
    {"POST", "/api/v1/users", api_user_create, NULL},
    {"PATCH", "/api/v1/users/*", api_user_patch, NULL},
    {"DELETE", "/api/v1/users/*", api_user_delete, NULL},
    {"GET", "/api/v1/tokens", api_tokens_list, NULL},
    {"POST", "/api/v1/tokens", api_token_create, NULL},
    {"DELETE", "/api/v1/tokens/*", api_token_delete, NULL},
    {"GET", "/api/v1/audit", api_audit_list, NULL},
    {"GET", "/healthz", api_healthz, NULL},
    {"GET", "/readyz", api_readyz, NULL},
    {"GET", "/", api_web, NULL},
    {"GET", "/assets/*", api_web, NULL},
};

#define N_ROUTES (sizeof routes / sizeof routes[0])

/* Per-request state beyond struct request: the route it matched. */
struct request_slot {
    struct request req;
    const struct route *route;
    bool path_known; /* some route has this path (for 405 vs 404) */
    char allow[64];  /* methods allowed on the path */
};

static void split_path(struct request *req)
{
    snprintf(req->path_buf, sizeof req->path_buf, "%s", req->path);
    req->n_segments = 0;
    char *save = NULL;
    for (char *seg = strtok_r(req->path_buf, "/", &save); seg != NULL;
         seg = strtok_r(NULL, "/", &save)) {
        if (req->n_segments == API_MAX_SEGMENTS) {
            req->n_segments = API_MAX_SEGMENTS + 1; /* too deep for any route */
            return;
        }
        req->segments[req->n_segments++] = seg;
    }
}

static bool pattern_matches(const char *pattern, const struct request *req)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", pattern);
    int i = 0;
    char *save = NULL;
    for (char *seg = strtok_r(buf, "/", &save); seg != NULL; seg = strtok_r(NULL, "/", &save)) {
        if (i >= req->n_segments)
            return false;
        if (strcmp(seg, "*") != 0 && strcmp(seg, req->segments[i]) != 0)
            return false;
        i++;
    }
    return i == req->n_segments;
}

static void route_request(struct request_slot *slot)
{
    struct request *req = &slot->req;
    split_path(req);
    slot->allow[0] = '\0';
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (!pattern_matches(routes[i].pattern, req))
            continue;
        slot->path_known = true;
        /* HEAD is GET without the body (RFC 9110 9.3.2; libmicrohttpd leaves the body out),
         * except on the event stream, which has no end to measure. */
        bool get = strcmp(routes[i].method, "GET") == 0;
        bool head_ok = get && strcmp(routes[i].pattern, "/api/v1/stream") != 0;
        if (strcmp(routes[i].method, req->method) == 0 ||
            (head_ok && strcmp(req->method, "HEAD") == 0))
            slot->route = &routes[i];
        size_t len = strlen(slot->allow);
        snprintf(slot->allow + len, sizeof slot->allow - len, "%s%s%s", len ? ", " : "",
                 routes[i].method, head_ok ? ", HEAD" : "");
    }
}

static struct conn_watch *watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static void watch_set_idle(struct http_server *srv, struct MHD_Connection *conn, bool idle)
{
    struct conn_watch *w = watch_of(conn);
    if (w == NULL)
        return;
    pthread_mutex_lock(&srv->watch_lock);
    w->idle_since_ms = idle ? clock_mono_ms() : 0;
    pthread_mutex_unlock(&srv->watch_lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn_watch *w = calloc(1, sizeof *w);
        if (w == NULL)
            return;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        w->fd = ci != NULL ? ci->connect_fd : MHD_INVALID_SOCKET;
        w->idle_since_ms = clock_mono_ms();
        pthread_mutex_lock(&srv->watch_lock);
        w->next = srv->watched;
        if (srv->watched != NULL)
            srv->watched->prev = w;
        srv->watched = w;
        pthread_mutex_unlock(&srv->watch_lock);
        *socket_context = w;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn_watch *w = *socket_context;
        if (w == NULL)
            return;
        pthread_mutex_lock(&srv->watch_lock);
        if (w->prev != NULL)
            w->prev->next = w->next;
        else
            srv->watched = w->next;
        if (w->next != NULL)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&srv->watch_lock);
        free(w);
        *socket_context = NULL;
    }
}

static void *reaper_main(void *arg)
{
    struct http_server *srv = arg;
    int64_t limit = (int64_t)srv->cfg->http.header_timeout_s * 1000;
    pthread_mutex_lock(&srv->reaper_lock);
    while (!srv->reaper_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&srv->reaper_wake, &srv->reaper_lock, &ts);
        int64_t now = clock_mono_ms();
        unsigned cut = 0;
        pthread_mutex_lock(&srv->watch_lock);
        for (struct conn_watch *w = srv->watched; w != NULL; w = w->next) {
            if (w->idle_since_ms != 0 && now - w->idle_since_ms > limit &&
                w->fd != MHD_INVALID_SOCKET) {
                shutdown(w->fd, SHUT_RDWR);
                w->idle_since_ms = 0;
                cut++;
            }
        }
        pthread_mutex_unlock(&srv->watch_lock);
        if (cut > 0) {
            pipeline_count(srv->api.pipeline, PC_CONNECTIONS_TIMED_OUT, cut);
            log_debug("http.header_timeout", "connections=%u limit_s=%u", cut,
                      srv->cfg->http.header_timeout_s);
        }
    }
    pthread_mutex_unlock(&srv->reaper_lock);
    return NULL;
}

static void client_address(struct MHD_Connection *conn, char *buf, size_t len)
{
    snprintf(buf, len, "?");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  (socklen_t)len);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct request_slot *slot = *con_cls;
    if (slot == NULL)
        return;
    struct request *req = &slot->req;
    if (srv->cfg->http.request_log) {
        char addr[64];
        client_address(conn, addr, sizeof addr);
        log_info("http.request", "method=%s path=%s status=%u ms=%lld client=%s%s", req->method,
                 req->path, req->status, (long long)(clock_mono_ms() - req->started_mono_ms), addr,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=true");
    }
    api_access_audit(req); /* state-changing calls go to the audit log (api_access.c) */
    if (req->job != NULL) {
        ingest_batch_free(&req->job->batch);
        free(req->job);
    }
    free(req->job_payload);
    free(req->body);
    free(slot);
    *con_cls = NULL;
    watch_set_idle(srv, conn, true);
    atomic_fetch_sub(&srv->active, 1);
}

static enum MHD_Result start_request(struct http_server *srv, struct MHD_Connection *conn,
                                     const char *url, const char *method, void **con_cls)
{
    struct request_slot *slot = calloc(1, sizeof *slot);
    if (slot == NULL)
        return MHD_NO;
    *con_cls = slot;
    atomic_fetch_add(&srv->active, 1);
    watch_set_idle(srv, conn, false);
    struct request *req = &slot->req;
    req->api = &srv->api;
    req->conn = conn;
    req->method = method;
    req->started_mono_ms = clock_mono_ms();
    if (strlen(url) >= sizeof req->path)
        return api_respond_error(req, 414, "uri_too_long", NULL,
                                 "the URL path is longer than %zu bytes", sizeof req->path - 1);
    snprintf(req->path, sizeof req->path, "%s", url);
    enum MHD_Result limited;
    if (api_limits_refuse_address(req, &limited)) /* before any other work (api_limits.h) */
        return limited;
    route_request(slot);
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (length != NULL) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(length, &end, 10);
        if (errno == 0 && *end == '\0' && n > srv->cfg->http.max_body_bytes) {
            pipeline_count(srv->api.pipeline, PC_BODIES_TOO_LARGE, 1);
            return api_respond_error(req, 413, "body_too_large", "http.max_body_bytes",
                                     "the body is %llu bytes; the limit is %u "
                                     "(http.max_body_bytes)",
                                     n, srv->cfg->http.max_body_bytes);
        }
    }
    return MHD_YES;
}

static enum MHD_Result receive_body(struct http_server *srv, struct request *req, const char *data,
                                    size_t *size)
{
    if (clock_mono_ms() - req->started_mono_ms > (int64_t)srv->cfg->http.request_timeout_s * 1000) {
        pipeline_count(srv->api.pipeline, PC_CONNECTIONS_TIMED_OUT, 1);
        log_debug("http.body_timeout", "path=%s received=%zu", req->path, req->body_len);
        return MHD_NO; /* close: a body that trickles in is the slow-loris attack again */
    }
    size_t n = *size;
    *size = 0;
    req->body_started = true;
    if (req->body_too_large)
        return MHD_YES;
    size_t max = srv->cfg->http.max_body_bytes;
    if (req->body_len + n > max) {
        req->body_too_large = true;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return MHD_YES;
    }
    if (req->body_len + n + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *b = realloc(req->body, cap);
        if (b == NULL)
            return MHD_NO;
        req->body = b;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_server *srv = cls;
    struct request_slot *slot = *con_cls;
    if (slot == NULL)
        return start_request(srv, conn, url, method, con_cls);
    struct request *req = &slot->req;
    if (req->status != 0) {
        *upload_data_size = 0; /* answered early (413, 414): ignore the rest */
        return MHD_YES;
    }
    if (req->suspended) {
        req->suspended = false;
        return slot->route->resumed(req);
    }
    if (*upload_data_size > 0)
        return receive_body(srv, req, upload_data, upload_data_size);
    if (req->body_too_large) {
        pipeline_count(srv->api.pipeline, PC_BODIES_TOO_LARGE, 1);
        return api_respond_error(req, 413, "body_too_large", "http.max_body_bytes",
                                 "the body exceeds %u bytes (http.max_body_bytes)",
                                 srv->cfg->http.max_body_bytes);
    }
    if (slot->route == NULL) {
        if (slot->path_known)
            return api_respond_error(req, 405, "method_not_allowed", NULL,
                                     "%s is not allowed on %s (allowed: %s)", method, req->path,
                                     slot->allow);
        return api_respond_error(req, 404, "not_found", NULL, "no such endpoint: %s %s", method,
                                 req->path);
    }
    if (!api_access_check(req)) /* credentials, role, CSRF (api_access.c) */
        return MHD_YES;
    return slot->route->handler(req);
}

static int store_pool_init(struct store_pool *pool, const struct canary_config *cfg)
{
    pthread_mutex_init(&pool->lock, NULL);
    pool->free = NULL;
    pool->n_free = pool->cap = 0;
    struct store_options o = {.path = cfg->store.path,
                              .read_only = true,
                              .busy_timeout_ms = cfg->store.busy_timeout_ms,
                              .chunk_max_readings = cfg->store.chunk_max_readings,
                              .chunk_max_span_ms = (int64_t)cfg->store.chunk_max_span_s * 1000,
                              .manual_checkpoints = true};
    pool->opt = o;
    return CANARY_OK;
}

static void store_pool_free(struct store_pool *pool)
{
    for (size_t i = 0; i < pool->n_free; i++)
        store_close(pool->free[i]);
    free(pool->free);
    pthread_mutex_destroy(&pool->lock);
}

static void free_server(struct http_server *srv)
{
    stream_hub_free(srv->api.stream);
    api_access_free(srv->api.access);
    store_pool_free(&srv->api.readers);
    store_close(srv->api.admin);
    pthread_mutex_destroy(&srv->api.admin_lock);
    pthread_mutex_destroy(&srv->watch_lock);
    pthread_mutex_destroy(&srv->reaper_lock);
    pthread_cond_destroy(&srv->reaper_wake);
    http_tls_free(&srv->tls);
    api_limits_free(&srv->api);
    free(srv);
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    log_debug("http.mhd", "message=\"%s\"", msg);
}

int http_start(struct http_server **out, const struct canary_config *cfg, struct pipeline *p,
               struct mqtt *mqtt, char *err, size_t errlen)
{
    char host[128];
    unsigned port;
    if (config_parse_listen(cfg->http.listen, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "http.listen: cannot parse '%s'", cfg->http.listen);
        return CANARY_EINVAL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    bool v6 = strchr(host, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
    }
    struct http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return CANARY_ENOMEM;
    srv->cfg = cfg;
    srv->api.cfg = cfg;
    srv->api.pipeline = p;
    srv->api.mqtt = mqtt;
    srv->api.started_ms = clock_wall_ms();
    pthread_mutex_init(&srv->watch_lock, NULL);
    pthread_mutex_init(&srv->reaper_lock, NULL);
    pthread_cond_init(&srv->reaper_wake, NULL);
    pthread_mutex_init(&srv->api.admin_lock, NULL);
    int tls_rc = http_tls_load(&srv->tls, cfg, err, errlen);
    if (tls_rc != 0) {
        free_server(srv);
        return tls_rc;
    }
    srv->api.https = srv->tls.enabled;
    tls_rc = api_limits_start(&srv->api, cfg, err, errlen); /* the address limiter */
    if (tls_rc != 0) {
        free_server(srv);
        return tls_rc;
    }
    store_pool_init(&srv->api.readers, cfg);
    struct store_options admin = srv->api.readers.opt;
    admin.read_only = false;
    admin.manual_checkpoints = true; /* the pipeline's checkpointer does it */
    admin.synchronous_full = strcmp(cfg->store.synchronous, "full") == 0;
    int rc = store_open(&srv->api.admin, &admin, err, errlen);
    if (rc != 0) {
        free_server(srv);
        return rc;
    }
    rc = api_access_start(&srv->api.access, cfg);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory for access control");
        free_server(srv);
        return rc;
    }
    rc = stream_hub_start(&srv->api.stream, cfg, p, &srv->api);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the live stream");
        free_server(srv);
        return rc;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = cfg->http.threads ? cfg->http.threads : (unsigned)(cores > 0 ? cores : 1);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0) | http_tls_flags(&srv->tls);
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        cfg->http.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        cfg->http.max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT, cfg->http.idle_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        srv, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, srv, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
        MHD_OPTION_ARRAY, srv->tls.options, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->http.listen,
                 errno ? strerror(errno) : "libmicrohttpd refused the options");
        free_server(srv);
        return CANARY_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di != NULL ? di->port : port;
    if (pthread_create(&srv->reaper, NULL, reaper_main, srv) != 0) {
        MHD_stop_daemon(srv->daemon);
        free_server(srv);
        snprintf(err, errlen, "cannot start the connection reaper");
        return CANARY_ENOMEM;
    }
    log_info("http.listening", "address=%s port=%u threads=%u tls=%s", host, srv->port, threads,
             srv->tls.enabled ? "true" : "false");
    *out = srv;
    return CANARY_OK;
}

unsigned http_port(const struct http_server *s)
{
    return s->port;
}

void http_quiesce(struct http_server *s)
{
    stream_hub_close(s->api.stream); /* live streams end: they would hold http_drain */
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

unsigned http_drain(struct http_server *s, int64_t timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (atomic_load(&s->active) > 0 && clock_mono_ms() < deadline) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&s->active);
}

void http_stop(struct http_server *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->reaper_lock);
    s->reaper_stop = true;
    pthread_cond_signal(&s->reaper_wake);
    pthread_mutex_unlock(&s->reaper_lock);
    pthread_join(s->reaper, NULL);
    stream_hub_close(s->api.stream);
    MHD_stop_daemon(s->daemon);
    free_server(s);
}
