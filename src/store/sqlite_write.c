/* sqlite_write.c — the SQLite engine's write paths: group commits (into the append log, or
 * for devices with many readings in the commit straight into chunks), compaction of the log
 * into chunks, and retention.

 *
 * All three run on the single writer handle. Each is one transaction; on failure it is
 * rolled back and the in-memory id caches are dropped (a rolled-back insert must not
 * leave a cached id behind), so the caller can simply retry. */
#include "store/sqlite_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A device with at least this many readings in one commit has them written as a chunk
 * directly instead of through the log. */
#define DIRECT_MIN 32

static int fail_tx(struct store *s, char *err, size_t errlen, const char *what)
{
    int rc = sq_fail(s, err, errlen, what);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    sq_drop_caches(s);
    return rc;
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CANARY_OK : CANARY_EIO;
}

static int device_id_or_create(struct store *s, const char *key, int64_t now_ms, int64_t *id,
                               char *err, size_t errlen)
{
    int rc = sq_device_id(s, key, id, err, errlen);
    if (rc != CANARY_ENOTFOUND)
        return rc;
    sqlite3_stmt *st = sq_stmt(s, ST_DEVICE_INSERT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare device insert");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    if (step_done(st) != 0)
        return sq_fail(s, err, errlen, "insert device");
    if (sqlite3_changes(s->db) == 0) /* created meanwhile through another handle (the API) */
        return sq_device_id(s, key, id, err, errlen);
    *id = sqlite3_last_insert_rowid(s->db);
    return strmap_put(&s->device_ids, key, (void *)(intptr_t)*id);
}

static int metric_id_or_create(struct store *s, const char *name, uint32_t *id, char *err,
                               size_t errlen)
{
    void *v = strmap_get(&s->metric_ids, name);
    if (v != NULL) {
        *id = (uint32_t)(intptr_t)v;
        return CANARY_OK;
    }
    int rc = sq_metric_id(s, name, id, err, errlen);
    if (rc != CANARY_ENOTFOUND)
        return rc;
    sqlite3_stmt *st = sq_stmt(s, ST_METRIC_INSERT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare metric insert");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (step_done(st) != 0)
        return sq_fail(s, err, errlen, "insert metric");
    *id = (uint32_t)sqlite3_last_insert_rowid(s->db);
    /* Drop the name table so the next lookup by id reloads it with this metric. */
    return strmap_put(&s->metric_ids, name, (void *)(intptr_t)*id);
}

/* Converts a reading into the chunk form (metric names to ids), values into values[]. */
static int to_chunk_reading(struct store *s, const struct reading *r, struct chunk_value *values,
                            struct chunk_reading *out, char *err, size_t errlen)
{
    uint32_t n = r->n_values < READING_MAX_VALUES ? r->n_values : READING_MAX_VALUES;
    for (uint32_t i = 0; i < n; i++) {
        int rc = metric_id_or_create(s, r->values[i].name, &values[i].metric_id, err, errlen);
        if (rc != 0)
            return rc;
        values[i].value = r->values[i].value;
        values[i].score = r->values[i].score;
        values[i].flags = r->values[i].flags;
    }
    *out = (struct chunk_reading){r->ts_ms, r->recv_ms, r->seq, r->has_seq, n, values};
    return CANARY_OK;
}

/* Writes a commit's readings: a device with at least DIRECT_MIN readings in the commit gets
 * them folded into chunks at once (under load, readings skip the log: no write, read back
 * and delete); the others go to the log — one row per partition — for compaction. */
static int write_readings(struct store *s, const struct store_batch *b, char *err, size_t errlen)
{
    struct grouping g;
    grouping_init(&g);
    struct chunk_value values[READING_MAX_VALUES];
    int rc = CANARY_OK;
    for (size_t i = 0; i < b->n_readings && rc == 0; i++) {
        const struct reading *r = b->readings[i];
        int64_t device_id;
        struct chunk_reading cr;
        rc = device_id_or_create(s, r->device, r->recv_ms, &device_id, err, errlen);
        if (rc == 0)
            rc = to_chunk_reading(s, r, values, &cr, err, errlen);
        if (rc == 0)
            rc = grouping_add(&g, device_id, (int64_t)i, &cr);
    }
    bool logged[LOG_PARTS] = {false};
    for (size_t k = 0; k < g.n_groups && rc == 0; k++) {
        struct device_group *grp = &g.groups[k];
        if (grp->n >= DIRECT_MIN)
            rc = sq_fold_group(s, grp, false, err, errlen);
        else
            logged[sq_log_part(grp->device_id)] = true;
    }
    /* One log row per partition that has readings: a pass over the groups for each. */
    for (int part = 0; part < LOG_PARTS && rc == 0; part++) {
        if (!logged[part])
            continue;
        for (size_t k = 0; k < g.n_groups && rc == 0; k++) {
            struct device_group *grp = &g.groups[k];
            if (grp->n >= DIRECT_MIN || sq_log_part(grp->device_id) != part)
                continue;
            for (size_t j = 0; j < grp->n && rc == 0; j++)
                rc = sq_log_add(s, grp->device_id, &grp->rows[j]->r);
        }
        if (rc == 0)
            rc = sq_log_flush(s, part, err, errlen);
    }
    sq_log_reset(s);
    grouping_free(&g);
    return rc;
}

static void bind_real_or_null(sqlite3_stmt *st, int i, double v)
{
    if (v != v)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_double(st, i, v);
}

static int upsert_alert(struct store *s, const struct alert *a, char *err, size_t errlen)
{
    int64_t device_id;
    int rc = device_id_or_create(s, a->device, a->opened_ms, &device_id, err, errlen);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st = sq_stmt(s, ST_ALERT_UPSERT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare alert upsert");
    sqlite3_bind_int64(st, 1, (int64_t)a->id);
    sqlite3_bind_int64(st, 2, device_id);
    sqlite3_bind_text(st, 3, a->metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, alert_kind_name(a->kind), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, (int)a->severity);
    sqlite3_bind_text(st, 6, alert_state_name(a->state), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, a->opened_ms);
    sqlite3_bind_int64(st, 8, a->updated_ms);
    sqlite3_bind_int64(st, 9, a->acknowledged_ms);
    sqlite3_bind_text(st, 10, a->acknowledged_by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, a->resolved_ms);
    sqlite3_bind_text(st, 12, a->resolved_by, -1, SQLITE_STATIC);
    bind_real_or_null(st, 13, a->value);
    bind_real_or_null(st, 14, a->peak);
    bind_real_or_null(st, 15, a->limit);
    sqlite3_bind_text(st, 16, a->message, -1, SQLITE_STATIC);
    if (step_done(st) != 0)
        return sq_fail(s, err, errlen, "upsert alert");
    return CANARY_OK;
}

static int insert_event(struct store *s, const struct alert_event *e, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_stmt(s, ST_EVENT_INSERT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare event insert");
    sqlite3_bind_int64(st, 1, (int64_t)e->alert_id);
    sqlite3_bind_int64(st, 2, e->ts_ms);
    sqlite3_bind_text(st, 3, alert_action_name(e->action), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, (int)e->severity);
    sqlite3_bind_text(st, 5, e->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, e->note, -1, SQLITE_STATIC);
    if (step_done(st) != 0)
        return sq_fail(s, err, errlen, "insert alert event");
    return CANARY_OK;
}

int store_write(struct store *s, const struct store_batch *b, char *err, size_t errlen)
{
    /* A bad notification is the caller's mistake, not the disk's: refuse the batch before
     * anything is written, with a message that names the field. */
    for (size_t i = 0; i < b->n_notifications; i++) {
        char why[200];
        if (store_notification_check(&b->notifications[i], why, sizeof why) != 0) {
            snprintf(err, errlen, "notification %zu: %s", i, why);
            return CANARY_EINVAL;
        }
    }
    if (sq_trust_check(b->trust, b->n_trust, err, errlen) != 0)
        return CANARY_EINVAL;
    sqlite3_stmt *st = sq_stmt(s, ST_BEGIN);
    if (st == NULL || step_done(st) != 0)
        return fail_tx(s, err, errlen, "begin");
    if (write_readings(s, b, err, errlen) != 0)
        return fail_tx(s, err, errlen, "write readings");
    if (b->n_readings > 0) {
        st = sq_stmt(s, ST_COUNTER_ADD);
        if (st == NULL)
            return fail_tx(s, err, errlen, "prepare counter");
        sqlite3_bind_int64(st, 1, (int64_t)b->n_readings);
        sqlite3_bind_text(st, 2, "readings_total", -1, SQLITE_STATIC);
        if (step_done(st) != 0)
            return fail_tx(s, err, errlen, "count readings");
    }
    for (size_t i = 0; i < b->n_alerts; i++) {
        if (upsert_alert(s, &b->alerts[i], err, errlen) != 0)
            return fail_tx(s, err, errlen, "write alerts");
    }
    for (size_t i = 0; i < b->n_events; i++) {
        if (insert_event(s, &b->events[i], err, errlen) != 0)
            return fail_tx(s, err, errlen, "write alert events");
    }
    if (sq_write_records(s, b, err, errlen) != 0)
        return fail_tx(s, err, errlen, "write events and commands");
    if (b->n_notifications > 0 && sq_write_notifications(s, b, clock_wall_ms(), err, errlen) != 0)
        return fail_tx(s, err, errlen, "write notifications");
    if (sq_write_trust(s, b->trust, b->n_trust, b->trust_keep, false, err, errlen) != 0)
        return fail_tx(s, err, errlen, "write device trust");
    st = sq_stmt(s, ST_COMMIT);
    if (st == NULL || step_done(st) != 0)
        return fail_tx(s, err, errlen, "commit");
    return CANARY_OK;
}

/* ---------------------------------------------------------------- compaction */

struct log_load {
    struct grouping *g;
    int64_t order; /* arrival order: (log row id << 20) + position in the row */
};

static int load_reading(void *arg, int64_t device_id, const struct chunk_reading *r)
{
    struct log_load *l = arg;
    return grouping_add(l->g, device_id, l->order++, r);
}

/* Reads the log rows of partition part into per-device groups until they hold max_readings
 * (0 = all; whole rows are read). *last_id is the highest log row read (0 = none),
 * *n_readings their count. */
static int load_log(struct store *s, int part, struct grouping *g, size_t max_readings,
                    int64_t *last_id, size_t *n_readings, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_stmt(s, ST_LOG_SELECT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare log read");
    sqlite3_bind_int(st, 1, part);
    int rc = SQLITE_DONE;
    *last_id = 0;
    *n_readings = 0;
    while ((max_readings == 0 || *n_readings < max_readings) &&
           (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        struct log_load l = {g, id << 20};
        int each = sq_log_each(sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
                               load_reading, &l);
        *last_id = id;
        if (each == CANARY_ENOMEM) {
            sqlite3_reset(st);
            snprintf(err, errlen, "out of memory compacting");
            return CANARY_ENOMEM;
        }
        if (each != 0) /* never fatal for the whole store: skip the row, say so loudly */
            log_error("store.corrupt_log_row", "log_id=%lld", (long long)id);
        *n_readings += (size_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (*n_readings < max_readings && rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "read log");
    return CANARY_OK;
}

/* The partition of the oldest log row (*part = -1 when the log is empty). Folding it first
 * keeps every device's readings in order, rows from before the partitions included. */
static int oldest_part(struct store *s, int *part, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_stmt(s, ST_LOG_OLDEST);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare log read");
    int rc = sqlite3_step(st);
    *part = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "read log");
}

/* A compaction step is committed without an fsync of its own (synchronous=NORMAL in WAL
 * mode keeps it atomic, not durable): if power fails before the next commit's fsync, the
 * step is lost whole and its readings are still in the log, to be folded again. canaryd
 * takes a step between commits, so an fsync per step would be a wait per step for them. */
static int set_synchronous(struct store *s, bool full, char *err, size_t errlen)
{
    if (!s->opt.synchronous_full)
        return CANARY_OK;
    return sq_exec(s, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", err, errlen);
}

static int compact_step(struct store *s, size_t max_readings, size_t *moved, char *err,
                        size_t errlen)
{
    if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
        return CANARY_EIO;
    struct grouping g;
    grouping_init(&g);
    int64_t last_id = 0;
    size_t n_rows = 0;
    int part = -1;
    int rc = oldest_part(s, &part, err, errlen);
    if (rc == 0 && part >= 0)
        rc = load_log(s, part, &g, max_readings, &last_id, &n_rows, err, errlen);
    for (size_t i = 0; i < g.n_groups && rc == 0; i++)
        rc = sq_fold_group(s, &g.groups[i], true, err, errlen);
    if (rc == 0 && last_id > 0) {
        sqlite3_stmt *st = sq_stmt(s, ST_LOG_DELETE);
        if (st == NULL)
            rc = sq_fail(s, err, errlen, "prepare log truncate");
        else {
            sqlite3_bind_int(st, 1, part);
            sqlite3_bind_int64(st, 2, last_id);
            if (step_done(st) != 0)
                rc = sq_fail(s, err, errlen, "truncate log");
        }
    }
    grouping_free(&g);
    if (rc == 0)
        rc = sq_exec(s, "COMMIT", err, errlen);
    if (rc != 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sq_drop_caches(s);
        return rc == CANARY_ENOMEM ? rc : CANARY_EIO;
    }
    *moved = n_rows;
    return CANARY_OK;
}

int store_compact(struct store *s, size_t max_readings, size_t *moved, char *err, size_t errlen)
{
    *moved = 0;
    if (set_synchronous(s, false, err, errlen) != 0)
        return CANARY_EIO;
    int rc = compact_step(s, max_readings, moved, err, errlen);
    char err2[256];
    if (set_synchronous(s, true, err2, sizeof err2) != 0 && rc == 0) {
        snprintf(err, errlen, "%s", err2); /* commits must not go on without their fsync */
        rc = CANARY_EIO;
    }
    return rc;
}

int store_compact_all(struct store *s, size_t *moved, char *err, size_t errlen)
{
    *moved = 0;
    for (;;) {
        size_t step = 0;
        int rc = store_compact(s, 0, &step, err, errlen);
        if (rc != 0)
            return rc;
        if (step == 0)
            return CANARY_OK;
        *moved += step;
    }
}

/* ---------------------------------------------------------------- retention */

static int delete_limited(struct store *s, const char *sql, int64_t before, size_t max_rows,
                          size_t *deleted, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, sql, err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int64(st, 2, (int64_t)max_rows);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "purge");
    *deleted += (size_t)sqlite3_changes(s->db);
    return CANARY_OK;
}

/* One retention rule: a DELETE of at most ?2 rows older than ?1; skipped when before <= 0. */
struct purge_rule {
    const char *sql;
    int64_t before;
};

/* Applies the rules in one transaction, each deleting at most max_rows. */
static int purge_rules(struct store *s, const struct purge_rule *rules, size_t n, size_t max_rows,
                       size_t *deleted, char *err, size_t errlen)
{
    *deleted = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++)
        any = any || rules[i].before > 0;
    if (!any)
        return CANARY_OK;
    if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
        return CANARY_EIO;
    int rc = CANARY_OK;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (rules[i].before > 0)
            rc = delete_limited(s, rules[i].sql, rules[i].before, max_rows, deleted, err, errlen);
    }
    if (rc == 0)
        rc = sq_exec(s, "COMMIT", err, errlen);
    if (rc != 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return CANARY_EIO;
    }
    return CANARY_OK;
}

int store_purge(struct store *s, int64_t readings_before_ms, int64_t alerts_before_ms,
                size_t max_rows, size_t *deleted, char *err, size_t errlen)
{
    const struct purge_rule rules[] = {
        {"DELETE FROM chunks WHERE id IN (SELECT id FROM chunks WHERE t_last < ?1 LIMIT ?2)",
         readings_before_ms},
        {"DELETE FROM alert_events WHERE alert_id IN (SELECT id FROM alerts"
         " WHERE state = 'resolved' AND resolved_ms < ?1 LIMIT ?2)",
         alerts_before_ms},
        {"DELETE FROM alerts WHERE id IN (SELECT id FROM alerts"
         " WHERE state = 'resolved' AND resolved_ms < ?1 LIMIT ?2)",
         alerts_before_ms},
        /* Events and finished commands age out with resolved alerts. */
        {"DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts_ms < ?1 LIMIT ?2)",
         alerts_before_ms},
        {"DELETE FROM commands WHERE id IN (SELECT id FROM commands"
         " WHERE status != 'pending' AND updated_ms < ?1 LIMIT ?2)",
         alerts_before_ms},
        /* Finished notifications too; pending and sending ones are still work to do. */
        {"DELETE FROM notifications WHERE id IN (SELECT id FROM notifications"
         " WHERE status IN ('delivered', 'failed', 'cancelled') AND updated_ms < ?1 LIMIT ?2)",
         alerts_before_ms},
    };
    return purge_rules(s, rules, sizeof rules / sizeof rules[0], max_rows, deleted, err, errlen);
}

int store_purge_access(struct store *s, int64_t audit_before_ms, int64_t sessions_before_ms,
                       size_t max_rows, size_t *deleted, char *err, size_t errlen)
{
    const struct purge_rule rules[] = {
        {"DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE ts_ms < ?1 LIMIT ?2)",
         audit_before_ms},
        {"DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions"
         " WHERE expires_ms < ?1 LIMIT ?2)",
         sessions_before_ms},
    };
    return purge_rules(s, rules, sizeof rules / sizeof rules[0], max_rows, deleted, err, errlen);
}
