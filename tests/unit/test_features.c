/* test_features.c — unit tests of the feature windows (src/ml/features.c).
 *
 * Every stream is checked push by push against a naive reference that keeps the accepted
 * values in an array and recomputes the window's statistics from scratch in long double
 * (two passes), on random and adversarial streams: constant, monotone up and down, 1e9 plus
 * small noise, a step from 0 to 1e9, lone spikes of 1e9, NaN and infinities in the middle;
 * with windows 1, 2, 32 and FEATURE_WINDOW_MAX. The tolerance for the mean, deviation and
 * standard deviation is a few ulps of the largest magnitude in the last two windows, so a
 * drifting or cancelling running sum shows (a plain double sum of squares is off by ~1e2
 * after a spike of 1e9 leaves). */
#include "ml/features.h"
#include "unit_support.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* |a - b| <= tol, reported with both values (this cmocka has no assert_double_equal). */
#define assert_near(a, b, tol) assert_near_at((a), (b), (tol), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double tol, const char *file, int line)
{
    if (!(fabs(a - b) <= tol)) {
        fprintf(stderr, "%s:%d: %.17g is not %.17g (tolerance %g)\n", file, line, a, b, tol);
        fail();
    }
}

static struct feature_series *series_new(uint32_t window)
{
    struct feature_series *s = malloc(feature_series_size(window));
    assert_non_null(s);
    feature_series_init(s, window);
    return s;
}

/* The naive reference: every accepted (ts, value) so far. */
struct naive {
    uint32_t window;
    size_t n;
    double *v;
    int64_t *ts;
};

static void naive_features(const struct naive *r, double *out)
{
    size_t cnt = r->n < r->window ? r->n : r->window;
    const double *w = r->v + r->n - cnt;
    long double sum = 0, mn = w[0], mx = w[0];
    for (size_t i = 0; i < cnt; i++) {
        sum += w[i];
        mn = w[i] < mn ? w[i] : mn;
        mx = w[i] > mx ? w[i] : mx;
    }
    long double mean = sum / cnt, ss = 0;
    for (size_t i = 0; i < cnt; i++)
        ss += (w[i] - mean) * (w[i] - mean);
    double value = r->v[r->n - 1];
    out[FEATURE_VALUE] = value;
    out[FEATURE_MEAN] = (double)mean;
    out[FEATURE_STD] = (double)sqrtl(ss / cnt);
    out[FEATURE_MIN] = (double)mn;
    out[FEATURE_MAX] = (double)mx;
    out[FEATURE_DEVIATION] = (double)(value - mean);
    out[FEATURE_RATE_PER_MIN] = 0;
    if (r->n >= 2 && r->ts[r->n - 1] > r->ts[r->n - 2])
        out[FEATURE_RATE_PER_MIN] =
            (value - r->v[r->n - 2]) / ((double)(r->ts[r->n - 1] - r->ts[r->n - 2]) / 60000.0);
}

/* The largest |value| in the last two windows: the scale rounding errors are measured by
 * (the series' origin is one of those values, see features.c). */
static double naive_scale(const struct naive *r)
{
    size_t cnt = r->n < 2 * (size_t)r->window ? r->n : 2 * (size_t)r->window;
    double m = 0;
    for (size_t i = r->n - cnt; i < r->n; i++)
        m = fmax(m, fabs(r->v[i]));
    return m;
}

/* Worst errors seen, in units of eps * scale, reported by the tests for the record. */
static double worst_ulps;

/* Pushes values[0..n) with timestamps ts[0..n) into a series of this window and into the
 * reference, checking every output. */
static void check_stream(const char *what, uint32_t window, const double *values, const int64_t *ts,
                         size_t n)
{
    struct feature_series *s = series_new(window);
    struct naive r = {window, 0, malloc(n * sizeof(double)), malloc(n * sizeof(int64_t))};
    assert_non_null(r.v);
    assert_non_null(r.ts);
    for (size_t i = 0; i < n; i++) {
        double got[FEATURES_PER_SERIES], want[FEATURES_PER_SERIES];
        feature_series_push(s, ts[i], values[i], got);
        if (!isfinite(values[i])) {
            for (int k = 0; k < FEATURES_PER_SERIES; k++)
                assert_true(isnan(got[k]));
            assert_int_equal(s->count, r.n < window ? r.n : window);
            continue;
        }
        r.v[r.n] = values[i];
        r.ts[r.n] = ts[i];
        r.n++;
        naive_features(&r, want);
        assert_int_equal(feature_series_warm(s), r.n >= window);
        double scale = naive_scale(&r);
        double tol = 4 * DBL_EPSILON * scale;
        for (int k = 0; k < FEATURES_PER_SERIES; k++) {
            double t = tol;
            if (k == FEATURE_RATE_PER_MIN)
                t = 1e-12 * fabs(want[k]);
            if (k == FEATURE_VALUE || k == FEATURE_MIN || k == FEATURE_MAX)
                t = 0;
            double err = fabs(got[k] - want[k]);
            if (k != FEATURE_RATE_PER_MIN && scale > 0)
                worst_ulps = fmax(worst_ulps, err / (DBL_EPSILON * scale));
            if (!(err <= t)) {
                fprintf(stderr,
                        "%s window %u push %zu: %s got %.17g want %.17g (err %.3g, tol %.3g)\n",
                        what, window, i, feature_kind_name(k), got[k], want[k], err, t);
                fail();
            }
        }
    }
    free(r.v);
    free(r.ts);
    free(s);
}

static const uint32_t windows[] = {1, 2, 32, FEATURE_WINDOW_MAX};
#define N_WINDOWS (sizeof windows / sizeof windows[0])
#define STREAM    5000

/* Builds a stream with generator g and checks it at every window size. */
typedef double (*gen_fn)(struct test_rng *rng, size_t i);

static void check_generated(const char *what, gen_fn g)
{
    double *v = malloc(STREAM * sizeof(double));
    int64_t *ts = malloc(STREAM * sizeof(int64_t));
    assert_non_null(v);
    assert_non_null(ts);
    struct test_rng rng = {0x9e3779b97f4a7c15ull};
    int64_t t = 1763676000000LL;
    for (size_t i = 0; i < STREAM; i++) {
        v[i] = g(&rng, i);
        /* Mostly 1 s apart, sometimes the same millisecond, sometimes going back. */
        size_t step = test_rng_below(&rng, 20);
        t += step == 0 ? 0 : step == 1 ? -500 : 1000 + (int64_t)test_rng_below(&rng, 50);
        ts[i] = t;
    }
    for (size_t w = 0; w < N_WINDOWS; w++)
        check_stream(what, windows[w], v, ts, STREAM);
    free(v);
    free(ts);
}

static double gen_random(struct test_rng *rng, size_t i)
{
    /* Scale and offset change every 700 readings. */
    double scale = pow(10.0, (double)((i / 700) % 7) - 3);
    return 20.0 * (double)((i / 700) % 3) + scale * test_rng_gauss(rng);
}
static double gen_constant(struct test_rng *rng, size_t i)
{
    return 412.5;
}
static double gen_up(struct test_rng *rng, size_t i)
{
    return 0.25 * (double)i;
}
static double gen_down(struct test_rng *rng, size_t i)
{
    return 1000.0 - 0.125 * (double)i;
}
static double gen_offset(struct test_rng *rng, size_t i)
{
    return 1e9 + 1e-3 * test_rng_gauss(rng);
}
static double gen_step(struct test_rng *rng, size_t i)
{
    return (i < 1500 ? 0.0 : 1e9) + 1e-3 * test_rng_gauss(rng);
}
static double gen_spikes(struct test_rng *rng, size_t i)
{
    return i % 997 == 500 ? 1e9 : 1.0 + 1e-3 * test_rng_gauss(rng);
}
static double gen_holes(struct test_rng *rng, size_t i)
{
    size_t k = test_rng_below(rng, 30);
    if (k == 0)
        return NAN;
    if (k == 1)
        return i % 2 ? INFINITY : -INFINITY;
    return 5.0 + test_rng_gauss(rng);
}
static double gen_ties(struct test_rng *rng, size_t i)
{
    return (double)test_rng_below(rng, 4); /* many equal minima and maxima */
}

static void test_random(void **state)
{
    check_generated("random", gen_random);
}
static void test_constant(void **state)
{
    check_generated("constant", gen_constant);
}
static void test_monotone(void **state)
{
    check_generated("up", gen_up);
    check_generated("down", gen_down);
}
static void test_huge_offset(void **state)
{
    check_generated("1e9+noise", gen_offset);
    check_generated("step to 1e9", gen_step);
    check_generated("spikes of 1e9", gen_spikes);
}
static void test_nan_and_ties(void **state)
{
    check_generated("nan/inf holes", gen_holes);
    check_generated("ties", gen_ties);
    fprintf(stderr, "worst error of mean/std/deviation: %.2f eps x window max |value|\n",
            worst_ulps);
}

/* The standard deviation of 1e9 + noise keeps the noise's digits (a naive one-pass
 * E[x^2] - E[x]^2 in double would give 0 or garbage), and removing a spike leaves no
 * residue: the window after it has the small values' std exactly enough. */
static void test_precision_examples(void **state)
{
    struct feature_series *s = series_new(4);
    double out[FEATURES_PER_SERIES];
    const double v[] = {1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4};
    for (int i = 0; i < 4; i++)
        feature_series_push(s, i * 1000, v[i], out);
    assert_near(out[FEATURE_MEAN], 1e9 + 2.5, 0);
    assert_near(out[FEATURE_STD], sqrt(1.25), 1e-15);
    assert_near(out[FEATURE_DEVIATION], 1.5, 0);

    feature_series_init(s, 4);
    const double w[] = {1e12, 1, 2, 3, 4};
    for (int i = 0; i < 5; i++)
        feature_series_push(s, i * 1000, w[i], out);
    assert_near(out[FEATURE_MEAN], 2.5, 0);
    assert_near(out[FEATURE_STD], sqrt(1.25), 1e-15);
    assert_near(out[FEATURE_MIN], 1, 0);
    assert_near(out[FEATURE_MAX], 4, 0);
    free(s);
}

static void test_warm_and_first(void **state)
{
    struct feature_series *s = series_new(3);
    double out[FEATURES_PER_SERIES];
    assert_false(feature_series_warm(s));
    feature_series_push(s, 60000, 10, out);
    assert_near(out[FEATURE_RATE_PER_MIN], 0, 0); /* first reading */
    assert_near(out[FEATURE_STD], 0, 0);
    assert_false(feature_series_warm(s));
    feature_series_push(s, 60000, NAN, out); /* not added */
    assert_true(isnan(out[FEATURE_MEAN]));
    feature_series_push(s, 120000, 13, out);
    assert_near(out[FEATURE_RATE_PER_MIN], 3, 0); /* +3 in one minute */
    assert_false(feature_series_warm(s));
    feature_series_push(s, 120000, 14, out);
    assert_near(out[FEATURE_RATE_PER_MIN], 0, 0); /* same ts */
    assert_true(feature_series_warm(s));
    feature_series_push(s, 90000, 20, out);
    assert_near(out[FEATURE_RATE_PER_MIN], 0, 0); /* ts went back */
    feature_series_push(s, 120000, 26, out);
    assert_near(out[FEATURE_RATE_PER_MIN], 12, 1e-12); /* +6 in 30 s */
    assert_true(feature_series_warm(s));

    /* The window is clamped; a copy made with memcpy carries on identically. */
    feature_series_init(s, 0);
    assert_int_equal(s->window, 1);
    free(s);
    assert_int_equal(feature_series_size(100000), feature_series_size(FEATURE_WINDOW_MAX));
    struct feature_series *a = series_new(5);
    struct feature_series *b = malloc(feature_series_size(5));
    assert_non_null(b);
    for (int i = 0; i < 7; i++)
        feature_series_push(a, i * 1000, i * i, out);
    memcpy(b, a, feature_series_size(5));
    double oa[FEATURES_PER_SERIES], ob[FEATURES_PER_SERIES];
    for (int i = 7; i < 20; i++) {
        feature_series_push(a, i * 1000, 100.0 / i, oa);
        feature_series_push(b, i * 1000, 100.0 / i, ob);
        assert_memory_equal(oa, ob, sizeof oa);
    }
    free(a);
    free(b);
}

static void test_time_of_day(void **state)
{
    const int64_t day = 86400000, base = 1763596800000LL; /* 2025-11-20 00:00:00 UTC */
    double tod[2];
    feature_time_of_day(base, tod);
    assert_near(tod[0], 0, 1e-12);
    assert_near(tod[1], 1, 1e-12);
    feature_time_of_day(base + day / 4, tod); /* 06:00 */
    assert_near(tod[0], 1, 1e-12);
    assert_near(tod[1], 0, 1e-12);
    feature_time_of_day(base + day / 2, tod); /* 12:00 */
    assert_near(tod[0], 0, 1e-12);
    assert_near(tod[1], -1, 1e-12);
    feature_time_of_day(base + 3 * day / 4, tod); /* 18:00 */
    assert_near(tod[0], -1, 1e-12);
    assert_near(tod[1], 0, 1e-12);
    /* 23:59 is next to midnight. */
    double late[2];
    feature_time_of_day(base + day - 60000, late);
    assert_true(hypot(late[0] - 0, late[1] - 1) < 0.005);
    /* Before 1970: 1969-12-31 18:00 UTC. */
    feature_time_of_day(-day / 4, tod);
    assert_near(tod[0], -1, 1e-12);
    assert_near(tod[1], 0, 1e-12);
}

static void test_names(void **state)
{
    static const char *const want[] = {"value", "mean",      "std",         "min",
                                       "max",   "deviation", "rate_per_min"};
    for (int k = 0; k < FEATURES_PER_SERIES; k++)
        assert_string_equal(feature_kind_name(k), want[k]);
    assert_null(feature_kind_name(FEATURES_PER_SERIES));

    const char *const metrics[] = {"gas_ppm", "temperature_c"};
    char buf[64];
    assert_int_equal(feature_vector_len(2), 16);
    assert_true(feature_column_name(metrics, 2, 0, buf, sizeof buf));
    assert_string_equal(buf, "gas_ppm.value");
    assert_true(feature_column_name(metrics, 2, 6, buf, sizeof buf));
    assert_string_equal(buf, "gas_ppm.rate_per_min");
    assert_true(feature_column_name(metrics, 2, 9, buf, sizeof buf));
    assert_string_equal(buf, "temperature_c.std");
    assert_true(feature_column_name(metrics, 2, 14, buf, sizeof buf));
    assert_string_equal(buf, "time_of_day_sin");
    assert_true(feature_column_name(metrics, 2, 15, buf, sizeof buf));
    assert_string_equal(buf, "time_of_day_cos");
    assert_false(feature_column_name(metrics, 2, 16, buf, sizeof buf));
    assert_true(feature_column_name(NULL, 0, 1, buf, sizeof buf));
    assert_string_equal(buf, "time_of_day_cos");
    /* Too small a buffer: false, and a truncated, terminated name. */
    assert_false(feature_column_name(metrics, 2, 0, buf, 5));
    assert_string_equal(buf, "gas_");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random),         cmocka_unit_test(test_constant),
        cmocka_unit_test(test_monotone),       cmocka_unit_test(test_huge_offset),
        cmocka_unit_test(test_nan_and_ties),   cmocka_unit_test(test_precision_examples),
        cmocka_unit_test(test_warm_and_first), cmocka_unit_test(test_time_of_day),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
