/* test_iforest.c — unit tests of the Isolation Forest (src/ml/iforest.c, iforest_score.c):
 * c(n), parameter and shape validation, determinism across thread counts, what the paper
 * promises of scores (an isolated point scores above a cloud, uniform data near 0.5), the
 * contamination threshold, NaN and constant columns, which scoring kernel runs where, and
 * that every scorer (each batch kernel the CPU runs: scalar, AVX2, AVX-512 or deep; and the
 * single-row path) gives the same bits.
 *
 * The data are drawn from the shared deterministic PRNG, so every run sees the same numbers. */
#include "core/error.h"
#include "ml/iforest.h"
#include "ml/iforest_internal.h"
#include "unit_support.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* n x nc standard normal values. */
static double *gaussian(struct test_rng *r, size_t n, size_t nc)
{
    double *x = malloc(n * nc * sizeof *x);
    assert_non_null(x);
    for (size_t k = 0; k < n * nc; k++)
        x[k] = test_rng_gauss(r);
    return x;
}

/* Trains with p, failing the test on error. */
static struct iforest *train(const struct iforest_params *p, const double *x, size_t n, size_t nc)
{
    struct iforest *f = NULL;
    char err[256] = "";
    int rc = iforest_train(&f, p, x, n, nc, NULL, NULL, NULL, NULL, err, sizeof err);
    if (rc != CANARY_OK)
        fail_msg("iforest_train: %d: %s", rc, err);
    assert_non_null(f);
    return f;
}

static struct iforest_params params(uint32_t trees, uint32_t subsample, uint64_t seed)
{
    struct iforest_params p;
    iforest_params_default(&p);
    p.n_trees = trees;
    p.subsample = subsample;
    p.seed = seed;
    p.threads = 1;
    return p;
}

static double *scores_of(const struct iforest *f, const double *x, size_t n, unsigned threads)
{
    double *s = malloc((n > 0 ? n : 1) * sizeof *s);
    assert_non_null(s);
    assert_int_equal(iforest_score(f, x, n, threads, s), CANARY_OK);
    return s;
}

static bool same_bits(const double *a, const double *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* ---- c(n) ---- */

static void test_c_values(void **state)
{
    (void)state;
    assert_true(iforest_c(0) == 0.0);
    assert_true(iforest_c(1) == 0.0);
    assert_true(iforest_c(-5) == 0.0);
    assert_true(iforest_c(NAN) == 0.0);
    assert_true(iforest_c(2) == 1.0); /* H(1) = 1 exactly: 2 * 1 - 2 * 1 / 2 */
    /* c(3) = 2 (ln 2 + 0.5772156649) - 4/3 = 1.2073922... */
    assert_float_equal(iforest_c(3), 1.2073922, 1e-6);
    /* c(256) = 2 (ln 255 + 0.5772156649) - 510/256 = 12.2369584 - 1.9921875 */
    assert_float_equal(iforest_c(256), 10.2447709, 1e-6);
    /* c(1000) = 2 (ln 999 + 0.5772156649) - 1998/1000 = 14.9679409 - 1.998 */
    assert_float_equal(iforest_c(1000), 12.9699409, 1e-6);
    /* Grows like 2 ln n. */
    assert_true(iforest_c(65536) > iforest_c(256));
    assert_float_equal(iforest_c(1e9) - iforest_c(1e8), 2.0 * log(10.0), 1e-6);
}

static void test_params_default(void **state)
{
    (void)state;
    struct iforest_params p;
    memset(&p, 0xab, sizeof p);
    iforest_params_default(&p);
    assert_int_equal(p.n_trees, 100);
    assert_int_equal(p.subsample, 256);
    assert_int_equal(p.max_depth, 0);
    assert_int_equal(p.seed, 1);
    assert_int_equal(p.threads, 0);
    assert_true(p.contamination == 0.0);
}

/* ---- validation ---- */

/* Trains with p on x and expects CANARY_EINVAL with want in the message. */
static void expect_invalid(const struct iforest_params *p, const double *x, size_t n, size_t nc,
                           const char *const *names, const char *want)
{
    struct iforest *f = (struct iforest *)&f; /* not NULL: must be reset */
    char err[256] = "";
    int rc = iforest_train(&f, p, x, n, nc, names, NULL, NULL, NULL, err, sizeof err);
    if (rc != CANARY_EINVAL || f != NULL || strstr(err, want) == NULL)
        fail_msg("rc %d, message '%s', want EINVAL and '%s'", rc, err, want);
    assert_true(test_printable(err));
}

static void test_validation(void **state)
{
    (void)state;
    struct test_rng r = {11};
    double *x = gaussian(&r, 50, 3);
    struct iforest_params p = params(10, 32, 1);

    p.n_trees = 0;
    expect_invalid(&p, x, 50, 3, NULL, "n_trees must be 1 to 10000, got 0");
    p.n_trees = IFOREST_MAX_TREES + 1;
    expect_invalid(&p, x, 50, 3, NULL, "n_trees must be 1 to 10000, got 10001");
    p = params(10, 1, 1);
    expect_invalid(&p, x, 50, 3, NULL, "subsample must be 2 to 65536, got 1");
    p.subsample = IFOREST_MAX_SUBSAMPLE + 1;
    expect_invalid(&p, x, 50, 3, NULL, "got 65537");
    p = params(10, 32, 1);
    p.max_depth = IFOREST_MAX_DEPTH + 1;
    expect_invalid(&p, x, 50, 3, NULL, "max_depth must be 0 (ceil(log2 subsample)) or 1 to 32");
    p = params(10, 32, 1);
    p.contamination = 0.6;
    expect_invalid(&p, x, 50, 3, NULL, "contamination must be 0 (auto) or in (0, 0.5], got 0.6");
    p.contamination = -0.01;
    expect_invalid(&p, x, 50, 3, NULL, "contamination");
    p.contamination = NAN;
    expect_invalid(&p, x, 50, 3, NULL, "contamination");
    p = params(10, 32, 1);
    expect_invalid(&p, x, 1, 3, NULL, "training needs at least 2 rows, got 1");
    expect_invalid(&p, x, 0, 3, NULL, "training needs at least 2 rows, got 0");
    expect_invalid(&p, x, 50, 0, NULL, "the data must have 1 to 1024 columns, got 0");
    expect_invalid(&p, x, 2, IFOREST_MAX_FEATURES + 1, NULL, "got 1025");
    expect_invalid(&p, NULL, 50, 3, NULL, "x is NULL");

    const char *empty[] = {"a", "", "c"};
    expect_invalid(&p, x, 50, 3, empty, "feature name 1 is missing or empty");
    const char *missing[] = {"a", "b", NULL};
    expect_invalid(&p, x, 50, 3, missing, "feature name 2 is missing or empty");
    const char *twice[] = {"gas_ppm", "t", "gas_ppm"};
    expect_invalid(&p, x, 50, 3, twice, "features 0 and 2 are both named 'gas_ppm'");
    char *long_name = test_repeat("", "x", IFOREST_NAME_MAX, "");
    const char *too_long[] = {"a", long_name, "c"};
    expect_invalid(&p, x, 50, 3, too_long,
                   "feature name 1 ('xxxxxxxxxxxxxxxxxxxx...') is "
                   "longer than 63 bytes");
    free(long_name);

    /* The edges themselves are accepted. */
    char *longest = test_repeat("", "y", IFOREST_NAME_MAX - 1, "");
    const char *ok_names[] = {"a", longest, "c"};
    struct iforest *f = NULL;
    char err[256] = "";
    p = params(1, 2, 1);
    p.max_depth = IFOREST_MAX_DEPTH;
    p.contamination = 0.5;
    assert_int_equal(iforest_train(&f, &p, x, 2, 3, ok_names, NULL, NULL, NULL, err, sizeof err),
                     CANARY_OK);
    assert_string_equal(iforest_feature_name(f, 1), longest);
    assert_null(iforest_feature_name(f, 3));
    iforest_free(f);
    free(longest);

    /* NULL params mean the defaults; a NULL err buffer is fine. */
    assert_int_equal(iforest_train(&f, NULL, x, 50, 3, NULL, NULL, NULL, NULL, NULL, 0), CANARY_OK);
    assert_int_equal(iforest_params_of(f)->n_trees, 100);
    iforest_free(f);
    iforest_free(NULL);
    free(x);
}

/* ---- effective parameters, names, meta ---- */

static void test_effective_params_and_meta(void **state)
{
    (void)state;
    struct test_rng r = {5};
    double *x = gaussian(&r, 100, 2);
    struct iforest_params p = params(7, 256, 42);
    struct iforest *f = train(&p, x, 100, 2);
    const struct iforest_params *q = iforest_params_of(f);
    assert_int_equal(q->n_trees, 7);
    assert_int_equal(q->subsample, 100); /* capped at the rows */
    assert_int_equal(q->max_depth, 7);   /* ceil(log2 100) */
    assert_int_equal(q->seed, 42);
    assert_int_equal(iforest_n_features(f), 2);
    assert_string_equal(iforest_feature_name(f, 0), "f0");
    assert_string_equal(iforest_feature_name(f, 1), "f1");
    const struct iforest_meta *m = iforest_meta_of(f);
    assert_string_equal(m->features_kind, "raw");
    assert_string_equal(m->source, "");
    assert_int_equal(m->train_rows, 100);
    assert_true(isnan(m->eval_roc_auc) && isnan(m->eval_pr_auc));
    assert_true(iforest_threshold(f) == 0.5);
    iforest_set_threshold(f, 0.61);
    assert_true(iforest_threshold(f) == 0.61);
    iforest_meta_mut(f)->eval_roc_auc = 0.93;
    assert_true(iforest_meta_of(f)->eval_roc_auc == 0.93);

    /* Training again with the effective parameters gives the same forest. */
    struct iforest *g = train(q, x, 100, 2);
    double *a = scores_of(f, x, 100, 1), *b = scores_of(g, x, 100, 1);
    assert_true(same_bits(a, b, 100));
    free(a);
    free(b);
    iforest_free(g);
    iforest_free(f);

    /* A given meta is kept, its strings cut to fit; train_rows filled in when 0. */
    struct iforest_meta meta;
    memset(&meta, 'z', sizeof meta); /* no NUL anywhere in the strings */
    meta.train_rows = 0;
    meta.window = 32;
    meta.data_from_ms = -5;
    meta.eval_roc_auc = 0.5;
    const char *names[] = {"gas_ppm", "temperature_c"};
    char err[256];
    assert_int_equal(iforest_train(&f, &p, x, 100, 2, names, &meta, NULL, NULL, err, sizeof err),
                     CANARY_OK);
    m = iforest_meta_of(f);
    assert_int_equal(strlen(m->source), sizeof m->source - 1);
    assert_int_equal(strlen(m->features_kind), sizeof m->features_kind - 1);
    assert_int_equal(strlen(m->eval_source), sizeof m->eval_source - 1);
    assert_int_equal(m->train_rows, 100);
    assert_int_equal(m->window, 32);
    assert_int_equal(m->data_from_ms, -5);
    assert_true(m->eval_roc_auc == 0.5);
    assert_string_equal(iforest_feature_name(f, 1), "temperature_c");
    iforest_free(f);
    free(x);
}

/* ---- determinism ---- */

static void *model_bytes(const struct iforest *f, size_t *len)
{
    void *buf = NULL;
    char err[256];
    assert_int_equal(iforest_save_buffer(f, &buf, len, err, sizeof err), CANARY_OK);
    return buf;
}

static void test_determinism(void **state)
{
    (void)state;
    struct test_rng r = {77};
    const size_t n = 3000, nc = 4;
    double *x = gaussian(&r, n, nc);
    struct iforest_params p = params(64, 256, 12345);
    p.contamination = 0.1;
    struct iforest *one = train(&p, x, n, nc);
    p.threads = 2;
    struct iforest *two = train(&p, x, n, nc);
    p.threads = 0;
    struct iforest *all = train(&p, x, n, nc);
    size_t l1, l2, l0;
    void *b1 = model_bytes(one, &l1), *b2 = model_bytes(two, &l2), *b0 = model_bytes(all, &l0);
    /* The bytes hold the threads asked for; everything else must be equal. Compare the
     * scores, then the bytes with the threads field (offset 36) masked. */
    assert_int_equal(l1, l2);
    assert_int_equal(l1, l0);
    memset((char *)b1 + 36, 0, 4);
    memset((char *)b2 + 36, 0, 4);
    memset((char *)b0 + 36, 0, 4);
    memset((char *)b1 + l1 - 4, 0, 4); /* and the CRC, which covers the threads */
    memset((char *)b2 + l2 - 4, 0, 4);
    memset((char *)b0 + l0 - 4, 0, 4);
    assert_memory_equal(b1, b2, l1);
    assert_memory_equal(b1, b0, l1);
    assert_true(iforest_threshold(one) == iforest_threshold(two));

    double *s1 = scores_of(one, x, n, 1), *s2 = scores_of(one, x, n, 2);
    double *s3 = scores_of(two, x, n, 7);
    assert_true(same_bits(s1, s2, n));
    assert_true(same_bits(s1, s3, n));

    /* Another seed, another forest. */
    p.seed = 12346;
    struct iforest *other = train(&p, x, n, nc);
    double *so = scores_of(other, x, n, 1);
    assert_false(same_bits(s1, so, n));

    free(b0);
    free(b1);
    free(b2);
    free(s1);
    free(s2);
    free(s3);
    free(so);
    iforest_free(one);
    iforest_free(two);
    iforest_free(all);
    iforest_free(other);
    free(x);
}

/* ---- what the paper promises of scores ---- */

static void test_outlier_scores_highest(void **state)
{
    (void)state;
    struct test_rng r = {3};
    const size_t n = 1001, nc = 2;
    double *x = gaussian(&r, n, nc);
    x[(n - 1) * nc + 0] = 6.0; /* far outside the cloud: isolated in a cut or two */
    x[(n - 1) * nc + 1] = -6.0;
    struct iforest_params p = params(100, 256, 9);
    struct iforest *f = train(&p, x, n, nc);
    double *s = scores_of(f, x, n, 2);
    double max_inlier = 0.0;
    for (size_t i = 0; i < n; i++) {
        assert_true(s[i] > 0.0 && s[i] <= 1.0);
        if (i < n - 1 && s[i] > max_inlier)
            max_inlier = s[i];
    }
    assert_true(s[n - 1] > max_inlier);
    assert_true(s[n - 1] > 0.7); /* E(h) far below c(256): s well above 0.5 */

    /* A point at the centre is as normal as it gets. */
    double centre[2] = {0.0, 0.0};
    assert_true(iforest_score_row(f, centre) < 0.5);
    free(s);
    iforest_free(f);
    free(x);
}

static void test_uniform_cloud_near_half(void **state)
{
    (void)state;
    /* In one dimension an iTree on uniform data is a random binary search tree (its split is
     * uniform over the range, like the rank of a random key), so a row's expected path length
     * is about c(psi) and its score about 2^-1 (the paper, section 2). With several uniform
     * dimensions the same holds on average; rows near the edges score a little higher. */
    struct test_rng r = {21};
    const size_t n = 4000, nc = 2;
    double *x = malloc(n * nc * sizeof *x);
    for (size_t k = 0; k < n * nc; k++)
        x[k] = test_rng_uniform(&r);
    struct iforest_params p = params(100, 256, 4);
    struct iforest *f = train(&p, x, n, nc);
    double *s = scores_of(f, x, n, 1);
    double mean = 0.0;
    for (size_t i = 0; i < n; i++)
        mean += s[i] / (double)n;
    assert_true(mean > 0.40 && mean < 0.55);
    free(s);
    iforest_free(f);
    free(x);
}

/* ---- the contamination threshold ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile(s, 100 q), method 'linear', the plain way: sort and interpolate. */
static double percentile(const double *s, size_t n, double q)
{
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    memcpy(v, s, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_double);
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    double a = v[lo], b = lo + 1 < n ? v[lo + 1] : v[lo], t = pos - (double)lo;
    free(v);
    return t < 0.5 ? a + (b - a) * t : b - (b - a) * (1.0 - t);
}

static void test_contamination_threshold(void **state)
{
    (void)state;
    struct test_rng r = {8};
    const size_t n = 2000, nc = 3;
    double *x = gaussian(&r, n, nc);
    const double shares[] = {0.01, 0.05, 0.1, 0.5};
    for (size_t k = 0; k < sizeof shares / sizeof *shares; k++) {
        struct iforest_params p = params(100, 256, 6);
        p.contamination = shares[k];
        struct iforest *f = train(&p, x, n, nc);
        double *s = scores_of(f, x, n, 1);
        size_t above = 0;
        for (size_t i = 0; i < n; i++)
            above += s[i] > iforest_threshold(f);
        assert_true(iforest_threshold(f) == percentile(s, n, 1.0 - shares[k]));
        double want = shares[k] * (double)n;
        if (fabs((double)above - want) > 2.0)
            fail_msg("contamination %g: %zu of %zu rows above %g, want about %g", shares[k], above,
                     n, iforest_threshold(f), want);
        free(s);
        iforest_free(f);
    }
    /* Many equal scores (duplicate rows): the same order statistics as a sort. */
    for (size_t i = 0; i < n * nc; i++)
        x[i] = (double)(i / nc % 7);
    struct iforest_params p = params(30, 64, 6);
    p.contamination = 0.37;
    struct iforest *f = train(&p, x, n, nc);
    double *s = scores_of(f, x, n, 1);
    assert_true(iforest_threshold(f) == percentile(s, n, 1.0 - 0.37));
    free(s);
    iforest_free(f);
    free(x);
}

/* ---- NaN and constant columns ---- */

static void test_nan_rows(void **state)
{
    (void)state;
    struct test_rng r = {13};
    const size_t n = 800, nc = 3;
    double *x = gaussian(&r, n, nc);
    for (size_t i = 0; i < n; i += 7)
        x[i * nc + i % nc] = NAN; /* scattered NaNs */
    for (size_t i = 0; i < n; i++)
        x[i * nc + 2] = NAN;        /* a column of nothing but NaN */
    for (size_t c = 0; c < nc; c++) /* a row of nothing but NaN */
        x[5 * nc + c] = NAN;
    struct iforest_params p = params(50, 128, 2);
    struct iforest *f = train(&p, x, n, nc);
    double *s = scores_of(f, x, n, 2);
    for (size_t i = 0; i < n; i++)
        assert_true(s[i] > 0.0 && s[i] <= 1.0);
    /* A NaN fails every x <= threshold, as +inf does (thresholds are finite): the two go
     * the same way at every node, so they score the same. */
    for (size_t i = 0; i < 50; i++) {
        double row[3];
        memcpy(row, x + i * nc, sizeof row);
        for (size_t c = 0; c < nc; c++) {
            double keep = row[c];
            row[c] = NAN;
            double with_nan = iforest_score_row(f, row);
            row[c] = INFINITY;
            assert_true(iforest_score_row(f, row) == with_nan);
            row[c] = keep;
        }
    }
    /* The all-NaN column is never split on. */
    for (uint32_t k = 0; k < f->tree_start[p.n_trees]; k++)
        assert_true(f->nodes[k].feature != 2);
    free(s);
    iforest_free(f);
    free(x);
}

static void test_constant_columns(void **state)
{
    (void)state;
    struct test_rng r = {17};
    const size_t n = 1500;
    double *x2 = gaussian(&r, n, 2);
    /* The same data with a constant column in the middle and an all-NaN one at the end. */
    double *x4 = malloc(n * 4 * sizeof *x4);
    for (size_t i = 0; i < n; i++) {
        x4[i * 4 + 0] = x2[i * 2 + 0];
        x4[i * 4 + 1] = 3.25;
        x4[i * 4 + 2] = x2[i * 2 + 1];
        x4[i * 4 + 3] = NAN;
    }
    struct iforest_params p = params(100, 256, 31);
    p.threads = 2;
    struct iforest *f2 = train(&p, x2, n, 2), *f4 = train(&p, x4, n, 4);
    double *s2 = scores_of(f2, x2, n, 1), *s4 = scores_of(f4, x4, n, 1);
    /* The random draws do not see constant columns: the same trees, the same scores. */
    assert_true(same_bits(s2, s4, n));
    assert_int_equal(f2->tree_start[p.n_trees], f4->tree_start[p.n_trees]);
    for (uint32_t k = 0; k < f4->tree_start[p.n_trees]; k++)
        assert_true(f4->nodes[k].feature != 1 && f4->nodes[k].feature != 3);
    free(s2);
    free(s4);
    iforest_free(f2);
    iforest_free(f4);

    /* Nothing to split: every tree is one external node of psi rows, E(h) = c(psi), s = 0.5. */
    for (size_t i = 0; i < n * 2; i++)
        x2[i] = i % 2 == 0 ? 1.0 : NAN;
    struct iforest *flat = train(&p, x2, n, 2);
    assert_int_equal(flat->tree_start[p.n_trees], p.n_trees);
    s2 = scores_of(flat, x2, n, 1);
    for (size_t i = 0; i < n; i++)
        assert_float_equal(s2[i], 0.5, 1e-6); /* c(psi) rounded to float */
    free(s2);
    iforest_free(flat);
    free(x2);
    free(x4);
}

/* ---- every scorer gives the same bits ---- */

/* Rows with values from a few kinds: Gaussian, small integers (ties), NaN, +-inf, huge. */
static double *mixed(struct test_rng *r, size_t n, size_t nc)
{
    double *x = malloc(n * nc * sizeof *x);
    assert_non_null(x);
    for (size_t k = 0; k < n * nc; k++) {
        size_t kind = test_rng_below(r, 100);
        x[k] = kind < 3    ? NAN
               : kind < 5  ? INFINITY
               : kind < 6  ? -INFINITY
               : kind < 7  ? 1e300 /* rounds to +inf as float */
               : kind < 30 ? (double)test_rng_below(r, 5)
                           : test_rng_gauss(r) * 10.0;
    }
    return x;
}

/* Every batch kernel this CPU runs for f, then the single-row path, on the same rows: the
 * same bits, and each a score. */
static void check_scorers_agree(const double *x, size_t n, size_t nc, uint32_t depth,
                                uint32_t trees)
{
    struct iforest_params p = params(trees, 256, depth * 1000 + nc);
    p.max_depth = depth;
    struct iforest *f = train(&p, x, n, nc);
    /* Thresholds stay finite whatever the data (the NaN-as-+inf promise rests on it). */
    for (uint32_t k = 0; k < f->tree_start[trees]; k++)
        assert_true(f->nodes[k].feature == IFO_LEAF || isfinite(f->nodes[k].value));
    const enum ifo_kernel chosen = f->kernel;
    double *batch = scores_of(f, x, n, 2);
    const enum ifo_kernel kernels[] = {IFO_KERNEL_SCALAR, IFO_KERNEL_AVX2, IFO_KERNEL_AVX512,
                                       IFO_KERNEL_DEEP};
    for (size_t k = 0; k < sizeof kernels / sizeof *kernels; k++) {
        if (iforest__set_kernel(f, kernels[k]) != CANARY_OK)
            continue; /* not for this layout, or not on this CPU */
        double *other = scores_of(f, x, n, 1);
        for (size_t i = 0; i < n; i++) {
            if (other[i] != batch[i]) /* NaN never: every score is checked below */
                fail_msg("n_cols %zu depth %u row %zu: kernel %s %.17g, %s %.17g", nc, depth, i,
                         iforest__kernel_name(kernels[k]), other[i], iforest__kernel_name(chosen),
                         batch[i]);
        }
        free(other);
    }
    assert_int_equal(iforest__set_kernel(f, chosen), CANARY_OK);
    for (size_t i = 0; i < n; i++) {
        double row = iforest_score_row(f, x + i * nc);
        if (!(row == batch[i]))
            fail_msg("n_cols %zu depth %u kernel %s row %zu: row %.17g batch %.17g", nc, depth,
                     iforest__kernel_name(chosen), i, row, batch[i]);
        assert_true(row > 0.0 && row <= 1.0);
    }
    free(batch);
    iforest_free(f);
}

static void test_scorers_agree(void **state)
{
    (void)state;
    struct test_rng r = {99};
    const size_t widths[] = {1, 2, 3, 5, 8, 9, 16, 17, 40};
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
        const size_t n = 397; /* not a multiple of any block */
        double *x = mixed(&r, n, widths[w]);
        /* Every height of the complete layout, and deep trees. */
        for (uint32_t depth = 1; depth <= 12; depth++)
            check_scorers_agree(x, n, widths[w], depth, 9);
        check_scorers_agree(x, n, widths[w], 0, 13);
        check_scorers_agree(x, n, widths[w], 20, 5);
        free(x);
    }
}

/* Which kernel runs where: the fastest the CPU has for the layout, any of them forced. */
static void test_kernel_choice(void **state)
{
    (void)state;
    struct test_rng r = {23};
    double *x = gaussian(&r, 600, 3);
    bool avx2 = false, avx512 = false;
#if defined(__x86_64__) && defined(__GNUC__)
    avx2 = __builtin_cpu_supports("avx2");
    avx512 = __builtin_cpu_supports("avx512f");
#endif
    struct iforest_params p = params(5, 256, 1); /* height 8 */
    struct iforest *f = train(&p, x, 600, 3);
    assert_int_equal(f->kernel, avx512 ? IFO_KERNEL_AVX512
                                : avx2 ? IFO_KERNEL_AVX2
                                       : IFO_KERNEL_SCALAR);
    assert_int_equal(iforest__set_kernel(f, IFO_KERNEL_SCALAR), CANARY_OK);
    assert_int_equal(f->kernel, IFO_KERNEL_SCALAR);
    assert_int_equal(iforest__set_kernel(f, IFO_KERNEL_AVX2), avx2 ? CANARY_OK : CANARY_EINVAL);
    assert_int_equal(iforest__set_kernel(f, IFO_KERNEL_AVX512), avx512 ? CANARY_OK : CANARY_EINVAL);
    enum ifo_kernel before = f->kernel;
    assert_int_equal(iforest__set_kernel(f, IFO_KERNEL_DEEP), CANARY_EINVAL); /* complete */
    assert_int_equal(f->kernel, before);
    iforest_free(f);

    p.max_depth = 9; /* AVX-512's lookups stop at height 8 */
    f = train(&p, x, 600, 3);
    assert_int_equal(f->kernel, avx2 ? IFO_KERNEL_AVX2 : IFO_KERNEL_SCALAR);
    assert_int_equal(iforest__set_kernel(f, IFO_KERNEL_AVX512), CANARY_EINVAL);
    iforest_free(f);

    p.max_depth = IFO_COMPLETE_MAX_DEPTH + 1; /* the deep layout: its own kernel only */
    f = train(&p, x, 600, 3);
    assert_int_equal(f->kernel, IFO_KERNEL_DEEP);
    assert_int_equal(iforest__set_kernel(f, IFO_KERNEL_SCALAR), CANARY_EINVAL);
    assert_int_equal(iforest__set_kernel(f, IFO_KERNEL_AVX2), CANARY_EINVAL);
    assert_int_equal(iforest__set_kernel(f, IFO_KERNEL_DEEP), CANARY_OK);
    iforest_free(f);

    /* Names both ways. */
    const enum ifo_kernel all[] = {IFO_KERNEL_SCALAR, IFO_KERNEL_AVX2, IFO_KERNEL_AVX512,
                                   IFO_KERNEL_DEEP};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) {
        enum ifo_kernel back = IFO_KERNEL_DEEP;
        assert_true(iforest__kernel_parse(iforest__kernel_name(all[k]), &back));
        assert_int_equal(back, all[k]);
    }
    assert_string_equal(iforest__kernel_name(IFO_KERNEL_AVX2), "avx2");
    enum ifo_kernel none;
    assert_false(iforest__kernel_parse("AVX2", &none));
    assert_false(iforest__kernel_parse("", &none));
    free(x);
}

static void test_score_edges(void **state)
{
    (void)state;
    struct test_rng r = {4};
    double *x = gaussian(&r, 300, 2);
    struct iforest_params p = params(10, 64, 1);
    struct iforest *f = train(&p, x, 300, 2);
    double s[1] = {-1.0};
    assert_int_equal(iforest_score(f, x, 0, 1, s), CANARY_OK); /* nothing to do */
    assert_true(s[0] == -1.0);
    assert_int_equal(iforest_score(f, NULL, 3, 1, s), CANARY_EINVAL);
    /* Far more threads than rows; one row. */
    double *many = scores_of(f, x, 300, 1000);
    assert_int_equal(iforest_score(f, x + 7 * 2, 1, 64, s), CANARY_OK);
    assert_true(s[0] == many[7]);
    free(many);
    iforest_free(f);

    /* The smallest training set: two rows, psi 2, height 1. */
    double two[4] = {0.0, 0.0, 1.0, 1.0};
    f = train(&p, two, 2, 2);
    assert_int_equal(iforest_params_of(f)->subsample, 2);
    assert_int_equal(iforest_params_of(f)->max_depth, 1);
    /* One split, two external nodes of one row: h = 1, c(2) = 1, s = 2^-1. */
    assert_true(iforest_score_row(f, two) == 0.5);
    iforest_free(f);
    free(x);
}

/* ---- the trees a seed gives ---- */

/* FNV-1a over the canonical nodes of f (feature, then the value's bits). */
static uint64_t trees_hash(const struct iforest *f)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t k = 0; k < f->tree_start[f->params.n_trees]; k++) {
        uint32_t v;
        memcpy(&v, &f->nodes[k].value, sizeof v);
        const uint32_t words[2] = {f->nodes[k].feature, v};
        const unsigned char *b = (const unsigned char *)words;
        for (size_t i = 0; i < sizeof words; i++)
            h = (h ^ b[i]) * 0x100000001b3ull;
    }
    return h;
}

/* A seed gives the same trees in every version (models trained before a change to training
 * keep being what training gives): the hash of forests grown on data with NaN, infinities,
 * ties and a constant column, recorded when the draws were last defined. Training may get
 * faster; if this fails it changed the trees, and the accuracy tables must be re-run. */
static void test_trees_pinned(void **state)
{
    (void)state;
    struct test_rng r = {2024};
    const size_t n = 1500, nc = 7;
    double *x = mixed(&r, n, nc);
    for (size_t i = 0; i < n; i++)
        x[i * nc + 3] = 2.5;
    struct iforest_params p = params(60, 256, 77);
    struct iforest *f = train(&p, x, n, nc);
    p = params(20, 64, 78);
    p.max_depth = 14; /* deep layout, nodes down to one row */
    struct iforest *g = train(&p, x, n, nc);
    uint64_t hf = trees_hash(f), hg = trees_hash(g);
    if (hf != UINT64_C(0x6e15408ea67b191f) || hg != UINT64_C(0x5f547790c1bb4c9c))
        fail_msg("trees changed: hashes %#018llx %#018llx", (unsigned long long)hf,
                 (unsigned long long)hg);
    iforest_free(f);
    iforest_free(g);
    free(x);
}

/* ---- save and load ---- */

static void round_trip(uint32_t depth, size_t nc)
{
    struct test_rng r = {depth + 100 * nc};
    const size_t n = 700;
    double *x = mixed(&r, n, nc);
    struct iforest_params p = params(23, 200, 5);
    p.max_depth = depth;
    p.contamination = 0.03;
    struct iforest_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.source, sizeof meta.source, "odds/thyroid.csv rows 0-699");
    snprintf(meta.features_kind, sizeof meta.features_kind, "window");
    meta.window = 16;
    meta.data_from_ms = 1763676000123;
    meta.data_to_ms = 1763679600123;
    meta.created_ms = 1763680000000;
    meta.eval_roc_auc = NAN;
    meta.eval_pr_auc = 0.25;
    meta.eval_rows = 99;
    struct iforest *f = NULL;
    char err[256] = "";
    assert_int_equal(iforest_train(&f, &p, x, n, nc, NULL, &meta, NULL, NULL, err, sizeof err),
                     CANARY_OK);

    char dir[] = "/tmp/canary-iforest-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/model.cif", dir);
    assert_int_equal(iforest_save(f, path, err, sizeof err), CANARY_OK);
    struct iforest *g = NULL;
    if (iforest_load(&g, path, err, sizeof err) != CANARY_OK)
        fail_msg("load: %s", err);

    double *a = scores_of(f, x, n, 2), *b = scores_of(g, x, n, 1);
    assert_true(same_bits(a, b, n));
    for (size_t i = 0; i < n; i += 37)
        assert_true(iforest_score_row(g, x + i * nc) == a[i]);
    assert_true(iforest_threshold(g) == iforest_threshold(f));
    const struct iforest_params *pf = iforest_params_of(f), *pg = iforest_params_of(g);
    assert_int_equal(pg->n_trees, pf->n_trees);
    assert_int_equal(pg->subsample, pf->subsample);
    assert_int_equal(pg->max_depth, pf->max_depth);
    assert_int_equal(pg->seed, pf->seed);
    assert_int_equal(pg->threads, pf->threads);
    assert_true(pg->contamination == pf->contamination);
    const struct iforest_meta *m = iforest_meta_of(g);
    assert_string_equal(m->source, meta.source);
    assert_string_equal(m->features_kind, "window");
    assert_string_equal(m->eval_source, "");
    assert_int_equal(m->window, 16);
    assert_int_equal(m->data_from_ms, meta.data_from_ms);
    assert_int_equal(m->data_to_ms, meta.data_to_ms);
    assert_int_equal(m->created_ms, meta.created_ms);
    assert_int_equal(m->train_rows, n);
    assert_true(isnan(m->eval_roc_auc) && m->eval_pr_auc == 0.25 && m->eval_rows == 99);
    for (size_t c = 0; c < nc; c++)
        assert_string_equal(iforest_feature_name(g, c), iforest_feature_name(f, c));
    /* And the loaded model saves to the same bytes. */
    size_t la, lb;
    void *ba = model_bytes(f, &la), *bb = model_bytes(g, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);

    free(ba);
    free(bb);
    free(a);
    free(b);
    iforest_free(f);
    iforest_free(g);
    unlink(path);
    rmdir(dir);
    free(x);
}

static void test_save_load_round_trip(void **state)
{
    (void)state;
    round_trip(0, 3);  /* the paper's height: complete layout */
    round_trip(3, 1);  /* a shallow one */
    round_trip(14, 6); /* the deep layout */
    round_trip(0, 33);
}

/* ---- progress ---- */

struct progress_log {
    pthread_t caller;
    size_t calls, last_done, total;
    bool wrong_thread, backwards;
};

static void on_progress(void *arg, size_t done, size_t total)
{
    struct progress_log *log = arg;
    if (!pthread_equal(pthread_self(), log->caller))
        log->wrong_thread = true;
    if (done < log->last_done || done > total)
        log->backwards = true;
    log->calls++;
    log->last_done = done;
    log->total = total;
}

static void test_progress(void **state)
{
    (void)state;
    struct test_rng r = {1};
    double *x = gaussian(&r, 500, 2);
    for (uint32_t threads = 1; threads <= 3; threads++) {
        struct iforest_params p = params(40, 128, 3);
        p.threads = threads;
        struct progress_log log = {.caller = pthread_self()};
        struct iforest *f = NULL;
        char err[256];
        assert_int_equal(
            iforest_train(&f, &p, x, 500, 2, NULL, NULL, on_progress, &log, err, sizeof err),
            CANARY_OK);
        assert_false(log.wrong_thread);
        assert_false(log.backwards);
        assert_true(log.calls >= 1);
        assert_int_equal(log.last_done, 40);
        assert_int_equal(log.total, 40);
        if (threads == 1)
            assert_int_equal(log.calls, 40);
        iforest_free(f);
    }
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c_values),
        cmocka_unit_test(test_params_default),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_effective_params_and_meta),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_outlier_scores_highest),
        cmocka_unit_test(test_uniform_cloud_near_half),
        cmocka_unit_test(test_contamination_threshold),
        cmocka_unit_test(test_nan_rows),
        cmocka_unit_test(test_constant_columns),
        cmocka_unit_test(test_trees_pinned),
        cmocka_unit_test(test_scorers_agree),
        cmocka_unit_test(test_kernel_choice),
        cmocka_unit_test(test_score_edges),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
