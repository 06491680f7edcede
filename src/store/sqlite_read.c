/* sqlite_read.c — the SQLite engine's reading queries: raw readings of a time range,
 * downsampled buckets for charts, and per-series summaries.
 *
 * Every query reads two places: chunks (found through the (device, t_first) index; a
 * chunk spans at most a day, the largest chunk_max_span_s allowed, so the index range is
 * [from - 1 day, to]) and the uncompacted log (scanned: it holds only the readings since
 * the last compaction, a few seconds' worth). */
#include "store/sqlite_internal.h"

#include "core/error.h"
#include "core/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHUNK_SPAN_MS 86400000LL

/* Names of metric ids copied into a result's arena, so results outlive dictionary reloads. */
struct name_cache {
    const char **names; /* index = metric id */
    size_t n;
};

static const char *cached_name(struct store *s, struct name_cache *nc, struct arena *a, uint32_t id)
{
    if (id < nc->n && nc->names[id] != NULL)
        return nc->names[id];
    const char *name = sq_metric_name(s, id);
    if (name == NULL)
        return NULL;
    if (id >= nc->n) {
        size_t n = (size_t)id + 16;
        const char **grown = realloc(nc->names, n * sizeof *grown);
        if (grown == NULL)
            return NULL;
        memset(grown + nc->n, 0, (n - nc->n) * sizeof *grown);
        nc->names = grown;
        nc->n = n;
    }
    nc->names[id] = arena_strndup(a, name, strlen(name));
    return nc->names[id];
}

/* ---------------------------------------------------------------- raw readings */

struct collector {
    struct store *s;
    const struct store_readings_query *q;
    struct store_readings_result *out;
    struct name_cache names;
    int64_t metric_id; /* -1: all metrics */
    size_t cap;
    int64_t min_ts, max_ts; /* of collected rows */
};

static int collect(struct collector *c, const struct chunk_reading *r)
{
    if (r->ts_ms < c->q->from_ms || r->ts_ms > c->q->to_ms)
        return CANARY_OK;
    uint32_t first = 0, count = r->n_values;
    if (c->metric_id >= 0) {
        count = 0;
        for (uint32_t i = 0; i < r->n_values; i++) {
            if (r->values[i].metric_id == (uint32_t)c->metric_id) {
                first = i;
                count = 1;
            }
        }
        if (count == 0)
            return CANARY_OK;
    }
    struct store_readings_result *out = c->out;
    if (out->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        struct store_reading *rows = realloc(out->rows, cap * sizeof *rows);
        if (rows == NULL)
            return CANARY_ENOMEM;
        out->rows = rows;
        c->cap = cap;
    }
    struct store_reading *row = &out->rows[out->n];
    row->ts_ms = r->ts_ms;
    row->recv_ms = r->recv_ms;
    row->seq = r->seq;
    row->has_seq = r->has_seq;
    row->n_values = count;
    row->values = arena_alloc(&out->arena, count * sizeof *row->values + 1);
    if (row->values == NULL)
        return CANARY_ENOMEM;
    for (uint32_t i = 0; i < count; i++) {
        const struct chunk_value *v = &r->values[first + i];
        const char *name = cached_name(c->s, &c->names, &out->arena, v->metric_id);
        row->values[i].metric = name != NULL ? name : "?";
        row->values[i].value = v->value;
        row->values[i].score = v->score;
        row->values[i].flags = v->flags;
    }
    if (out->n == 0 || r->ts_ms < c->min_ts)
        c->min_ts = r->ts_ms;
    if (out->n == 0 || r->ts_ms > c->max_ts)
        c->max_ts = r->ts_ms;
    out->n++;
    return CANARY_OK;
}

static int collect_blob(struct collector *c, const void *blob, size_t len)
{
    struct chunk_decoder d;
    struct chunk_reading r;
    struct chunk_value values[READING_MAX_VALUES];
    if (chunk_decoder_init(&d, blob, len) != 0)
        return CANARY_EINVAL;
    int got;
    while ((got = chunk_decoder_next(&d, &r, values, READING_MAX_VALUES)) == 1) {
        int rc = collect(c, &r);
        if (rc != 0)
            return rc;
    }
    return got == 0 ? CANARY_OK : CANARY_EINVAL;
}

static int cmp_row_asc(const void *a, const void *b)
{
    const struct store_reading *x = a, *y = b;
    if (x->ts_ms != y->ts_ms)
        return x->ts_ms < y->ts_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static int cmp_row_desc(const void *a, const void *b)
{
    return cmp_row_asc(b, a);
}

/* Chunks in index order; stops once further chunks cannot change the first `limit` rows. */
static int collect_chunks(struct collector *c, int64_t device_id, char *err, size_t errlen)
{
    const struct store_readings_query *q = c->q;
    sqlite3_stmt *st =
        sq_prepare(c->s,
                   q->newest_first ? "SELECT t_first, t_last, data FROM chunks WHERE device_id=?1"
                                     " AND t_first BETWEEN ?2 AND ?3 AND t_last >= ?4"
                                     " ORDER BY t_first DESC"
                                   : "SELECT t_first, t_last, data FROM chunks WHERE device_id=?1"
                                     " AND t_first BETWEEN ?2 AND ?3 AND t_last >= ?4"
                                     " ORDER BY t_first ASC",
                   err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int64(st, 2, q->from_ms - MAX_CHUNK_SPAN_MS);
    sqlite3_bind_int64(st, 3, q->to_ms);
    sqlite3_bind_int64(st, 4, q->from_ms);
    int rc, res = CANARY_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t t_first = sqlite3_column_int64(st, 0);
        int64_t t_last = sqlite3_column_int64(st, 1);
        if (c->out->n >= q->limit) {
            /* Ascending: a chunk starting after every collected row adds only later ones.
             * Descending: a chunk ending before every collected row adds only earlier ones.
             * Either way the range holds more than the limit (the chunk overlaps it): say so,
             * or a page that ends exactly at a chunk boundary reads as the last one. */
            if ((!q->newest_first && t_first > c->max_ts) ||
                (q->newest_first && t_last < c->min_ts)) {
                c->out->more = true;
                break;
            }
        }
        res = collect_blob(c, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
        if (res == CANARY_EINVAL) {
            log_error("store.corrupt_chunk", "device_id=%lld t_first=%lld", (long long)device_id,
                      (long long)t_first);
            res = CANARY_OK;
        }
        if (res != 0)
            break;
    }
    sqlite3_finalize(st);
    if (res != 0)
        return res;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CANARY_OK
                                                 : sq_fail(c->s, err, errlen, "read chunks");
}

struct log_scan {
    int64_t device_id; /* < 0: every device */
    int64_t from_ms, to_ms;
    int (*fn)(void *arg, int64_t device_id, const struct chunk_reading *r);
    void *arg;
};

static int scan_reading(void *arg, int64_t device_id, const struct chunk_reading *r)
{
    struct log_scan *ls = arg;
    if ((ls->device_id >= 0 && device_id != ls->device_id) || r->ts_ms < ls->from_ms ||
        r->ts_ms > ls->to_ms)
        return CANARY_OK;
    return ls->fn(ls->arg, device_id, r);
}

/* Calls fn for every reading in the log of the device (every device when device_id < 0)
 * within [from_ms, to_ms]. The log holds only the readings since the last compaction. */
static int scan_log(struct store *s, int64_t device_id, int64_t from_ms, int64_t to_ms,
                    int (*fn)(void *arg, int64_t device_id, const struct chunk_reading *r),
                    void *arg, char *err, size_t errlen)
{
    /* One device's readings are in its partition, or in partition 0 (rows from before the
     * partitions hold every device): only those rows need decoding. */
    sqlite3_stmt *st = sq_prepare(s,
                                  device_id < 0 ? "SELECT id, data FROM reading_log ORDER BY id"
                                                : "SELECT id, data FROM reading_log"
                                                  " WHERE part IN (0, ?1) ORDER BY id",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    if (device_id >= 0)
        sqlite3_bind_int(st, 1, sq_log_part(device_id));
    struct log_scan ls = {device_id, from_ms, to_ms, fn, arg};
    int rc, res = CANARY_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        res = sq_log_each(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
                          scan_reading, &ls);
        if (res == CANARY_EINVAL) {
            log_error("store.corrupt_log_row", "log_id=%lld",
                      (long long)sqlite3_column_int64(st, 0));
            res = CANARY_OK;
        }
        if (res != 0)
            break;
    }
    sqlite3_finalize(st);
    if (res != 0)
        return res;
    return rc == SQLITE_DONE ? CANARY_OK : sq_fail(s, err, errlen, "read log");
}

static int collect_log_reading(void *arg, int64_t device_id, const struct chunk_reading *r)
{
    (void)device_id;
    return collect(arg, r);
}

static int readings_in_txn(struct store *s, const struct store_readings_query *q,
                           struct store_readings_result *out, char *err, size_t errlen);

/* The chunks and the log are read in one transaction, so one snapshot: a compaction that
 * commits between the two queries would otherwise move readings from the log into a chunk
 * already read, and they would be missing from the answer. */
int store_readings(struct store *s, const struct store_readings_query *q,
                   struct store_readings_result *out, char *err, size_t errlen)
{
    bool own = sqlite3_get_autocommit(s->db) &&
               sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    int rc = readings_in_txn(s, q, out, err, errlen);
    if (own)
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

static int readings_in_txn(struct store *s, const struct store_readings_query *q,
                           struct store_readings_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    arena_init(&out->arena, 64 * 1024);
    if (q->limit == 0 || q->from_ms > q->to_ms)
        return CANARY_OK;
    int64_t device_id;
    int rc = sq_device_id(s, q->device, &device_id, err, errlen);
    if (rc == CANARY_ENOTFOUND)
        return CANARY_OK;
    if (rc != 0)
        return rc;
    struct collector c = {s, q, out, {NULL, 0}, -1, 0, 0, 0};
    if (q->metric != NULL) {
        uint32_t mid;
        rc = sq_metric_id(s, q->metric, &mid, err, errlen);
        if (rc == CANARY_ENOTFOUND)
            return CANARY_OK;
        if (rc != 0)
            return rc;
        c.metric_id = mid;
    }
    rc = collect_chunks(&c, device_id, err, errlen);
    if (rc == 0)
        rc = scan_log(s, device_id, q->from_ms, q->to_ms, collect_log_reading, &c, err, errlen);
    free(c.names.names);
    if (rc != 0) {
        store_readings_free(out);
        return rc;
    }
    if (out->n > 1) /* qsort(NULL, 0) is undefined */
        qsort(out->rows, out->n, sizeof *out->rows, q->newest_first ? cmp_row_desc : cmp_row_asc);
    if (out->n > q->limit) {
        out->n = q->limit;
        out->more = true;
    }
    return CANARY_OK;
}

void store_readings_free(struct store_readings_result *r)
{
    free(r->rows);
    arena_free(&r->arena);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- downsampling */

struct sampler {
    struct store_bucket *b;
    size_t n;
    int64_t from_ms, to_ms;
    uint32_t metric_id;
};

static size_t bucket_of(const struct sampler *sp, int64_t ts)
{
    double span = (double)(sp->to_ms - sp->from_ms) + 1.0;
    size_t i = (size_t)((double)(ts - sp->from_ms) / span * (double)sp->n);
    return i < sp->n ? i : sp->n - 1;
}

static void bucket_add(struct store_bucket *b, uint32_t count, double min, double max, double sum,
                       uint32_t anomalies, uint32_t flags)
{
    if (b->count == 0 || min < b->min)
        b->min = min;
    if (b->count == 0 || max > b->max)
        b->max = max;
    b->count += count;
    b->sum += sum;
    b->anomalies += anomalies;
    b->flags |= flags;
}

static int sample_reading(void *arg, int64_t device_id, const struct chunk_reading *r)
{
    (void)device_id;
    struct sampler *sp = arg;
    if (r->ts_ms < sp->from_ms || r->ts_ms > sp->to_ms)
        return CANARY_OK;
    for (uint32_t i = 0; i < r->n_values; i++) {
        const struct chunk_value *v = &r->values[i];
        if (v->metric_id != sp->metric_id)
            continue;
        bucket_add(&sp->b[bucket_of(sp, r->ts_ms)], 1, v->value, v->value, v->value,
                   (v->flags & FLAG_ANOMALY) ? 1 : 0, v->flags);
    }
    return CANARY_OK;
}

static int sample_blob(struct sampler *sp, const void *blob, size_t len)
{
    struct chunk_decoder d;
    struct chunk_reading r;
    struct chunk_value values[READING_MAX_VALUES];
    if (chunk_decoder_init(&d, blob, len) != 0)
        return CANARY_EINVAL;
    int got;
    while ((got = chunk_decoder_next(&d, &r, values, READING_MAX_VALUES)) == 1)
        sample_reading(sp, 0, &r);
    return got == 0 ? CANARY_OK : CANARY_EINVAL;
}

/* Uses a chunk's statistics when the whole chunk falls into one bucket. */
static bool sample_stats(struct sampler *sp, int64_t t_first, int64_t t_last, const void *stats,
                         size_t len)
{
    if (t_first < sp->from_ms || t_last > sp->to_ms ||
        bucket_of(sp, t_first) != bucket_of(sp, t_last))
        return false;
    struct chunk_stat st[READING_MAX_VALUES];
    int n = chunk_stats_decode(stats, len, st, READING_MAX_VALUES);
    if (n < 0)
        return false;
    for (int i = 0; i < n; i++) {
        if (st[i].metric_id == sp->metric_id)
            bucket_add(&sp->b[bucket_of(sp, t_first)], st[i].count, st[i].min, st[i].max, st[i].sum,
                       st[i].anomalies, st[i].flags);
    }
    return true;
}

int store_downsample(struct store *s, const char *device, const char *metric, int64_t from_ms,
                     int64_t to_ms, struct store_bucket *buckets, size_t n, char *err,
                     size_t errlen)
{
    if (n == 0 || from_ms > to_ms)
        return CANARY_EINVAL;
    double width = ((double)(to_ms - from_ms) + 1.0) / (double)n;
    for (size_t i = 0; i < n; i++) {
        memset(&buckets[i], 0, sizeof buckets[i]);
        buckets[i].from_ms = from_ms + (int64_t)(width * (double)i);
        buckets[i].to_ms = from_ms + (int64_t)(width * (double)(i + 1)) - 1;
    }
    buckets[n - 1].to_ms = to_ms;
    int64_t device_id;
    uint32_t metric_id;
    int rc = sq_device_id(s, device, &device_id, err, errlen);
    if (rc == 0)
        rc = sq_metric_id(s, metric, &metric_id, err, errlen);
    if (rc == CANARY_ENOTFOUND)
        return CANARY_OK;
    if (rc != 0)
        return rc;
    struct sampler sp = {buckets, n, from_ms, to_ms, metric_id};
    sqlite3_stmt *st = sq_prepare(s,
                                  "SELECT t_first, t_last, data, stats FROM chunks WHERE"
                                  " device_id=?1 AND t_first BETWEEN ?2 AND ?3 AND t_last >= ?4",
                                  err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int64(st, 2, from_ms - MAX_CHUNK_SPAN_MS);
    sqlite3_bind_int64(st, 3, to_ms);
    sqlite3_bind_int64(st, 4, from_ms);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t t_first = sqlite3_column_int64(st, 0);
        int64_t t_last = sqlite3_column_int64(st, 1);
        if (sample_stats(&sp, t_first, t_last, sqlite3_column_blob(st, 3),
                         (size_t)sqlite3_column_bytes(st, 3)))
            continue;
        if (sample_blob(&sp, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2)) != 0)
            log_error("store.corrupt_chunk", "device_id=%lld t_first=%lld", (long long)device_id,
                      (long long)t_first);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "read chunks");
    return scan_log(s, device_id, from_ms, to_ms, sample_reading, &sp, err, errlen);
}

/* ---------------------------------------------------------------- series summaries */

struct series_entry {
    int64_t device_id;
    uint32_t metric_id;
    struct store_series ser;
};

struct series_list {
    struct store *s;
    struct series_entry *e;
    size_t n, cap;
    struct strmap index; /* "device_id:metric_id" -> index + 1 */
};

static struct series_entry *series_find(struct series_list *l, int64_t device_id,
                                        uint32_t metric_id, bool create)
{
    char key[48];
    snprintf(key, sizeof key, "%lld:%u", (long long)device_id, metric_id);
    intptr_t i = (intptr_t)strmap_get(&l->index, key);
    if (i > 0)
        return &l->e[i - 1];
    if (!create)
        return NULL;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct series_entry *grown = realloc(l->e, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        l->e = grown;
        l->cap = cap;
    }
    struct series_entry *e = &l->e[l->n++];
    memset(e, 0, sizeof *e);
    e->device_id = device_id;
    e->metric_id = metric_id;
    if (strmap_put(&l->index, key, (void *)(intptr_t)l->n) != 0)
        return NULL;
    return e;
}

static int series_from_log(void *arg, int64_t device_id, const struct chunk_reading *rp)
{
    struct series_list *l = arg;
    const struct chunk_reading r = *rp;
    for (uint32_t i = 0; i < r.n_values; i++) {
        const struct chunk_value *v = &r.values[i];
        struct series_entry *e = series_find(l, device_id, v->metric_id, true);
        if (e == NULL)
            return CANARY_ENOMEM;
        struct store_series *ser = &e->ser;
        if (ser->count == 0) {
            ser->max_value = ser->min_value = v->value;
            ser->max_ts_ms = ser->min_ts_ms = r.ts_ms;
        }
        ser->count++;
        if (r.ts_ms >= ser->last_ts_ms) {
            ser->last_ts_ms = r.ts_ms;
            ser->last_value = v->value;
            ser->last_score = v->score;
            ser->last_flags = v->flags;
        }
        if (v->value > ser->max_value) {
            ser->max_value = v->value;
            ser->max_ts_ms = r.ts_ms;
        }
        if (v->value < ser->min_value) {
            ser->min_value = v->value;
            ser->min_ts_ms = r.ts_ms;
        }
    }
    return CANARY_OK;
}

static int cmp_series(const void *a, const void *b)
{
    const struct series_entry *x = a, *y = b;
    int c = strcmp(x->ser.device, y->ser.device);
    return c != 0 ? c : strcmp(x->ser.metric, y->ser.metric);
}

/* Fills in device keys and metric names of entries that came only from the log. */
static int name_entries(struct series_list *l, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(l->s, "SELECT key FROM devices WHERE id = ?", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    for (size_t i = 0; i < l->n; i++) {
        struct series_entry *e = &l->e[i];
        if (e->ser.device[0] == '\0') {
            sqlite3_bind_int64(st, 1, e->device_id);
            if (sqlite3_step(st) == SQLITE_ROW)
                snprintf(e->ser.device, sizeof e->ser.device, "%s",
                         (const char *)sqlite3_column_text(st, 0));
            sqlite3_reset(st);
        }
        if (e->ser.metric[0] == '\0') {
            const char *name = sq_metric_name(l->s, e->metric_id);
            snprintf(e->ser.metric, sizeof e->ser.metric, "%s", name ? name : "?");
        }
    }
    sqlite3_finalize(st);
    return CANARY_OK;
}

int store_series_list(struct store *s, const char *device,
                      void (*fn)(void *arg, const struct store_series *ser), void *arg, char *err,
                      size_t errlen)
{
    int64_t device_id = -1;
    if (device != NULL) {
        int rc = sq_device_id(s, device, &device_id, err, errlen);
        if (rc == CANARY_ENOTFOUND)
            return CANARY_OK;
        if (rc != 0)
            return rc;
    }
    struct series_list l = {s, NULL, 0, 0, {NULL, 0, 0}};
    strmap_init(&l.index);
    sqlite3_stmt *st = sq_prepare(
        s,
        "SELECT s.device_id, s.metric_id, d.key, m.name, s.count, s.last_ts_ms, s.last_value,"
        " s.last_score, s.last_flags, s.max_value, s.max_ts_ms, s.min_value, s.min_ts_ms"
        " FROM series s JOIN devices d ON d.id = s.device_id JOIN metrics m ON m.id = s.metric_id"
        " WHERE ?1 < 0 OR s.device_id = ?1",
        err, errlen);
    int rc = st == NULL ? CANARY_EIO : CANARY_OK;
    if (st != NULL) {
        sqlite3_bind_int64(st, 1, device_id);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            struct series_entry *e = series_find(&l, sqlite3_column_int64(st, 0),
                                                 (uint32_t)sqlite3_column_int64(st, 1), true);
            if (e == NULL) {
                rc = CANARY_ENOMEM;
                break;
            }
            struct store_series *ser = &e->ser;
            snprintf(ser->device, sizeof ser->device, "%s",
                     (const char *)sqlite3_column_text(st, 2));
            snprintf(ser->metric, sizeof ser->metric, "%s",
                     (const char *)sqlite3_column_text(st, 3));
            ser->count = (uint64_t)sqlite3_column_int64(st, 4);
            ser->last_ts_ms = sqlite3_column_int64(st, 5);
            ser->last_value = sqlite3_column_double(st, 6);
            ser->last_score = (float)sqlite3_column_double(st, 7);
            ser->last_flags = (uint32_t)sqlite3_column_int64(st, 8);
            ser->max_value = sqlite3_column_double(st, 9);
            ser->max_ts_ms = sqlite3_column_int64(st, 10);
            ser->min_value = sqlite3_column_double(st, 11);
            ser->min_ts_ms = sqlite3_column_int64(st, 12);
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = sq_fail(s, err, errlen, "read series");
        sqlite3_finalize(st);
    }
    if (rc == 0)
        rc = scan_log(s, device_id, INT64_MIN, INT64_MAX, series_from_log, &l, err, errlen);
    if (rc == 0)
        rc = name_entries(&l, err, errlen);
    if (rc == 0 && l.n > 0) { /* qsort(NULL, 0, ...) is undefined */
        qsort(l.e, l.n, sizeof *l.e, cmp_series);
        for (size_t i = 0; i < l.n; i++)
            fn(arg, &l.e[i].ser);
    }
    free(l.e);
    strmap_free(&l.index);
    return rc;
}
