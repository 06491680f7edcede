/* sqlite_fold.c — folding readings into the SQLite engine's chunks: readings grouped by
 * device become chunks (extending the device's newest chunk when they continue it), and
 * their device row (counts, last seen, seq window) and series summaries (latest, min, max)
 * are brought up to date — all inside the caller's transaction.
 *
 * Commits use it directly for devices with many readings in one commit (heavy load: the
 * readings skip the log), compaction for the log's readings (light load). */
#include "store/sqlite_internal.h"

#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A device's newest chunk is extended (decoded and written again) only while it holds fewer
 * readings than this: at light load chunks still grow to a useful size, and one compaction
 * rewrites at most this many readings per device however full chunks may get. */
#define TAIL_MERGE_MAX 64

/* Group indexes are kept in a dense array indexed by device id (rowids: 1, 2, 3 ...);

 * ids beyond this fall back to a linear search. */
#define DENSE_DEVICE_IDS (1 << 22)

void grouping_init(struct grouping *g)
{
    memset(g, 0, sizeof *g);
    arena_init(&g->arena, 1 << 20);
}

void grouping_free(struct grouping *g)
{
    for (size_t i = 0; i < g->n_groups; i++)
        free(g->groups[i].rows);
    free(g->groups);
    free(g->index);
    arena_free(&g->arena);
    memset(g, 0, sizeof *g);
}

static struct device_group *group_for(struct grouping *g, int64_t device_id)
{
    bool dense = device_id > 0 && device_id < DENSE_DEVICE_IDS;
    if (dense && (size_t)device_id < g->index_cap && g->index[device_id] > 0)
        return &g->groups[g->index[device_id] - 1];
    if (!dense) {
        for (size_t i = 0; i < g->n_groups; i++) {
            if (g->groups[i].device_id == device_id)
                return &g->groups[i];
        }
    }
    if (dense && (size_t)device_id >= g->index_cap) {
        size_t cap = g->index_cap ? g->index_cap : 1024;
        while (cap <= (size_t)device_id)
            cap *= 2;
        int32_t *idx = realloc(g->index, cap * sizeof *idx);
        if (idx == NULL)
            return NULL;
        memset(idx + g->index_cap, 0, (cap - g->index_cap) * sizeof *idx);
        g->index = idx;
        g->index_cap = cap;
    }
    if (g->n_groups == g->cap_groups) {
        size_t cap = g->cap_groups ? g->cap_groups * 2 : 64;
        struct device_group *grown = realloc(g->groups, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        g->groups = grown;
        g->cap_groups = cap;
    }
    struct device_group *grp = &g->groups[g->n_groups++];
    memset(grp, 0, sizeof *grp);
    grp->device_id = device_id;
    if (dense)
        g->index[device_id] = (int32_t)g->n_groups;
    return grp;
}

int grouping_add(struct grouping *g, int64_t device_id, int64_t order,
                 const struct chunk_reading *r)
{
    struct device_group *grp = group_for(g, device_id);
    struct staged_reading *sr = arena_alloc(&g->arena, sizeof *sr);
    struct chunk_value *vals = arena_alloc(&g->arena, r->n_values * sizeof *vals + 1);
    if (grp == NULL || sr == NULL || vals == NULL)
        return CANARY_ENOMEM;
    if (grp->n == grp->cap) {
        size_t cap = grp->cap ? grp->cap * 2 : 16;
        struct staged_reading **rows = realloc(grp->rows, cap * sizeof *rows);
        if (rows == NULL)
            return CANARY_ENOMEM;
        grp->rows = rows;
        grp->cap = cap;
    }
    if (r->n_values > 0)
        memcpy(vals, r->values, r->n_values * sizeof *vals);
    sr->order = order;
    sr->r = *r;
    sr->r.values = vals;
    grp->rows[grp->n++] = sr;
    return CANARY_OK;
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CANARY_OK : CANARY_EIO;
}

static int cmp_by_time(const void *a, const void *b)
{
    const struct staged_reading *x = *(const struct staged_reading *const *)a;
    const struct staged_reading *y = *(const struct staged_reading *const *)b;
    if (x->r.ts_ms != y->r.ts_ms)
        return x->r.ts_ms < y->r.ts_ms ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
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
        if (n < TAIL_MERGE_MAX && n < s->opt.chunk_max_readings && first_ts >= t_last &&

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

static int write_chunks(struct store *s, struct device_group *g, bool merge_tail, char *err,
                        size_t errlen)
{
    struct chunk_builder *b = malloc(sizeof *b);
    if (b == NULL)
        return CANARY_ENOMEM;
    int64_t chunk_id = 0;
    int rc = CANARY_OK;
    if (merge_tail)
        rc = open_tail(s, b, g->device_id, g->rows[0]->r.ts_ms, &chunk_id, err, errlen);
    else
        builder_reset(s, b);
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

int sq_fold_group(struct store *s, struct device_group *g, bool merge_tail, char *err,
                  size_t errlen)
{
    if (g->n == 0)
        return CANARY_OK;
    int rc = update_device(s, g, err, errlen); /* needs arrival order: before the sort */
    qsort(g->rows, g->n, sizeof *g->rows, cmp_by_time);
    if (rc == 0)
        rc = write_chunks(s, g, merge_tail, err, errlen);
    if (rc == 0)
        rc = update_series(s, g, err, errlen);
    return rc;
}
