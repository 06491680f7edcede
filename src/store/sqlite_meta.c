/* sqlite_meta.c — the SQLite engine's devices, alerts and statistics.
 *
 * Device rows are folded forward at compaction; what the log holds since then (counts,
 * last seen, seq windows) is added on read, so callers always see every committed
 * reading. */
#include "store/sqlite_internal.h"

#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sq_copy_text(char *dst, size_t len, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, len, "%s", t != NULL ? (const char *)t : "");
}

/* ---------------------------------------------------------------- devices */

#define DEVICE_COLUMNS                                                                             \
    "id, key, name, location, kind, registered, created_ms, first_seen_ms, last_seen_ms,"          \
    " readings, seq_started, seq_high, seq_seen, max_ts_ms"

static int64_t read_device(sqlite3_stmt *st, struct store_device *d)
{
    memset(d, 0, sizeof *d);
    sq_copy_text(d->id, sizeof d->id, st, 1);
    sq_copy_text(d->name, sizeof d->name, st, 2);
    sq_copy_text(d->location, sizeof d->location, st, 3);
    sq_copy_text(d->kind, sizeof d->kind, st, 4);
    d->registered = sqlite3_column_int(st, 5) != 0;
    d->created_ms = sqlite3_column_int64(st, 6);
    d->first_seen_ms = sqlite3_column_int64(st, 7);
    d->last_seen_ms = sqlite3_column_int64(st, 8);
    d->readings = (uint64_t)sqlite3_column_int64(st, 9);
    d->window.started = sqlite3_column_int(st, 10) != 0;
    d->window.high = (uint64_t)sqlite3_column_int64(st, 11);
    d->window.seen = (uint64_t)sqlite3_column_int64(st, 12);
    d->max_ts_ms = sqlite3_column_int64(st, 13);
    return sqlite3_column_int64(st, 0);
}

/* Devices being folded with their log rows. */
struct device_set {
    struct store_device *d;
    int64_t *ids;
    size_t n, cap;
    struct strmap by_id; /* decimal id -> index + 1 */
};

static void set_free(struct device_set *set)
{
    free(set->d);
    free(set->ids);
    strmap_free(&set->by_id);
}

static int set_add(struct device_set *set, int64_t id, const struct store_device *d)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        struct store_device *nd = realloc(set->d, cap * sizeof *nd);
        if (nd == NULL)
            return CANARY_ENOMEM;
        set->d = nd;
        int64_t *ni = realloc(set->ids, cap * sizeof *ni);
        if (ni == NULL)
            return CANARY_ENOMEM;
        set->ids = ni;
        set->cap = cap;
    }
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)id);
    set->d[set->n] = *d;
    set->ids[set->n] = id;
    set->n++;
    return strmap_put(&set->by_id, key, (void *)(intptr_t)set->n);
}

static int fold_reading(void *arg, int64_t device_id, const struct chunk_reading *r)
{
    struct device_set *set = arg;
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)device_id);
    intptr_t i = (intptr_t)strmap_get(&set->by_id, key);
    if (i == 0)
        return CANARY_OK;
    struct store_device *d = &set->d[i - 1];
    d->readings++;
    if (d->first_seen_ms == 0 || r->recv_ms < d->first_seen_ms)
        d->first_seen_ms = r->recv_ms;
    if (r->recv_ms > d->last_seen_ms)
        d->last_seen_ms = r->recv_ms;
    if (r->ts_ms > d->max_ts_ms)
        d->max_ts_ms = r->ts_ms;
    if (r->has_seq)
        seq_window_mark(&d->window, r->seq);
    return CANARY_OK;
}

/* Adds what the uncompacted log says about the devices in the set (in arrival order, as
 * the seq windows need). */
static int fold_log(struct store *s, struct device_set *set, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, "SELECT data FROM reading_log ORDER BY id", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        sq_log_each(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), fold_reading,
                    set); /* a corrupt row is reported by compaction */
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "read log");
}

/* Runs a device SELECT (with bound parameters) into a set, then folds the log in. */
static int load_set(struct store *s, sqlite3_stmt *st, struct device_set *set, char *err,
                    size_t errlen)
{
    int rc;
    struct store_device d;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = read_device(st, &d);
        if (set_add(set, id, &d) != 0) {
            sqlite3_finalize(st);
            return CANARY_ENOMEM;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "read devices");
    return set->n > 0 ? fold_log(s, set, err, errlen) : CANARY_OK;
}

int store_devices_load(struct store *s, void (*fn)(void *arg, const struct store_device *d),
                       void *arg, char *err, size_t errlen)
{
    struct device_set set;
    memset(&set, 0, sizeof set);
    strmap_init(&set.by_id);
    sqlite3_stmt *st =
        sq_prepare(s, "SELECT " DEVICE_COLUMNS " FROM devices ORDER BY id", err, errlen);
    int rc = st == NULL ? CANARY_EIO : load_set(s, st, &set, err, errlen);
    for (size_t i = 0; rc == 0 && i < set.n; i++)
        fn(arg, &set.d[i]);
    set_free(&set);
    return rc;
}

int store_devices_list(struct store *s, const char *after, struct store_device *out, size_t limit,
                       char *err, size_t errlen)
{
    struct device_set set;
    memset(&set, 0, sizeof set);
    strmap_init(&set.by_id);
    sqlite3_stmt *st =
        sq_prepare(s, "SELECT " DEVICE_COLUMNS " FROM devices WHERE key > ? ORDER BY key LIMIT ?",
                   err, errlen);
    int rc = CANARY_EIO;
    if (st != NULL) {
        sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)limit);
        rc = load_set(s, st, &set, err, errlen);
    }
    size_t n = 0;
    for (; rc == 0 && n < set.n && n < limit; n++)
        out[n] = set.d[n];
    set_free(&set);
    return rc == 0 ? (int)n : rc;
}

int store_device_get(struct store *s, const char *id, struct store_device *out, char *err,
                     size_t errlen)
{
    struct device_set set;
    memset(&set, 0, sizeof set);
    strmap_init(&set.by_id);
    sqlite3_stmt *st =
        sq_prepare(s, "SELECT " DEVICE_COLUMNS " FROM devices WHERE key = ?", err, errlen);
    int rc = CANARY_EIO;
    if (st != NULL) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = load_set(s, st, &set, err, errlen);
    }
    if (rc == 0 && set.n == 0)
        rc = CANARY_ENOTFOUND;
    if (rc == 0)
        *out = set.d[0];
    set_free(&set);
    return rc;
}

int store_device_create(struct store *s, const struct store_device *d, int64_t now_ms, char *err,
                        size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "INSERT INTO devices(key, name, location, kind, registered,"
                                  " created_ms) VALUES(?,?,?,?,1,?) ON CONFLICT(key) DO NOTHING",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->location, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "create device");
    if (sqlite3_changes(s->db) == 0) {
        snprintf(err, errlen, "device '%s' already exists", d->id);
        return CANARY_ECONFLICT;
    }
    return CANARY_OK;
}

int store_device_update(struct store *s, const char *id, const char *name, const char *location,
                        const char *kind, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "UPDATE devices SET name = coalesce(?2, name),"
                                  " location = coalesce(?3, location), kind = coalesce(?4, kind)"
                                  " WHERE key = ?1",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (name != NULL)
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    if (location != NULL)
        sqlite3_bind_text(st, 3, location, -1, SQLITE_STATIC);
    if (kind != NULL)
        sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "update device");
    return sqlite3_changes(s->db) > 0 ? CANARY_OK : CANARY_ENOTFOUND;
}

/* ---------------------------------------------------------------- alerts */

#define ALERT_COLUMNS                                                                              \
    "a.id, d.key, a.metric, a.kind, a.severity, a.state, a.opened_ms, a.updated_ms,"               \
    " a.acknowledged_ms, a.acknowledged_by, a.resolved_ms, a.resolved_by, a.value, a.peak,"        \
    " a.limit_value, a.message"

static double real_or_nan(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

static void read_alert(sqlite3_stmt *st, struct alert *a)
{
    memset(a, 0, sizeof *a);
    a->id = (uint64_t)sqlite3_column_int64(st, 0);
    sq_copy_text(a->device, sizeof a->device, st, 1);
    sq_copy_text(a->metric, sizeof a->metric, st, 2);
    enum alert_kind kind = ALERT_KIND_THRESHOLD;
    alert_kind_parse((const char *)sqlite3_column_text(st, 3), &kind);
    a->kind = kind;
    int sev = sqlite3_column_int(st, 4);
    a->severity = sev >= 0 && sev < SEVERITY_COUNT ? (enum alert_severity)sev : SEVERITY_INFO;
    enum alert_state state = ALERT_STATE_OPEN;
    alert_state_parse((const char *)sqlite3_column_text(st, 5), &state);
    a->state = state;
    a->opened_ms = sqlite3_column_int64(st, 6);
    a->updated_ms = sqlite3_column_int64(st, 7);
    a->acknowledged_ms = sqlite3_column_int64(st, 8);
    sq_copy_text(a->acknowledged_by, sizeof a->acknowledged_by, st, 9);
    a->resolved_ms = sqlite3_column_int64(st, 10);
    sq_copy_text(a->resolved_by, sizeof a->resolved_by, st, 11);
    a->value = real_or_nan(st, 12);
    a->peak = real_or_nan(st, 13);
    a->limit = real_or_nan(st, 14);
    sq_copy_text(a->message, sizeof a->message, st, 15);
}

int store_alerts_list(struct store *s, const struct store_alert_filter *f, struct alert *out,
                      char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(
        s,
        "SELECT " ALERT_COLUMNS " FROM alerts a JOIN devices d ON d.id = a.device_id"
        " WHERE (?1 IS NULL OR a.state = ?1) AND a.severity >= ?2 AND (?3 IS NULL OR a.kind = ?3)"
        " AND (?4 IS NULL OR d.key = ?4) AND (?5 = 0 OR a.opened_ms >= ?5)"
        " AND (?6 = 0 OR a.opened_ms <= ?6) AND (?7 = 0 OR a.id < ?7)"
        " ORDER BY a.id DESC LIMIT ?8",
        err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    if (f->state >= 0)
        sqlite3_bind_text(st, 1, alert_state_name((enum alert_state)f->state), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, f->severity >= 0 ? f->severity : 0);
    if (f->kind >= 0)
        sqlite3_bind_text(st, 3, alert_kind_name((enum alert_kind)f->kind), -1, SQLITE_STATIC);
    if (f->device != NULL)
        sqlite3_bind_text(st, 4, f->device, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, f->from_ms);
    sqlite3_bind_int64(st, 6, f->to_ms);
    sqlite3_bind_int64(st, 7, (int64_t)f->before_id);
    sqlite3_bind_int64(st, 8, (int64_t)f->limit);
    int rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < f->limit)
        read_alert(st, &out[n++]);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sq_fail(s, err, errlen, "list alerts");
    return (int)n;
}

int store_alert_get(struct store *s, uint64_t id, struct alert *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT " ALERT_COLUMNS " FROM alerts a JOIN devices d"
                                  " ON d.id = a.device_id WHERE a.id = ?",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, (int64_t)id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_alert(st, out);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return CANARY_ENOTFOUND;
    return rc == SQLITE_ROW ? CANARY_OK : sq_fail(s, err, errlen, "get alert");
}

int store_alert_events(struct store *s, uint64_t id, struct alert_event *out, size_t cap, char *err,
                       size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT ts_ms, action, severity, actor, note FROM alert_events"
                                  " WHERE alert_id = ? ORDER BY id LIMIT ?",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, (int64_t)id);
    sqlite3_bind_int64(st, 2, (int64_t)cap);
    int rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < cap) {
        struct alert_event *e = &out[n++];
        memset(e, 0, sizeof *e);
        e->alert_id = id;
        e->ts_ms = sqlite3_column_int64(st, 0);
        enum alert_action action = ALERT_ACTION_NONE;
        alert_action_parse((const char *)sqlite3_column_text(st, 1), &action);
        e->action = action;
        int sev = sqlite3_column_int(st, 2);
        e->severity = sev >= 0 && sev < SEVERITY_COUNT ? (enum alert_severity)sev : SEVERITY_INFO;
        sq_copy_text(e->actor, sizeof e->actor, st, 3);
        sq_copy_text(e->note, sizeof e->note, st, 4);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sq_fail(s, err, errlen, "alert events");
    return (int)n;
}

int store_alerts_live(struct store *s, int64_t resolved_since_ms,
                      void (*fn)(void *arg, const struct alert *a), void *arg, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT " ALERT_COLUMNS " FROM alerts a JOIN devices d"
                                  " ON d.id = a.device_id WHERE a.state != 'resolved'"
                                  " OR a.resolved_ms >= ? ORDER BY a.id",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, resolved_since_ms);
    int rc;
    struct alert a;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_alert(st, &a);
        fn(arg, &a);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "live alerts");
}

int store_alert_max_id(struct store *s, uint64_t *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, "SELECT coalesce(max(id), 0) FROM alerts", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? CANARY_OK : sq_fail(s, err, errlen, "max alert id");
}

/* ---------------------------------------------------------------- statistics */

static int scalar(struct store *s, const char *sql, uint64_t *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, sql, err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? CANARY_OK : sq_fail(s, err, errlen, sql);
}

int store_stats(struct store *s, struct store_stats *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    uint64_t pages = 0, page_size = 0;
    int rc = scalar(s, "SELECT count(*) FROM devices", &out->devices, err, errlen);
    if (rc == 0)
        rc = scalar(s, "SELECT value FROM meta WHERE key = 'readings_total'", &out->readings_total,
                    err, errlen);
    if (rc == 0)
        rc = scalar(s, "SELECT coalesce(sum(n), 0) FROM reading_log", &out->log_rows, err, errlen);
    if (rc == 0)
        rc = scalar(s, "SELECT count(*) FROM chunks", &out->chunks, err, errlen);
    if (rc == 0)
        rc = scalar(s, "PRAGMA page_count", &pages, err, errlen);
    if (rc == 0)
        rc = scalar(s, "PRAGMA page_size", &page_size, err, errlen);
    out->db_bytes = pages * page_size;
    if (rc != 0)
        return rc;
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT severity, count(*) FROM alerts WHERE state != 'resolved'"
                                  " GROUP BY severity",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int sev = sqlite3_column_int(st, 0);
        uint64_t n = (uint64_t)sqlite3_column_int64(st, 1);
        if (sev >= 0 && sev < SEVERITY_COUNT)
            out->alerts_by_severity[sev] = n;
        out->alerts_open += n;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "alert counts");
}
