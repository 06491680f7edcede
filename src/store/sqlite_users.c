/* sqlite_users.c — the SQLite engine's access-control tables (schema 6): users, API
 * tokens, dashboard sessions and the audit log; see store.h. Nothing here sees a plaintext
 * secret: passwords come as scrypt strings, tokens and session ids as SHA-256 hashes. */
#include "store/sqlite_internal.h"

#include "core/error.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char *const role_names[] = {"none", "viewer", "operator", "admin"};

const char *store_role_name(enum store_role r)
{
    return (unsigned)r < 4 ? role_names[r] : "none";
}

int store_role_parse(const char *s, enum store_role *out)
{
    for (int r = STORE_ROLE_VIEWER; r <= STORE_ROLE_ADMIN; r++) {
        if (s != NULL && strcmp(s, role_names[r]) == 0) {
            *out = (enum store_role)r;
            return CANARY_OK;
        }
    }
    return CANARY_EINVAL;
}

bool store_user_name_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n >= STORE_USER_NAME_BUF || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '@' || c == '-') || c >= 0x80)
            return false;
    }
    return true;
}

static enum store_role role_col(sqlite3_stmt *st, int col)
{
    enum store_role r = STORE_ROLE_NONE;
    const char *t = (const char *)sqlite3_column_text(st, col);
    if (t == NULL || store_role_parse(t, &r) != 0)
        return STORE_ROLE_NONE; /* corrupt: a role that grants nothing */
    return r;
}

static void hash_col(uint8_t out[STORE_SECRET_HASH_LEN], sqlite3_stmt *st, int col)
{
    memset(out, 0, STORE_SECRET_HASH_LEN);
    if (sqlite3_column_bytes(st, col) == STORE_SECRET_HASH_LEN)
        memcpy(out, sqlite3_column_blob(st, col), STORE_SECRET_HASH_LEN);
}

/* Steps a one-off write statement to its end and finalises it. */
static int run(struct store *s, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT) {
        canary_errf(err, errlen, "%s: already exists", what);
        return CANARY_ECONFLICT;
    }
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, what);
}

/* ---- users ---- */

#define USER_COLS "id, name, role, password_hash, created_ms, updated_ms, disabled_ms"

static void user_row(sqlite3_stmt *st, int c, struct store_user *u)
{
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(st, c);
    sq_copy_text(u->name, sizeof u->name, st, c + 1);
    u->role = role_col(st, c + 2);
    sq_copy_text(u->password_hash, sizeof u->password_hash, st, c + 3);
    u->created_ms = sqlite3_column_int64(st, c + 4);
    u->updated_ms = sqlite3_column_int64(st, c + 5);
    u->disabled_ms = sqlite3_column_int64(st, c + 6);
}

int store_user_add(struct store *s, struct store_user *u, char *err, size_t errlen)
{
    if (!store_user_name_valid(u->name) || u->role == STORE_ROLE_NONE ||
        u->password_hash[0] == '\0') {
        canary_errf(err, errlen, "a user needs a valid name, a role and a password hash");
        return CANARY_EINVAL;
    }
    sqlite3_stmt *st = sq_prepare(s,
                                  "INSERT INTO users(name, role, password_hash, created_ms,"
                                  " updated_ms, disabled_ms) VALUES(?,?,?,?,?,?)",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, u->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, store_role_name(u->role), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, u->password_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, u->created_ms);
    sqlite3_bind_int64(st, 5, u->updated_ms);
    sqlite3_bind_int64(st, 6, u->disabled_ms);
    int rc = run(s, st, "add user", err, errlen);
    if (rc == CANARY_ECONFLICT)
        canary_errf(err, errlen, "a user named '%s' exists", u->name);
    if (rc == 0)
        u->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int store_user_get(struct store *s, const char *name, struct store_user *u, char *err,
                   size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, "SELECT " USER_COLS " FROM users WHERE name = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        user_row(st, 0, u);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return CANARY_OK;
    if (rc == SQLITE_DONE) {
        canary_errf(err, errlen, "no user named '%s'", name);
        return CANARY_ENOTFOUND;
    }
    return sq_fail(s, err, errlen, "read user");
}

int store_users_each(struct store *s, void (*fn)(void *arg, const struct store_user *u), void *arg,
                     char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, "SELECT " USER_COLS " FROM users ORDER BY name", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    int rc;
    struct store_user u;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        user_row(st, 0, &u);
        fn(arg, &u);
    }
    memset(&u, 0, sizeof u);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "list users");
}

int store_users_count(struct store *s, int64_t *users, int64_t *enabled_admins, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT count(*), coalesce(sum(role = 'admin' AND"
                                  " disabled_ms = 0), 0) FROM users",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (users != NULL)
            *users = sqlite3_column_int64(st, 0);
        if (enabled_admins != NULL)
            *enabled_admins = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? CANARY_OK : sq_fail(s, err, errlen, "count users");
}

static int delete_sessions_of(struct store *s, int64_t user_id, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, "DELETE FROM sessions WHERE user_id = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, user_id);
    return run(s, st, "delete sessions", err, errlen);
}

/* Runs body(s, arg) inside BEGIN IMMEDIATE .. COMMIT, rolling back on an error. */
static int in_tx(struct store *s,
                 int (*body)(struct store *s, const void *arg, char *err, size_t errlen),
                 const void *arg, char *err, size_t errlen)
{
    if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
        return CANARY_EIO;
    int rc = body(s, arg, err, errlen);
    if (rc == 0)
        rc = sq_exec(s, "COMMIT", err, errlen);
    if (rc != 0)
        sq_exec(s, "ROLLBACK", NULL, 0);
    return rc;
}

struct user_update {
    const struct store_user *u;
    bool revoke_sessions;
};

static int update_body(struct store *s, const void *arg, char *err, size_t errlen)
{
    const struct user_update *a = arg;
    sqlite3_stmt *st = sq_prepare(s,
                                  "UPDATE users SET role = ?, password_hash = ?, disabled_ms = ?,"
                                  " updated_ms = ? WHERE id = ?",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, store_role_name(a->u->role), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->u->password_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, a->u->disabled_ms);
    sqlite3_bind_int64(st, 4, a->u->updated_ms);
    sqlite3_bind_int64(st, 5, a->u->id);
    int rc = run(s, st, "update user", err, errlen);
    if (rc == 0 && sqlite3_changes(s->db) == 0) {
        canary_errf(err, errlen, "no user with id %lld", (long long)a->u->id);
        return CANARY_ENOTFOUND;
    }
    if (rc == 0 && a->revoke_sessions)
        rc = delete_sessions_of(s, a->u->id, err, errlen);
    return rc;
}

int store_user_update(struct store *s, const struct store_user *u, bool revoke_sessions, char *err,
                      size_t errlen)
{
    if (u->role == STORE_ROLE_NONE || u->password_hash[0] == '\0') {
        canary_errf(err, errlen, "a user needs a role and a password hash");
        return CANARY_EINVAL;
    }
    struct user_update a = {u, revoke_sessions};
    return in_tx(s, update_body, &a, err, errlen);
}

static int remove_body(struct store *s, const void *arg, char *err, size_t errlen)
{
    int64_t id = *(const int64_t *)arg;
    sqlite3_stmt *st = sq_prepare(s, "DELETE FROM users WHERE id = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, id);
    int rc = run(s, st, "remove user", err, errlen);
    if (rc == 0 && sqlite3_changes(s->db) == 0) {
        canary_errf(err, errlen, "no user with id %lld", (long long)id);
        return CANARY_ENOTFOUND;
    }
    return rc == 0 ? delete_sessions_of(s, id, err, errlen) : rc;
}

int store_user_remove(struct store *s, int64_t id, char *err, size_t errlen)
{
    return in_tx(s, remove_body, &id, err, errlen);
}

/* ---- API tokens ---- */

static void token_row(sqlite3_stmt *st, struct store_api_token *t, bool *user_ok)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    t->user_id = sqlite3_column_int64(st, 1);
    sq_copy_text(t->user, sizeof t->user, st, 2);
    sq_copy_text(t->name, sizeof t->name, st, 3);
    t->role = role_col(st, 4);
    hash_col(t->hash, st, 5);
    t->created_ms = sqlite3_column_int64(st, 6);
    t->expires_ms = sqlite3_column_int64(st, 7);
    t->revoked_ms = sqlite3_column_int64(st, 8);
    t->last_used_ms = sqlite3_column_int64(st, 9);
    if (user_ok != NULL)
        *user_ok = sqlite3_column_int(st, 10) != 0;
}

int store_token_add(struct store *s, struct store_api_token *t, char *err, size_t errlen)
{
    if (t->name[0] == '\0' || t->role == STORE_ROLE_NONE) {
        canary_errf(err, errlen, "a token needs a name and a role");
        return CANARY_EINVAL;
    }
    sqlite3_stmt *st = sq_prepare(s,
                                  "INSERT INTO api_tokens(user_id, name, role, token_hash,"
                                  " created_ms, expires_ms) VALUES(?,?,?,?,?,?)",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, t->user_id);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, store_role_name(t->role), -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, t->hash, STORE_SECRET_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, t->created_ms);
    sqlite3_bind_int64(st, 6, t->expires_ms);
    int rc = run(s, st, "add token", err, errlen);
    if (rc == 0)
        t->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int store_token_find(struct store *s, const uint8_t hash[STORE_SECRET_HASH_LEN],
                     struct store_api_token *t, bool *user_ok, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_stmt(s, ST_TOKEN_FIND);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare token lookup");
    sqlite3_bind_blob(st, 1, hash, STORE_SECRET_HASH_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        token_row(st, t, user_ok);
    sqlite3_reset(st); /* ends the read: a cached statement must not hold a snapshot */
    if (rc == SQLITE_ROW)
        return CANARY_OK;
    return rc == SQLITE_DONE ? CANARY_ENOTFOUND : sq_fail(s, err, errlen, "read token");
}

int store_tokens_each(struct store *s, void (*fn)(void *arg, const struct store_api_token *t),
                      void *arg, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT " SQ_TOKEN_COLS " FROM api_tokens t LEFT JOIN users u"
                                  " ON u.id = t.user_id ORDER BY t.id DESC",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    int rc;
    struct store_api_token t;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        token_row(st, &t, NULL);
        fn(arg, &t);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "list tokens");
}

int store_token_revoke(struct store *s, int64_t id, int64_t now_ms, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(
        s, "UPDATE api_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms = 0", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, id);
    int rc = run(s, st, "revoke token", err, errlen);
    if (rc == 0 && sqlite3_changes(s->db) == 0) {
        canary_errf(err, errlen, "no valid token with id %lld", (long long)id);
        return CANARY_ENOTFOUND;
    }
    return rc;
}

int store_token_touch(struct store *s, int64_t id, int64_t now_ms, char *err, size_t errlen)
{
    sqlite3_stmt *st =
        sq_prepare(s, "UPDATE api_tokens SET last_used_ms = ? WHERE id = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, id);
    return run(s, st, "touch token", err, errlen);
}

/* ---- sessions ---- */

struct session_add {
    const struct store_session *ss;
    int64_t now_ms, idle_before_ms;
};

static int session_add_body(struct store *s, const void *arg, char *err, size_t errlen)
{
    const struct session_add *a = arg;
    sqlite3_stmt *st = sq_prepare(
        s, "DELETE FROM sessions WHERE expires_ms <= ? OR last_seen_ms < ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, a->now_ms);
    sqlite3_bind_int64(st, 2, a->idle_before_ms);
    if (run(s, st, "purge sessions", err, errlen) != 0)
        return CANARY_EIO;
    st = sq_prepare(s,
                    "INSERT INTO sessions(id_hash, user_id, csrf, source, created_ms, expires_ms,"
                    " last_seen_ms) VALUES(?,?,?,?,?,?,?)",
                    err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_blob(st, 1, a->ss->id_hash, STORE_SECRET_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, a->ss->user_id);
    sqlite3_bind_text(st, 3, a->ss->csrf, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->ss->source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, a->ss->created_ms);
    sqlite3_bind_int64(st, 6, a->ss->expires_ms);
    sqlite3_bind_int64(st, 7, a->ss->last_seen_ms);
    return run(s, st, "add session", err, errlen);
}

int store_session_add(struct store *s, const struct store_session *ss, int64_t now_ms,
                      int64_t idle_before_ms, char *err, size_t errlen)
{
    struct session_add a = {ss, now_ms, idle_before_ms};
    return in_tx(s, session_add_body, &a, err, errlen);
}

int store_session_find(struct store *s, const uint8_t hash[STORE_SECRET_HASH_LEN],
                       struct store_session *ss, struct store_user *u, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_stmt(s, ST_SESSION_FIND);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare session lookup");
    sqlite3_bind_blob(st, 1, hash, STORE_SECRET_HASH_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(ss, 0, sizeof *ss);
        hash_col(ss->id_hash, st, 0);
        ss->user_id = sqlite3_column_int64(st, 1);
        sq_copy_text(ss->csrf, sizeof ss->csrf, st, 2);
        sq_copy_text(ss->source, sizeof ss->source, st, 3);
        ss->created_ms = sqlite3_column_int64(st, 4);
        ss->expires_ms = sqlite3_column_int64(st, 5);
        ss->last_seen_ms = sqlite3_column_int64(st, 6);
        user_row(st, 7, u);
    }
    sqlite3_reset(st); /* ends the read: a cached statement must not hold a snapshot */
    if (rc == SQLITE_ROW)
        return CANARY_OK;
    return rc == SQLITE_DONE ? CANARY_ENOTFOUND : sq_fail(s, err, errlen, "read session");
}

int store_session_touch(struct store *s, const uint8_t hash[STORE_SECRET_HASH_LEN], int64_t now_ms,
                        char *err, size_t errlen)
{
    sqlite3_stmt *st =
        sq_prepare(s, "UPDATE sessions SET last_seen_ms = ? WHERE id_hash = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_blob(st, 2, hash, STORE_SECRET_HASH_LEN, SQLITE_STATIC);
    return run(s, st, "touch session", err, errlen);
}

int store_session_delete(struct store *s, const uint8_t hash[STORE_SECRET_HASH_LEN], char *err,
                         size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, "DELETE FROM sessions WHERE id_hash = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_blob(st, 1, hash, STORE_SECRET_HASH_LEN, SQLITE_STATIC);
    return run(s, st, "delete session", err, errlen);
}

/* ---- the audit log ---- */

int store_audit_add(struct store *s, struct store_audit *a, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "INSERT INTO audit_log(ts_ms, actor, role, source, action,"
                                  " target, status, detail) VALUES(?,?,?,?,?,?,?,?)",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, a->ts_ms);
    sqlite3_bind_text(st, 2, a->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, a->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, a->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, a->target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, a->status);
    sqlite3_bind_text(st, 8, a->detail, -1, SQLITE_STATIC);
    int rc = run(s, st, "add audit row", err, errlen);
    if (rc == 0)
        a->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int store_audit_each(struct store *s, uint64_t before, size_t limit,
                     void (*fn)(void *arg, const struct store_audit *a), void *arg, size_t *n,
                     char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT id, ts_ms, actor, role, source, action, target, status,"
                                  " detail FROM audit_log WHERE ?1 = 0 OR id < ?1"
                                  " ORDER BY id DESC LIMIT ?2",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)before);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    int rc;
    size_t count = 0;
    struct store_audit a;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&a, 0, sizeof a);
        a.id = sqlite3_column_int64(st, 0);
        a.ts_ms = sqlite3_column_int64(st, 1);
        sq_copy_text(a.actor, sizeof a.actor, st, 2);
        sq_copy_text(a.role, sizeof a.role, st, 3);
        sq_copy_text(a.source, sizeof a.source, st, 4);
        sq_copy_text(a.action, sizeof a.action, st, 5);
        sq_copy_text(a.target, sizeof a.target, st, 6);
        a.status = (unsigned)sqlite3_column_int64(st, 7);
        sq_copy_text(a.detail, sizeof a.detail, st, 8);
        fn(arg, &a);
        count++;
    }
    sqlite3_finalize(st);
    if (n != NULL)
        *n = count;
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "list audit rows");
}
