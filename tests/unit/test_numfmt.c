/* test_numfmt.c — src/core/numfmt.c writes exactly what printf writes: integers at their
 * limits; "%.15g" over sensor-like decimals, integers, arbitrary doubles and the edges of its
 * fast path; "%.4g" over every kind of score (floats in [0,1], ties, values that round up into
 * the next decade) and beyond; zero, minus zero, infinities and NaN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/numfmt.h"
#include "core/rng.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct rng rng;

static uint64_t next(void)
{
    return rng_next(&rng);
}

static void same_g15(double v)
{
    char want[64], got[NUMFMT_MAX];
    snprintf(want, sizeof want, "%.15g", v);
    size_t n = numfmt_g15(got, v);
    if (strcmp(want, got) != 0 || n != strlen(want))
        fail_msg("%%.15g of %.17g: printf '%s', numfmt '%s' (%zu)", v, want, got, n);
}

static void same_g4(double v)
{
    char want[64], got[NUMFMT_MAX];
    snprintf(want, sizeof want, "%.4g", v);
    size_t n = numfmt_g4(got, v);
    if (strcmp(want, got) != 0 || n != strlen(want))
        fail_msg("%%.4g of %.17g: printf '%s', numfmt '%s' (%zu)", v, want, got, n);
}

static void test_integers(void **state)
{
    (void)state;
    static const int64_t cases[] = {0, 1, -1, 9, 10, -10, 1763719200000, INT64_MAX, INT64_MIN};
    char want[32], got[NUMFMT_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(want, sizeof want, "%" PRId64, cases[i]);
        assert_int_equal(numfmt_i64(got, cases[i]), strlen(want));
        assert_string_equal(got, want);
    }
    snprintf(want, sizeof want, "%" PRIu64, UINT64_MAX);
    assert_int_equal(numfmt_u64(got, UINT64_MAX), strlen(want));
    assert_string_equal(got, want);
    for (int i = 0; i < 200000; i++) {
        int64_t v = (int64_t)next();
        snprintf(want, sizeof want, "%" PRId64, v);
        numfmt_i64(got, v);
        assert_string_equal(got, want);
    }
}

static void test_g15(void **state)
{
    (void)state;
    static const double edges[] = {
        0.0,  -0.0,  1e-4, 9.99999e-5,     1e9,         999999999.5, 1e9 - 1, 123456789.123456,
        0.1,  0.2,   0.3,  1e15,           1e16,        1e300,       5e-324,  -2.5,
        21.5, 412.3, 1e-7, 123456.7890123, 0.000123456, 99.99999999};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        same_g15(edges[i]);
    same_g15(INFINITY);
    same_g15(-INFINITY);
    same_g15(NAN);
    for (int i = 0; i < 1000000; i++) {
        uint64_t u = next();
        int k = (int)(u % 8);                                    /* 0..7 decimals */
        int64_t n = (int64_t)(next() % 2000000000) - 1000000000; /* sensor-like */
        same_g15((double)n / pow(10, k));
        same_g15((double)(n % 100000) + (double)(next() % 1000) / 1000.0);
        double any;
        uint64_t bits = next();
        memcpy(&any, &bits, sizeof any);
        if (isfinite(any))
            same_g15(any);
        same_g15(ldexp((double)(next() >> 11), -(int)(next() % 80)));
    }
}

static void test_g4(void **state)
{
    (void)state;
    static const double edges[] = {0.0,       -0.0,       1.0,    0.5,   0.12345, 0.099996,
                                   0.09999,   999.96,     999.94, 1000,  9999.5,  1e-4,
                                   9.9995e-5, 0.00099995, 0.25,   0.125, 0.0625,  1e-5};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        same_g4(edges[i]);
    same_g4(INFINITY);
    same_g4(NAN);
    /* Every float in [0, 1] is a possible score; a million of them, and exact ties. */
    for (int i = 0; i < 1000000; i++) {
        float f = (float)(next() >> 40) / (float)(1 << 24);
        same_g4((double)f);
        same_g4((double)(float)((double)(next() % 100000) / 100000.0));
        same_g4((double)(next() % 200001) / 20000.0 - 5); /* ties at the 4th digit */
        double any;
        uint64_t bits = next();
        memcpy(&any, &bits, sizeof any);
        if (isfinite(any))
            same_g4(any);
    }
}

int main(void)
{
    rng_seed_state(&rng, 20261121);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_g15),
        cmocka_unit_test(test_g4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
