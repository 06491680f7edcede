/* sqlite_trust.c — the SQLite engine's device_trust table (schema 7): each device's trust
 * score, state and findings as the tamper checks left them, and who last released it; see
 * store.h. */
#include "store/sqlite_internal.h"

#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool state_valid(const char *s)
{
    return strcmp(s, "trusted") == 0 || strcmp(s, "suspect") == 0 || strcmp(s, "quarantined") == 0;
}

int sq_trust_check(const struct store_trust *t, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (!state_valid(t[i].state)) {
            snprintf(err, errlen,
                     "trust of %s: state '%.16s' is not trusted, suspect or "
                     "quarantined",
                     t[i].device, t[i].state);
            return CANARY_EINVAL;
        }
        if (!(t[i].score >= 0 && t[i].score <= 1)) {
            snprintf(err, errlen, "trust of %s: score %g is outside 0..1", t[i].device, t[i].score);
            return CANARY_EINVAL;
        }
    }
    return CANARY_OK;
}

int sq_write_trust(struct store *s, const struct store_trust *t, size_t n, const bool *keep,
                   bool keep_all, char *err, size_t errlen)
{
    if (n == 0)
        return CANARY_OK;
    sqlite3_stmt *st = sq_prepare(
        s,
        "INSERT INTO device_trust(device, state, score, since_ms, updated_ms, reasons,"
        " released_ms, released_by) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)"
        " ON CONFLICT(device) DO UPDATE SET state = excluded.state, score = excluded.score,"
        " since_ms = excluded.since_ms, updated_ms = excluded.updated_ms,"
        " reasons = CASE WHEN ?9 THEN reasons ELSE excluded.reasons END,"
        " released_ms = CASE WHEN excluded.released_ms != 0 THEN excluded.released_ms"
        "   ELSE released_ms END,"
        " released_by = CASE WHEN excluded.released_ms != 0 THEN excluded.released_by"
        "   ELSE released_by END",
        err, errlen);
    int rc = st != NULL ? CANARY_OK : CANARY_EIO;
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, t[i].device, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, t[i].state, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 3, t[i].score);
        sqlite3_bind_int64(st, 4, t[i].since_ms);
        sqlite3_bind_int64(st, 5, t[i].updated_ms);
        sqlite3_bind_text(st, 6, t[i].reasons, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, t[i].released_ms);
        sqlite3_bind_text(st, 8, t[i].released_by, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 9, (keep != NULL ? keep[i] : keep_all) ? 1 : 0);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sq_fail(s, err, errlen, "write device trust");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_trust_put(struct store *s, const struct store_trust *t, size_t n, bool keep_reasons,
                    char *err, size_t errlen)
{
    int rc = sq_trust_check(t, n, err, errlen);
    if (rc != 0 || n == 0)
        return rc;
    if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
        return CANARY_EIO;
    rc = sq_write_trust(s, t, n, NULL, keep_reasons, err, errlen);
    if (rc == 0 && sq_exec(s, "COMMIT", err, errlen) != 0)
        rc = CANARY_EIO;
    if (rc != 0) {
        char ignored[64];
        sq_exec(s, "ROLLBACK", ignored, sizeof ignored);
    }
    return rc;
}

static void row(sqlite3_stmt *st, struct store_trust *t)
{
    memset(t, 0, sizeof *t);
    sq_copy_text(t->device, sizeof t->device, st, 0);
    sq_copy_text(t->state, sizeof t->state, st, 1);
    t->score = sqlite3_column_double(st, 2);
    t->since_ms = sqlite3_column_int64(st, 3);
    t->updated_ms = sqlite3_column_int64(st, 4);
    sq_copy_text(t->reasons, sizeof t->reasons, st, 5);
    t->released_ms = sqlite3_column_int64(st, 6);
    sq_copy_text(t->released_by, sizeof t->released_by, st, 7);
}

#define COLUMNS "device, state, score, since_ms, updated_ms, reasons, released_ms, released_by"

int store_trust_get(struct store *s, const char *device, struct store_trust *out, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st =
        sq_prepare(s, "SELECT " COLUMNS " FROM device_trust WHERE device = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        row(st, out);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return CANARY_OK;
    if (rc == SQLITE_DONE)
        return CANARY_ENOTFOUND;
    return sq_fail(s, err, errlen, "read device trust");
}

int store_trust_each(struct store *s, void (*fn)(void *arg, const struct store_trust *t), void *arg,
                     char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(
        s, "SELECT " COLUMNS " FROM device_trust WHERE state != 'trusted' ORDER BY device", err,
        errlen);
    if (st == NULL)
        return CANARY_EIO;
    struct store_trust t;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row(st, &t);
        fn(arg, &t);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "list device trust");
}
