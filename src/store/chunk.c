/* chunk.c — the stored-reading encoding; the format is documented in chunk.h. */
#include "store/chunk.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- primitive writers (into a buffer with enough room) ---- */

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

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static size_t put_f64(uint8_t *p, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(bits >> (8 * i));
    return 8;
}

/* ---- primitive readers (bounds-checked) ---- */

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
    return false; /* more than 10 bytes: corrupt */
}

static bool get_f64(const uint8_t **p, const uint8_t *end, double *out)
{
    if (end - *p < 8)
        return false;
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
        bits |= (uint64_t)(*p)[i] << (8 * i);
    *p += 8;
    memcpy(out, &bits, 8);
    return true;
}

/* ---- encoder ---- */

void chunk_encoder_init(struct chunk_encoder *e)
{
    memset(e, 0, sizeof *e);
}

void chunk_encoder_free(struct chunk_encoder *e)
{
    free(e->buf);
    memset(e, 0, sizeof *e);
}

void chunk_encoder_reset(struct chunk_encoder *e)
{
    e->len = 0;
    e->count = 0;
    e->prev_ts = 0;
    e->prev_seq = 0;
}

static int reserve(struct chunk_encoder *e, size_t more)
{
    if (e->len + more <= e->cap)
        return CANARY_OK;
    size_t cap = e->cap ? e->cap : 256;
    while (cap < e->len + more)
        cap *= 2;
    uint8_t *b = realloc(e->buf, cap);
    if (b == NULL)
        return CANARY_ENOMEM;
    e->buf = b;
    e->cap = cap;
    return CANARY_OK;
}

int chunk_encoder_add(struct chunk_encoder *e, const struct chunk_reading *r)
{
    /* Worst case: 3 x 10 (varints) + 1 + 10 per reading, 10 + 8 + 2 + 10 per value. */
    if (reserve(e, 41 + (size_t)r->n_values * 30) != 0)
        return CANARY_ENOMEM;
    uint8_t *p = e->buf + e->len;
    size_t n = 0;
    n += put_varint(p + n, zigzag((int64_t)((uint64_t)r->ts_ms - (uint64_t)e->prev_ts)));
    p[n++] = r->has_seq ? 1 : 0;
    if (r->has_seq)
        n += put_varint(p + n, zigzag((int64_t)(r->seq - e->prev_seq)));
    n += put_varint(p + n, zigzag((int64_t)((uint64_t)r->recv_ms - (uint64_t)r->ts_ms)));
    n += put_varint(p + n, r->n_values);
    for (uint32_t i = 0; i < r->n_values; i++) {
        const struct chunk_value *v = &r->values[i];
        n += put_varint(p + n, v->metric_id);
        n += put_f64(p + n, v->value);
        float s = v->score < 0 ? 0 : (v->score > 1 ? 1 : v->score);
        uint16_t q = (uint16_t)lrintf(s * 65535.0f);
        p[n++] = (uint8_t)q;
        p[n++] = (uint8_t)(q >> 8);
        n += put_varint(p + n, v->flags);
    }
    e->len += n;
    e->count++;
    e->prev_ts = r->ts_ms;
    if (r->has_seq)
        e->prev_seq = r->seq;
    return CANARY_OK;
}

size_t chunk_encoded_size(const struct chunk_encoder *e)
{
    uint8_t tmp[10];
    return 1 + put_varint(tmp, e->count) + e->len;
}

size_t chunk_encoder_emit(const struct chunk_encoder *e, uint8_t *out)
{
    size_t n = 0;
    out[n++] = CHUNK_VERSION;
    n += put_varint(out + n, e->count);
    if (e->len > 0)
        memcpy(out + n, e->buf, e->len);
    return n + e->len;
}

/* ---- decoder ---- */

int chunk_decoder_init(struct chunk_decoder *d, const void *blob, size_t len)
{
    d->p = blob;
    d->end = d->p + len;
    d->prev_ts = 0;
    d->prev_seq = 0;
    d->remaining = 0;
    if (len < 2 || d->p[0] != CHUNK_VERSION)
        return CANARY_EINVAL;
    d->p++;
    uint64_t count;
    if (!get_varint(&d->p, d->end, &count) || count > UINT32_MAX)
        return CANARY_EINVAL;
    d->remaining = (uint32_t)count;
    return CANARY_OK;
}

uint32_t chunk_decoder_count(const struct chunk_decoder *d)
{
    return d->remaining;
}

int chunk_decoder_next(struct chunk_decoder *d, struct chunk_reading *r, struct chunk_value *values,
                       uint32_t cap)
{
    if (d->remaining == 0)
        return d->p == d->end ? 0 : CANARY_EINVAL;
    uint64_t u;
    if (!get_varint(&d->p, d->end, &u))
        return CANARY_EINVAL;
    r->ts_ms = (int64_t)((uint64_t)d->prev_ts + (uint64_t)unzigzag(u)); /* wraps, never UB */
    if (d->p >= d->end || *d->p > 1)
        return CANARY_EINVAL;
    r->has_seq = *d->p++ == 1;
    r->seq = 0;
    if (r->has_seq) {
        if (!get_varint(&d->p, d->end, &u))
            return CANARY_EINVAL;
        r->seq = d->prev_seq + (uint64_t)unzigzag(u);
    }
    if (!get_varint(&d->p, d->end, &u))
        return CANARY_EINVAL;
    r->recv_ms = (int64_t)((uint64_t)r->ts_ms + (uint64_t)unzigzag(u));
    if (!get_varint(&d->p, d->end, &u) || u > cap)
        return CANARY_EINVAL;
    r->n_values = (uint32_t)u;
    r->values = values;
    for (uint32_t i = 0; i < r->n_values; i++) {
        struct chunk_value *v = &values[i];
        if (!get_varint(&d->p, d->end, &u) || u > UINT32_MAX)
            return CANARY_EINVAL;
        v->metric_id = (uint32_t)u;
        if (!get_f64(&d->p, d->end, &v->value) || d->end - d->p < 2)
            return CANARY_EINVAL;
        uint16_t q = (uint16_t)(d->p[0] | (d->p[1] << 8));
        d->p += 2;
        v->score = (float)q / 65535.0f;
        if (!get_varint(&d->p, d->end, &u) || u > UINT32_MAX)
            return CANARY_EINVAL;
        v->flags = (uint32_t)u;
    }
    d->prev_ts = r->ts_ms;
    if (r->has_seq)
        d->prev_seq = r->seq;
    d->remaining--;
    return 1;
}

/* ---- statistics ---- */

size_t chunk_stats_max_size(size_t n)
{
    return 1 + 10 + n * (10 + 10 + 24 + 10 + 10);
}

size_t chunk_stats_encode(const struct chunk_stat *stats, size_t n, uint8_t *out)
{
    size_t k = 0;
    out[k++] = CHUNK_VERSION;
    k += put_varint(out + k, n);
    for (size_t i = 0; i < n; i++) {
        k += put_varint(out + k, stats[i].metric_id);
        k += put_varint(out + k, stats[i].count);
        k += put_f64(out + k, stats[i].min);
        k += put_f64(out + k, stats[i].max);
        k += put_f64(out + k, stats[i].sum);
        k += put_varint(out + k, stats[i].anomalies);
        k += put_varint(out + k, stats[i].flags);
    }
    return k;
}

int chunk_stats_decode(const void *blob, size_t len, struct chunk_stat *out, size_t cap)
{
    const uint8_t *p = blob, *end = p + len;
    if (len < 2 || *p++ != CHUNK_VERSION)
        return CANARY_EINVAL;
    uint64_t n, u;
    if (!get_varint(&p, end, &n) || n > cap)
        return CANARY_EINVAL;
    for (size_t i = 0; i < n; i++) {
        struct chunk_stat *s = &out[i];
        if (!get_varint(&p, end, &u) || u > UINT32_MAX)
            return CANARY_EINVAL;
        s->metric_id = (uint32_t)u;
        if (!get_varint(&p, end, &u) || u > UINT32_MAX)
            return CANARY_EINVAL;
        s->count = (uint32_t)u;
        if (!get_f64(&p, end, &s->min) || !get_f64(&p, end, &s->max) || !get_f64(&p, end, &s->sum))
            return CANARY_EINVAL;
        if (!get_varint(&p, end, &u) || u > UINT32_MAX)
            return CANARY_EINVAL;
        s->anomalies = (uint32_t)u;
        if (!get_varint(&p, end, &u) || u > UINT32_MAX)
            return CANARY_EINVAL;
        s->flags = (uint32_t)u;
    }
    return p == end ? (int)n : CANARY_EINVAL;
}
