/* sqlite_write.c — the SQLite engine's write paths: group commits into the append log,
 * compaction of the log into chunks, and retention.
 *
 * All three run on the single writer handle. Each is one transaction; on failure it is
 * rolled back and the in-memory id caches are dropped (a rolled-back insert must not
 * leave a cached id behind), so the caller can simply retry. */
#include "store/sqlite_internal.h"

#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int append_reading(struct store *s, const struct reading *r, char *err, size_t errlen)
{
    int64_t device_id;
    int rc = device_id_or_create(s, r->device, r->recv_ms, &device_id, err, errlen);
    if (rc != 0)
        return rc;
    struct chunk_value values[READING_MAX_VALUES];
    uint32_t n = r->n_values < READING_MAX_VALUES ? r->n_values : READING_MAX_VALUES;
    for (uint32_t i = 0; i < n; i++) {
        rc = metric_id_or_create(s, r->values[i].name, &values[i].metric_id, err, errlen);
        if (rc != 0)
            return rc;
        values[i].value = r->values[i].value;
        values[i].score = r->values[i].score;
        values[i].flags = r->values[i].flags;
    }
    struct chunk_reading cr = {r->ts_ms, r->recv_ms, r->seq, r->has_seq, n, values};
    chunk_encoder_reset(&s->enc);
    if (chunk_encoder_add(&s->enc, &cr) != 0 || sq_blob_reserve(s, chunk_encoded_size(&s->enc)))
        return CANARY_ENOMEM;
    size_t len = chunk_encoder_emit(&s->enc, s->blob);
    sqlite3_stmt *st = sq_stmt(s, ST_LOG_INSERT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare log insert");
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int64(st, 2, r->ts_ms);
    sqlite3_bind_int64(st, 3, r->recv_ms);
    sqlite3_bind_blob(st, 4, s->blob, (int)len, SQLITE_STATIC);
    if (step_done(st) != 0)
        return sq_fail(s, err, errlen, "insert reading");
    return CANARY_OK;
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
    sqlite3_stmt *st = sq_stmt(s, ST_BEGIN);
    if (st == NULL || step_done(st) != 0)
        return fail_tx(s, err, errlen, "begin");
    for (size_t i = 0; i < b->n_readings; i++) {
        if (append_reading(s, b->readings[i], err, errlen) != 0)
            return fail_tx(s, err, errlen, "write readings");
    }
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
    st = sq_stmt(s, ST_COMMIT);
    if (st == NULL || step_done(st) != 0)
        return fail_tx(s, err, errlen, "commit");
    return CANARY_OK;
}

/* ---------------------------------------------------------------- compaction */

/* A log row, decoded. */
struct log_reading {
    int64_t log_id;
    struct chunk_reading r; /* values in the compaction arena */
};

struct device_group {
    int64_t device_id;
    struct log_reading **rows; /* in log order */
    size_t n, cap;
};

struct compaction {
    struct arena arena;
    struct device_group *groups;
    size_t n_groups, cap_groups;
    struct strmap by_device; /* decimal device id -> group index + 1 */
};

static struct device_group *group_for(struct compaction *c, int64_t device_id)
{
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)device_id);
    intptr_t idx = (intptr_t)strmap_get(&c->by_device, key);
    if (idx > 0)
        return &c->groups[idx - 1];
    if (c->n_groups == c->cap_groups) {
        size_t cap = c->cap_groups ? c->cap_groups * 2 : 64;
        struct device_group *g = realloc(c->groups, cap * sizeof *g);
        if (g == NULL)
            return NULL;
        c->groups = g;
        c->cap_groups = cap;
    }
    struct device_group *g = &c->groups[c->n_groups++];
    memset(g, 0, sizeof *g);
    g->device_id = device_id;
    if (strmap_put(&c->by_device, key, (void *)(intptr_t)c->n_groups) != 0)
        return NULL;
    return g;
}

static int group_add(struct device_group *g, struct log_reading *lr)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        struct log_reading **rows = realloc(g->rows, cap * sizeof *rows);
        if (rows == NULL)
            return CANARY_ENOMEM;
        g->rows = rows;
        g->cap = cap;
    }
    g->rows[g->n++] = lr;
    return CANARY_OK;
}

static void compaction_free(struct compaction *c)
{
    for (size_t i = 0; i < c->n_groups; i++)
        free(c->groups[i].rows);
    free(c->groups);
    strmap_free(&c->by_device);
    arena_free(&c->arena);
}

/* Reads up to max_rows log rows (0 = all) into per-device groups. *last_id is the highest
 * log id read (0 = none). */
static int load_log(struct store *s, struct compaction *c, size_t max_rows, int64_t *last_id,
                    size_t *n_rows, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_stmt(s, ST_LOG_SELECT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare log read");
    sqlite3_bind_int64(st, 1, max_rows ? (int64_t)max_rows : -1);
    int rc;
    *last_id = 0;
    *n_rows = 0;
    struct chunk_value values[READING_MAX_VALUES];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int64_t device_id = sqlite3_column_int64(st, 1);
        const void *blob = sqlite3_column_blob(st, 2);
        int len = sqlite3_column_bytes(st, 2);
        *last_id = id;
        struct chunk_decoder d;
        struct chunk_reading r;
        if (chunk_decoder_init(&d, blob, (size_t)len) != 0 ||
            chunk_decoder_next(&d, &r, values, READING_MAX_VALUES) != 1) {
            /* Never fatal for the whole store: skip the row, say so loudly. */
            log_error("store.corrupt_log_row", "log_id=%lld", (long long)id);
            continue;
        }
        struct log_reading *lr = arena_alloc(&c->arena, sizeof *lr);
        struct chunk_value *vals = arena_alloc(&c->arena, r.n_values * sizeof *vals + 1);
        struct device_group *g = group_for(c, device_id);
        if (lr == NULL || vals == NULL || g == NULL || group_add(g, lr) != 0) {
            sqlite3_reset(st);
            snprintf(err, errlen, "out of memory compacting");
            return CANARY_ENOMEM;
        }
        memcpy(vals, values, r.n_values * sizeof *vals);
        lr->log_id = id;
        lr->r = r;
        lr->r.values = vals;
        (*n_rows)++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "read log");
    return CANARY_OK;
}

static int cmp_by_time(const void *a, const void *b)
{
    const struct log_reading *x = *(const struct log_reading *const *)a;
    const struct log_reading *y = *(const struct log_reading *const *)b;
    if (x->r.ts_ms != y->r.ts_ms)
        return x->r.ts_ms < y->r.ts_ms ? -1 : 1;
    return x->log_id < y->log_id ? -1 : (x->log_id > y->log_id);
}

/* Accumulates a chunk: the encoder plus per-metric statistics. */
struct chunk_builder {
    struct chunk_stat stats[READING_MAX_VALUES];
    size_t n_stats;
    int64_t t_first, t_last;
    uint32_t count;
};

static void builder_reset(struct store *s, struct chunk_builder *b)
{
    chunk_encoder_reset(&s->enc);
    b->n_stats = 0;
    b->count = 0;
}

static int builder_add(struct store *s, struct chunk_builder *b, const struct chunk_reading *r)
{
    if (chunk_encoder_add(&s->enc, r) != 0)
        return CANARY_ENOMEM;
    if (b->count == 0)
        b->t_first = b->t_last = r->ts_ms;
    if (r->ts_ms < b->t_first)
        b->t_first = r->ts_ms;
    if (r->ts_ms > b->t_last)
        b->t_last = r->ts_ms;
    b->count++;
    for (uint32_t i = 0; i < r->n_values; i++) {
        const struct chunk_value *v = &r->values[i];
        struct chunk_stat *st = NULL;
        for (size_t k = 0; k < b->n_stats; k++) {
            if (b->stats[k].metric_id == v->metric_id)
                st = &b->stats[k];
        }
        if (st == NULL) {
            if (b->n_stats == READING_MAX_VALUES)
                continue; /* more distinct metrics than a reading may have: no stats */
            st = &b->stats[b->n_stats++];
            *st = (struct chunk_stat){v->metric_id, 0, v->value, v->value, 0, 0, 0};
        }
        st->count++;
        st->sum += v->value;
        if (v->value < st->min)
            st->min = v->value;
        if (v->value > st->max)
            st->max = v->value;
        if (v->flags & FLAG_ANOMALY)
            st->anomalies++;
        st->flags |= v->flags;
    }
    return CANARY_OK;
}

/* Writes the builder as a new chunk (chunk_id 0) or over an existing one. */
static int builder_store(struct store *s, struct chunk_builder *b, int64_t device_id,
                         int64_t chunk_id, char *err, size_t errlen)
{
    size_t data_len = chunk_encoded_size(&s->enc);
    size_t stats_max = chunk_stats_max_size(b->n_stats);
    if (sq_blob_reserve(s, data_len + stats_max) != 0)
        return CANARY_ENOMEM;
    chunk_encoder_emit(&s->enc, s->blob);
    size_t stats_len = chunk_stats_encode(b->stats, b->n_stats, s->blob + data_len);
    sqlite3_stmt *st = sq_stmt(s, chunk_id == 0 ? ST_CHUNK_INSERT : ST_CHUNK_UPDATE);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare chunk write");
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int64(st, 2, b->t_first);
    sqlite3_bind_int64(st, 3, b->t_last);
    sqlite3_bind_int64(st, 4, b->count);
    sqlite3_bind_blob(st, 5, s->blob, (int)data_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, s->blob + data_len, (int)stats_len, SQLITE_STATIC);
    if (chunk_id != 0)
        sqlite3_bind_int64(st, 7, chunk_id);
    int rc = step_done(st);
    return rc == 0 ? CANARY_OK : sq_fail(s, err, errlen, "write chunk");
}

/* Starts the builder from the device's newest chunk when the sorted group's first
 * reading can extend it. Returns 0 with *chunk_id (0 = start a new chunk). */
static int open_tail(struct store *s, struct chunk_builder *b, int64_t device_id, int64_t first_ts,
                     int64_t *chunk_id, char *err, size_t errlen)
{
    *chunk_id = 0;
    builder_reset(s, b);
    sqlite3_stmt *st = sq_stmt(s, ST_TAIL_SELECT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare tail read");
    sqlite3_bind_int64(st, 1, device_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t t_first = sqlite3_column_int64(st, 1);
        int64_t t_last = sqlite3_column_int64(st, 2);
        int64_t n = sqlite3_column_int64(st, 3);
        if (n < s->opt.chunk_max_readings && first_ts >= t_last &&
            first_ts - t_first <= s->opt.chunk_max_span_ms) {
            struct chunk_decoder d;
            struct chunk_reading r;
            struct chunk_value values[READING_MAX_VALUES];
            if (chunk_decoder_init(&d, sqlite3_column_blob(st, 4),
                                   (size_t)sqlite3_column_bytes(st, 4)) == 0) {
                int got;
                while ((got = chunk_decoder_next(&d, &r, values, READING_MAX_VALUES)) == 1) {
                    if (builder_add(s, b, &r) != 0) {
                        sqlite3_reset(st);
                        return CANARY_ENOMEM;
                    }
                }
                if (got == 0)
                    *chunk_id = sqlite3_column_int64(st, 0);
            }
            if (*chunk_id == 0) {
                log_error("store.corrupt_chunk", "device_id=%lld", (long long)device_id);
                builder_reset(s, b);
            }
        }
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "read tail chunk");
}

static int write_chunks(struct store *s, struct device_group *g, char *err, size_t errlen)
{
    struct chunk_builder *b = malloc(sizeof *b);
    if (b == NULL)
        return CANARY_ENOMEM;
    int64_t chunk_id;
    int rc = open_tail(s, b, g->device_id, g->rows[0]->r.ts_ms, &chunk_id, err, errlen);
    for (size_t i = 0; i < g->n && rc == 0; i++) {
        const struct chunk_reading *r = &g->rows[i]->r;
        if (b->count > 0 && (b->count >= s->opt.chunk_max_readings ||
                             r->ts_ms - b->t_first > s->opt.chunk_max_span_ms)) {
            rc = builder_store(s, b, g->device_id, chunk_id, err, errlen);
            builder_reset(s, b);
            chunk_id = 0;
        }
        if (rc == 0)
            rc = builder_add(s, b, r);
    }
    if (rc == 0 && b->count > 0)
        rc = builder_store(s, b, g->device_id, chunk_id, err, errlen);
    free(b);
    return rc;
}

/* Per-metric summary of a group, merged into the series table. */
struct series_acc {
    uint32_t metric_id;
    uint64_t count;
    int64_t last_ts;
    double last_value;
    float last_score;
    uint32_t last_flags;
    double max_value, min_value;
    int64_t max_ts, min_ts;
};

static int update_series(struct store *s, const struct device_group *g, char *err, size_t errlen)
{
    struct series_acc acc[READING_MAX_VALUES];
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++) {
        const struct chunk_reading *r = &g->rows[i]->r;
        for (uint32_t k = 0; k < r->n_values; k++) {
            const struct chunk_value *v = &r->values[k];
            struct series_acc *a = NULL;
            for (size_t j = 0; j < n; j++) {
                if (acc[j].metric_id == v->metric_id)
                    a = &acc[j];
            }
            if (a == NULL) {
                if (n == READING_MAX_VALUES)
                    continue;
                a = &acc[n++];
                *a = (struct series_acc){v->metric_id, 0,        r->ts_ms, v->value, v->score,
                                         v->flags,     v->value, v->value, r->ts_ms, r->ts_ms};
            }
            a->count++;
            if (r->ts_ms >= a->last_ts) {
                a->last_ts = r->ts_ms;
                a->last_value = v->value;
                a->last_score = v->score;
                a->last_flags = v->flags;
            }
            if (v->value > a->max_value) {
                a->max_value = v->value;
                a->max_ts = r->ts_ms;
            }
            if (v->value < a->min_value) {
                a->min_value = v->value;
                a->min_ts = r->ts_ms;
            }
        }
    }
    sqlite3_stmt *st = sq_stmt(s, ST_SERIES_UPSERT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare series update");
    for (size_t j = 0; j < n; j++) {
        const struct series_acc *a = &acc[j];
        sqlite3_bind_int64(st, 1, g->device_id);
        sqlite3_bind_int64(st, 2, a->metric_id);
        sqlite3_bind_int64(st, 3, (int64_t)a->count);
        sqlite3_bind_int64(st, 4, a->last_ts);
        sqlite3_bind_double(st, 5, a->last_value);
        sqlite3_bind_double(st, 6, a->last_score);
        sqlite3_bind_int64(st, 7, a->last_flags);
        sqlite3_bind_double(st, 8, a->max_value);
        sqlite3_bind_int64(st, 9, a->max_ts);
        sqlite3_bind_double(st, 10, a->min_value);
        sqlite3_bind_int64(st, 11, a->min_ts);
        if (step_done(st) != 0)
            return sq_fail(s, err, errlen, "update series");
    }
    return CANARY_OK;
}

/* Folds the group into its device row: counts, first/last seen, seq window, newest ts.
 * The group must still be in log (arrival) order: the window sees seqs as they came. */
static int update_device(struct store *s, const struct device_group *g, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_stmt(s, ST_DEVICE_WINDOW);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare device window");
    sqlite3_bind_int64(st, 1, g->device_id);
    struct seq_window w = {0, 0, false};
    if (sqlite3_step(st) == SQLITE_ROW) {
        w.started = sqlite3_column_int(st, 0) != 0;
        w.high = (uint64_t)sqlite3_column_int64(st, 1);
        w.seen = (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    int64_t first = INT64_MAX, last = 0, max_ts = 0;
    for (size_t i = 0; i < g->n; i++) {
        const struct chunk_reading *r = &g->rows[i]->r;
        if (r->has_seq)
            seq_window_mark(&w, r->seq);
        if (r->recv_ms < first)
            first = r->recv_ms;
        if (r->recv_ms > last)
            last = r->recv_ms;
        if (r->ts_ms > max_ts)
            max_ts = r->ts_ms;
    }
    st = sq_stmt(s, ST_DEVICE_FOLD);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare device update");
    sqlite3_bind_int64(st, 1, (int64_t)g->n);
    sqlite3_bind_int64(st, 2, first);
    sqlite3_bind_int64(st, 3, last);
    sqlite3_bind_int(st, 4, w.started);
    sqlite3_bind_int64(st, 5, (int64_t)w.high);
    sqlite3_bind_int64(st, 6, (int64_t)w.seen);
    sqlite3_bind_int64(st, 7, max_ts);
    sqlite3_bind_int64(st, 8, g->device_id);
    return step_done(st) == 0 ? CANARY_OK : sq_fail(s, err, errlen, "update device");
}

int store_compact(struct store *s, size_t max_rows, size_t *moved, char *err, size_t errlen)
{
    *moved = 0;
    struct compaction c;
    memset(&c, 0, sizeof c);
    arena_init(&c.arena, 1 << 20);
    strmap_init(&c.by_device);
    int rc;
    if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0) {
        compaction_free(&c);
        return CANARY_EIO;
    }
    int64_t last_id;
    size_t n_rows;
    rc = load_log(s, &c, max_rows, &last_id, &n_rows, err, errlen);
    for (size_t i = 0; i < c.n_groups && rc == 0; i++) {
        struct device_group *g = &c.groups[i];
        rc = update_device(s, g, err, errlen); /* needs log order: before the sort */
        qsort(g->rows, g->n, sizeof *g->rows, cmp_by_time);
        if (rc == 0)
            rc = write_chunks(s, g, err, errlen);
        if (rc == 0)
            rc = update_series(s, g, err, errlen);
    }
    if (rc == 0 && last_id > 0) {
        sqlite3_stmt *st = sq_stmt(s, ST_LOG_DELETE);
        if (st == NULL)
            rc = sq_fail(s, err, errlen, "prepare log truncate");
        else {
            sqlite3_bind_int64(st, 1, last_id);
            if (step_done(st) != 0)
                rc = sq_fail(s, err, errlen, "truncate log");
        }
    }
    compaction_free(&c);
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

int store_purge(struct store *s, int64_t readings_before_ms, int64_t alerts_before_ms,
                size_t max_rows, size_t *deleted, char *err, size_t errlen)
{
    *deleted = 0;
    if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
        return CANARY_EIO;
    int rc = CANARY_OK;
    if (readings_before_ms > 0)
        rc = delete_limited(s,
                            "DELETE FROM chunks WHERE id IN (SELECT id FROM chunks"
                            " WHERE t_last < ?1 LIMIT ?2)",
                            readings_before_ms, max_rows, deleted, err, errlen);
    if (rc == 0 && alerts_before_ms > 0) {
        rc = delete_limited(s,
                            "DELETE FROM alert_events WHERE alert_id IN (SELECT id FROM alerts"
                            " WHERE state = 'resolved' AND resolved_ms < ?1 LIMIT ?2)",
                            alerts_before_ms, max_rows, deleted, err, errlen);
        if (rc == 0)
            rc = delete_limited(s,
                                "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts"
                                " WHERE state = 'resolved' AND resolved_ms < ?1 LIMIT ?2)",
                                alerts_before_ms, max_rows, deleted, err, errlen);
    }
    if (rc == 0)
        rc = sq_exec(s, "COMMIT", err, errlen);
    if (rc != 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return CANARY_EIO;
    }
    return CANARY_OK;
}
