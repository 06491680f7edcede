/* sqlite_outbox.c — the SQLite engine's notification outbox (table notifications).
 *
 * Promises: a notification is stored before anything sends it; adding is idempotent on
 * dedupe_key (INSERT OR IGNORE), inside store_write()'s transaction or on its own; each
 * state change (claim, finish, cancel, recover) is one short transaction, so a crash
 * leaves every row in a state it had. Claiming moves rows to 'sending'; a crash after
 * that is undone by store_outbox_recover(), which makes delivery at-least-once. */
#include "store/sqlite_internal.h"

#include "core/error.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const kinds[] = {"alert", "escalation", "all_clear", "test"};
static const char *const channels[] = {"sms", "whatsapp", "voice", "webhook", "email"};
static const char *const statuses[] = {"pending", "sending", "delivered", "failed", "cancelled"};

static bool one_of(const char *v, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v, set[i]) == 0)
            return true;
    }
    return false;
}

#define ONE_OF(v, set) one_of((v), (set), sizeof(set) / sizeof(set)[0])

/* Whether the fixed-size field holds a NUL-terminated string. */
#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

int store_notification_check(const struct store_notification *n, char *err, size_t errlen)
{
    if (!TERMINATED(n->kind) || !ONE_OF(n->kind, kinds)) {
        snprintf(err, errlen, "field 'kind' must be alert, escalation, all_clear or test");
        return CANARY_EINVAL;
    }
    if (!TERMINATED(n->channel) || !ONE_OF(n->channel, channels)) {
        snprintf(err, errlen, "field 'channel' must be sms, whatsapp, voice, webhook or email");
        return CANARY_EINVAL;
    }
    if (!TERMINATED(n->recipient) || n->recipient[0] == '\0') {
        snprintf(err, errlen, "field 'recipient' must be a non-empty name");
        return CANARY_EINVAL;
    }
    if (!TERMINATED(n->address) || n->address[0] == '\0') {
        snprintf(err, errlen, "field 'address' must not be empty");
        return CANARY_EINVAL;
    }
    if (!TERMINATED(n->dedupe_key) || !TERMINATED(n->payload)) {
        snprintf(err, errlen, "fields 'dedupe_key' and 'payload' must be terminated strings");
        return CANARY_EINVAL;
    }
    if (n->payload[0] != '{' && n->payload[0] != '\0') {
        snprintf(err, errlen, "field 'payload' must be a JSON object (or empty)");
        return CANARY_EINVAL;
    }
    return CANARY_OK;
}

/* The key that makes a notification unique: one per alert, step, recipient, channel and
 * kind (an all-clear is not the alert's step-0 message). */
static void dedupe_key(const struct store_notification *n, char *key, size_t len)
{
    if (n->dedupe_key[0] != '\0')
        snprintf(key, len, "%s", n->dedupe_key);
    else
        snprintf(key, len, "%llu/%u/%s/%s/%s", (unsigned long long)n->alert_id, n->step,
                 n->recipient, n->channel, n->kind);
}

/* Inserts (or ignores) one row with the cached statement. */
static int insert_row(struct store *s, const struct store_notification *n, int64_t now_ms,
                      char *err, size_t errlen)
{
    char key[STORE_NOTIFY_KEY_LEN + STORE_TEXT_LEN];
    dedupe_key(n, key, sizeof key);
    sqlite3_stmt *st = sq_stmt(s, ST_OUTBOX_INSERT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare notification insert");
    int64_t created = n->created_ms ? n->created_ms : now_ms;
    sqlite3_bind_int64(st, 1, (int64_t)n->alert_id);
    sqlite3_bind_int64(st, 2, n->step);
    sqlite3_bind_text(st, 3, n->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, n->channel, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, n->recipient, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, n->address, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, n->payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, n->next_attempt_ms ? n->next_attempt_ms : created);
    sqlite3_bind_int64(st, 10, created);
    sqlite3_bind_int64(st, 11, now_ms);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "insert notification");
    return CANARY_OK;
}

int sq_write_notifications(struct store *s, const struct store_batch *b, int64_t now_ms, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < b->n_notifications; i++) {
        int rc = store_notification_check(&b->notifications[i], err, errlen);
        if (rc == 0)
            rc = insert_row(s, &b->notifications[i], now_ms, err, errlen);
        if (rc != 0)
            return rc;
    }
    return CANARY_OK;
}

#define OUTBOX_COLUMNS                                                                             \
    "id, alert_id, step, kind, channel, recipient, address, dedupe_key, payload, status,"          \
    " attempts, next_attempt_ms, created_ms, updated_ms, provider_id, last_error"

static void read_row(sqlite3_stmt *st, struct store_notification *n)
{
    memset(n, 0, sizeof *n);
    n->id = (uint64_t)sqlite3_column_int64(st, 0);
    n->alert_id = (uint64_t)sqlite3_column_int64(st, 1);
    n->step = (uint32_t)sqlite3_column_int64(st, 2);
    sq_copy_text(n->kind, sizeof n->kind, st, 3);
    sq_copy_text(n->channel, sizeof n->channel, st, 4);
    sq_copy_text(n->recipient, sizeof n->recipient, st, 5);
    sq_copy_text(n->address, sizeof n->address, st, 6);
    sq_copy_text(n->dedupe_key, sizeof n->dedupe_key, st, 7);
    sq_copy_text(n->payload, sizeof n->payload, st, 8);
    sq_copy_text(n->status, sizeof n->status, st, 9);
    n->attempts = (uint32_t)sqlite3_column_int64(st, 10);
    n->next_attempt_ms = sqlite3_column_int64(st, 11);
    n->created_ms = sqlite3_column_int64(st, 12);
    n->updated_ms = sqlite3_column_int64(st, 13);
    sq_copy_text(n->provider_id, sizeof n->provider_id, st, 14);
    sq_copy_text(n->last_error, sizeof n->last_error, st, 15);
}

/* Runs a one-off statement that changes rows; *changed receives how many. */
static int run_change(struct store *s, sqlite3_stmt *st, size_t *changed, char *err, size_t errlen,
                      const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, what);
    if (changed != NULL)
        *changed = (size_t)sqlite3_changes(s->db);
    return CANARY_OK;
}

int store_outbox_add(struct store *s, const struct store_notification *n, int64_t now_ms,
                     uint64_t *id, bool *added, char *err, size_t errlen)
{
    if (store_notification_check(n, err, errlen) != 0)
        return CANARY_EINVAL;
    if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
        return CANARY_EIO;
    int rc = insert_row(s, n, now_ms, err, errlen);
    bool inserted = rc == 0 && sqlite3_changes(s->db) > 0;
    if (rc == 0 && id != NULL) {
        char key[STORE_NOTIFY_KEY_LEN + STORE_TEXT_LEN];
        dedupe_key(n, key, sizeof key);
        sqlite3_stmt *st =
            sq_prepare(s, "SELECT id FROM notifications WHERE dedupe_key = ?", err, errlen);
        rc = st == NULL ? CANARY_EIO : 0;
        if (st != NULL) {
            sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) == SQLITE_ROW)
                *id = (uint64_t)sqlite3_column_int64(st, 0);
            else
                rc = sq_fail(s, err, errlen, "find notification");
            sqlite3_finalize(st);
        }
    }
    if (rc == 0)
        rc = sq_exec(s, "COMMIT", err, errlen);
    if (rc != 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return CANARY_EIO;
    }
    if (added != NULL)
        *added = inserted;
    return CANARY_OK;
}

/* The bit of a channel in a claim's channel mask: its index in channels[]. */
#define CHANNEL_BIT_SQL                                                                            \
    "(CASE channel WHEN 'sms' THEN 1 WHEN 'whatsapp' THEN 2 WHEN 'voice' THEN 4"                   \
    " WHEN 'webhook' THEN 8 WHEN 'email' THEN 16 ELSE 0 END)"

int store_outbox_claim_due(struct store *s, int64_t now_ms, unsigned channel_mask,
                           struct store_notification *out, size_t limit, char *err, size_t errlen)
{
    if (limit == 0)
        return 0;
    if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
        return CANARY_EIO;
    /* RETURNING gives no order guarantee, so select first, then mark in the same
     * transaction (no other writer can interleave: BEGIN IMMEDIATE). */
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT " OUTBOX_COLUMNS " FROM notifications"
                                  " WHERE status = 'pending' AND next_attempt_ms <= ?1"
                                  " AND (?3 = 0 OR (?3 & " CHANNEL_BIT_SQL ") != 0)"
                                  " ORDER BY next_attempt_ms, id LIMIT ?2",
                                  err, errlen);
    int rc = st == NULL ? CANARY_EIO : 0;
    size_t n = 0;
    if (st != NULL) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, (int64_t)limit);
        sqlite3_bind_int64(st, 3, channel_mask);
        int step = SQLITE_DONE;
        while (n < limit && (step = sqlite3_step(st)) == SQLITE_ROW)
            read_row(st, &out[n++]);
        if (n < limit && step != SQLITE_DONE)
            rc = sq_fail(s, err, errlen, "select due notifications");
        sqlite3_finalize(st);
    }
    if (rc == 0 && n > 0) {
        st = sq_prepare(s,
                        "UPDATE notifications SET status = 'sending', attempts = attempts + 1,"
                        " updated_ms = ?1 WHERE id = ?2",
                        err, errlen);
        rc = st == NULL ? CANARY_EIO : 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            sqlite3_bind_int64(st, 1, now_ms);
            sqlite3_bind_int64(st, 2, (int64_t)out[i].id);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = sq_fail(s, err, errlen, "claim notification");
            sqlite3_reset(st);
            snprintf(out[i].status, sizeof out[i].status, "sending");
            out[i].attempts++;
            out[i].updated_ms = now_ms;
        }
        sqlite3_finalize(st);
    }
    if (rc == 0)
        rc = sq_exec(s, "COMMIT", err, errlen);
    if (rc != 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return CANARY_EIO;
    }
    return (int)n;
}

int store_outbox_finish(struct store *s, uint64_t id, enum store_outbox_outcome outcome,
                        int64_t next_attempt_ms, const char *provider_id, const char *error,
                        int64_t now_ms, char *err, size_t errlen)
{
    const char *status;
    switch (outcome) {
    case STORE_OUTBOX_DELIVERED:
        status = "delivered";
        break;
    case STORE_OUTBOX_RETRY:
        status = "pending";
        break;
    case STORE_OUTBOX_FAILED:
        status = "failed";
        break;
    case STORE_OUTBOX_CANCELLED:
        status = "cancelled";
        break;
    default:
        snprintf(err, errlen, "notification %llu: unknown outcome %d", (unsigned long long)id,
                 (int)outcome);
        return CANARY_EINVAL;
    }
    sqlite3_stmt *st = sq_prepare(s,
                                  "UPDATE notifications SET status = ?1, updated_ms = ?2,"
                                  " next_attempt_ms = CASE WHEN ?1 = 'pending' THEN ?3"
                                  "   ELSE next_attempt_ms END,"
                                  " provider_id = coalesce(?4, provider_id),"
                                  " last_error = coalesce(?5, last_error)"
                                  " WHERE id = ?6 AND status = 'sending'",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int64(st, 3, next_attempt_ms);
    if (provider_id != NULL)
        sqlite3_bind_text(st, 4, provider_id, -1, SQLITE_STATIC);
    if (error != NULL)
        sqlite3_bind_text(st, 5, error, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (int64_t)id);
    size_t changed = 0;
    if (run_change(s, st, &changed, err, errlen, "finish notification") != 0)
        return CANARY_EIO;
    if (changed > 0)
        return CANARY_OK;
    struct store_notification cur;
    int rc = store_outbox_get(s, id, &cur, err, errlen);
    if (rc == CANARY_ENOTFOUND) {
        snprintf(err, errlen, "notification %llu not found", (unsigned long long)id);
        return rc;
    }
    if (rc != 0)
        return rc;
    snprintf(err, errlen, "notification %llu is %s, not sending", (unsigned long long)id,
             cur.status);
    return CANARY_ECONFLICT;
}

int store_outbox_cancel_alert(struct store *s, uint64_t alert_id, const char *kind, int64_t now_ms,
                              size_t *cancelled, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "UPDATE notifications SET status = 'cancelled', updated_ms = ?1"
                                  " WHERE alert_id = ?2 AND status = 'pending'"
                                  " AND (?3 IS NULL OR kind = ?3)",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, (int64_t)alert_id);
    if (kind != NULL)
        sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    return run_change(s, st, cancelled, err, errlen, "cancel notifications");
}

int store_outbox_recover(struct store *s, int64_t now_ms, size_t *recovered, char *err,
                         size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "UPDATE notifications SET status = 'pending', updated_ms = ?1,"
                                  " next_attempt_ms = min(next_attempt_ms, ?1)"
                                  " WHERE status = 'sending'",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, now_ms);
    return run_change(s, st, recovered, err, errlen, "recover notifications");
}

int store_outbox_list(struct store *s, const struct store_outbox_filter *f,
                      struct store_notification *out, char *err, size_t errlen)
{
    if (f->status != NULL && !ONE_OF(f->status, statuses)) {
        snprintf(err, errlen,
                 "status must be pending, sending, delivered, failed or cancelled, got \"%s\"",
                 f->status);
        return CANARY_EINVAL;
    }
    if (f->channel != NULL && !ONE_OF(f->channel, channels)) {
        snprintf(err, errlen, "channel must be sms, whatsapp, voice, webhook or email, got \"%s\"",
                 f->channel);
        return CANARY_EINVAL;
    }
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT " OUTBOX_COLUMNS " FROM notifications"
                                  " WHERE (?1 IS NULL OR status = ?1) AND (?2 = 0 OR alert_id = ?2)"
                                  " AND (?3 IS NULL OR channel = ?3) AND (?4 = 0 OR id < ?4)"
                                  " ORDER BY id DESC LIMIT ?5",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    if (f->status != NULL)
        sqlite3_bind_text(st, 1, f->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)f->alert_id);
    if (f->channel != NULL)
        sqlite3_bind_text(st, 3, f->channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)f->before_id);
    sqlite3_bind_int64(st, 5, (int64_t)f->limit);
    int rc = SQLITE_DONE;
    size_t n = 0;
    while (n < f->limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
        read_row(st, &out[n++]);
    if (n == f->limit)
        rc = SQLITE_DONE;
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "list notifications");
    return (int)n;
}

int store_outbox_get(struct store *s, uint64_t id, struct store_notification *out, char *err,
                     size_t errlen)
{
    sqlite3_stmt *st =
        sq_prepare(s, "SELECT " OUTBOX_COLUMNS " FROM notifications WHERE id = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, (int64_t)id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_row(st, out);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return CANARY_ENOTFOUND;
    if (rc != SQLITE_ROW)
        return sq_fail(s, err, errlen, "get notification");
    return CANARY_OK;
}

int store_outbox_delivered_since(struct store *s, const char *recipient, int64_t since_ms,
                                 uint64_t *count, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT count(*) FROM notifications WHERE recipient = ?1"
                                  " AND status = 'delivered' AND updated_ms >= ?2",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, recipient, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, since_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *count = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return sq_fail(s, err, errlen, "count delivered notifications");
    return CANARY_OK;
}

int store_outbox_next_due(struct store *s, unsigned channel_mask, int64_t *due_ms, char *err,
                          size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT min(next_attempt_ms) FROM notifications"
                                  " WHERE status = 'pending'"
                                  " AND (?1 = 0 OR (?1 & " CHANNEL_BIT_SQL ") != 0)",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, channel_mask);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *due_ms =
            sqlite3_column_type(st, 0) == SQLITE_NULL ? INT64_MAX : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return sq_fail(s, err, errlen, "find the next due notification");
    return CANARY_OK;
}
