/* sqlite_records.c — the SQLite engine's event and command tables: inserts inside a group
 * commit (store_write), and the listings behind GET /api/v1/events and the command
 * endpoints. Events are append-only; a command row is inserted when it is sent and updated
 * (by id) when the device answers or the answer times out. */
#include "store/sqlite_internal.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

int sq_write_records(struct store *s, const struct store_batch *b, char *err, size_t errlen)
{
    if (b->n_records > 0) {
        sqlite3_stmt *st = sq_stmt(s, ST_RECORD_INSERT);
        if (st == NULL)
            return sq_fail(s, err, errlen, "prepare event insert");
        for (size_t i = 0; i < b->n_records; i++) {
            const struct event_record *e = &b->records[i];
            sqlite3_bind_int64(st, 1, e->ts_ms);
            sqlite3_bind_text(st, 2, event_category_name(e->category), -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, e->kind, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, e->device, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, e->source, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 6, e->detail, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 7, e->count ? e->count : 1);
            int rc = sqlite3_step(st);
            sqlite3_reset(st);
            if (rc != SQLITE_DONE)
                return sq_fail(s, err, errlen, "insert event");
        }
    }
    if (b->n_commands > 0) {
        sqlite3_stmt *st = sq_stmt(s, ST_COMMAND_UPSERT);
        if (st == NULL)
            return sq_fail(s, err, errlen, "prepare command upsert");
        for (size_t i = 0; i < b->n_commands; i++) {
            const struct device_command *c = &b->commands[i];
            sqlite3_bind_int64(st, 1, (int64_t)c->id);
            sqlite3_bind_text(st, 2, c->device, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, c->command, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, c->state, -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 5, c->value);
            sqlite3_bind_int64(st, 6, (int64_t)c->alert_id);
            sqlite3_bind_text(st, 7, c->actor, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 8, c->created_ms);
            sqlite3_bind_int64(st, 9, c->updated_ms);
            sqlite3_bind_text(st, 10, command_status_name(c->status), -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 11, c->error, -1, SQLITE_STATIC);
            int rc = sqlite3_step(st);
            sqlite3_reset(st);
            if (rc != SQLITE_DONE)
                return sq_fail(s, err, errlen, "upsert command");
        }
    }
    return CANARY_OK;
}

int store_events_list(struct store *s, const struct store_event_filter *f, struct event_record *out,
                      char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(
        s,
        "SELECT id, ts_ms, category, kind, device, source, detail, count FROM events"
        " WHERE (?1 < 0 OR category = ?2) AND (?3 IS NULL OR kind = ?3)"
        " AND (?4 IS NULL OR device = ?4) AND (?5 = 0 OR ts_ms >= ?5) AND (?6 = 0 OR ts_ms <= ?6)"
        " AND (?7 = 0 OR id < ?7) ORDER BY id DESC LIMIT ?8",
        err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int(st, 1, f->category);
    sqlite3_bind_text(st, 2, event_category_name(f->category < 0 ? 0 : f->category), -1,
                      SQLITE_STATIC);
    if (f->kind != NULL)
        sqlite3_bind_text(st, 3, f->kind, -1, SQLITE_STATIC);
    if (f->device != NULL)
        sqlite3_bind_text(st, 4, f->device, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, f->from_ms);
    sqlite3_bind_int64(st, 6, f->to_ms);
    sqlite3_bind_int64(st, 7, (int64_t)f->before_id);
    sqlite3_bind_int64(st, 8, (int64_t)f->limit);
    int rc = SQLITE_DONE;
    size_t n = 0;
    while (n < f->limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct event_record *e = &out[n++];
        memset(e, 0, sizeof *e);
        e->id = (uint64_t)sqlite3_column_int64(st, 0);
        e->ts_ms = sqlite3_column_int64(st, 1);
        enum event_category c = EVENT_INGEST;
        event_category_parse((const char *)sqlite3_column_text(st, 2), &c);
        e->category = c;
        sq_copy_text(e->kind, sizeof e->kind, st, 3);
        sq_copy_text(e->device, sizeof e->device, st, 4);
        sq_copy_text(e->source, sizeof e->source, st, 5);
        sq_copy_text(e->detail, sizeof e->detail, st, 6);
        e->count = (uint32_t)sqlite3_column_int64(st, 7);
    }
    if (n == f->limit)
        rc = SQLITE_DONE;
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "list events");
    return (int)n;
}

#define COMMAND_COLUMNS                                                                            \
    "id, device, command, state, value, alert_id, actor, created_ms, updated_ms, status, error"

static void read_command(sqlite3_stmt *st, struct device_command *c)
{
    memset(c, 0, sizeof *c);
    c->id = (uint64_t)sqlite3_column_int64(st, 0);
    sq_copy_text(c->device, sizeof c->device, st, 1);
    sq_copy_text(c->command, sizeof c->command, st, 2);
    sq_copy_text(c->state, sizeof c->state, st, 3);
    c->value = sqlite3_column_double(st, 4);
    c->alert_id = (uint64_t)sqlite3_column_int64(st, 5);
    sq_copy_text(c->actor, sizeof c->actor, st, 6);
    c->created_ms = sqlite3_column_int64(st, 7);
    c->updated_ms = sqlite3_column_int64(st, 8);
    const char *status = (const char *)sqlite3_column_text(st, 9);
    c->status = COMMAND_PENDING;
    for (int k = COMMAND_PENDING; k <= COMMAND_TIMED_OUT; k++) {
        if (status != NULL && strcmp(status, command_status_name((enum command_status)k)) == 0)
            c->status = (enum command_status)k;
    }
    sq_copy_text(c->error, sizeof c->error, st, 10);
}

int store_commands_list(struct store *s, const char *device, uint64_t alert_id, uint64_t before_id,
                        struct device_command *out, size_t limit, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT " COMMAND_COLUMNS " FROM commands"
                                  " WHERE (?1 IS NULL OR device = ?1) AND (?2 = 0 OR alert_id = ?2)"
                                  " AND (?3 = 0 OR id < ?3) ORDER BY id DESC LIMIT ?4",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    if (device != NULL)
        sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)alert_id);
    sqlite3_bind_int64(st, 3, (int64_t)before_id);
    sqlite3_bind_int64(st, 4, (int64_t)limit);
    int rc = SQLITE_DONE;
    size_t n = 0;
    while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
        read_command(st, &out[n++]);
    if (n == limit)
        rc = SQLITE_DONE;
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "list commands");
    return (int)n;
}

int store_command_get(struct store *s, uint64_t id, struct device_command *out, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st =
        sq_prepare(s, "SELECT " COMMAND_COLUMNS " FROM commands WHERE id = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, (int64_t)id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_command(st, out);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return CANARY_ENOTFOUND;
    if (rc != SQLITE_ROW)
        return sq_fail(s, err, errlen, "get command");
    return CANARY_OK;
}

int store_command_max_id(struct store *s, uint64_t *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, "SELECT coalesce(max(id), 0) FROM commands", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? CANARY_OK : sq_fail(s, err, errlen, "max command id");
}
