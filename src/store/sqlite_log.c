/* sqlite_log.c — the append log of the SQLite engine: one row per commit and partition.
 *
 * A commit's readings of devices that had only a few readings in it (light load: a device
 * reporting once a second has one reading per commit) are appended to the log, and
 * compaction later folds them into the devices' chunks. One row per commit (and partition)
 * instead of one per reading makes the append a few inserts whatever the commit's size, and
 * the truncation after compaction a handful of row deletes. The partitions (LOG_PARTS, by
 * device id) let compaction work in short steps: one step folds one partition's rows, a
 * sixteenth of the devices, so a commit waiting behind it waits milliseconds, not the time
 * to fold every device's backlog.
 *
 * A log row's data:
 *   logrow := version:u8 (=1)  n:varint  device_id:varint * n  chunk
 * where chunk (chunk.h) holds the n readings in the same order, device_id[i] being the
 * device of reading i. Decoding never trusts its input (a corrupt row is skipped, loudly,
 * by the callers). */
#include "store/sqlite_internal.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

#define LOG_VERSION 1

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

void sq_log_reset(struct store *s)
{
    chunk_encoder_reset(&s->log_enc);
    s->log_n = 0;
}

int sq_log_add(struct store *s, int64_t device_id, const struct chunk_reading *r)
{
    if (s->log_n == s->log_cap) {
        size_t cap = s->log_cap ? s->log_cap * 2 : 1024;
        int64_t *grown = realloc(s->log_devices, cap * sizeof *grown);
        if (grown == NULL)
            return CANARY_ENOMEM;
        s->log_devices = grown;
        s->log_cap = cap;
    }
    if (chunk_encoder_add(&s->log_enc, r) != 0)
        return CANARY_ENOMEM;
    s->log_devices[s->log_n++] = device_id;
    return CANARY_OK;
}

int sq_log_flush(struct store *s, int part, char *err, size_t errlen)
{
    if (s->log_n == 0)
        return CANARY_OK;
    size_t max = 1 + 10 + s->log_n * 10 + chunk_encoded_size(&s->log_enc);
    if (sq_blob_reserve(s, max) != 0)
        return CANARY_ENOMEM;
    uint8_t *p = s->blob;
    size_t n = 0;
    p[n++] = LOG_VERSION;
    n += put_varint(p + n, s->log_n);
    for (size_t i = 0; i < s->log_n; i++)
        n += put_varint(p + n, (uint64_t)s->log_devices[i]);
    n += chunk_encoder_emit(&s->log_enc, p + n);
    sqlite3_stmt *st = sq_stmt(s, ST_LOG_INSERT);
    if (st == NULL)
        return sq_fail(s, err, errlen, "prepare log insert");
    sqlite3_bind_int(st, 1, part);
    sqlite3_bind_int64(st, 2, (int64_t)s->log_n);
    sqlite3_bind_blob(st, 3, s->blob, (int)n, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, errlen, "append to the log");
    sq_log_reset(s);
    return CANARY_OK;
}

int sq_log_each(const void *blob, size_t len,
                int (*fn)(void *arg, int64_t device_id, const struct chunk_reading *r), void *arg)
{
    const uint8_t *p = blob, *end = p + len;
    uint64_t n;
    if (len < 2 || *p++ != LOG_VERSION || !get_varint(&p, end, &n) || n > len)
        return CANARY_EINVAL;
    const uint8_t *ids = p;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t skip;
        if (!get_varint(&p, end, &skip))
            return CANARY_EINVAL;
    }
    struct chunk_decoder d;
    if (chunk_decoder_init(&d, p, (size_t)(end - p)) != 0 || chunk_decoder_count(&d) != n)
        return CANARY_EINVAL;
    struct chunk_reading r;
    struct chunk_value values[READING_MAX_VALUES];
    for (uint64_t i = 0; i < n; i++) {
        uint64_t device_id;
        if (!get_varint(&ids, end, &device_id) || device_id > INT64_MAX ||
            chunk_decoder_next(&d, &r, values, READING_MAX_VALUES) != 1)
            return CANARY_EINVAL;
        int rc = fn(arg, (int64_t)device_id, &r);
        if (rc != 0)
            return rc;
    }
    return CANARY_OK;
}

int store_log_backlog(struct store *s, uint64_t *readings, char *err, size_t errlen)
{
    /* One row per commit and partition: a few thousand rows at most, even with a backlog. */
    sqlite3_stmt *st = sq_prepare(s, "SELECT coalesce(sum(n), 0) FROM reading_log", err, errlen);
    if (st == NULL)
        return CANARY_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *readings = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? CANARY_OK : sq_fail(s, err, errlen, "log backlog");
}
