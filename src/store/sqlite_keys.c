/* sqlite_keys.c — the SQLite engine's device_keys table (schema 5): device credentials as
 * sealed keys and token hashes, with versions for rotation and revocation; see store.h.
 * Nothing here sees a plaintext secret. */
#include "store/sqlite_internal.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

const char *store_key_kind_name(enum store_key_kind k)
{
    return k == STORE_KEY_TOKEN ? "token" : "hmac";
}

static int run(struct store *s, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, what);
}

int store_key_next_version(struct store *s, const char *device, enum store_key_kind kind,
                           uint32_t *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(
        s, "SELECT coalesce(max(version), 0) FROM device_keys WHERE device = ? AND kind = ?", err,
        errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, store_key_kind_name(kind), -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return sq_fail(s, err, errlen, "read key version");
    }
    *out = (uint32_t)sqlite3_column_int64(st, 0) + 1;
    sqlite3_finalize(st);
    return CANARY_OK;
}

static int add_in_tx(struct store *s, const struct store_device_key *k, int64_t overlap_until_ms,
                     char *err, size_t errlen)
{
    const char *kind = store_key_kind_name(k->kind);
    sqlite3_stmt *st;
    if (overlap_until_ms != 0) {
        /* The earlier keys stay valid until the overlap ends (or their own earlier end). */
        st = sq_prepare(s,
                        "UPDATE device_keys SET expires_ms = ?3 WHERE device = ?1 AND kind = ?2"
                        " AND revoked_ms = 0 AND (expires_ms = 0 OR expires_ms > ?3)",
                        err, errlen);
        if (st == NULL)
            return CANARY_EIO;
        sqlite3_bind_text(st, 1, k->device, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, overlap_until_ms);
        if (run(s, st, "end the old keys", err, errlen) != 0)
            return CANARY_EIO;
    }
    st = sq_prepare(s,
                    "INSERT INTO device_keys(device, kind, version, material, created_ms,"
                    " expires_ms, revoked_ms) VALUES(?,?,?,?,?,?,0)",
                    err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, k->device, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, k->version);
    sqlite3_bind_blob(st, 4, k->material, (int)k->material_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, k->created_ms);
    sqlite3_bind_int64(st, 6, k->expires_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT) {
        canary_errf(err, errlen, "device '%s' already has %s version %u", k->device, kind,
                    k->version);
        return CANARY_ECONFLICT;
    }
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "insert key");
}

int store_key_add(struct store *s, const struct store_device_key *k, int64_t overlap_until_ms,
                  char *err, size_t errlen)
{
    if (k->material_len == 0 || k->material_len > STORE_KEY_MATERIAL_MAX) {
        canary_errf(err, errlen, "a key's material is 1 to %d bytes", STORE_KEY_MATERIAL_MAX);
        return CANARY_EINVAL;
    }
    if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
        return CANARY_EIO;
    int rc = add_in_tx(s, k, overlap_until_ms, err, errlen);
    if (rc == 0)
        rc = sq_exec(s, "COMMIT", err, errlen);
    if (rc != 0)
        sq_exec(s, "ROLLBACK", NULL, 0);
    return rc;
}

int store_keys_each(struct store *s, const char *device,
                    void (*fn)(void *arg, const struct store_device_key *k), void *arg, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT device, kind, version, material, created_ms,"
                                  " expires_ms, revoked_ms FROM device_keys"
                                  " WHERE ?1 IS NULL OR device = ?1 ORDER BY device, kind, version",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    if (device != NULL)
        sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
    int rc;
    struct store_device_key k;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&k, 0, sizeof k);
        sq_copy_text(k.device, sizeof k.device, st, 0);
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        k.kind = kind != NULL && strcmp(kind, "token") == 0 ? STORE_KEY_TOKEN : STORE_KEY_HMAC;
        k.version = (uint32_t)sqlite3_column_int64(st, 2);
        int n = sqlite3_column_bytes(st, 3);
        if (n < 0 || n > STORE_KEY_MATERIAL_MAX)
            n = 0; /* corrupt: an empty material matches nothing */
        if (n > 0)
            memcpy(k.material, sqlite3_column_blob(st, 3), (size_t)n);
        k.material_len = (size_t)n;
        k.created_ms = sqlite3_column_int64(st, 4);
        k.expires_ms = sqlite3_column_int64(st, 5);
        k.revoked_ms = sqlite3_column_int64(st, 6);
        fn(arg, &k);
    }
    memset(&k, 0, sizeof k);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "list keys");
}

int store_keys_revoke(struct store *s, const char *device, int64_t now_ms, size_t *n, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st =
        sq_prepare(s, "UPDATE device_keys SET revoked_ms = ? WHERE device = ? AND revoked_ms = 0",
                   err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_text(st, 2, device, -1, SQLITE_STATIC);
    int rc = run(s, st, "revoke keys", err, errlen);
    if (rc == 0 && n != NULL)
        *n = (size_t)sqlite3_changes(s->db);
    return rc;
}
