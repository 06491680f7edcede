/* api_users.c — managing who may use canaryd, over the REST API (admin only; the role check
 * is api_access_check()'s, docs/ACCESS.md):
 *
 *   POST   /api/v1/users          {"name","role","password"?}: without a password one is
 *                                 generated and returned ONCE
 *   GET    /api/v1/users          names, roles, states (never a hash)
 *   PATCH  /api/v1/users/<name>   {"role"?,"password"?,"disabled"?}; a new password, a
 *                                 lower role or disabling ends the user's sessions
 *   DELETE /api/v1/users/<name>   removes the user and their sessions
 *   POST   /api/v1/tokens         {"name","role","expires_in_s"?}: a new API token, returned
 *                                 ONCE ("cnu_" + 43 base64url characters)
 *   GET    /api/v1/tokens         every token, never the secret
 *   DELETE /api/v1/tokens/<id>    revokes it
 *   GET    /api/v1/audit          the audit log, newest first, paged with before/limit
 *
 * The last enabled admin cannot be removed, disabled or demoted (409): access control
 * would otherwise lock everyone out, or — with no user left — switch itself off. Before the
 * first user exists these calls need api.admin_token (the bootstrap credential). */
#include "api/api.h"

#include "access/password.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "verify/jws.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GENERATED_PASSWORD_LEN 20 /* base64url characters: 120 bits */
#define TOKEN_TEXT_LEN         (4 + 43)
#define AUDIT_LIST_MAX         1000

static cJSON *user_json(const struct store_user *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)u->id);
    cJSON_AddStringToObject(o, "name", u->name);
    cJSON_AddStringToObject(o, "role", store_role_name(u->role));
    cJSON_AddBoolToObject(o, "disabled", u->disabled_ms != 0);
    cJSON_AddNumberToObject(o, "created_ms", (double)u->created_ms);
    cJSON_AddNumberToObject(o, "updated_ms", (double)u->updated_ms);
    return o;
}

static enum MHD_Result store_error(struct request *req, int rc, const char *err)
{
    if (rc == CANARY_ENOTFOUND)
        return api_respond_error(req, 404, "not_found", NULL, "%s", err);
    if (rc == CANARY_ECONFLICT)
        return api_respond_error(req, 409, "conflict", NULL, "%s", err);
    if (rc == CANARY_EINVAL)
        return api_respond_error(req, 400, "invalid_field", NULL, "%s", err);
    return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
}

/* Reads an optional "role" member. Returns false after answering 400. */
static bool role_field(struct request *req, const cJSON *body, enum store_role *out)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(body, "role");
    if (r == NULL)
        return true;
    if (!cJSON_IsString(r) || store_role_parse(r->valuestring, out) != 0) {
        api_respond_error(req, 400, "invalid_field", "role",
                          "must be \"admin\", \"operator\" or \"viewer\"");
        return false;
    }
    return true;
}

/* Hashes the body's "password" (or a generated one, copied to generated) into hash.
 * Returns false after answering. */
static bool password_field(struct request *req, const cJSON *body, bool required,
                           char hash[PASSWORD_HASH_MAX], char *generated, size_t gen_cap,
                           bool *present)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "password");
    char err[256];
    *present = p != NULL;
    if (p == NULL && !required) {
        generated[0] = '\0';
        return true;
    }
    const char *pw;
    if (p == NULL) {
        if (password_generate(generated, gen_cap, GENERATED_PASSWORD_LEN) != 0) {
            api_respond_error(req, 503, "unavailable", NULL, "no randomness (OpenSSL)");
            return false;
        }
        pw = generated;
    } else {
        if (!cJSON_IsString(p)) {
            api_respond_error(req, 400, "invalid_field", "password", "must be a string");
            return false;
        }
        if (password_policy_check(p->valuestring, strlen(p->valuestring), err, sizeof err) != 0) {
            api_respond_error(req, 400, "invalid_field", "password", "%s", err);
            return false;
        }
        pw = p->valuestring;
        generated[0] = '\0';
    }
    int rc = password_hash(pw, strlen(pw), password_default_params(), hash, err, sizeof err);
    if (p != NULL)
        OPENSSL_cleanse(p->valuestring, strlen(p->valuestring));
    if (rc != 0) {
        api_respond_error(req, 503, "unavailable", NULL, "%s", err);
        return false;
    }
    return true;
}

enum MHD_Result api_user_create(struct request *req)
{
    static const char *const fields[] = {"name", "role", "password", NULL};
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    cJSON *body = api_body_object(req, fields);
    if (body == NULL)
        return MHD_YES;
    struct store_user u;
    memset(&u, 0, sizeof u);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(body, "name");
    if (!cJSON_IsString(n) || !store_user_name_valid(n->valuestring)) {
        cJSON_Delete(body);
        return api_respond_error(req, 400, "invalid_field", "name",
                                 "must be 1 to 64 letters, digits and . _ @ -, starting with a "
                                 "letter or digit");
    }
    snprintf(u.name, sizeof u.name, "%s", n->valuestring);
    snprintf(req->audit_target, sizeof req->audit_target, "user %s", u.name);
    u.role = STORE_ROLE_NONE;
    if (!role_field(req, body, &u.role)) {
        cJSON_Delete(body);
        return MHD_YES;
    }
    if (u.role == STORE_ROLE_NONE) {
        cJSON_Delete(body);
        return api_respond_error(req, 400, "invalid_field", "role",
                                 "is required: \"admin\", \"operator\" or \"viewer\"");
    }
    char generated[GENERATED_PASSWORD_LEN + 1];
    bool present;
    bool ok =
        password_field(req, body, true, u.password_hash, generated, sizeof generated, &present);
    cJSON_Delete(body);
    if (!ok)
        return MHD_YES;
    u.created_ms = u.updated_ms = clock_wall_ms();
    char err[256];
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = store_user_add(req->api->admin, &u, err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    api_access_users_changed(req->api->access);
    stream_hub_recheck(req->api->stream); /* e.g. streams opened without a credential end */
    if (rc != 0) {
        OPENSSL_cleanse(generated, sizeof generated);
        return store_error(req, rc, err);
    }
    log_info("api.user_created", "user=%s role=%s by=%s", u.name, store_role_name(u.role),
             req->who.name[0] ? req->who.name : "-");
    snprintf(req->audit_detail, sizeof req->audit_detail, "role=%s", store_role_name(u.role));
    cJSON *o = user_json(&u);
    if (generated[0] != '\0') /* the only time it leaves canaryd */
        cJSON_AddStringToObject(o, "password", generated);
    OPENSSL_cleanse(generated, sizeof generated);
    return api_respond_json(req, 201, o, NULL);
}

static void list_user(void *arg, const struct store_user *u)
{
    cJSON_AddItemToArray(arg, user_json(u));
}

enum MHD_Result api_users_list(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    cJSON *arr = cJSON_CreateArray();
    char err[256];
    int rc = store_users_each(s, list_user, arr, err, sizeof err);
    api_reader_release(req, s);
    if (rc != 0) {
        cJSON_Delete(arr);
        return store_error(req, rc, err);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "users", arr);
    return api_respond_json(req, 200, root, NULL);
}

/* The user named by the path, read on the admin handle (the caller holds admin_lock).
 * Returns 0, or an error with err. */
static int path_user(struct request *req, struct store_user *u, char *err, size_t errlen)
{
    const char *name = req->segments[3];
    if (!store_user_name_valid(name)) {
        snprintf(err, errlen, "not a valid user name");
        return CANARY_EINVAL;
    }
    return store_user_get(req->api->admin, name, u, err, errlen);
}

/* Would this change leave no enabled admin? */
static bool last_admin(struct request *req, const struct store_user *before, bool stays_admin,
                       char *err, size_t errlen)
{
    if (before->role != STORE_ROLE_ADMIN || before->disabled_ms != 0 || stays_admin)
        return false;
    int64_t admins = 0;
    if (store_users_count(req->api->admin, NULL, &admins, err, errlen) != 0)
        return false;
    if (admins > 1)
        return false;
    snprintf(err, errlen,
             "'%s' is the last enabled admin: make another admin first (or access control "
             "would lock everyone out)",
             before->name);
    return true;
}

enum MHD_Result api_user_patch(struct request *req)
{
    static const char *const fields[] = {"role", "password", "disabled", NULL};
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    snprintf(req->audit_target, sizeof req->audit_target, "user %.64s", req->segments[3]);
    cJSON *body = api_body_object(req, fields);
    if (body == NULL)
        return MHD_YES;
    enum store_role role = STORE_ROLE_NONE;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(body, "disabled");
    if (d != NULL && !cJSON_IsBool(d)) {
        cJSON_Delete(body);
        return api_respond_error(req, 400, "invalid_field", "disabled", "must be true or false");
    }
    bool set_disabled = d != NULL, disable = cJSON_IsTrue(d);
    if (!role_field(req, body, &role)) {
        cJSON_Delete(body);
        return MHD_YES;
    }
    char hash[PASSWORD_HASH_MAX], generated[4];
    bool new_password;
    bool ok = password_field(req, body, false, hash, generated, sizeof generated, &new_password);
    cJSON_Delete(body);
    if (!ok)
        return MHD_YES;
    char err[256];
    struct store_user u;
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = path_user(req, &u, err, sizeof err);
    struct store_user before = u;
    if (rc == 0) {
        if (role != STORE_ROLE_NONE)
            u.role = role;
        if (set_disabled)
            u.disabled_ms = disable ? (u.disabled_ms ? u.disabled_ms : clock_wall_ms()) : 0;
        if (new_password)
            snprintf(u.password_hash, sizeof u.password_hash, "%s", hash);
        u.updated_ms = clock_wall_ms();
        if (last_admin(req, &before, u.role == STORE_ROLE_ADMIN && u.disabled_ms == 0, err,
                       sizeof err))
            rc = CANARY_ECONFLICT;
    }
    bool end_sessions = rc == 0 && (new_password || u.disabled_ms != 0 || u.role < before.role);
    if (rc == 0)
        rc = store_user_update(req->api->admin, &u, end_sessions, err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    OPENSSL_cleanse(hash, sizeof hash);
    if (rc != 0)
        return store_error(req, rc, err);
    stream_hub_recheck(req->api->stream); /* a disabled user's live streams end */
    log_info("api.user_changed", "user=%s role=%s disabled=%s password_changed=%s by=%s", u.name,
             store_role_name(u.role), u.disabled_ms ? "true" : "false",
             new_password ? "true" : "false", req->who.name[0] ? req->who.name : "-");
    snprintf(req->audit_detail, sizeof req->audit_detail, "role=%s disabled=%s%s",
             store_role_name(u.role), u.disabled_ms ? "true" : "false",
             new_password ? " password changed" : "");
    cJSON *o = user_json(&u);
    cJSON_AddBoolToObject(o, "sessions_ended", end_sessions);
    return api_respond_json(req, 200, o, NULL);
}

enum MHD_Result api_user_delete(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    snprintf(req->audit_target, sizeof req->audit_target, "user %.64s", req->segments[3]);
    char err[256];
    struct store_user u;
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = path_user(req, &u, err, sizeof err);
    if (rc == 0 && last_admin(req, &u, false, err, sizeof err))
        rc = CANARY_ECONFLICT;
    if (rc == 0)
        rc = store_user_remove(req->api->admin, u.id, err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    api_access_users_changed(req->api->access);
    stream_hub_recheck(req->api->stream); /* e.g. streams opened without a credential end */
    if (rc != 0)
        return store_error(req, rc, err);
    log_info("api.user_removed", "user=%s by=%s", u.name, req->who.name[0] ? req->who.name : "-");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "removed", u.name);
    return api_respond_json(req, 200, o, NULL);
}

/* ---- API tokens ------------------------------------------------------------------------- */

static cJSON *token_json(const struct store_api_token *t, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)t->id);
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "role", store_role_name(t->role));
    cJSON_AddStringToObject(o, "created_by", t->user_id == 0 ? "admin-token" : t->user);
    cJSON_AddNumberToObject(o, "created_ms", (double)t->created_ms);
    const char *state = t->revoked_ms != 0                           ? "revoked"
                        : t->expires_ms != 0 && now >= t->expires_ms ? "expired"
                                                                     : "active";
    cJSON_AddStringToObject(o, "state", state);
#define TIME_OR_NULL(name, v)                                                                      \
    do {                                                                                           \
        if ((v) != 0)                                                                              \
            cJSON_AddNumberToObject(o, name, (double)(v));                                         \
        else                                                                                       \
            cJSON_AddNullToObject(o, name);                                                        \
    } while (0)
    TIME_OR_NULL("expires_ms", t->expires_ms);
    TIME_OR_NULL("revoked_ms", t->revoked_ms);
    TIME_OR_NULL("last_used_ms", t->last_used_ms);
#undef TIME_OR_NULL
    return o;
}

enum MHD_Result api_token_create(struct request *req)
{
    static const char *const fields[] = {"name", "role", "expires_in_s", NULL};
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    cJSON *body = api_body_object(req, fields);
    if (body == NULL)
        return MHD_YES;
    struct store_api_token t;
    memset(&t, 0, sizeof t);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(body, "name");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(body, "expires_in_s");
    enum store_role role = STORE_ROLE_NONE;
    const char *bad = NULL;
    if (!cJSON_IsString(n) || !store_user_name_valid(n->valuestring))
        bad = "name";
    else if (e != NULL && (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 3.16e8))
        bad = "expires_in_s";
    if (bad == NULL && !role_field(req, body, &role)) {
        cJSON_Delete(body);
        return MHD_YES;
    }
    if (bad == NULL && role == STORE_ROLE_NONE)
        bad = "role";
    if (bad != NULL) {
        cJSON_Delete(body);
        return api_respond_error(
            req, 400, "invalid_field", bad, "%s",
            strcmp(bad, "name") == 0 ? "must be a label of 1 to 64 letters, digits and . _ @ -"
            : strcmp(bad, "role") == 0
                ? "is required: \"admin\", \"operator\" or \"viewer\""
                : "must be a number of seconds from 1 to 316000000 (about ten years)");
    }
    snprintf(t.name, sizeof t.name, "%s", n->valuestring);
    int64_t now = clock_wall_ms();
    t.role = role;
    t.user_id =
        req->who.kind == API_AUTH_SESSION || req->who.kind == API_AUTH_TOKEN ? req->who.user_id : 0;
    t.created_ms = now;
    t.expires_ms = e != NULL ? now + (int64_t)(e->valuedouble * 1000) : 0;
    cJSON_Delete(body);
    snprintf(req->audit_target, sizeof req->audit_target, "token %s", t.name);
    /* A token never has more power than its maker. */
    if ((int)role > req->who.role && req->who.kind != API_AUTH_NONE)
        return api_respond_error(req, 403, "forbidden", "role",
                                 "a token cannot have a higher role than its maker (%s)",
                                 store_role_name((enum store_role)req->who.role));
    uint8_t raw[32];
    char secret[TOKEN_TEXT_LEN + 1];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return api_respond_error(req, 503, "unavailable", NULL, "no randomness (OpenSSL)");
    memcpy(secret, "cnu_", 4);
    b64url_encode(raw, sizeof raw, secret + 4, sizeof secret - 4);
    OPENSSL_cleanse(raw, sizeof raw);
    SHA256((const unsigned char *)secret, TOKEN_TEXT_LEN, t.hash);
    char err[256];
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = store_token_add(req->api->admin, &t, err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    if (rc != 0) {
        OPENSSL_cleanse(secret, sizeof secret);
        return store_error(req, rc, err);
    }
    snprintf(t.user, sizeof t.user, "%.64s",
             req->who.kind == API_AUTH_SESSION ? req->who.name : "");
    log_info("api.token_created", "id=%lld name=%s role=%s by=%s", (long long)t.id, t.name,
             store_role_name(t.role), req->who.name[0] ? req->who.name : "-");
    snprintf(req->audit_detail, sizeof req->audit_detail, "id=%lld role=%s", (long long)t.id,
             store_role_name(t.role));
    cJSON *o = token_json(&t, now);
    cJSON_AddStringToObject(o, "token", secret); /* the only time it leaves canaryd */
    OPENSSL_cleanse(secret, sizeof secret);
    return api_respond_json(req, 201, o, NULL);
}

struct token_list {
    cJSON *arr;
    int64_t now;
};

static void list_token(void *arg, const struct store_api_token *t)
{
    struct token_list *l = arg;
    cJSON_AddItemToArray(l->arr, token_json(t, l->now));
}

enum MHD_Result api_tokens_list(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    struct token_list l = {cJSON_CreateArray(), clock_wall_ms()};
    char err[256];
    int rc = store_tokens_each(s, list_token, &l, err, sizeof err);
    api_reader_release(req, s);
    if (rc != 0) {
        cJSON_Delete(l.arr);
        return store_error(req, rc, err);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "tokens", l.arr);
    return api_respond_json(req, 200, root, NULL);
}

enum MHD_Result api_token_delete(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    const char *seg = req->segments[3];
    char *end;
    errno = 0;
    long long id = strtoll(seg, &end, 10);
    if (seg[0] < '1' || seg[0] > '9' || *end != '\0' || errno != 0)
        return api_respond_error(req, 400, "invalid_field", "id",
                                 "must be a token id (a whole number from 1)");
    snprintf(req->audit_target, sizeof req->audit_target, "token %lld", id);
    char err[256];
    int64_t now = clock_wall_ms();
    pthread_mutex_lock(&req->api->admin_lock);
    int rc = store_token_revoke(req->api->admin, id, now, err, sizeof err);
    pthread_mutex_unlock(&req->api->admin_lock);
    if (rc != 0)
        return store_error(req, rc, err);
    stream_hub_recheck(req->api->stream); /* its live streams end */
    log_info("api.token_revoked", "id=%lld by=%s", id, req->who.name[0] ? req->who.name : "-");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddNumberToObject(o, "revoked_ms", (double)now);
    return api_respond_json(req, 200, o, NULL);
}

/* ---- the audit log ------------------------------------------------------------------------ */

static void list_audit(void *arg, const struct store_audit *a)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)a->id);
    cJSON_AddNumberToObject(o, "ts_ms", (double)a->ts_ms);
    cJSON_AddStringToObject(o, "actor", a->actor);
    cJSON_AddStringToObject(o, "role", a->role);
    cJSON_AddStringToObject(o, "source", a->source);
    cJSON_AddStringToObject(o, "action", a->action);
    cJSON_AddStringToObject(o, "target", a->target);
    cJSON_AddNumberToObject(o, "status", a->status);
    cJSON_AddStringToObject(o, "detail", a->detail);
    cJSON_AddItemToArray(arg, o);
}

enum MHD_Result api_audit_list(struct request *req)
{
    static const char *const params[] = {"before", "limit", NULL};
    uint64_t limit = 100, before = 0;
    if (!api_query_check(req, params) || !api_query_uint(req, "limit", 1, AUDIT_LIST_MAX, &limit) ||
        !api_query_uint(req, "before", 1, INT64_MAX, &before))
        return MHD_YES;
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    cJSON *arr = cJSON_CreateArray();
    char err[256];
    size_t n = 0;
    int rc = store_audit_each(s, before, limit, list_audit, arr, &n, err, sizeof err);
    api_reader_release(req, s);
    if (rc != 0) {
        cJSON_Delete(arr);
        return store_error(req, rc, err);
    }
    uint64_t last = 0;
    if (n > 0)
        last = (uint64_t)cJSON_GetNumberValue(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, (int)n - 1), "id"));
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "audit", arr);
    api_add_next_before(root, n == limit, last);
    return api_respond_json(req, 200, root, NULL);
}
