/* test_access.c — access control against the real canaryd (docs/ACCESS.md): the role matrix
 * over the endpoints with API tokens and the admin token, 401 and 403 bodies, the session
 * cookie's attributes, CSRF (missing, wrong, cross-origin), session expiry, idle timeout and
 * logout, the SSE stream with the cookie and its end when the credential ends, token
 * revocation and expiry, login rate limits and
 * their security events and counters, audit rows, malformed and hostile Authorization and
 * Cookie headers, users surviving a restart — and that no password, token or cookie reaches
 * the log or the database file in clear. */
#include "harness.h"

#include "access/password.h"

#include <sqlite3.h>

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define ADMIN_TOKEN "access-test-admin-token-0123456789"
#define ADMIN_AUTH  "Authorization: Bearer " ADMIN_TOKEN
#define PASSWORD_A  "alice-password-42"
#define PASSWORD_O  "oscar-password-42"
#define PASSWORD_V  "victor-password-42"

/* ---- HTTP with response headers ---- */

struct resp {
    long status;
    char *body;
    size_t len;
    cJSON *json;
    char set_cookie[512];
    char retry_after[32];
    char www_authenticate[128];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t add = size * n;
    char *g = realloc(r->body, r->len + add + 1);
    if (g == NULL)
        return 0;
    r->body = g;
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static void copy_header(char *dst, size_t cap, const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0)
        return;
    const char *v = line + k;
    size_t m = n - k;
    while (m > 0 && (*v == ' '))
        v++, m--;
    while (m > 0 && (v[m - 1] == '\r' || v[m - 1] == '\n'))
        m--;
    if (m >= cap)
        m = cap - 1;
    memcpy(dst, v, m);
    dst[m] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = size * n;
    copy_header(r->set_cookie, sizeof r->set_cookie, p, len, "Set-Cookie:");
    copy_header(r->retry_after, sizeof r->retry_after, p, len, "Retry-After:");
    copy_header(r->www_authenticate, sizeof r->www_authenticate, p, len, "WWW-Authenticate:");
    return len;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

/* One request; headers NULL-terminated (may be NULL). timeout_ms 0 = 10 s. */
static long req_timed(struct daemon *d, const char *method, const char *path,
                      const char *const *headers, const char *body, long timeout_ms, struct resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", d->base_url, path);
    struct curl_slist *h = NULL;
    for (const char *const *p = headers; p != NULL && *p != NULL; p++)
        h = curl_slist_append(h, *p);
    if (body != NULL)
        h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 10000L);
    if (d->ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, d->ca_file);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK || rc == CURLE_OPERATION_TIMEDOUT)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r->body != NULL)
        r->json = cJSON_Parse(r->body);
    return r->status;
}

static long req(struct daemon *d, const char *method, const char *path, const char *const *headers,
                const char *body, struct resp *r)
{
    return req_timed(d, method, path, headers, body, 0, r);
}

static const char *str_at(cJSON *root, const char *a, const char *b)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(root, a);
    if (b != NULL)
        o = cJSON_GetObjectItemCaseSensitive(o, b);
    return cJSON_IsString(o) ? o->valuestring : NULL;
}

static void expect_error(struct resp *r, long status, const char *code)
{
    if (r->status != status || str_at(r->json, "error", "code") == NULL ||
        strcmp(str_at(r->json, "error", "code"), code) != 0)
        fail_msg("expected %ld %s, got %ld %s", status, code, r->status,
                 r->body ? r->body : "(no body)");
}

/* ---- fixture: a daemon with three users and a token for each role ---- */

struct fx {
    struct daemon d;
    char tok_admin[80], tok_op[80], tok_view[80];
    char auth_admin[120], auth_op[120], auth_view[120];
};

static void create_user(struct daemon *d, const char *name, const char *role, const char *pw)
{
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"role\":\"%s\",\"password\":\"%s\"}", name, role,
             pw);
    const char *h[] = {ADMIN_AUTH, NULL};
    struct resp r;
    if (req(d, "POST", "/api/v1/users", h, body, &r) != 201)
        fail_msg("create user %s: %ld %s", name, r.status, r.body ? r.body : "");
    assert_string_equal(str_at(r.json, "role", NULL), role);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "password")); /* given, not echoed */
    resp_free(&r);
}

static void create_token(struct daemon *d, const char *name, const char *role, char *out,
                         size_t cap)
{
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"role\":\"%s\"}", name, role);
    const char *h[] = {ADMIN_AUTH, NULL};
    struct resp r;
    if (req(d, "POST", "/api/v1/tokens", h, body, &r) != 201)
        fail_msg("create token %s: %ld %s", name, r.status, r.body ? r.body : "");
    const char *t = str_at(r.json, "token", NULL);
    assert_non_null(t);
    assert_int_equal(strlen(t), 47);
    assert_memory_equal(t, "cnu_", 4);
    snprintf(out, cap, "%s", t);
    resp_free(&r);
}

static void start_fx(struct fx *f, const char *const *extra)
{
    setenv("CANARY_API_ADMIN_TOKEN", ADMIN_TOKEN, 1);
    daemon_init(&f->d, NULL);
    int n = 0;
    f->d.extra[n++] = "--set";
    f->d.extra[n++] = "security.unsigned=accept";
    for (const char *const *e = extra; e != NULL && *e != NULL; e++)
        f->d.extra[n++] = *e;
    f->d.extra[n] = NULL;
    daemon_start(&f->d);
}

static void add_people(struct fx *f)
{
    create_user(&f->d, "alice", "admin", PASSWORD_A);
    create_user(&f->d, "oscar", "operator", PASSWORD_O);
    create_user(&f->d, "victor", "viewer", PASSWORD_V);
    create_token(&f->d, "ci-admin", "admin", f->tok_admin, sizeof f->tok_admin);
    create_token(&f->d, "ci-operator", "operator", f->tok_op, sizeof f->tok_op);
    create_token(&f->d, "grafana", "viewer", f->tok_view, sizeof f->tok_view);
    snprintf(f->auth_admin, sizeof f->auth_admin, "Authorization: Bearer %s", f->tok_admin);
    snprintf(f->auth_op, sizeof f->auth_op, "Authorization: Bearer %s", f->tok_op);
    snprintf(f->auth_view, sizeof f->auth_view, "Authorization: Bearer %s", f->tok_view);
}

static void stop_fx(struct fx *f)
{
    daemon_stop(&f->d, SIGTERM);
    daemon_cleanup(&f->d);
}

/* Reads a whole file (malloc'd, NUL-terminated; length in *n). */
static char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += got;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(fp);
    buf[len] = '\0';
    *n = len;
    return buf;
}

/* ---- tests ---- */

static void test_before_any_user(void **state)
{
    (void)state;
    /* Without an admin token nobody can make the first user: 403 naming the key. */
    unsetenv("CANARY_API_ADMIN_TOKEN");
    struct daemon d;
    daemon_init(&d, NULL);
    daemon_start(&d);
    struct resp r;
    req(&d, "POST", "/api/v1/users", NULL, "{\"name\":\"eve\",\"role\":\"admin\"}", &r);
    expect_error(&r, 403, "admin_token_required");
    resp_free(&r);
    assert_int_equal(req(&d, "GET", "/api/v1/devices", NULL, NULL, &r), 200); /* as before */
    resp_free(&r);
    daemon_stop(&d, SIGTERM);
    daemon_cleanup(&d);

    struct fx f;
    start_fx(&f, NULL);
    /* Reads stay open, the new admin endpoints need the admin token. */
    assert_int_equal(req(&f.d, "GET", "/api/v1/stats", NULL, NULL, &r), 200);
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/users", NULL, NULL, &r);
    expect_error(&r, 401, "unauthenticated");
    resp_free(&r);
    assert_int_equal(req(&f.d, "GET", "/api/v1/session", NULL, NULL, &r), 200);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r.json, "auth_required")));
    assert_string_equal(str_at(r.json, "auth", NULL), "none");
    resp_free(&r);
    /* State changes need the admin token as before. */
    req(&f.d, "POST", "/api/v1/devices", NULL, "{\"id\":\"k-1\"}", &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    /* The first user, with a generated password shown once. */
    const char *h[] = {ADMIN_AUTH, NULL};
    assert_int_equal(
        req(&f.d, "POST", "/api/v1/users", h, "{\"name\":\"root\",\"role\":\"admin\"}", &r), 201);
    const char *pw = str_at(r.json, "password", NULL);
    assert_non_null(pw);
    assert_int_equal(strlen(pw), 20);
    char login[200];
    snprintf(login, sizeof login, "{\"user\":\"root\",\"password\":\"%s\"}", pw);
    resp_free(&r);
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL, login, &r), 200);
    resp_free(&r);
    /* Now access control is on: reads need a credential. */
    req(&f.d, "GET", "/api/v1/stats", NULL, NULL, &r);
    expect_error(&r, 401, "unauthenticated");
    assert_non_null(strstr(str_at(r.json, "error", "message"), "Authorization: Bearer"));
    assert_non_null(strstr(r.www_authenticate, "Bearer"));
    resp_free(&r);
    stop_fx(&f);
}

struct call {
    const char *method, *path, *body;
    long open_status; /* what a caller with enough role gets (the handler's answer) */
    int role;         /* 1 viewer, 2 operator, 3 admin, 0 public */
};

static void test_role_matrix(void **state)
{
    (void)state;
    struct fx f;
    start_fx(&f, NULL);
    add_people(&f);
    struct resp r;
    /* A device to act on. */
    const char *ha[] = {f.auth_admin, NULL};
    assert_int_equal(req(&f.d, "POST", "/api/v1/devices", ha, "{\"id\":\"kitchen-1\"}", &r), 201);
    resp_free(&r);
    static const struct call calls[] = {
        {"GET", "/healthz", NULL, 200, 0},
        {"GET", "/readyz", NULL, 200, 0},
        {"GET", "/", NULL, 200, 0},
        {"GET", "/api/v1/devices", NULL, 200, 1},
        {"GET", "/api/v1/devices/kitchen-1", NULL, 200, 1},
        {"GET", "/api/v1/alerts", NULL, 200, 1},
        {"GET", "/api/v1/events", NULL, 200, 1},
        {"GET", "/api/v1/stats", NULL, 200, 1},
        {"GET", "/api/v1/latest", NULL, 200, 1},
        {"GET", "/api/v1/models", NULL, 200, 1},
        {"POST", "/api/v1/alerts/999/ack", "{}", 404, 2},
        {"POST", "/api/v1/alerts/999/resolve", "{}", 404, 2},
        {"POST", "/api/v1/alerts/999/comments", "{\"text\":\"x\"}", 404, 2},
        {"POST", "/api/v1/devices/kitchen-1/commands", "{\"command\":\"buzzer\",\"state\":\"on\"}",
         409, 2},
        {"POST", "/api/v1/devices", "{\"id\":\"hall-2\"}", 201, 3},
        {"PATCH", "/api/v1/devices/kitchen-1", "{\"name\":\"Kitchen\"}", 200, 3},
        {"GET", "/api/v1/devices/kitchen-1/keys", NULL, 200, 3},
        {"GET", "/api/v1/users", NULL, 200, 3},
        {"GET", "/api/v1/tokens", NULL, 200, 3},
        {"GET", "/api/v1/audit", NULL, 200, 3},
        {"POST", "/api/v1/models/reload", "{}", 200, 3},
        {"POST", "/api/v1/devices/kitchen-1/release", "{}", 200, 2},
    };
    const char *auth[4] = {NULL, f.auth_view, f.auth_op, f.auth_admin};
    const char *names[4] = {"anonymous", "viewer", "operator", "admin"};
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        const struct call *c = &calls[i];
        for (int who = 0; who < 4; who++) {
            const char *h[] = {auth[who], NULL};
            req(&f.d, c->method, c->path, auth[who] ? h : NULL, c->body, &r);
            long want = c->role == 0 || who >= c->role ? c->open_status : who == 0 ? 401 : 403;
            bool theirs = strcmp(c->path, "/api/v1/models/reload") == 0 ||
                          strstr(c->path, "/release") != NULL;
            if (theirs && want == 200 && r.status != 401 && r.status != 403)
                want = r.status; /* the handler's own answer (models, quarantine): not ours */
            if (r.status != want)
                fail_msg("%s %s as %s: expected %ld, got %ld %s", c->method, c->path, names[who],
                         want, r.status, r.body ? r.body : "");
            if (want == 403) {
                expect_error(&r, 403, "forbidden");
                const char *need = str_at(r.json, "error", "required_role");
                assert_non_null(need);
                assert_string_equal(need, c->role == 3 ? "admin" : "operator");
                assert_string_equal(str_at(r.json, "error", "role"), names[who]);
            }
            if (want == 401)
                expect_error(&r, 401, "unauthenticated");
            resp_free(&r);
        }
    }
    /* The bootstrap admin token keeps working, and ingest stays the devices' business. */
    const char *hb[] = {ADMIN_AUTH, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/users", hb, NULL, &r), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "users")), 3);
    resp_free(&r);
    char reading[200];
    snprintf(reading, sizeof reading,
             "{\"device\":\"kitchen-1\",\"seq\":1,\"ts\":%lld,\"values\":{\"gas_ppm\":400}}",
             (long long)now_ms());
    req(&f.d, "POST", "/api/v1/ingest", NULL, reading, &r);
    assert_true(r.status >= 200 && r.status < 300);
    resp_free(&r);
    /* An operator's acknowledgement is signed with its own name, not the claimed "by". */
    const char *ho[] = {f.auth_op, NULL};
    req(&f.d, "POST", "/api/v1/devices/kitchen-1/commands", ho,
        "{\"command\":\"buzzer\",\"state\":\"on\",\"by\":\"mallory\"}", &r);
    resp_free(&r);
    /* A token cannot be made with more power than its maker: the operator cannot even try. */
    req(&f.d, "POST", "/api/v1/tokens", ho, "{\"name\":\"x\",\"role\":\"admin\"}", &r);
    expect_error(&r, 403, "forbidden");
    resp_free(&r);
    stop_fx(&f);
}

static bool has_attr(const char *cookie, const char *attr)
{
    return strstr(cookie, attr) != NULL;
}

/* Logs in; fills cookie ("canary_session=...") and csrf. */
static void login(struct daemon *d, const char *user, const char *pw, char *cookie, size_t cap,
                  char *csrf, size_t csrf_cap)
{
    char body[200];
    snprintf(body, sizeof body, "{\"user\":\"%s\",\"password\":\"%s\"}", user, pw);
    struct resp r;
    if (req(d, "POST", "/api/v1/session", NULL, body, &r) != 200)
        fail_msg("login %s: %ld %s", user, r.status, r.body ? r.body : "");
    const char *semi = strchr(r.set_cookie, ';');
    assert_non_null(semi);
    snprintf(cookie, cap, "Cookie: %.*s", (int)(semi - r.set_cookie), r.set_cookie);
    snprintf(csrf, csrf_cap, "X-CSRF-Token: %s", str_at(r.json, "csrf_token", NULL));
    resp_free(&r);
}

static void test_sessions_and_csrf(void **state)
{
    (void)state;
    struct fx f;
    const char *extra[] = {"--set", "api.session_idle_s=3", NULL};
    start_fx(&f, extra);
    add_people(&f);
    struct resp r;
    /* A wrong password: 401, no cookie. */
    req(&f.d, "POST", "/api/v1/session", NULL, "{\"user\":\"oscar\",\"password\":\"nope-nope\"}",
        &r);
    expect_error(&r, 401, "login_failed");
    assert_string_equal(r.set_cookie, "");
    resp_free(&r);
    /* Unknown user: the same answer. */
    req(&f.d, "POST", "/api/v1/session", NULL, "{\"user\":\"nobody\",\"password\":\"nope-nope\"}",
        &r);
    expect_error(&r, 401, "login_failed");
    resp_free(&r);
    /* Malformed login bodies. */
    req(&f.d, "POST", "/api/v1/session", NULL, "{\"user\":1,\"password\":\"x\"}", &r);
    expect_error(&r, 400, "invalid_field");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/session", NULL, "{\"user\":\"oscar\",\"pw\":\"x\"}", &r);
    expect_error(&r, 400, "invalid_field");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/session", NULL, "[]", &r);
    expect_error(&r, 400, "malformed_body");
    resp_free(&r);
    static char big_login[2000];
    char filler[600];
    memset(filler, 'x', sizeof filler - 1);
    filler[sizeof filler - 1] = '\0';
    snprintf(big_login, sizeof big_login, "{\"user\":\"%s\",\"password\":\"x\"}", filler);
    req(&f.d, "POST", "/api/v1/session", NULL, big_login, &r);
    expect_error(&r, 400, "invalid_field");
    assert_string_equal(str_at(r.json, "error", "field"), "user");
    resp_free(&r);
    snprintf(big_login, sizeof big_login, "{\"user\":\"oscar\",\"password\":\"%s\"}", filler);
    req(&f.d, "POST", "/api/v1/session", NULL, big_login, &r);
    expect_error(&r, 400, "invalid_field");
    assert_string_equal(str_at(r.json, "error", "field"), "password");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/session", NULL, "{\"user\":\"oscar\",\"password\":null}", &r);
    expect_error(&r, 400, "invalid_field");
    resp_free(&r);

    /* The cookie's attributes. */
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL,
                         "{\"user\":\"oscar\",\"password\":\"" PASSWORD_O "\"}", &r),
                     200);
    assert_true(strncmp(r.set_cookie, "canary_session=", 15) == 0);
    assert_true(has_attr(r.set_cookie, "; HttpOnly"));
    assert_true(has_attr(r.set_cookie, "; SameSite=Strict"));
    assert_true(has_attr(r.set_cookie, "; Path=/"));
    assert_true(has_attr(r.set_cookie, "; Max-Age=43200"));
    assert_false(has_attr(r.set_cookie, "Secure")); /* plain HTTP, api.cookie_secure off */
    assert_string_equal(str_at(r.json, "user", NULL), "oscar");
    assert_string_equal(str_at(r.json, "role", NULL), "operator");
    assert_int_equal(strlen(str_at(r.json, "csrf_token", NULL)), 43);
    resp_free(&r);

    char cookie[200], csrf[100];
    login(&f.d, "oscar", PASSWORD_O, cookie, sizeof cookie, csrf, sizeof csrf);
    const char *hc[] = {cookie, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/session", hc, NULL, &r), 200);
    assert_string_equal(str_at(r.json, "auth", NULL), "session");
    assert_string_equal(str_at(r.json, "csrf_token", NULL), csrf + strlen("X-CSRF-Token: "));
    resp_free(&r);
    assert_int_equal(req(&f.d, "GET", "/api/v1/alerts", hc, NULL, &r), 200);
    resp_free(&r);
    /* State changes with the cookie need the CSRF token... */
    req(&f.d, "POST", "/api/v1/alerts/999/ack", hc, "{}", &r);
    expect_error(&r, 403, "csrf_failed");
    resp_free(&r);
    const char *wrong[] = {cookie, "X-CSRF-Token: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                           NULL};
    req(&f.d, "POST", "/api/v1/alerts/999/ack", wrong, "{}", &r);
    expect_error(&r, 403, "csrf_failed");
    resp_free(&r);
    const char *empty[] = {cookie, "X-CSRF-Token;", NULL}; /* curl: an empty header */
    req(&f.d, "POST", "/api/v1/alerts/999/ack", empty, "{}", &r);
    expect_error(&r, 403, "csrf_failed");
    resp_free(&r);
    const char *good[] = {cookie, csrf, NULL};
    assert_int_equal(req(&f.d, "POST", "/api/v1/alerts/999/ack", good, "{}", &r), 404);
    resp_free(&r);
    /* ... and a present Origin must be this host. */
    const char *evil[] = {cookie, csrf, "Origin: http://evil.example", NULL};
    req(&f.d, "POST", "/api/v1/alerts/999/ack", evil, "{}", &r);
    expect_error(&r, 403, "cross_origin");
    resp_free(&r);
    const char *null_origin[] = {cookie, csrf, "Origin: null", NULL};
    req(&f.d, "POST", "/api/v1/alerts/999/ack", null_origin, "{}", &r);
    expect_error(&r, 403, "cross_origin");
    resp_free(&r);
    char same[100];
    snprintf(same, sizeof same, "Origin: http://127.0.0.1:%u", f.d.port);
    const char *same_origin[] = {cookie, csrf, same, NULL};
    assert_int_equal(req(&f.d, "POST", "/api/v1/alerts/999/ack", same_origin, "{}", &r), 404);
    resp_free(&r);
    /* A login from another site is refused too. */
    const char *evil_login[] = {"Origin: http://evil.example", NULL};
    req(&f.d, "POST", "/api/v1/session", evil_login,
        "{\"user\":\"oscar\",\"password\":\"" PASSWORD_O "\"}", &r);
    expect_error(&r, 403, "cross_origin");
    resp_free(&r);
    /* Bearer requests need no CSRF token. */
    const char *hb[] = {f.auth_op, NULL};
    assert_int_equal(req(&f.d, "POST", "/api/v1/alerts/999/ack", hb, "{}", &r), 404);
    resp_free(&r);
    /* A viewer's session cannot acknowledge. */
    char vcookie[200], vcsrf[100];
    login(&f.d, "victor", PASSWORD_V, vcookie, sizeof vcookie, vcsrf, sizeof vcsrf);
    const char *hv[] = {vcookie, vcsrf, NULL};
    req(&f.d, "POST", "/api/v1/alerts/999/ack", hv, "{}", &r);
    expect_error(&r, 403, "forbidden");
    resp_free(&r);

    /* The live stream works with the cookie (and not without it). */
    req_timed(&f.d, "GET", "/api/v1/stream", hc, NULL, 2000, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(r.body);
    assert_non_null(strstr(r.body, "event: hello"));
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/stream", NULL, NULL, &r);
    expect_error(&r, 401, "unauthenticated");
    resp_free(&r);

    /* Logout ends the session; the cookie is cleared. */
    assert_int_equal(req(&f.d, "DELETE", "/api/v1/session", good, NULL, &r), 200);
    assert_true(has_attr(r.set_cookie, "canary_session=;"));
    assert_true(has_attr(r.set_cookie, "Max-Age=0"));
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/alerts", hc, NULL, &r);
    expect_error(&r, 401, "session_ended");
    assert_true(has_attr(r.set_cookie, "Max-Age=0"));
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/session", hc, NULL, &r);
    expect_error(&r, 401, "session_ended");
    resp_free(&r);

    /* Idle timeout (3 s here): a session used within it lives on (a request every ~1 s, so
     * a slow, loaded machine has 2 s of margin), an idle one ends. */
    login(&f.d, "oscar", PASSWORD_O, cookie, sizeof cookie, csrf, sizeof csrf);
    for (int i = 0; i < 3; i++) {
        usleep(900 * 1000);
        assert_int_equal(req(&f.d, "GET", "/api/v1/alerts", hc, NULL, &r), 200);
        resp_free(&r);
    }
    usleep(3600 * 1000);
    req(&f.d, "GET", "/api/v1/alerts", hc, NULL, &r);
    expect_error(&r, 401, "session_ended");
    resp_free(&r);

    /* Disabling a user ends their sessions at once. */
    login(&f.d, "victor", PASSWORD_V, vcookie, sizeof vcookie, vcsrf, sizeof vcsrf);
    const char *hv2[] = {vcookie, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/alerts", hv2, NULL, &r), 200);
    resp_free(&r);
    const char *ha[] = {f.auth_admin, NULL};
    assert_int_equal(req(&f.d, "PATCH", "/api/v1/users/victor", ha, "{\"disabled\":true}", &r),
                     200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "sessions_ended")));
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/alerts", hv2, NULL, &r);
    expect_error(&r, 401, "session_ended");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/session", NULL,
        "{\"user\":\"victor\",\"password\":\"" PASSWORD_V "\"}", &r);
    expect_error(&r, 401, "login_failed");
    resp_free(&r);
    stop_fx(&f);
}

static void test_session_lifetime(void **state)
{
    (void)state;
    struct fx f;
    const char *extra[] = {"--set", "api.session_ttl_s=2", NULL};
    start_fx(&f, extra);
    add_people(&f);
    char cookie[200], csrf[100];
    login(&f.d, "alice", PASSWORD_A, cookie, sizeof cookie, csrf, sizeof csrf);
    const char *hc[] = {cookie, NULL};
    struct resp r;
    assert_int_equal(req(&f.d, "GET", "/api/v1/users", hc, NULL, &r), 200);
    resp_free(&r);
    usleep(2300 * 1000); /* used or not, it ends with its lifetime */
    req(&f.d, "GET", "/api/v1/users", hc, NULL, &r);
    expect_error(&r, 401, "session_ended");
    resp_free(&r);
    stop_fx(&f);
}

/* The cookie is Secure over HTTPS (http.tls_cert) and with api.cookie_secure behind a proxy. */
static void test_secure_cookie(void **state)
{
    (void)state;
    struct fx f;
    setenv("CANARY_API_ADMIN_TOKEN", ADMIN_TOKEN, 1);
    daemon_init(&f.d, NULL);
    char cmd[512], cert[128], key[128], set_cert[160], set_key[160];
    snprintf(cmd, sizeof cmd, "%s cert --out-dir %s/tls >/dev/null", CANARY_CLI_PATH, f.d.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cert, sizeof cert, "%s/tls/cert.pem", f.d.dir);
    snprintf(key, sizeof key, "%s/tls/key.pem", f.d.dir);
    snprintf(set_cert, sizeof set_cert, "http.tls_cert=%s", cert);
    snprintf(set_key, sizeof set_key, "http.tls_key=%s", key);
    const char *extra[] = {"--set", set_cert, "--set", set_key, NULL};
    for (int i = 0; extra[i] != NULL; i++)
        f.d.extra[i] = extra[i];
    f.d.extra[4] = NULL;
    daemon_start(&f.d);
    snprintf(f.d.base_url, sizeof f.d.base_url, "https://127.0.0.1:%u", f.d.port);
    f.d.ca_file = cert;
    create_user(&f.d, "alice", "admin", PASSWORD_A);
    struct resp r;
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL,
                         "{\"user\":\"alice\",\"password\":\"" PASSWORD_A "\"}", &r),
                     200);
    assert_true(has_attr(r.set_cookie, "; Secure"));
    assert_true(has_attr(r.set_cookie, "; HttpOnly"));
    resp_free(&r);
    stop_fx(&f);

    const char *proxy[] = {"--set", "api.cookie_secure=true", NULL};
    start_fx(&f, proxy);
    create_user(&f.d, "alice", "admin", PASSWORD_A);
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL,
                         "{\"user\":\"alice\",\"password\":\"" PASSWORD_A "\"}", &r),
                     200);
    assert_true(has_attr(r.set_cookie, "; Secure"));
    resp_free(&r);
    stop_fx(&f);
}

/* ---- live streams end with their credential ---- */

struct live {
    int fd;
    char buf[16384];
    size_t len;
    bool closed; /* canaryd ended the stream */
};

static void live_open(struct live *l, struct fx *f, const char *header)
{
    memset(l, 0, sizeof *l);
    l->fd = raw_connect(&f->d);
    assert_true(l->fd >= 0);
    char rq[512];
    int n = snprintf(rq, sizeof rq, "GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s\r\n",
                     header ? header : "", header ? "\r\n" : "");
    assert_int_equal(send(l->fd, rq, (size_t)n, MSG_NOSIGNAL), n);
}

/* Reads until `needle` has arrived (true) or timeout_ms passes; notes the end of the
 * stream. */
static bool live_wait(struct live *l, const char *needle, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        l->buf[l->len] = '\0';
        if (strstr(l->buf, needle) != NULL)
            return true;
        int64_t left = deadline - now_ms();
        if (left <= 0 || l->closed || l->len + 1 >= sizeof l->buf)
            return false;
        struct pollfd p = {l->fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t got = recv(l->fd, l->buf + l->len, sizeof l->buf - 1 - l->len, 0);
        if (got <= 0)
            l->closed = true;
        else
            l->len += (size_t)got;
    }
}

/* After `ended`, canaryd closes the stream (the chunked body's last chunk, then EOF). */
static bool live_ends(struct live *l, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (!l->closed && now_ms() < deadline) {
        if (strstr(l->buf, "\r\n0\r\n\r\n") != NULL)
            return true;
        live_wait(l, "\r\n0\r\n\r\n", (int)(deadline - now_ms()));
    }
    return l->closed || strstr(l->buf, "\r\n0\r\n\r\n") != NULL;
}

static void live_close(struct live *l)
{
    close(l->fd);
}

static void test_streams_end_with_their_credential(void **state)
{
    (void)state;
    struct fx f;
    const char *extra[] = {"--set", "api.session_ttl_s=4", NULL};
    start_fx(&f, extra);
    struct resp r;
    /* Before any user: a stream without a credential; the first user ends it. */
    struct live anon;
    live_open(&anon, &f, NULL);
    assert_true(live_wait(&anon, "event: hello", 5000));
    add_people(&f);
    assert_true(live_wait(&anon, "event: ended", 3000));
    assert_non_null(strstr(anon.buf, "a user now exists"));
    assert_true(live_ends(&anon, 3000));
    live_close(&anon);
    req(&f.d, "GET", "/api/v1/stream", NULL, NULL, &r);
    expect_error(&r, 401, "unauthenticated");
    resp_free(&r);

    /* Two sessions and a token stream; a logout ends only its own session's stream. */
    char ca[200], csrf_a[100], cv[200], csrf_v[100];
    login(&f.d, "alice", PASSWORD_A, ca, sizeof ca, csrf_a, sizeof csrf_a);
    login(&f.d, "victor", PASSWORD_V, cv, sizeof cv, csrf_v, sizeof csrf_v);
    struct live sa, sv, tv;
    live_open(&sa, &f, ca);
    live_open(&sv, &f, cv);
    live_open(&tv, &f, f.auth_view);
    assert_true(live_wait(&sa, "event: hello", 5000));
    assert_true(live_wait(&sv, "event: hello", 5000));
    assert_true(live_wait(&tv, "event: hello", 5000));
    const char *logout_v[] = {cv, csrf_v, NULL};
    assert_int_equal(req(&f.d, "DELETE", "/api/v1/session", logout_v, NULL, &r), 200);
    resp_free(&r);
    assert_true(live_wait(&sv, "event: ended", 3000));
    assert_non_null(strstr(sv.buf, "session has ended"));
    assert_true(live_ends(&sv, 3000));
    live_close(&sv);
    /* A revoked token's stream ends too. */
    assert_int_equal(
        req(&f.d, "GET", "/api/v1/tokens", (const char *[]){f.auth_admin, NULL}, NULL, &r), 200);
    int64_t grafana = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(r.json, "tokens"))
    {
        if (strcmp(str_at(t, "name", NULL), "grafana") == 0)
            grafana = (int64_t)json_number(t, "id");
    }
    resp_free(&r);
    assert_true(grafana > 0);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/tokens/%lld", (long long)grafana);
    assert_int_equal(req(&f.d, "DELETE", path, (const char *[]){f.auth_admin, NULL}, NULL, &r),
                     200);
    resp_free(&r);
    assert_true(live_wait(&tv, "event: ended", 3000));
    assert_non_null(strstr(tv.buf, "token is no longer valid"));
    assert_true(live_ends(&tv, 3000));
    live_close(&tv);
    /* alice's stream is untouched by both ... */
    assert_null(strstr(sa.buf, "event: ended"));
    assert_false(sa.closed);
    /* ... until her session's lifetime (4 s) is over: found within one check (10 s). */
    assert_true(live_wait(&sa, "event: ended", 16000));
    assert_true(live_ends(&sa, 3000));
    live_close(&sa);
    assert_int_equal(
        req(&f.d, "GET", "/api/v1/stats", (const char *[]){f.auth_admin, NULL}, NULL, &r), 200);
    assert_int_equal(json_number(r.json, "stream.clients_ended"), 4);
    resp_free(&r);
    stop_fx(&f);
}

static void test_tokens(void **state)
{
    (void)state;
    struct fx f;
    start_fx(&f, NULL);
    add_people(&f);
    struct resp r;
    const char *ha[] = {f.auth_admin, NULL};
    /* An expiring token works, then does not. */
    assert_int_equal(req(&f.d, "POST", "/api/v1/tokens", ha,
                         "{\"name\":\"short\",\"role\":\"viewer\",\"expires_in_s\":1}", &r),
                     201);
    char auth[120];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", str_at(r.json, "token", NULL));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(r.json, "expires_ms"));
    resp_free(&r);
    const char *hs[] = {auth, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/alerts", hs, NULL, &r), 200);
    resp_free(&r);
    usleep(1300 * 1000);
    req(&f.d, "GET", "/api/v1/alerts", hs, NULL, &r);
    expect_error(&r, 401, "invalid_token");
    assert_non_null(strstr(str_at(r.json, "error", "message"), "expired"));
    resp_free(&r);
    /* Revocation. */
    const char *hv[] = {f.auth_view, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/alerts", hv, NULL, &r), 200);
    resp_free(&r);
    assert_int_equal(req(&f.d, "GET", "/api/v1/tokens", ha, NULL, &r), 200);
    cJSON *list = cJSON_GetObjectItemCaseSensitive(r.json, "tokens");
    int64_t grafana = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, list)
    {
        assert_null(cJSON_GetObjectItemCaseSensitive(t, "token")); /* never the secret */
        if (strcmp(str_at(t, "name", NULL), "grafana") == 0) {
            grafana = (int64_t)json_number(t, "id");
            assert_string_equal(str_at(t, "state", NULL), "active");
            assert_true(json_number(t, "last_used_ms") > 0);
        }
    }
    assert_true(grafana > 0);
    assert_null(strstr(r.body, f.tok_view));
    resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/tokens/%lld", (long long)grafana);
    assert_int_equal(req(&f.d, "DELETE", path, ha, NULL, &r), 200);
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/alerts", hv, NULL, &r);
    expect_error(&r, 401, "invalid_token");
    assert_non_null(strstr(str_at(r.json, "error", "message"), "revoked"));
    resp_free(&r);
    req(&f.d, "DELETE", path, ha, NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    req(&f.d, "DELETE", "/api/v1/tokens/abc", ha, NULL, &r);
    expect_error(&r, 400, "invalid_field");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/tokens", ha, "{\"name\":\"x\",\"role\":\"root\"}", &r);
    expect_error(&r, 400, "invalid_field");
    assert_string_equal(str_at(r.json, "error", "field"), "role");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/tokens", ha, "{\"name\":\"x y\",\"role\":\"viewer\"}", &r);
    expect_error(&r, 400, "invalid_field");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/tokens", ha,
        "{\"name\":\"x\",\"role\":\"viewer\",\"expires_in_s\":-5}", &r);
    expect_error(&r, 400, "invalid_field");
    resp_free(&r);
    stop_fx(&f);
}

static void test_users_management(void **state)
{
    (void)state;
    struct fx f;
    start_fx(&f, NULL);
    add_people(&f);
    struct resp r;
    const char *ha[] = {f.auth_admin, NULL};
    req(&f.d, "POST", "/api/v1/users", ha,
        "{\"name\":\"bob\",\"role\":\"viewer\",\"password\":\"short\"}", &r);
    expect_error(&r, 400, "invalid_field");
    assert_string_equal(str_at(r.json, "error", "field"), "password");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/users", ha,
        "{\"name\":\"alice\",\"role\":\"viewer\",\"password\":\"long-enough-1\"}", &r);
    expect_error(&r, 409, "conflict");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/users", ha,
        "{\"name\":\"<script>\",\"role\":\"viewer\",\"password\":\"long-enough-1\"}", &r);
    expect_error(&r, 400, "invalid_field");
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/users", ha, "{\"name\":\"bob\",\"password\":\"long-enough-1\"}", &r);
    expect_error(&r, 400, "invalid_field");
    resp_free(&r);
    /* The last enabled admin stays. */
    req(&f.d, "DELETE", "/api/v1/users/alice", ha, NULL, &r);
    expect_error(&r, 409, "conflict");
    resp_free(&r);
    req(&f.d, "PATCH", "/api/v1/users/alice", ha, "{\"role\":\"viewer\"}", &r);
    expect_error(&r, 409, "conflict");
    resp_free(&r);
    req(&f.d, "PATCH", "/api/v1/users/alice", ha, "{\"disabled\":true}", &r);
    expect_error(&r, 409, "conflict");
    resp_free(&r);
    req(&f.d, "PATCH", "/api/v1/users/nobody", ha, "{\"disabled\":true}", &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    req(&f.d, "PATCH", "/api/v1/users/alice", ha, "{\"disabled\":\"yes\"}", &r);
    expect_error(&r, 400, "invalid_field");
    resp_free(&r);
    /* A new password: the old one stops working. */
    assert_int_equal(req(&f.d, "PATCH", "/api/v1/users/oscar", ha,
                         "{\"password\":\"a-brand-new-password\"}", &r),
                     200);
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/session", NULL,
        "{\"user\":\"oscar\",\"password\":\"" PASSWORD_O "\"}", &r);
    expect_error(&r, 401, "login_failed");
    resp_free(&r);
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL,
                         "{\"user\":\"oscar\",\"password\":\"a-brand-new-password\"}", &r),
                     200);
    resp_free(&r);
    /* Removing a user. */
    assert_int_equal(req(&f.d, "DELETE", "/api/v1/users/victor", ha, NULL, &r), 200);
    resp_free(&r);
    assert_int_equal(req(&f.d, "GET", "/api/v1/users", ha, NULL, &r), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "users")), 2);
    assert_null(strstr(r.body, "scrypt")); /* never a hash */
    resp_free(&r);
    stop_fx(&f);
}

static double stat_of(struct fx *f, const char *path)
{
    struct resp r;
    const char *ha[] = {f->auth_admin, NULL};
    req(&f->d, "GET", "/api/v1/stats", ha, NULL, &r);
    double v = json_number(r.json, path);
    resp_free(&r);
    return v;
}

static double stat_of_auth(struct fx *f, const char *auth, const char *path)
{
    struct resp r;
    const char *h[] = {auth, NULL};
    req(&f->d, "GET", "/api/v1/stats", h, NULL, &r);
    double v = json_number(r.json, path);
    resp_free(&r);
    return v;
}

static int count_events(struct fx *f, const char *kind)
{
    struct resp r;
    const char *ha[] = {f->auth_admin, NULL};
    char path[128];
    snprintf(path, sizeof path, "/api/v1/events?kind=%s", kind);
    req(&f->d, "GET", path, ha, NULL, &r);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "events"));
    resp_free(&r);
    return n;
}

struct event_wait {
    struct fx *f;
    const char *kind;
    int want;
};

static bool events_arrived(void *arg)
{
    struct event_wait *w = arg;
    return count_events(w->f, w->kind) >= w->want;
}

/* api.require_auth: access control before any user exists; the admin token is the way in. */
static void test_require_auth(void **state)
{
    (void)state;
    struct fx f;
    const char *extra[] = {"--set", "api.require_auth=true", NULL};
    start_fx(&f, extra);
    struct resp r;
    req(&f.d, "GET", "/api/v1/alerts", NULL, NULL, &r);
    expect_error(&r, 401, "unauthenticated");
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/session", NULL, NULL, &r);
    expect_error(&r, 401, "unauthenticated");
    resp_free(&r);
    assert_int_equal(req(&f.d, "GET", "/healthz", NULL, NULL, &r), 200);
    resp_free(&r);
    const char *ha[] = {ADMIN_AUTH, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/alerts", ha, NULL, &r), 200);
    resp_free(&r);
    assert_int_equal(req(&f.d, "GET", "/api/v1/session", ha, NULL, &r), 200);
    assert_string_equal(str_at(r.json, "auth", NULL), "admin_token");
    assert_string_equal(str_at(r.json, "role", NULL), "admin");
    resp_free(&r);
    /* A flood of anonymous state changes is audited at most 10 a second (bursts of 100):
     * every one is either a row or counted as suppressed, and the rows stay within the
     * budget of the flood's duration (however slow this machine is today). */
    int64_t t0 = now_ms();
    for (int i = 0; i < 160; i++) {
        req(&f.d, "POST", "/api/v1/devices", NULL, "{\"id\":\"x\"}", &r);
        assert_int_equal(r.status, 401);
        resp_free(&r);
    }
    double seconds = (double)(now_ms() - t0) / 1000.0;
    int rows = 0;
    double suppressed = 0;
    for (int tries = 0; tries < 50; tries++) { /* rows are stored as requests complete */
        assert_int_equal(req(&f.d, "GET", "/api/v1/audit?limit=1000", ha, NULL, &r), 200);
        rows = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "audit"));
        resp_free(&r);
        suppressed = stat_of_auth(&f, ADMIN_AUTH, "access.audit_suppressed");
        if (rows + (int)suppressed == 160)
            break;
        usleep(100 * 1000);
    }
    assert_int_equal(rows + (int)suppressed, 160);
    assert_true(rows >= 100);
    assert_true(rows <= 100 + (int)(10 * (seconds + 1)));
    stop_fx(&f);
}

static void test_login_rate_limit(void **state)
{
    (void)state;
    struct fx f;
    const char *extra[] = {"--set", "api.login_max_failures=3", "--set", "api.login_lockout_s=2",
                           NULL};
    start_fx(&f, extra);
    add_people(&f);
    struct resp r;
    for (int i = 0; i < 3; i++) {
        req(&f.d, "POST", "/api/v1/session", NULL,
            "{\"user\":\"alice\",\"password\":\"guess-guess\"}", &r);
        expect_error(&r, 401, "login_failed");
        resp_free(&r);
    }
    /* Locked out: even the right password gets 429 with Retry-After. */
    req(&f.d, "POST", "/api/v1/session", NULL,
        "{\"user\":\"alice\",\"password\":\"" PASSWORD_A "\"}", &r);
    expect_error(&r, 429, "login_rate_limited");
    assert_true(atoi(r.retry_after) >= 1 && atoi(r.retry_after) <= 2);
    resp_free(&r);
    /* Other users are not locked out by alice's guesser (the address allows 4x). */
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL,
                         "{\"user\":\"oscar\",\"password\":\"" PASSWORD_O "\"}", &r),
                     200);
    resp_free(&r);
    assert_int_equal(stat_of(&f, "access.login_failures"), 3);
    assert_int_equal(stat_of(&f, "access.login_rate_limited"), 1);
    assert_int_equal(stat_of(&f, "access.login_lockouts"), 1);
    struct event_wait w = {&f, "login_failed", 3};
    assert_true(wait_until(events_arrived, &w, 5000));
    w.kind = "login_rate_limited";
    w.want = 1;
    assert_true(wait_until(events_arrived, &w, 5000));
    w.kind = "login_locked";
    assert_true(wait_until(events_arrived, &w, 5000));
    /* The events name the user but never the password. */
    const char *ha[] = {f.auth_admin, NULL};
    req(&f.d, "GET", "/api/v1/events?kind=login_failed", ha, NULL, &r);
    assert_non_null(strstr(r.body, "alice"));
    assert_null(strstr(r.body, "guess-guess"));
    resp_free(&r);
    /* After the lockout the right password works; the next lockout is longer. */
    usleep(2100 * 1000);
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL,
                         "{\"user\":\"alice\",\"password\":\"" PASSWORD_A "\"}", &r),
                     200);
    resp_free(&r);
    stop_fx(&f);
}

/* An audit row is stored when its request completes, just after the answer went out: the
 * next request can come first. Waits until the three audited calls are all there. */
static bool audit_has_calls(void *arg)
{
    struct fx *f = arg;
    const char *ha[] = {f->auth_admin, NULL};
    struct resp r;
    bool all = req(&f->d, "GET", "/api/v1/audit?limit=1000", ha, NULL, &r) == 200 && r.body &&
               strstr(r.body, "POST /api/v1/alerts/12345/ack") != NULL &&
               strstr(r.body, "\"POST /api/v1/devices\"") != NULL &&
               strstr(r.body, "\"POST /api/v1/session\"") != NULL;
    resp_free(&r);
    return all;
}

static void test_audit(void **state)
{
    (void)state;
    struct fx f;
    start_fx(&f, NULL);
    add_people(&f);
    struct resp r;
    const char *ho[] = {f.auth_op, NULL};
    req(&f.d, "POST", "/api/v1/alerts/12345/ack", ho, "{}", &r); /* 404, audited */
    resp_free(&r);
    const char *hv[] = {f.auth_view, NULL};
    req(&f.d, "POST", "/api/v1/devices", hv, "{\"id\":\"x-1\"}", &r); /* 403, audited */
    resp_free(&r);
    req(&f.d, "POST", "/api/v1/session", NULL, "{\"user\":\"alice\",\"password\":\"wrongwrong\"}",
        &r);
    resp_free(&r);
    /* GETs are not audited. */
    req(&f.d, "GET", "/api/v1/alerts", hv, NULL, &r);
    resp_free(&r);
    /* Viewers and operators cannot read the audit log. */
    req(&f.d, "GET", "/api/v1/audit", ho, NULL, &r);
    expect_error(&r, 403, "forbidden");
    resp_free(&r);
    const char *ha[] = {f.auth_admin, NULL};
    assert_true(wait_until(audit_has_calls, &f, 5000));
    assert_int_equal(req(&f.d, "GET", "/api/v1/audit?limit=1000", ha, NULL, &r), 200);
    cJSON *rows = cJSON_GetObjectItemCaseSensitive(r.json, "audit");
    /* 3 users + 3 tokens + ack + device + login + the GET /audit 403 (not a GET? it is) */
    bool saw_ack = false, saw_forbidden = false, saw_login = false, saw_user = false;
    cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        const char *action = str_at(row, "action", NULL);
        assert_true(strncmp(action, "GET ", 4) != 0);
        if (strcmp(action, "POST /api/v1/alerts/12345/ack") == 0) {
            saw_ack = true;
            assert_string_equal(str_at(row, "actor", NULL), "token:ci-operator");
            assert_string_equal(str_at(row, "role", NULL), "operator");
            assert_string_equal(str_at(row, "source", NULL), "127.0.0.1");
            assert_int_equal(json_number(row, "status"), 404);
            assert_string_equal(str_at(row, "target", NULL), "alerts/12345");
            assert_string_equal(str_at(row, "detail", NULL), "not_found");
        }
        if (strcmp(action, "POST /api/v1/devices") == 0 && json_number(row, "status") == 403) {
            saw_forbidden = true;
            assert_string_equal(str_at(row, "actor", NULL), "token:grafana");
            assert_string_equal(str_at(row, "detail", NULL), "forbidden");
        }
        if (strcmp(action, "POST /api/v1/session") == 0) {
            saw_login = true;
            assert_int_equal(json_number(row, "status"), 401);
            assert_string_equal(str_at(row, "target", NULL), "alice");
        }
        if (strcmp(action, "POST /api/v1/users") == 0 &&
            strcmp(str_at(row, "target", NULL), "user oscar") == 0) {
            saw_user = true;
            assert_string_equal(str_at(row, "actor", NULL), "admin-token");
            assert_string_equal(str_at(row, "detail", NULL), "role=operator");
        }
    }
    assert_true(saw_ack && saw_forbidden && saw_login && saw_user);
    assert_null(strstr(r.body, PASSWORD_O));
    assert_null(strstr(r.body, "wrongwrong"));
    assert_null(strstr(r.body, f.tok_op));
    int total = cJSON_GetArraySize(rows);
    assert_true(total >= 9);
    resp_free(&r);
    /* Paging like /api/v1/events. */
    assert_int_equal(req(&f.d, "GET", "/api/v1/audit?limit=2", ha, NULL, &r), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "audit")), 2);
    double next = json_number(r.json, "next_before");
    assert_false(isnan(next));
    resp_free(&r);
    char path[80];
    snprintf(path, sizeof path, "/api/v1/audit?limit=1000&before=%.0f", next);
    assert_int_equal(req(&f.d, "GET", path, ha, NULL, &r), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "audit")),
                     total - 2);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "next_before")));
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/audit?limit=0", ha, NULL, &r);
    expect_error(&r, 400, "bad_query");
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/audit?page=2", ha, NULL, &r);
    expect_error(&r, 400, "bad_query");
    resp_free(&r);
    stop_fx(&f);
}

/* Sends raw bytes and returns the status line's code (0 when none came). */
static int raw_status(struct daemon *d, const char *request, size_t len)
{
    int fd = raw_connect(d);
    assert_true(fd >= 0);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    char buf[2048];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && (n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

static void test_hostile_headers(void **state)
{
    (void)state;
    struct fx f;
    start_fx(&f, NULL);
    add_people(&f);
    struct resp r;
    const char *basic[] = {"Authorization: Basic YWxpY2U6cGFzc3dvcmQ=", NULL};
    req(&f.d, "GET", "/api/v1/alerts", basic, NULL, &r);
    expect_error(&r, 401, "unsupported_credentials");
    resp_free(&r);
    const char *bare[] = {"Authorization: Bearer", NULL};
    req(&f.d, "GET", "/api/v1/alerts", bare, NULL, &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    const char *spaces[] = {"Authorization: Bearer     ", NULL};
    req(&f.d, "GET", "/api/v1/alerts", spaces, NULL, &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    char big[400];
    snprintf(big, sizeof big, "Authorization: Bearer %0300d", 7);
    const char *huge[] = {big, NULL};
    req(&f.d, "GET", "/api/v1/alerts", huge, NULL, &r);
    expect_error(&r, 401, "malformed_credentials");
    resp_free(&r);
    /* A token one character off, a prefix of a token, the token with a suffix. */
    char off[120];
    snprintf(off, sizeof off, "%s", f.auth_view);
    off[strlen(off) - 1] = off[strlen(off) - 1] == 'A' ? 'B' : 'A';
    const char *h1[] = {off, NULL};
    req(&f.d, "GET", "/api/v1/alerts", h1, NULL, &r);
    expect_error(&r, 401, "invalid_token");
    resp_free(&r);
    char prefix[120];
    snprintf(prefix, sizeof prefix, "%.*s", (int)strlen(f.auth_view) - 5, f.auth_view);
    const char *h2[] = {prefix, NULL};
    req(&f.d, "GET", "/api/v1/alerts", h2, NULL, &r);
    expect_error(&r, 401, "invalid_token");
    resp_free(&r);
    char suffix[140];
    snprintf(suffix, sizeof suffix, "%sxyz", f.auth_view);
    const char *h3[] = {suffix, NULL};
    req(&f.d, "GET", "/api/v1/alerts", h3, NULL, &r);
    expect_error(&r, 401, "invalid_token");
    resp_free(&r);
    char admin_prefix[120];
    snprintf(admin_prefix, sizeof admin_prefix, "%.*s", (int)strlen(ADMIN_AUTH) - 1, ADMIN_AUTH);
    const char *h4[] = {admin_prefix, NULL};
    req(&f.d, "GET", "/api/v1/users", h4, NULL, &r);
    expect_error(&r, 401, "invalid_token");
    resp_free(&r);
    /* "bearer" in lower case is the same scheme (RFC 7235). */
    char lower[120];
    snprintf(lower, sizeof lower, "Authorization: bearer %s", f.tok_view);
    const char *h5[] = {lower, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/alerts", h5, NULL, &r), 200);
    resp_free(&r);
    /* Cookies: malformed, unknown, among others, oversized. */
    const char *c1[] = {"Cookie: canary_session=short", NULL};
    req(&f.d, "GET", "/api/v1/alerts", c1, NULL, &r);
    expect_error(&r, 401, "malformed_credentials");
    resp_free(&r);
    const char *c2[] = {"Cookie: canary_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL};
    req(&f.d, "GET", "/api/v1/alerts", c2, NULL, &r);
    expect_error(&r, 401, "session_ended");
    resp_free(&r);
    const char *c3[] = {"Cookie: canary_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'; --",
                        NULL};
    req(&f.d, "GET", "/api/v1/alerts", c3, NULL, &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    char cookie[200], csrf[100];
    login(&f.d, "victor", PASSWORD_V, cookie, sizeof cookie, csrf, sizeof csrf);
    char mixed[300];
    snprintf(mixed, sizeof mixed, "Cookie: theme=dark; %s; other=1", cookie + strlen("Cookie: "));
    const char *c4[] = {mixed, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/alerts", c4, NULL, &r), 200);
    resp_free(&r);
    static char cookie_big[9000];
    snprintf(cookie_big, sizeof cookie_big, "Cookie: canary_session=");
    memset(cookie_big + strlen(cookie_big), 'A', 8000);
    const char *c5[] = {cookie_big, NULL};
    req(&f.d, "GET", "/api/v1/alerts", c5, NULL, &r);
    assert_true(r.status == 401 || r.status == 431 || r.status == 413 || r.status == 400);
    resp_free(&r);
    /* Control bytes and NULs on the raw socket. */
    char raw[300];
    int n = snprintf(raw, sizeof raw,
                     "GET /api/v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     "cnu_\x01\x02\x7f%%00\r\nConnection: close\r\n\r\n");
    int st = raw_status(&f.d, raw, (size_t)n);
    assert_true(st == 401 || st == 400);
    char rawnul[200] = "GET /api/v1/alerts HTTP/1.1\r\nHost: x\r\nCookie: canary_session=AA";
    size_t k = strlen(rawnul);
    rawnul[k++] = '\0';
    memcpy(rawnul + k, "BB\r\nConnection: close\r\n\r\n", 26);
    st = raw_status(&f.d, rawnul, k + 26);
    assert_true(st == 401 || st == 400 || st == 0);
    /* The daemon is still fine. */
    assert_int_equal(req(&f.d, "GET", "/healthz", NULL, NULL, &r), 200);
    resp_free(&r);
    stop_fx(&f);
}

static void test_restart_and_secrets(void **state)
{
    (void)state;
    struct fx f;
    start_fx(&f, NULL);
    add_people(&f);
    char cookie[200], csrf[100];
    login(&f.d, "oscar", PASSWORD_O, cookie, sizeof cookie, csrf, sizeof csrf);
    assert_int_equal(daemon_stop(&f.d, SIGTERM), 0);
    daemon_start(&f.d);
    struct resp r;
    /* Users, tokens and sessions survive; access control is on from the first request, even
     * when that is the dashboard asking who is logged in. */
    req(&f.d, "GET", "/api/v1/session", NULL, NULL, &r);
    expect_error(&r, 401, "unauthenticated");
    resp_free(&r);
    req(&f.d, "GET", "/api/v1/alerts", NULL, NULL, &r);
    expect_error(&r, 401, "unauthenticated");
    resp_free(&r);
    const char *hv[] = {f.auth_view, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/alerts", hv, NULL, &r), 200);
    resp_free(&r);
    const char *hc[] = {cookie, NULL};
    assert_int_equal(req(&f.d, "GET", "/api/v1/session", hc, NULL, &r), 200);
    assert_string_equal(str_at(r.json, "user", NULL), "oscar");
    resp_free(&r);
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL,
                         "{\"user\":\"alice\",\"password\":\"" PASSWORD_A "\"}", &r),
                     200);
    resp_free(&r);
    assert_int_equal(daemon_stop(&f.d, SIGTERM), 0);
    /* No password, token or session cookie in clear in the log or the database. */
    const char *secrets[] = {PASSWORD_A,
                             PASSWORD_O,
                             PASSWORD_V,
                             f.tok_admin,
                             f.tok_op,
                             f.tok_view,
                             cookie + strlen("Cookie: canary_session="),
                             csrf + 14};
    const char *files[] = {f.d.log, f.d.db};
    for (size_t i = 0; i < 2; i++) {
        size_t n = 0;
        char *text = slurp(files[i], &n);
        assert_non_null(text);
        for (size_t j = 0; j < sizeof secrets / sizeof secrets[0]; j++) {
            if (j == 7 && i == 1)
                continue; /* the CSRF token is stored as is: it is no credential alone */
            if (memmem(text, n, secrets[j], strlen(secrets[j])) != NULL)
                fail_msg("secret %zu found in %s", j, files[i]);
        }
        free(text);
    }
    daemon_cleanup(&f.d);
}

/* Runs the canary CLI with args (NULL-terminated), stdin from `input` (may be NULL), stdout
 * into out. Returns the exit status. */
static int run_cli(const char *input, char *out, size_t cap, const char *const *args)
{
    int in[2], o[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(o), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(o[1], 1);
        close(in[1]);
        close(o[0]);
        const char *argv[32] = {"canary"};
        int n = 1;
        for (; args[n - 1] != NULL && n < 31; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(CANARY_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    if (input != NULL)
        assert_true(write(in[1], input, strlen(input)) == (ssize_t)strlen(input));
    close(in[1]);
    size_t got = 0;
    ssize_t n;
    while (got < cap - 1 && (n = read(o[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(o[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The value after "<label>: " in CLI output. */
static void cli_value(const char *out, const char *label, char *val, size_t cap)
{
    const char *p = strstr(out, label);
    assert_non_null(p);
    p += strlen(label);
    size_t n = strcspn(p, "\n");
    assert_true(n < cap);
    memcpy(val, p, n);
    val[n] = '\0';
}

static void test_cli(void **state)
{
    (void)state;
    struct fx f;
    start_fx(&f, NULL);
    char out[8192], url[96];
    snprintf(url, sizeof url, "%s", f.d.base_url);
    /* The first admin through the bootstrap admin token, the password from stdin. */
    const char *add[] = {"user",  "add", "alice", "--role", "admin", "--password-stdin",
                         "--url", url,   NULL};
    assert_int_equal(run_cli(PASSWORD_A "\n", out, sizeof out, add), 0);
    assert_non_null(strstr(out, "user alice: role admin"));
    assert_null(strstr(out, PASSWORD_A));
    /* A password on the command line is refused. */
    const char *argv_pw[] = {"user", "add", "bob", "--role", "viewer", "--password", "x", NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, argv_pw), 2);
    /* A generated password, printed once, works. */
    const char *gen[] = {"user", "add", "bob", "--role", "viewer", "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, gen), 0);
    char bob_pw[64];
    cli_value(out, "password: ", bob_pw, sizeof bob_pw);
    char body[200];
    snprintf(body, sizeof body, "{\"user\":\"bob\",\"password\":\"%s\"}", bob_pw);
    struct resp r;
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL, body, &r), 200);
    resp_free(&r);
    /* A token made by the CLI, then used by the CLI instead of the admin token. */
    const char *tok[] = {"token",     "create", "ops",   "--role", "admin",
                         "--expires", "3600",   "--url", url,      NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, tok), 0);
    char token[80];
    cli_value(out, "token: ", token, sizeof token);
    assert_int_equal(strlen(token), 47);
    unsetenv("CANARY_API_ADMIN_TOKEN");
    setenv("CANARY_API_TOKEN", token, 1);
    const char *list[] = {"user", "list", "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, list), 0);
    assert_non_null(strstr(out, "alice"));
    assert_non_null(strstr(out, "bob"));
    /* passwd from a file, disable, enable, role, remove. */
    char pwfile[128];
    snprintf(pwfile, sizeof pwfile, "%s/pw", f.d.dir);
    FILE *fp = fopen(pwfile, "w");
    fputs("bobs-new-password\n", fp);
    fclose(fp);
    const char *pw[] = {"user", "passwd", "bob", "--password-file", pwfile, "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, pw), 0);
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL,
                         "{\"user\":\"bob\",\"password\":\"bobs-new-password\"}", &r),
                     200);
    resp_free(&r);
    const char *dis[] = {"user", "disable", "bob", "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, dis), 0);
    assert_non_null(strstr(out, "disabled"));
    req(&f.d, "POST", "/api/v1/session", NULL,
        "{\"user\":\"bob\",\"password\":\"bobs-new-password\"}", &r);
    expect_error(&r, 401, "login_failed");
    resp_free(&r);
    const char *role[] = {"user", "role", "bob", "--role", "operator", "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, role), 0);
    assert_non_null(strstr(out, "role operator"));
    const char *last[] = {"user", "remove", "alice", "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, last), 1); /* the last admin */
    const char *rm[] = {"user", "remove", "bob", "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, rm), 0);
    const char *tl[] = {"token", "list", "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, tl), 0);
    assert_non_null(strstr(out, "ops"));
    assert_null(strstr(out, token));
    /* canary alerts reads with a viewer's token once access control is on. */
    const char *vt[] = {"token", "create", "watcher", "--role", "viewer", "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, vt), 0);
    char viewer[80];
    cli_value(out, "token: ", viewer, sizeof viewer);
    const char *alerts[] = {"alerts", "--url", url, NULL};
    setenv("CANARY_API_TOKEN", viewer, 1);
    assert_int_equal(run_cli(NULL, out, sizeof out, alerts), 0);
    setenv("CANARY_API_TOKEN", "cnu_not-a-token", 1);
    assert_true(run_cli(NULL, out, sizeof out, alerts) != 0);
    setenv("CANARY_API_TOKEN", token, 1);
    /* The token revokes itself: the next call is refused. */
    const char *rv[] = {"token", "revoke", "1", "--url", url, NULL};
    assert_int_equal(run_cli(NULL, out, sizeof out, rv), 0);
    assert_int_equal(run_cli(NULL, out, sizeof out, list), 1);
    unsetenv("CANARY_API_TOKEN");
    setenv("CANARY_API_ADMIN_TOKEN", ADMIN_TOKEN, 1);
    stop_fx(&f);
}

/* A hash made with weaker scrypt parameters than today's is renewed at the next login. */
static void test_rehash_at_login(void **state)
{
    (void)state;
    struct fx f;
    start_fx(&f, NULL);
    create_user(&f.d, "alice", "admin", PASSWORD_A);
    assert_int_equal(daemon_stop(&f.d, SIGTERM), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f.d.db, &db), SQLITE_OK);
    char weak[PASSWORD_HASH_MAX], err[256], sql[400];
    struct password_params p = {10, 8, 1};
    assert_int_equal(password_hash(PASSWORD_A, strlen(PASSWORD_A), p, weak, err, sizeof err), 0);
    snprintf(sql, sizeof sql, "UPDATE users SET password_hash = '%s' WHERE name = 'alice'", weak);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    daemon_start(&f.d);
    struct resp r;
    assert_int_equal(req(&f.d, "POST", "/api/v1/session", NULL,
                         "{\"user\":\"alice\",\"password\":\"" PASSWORD_A "\"}", &r),
                     200);
    resp_free(&r);
    assert_int_equal(daemon_stop(&f.d, SIGTERM), 0);
    assert_int_equal(sqlite3_open(f.d.db, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT password_hash FROM users WHERE name = 'alice'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *now = (const char *)sqlite3_column_text(st, 0);
    assert_true(strncmp(now, "$scrypt$ln=15$r=8$p=1$", 22) == 0);
    assert_int_equal(password_verify(PASSWORD_A, strlen(PASSWORD_A), now), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    daemon_start(&f.d);
    stop_fx(&f);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_any_user),
        cmocka_unit_test(test_role_matrix),
        cmocka_unit_test(test_sessions_and_csrf),
        cmocka_unit_test(test_session_lifetime),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_streams_end_with_their_credential),
        cmocka_unit_test(test_users_management),
        cmocka_unit_test(test_login_rate_limit),
        cmocka_unit_test(test_audit),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_restart_and_secrets),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_secure_cookie),
        cmocka_unit_test(test_rehash_at_login),
        cmocka_unit_test(test_require_auth),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
