/* api_access.c — who may call canaryd's REST API and dashboard (docs/ACCESS.md):
 * resolving the caller, the role each endpoint needs, dashboard sessions with CSRF
 * protection, login rate limits, and the audit log of state-changing calls.
 *
 *   POST   /api/v1/session   {"user","password"}: a session cookie and its CSRF token
 *   GET    /api/v1/session   who am I (user, role, how authenticated, CSRF token)
 *   DELETE /api/v1/session   log out
 *
 * Access control is ON once a user exists (or with api.require_auth). Then every call but
 * ingest (devices authenticate themselves there), /healthz, /readyz, the dashboard's files
 * and the session endpoints needs a credential — "Authorization: Bearer <API token or
 * api.admin_token>" or the session cookie — and a role: viewer reads, operator also
 * acknowledges, resolves and comments alerts and sends device commands, admin does the
 * rest (POST/PATCH/DELETE of everything else, users, tokens, device keys, the audit log).
 * Missing or invalid credentials answer 401 naming what is missing; too low a role 403
 * naming the role needed. While it is OFF (no user yet) canaryd behaves as before: reads
 * are open and state changes need api.admin_token where it is configured (api_authorized).
 *
 * CSRF: a request authenticated by the cookie that changes state must carry the header
 * X-CSRF-Token equal to its session's token (the dashboard reads it from GET
 * /api/v1/session), and a present Origin header must name the Host it was sent to. The
 * cookie is HttpOnly and SameSite=Strict too, so a cross-site form sends no cookie at all;
 * the token defends against same-site attackers and old browsers. Bearer requests need no
 * token: a browser never adds an Authorization header by itself.
 *
 * Secrets at rest: session ids and API tokens are 256-bit random values stored as SHA-256
 * hashes, passwords as scrypt strings (access/password.h). No secret reaches a log line, the
 * audit log or a security event.
 *
 * Sessions and tokens are looked up on a read-only handle; their last-seen times are
 * written at most once a minute (or a quarter of the idle timeout) so a busy dashboard does
 * not turn every read into a write. */
#include "api/api.h"

#include "access/login_limit.h"
#include "access/password.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rate_limit.h"
#include "verify/devkey.h"
#include "verify/jws.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COOKIE_NAME      "canary_session"
#define SECRET_TEXT_LEN  43 /* base64url of 32 bytes */
#define MAX_BEARER_LEN   256
#define LOGIN_TABLE_KEYS 4096

struct api_access {
    const struct canary_config *cfg;
    pthread_mutex_t lock; /* login limits and the audit rate limit */
    struct login_limit *logins;
    struct rate_limit anonymous_audit; /* audit rows of calls without a credential */
    _Atomic int64_t users;             /* cached user count; -1 = read it again */
    _Atomic uint64_t logins_ok, logins_failed, logins_rate_limited, lockouts;
    _Atomic uint64_t unauthenticated, forbidden, csrf_refused;
    _Atomic uint64_t audit_rows, audit_suppressed, audit_lost;
    _Atomic unsigned kdf_busy; /* logins hashing a password now */
    unsigned kdf_max;          /* at most this many at once: the other HTTP threads stay free */
    _Atomic uint64_t logins_busy;
};

int api_access_start(struct api_access **out, const struct canary_config *cfg)
{
    struct api_access *a = calloc(1, sizeof *a);
    if (a == NULL)
        return CANARY_ENOMEM;
    a->cfg = cfg;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = cfg->http.threads ? cfg->http.threads : (unsigned)(cores > 0 ? cores : 1);
    a->kdf_max = threads / 2 > 0 ? threads / 2 : 1;
    struct login_limit_config lc = {
        .window_ms = (int64_t)cfg->api.login_window_s * 1000,
        .lockout_ms = (int64_t)cfg->api.login_lockout_s * 1000,
        .lockout_max_ms = (int64_t)cfg->api.login_lockout_max_s * 1000,
    };
    if (login_limit_new(&a->logins, &lc, LOGIN_TABLE_KEYS) != 0) {
        free(a);
        return CANARY_ENOMEM;
    }
    pthread_mutex_init(&a->lock, NULL);
    rate_limit_init(&a->anonymous_audit, 10, 100, clock_mono_ms());
    atomic_store(&a->users, -1);
    *out = a;
    return CANARY_OK;
}

void api_access_free(struct api_access *a)
{
    if (a == NULL)
        return;
    login_limit_free(a->logins);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

void api_access_users_changed(struct api_access *a)
{
    atomic_store(&a->users, -1);
}

void api_client_address(struct request *req, char *buf, size_t len)
{
    snprintf(buf, len, "?");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
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

/* ---- what each endpoint needs ------------------------------------------------------------ */

enum gate {
    GATE_SKIP,   /* ingest (devices authenticate themselves, verify/auth.h), /healthz, /readyz
                  * (always answer, even when the store cannot be read), the dashboard's files */
    GATE_PUBLIC, /* the session endpoints: the caller is resolved, nothing is required */
    GATE_ROLE,   /* needs a role */
};

static bool reads(const struct request *req)
{
    return strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
}

static bool seg_is(const struct request *req, int i, const char *s)
{
    return req->n_segments > i && strcmp(req->segments[i], s) == 0;
}

/* The gate and, for GATE_ROLE, the role a routed request needs. Unknown state-changing
 * endpoints need admin: a new endpoint is closed until someone decides otherwise. */
static enum gate gate_of(const struct request *req, enum store_role *role)
{
    *role = STORE_ROLE_ADMIN;
    if (!seg_is(req, 0, "api") || !seg_is(req, 1, "v1"))
        return GATE_SKIP; /* the dashboard's files, /healthz, /readyz */
    if (seg_is(req, 2, "ingest"))
        return GATE_SKIP;
    if (seg_is(req, 2, "session") && req->n_segments == 3)
        return GATE_PUBLIC;
    bool admin_area = seg_is(req, 2, "users") || seg_is(req, 2, "tokens") ||
                      seg_is(req, 2, "audit") ||
                      (seg_is(req, 2, "devices") && seg_is(req, 4, "keys"));
    if (reads(req)) {
        *role = admin_area ? STORE_ROLE_ADMIN : STORE_ROLE_VIEWER;
        return GATE_ROLE;
    }
    if (strcmp(req->method, "POST") == 0 && req->n_segments == 5) {
        if (seg_is(req, 2, "alerts") &&
            (seg_is(req, 4, "ack") || seg_is(req, 4, "resolve") || seg_is(req, 4, "comments")))
            *role = STORE_ROLE_OPERATOR;
        if (seg_is(req, 2, "devices") && (seg_is(req, 4, "commands") || seg_is(req, 4, "release")))
            *role = STORE_ROLE_OPERATOR;
    }
    return GATE_ROLE;
}

/* ---- resolving the caller ------------------------------------------------------------------ */

static int64_t count_users(struct request *req)
{
    struct api_access *a = req->api->access;
    int64_t n = atomic_load(&a->users);
    if (n >= 0)
        return n;
    struct store *s = api_reader(req);
    if (s == NULL)
        return -1; /* answered 503 */
    char err[256];
    int rc = store_users_count(s, &n, NULL, err, sizeof err);
    api_reader_release(req, s);
    if (rc != 0) {
        api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
        return -1;
    }
    atomic_store(&a->users, n);
    return n;
}

bool api_access_on(struct request *req)
{
    if (req->api->cfg->api.require_auth)
        return true;
    int64_t n = atomic_load(&req->api->access->users);
    return n > 0;
}

/* How often last-seen times are written: once a minute, or a quarter of the idle timeout. */
static int64_t touch_every_ms(const struct canary_config *cfg)
{
    int64_t q = (int64_t)cfg->api.session_idle_s * 250;
    return q < 60000 ? q : 60000;
}

/* Compares in time independent of where the strings differ (lengths may leak). */
static bool equal_secret(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    if (la != lb || la == 0)
        return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}

static bool b64url_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Why a presented credential did not resolve: the 401's message. */
struct resolve_error {
    const char *code;
    char message[200];
    bool clear_cookie;
};

/* Whether a stored token, or session, still admits its caller at `now` (a session's idle
 * limit is the caller's to add: a live stream does not idle). */
static bool token_usable(const struct store_api_token *t, bool user_ok, int64_t now)
{
    return t->revoked_ms == 0 && (t->expires_ms == 0 || now < t->expires_ms) && user_ok &&
           t->role != STORE_ROLE_NONE;
}

static bool session_usable(const struct store_session *ss, const struct store_user *u, int64_t now)
{
    return now < ss->expires_ms && u->disabled_ms == 0 && u->role != STORE_ROLE_NONE;
}

static int resolve_bearer(struct request *req, const char *h, struct resolve_error *e)
{
    const struct canary_config *cfg = req->api->cfg;
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        e->code = "unsupported_credentials";
        snprintf(e->message, sizeof e->message,
                 "the Authorization header must be 'Bearer <API token>'");
        return CANARY_EINVAL;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    size_t n = strnlen(tok, MAX_BEARER_LEN + 1);
    bool printable = n > 0 && n <= MAX_BEARER_LEN;
    for (size_t i = 0; printable && i < n; i++)
        printable = tok[i] > 0x20 && tok[i] < 0x7f;
    if (!printable) {
        e->code = "malformed_credentials";
        snprintf(e->message, sizeof e->message,
                 "the bearer token must be 1 to %d visible ASCII characters", MAX_BEARER_LEN);
        return CANARY_EINVAL;
    }
    struct api_principal *w = &req->who;
    if (cfg->api.admin_token[0] != '\0' && equal_secret(tok, n, cfg->api.admin_token)) {
        w->kind = API_AUTH_ADMIN_TOKEN;
        w->role = STORE_ROLE_ADMIN;
        snprintf(w->name, sizeof w->name, "admin-token");
        return CANARY_OK;
    }
    e->code = "invalid_token";
    snprintf(e->message, sizeof e->message,
             "the bearer token is not valid: unknown, expired, revoked, or its user is "
             "disabled");
    if (n != DEVKEY_TOKEN_LEN || strncmp(tok, "cnu_", 4) != 0 || !b64url_text(tok + 4, n - 4))
        return CANARY_EPERM;
    uint8_t hash[STORE_SECRET_HASH_LEN];
    SHA256((const unsigned char *)tok, n, hash);
    struct store *s = api_reader(req);
    if (s == NULL)
        return CANARY_EIO;
    struct store_api_token t;
    bool user_ok = false;
    char err[256];
    int rc = store_token_find(s, hash, &t, &user_ok, err, sizeof err);
    api_reader_release(req, s);
    if (rc == CANARY_ENOTFOUND)
        return CANARY_EPERM;
    if (rc != 0) {
        api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
        return CANARY_EIO;
    }
    int64_t now = clock_wall_ms();
    if (!token_usable(&t, user_ok, now)) {
        snprintf(e->message, sizeof e->message, "the API token '%s' is %s", t.name,
                 t.revoked_ms != 0                          ? "revoked"
                 : t.expires_ms != 0 && now >= t.expires_ms ? "expired"
                                                            : "no longer valid (its user "
                                                              "is disabled or removed)");
        return CANARY_EPERM;
    }
    w->kind = API_AUTH_TOKEN;
    w->role = t.role;
    w->user_id = t.user_id;
    w->token_id = t.id;
    memcpy(w->token_hash, hash, sizeof hash);
    snprintf(w->name, sizeof w->name, "token:%s", t.name);
    if (now - t.last_used_ms >= 60000) {
        pthread_mutex_lock(&req->api->admin_lock);
        if (store_token_touch(req->api->admin, t.id, now, err, sizeof err) != 0)
            log_warn("api.token_touch_failed", "token=%lld error=\"%s\"", (long long)t.id, err);
        pthread_mutex_unlock(&req->api->admin_lock);
    }
    return CANARY_OK;
}

static int resolve_cookie(struct request *req, const char *value, struct resolve_error *e)
{
    const struct canary_config *cfg = req->api->cfg;
    e->code = "session_ended";
    e->clear_cookie = true;
    snprintf(e->message, sizeof e->message,
             "the dashboard session has expired or ended: log in again (POST /api/v1/session)");
    size_t n = strnlen(value, SECRET_TEXT_LEN + 1);
    if (n != SECRET_TEXT_LEN || !b64url_text(value, n)) {
        e->code = "malformed_credentials";
        snprintf(e->message, sizeof e->message, "the %s cookie is malformed: log in again",
                 COOKIE_NAME);
        return CANARY_EINVAL;
    }
    uint8_t hash[STORE_SECRET_HASH_LEN];
    SHA256((const unsigned char *)value, n, hash);
    struct store *s = api_reader(req);
    if (s == NULL)
        return CANARY_EIO;
    struct store_session ss;
    struct store_user u;
    char err[256];
    int rc = store_session_find(s, hash, &ss, &u, err, sizeof err);
    api_reader_release(req, s);
    if (rc == CANARY_ENOTFOUND)
        return CANARY_EPERM;
    if (rc != 0) {
        api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
        return CANARY_EIO;
    }
    int64_t now = clock_wall_ms();
    bool idle = now - ss.last_seen_ms > (int64_t)cfg->api.session_idle_s * 1000;
    if (idle || !session_usable(&ss, &u, now)) {
        pthread_mutex_lock(&req->api->admin_lock);
        store_session_delete(req->api->admin, hash, err, sizeof err);
        pthread_mutex_unlock(&req->api->admin_lock);
        return CANARY_EPERM;
    }
    struct api_principal *w = &req->who;
    w->kind = API_AUTH_SESSION;
    w->role = u.role;
    w->user_id = u.id;
    snprintf(w->name, sizeof w->name, "%s", u.name);
    memcpy(w->session_hash, hash, sizeof hash);
    snprintf(w->csrf, sizeof w->csrf, "%s", ss.csrf);
    w->session_expires_ms = ss.expires_ms;
    if (now - ss.last_seen_ms >= touch_every_ms(cfg)) {
        pthread_mutex_lock(&req->api->admin_lock);
        if (store_session_touch(req->api->admin, hash, now, err, sizeof err) != 0)
            log_warn("api.session_touch_failed", "user=%s error=\"%s\"", u.name, err);
        pthread_mutex_unlock(&req->api->admin_lock);
    }
    return CANARY_OK;
}

bool api_access_still_valid(struct api_ctx *api, const struct api_principal *who, char *why,
                            size_t why_len)
{
    if (who->kind == API_AUTH_ADMIN_TOKEN)
        return true; /* api.admin_token changes only with a restart */
    if (who->kind == API_AUTH_NONE && api->cfg->api.require_auth) {
        snprintf(why, why_len, "access control is on: log in");
        return false;
    }
    int64_t users = atomic_load(&api->access->users);
    if (who->kind == API_AUTH_NONE && users == 0)
        return true;
    char err[256];
    struct store *s = api_store_borrow(api, err, sizeof err);
    if (s == NULL)
        return true; /* logged by the pool */
    int rc = CANARY_OK;
    bool ok = true;
    int64_t now = clock_wall_ms();
    if (who->kind == API_AUTH_NONE) {
        rc = store_users_count(s, &users, NULL, err, sizeof err);
        if (rc == CANARY_OK) {
            atomic_store(&api->access->users, users);
            ok = users == 0;
            snprintf(why, why_len, "a user now exists: log in");
        }
    } else if (who->kind == API_AUTH_TOKEN) {
        struct store_api_token t;
        bool user_ok = false;
        rc = store_token_find(s, who->token_hash, &t, &user_ok, err, sizeof err);
        ok = rc == CANARY_OK && token_usable(&t, user_ok, now);
        snprintf(why, why_len, "the API token is no longer valid");
    } else {
        struct store_session ss;
        struct store_user u;
        rc = store_session_find(s, who->session_hash, &ss, &u, err, sizeof err);
        ok = rc == CANARY_OK && session_usable(&ss, &u, now);
        snprintf(why, why_len, "the dashboard session has ended: log in again");
    }
    api_store_return(api, s);
    if (rc != CANARY_OK && rc != CANARY_ENOTFOUND) {
        log_warn("api.recheck_failed", "caller=%s error=\"%s\" action=\"kept, asked again later\"",
                 who->name, err);
        return true;
    }
    return ok;
}

/* Fills req->who from the Authorization header or, without one, the session cookie.
 * Returns 0 (who may be NONE: nothing presented), CANARY_EPERM/EINVAL with *e (something
 * presented did not resolve), or CANARY_EIO (already answered 503). */
static int resolve(struct request *req, struct resolve_error *e)
{
    memset(&req->who, 0, sizeof req->who);
    const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    if (h != NULL)
        return resolve_bearer(req, h, e);
    const char *c = MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, COOKIE_NAME);
    if (c != NULL)
        return resolve_cookie(req, c, e);
    return CANARY_OK;
}

/* ---- answers ---------------------------------------------------------------------------- */

static void cookie_header(struct request *req, char *out, size_t cap, const char *value,
                          int64_t max_age_s)
{
    bool secure = req->api->cfg->api.cookie_secure || req->api->https; /* set by http_tls */
    snprintf(out, cap, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s", COOKIE_NAME,
             value, (long long)max_age_s, secure ? "; Secure" : "");
}

static enum MHD_Result deny(struct request *req, unsigned status, const char *code,
                            const char *message, enum store_role needed, bool clear_cookie)
{
    struct api_access *a = req->api->access;
    atomic_fetch_add(status == 401 ? &a->unauthenticated : &a->forbidden, 1);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddNumberToObject(e, "status", status);
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (needed != STORE_ROLE_NONE) {
        cJSON_AddStringToObject(e, "required_role", store_role_name(needed));
        cJSON_AddStringToObject(e, "role", store_role_name((enum store_role)req->who.role));
    }
    snprintf(req->audit_detail, sizeof req->audit_detail, "%s", code);
    log_debug("http.denied", "method=%s path=%s status=%u code=%s who=%s", req->method, req->path,
              status, code, req->who.name[0] ? req->who.name : "-");
    char cookie[160];
    cookie_header(req, cookie, sizeof cookie, "", 0);
    if (status == 401)
        return api_respond_json(req, status, root, "WWW-Authenticate", "Bearer realm=\"canary\"",
                                clear_cookie ? "Set-Cookie" : NULL, cookie, NULL);
    return api_respond_json(req, status, root, NULL);
}

/* The Origin header, when present, must name the host the request was sent to. */
static bool origin_ok(struct request *req)
{
    const char *origin = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
    if (origin == NULL)
        return true;
    const char *host = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Host");
    if (host == NULL || host[0] == '\0')
        return false;
    const char *rest = strncmp(origin, "https://", 8) == 0  ? origin + 8
                       : strncmp(origin, "http://", 7) == 0 ? origin + 7
                                                            : NULL;
    return rest != NULL && strcasecmp(rest, host) == 0;
}

static bool csrf_ok(struct request *req)
{
    const char *t = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-CSRF-Token");
    return t != NULL && equal_secret(t, strnlen(t, 64), req->who.csrf);
}

bool api_access_check(struct request *req)
{
    enum store_role needed;
    enum gate gate = gate_of(req, &needed);
    if (gate == GATE_SKIP)
        return true;
    if (!reads(req)) /* audited when it completes */
        snprintf(req->audit_method, sizeof req->audit_method, "%s", req->method);
    if (count_users(req) < 0)
        return false; /* answered 503 */
    bool on = api_access_on(req);
    struct resolve_error e = {NULL, "", false};
    int rc = resolve(req, &e);
    if (rc == CANARY_EIO)
        return false;
    bool login = seg_is(req, 2, "session") && strcmp(req->method, "POST") == 0;
    if (req->who.kind == API_AUTH_SESSION && !reads(req) && !login) {
        if (!origin_ok(req)) {
            atomic_fetch_add(&req->api->access->csrf_refused, 1);
            deny(req, 403, "cross_origin",
                 "the Origin header does not match the Host: cross-site requests with the "
                 "session cookie are refused",
                 STORE_ROLE_NONE, false);
            return false;
        }
        if (!csrf_ok(req)) {
            atomic_fetch_add(&req->api->access->csrf_refused, 1);
            deny(req, 403, "csrf_failed",
                 "a request that changes state with the session cookie needs the header "
                 "X-CSRF-Token with the session's token (GET /api/v1/session)",
                 STORE_ROLE_NONE, false);
            return false;
        }
    }
    if (gate == GATE_PUBLIC)
        return true;
    bool admin_area =
        seg_is(req, 2, "users") || seg_is(req, 2, "tokens") || seg_is(req, 2, "audit");
    if (!on && !admin_area)
        return true; /* as before access control: the handlers check api.admin_token */
    if (rc != 0) {
        deny(req, 401, e.code, e.message, STORE_ROLE_NONE, e.clear_cookie);
        return false;
    }
    if (req->who.kind == API_AUTH_NONE) {
        if (!on && req->api->cfg->api.admin_token[0] == '\0') {
            deny(req, 403, "admin_token_required",
                 "users and tokens can be managed before the first user exists only with "
                 "api.admin_token set (then 'Authorization: Bearer <api.admin_token>')",
                 STORE_ROLE_NONE, false);
            return false;
        }
        deny(req, 401, "unauthenticated",
             "this endpoint needs a credential: 'Authorization: Bearer <API token>' or the "
             "dashboard's session cookie (POST /api/v1/session)",
             STORE_ROLE_NONE, false);
        return false;
    }
    if (req->who.role < (int)needed) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s %.100s needs the role %s; %s has the role %s", req->method,
                 req->path, store_role_name(needed), req->who.name,
                 store_role_name((enum store_role)req->who.role));
        deny(req, 403, "forbidden", msg, needed, false);
        return false;
    }
    return true;
}

/* ---- sessions ---------------------------------------------------------------------------- */

static cJSON *whoami_json(struct request *req)
{
    cJSON *o = cJSON_CreateObject();
    const struct api_principal *w = &req->who;
    bool session = w->kind == API_AUTH_SESSION;
    if (w->kind == API_AUTH_NONE) {
        cJSON_AddNullToObject(o, "user");
        cJSON_AddNullToObject(o, "role");
    } else {
        cJSON_AddStringToObject(o, "user", w->name);
        cJSON_AddStringToObject(o, "role", store_role_name((enum store_role)w->role));
    }
    cJSON_AddStringToObject(o, "auth",
                            session                           ? "session"
                            : w->kind == API_AUTH_TOKEN       ? "token"
                            : w->kind == API_AUTH_ADMIN_TOKEN ? "admin_token"
                                                              : "none");
    cJSON_AddBoolToObject(o, "auth_required", api_access_on(req));
    if (session) {
        cJSON_AddStringToObject(o, "csrf_token", w->csrf);
        cJSON_AddNumberToObject(o, "expires_ms", (double)w->session_expires_ms);
        cJSON_AddNumberToObject(o, "idle_timeout_s", req->api->cfg->api.session_idle_s);
    }
    return o;
}

enum MHD_Result api_session_get(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    if (req->who.kind == API_AUTH_NONE && api_access_on(req)) {
        bool had_cookie =
            MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, COOKIE_NAME) != NULL;
        return deny(req, 401, had_cookie ? "session_ended" : "unauthenticated",
                    had_cookie ? "the dashboard session has expired or ended: log in again"
                               : "not logged in: POST /api/v1/session {\"user\",\"password\"} "
                                 "or 'Authorization: Bearer <API token>'",
                    STORE_ROLE_NONE, had_cookie);
    }
    return api_respond_json(req, 200, whoami_json(req), NULL);
}

enum MHD_Result api_session_delete(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    char err[256];
    if (req->who.kind == API_AUTH_SESSION) {
        pthread_mutex_lock(&req->api->admin_lock);
        int rc = store_session_delete(req->api->admin, req->who.session_hash, err, sizeof err);
        pthread_mutex_unlock(&req->api->admin_lock);
        if (rc != 0)
            return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
        log_info("api.logout", "user=%s", req->who.name);
        stream_hub_recheck(req->api->stream); /* its live streams end now */
    }
    char cookie[160];
    cookie_header(req, cookie, sizeof cookie, "", 0);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "logged_out", req->who.kind == API_AUTH_SESSION);
    return api_respond_json(req, 200, o, "Set-Cookie", cookie, NULL);
}

/* A user name as it may appear in logs and events: only known-safe characters. */
static void printable_name(const char *in, char *out, size_t cap)
{
    if (store_user_name_valid(in)) {
        snprintf(out, cap, "%s", in);
        return;
    }
    snprintf(out, cap, "(an invalid user name)");
}

static enum MHD_Result too_many(struct request *req, int64_t wait_ms, const char *user)
{
    struct api_access *a = req->api->access;
    atomic_fetch_add(&a->logins_rate_limited, 1);
    char addr[64], shown[STORE_USER_NAME_BUF + 32];
    api_client_address(req, addr, sizeof addr);
    printable_name(user, shown, sizeof shown);
    api_security_event(req, "login_rate_limited", NULL,
                       "a login as '%s' from %s was refused: too many failed logins", shown, addr);
    snprintf(req->audit_detail, sizeof req->audit_detail, "login_rate_limited");
    long long s = (wait_ms + 999) / 1000;
    char retry[24];
    snprintf(retry, sizeof retry, "%lld", s < 1 ? 1 : s);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddNumberToObject(e, "status", 429);
    cJSON_AddStringToObject(e, "code", "login_rate_limited");
    char msg[160];
    snprintf(msg, sizeof msg,
             "too many failed logins for this user name or from this address: try again in %s s",
             retry);
    cJSON_AddStringToObject(e, "message", msg);
    return api_respond_json(req, 429, root, "Retry-After", retry, NULL);
}

static enum MHD_Result login_failed(struct request *req, const char *user, bool known,
                                    const char *why)
{
    struct api_access *a = req->api->access;
    const struct canary_config *cfg = req->api->cfg;
    char addr[64], ukey[LOGIN_LIMIT_KEY_MAX], akey[LOGIN_LIMIT_KEY_MAX];
    api_client_address(req, addr, sizeof addr);
    snprintf(ukey, sizeof ukey, "user:%.64s", user);
    snprintf(akey, sizeof akey, "addr:%s", addr);
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&a->lock);
    int64_t lock_user = login_limit_fail(a->logins, ukey, cfg->api.login_max_failures, now);
    int64_t lock_addr = login_limit_fail(a->logins, akey, cfg->api.login_max_failures * 4, now);
    pthread_mutex_unlock(&a->lock);
    atomic_fetch_add(&a->logins_failed, 1);
    char shown[STORE_USER_NAME_BUF + 32];
    /* An unknown name may be a password typed into the wrong field: not repeated. */
    if (known)
        printable_name(user, shown, sizeof shown);
    else
        snprintf(shown, sizeof shown, "(an unknown user name)");
    api_security_event(req, "login_failed", NULL, "login as %s from %s failed: %s", shown, addr,
                       why);
    if (lock_user > 0 || lock_addr > 0) {
        atomic_fetch_add(&a->lockouts, 1);
        api_security_event(req, "login_locked", NULL,
                           "logins %s%s%s are locked out for %lld s after repeated failures",
                           lock_user > 0 ? "as " : "", lock_user > 0 ? shown : "",
                           lock_addr > 0 ? " from this address" : "",
                           (long long)((lock_user > lock_addr ? lock_user : lock_addr) / 1000));
    }
    log_info("api.login_failed", "user=%s client=%s reason=\"%s\"", shown, addr, why);
    snprintf(req->audit_target, sizeof req->audit_target, "%s", shown);
    snprintf(req->audit_detail, sizeof req->audit_detail, "login_failed");
    return api_respond_error(req, 401, "login_failed", NULL, "wrong user name or password");
}

static int new_secret(char out[SECRET_TEXT_LEN + 1])
{
    uint8_t raw[32];
    if (devkey_random(raw, sizeof raw) != 0)
        return CANARY_EIO;
    b64url_encode(raw, sizeof raw, out, SECRET_TEXT_LEN + 1);
    OPENSSL_cleanse(raw, sizeof raw);
    return CANARY_OK;
}

enum MHD_Result api_session_create(struct request *req)
{
    static const char *const fields[] = {"user", "password", NULL};
    static const char *const params[] = {NULL};
    struct api_access *a = req->api->access;
    const struct canary_config *cfg = req->api->cfg;
    if (!api_query_check(req, params))
        return MHD_YES;
    if (!origin_ok(req)) {
        atomic_fetch_add(&a->csrf_refused, 1);
        return deny(req, 403, "cross_origin",
                    "the Origin header does not match the Host: logins from other sites are "
                    "refused",
                    STORE_ROLE_NONE, false);
    }
    cJSON *body = api_body_object(req, fields);
    if (body == NULL)
        return MHD_YES;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(body, "user");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "password");
    if (!cJSON_IsString(u) || u->valuestring[0] == '\0' || strlen(u->valuestring) > 256) {
        cJSON_Delete(body);
        return api_respond_error(req, 400, "invalid_field", "user",
                                 "must be a user name (a string of 1 to 64 characters)");
    }
    if (!cJSON_IsString(p) || strlen(p->valuestring) > PASSWORD_MAX_LEN) {
        cJSON_Delete(body);
        return api_respond_error(req, 400, "invalid_field", "password",
                                 "must be a string of at most %d characters", PASSWORD_MAX_LEN);
    }
    char user[STORE_USER_NAME_BUF];
    snprintf(user, sizeof user, "%s", u->valuestring);
    bool name_ok = store_user_name_valid(u->valuestring);
    char addr[64], ukey[LOGIN_LIMIT_KEY_MAX], akey[LOGIN_LIMIT_KEY_MAX];
    api_client_address(req, addr, sizeof addr);
    snprintf(ukey, sizeof ukey, "user:%.64s", user);
    snprintf(akey, sizeof akey, "addr:%s", addr);
    int64_t now_mono = clock_mono_ms();
    pthread_mutex_lock(&a->lock);
    int64_t wait_u = login_limit_blocked_ms(a->logins, ukey, now_mono);
    int64_t wait_a = login_limit_blocked_ms(a->logins, akey, now_mono);
    pthread_mutex_unlock(&a->lock);
    if (wait_u > 0 || wait_a > 0) {
        cJSON_Delete(body);
        snprintf(req->audit_target, sizeof req->audit_target, "%s",
                 name_ok ? user : "(an invalid user name)");
        return too_many(req, wait_u > wait_a ? wait_u : wait_a, user);
    }
    struct store_user su;
    char err[256];
    int rc = CANARY_ENOTFOUND;
    if (name_ok) {
        struct store *s = api_reader(req);
        if (s == NULL) {
            cJSON_Delete(body);
            return MHD_YES;
        }
        rc = store_user_get(s, user, &su, err, sizeof err);
        api_reader_release(req, s);
        if (rc != 0 && rc != CANARY_ENOTFOUND) {
            cJSON_Delete(body);
            return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
        }
    }
    const char *pw = p->valuestring;
    size_t pw_len = strlen(pw);
    const char *why = NULL;
    /* scrypt takes its HTTP thread for ~0.1 s: a burst of logins may take only some of the
     * threads, so reads and acknowledgements go on during a guessing attack. */
    if (atomic_fetch_add(&a->kdf_busy, 1) >= a->kdf_max) {
        atomic_fetch_sub(&a->kdf_busy, 1);
        atomic_fetch_add(&a->logins_busy, 1);
        OPENSSL_cleanse(p->valuestring, pw_len);
        cJSON_Delete(body);
        snprintf(req->audit_target, sizeof req->audit_target, "%s",
                 name_ok ? user : "(an invalid user name)");
        return api_respond_error(req, 503, "login_busy", NULL,
                                 "other logins are being checked right now: try again in a second");
    }
    if (rc == CANARY_ENOTFOUND) {
        password_verify_dummy(pw, pw_len);
        why = "unknown user";
    } else if (su.disabled_ms != 0) {
        password_verify_dummy(pw, pw_len);
        why = "the user is disabled";
    } else if (password_verify(pw, pw_len, su.password_hash) != 0) {
        why = "wrong password";
    }
    /* Hashes made with weaker parameters than today's are renewed while the password is here. */
    char renewed[PASSWORD_HASH_MAX] = "";
    if (why == NULL && password_needs_rehash(su.password_hash, password_default_params()) &&
        password_hash(pw, pw_len, password_default_params(), renewed, err, sizeof err) != 0)
        renewed[0] = '\0';
    atomic_fetch_sub(&a->kdf_busy, 1);
    OPENSSL_cleanse(p->valuestring, pw_len);
    cJSON_Delete(body);
    if (why != NULL)
        return login_failed(req, user, rc == 0, why);
    if (renewed[0] != '\0') {
        snprintf(su.password_hash, sizeof su.password_hash, "%s", renewed);
        su.updated_ms = clock_wall_ms();
        pthread_mutex_lock(&req->api->admin_lock);
        if (store_user_update(req->api->admin, &su, false, err, sizeof err) == 0)
            log_info("api.password_rehashed", "user=%s", su.name);
        pthread_mutex_unlock(&req->api->admin_lock);
    }
    pthread_mutex_lock(&a->lock);
    login_limit_succeed(a->logins, ukey);
    pthread_mutex_unlock(&a->lock);

    char cookie_value[SECRET_TEXT_LEN + 1];
    struct store_session ss;
    memset(&ss, 0, sizeof ss);
    if (new_secret(cookie_value) != 0 || new_secret(ss.csrf) != 0)
        return api_respond_error(req, 503, "unavailable", NULL, "no randomness (OpenSSL)");
    SHA256((const unsigned char *)cookie_value, SECRET_TEXT_LEN, ss.id_hash);
    int64_t now = clock_wall_ms();
    ss.user_id = su.id;
    snprintf(ss.source, sizeof ss.source, "%s", addr);
    ss.created_ms = now;
    ss.last_seen_ms = now;
    ss.expires_ms = now + (int64_t)cfg->api.session_ttl_s * 1000;
    pthread_mutex_lock(&req->api->admin_lock);
    rc = store_session_add(req->api->admin, &ss, now, now - (int64_t)cfg->api.session_idle_s * 1000,
                           err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    if (rc != 0) {
        OPENSSL_cleanse(cookie_value, sizeof cookie_value);
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    }
    atomic_fetch_add(&a->logins_ok, 1);
    log_info("api.login", "user=%s role=%s client=%s", su.name, store_role_name(su.role), addr);
    req->who.kind = API_AUTH_SESSION;
    req->who.role = su.role;
    req->who.user_id = su.id;
    snprintf(req->who.name, sizeof req->who.name, "%s", su.name);
    snprintf(req->who.csrf, sizeof req->who.csrf, "%s", ss.csrf);
    req->who.session_expires_ms = ss.expires_ms;
    snprintf(req->audit_target, sizeof req->audit_target, "%s", su.name);
    char cookie[200];
    cookie_header(req, cookie, sizeof cookie, cookie_value, (int64_t)cfg->api.session_ttl_s);
    OPENSSL_cleanse(cookie_value, sizeof cookie_value);
    enum MHD_Result r = api_respond_json(req, 200, whoami_json(req), "Set-Cookie", cookie, NULL);
    OPENSSL_cleanse(cookie, sizeof cookie);
    return r;
}

/* ---- the audit log ------------------------------------------------------------------------ */

void api_access_audit(struct request *req)
{
    struct api_access *a = req->api->access;
    /* Only requests that reached api_access_check() and change state (not ingest: readings
     * are not administration, their refusals are security events). */
    if (a == NULL || req->status == 0 || req->audit_method[0] == '\0' ||
        strcmp(req->audit_method, "OPTIONS") == 0)
        return;
    if (req->who.kind == API_AUTH_NONE) {
        pthread_mutex_lock(&a->lock);
        bool ok = rate_limit_allow(&a->anonymous_audit, clock_mono_ms());
        pthread_mutex_unlock(&a->lock);
        if (!ok) {
            atomic_fetch_add(&a->audit_suppressed, 1);
            return;
        }
    }
    struct store_audit row;
    memset(&row, 0, sizeof row);
    row.ts_ms = clock_wall_ms();
    snprintf(row.actor, sizeof row.actor, "%.72s", req->who.name[0] ? req->who.name : "-");
    snprintf(row.role, sizeof row.role, "%s", store_role_name((enum store_role)req->who.role));
    api_client_address(req, row.source, sizeof row.source);
    snprintf(row.action, sizeof row.action, "%s %.140s", req->audit_method, req->path);
    if (req->audit_target[0])
        snprintf(row.target, sizeof row.target, "%s", req->audit_target);
    else if (req->n_segments >= 4 && req->n_segments <= API_MAX_SEGMENTS)
        snprintf(row.target, sizeof row.target, "%.40s/%.80s", req->segments[2], req->segments[3]);
    row.status = req->status;
    snprintf(row.detail, sizeof row.detail, "%s", req->audit_detail);
    char err[256];
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = store_audit_add(req->api->admin, &row, err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    if (rc != 0) {
        atomic_fetch_add(&a->audit_lost, 1);
        log_error("api.audit_lost", "action=\"%s\" error=\"%s\"", row.action, err);
        return;
    }
    atomic_fetch_add(&a->audit_rows, 1);
}

cJSON *api_access_stats_json(struct api_access *a)
{
    cJSON *o = cJSON_CreateObject();
    if (a == NULL)
        return o;
    cJSON_AddNumberToObject(o, "users", (double)atomic_load(&a->users));
    cJSON_AddNumberToObject(o, "logins", (double)atomic_load(&a->logins_ok));
    cJSON_AddNumberToObject(o, "login_failures", (double)atomic_load(&a->logins_failed));
    cJSON_AddNumberToObject(o, "login_rate_limited", (double)atomic_load(&a->logins_rate_limited));
    cJSON_AddNumberToObject(o, "login_lockouts", (double)atomic_load(&a->lockouts));
    cJSON_AddNumberToObject(o, "login_busy", (double)atomic_load(&a->logins_busy));
    cJSON_AddNumberToObject(o, "unauthenticated", (double)atomic_load(&a->unauthenticated));
    cJSON_AddNumberToObject(o, "forbidden", (double)atomic_load(&a->forbidden));
    cJSON_AddNumberToObject(o, "csrf_refused", (double)atomic_load(&a->csrf_refused));
    cJSON_AddNumberToObject(o, "audit_rows", (double)atomic_load(&a->audit_rows));
    cJSON_AddNumberToObject(o, "audit_suppressed", (double)atomic_load(&a->audit_suppressed));
    cJSON_AddNumberToObject(o, "audit_lost", (double)atomic_load(&a->audit_lost));
    return o;
}

void api_actor_override(struct request *req, char *actor, size_t len)
{
    /* A user's session or token names a person; the bootstrap admin token names no one (it
     * is shared by scripts and the first setup), so its caller's "by" stands — the audit log
     * still records that the admin token was used. */
    if (req->who.kind == API_AUTH_SESSION || req->who.kind == API_AUTH_TOKEN)
        snprintf(actor, len, "%s", req->who.name);
}
