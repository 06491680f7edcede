/* test_chunk.c — unit tests of the stored-reading encoding (src/store/chunk.c): chunks of
 * readings and their statistics blobs.
 *
 * Round trips compare every field (doubles bit for bit). Every blob handed to a decoder sits
 * in a heap buffer of exactly its length, and every values/stats array is exactly `cap` long,
 * so the sanitizer build turns any read or write out of bounds into a failure. Truncations
 * at every length and a fuzz loop of flipped bytes check that decoding never trusts input. */
#include "core/error.h"
#include "store/chunk.h"
#include "unit_support.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define T0 1763676000000LL

/* A reading with its own value storage. */
struct fake {
    struct chunk_reading r;
    struct chunk_value v[300];
};

static void make(struct fake *f, int64_t ts, int64_t recv, bool has_seq, uint64_t seq,
                 uint32_t n_values, uint32_t salt)
{
    memset(f, 0, sizeof *f);
    f->r.ts_ms = ts;
    f->r.recv_ms = recv;
    f->r.has_seq = has_seq;
    f->r.seq = has_seq ? seq : 0;
    f->r.n_values = n_values;
    f->r.values = f->v;
    for (uint32_t k = 0; k < n_values; k++) {
        f->v[k].metric_id = salt * 7 + k;
        f->v[k].value = (double)salt * 1.25 - (double)k / 3.0;
        f->v[k].score = (float)((salt + k) % 11) / 10.0f;
        f->v[k].flags = (salt + k) % 3 == 0 ? 0 : (1u << ((salt + k) % 8));
    }
}

/* Encodes n readings; returns a heap blob of exactly the encoded size. */
static uint8_t *encode(struct fake *const *readings, size_t n, size_t *len)
{
    struct chunk_encoder e;
    chunk_encoder_init(&e);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(chunk_encoder_add(&e, &readings[i]->r), CANARY_OK);
    assert_int_equal(e.count, n);
    size_t size = chunk_encoded_size(&e);
    uint8_t *blob = malloc(size);
    assert_non_null(blob);
    assert_int_equal(chunk_encoder_emit(&e, blob), size);
    chunk_encoder_free(&e);
    *len = size;
    return blob;
}

/* Copies len bytes into a heap buffer of exactly that size. */
static uint8_t *exact_copy(const uint8_t *src, size_t len)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    if (len > 0)
        memcpy(p, src, len);
    return p;
}

static bool same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static float quantised(float score)
{
    float s = score < 0 ? 0 : (score > 1 ? 1 : score);
    return s;
}

static void assert_same_reading(const struct chunk_reading *got, const struct chunk_reading *want,
                                size_t i)
{
    if (got->ts_ms != want->ts_ms || got->recv_ms != want->recv_ms ||
        got->has_seq != want->has_seq || got->seq != (want->has_seq ? want->seq : 0) ||
        got->n_values != want->n_values)
        fail_msg("reading %zu: ts %lld/%lld recv %lld/%lld seq %d:%llu/%d:%llu n %u/%u", i,
                 (long long)got->ts_ms, (long long)want->ts_ms, (long long)got->recv_ms,
                 (long long)want->recv_ms, got->has_seq, (unsigned long long)got->seq,
                 want->has_seq, (unsigned long long)want->seq, got->n_values, want->n_values);
    for (uint32_t k = 0; k < want->n_values; k++) {
        const struct chunk_value *g = &got->values[k], *w = &want->values[k];
        assert_int_equal(g->metric_id, w->metric_id);
        if (!same_double(g->value, w->value))
            fail_msg("reading %zu value %u: %.17g != %.17g", i, k, g->value, w->value);
        assert_int_equal(g->flags, w->flags);
        float s = quantised(w->score);
        if (!(fabsf(g->score - s) <= 0.5f / 65535.0f + 1e-7f))
            fail_msg("reading %zu value %u: score %.9g, want %.9g within 1/65535", i, k,
                     (double)g->score, (double)s);
    }
}

/* Decodes a whole chunk and compares it with the readings it was made from. */
static void expect_round_trip(struct fake *const *readings, size_t n)
{
    size_t len;
    uint8_t *blob = encode(readings, n, &len);
    struct chunk_decoder d;
    assert_int_equal(chunk_decoder_init(&d, blob, len), CANARY_OK);
    assert_int_equal(chunk_decoder_count(&d), n);
    struct chunk_value *values = malloc(300 * sizeof *values);
    assert_non_null(values);
    struct chunk_reading r;
    for (size_t i = 0; i < n; i++) {
        int rc = chunk_decoder_next(&d, &r, values, 300);
        if (rc != 1)
            fail_msg("reading %zu of %zu: rc %d", i, n, rc);
        assert_ptr_equal(r.values, values);
        assert_same_reading(&r, &readings[i]->r, i);
    }
    assert_int_equal(chunk_decoder_next(&d, &r, values, 300), 0);
    assert_int_equal(chunk_decoder_next(&d, &r, values, 300), 0);
    free(values);
    free(blob);
}

static void test_round_trip(void **state)
{
    (void)state;
    static struct fake f[8];
    make(&f[0], T0, T0 + 5, true, 1042, 3, 1);
    make(&f[1], T0 + 1000, T0 + 1003, true, 1043, 1, 2);
    make(&f[2], T0 + 500, T0 + 2000, false, 0, 2, 3);      /* out of order, no seq */
    make(&f[3], T0 - 86400000, T0 + 10, true, 1041, 4, 4); /* a day back */
    make(&f[4], T0 + 2000, T0 + 1990, true, 1044, 1, 5);   /* received before measured */
    make(&f[5], T0 + 2000, T0 + 2000, true, 1044, 1, 6);   /* same ts and seq again */
    make(&f[6], T0 + 3000, T0 + 3000, true, 7, 2, 7);      /* seq reset (device reboot) */
    make(&f[7], T0 + 4000, T0 + 4001, false, 0, 250, 8);   /* many values */
    struct fake *all[8];
    for (size_t i = 0; i < 8; i++)
        all[i] = &f[i];
    expect_round_trip(all, 8);
    expect_round_trip(all, 1);
    expect_round_trip(all + 2, 1);
    expect_round_trip(all, 0);
}

static void test_extreme_values(void **state)
{
    (void)state;
    static struct fake f[6];
    make(&f[0], INT64_MAX, INT64_MIN, true, UINT64_MAX, 0, 0);
    make(&f[1], INT64_MIN, INT64_MAX, true, 0, 0, 0);
    make(&f[2], 0, 0, false, 0, 0, 0);
    make(&f[3], -1, 1, true, UINT64_MAX - 1, 0, 0);
    make(&f[4], INT64_MAX, INT64_MAX, true, 1ULL << 63, 0, 0);
    const double doubles[] = {0.0,       -0.0,    NAN,      -NAN,    INFINITY,
                              -INFINITY, DBL_MAX, -DBL_MAX, DBL_MIN, 4.9406564584124654e-324,
                              1e-300,    412.5};
    size_t nd = sizeof doubles / sizeof doubles[0];
    make(&f[5], 5, 6, true, 3, (uint32_t)nd, 0);
    for (size_t k = 0; k < nd; k++) {
        f[5].v[k].value = doubles[k];
        f[5].v[k].metric_id = k == 0 ? 0 : (k == 1 ? UINT32_MAX : (uint32_t)(1u << (k * 2)));
        f[5].v[k].flags = k == 0 ? UINT32_MAX : (uint32_t)k;
        f[5].v[k].score = k % 2 ? 1.0f : 0.0f;
    }
    struct fake *all[6] = {&f[0], &f[1], &f[2], &f[3], &f[4], &f[5]};
    expect_round_trip(all, 6);
}

static void test_scores_quantised(void **state)
{
    (void)state;
    static struct fake f;
    make(&f, T0, T0, true, 1, 256, 0);
    for (uint32_t k = 0; k < 256; k++)
        f.v[k].score = (float)k / 255.0f + (k % 5) * 1e-6f;
    f.v[0].score = 0.0f;
    f.v[1].score = 1.0f;
    f.v[2].score = 0.5f / 65535.0f;
    f.v[3].score = 1.0f / 65535.0f;
    f.v[4].score = 0.99999f;
    f.v[5].score = 1e-9f;
    /* Out of range scores are clamped to [0, 1]. */
    f.v[6].score = -0.5f;
    f.v[7].score = 1.5f;
    f.v[8].score = -INFINITY;
    f.v[9].score = INFINITY;
    struct fake *one[1] = {&f};
    expect_round_trip(one, 1);

    size_t len;
    uint8_t *blob = encode(one, 1, &len);
    struct chunk_decoder d;
    struct chunk_value *values = malloc(256 * sizeof *values);
    assert_non_null(values);
    struct chunk_reading r;
    assert_int_equal(chunk_decoder_init(&d, blob, len), CANARY_OK);
    assert_int_equal(chunk_decoder_next(&d, &r, values, 256), 1);
    assert_true(values[0].score == 0.0f);
    assert_true(values[1].score == 1.0f);
    assert_true(values[6].score == 0.0f);
    assert_true(values[7].score == 1.0f);
    assert_true(values[8].score == 0.0f);
    assert_true(values[9].score == 1.0f);
    for (uint32_t k = 0; k < 256; k++)
        assert_true(values[k].score >= 0.0f && values[k].score <= 1.0f);
    free(values);
    free(blob);
}

static void test_encoded_size_matches_emit(void **state)
{
    (void)state;
    /* Counts whose varint takes 1, 2 and 3 bytes. */
    const size_t counts[] = {0, 1, 127, 128, 300, 16383, 16384};
    static struct fake f;
    struct chunk_encoder e;
    chunk_encoder_init(&e);
    size_t added = 0;
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        while (added < counts[c]) {
            make(&f, T0 + (int64_t)added * 1000, T0 + (int64_t)added * 1000 + 3, added % 3 != 0,
                 added, (uint32_t)(added % 4), (uint32_t)added);
            assert_int_equal(chunk_encoder_add(&e, &f.r), CANARY_OK);
            added++;
        }
        size_t size = chunk_encoded_size(&e);
        uint8_t *blob = malloc(size);
        assert_non_null(blob);
        assert_int_equal(chunk_encoder_emit(&e, blob), size);
        assert_int_equal(blob[0], CHUNK_VERSION);
        struct chunk_decoder d;
        assert_int_equal(chunk_decoder_init(&d, blob, size), CANARY_OK);
        assert_int_equal(chunk_decoder_count(&d), counts[c]);
        struct chunk_value values[4];
        struct chunk_reading r;
        size_t got = 0;
        int rc;
        while ((rc = chunk_decoder_next(&d, &r, values, 4)) == 1) {
            assert_int_equal(r.ts_ms, T0 + (int64_t)got * 1000);
            assert_int_equal(r.recv_ms - r.ts_ms, 3);
            assert_int_equal(r.has_seq, got % 3 != 0);
            assert_int_equal(r.n_values, got % 4);
            got++;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(got, counts[c]);
        free(blob);
    }
    /* The empty chunk is two bytes. */
    chunk_encoder_reset(&e);
    assert_int_equal(chunk_encoded_size(&e), 2);
    chunk_encoder_free(&e);
}

static void test_reset_and_reuse(void **state)
{
    (void)state;
    static struct fake a[3], b[2];
    make(&a[0], T0, T0, true, 100, 5, 1);
    make(&a[1], T0 + 5, T0 + 6, true, 101, 5, 2);
    make(&a[2], T0 + 9, T0 + 9, true, 102, 5, 3);
    make(&b[0], T0 - 99, T0, true, 7, 2, 4);
    make(&b[1], T0 - 50, T0, false, 0, 1, 5);

    struct chunk_encoder e;
    chunk_encoder_init(&e);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(chunk_encoder_add(&e, &a[i].r), CANARY_OK);
    chunk_encoder_reset(&e);
    assert_int_equal(e.count, 0);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(chunk_encoder_add(&e, &b[i].r), CANARY_OK);
    size_t size = chunk_encoded_size(&e);
    uint8_t *reused = malloc(size);
    assert_non_null(reused);
    assert_int_equal(chunk_encoder_emit(&e, reused), size);
    chunk_encoder_free(&e);
    assert_null(e.buf);

    /* The same bytes as a fresh encoder's: no delta state leaks across reset. */
    struct fake *fresh[2] = {&b[0], &b[1]};
    size_t len;
    uint8_t *blob = encode(fresh, 2, &len);
    assert_int_equal(len, size);
    assert_memory_equal(blob, reused, len);
    free(blob);
    free(reused);
    expect_round_trip(fresh, 2);

    /* A freed encoder can be initialised and used again. */
    chunk_encoder_init(&e);
    assert_int_equal(chunk_encoder_add(&e, &a[0].r), CANARY_OK);
    assert_int_equal(e.count, 1);
    chunk_encoder_free(&e);
}

static void test_cap_smaller_than_values(void **state)
{
    (void)state;
    static struct fake f[2];
    make(&f[0], T0, T0, true, 1, 2, 1);
    make(&f[1], T0 + 1, T0 + 1, true, 2, 5, 2);
    struct fake *all[2] = {&f[0], &f[1]};
    size_t len;
    uint8_t *blob = encode(all, 2, &len);
    for (uint32_t cap = 0; cap <= 5; cap++) {
        struct chunk_decoder d;
        assert_int_equal(chunk_decoder_init(&d, blob, len), CANARY_OK);
        struct chunk_value *values = malloc((cap > 0 ? cap : 1) * sizeof *values);
        assert_non_null(values);
        struct chunk_reading r;
        int rc = chunk_decoder_next(&d, &r, values, cap);
        assert_int_equal(rc, cap >= 2 ? 1 : CANARY_EINVAL);
        if (rc == 1) {
            rc = chunk_decoder_next(&d, &r, values, cap);
            assert_int_equal(rc, cap >= 5 ? 1 : CANARY_EINVAL);
        }
        free(values);
    }
    free(blob);
}

static void test_bad_headers(void **state)
{
    (void)state;
    struct chunk_decoder d;
    const struct {
        uint8_t bytes[16];
        size_t len;
    } bad[] = {
        {{0}, 0},
        {{CHUNK_VERSION}, 1},
        {{0, 0}, 2},                                        /* version 0 */
        {{2, 0}, 2},                                        /* version 2 */
        {{0xff, 0}, 2},                                     /* version 255 */
        {{CHUNK_VERSION, 0x80}, 2},                         /* count cut short */
        {{CHUNK_VERSION, 0x80, 0x80, 0x80, 0x80, 0x10}, 6}, /* count 2^32 */
        {{CHUNK_VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 12},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        uint8_t *p = exact_copy(bad[k].bytes, bad[k].len);
        if (chunk_decoder_init(&d, p, bad[k].len) != CANARY_EINVAL)
            fail_msg("header %zu accepted", k);
        free(p);
    }
    /* count UINT32_MAX is a well-formed header; the readings it promises are missing. */
    const uint8_t most[] = {CHUNK_VERSION, 0xff, 0xff, 0xff, 0xff, 0x0f};
    uint8_t *p = exact_copy(most, sizeof most);
    assert_int_equal(chunk_decoder_init(&d, p, sizeof most), CANARY_OK);
    assert_int_equal(chunk_decoder_count(&d), UINT32_MAX);
    struct chunk_value v[1];
    struct chunk_reading r;
    assert_int_equal(chunk_decoder_next(&d, &r, v, 1), CANARY_EINVAL);
    free(p);

    /* A valid chunk with its version byte changed. */
    static struct fake f;
    make(&f, T0, T0, true, 1, 1, 1);
    struct fake *one[1] = {&f};
    size_t len;
    uint8_t *blob = encode(one, 1, &len);
    const uint8_t versions[] = {0, 2, 0x81, 0xff};
    for (size_t k = 0; k < sizeof versions; k++) {
        blob[0] = versions[k];
        assert_int_equal(chunk_decoder_init(&d, blob, len), CANARY_EINVAL);
    }
    /* seqflag other than 0 or 1: the byte after the first reading's dts. */
    blob[0] = CHUNK_VERSION;
    size_t at = 2;
    while (blob[at] & 0x80)
        at++;
    at++;
    assert_true(blob[at] == 1);
    blob[at] = 2;
    assert_int_equal(chunk_decoder_init(&d, blob, len), CANARY_OK);
    assert_int_equal(chunk_decoder_next(&d, &r, v, 1), CANARY_EINVAL);
    free(blob);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    static struct fake f[2];
    make(&f[0], T0, T0, true, 1, 2, 1);
    make(&f[1], T0 + 1, T0 + 2, false, 0, 1, 2);
    struct fake *all[2] = {&f[0], &f[1]};
    size_t len;
    uint8_t *blob = encode(all, 2, &len);
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, blob, len);
    longer[len] = 0;
    struct chunk_decoder d;
    struct chunk_value v[2];
    struct chunk_reading r;
    assert_int_equal(chunk_decoder_init(&d, longer, len + 1), CANARY_OK);
    assert_int_equal(chunk_decoder_next(&d, &r, v, 2), 1);
    assert_int_equal(chunk_decoder_next(&d, &r, v, 2), 1);
    assert_int_equal(chunk_decoder_next(&d, &r, v, 2), CANARY_EINVAL);
    free(longer);
    free(blob);
}

/* Decodes blob[0..len) to the end. Returns the last result: 0 (clean end) or CANARY_EINVAL.
 * values is exactly cap long. */
static int decode_to_end(const uint8_t *blob, size_t len, uint32_t cap, size_t *readings)
{
    struct chunk_decoder d;
    *readings = 0;
    int rc = chunk_decoder_init(&d, blob, len);
    if (rc != CANARY_OK) {
        assert_int_equal(rc, CANARY_EINVAL);
        return rc;
    }
    struct chunk_value *values = malloc((cap > 0 ? cap : 1) * sizeof *values);
    assert_non_null(values);
    struct chunk_reading r;
    while ((rc = chunk_decoder_next(&d, &r, values, cap)) == 1) {
        assert_true(r.n_values <= cap);
        assert_ptr_equal(r.values, values);
        (*readings)++;
        assert_true(*readings <= len); /* a reading takes at least one byte */
    }
    free(values);
    assert_true(rc == 0 || rc == CANARY_EINVAL);
    return rc;
}

static void test_every_truncation(void **state)
{
    (void)state;
    static struct fake f[5];
    make(&f[0], T0, T0 + 4, true, 900, 3, 1);
    make(&f[1], T0 - 70000, T0 + 4, true, 899, 1, 2);
    make(&f[2], T0 + 1, T0 + 1, false, 0, 0, 3);
    make(&f[3], T0 + 200000, T0 + 150000, true, 1ULL << 40, 6, 4);
    make(&f[4], T0 + 200001, T0 + 200001, true, 5, 2, 5);
    struct fake *all[5] = {&f[0], &f[1], &f[2], &f[3], &f[4]};
    size_t len;
    uint8_t *blob = encode(all, 5, &len);
    size_t n;
    assert_int_equal(decode_to_end(blob, len, 8, &n), 0);
    assert_int_equal(n, 5);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = exact_copy(blob, cut);
        int rc = decode_to_end(p, cut, 8, &n);
        free(p);
        /* The header promises five readings: a shorter blob can never end cleanly. */
        if (rc != CANARY_EINVAL)
            fail_msg("prefix of %zu of %zu bytes: rc %d after %zu readings", cut, len, rc, n);
        assert_true(n < 5);
    }
    free(blob);
}

/* ---- statistics ---- */

static void make_stats(struct chunk_stat *s, size_t n, uint32_t salt)
{
    for (size_t i = 0; i < n; i++) {
        s[i].metric_id = (uint32_t)(i * 1000003u + salt);
        s[i].count = (uint32_t)(i * 17 + 1);
        s[i].min = -(double)i * 0.5 - salt;
        s[i].max = (double)i * 3.25 + salt;
        s[i].sum = (double)i * 100.125;
        s[i].anomalies = (uint32_t)(i % 4);
        s[i].flags = (uint32_t)(i * 0x01010101u);
    }
}

static uint8_t *encode_stats(const struct chunk_stat *s, size_t n, size_t *len)
{
    size_t max = chunk_stats_max_size(n);
    uint8_t *buf = malloc(max);
    assert_non_null(buf);
    *len = chunk_stats_encode(s, n, buf);
    assert_true(*len <= max);
    assert_true(*len >= 2);
    uint8_t *blob = exact_copy(buf, *len);
    free(buf);
    return blob;
}

static void assert_same_stat(const struct chunk_stat *g, const struct chunk_stat *w)
{
    assert_int_equal(g->metric_id, w->metric_id);
    assert_int_equal(g->count, w->count);
    assert_true(same_double(g->min, w->min));
    assert_true(same_double(g->max, w->max));
    assert_true(same_double(g->sum, w->sum));
    assert_int_equal(g->anomalies, w->anomalies);
    assert_int_equal(g->flags, w->flags);
}

static void test_stats_round_trip(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 2, 50, 200};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        size_t n = sizes[c];
        struct chunk_stat *in = calloc(n + 1, sizeof *in);
        assert_non_null(in);
        make_stats(in, n, (uint32_t)c);
        if (n >= 2) { /* extremes */
            in[0].metric_id = UINT32_MAX;
            in[0].count = UINT32_MAX;
            in[0].anomalies = UINT32_MAX;
            in[0].flags = UINT32_MAX;
            in[0].min = -INFINITY;
            in[0].max = NAN;
            in[0].sum = -0.0;
            in[1].metric_id = 0;
            in[1].count = 0;
            in[1].min = DBL_MAX;
            in[1].max = -DBL_MAX;
            in[1].sum = 4.9406564584124654e-324;
        }
        size_t len;
        uint8_t *blob = encode_stats(in, n, &len);
        assert_int_equal(blob[0], CHUNK_VERSION);
        struct chunk_stat *out = malloc((n > 0 ? n : 1) * sizeof *out);
        assert_non_null(out);
        assert_int_equal(chunk_stats_decode(blob, len, out, n), (int)n);
        for (size_t i = 0; i < n; i++)
            assert_same_stat(&out[i], &in[i]);
        free(out);
        free(blob);
        free(in);
    }
}

static void test_stats_errors(void **state)
{
    (void)state;
    struct chunk_stat in[6];
    make_stats(in, 6, 9);
    size_t len;
    uint8_t *blob = encode_stats(in, 6, &len);
    struct chunk_stat *out = malloc(6 * sizeof *out);
    assert_non_null(out);

    /* Every truncation. */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = exact_copy(blob, cut);
        int rc = chunk_stats_decode(p, cut, out, 6);
        free(p);
        if (rc != CANARY_EINVAL)
            fail_msg("stats prefix of %zu of %zu bytes: rc %d", cut, len, rc);
    }
    /* A trailing byte. */
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, blob, len);
    longer[len] = 0;
    assert_int_equal(chunk_stats_decode(longer, len + 1, out, 6), CANARY_EINVAL);
    free(longer);
    /* Wrong versions. */
    const uint8_t versions[] = {0, 2, 0xff};
    for (size_t k = 0; k < sizeof versions; k++) {
        uint8_t *p = exact_copy(blob, len);
        p[0] = versions[k];
        assert_int_equal(chunk_stats_decode(p, len, out, 6), CANARY_EINVAL);
        free(p);
    }
    /* A cap below the count never writes past out[cap - 1]. */
    for (size_t cap = 0; cap < 6; cap++) {
        struct chunk_stat *small = malloc((cap > 0 ? cap : 1) * sizeof *small);
        assert_non_null(small);
        int rc = chunk_stats_decode(blob, len, small, cap);
        assert_true(rc == CANARY_EINVAL || rc == (int)cap);
        free(small);
    }
    free(out);
    free(blob);
}

/* ---- fuzz ---- */

static void corrupt(struct test_rng *r, uint8_t *p, size_t len)
{
    size_t flips = 1 + test_rng_below(r, 4);
    for (size_t k = 0; k < flips && len > 0; k++) {
        size_t at = test_rng_below(r, len);
        switch (test_rng_below(r, 3)) {
        case 0:
            p[at] ^= (uint8_t)(1u << test_rng_below(r, 8));
            break;
        case 1:
            p[at] = (uint8_t)test_rng_next(r);
            break;
        default:
            p[at] = test_rng_below(r, 2) ? 0xff : 0x80;
            break;
        }
    }
}

static void test_fuzz(void **state)
{
    (void)state;
    struct test_rng r = {.s = 0xc4a7c0ffee5eedULL};
    static struct fake f[6];
    struct fake *all[6];
    size_t clean = 0, einval = 0;
    for (int it = 0; it < 4000; it++) {
        size_t n = test_rng_below(&r, 7);
        int64_t ts = T0;
        for (size_t i = 0; i < n; i++) {
            ts += (int64_t)test_rng_below(&r, 200000) - 50000;
            int64_t recv = ts + (int64_t)test_rng_below(&r, 100);
            bool has_seq = test_rng_below(&r, 4) != 0;
            uint64_t seq = test_rng_next(&r);
            seq >>= test_rng_below(&r, 64);
            uint32_t n_values = (uint32_t)test_rng_below(&r, 9);
            make(&f[i], ts, recv, has_seq, seq, n_values, (uint32_t)test_rng_next(&r));
            all[i] = &f[i];
        }
        size_t len;
        uint8_t *blob = encode(all, n, &len);
        size_t cut = test_rng_below(&r, 4) == 0 ? test_rng_below(&r, len + 1) : len;
        uint8_t *p = exact_copy(blob, cut);
        corrupt(&r, p, cut);
        size_t readings;
        int rc = decode_to_end(p, cut, (uint32_t)test_rng_below(&r, 10), &readings);
        if (rc == 0)
            clean++;
        else
            einval++;
        free(p);
        free(blob);

        /* Stats blobs. */
        struct chunk_stat st[8];
        size_t ns = test_rng_below(&r, 9);
        make_stats(st, ns, (uint32_t)test_rng_next(&r));
        uint8_t *sb = encode_stats(st, ns, &len);
        cut = test_rng_below(&r, 4) == 0 ? test_rng_below(&r, len + 1) : len;
        p = exact_copy(sb, cut);
        corrupt(&r, p, cut);
        size_t cap = test_rng_below(&r, 9);
        struct chunk_stat *out = malloc((cap > 0 ? cap : 1) * sizeof *out);
        assert_non_null(out);
        int got = chunk_stats_decode(p, cut, out, cap);
        assert_true(got == CANARY_EINVAL || (got >= 0 && (size_t)got <= cap));
        free(out);
        free(p);
        free(sb);
    }
    /* Both outcomes must occur, or the loop tests less than it seems to. */
    if (clean < 100 || einval < 1000)
        fail_msg("fuzz outcomes: %zu clean, %zu corrupt", clean, einval);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_extreme_values),
        cmocka_unit_test(test_scores_quantised), cmocka_unit_test(test_encoded_size_matches_emit),
        cmocka_unit_test(test_reset_and_reuse),  cmocka_unit_test(test_cap_smaller_than_values),
        cmocka_unit_test(test_bad_headers),      cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_every_truncation), cmocka_unit_test(test_stats_round_trip),
        cmocka_unit_test(test_stats_errors),     cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
