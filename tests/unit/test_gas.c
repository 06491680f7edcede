/* test_gas.c — unit tests of the gas classifier (src/ml/gas*.c, contract in gas.h):
 * training and prediction of every learner, agreement of the compiled predictor with
 * XGBoost's own, stacking without leakage, determinism for a seed, the bundle's round trip,
 * truncation at every length and every single-byte corruption (with and without a fixed-up
 * checksum), bad inputs, the splits and the window rows.
 *
 * Models here are tiny (a few trees, few rows) so that the whole file runs in seconds, under
 * the sanitizers too. Every buffer given to gas_load_buffer sits in a heap block of exactly
 * its length, so the sanitizer build catches any read past its end. */
#include "core/error.h"
#include "ml/features.h"
#include "ml/gas.h"
#include "ml/gas_internal.h"
#include "unit_support.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xgboost/c_api.h>
#include <zlib.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static const char *const in_names[] = {"MQ2", "MQ3", "MQ5", "MQ7"};
static const char *const cls_names[] = {"NoGas", "Smoke", "Perfume"};
#define N_IN  4
#define N_CLS 3

/* Small, fast parameters. */
static void small_params(struct gas_params *p)
{
    gas_params_default(p);
    p->window = 0;
    p->folds = 3;
    p->rf_trees = 5;
    p->rf_depth = 4;
    p->gbt_rounds = 8;
    p->gbt_depth = 3;
    p->lr_rounds = 20;
}

/* n rows of N_IN positive sensor values; class k shifts the ratios between sensors (so
 * both raw and log-ratio features separate them), plus noise. With random_labels the
 * classes are drawn independently of the values (nothing to learn). */
static void make_data(size_t n, uint64_t seed, bool random_labels, double *x, int *y)
{
    struct test_rng g = {seed * 2654435761u + 1};
    for (size_t r = 0; r < n; r++) {
        int k = (int)(r % N_CLS);
        for (int i = 0; i < N_IN; i++) {
            double base = 300 + 50 * i + (random_labels ? 0 : 60.0 * ((k + i) % N_CLS));
            x[r * N_IN + i] = base * (1 + 0.05 * test_rng_gauss(&g));
        }
        y[r] = random_labels ? (int)test_rng_below(&g, N_CLS) : k;
    }
}

static struct gas_model *train_or_fail(const double *x, size_t n, const int *y,
                                       const struct gas_params *p, struct gas_report *rep)
{
    char err[256] = "";
    struct gas_model *m = NULL;
    int rc =
        gas_train(x, n, N_IN, y, N_CLS, in_names, cls_names, p, "test", &m, rep, err, sizeof err);
    if (rc)
        fail_msg("gas_train: %s", err);
    return m;
}

static double accuracy(const struct gas_model *m, enum gas_learner l, const double *x, size_t n,
                       const int *y)
{
    double pr[N_CLS];
    size_t right = 0;
    for (size_t r = 0; r < n; r++)
        right += gas_predict_row(m, l, x + r * gas_row_len(m), pr) == y[r];
    return (double)right / (double)n;
}

static void test_train_predict(void **state)
{
    enum { N = 300 };
    double x[N * N_IN];
    int y[N];
    make_data(N, 1, false, x, y);
    struct gas_params p;
    small_params(&p);
    struct gas_model *m = train_or_fail(x, N, y, &p, NULL);
    assert_int_equal(gas_n_inputs(m), N_IN);
    assert_int_equal(gas_n_classes(m), N_CLS);
    assert_string_equal(gas_class_name(m, 1), "Smoke");
    assert_string_equal(gas_input_name(m, 3), "MQ7");
    assert_null(gas_class_name(m, 3));
    double proba[N * N_CLS];
    for (int l = 0; l < GAS_N_LEARNERS; l++) {
        double acc = accuracy(m, (enum gas_learner)l, x, N, y);
        if (acc < 0.9)
            fail_msg("%s: training accuracy %.3f", gas_learner_name((enum gas_learner)l), acc);
        gas_predict(m, (enum gas_learner)l, x, N, proba);
        for (size_t r = 0; r < N; r++) {
            double sum = 0, one[N_CLS];
            gas_predict_row(m, (enum gas_learner)l, x + r * N_IN, one);
            for (int k = 0; k < N_CLS; k++) {
                assert_true(proba[r * N_CLS + k] >= 0 && proba[r * N_CLS + k] <= 1);
                assert_true(one[k] == proba[r * N_CLS + k]);
                sum += one[k];
            }
            assert_true(fabs(sum - 1) < 1e-12);
        }
    }
    /* A reading far beyond float's range still gives probabilities (saturated, no UB). */
    double huge[N_IN] = {1e300, -1e300, 350, 400}, ph[N_CLS];
    int kh = gas_predict_row(m, GAS_STACK, huge, ph);
    assert_true(kh >= 0 && kh < N_CLS);
    /* A missing input still gives probabilities. */
    double row[N_IN] = {NAN, 300, 350, 400}, pr[N_CLS];
    int k = gas_predict_row(m, GAS_STACK, row, pr);
    assert_true(k >= 0 && k < N_CLS);
    assert_true(fabs(pr[0] + pr[1] + pr[2] - 1) < 1e-12);
    const struct gas_meta *meta = gas_model_meta(m);
    assert_int_equal(meta->n_rows, N);
    assert_string_equal(meta->source, "test");
    assert_true(meta->oof_accuracy[GAS_STACK] > 0.8);
    gas_free(m);
}

/* The compiled predictor against XGBoost's own prediction, through the booster JSON the
 * model keeps (which XGBoosterLoadModelFromBuffer must accept). */
static void test_matches_xgboost(void **state)
{
    enum { N = 200 };
    double x[N * N_IN];
    int y[N];
    make_data(N, 2, false, x, y);
    struct gas_params p;
    small_params(&p);
    p.features = GAS_FEATURES_BOTH;
    struct gas_model *m = train_or_fail(x, N, y, &p, NULL);
    const size_t F = m->n_features;
    double *z = malloc(N * F * sizeof *z);
    float *zf = malloc(N * F * sizeof *zf);
    assert_non_null(z);
    assert_non_null(zf);
    for (size_t r = 0; r < N; r++) {
        gas__features(p.features, N_IN, 0, 0, x + r * N_IN, z + r * F);
        if (r == 7)
            z[r * F + 2] = NAN; /* a missing value takes the default branch in both */
        for (size_t j = 0; j < F; j++) {
            z[r * F + j] = (z[r * F + j] - m->mean[j]) * m->inv_sd[j];
            zf[r * F + j] = (float)z[r * F + j];
        }
    }
    DMatrixHandle dm;
    assert_int_equal(XGDMatrixCreateFromMat(zf, N, F, NAN, &dm), 0);
    for (int l = 0; l < GAS_N_BASE; l++) {
        const char *json;
        size_t len;
        gas_booster_json(m, (enum gas_learner)l, &json, &len);
        BoosterHandle b;
        assert_int_equal(XGBoosterCreate(NULL, 0, &b), 0);
        assert_int_equal(XGBoosterLoadModelFromBuffer(b, json, len), 0);
        const bst_ulong *shape;
        bst_ulong dim;
        const float *res;
        assert_int_equal(
            XGBoosterPredictFromDMatrix(b, dm,
                                        "{\"type\":0,\"training\":false,\"iteration_begin\":0,"
                                        "\"iteration_end\":0,\"strict_shape\":true}",
                                        &shape, &dim, &res),
            0);
        assert_int_equal(dim, 2);
        assert_int_equal(shape[0], N);
        assert_int_equal(shape[1], N_CLS);
        for (size_t r = 0; r < N; r++) {
            double pr[N_CLS];
            gas__base_proba(m, (enum gas_learner)l, z + r * F, zf + r * F, pr);
            for (int k = 0; k < N_CLS; k++) {
                double d = fabs(pr[k] - res[r * N_CLS + k]);
                if (d > 2e-5)
                    fail_msg("%s row %zu class %d: canary %.7f, XGBoost %.7f",
                             gas_learner_name((enum gas_learner)l), r, k, pr[k],
                             res[r * N_CLS + k]);
            }
        }
        XGBoosterFree(b);
    }
    XGDMatrixFree(dm);
    free(z);
    free(zf);
    gas_free(m);
}

/* Stacking without leakage. The labels are random, so no learner can know a row's class
 * without having seen it: out-of-fold predictions must be near chance (1/3), while trees
 * refitted on all rows memorise them. A meta-learner fed in-fold predictions would learn to
 * trust the memorising trees, and the stack would then "predict" its training rows far
 * above chance; fed out-of-fold ones, it learns that no learner is worth trusting. */
static void test_stacking_no_leakage(void **state)
{
    enum { N = 600 };
    double x[N * N_IN];
    int y[N];
    make_data(N, 3, true, x, y);
    struct gas_params p;
    small_params(&p);
    p.rf_trees = 20;
    p.rf_depth = 12;
    p.rf_subsample = 1;
    p.gbt_rounds = 60;
    p.gbt_depth = 10;
    p.folds = 5;
    struct gas_report rep;
    struct gas_model *m = train_or_fail(x, N, y, &p, &rep);
    assert_int_equal(rep.n_rows, N);
    /* Folds: every row in one, each class spread evenly. */
    size_t per[5][N_CLS] = {{0}};
    for (size_t r = 0; r < N; r++) {
        assert_true(rep.fold[r] < 5);
        per[rep.fold[r]][y[r]]++;
    }
    for (int k = 0; k < N_CLS; k++) {
        size_t lo = SIZE_MAX, hi = 0;
        for (int f = 0; f < 5; f++) {
            lo = per[f][k] < lo ? per[f][k] : lo;
            hi = per[f][k] > hi ? per[f][k] : hi;
        }
        assert_true(hi - lo <= 1);
    }
    /* The trees memorise their training rows (so this test has teeth)... */
    assert_true(accuracy(m, GAS_GBT, x, N, y) > 0.9);
    /* ...but their out-of-fold predictions know nothing... */
    for (int l = 0; l < GAS_N_BASE; l++) {
        size_t right = 0;
        for (size_t r = 0; r < N; r++) {
            const double *q = rep.oof + r * GAS_N_BASE * N_CLS + l * N_CLS;
            int best = 0;
            for (int k = 1; k < N_CLS; k++)
                best = q[k] > q[best] ? k : best;
            right += best == y[r];
        }
        double acc = (double)right / N;
        if (acc > 0.45)
            fail_msg("%s: out-of-fold accuracy %.3f on random labels: in-fold leak",
                     gas_learner_name((enum gas_learner)l), acc);
    }
    /* ...and the stack, trained on those, does not trust the trees' memory: on the very
     * rows the trees memorised, its probabilities stay near the class shares (1/3), where a
     * meta-learner fitted on in-fold predictions would follow the trees to near 1. */
    double conf = 0, gbt_conf = 0;
    for (size_t r = 0; r < N; r++) {
        double pr[N_CLS];
        int k = gas_predict_row(m, GAS_STACK, x + r * N_IN, pr);
        conf += pr[k] / N;
        k = gas_predict_row(m, GAS_GBT, x + r * N_IN, pr);
        gbt_conf += pr[k] / N;
    }
    printf("# random labels: mean top probability: stack %.3f, gradient boosting %.3f\n", conf,
           gbt_conf);
    assert_true(gbt_conf > 0.8);
    if (conf > 0.5)
        fail_msg("stack: mean top probability %.3f on its own random-labelled training rows: "
                 "the meta-learner learnt from in-fold predictions",
                 conf);
    assert_true(m->meta.oof_accuracy[GAS_STACK] < 0.5);
    gas_report_free(&rep);
    gas_free(m);
}

static void test_determinism(void **state)
{
    enum { N = 240 };
    double x[N * N_IN];
    int y[N];
    make_data(N, 4, false, x, y);
    struct gas_params p;
    small_params(&p);
    struct gas_model *a = train_or_fail(x, N, y, &p, NULL);
    p.threads = 2;
    struct gas_model *b = train_or_fail(x, N, y, &p, NULL);
    p.threads = 1;
    p.seed = 99;
    struct gas_model *c = train_or_fail(x, N, y, &p, NULL);
    for (int l = 0; l < GAS_N_BASE; l++) {
        const char *ja, *jb, *jc;
        size_t la, lb, lc;
        gas_booster_json(a, (enum gas_learner)l, &ja, &la);
        gas_booster_json(b, (enum gas_learner)l, &jb, &lb);
        gas_booster_json(c, (enum gas_learner)l, &jc, &lc);
        assert_int_equal(la, lb);
        assert_memory_equal(ja, jb, la);
        if (l == GAS_RF) /* row and column sampling depend on the seed */
            assert_true(la != lc || memcmp(ja, jc, la) != 0);
    }
    const size_t W = N_CLS * (GAS_N_BASE * N_CLS + 1);
    assert_memory_equal(a->meta_w, b->meta_w, W * sizeof *a->meta_w);
    for (size_t r = 0; r < N; r++) {
        double pa[N_CLS], pb[N_CLS];
        gas_predict_row(a, GAS_STACK, x + r * N_IN, pa);
        gas_predict_row(b, GAS_STACK, x + r * N_IN, pb);
        assert_memory_equal(pa, pb, sizeof pa);
    }
    gas_free(a);
    gas_free(b);
    gas_free(c);
}

/* ---- the bundle ---- */

struct bundle {
    struct gas_model *m;
    uint8_t *bytes;
    size_t len;
    double x[60 * N_IN];
    int y[60];
};

static int bundle_setup(void **state)
{
    struct bundle *b = calloc(1, sizeof *b);
    struct gas_params p;
    small_params(&p);
    p.rf_trees = 1;
    p.rf_depth = 2;
    p.gbt_rounds = 1;
    p.gbt_depth = 2;
    p.lr_rounds = 2;
    p.folds = 2;
    make_data(60, 5, false, b->x, b->y);
    char err[256];
    if (gas_train(b->x, 60, N_IN, b->y, N_CLS, in_names, cls_names, &p, "tiny.csv", &b->m, NULL,
                  err, sizeof err))
        return -1;
    void *buf;
    if (gas_save_buffer(b->m, &buf, &b->len, err, sizeof err))
        return -1;
    b->bytes = buf;
    *state = b;
    return 0;
}

static int bundle_teardown(void **state)
{
    struct bundle *b = *state;
    gas_free(b->m);
    free(b->bytes);
    free(b);
    return 0;
}

/* Loads a copy of len bytes in a block of exactly that size. */
static int load_copy(const uint8_t *bytes, size_t len, struct gas_model **m, char *err,
                     size_t errlen)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, bytes, len);
    int rc = gas_load_buffer(copy, len, m, err, errlen);
    free(copy);
    return rc;
}

static void assert_same_predictions(const struct gas_model *a, const struct gas_model *b,
                                    const double *x, size_t n)
{
    for (size_t r = 0; r < n; r++) {
        for (int l = 0; l < GAS_N_LEARNERS; l++) {
            double pa[N_CLS], pb[N_CLS];
            gas_predict_row(a, (enum gas_learner)l, x + r * N_IN, pa);
            gas_predict_row(b, (enum gas_learner)l, x + r * N_IN, pb);
            assert_memory_equal(pa, pb, sizeof pa);
        }
    }
}

static void test_bundle_roundtrip(void **state)
{
    struct bundle *b = *state;
    struct gas_model *m = NULL;
    char err[256] = "";
    assert_int_equal(load_copy(b->bytes, b->len, &m, err, sizeof err), 0);
    assert_same_predictions(b->m, m, b->x, 60);
    assert_string_equal(gas_model_meta(m)->source, "tiny.csv");
    assert_int_equal(gas_model_meta(m)->n_rows, 60);
    assert_string_equal(gas_class_name(m, 2), "Perfume");
    assert_int_equal(gas_model_params(m)->gbt_rounds, 1);
    /* Save again: the same bytes. */
    void *again;
    size_t len;
    assert_int_equal(gas_save_buffer(m, &again, &len, err, sizeof err), 0);
    assert_int_equal(len, b->len);
    assert_memory_equal(again, b->bytes, len);
    free(again);
    gas_free(m);

    char path[] = "/tmp/test_gas_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(gas_save(b->m, path, err, sizeof err), 0);
    assert_int_equal(gas_load(path, &m, err, sizeof err), 0);
    assert_same_predictions(b->m, m, b->x, 60);
    gas_free(m);
    unlink(path);
    assert_int_equal(gas_load(path, &m, err, sizeof err), CANARY_EIO);
    assert_non_null(strstr(err, path));
    assert_null(m);
}

static void test_bundle_truncated(void **state)
{
    struct bundle *b = *state;
    for (size_t len = 0; len < b->len; len++) {
        struct gas_model *m = (struct gas_model *)1;
        char err[256] = "";
        assert_int_equal(load_copy(b->bytes, len, &m, err, sizeof err), CANARY_EINVAL);
        assert_null(m);
        assert_true(err[0] != '\0');
    }
}

static void test_bundle_every_byte_flipped(void **state)
{
    struct bundle *b = *state;
    uint8_t *copy = malloc(b->len);
    assert_non_null(copy);
    for (size_t i = 0; i < b->len; i++) {
        memcpy(copy, b->bytes, b->len);
        copy[i] ^= 0x5a;
        struct gas_model *m = NULL;
        char err[256] = "";
        int rc = gas_load_buffer(copy, b->len, &m, err, sizeof err);
        if (rc != CANARY_EINVAL)
            fail_msg("byte %zu flipped: rc %d", i, rc);
        assert_null(m);
        assert_true(test_printable(err) && err[0]);
    }
    free(copy);
}

/* Corruptions that keep a valid checksum reach the structural checks: the load must fail
 * with a message or succeed with a model that predicts probabilities — never crash. */
static void test_bundle_flipped_with_valid_crc(void **state)
{
    struct bundle *b = *state;
    uint8_t *copy = malloc(b->len);
    assert_non_null(copy);
    size_t failed = 0;
    for (size_t i = 8; i + 4 < b->len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(copy, b->bytes, b->len);
            copy[i] ^= (uint8_t)(1u << bit);
            uint32_t crc = (uint32_t)crc32(crc32(0, Z_NULL, 0), copy, (uInt)(b->len - 4));
            for (int k = 0; k < 4; k++)
                copy[b->len - 4 + k] = (uint8_t)(crc >> (8 * k));
            struct gas_model *m = NULL;
            char err[256] = "";
            int rc = gas_load_buffer(copy, b->len, &m, err, sizeof err);
            if (rc) {
                assert_int_equal(rc, CANARY_EINVAL);
                assert_true(err[0] != '\0');
                failed++;
                continue;
            }
            double pr[N_CLS];
            for (int l = 0; l < GAS_N_LEARNERS; l++) {
                int k = gas_predict_row(m, (enum gas_learner)l, b->x, pr);
                assert_true(k >= 0 && k < N_CLS);
            }
            gas_free(m);
        }
    }
    assert_true(failed > 0);
    free(copy);
}

static void test_bundle_bad_headers(void **state)
{
    struct bundle *b = *state;
    struct gas_model *m = NULL;
    char err[256] = "";
    assert_int_equal(load_copy((const uint8_t *)"hello", 5, &m, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "not a canary gas model"));
    uint8_t *copy = malloc(b->len);
    memcpy(copy, b->bytes, b->len);
    copy[8] = 3; /* version 3: from a later canary */
    assert_int_equal(gas_load_buffer(copy, b->len, &m, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "version 3"));
    memcpy(copy, b->bytes, b->len);
    copy[b->len - 1] ^= 1;
    assert_int_equal(gas_load_buffer(copy, b->len, &m, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "checksum"));
    free(copy);
    /* An Isolation Forest model is not a gas model. */
    assert_int_equal(load_copy((const uint8_t *)"CANARYIF\1\0\0\0", 12, &m, err, sizeof err),
                     CANARY_EINVAL);
}

/* ---- bad inputs ---- */

static void test_bad_inputs(void **state)
{
    enum { N = 30 };
    double x[N * N_IN];
    int y[N];
    make_data(N, 6, false, x, y);
    struct gas_params p;
    small_params(&p);
    struct gas_model *m = NULL;
    char err[256];
    assert_int_equal(
        gas_train(x, N, N_IN, y, 1, in_names, cls_names, &p, NULL, &m, NULL, err, sizeof err),
        CANARY_EINVAL);
    assert_int_equal(
        gas_train(x, N, 0, y, N_CLS, in_names, cls_names, &p, NULL, &m, NULL, err, sizeof err),
        CANARY_EINVAL);
    y[3] = 7;
    assert_int_equal(
        gas_train(x, N, N_IN, y, N_CLS, in_names, cls_names, &p, NULL, &m, NULL, err, sizeof err),
        CANARY_EINVAL);
    assert_non_null(strstr(err, "row 3"));
    y[3] = 0;
    int few[N];
    for (int r = 0; r < N; r++)
        few[r] = r < 2 ? 2 : r % 2; /* class 2 has 2 rows, fewer than 3 folds */
    assert_int_equal(
        gas_train(x, N, N_IN, few, N_CLS, in_names, cls_names, &p, NULL, &m, NULL, err, sizeof err),
        CANARY_EINVAL);
    assert_non_null(strstr(err, "Perfume"));
    x[5] = INFINITY;
    assert_int_equal(
        gas_train(x, N, N_IN, y, N_CLS, in_names, cls_names, &p, NULL, &m, NULL, err, sizeof err),
        CANARY_EINVAL);
    assert_non_null(strstr(err, "infinite"));
    x[5] = 1;
    const char *bad_names[] = {"a", "", "c", "d"};
    assert_int_equal(
        gas_train(x, N, N_IN, y, N_CLS, bad_names, cls_names, &p, NULL, &m, NULL, err, sizeof err),
        CANARY_EINVAL);
    p.folds = 1;
    assert_int_equal(
        gas_train(x, N, N_IN, y, N_CLS, in_names, cls_names, &p, NULL, &m, NULL, err, sizeof err),
        CANARY_EINVAL);
    assert_int_equal(
        gas_train(x, 0, N_IN, y, N_CLS, in_names, cls_names, NULL, NULL, &m, NULL, err, sizeof err),
        CANARY_EINVAL);
    assert_null(m);
    /* Raw features: a reading beyond float's range saturates (no undefined conversion). */
    p.folds = 3;
    p.features = GAS_FEATURES_RAW;
    m = train_or_fail(x, N, y, &p, NULL);
    double huge[N_IN] = {1e300, -1e300, 350, NAN}, pr[N_CLS];
    for (int l = 0; l < GAS_N_LEARNERS; l++) {
        int k = gas_predict_row(m, (enum gas_learner)l, huge, pr);
        assert_true(k >= 0 && k < N_CLS);
    }
    gas_free(m);
}

/* ---- splits and windows ---- */

static void test_splits(void **state)
{
    enum { N = 40 };
    int y[N];
    double t[N];
    uint8_t te[N];
    char err[128];
    for (int r = 0; r < N; r++) {
        y[r] = r % 2;
        t[r] = (double)(N - r); /* time runs backwards in row order */
    }
    assert_int_equal(gas_split_time(t, y, N, 2, 0.25, te, err, sizeof err), 0);
    /* Per class 20 rows, the 5 latest held out: the first rows (largest t). */
    for (int r = 0; r < N; r++)
        assert_int_equal(te[r], r < 10);
    assert_int_equal(gas_split_time(NULL, y, N, 2, 0.25, te, err, sizeof err), 0);
    for (int r = 0; r < N; r++)
        assert_int_equal(te[r], r >= 30);
    assert_int_equal(gas_split_random(y, N, 2, 0.25, 7, te, err, sizeof err), 0);
    int n0 = 0, n1 = 0;
    for (int r = 0; r < N; r++)
        if (te[r] && y[r])
            n1++;
        else if (te[r])
            n0++;
    assert_int_equal(n0, 5);
    assert_int_equal(n1, 5);
    uint8_t te2[N];
    assert_int_equal(gas_split_random(y, N, 2, 0.25, 7, te2, err, sizeof err), 0);
    assert_memory_equal(te, te2, N);
    assert_int_equal(gas_split_time(t, y, N, 2, 0, te, err, sizeof err), CANARY_EINVAL);
    assert_int_equal(gas_split_random(y, N, 2, 1, 1, te, err, sizeof err), CANARY_EINVAL);
    y[0] = 5;
    assert_int_equal(gas_split_time(t, y, N, 2, 0.2, te, err, sizeof err), CANARY_EINVAL);
}

static void test_window_rows(void **state)
{
    /* Two interleaved series of 2 channels, window 3. */
    const double x[] = {1, 10, 100, 1000, 2, 20, 200, 2000, 3, 30, 300, 3000, 4, 40};
    const uint32_t series[] = {0, 1, 0, 1, 0, 1, 0};
    double out[7 * 4];
    char err[128];
    assert_int_equal(gas_window_rows(3, GAS_WINDOW_MEAN, 2, x, 7, series, out, err, sizeof err), 0);
    /* Series 0 readings: (1,10) (2,20) (3,30) (4,40); means over the last 3. */
    assert_true(fabs(out[0 * 4 + 2] - 1) < 1e-12 && fabs(out[0 * 4 + 3] - 10) < 1e-12);
    assert_true(fabs(out[4 * 4 + 2] - 2) < 1e-12 && fabs(out[4 * 4 + 3] - 20) < 1e-12);
    assert_true(fabs(out[6 * 4 + 2] - 3) < 1e-12 && fabs(out[6 * 4 + 3] - 30) < 1e-12);
    assert_true(out[6 * 4 + 0] == 4 && out[6 * 4 + 1] == 40);
    assert_true(fabs(out[5 * 4 + 2] - 200) < 1e-9); /* series 1: 100, 200, 300 */
    /* The live stream gives the same rows. */
    struct gas_stream *s = gas_stream_new(2, 3, GAS_WINDOW_MEAN);
    assert_non_null(s);
    double row[4];
    for (int r = 0; r < 7; r += 2) {
        gas_stream_push(s, x + r * 2, row);
        assert_memory_equal(row, out + r * 4, sizeof row);
    }
    gas_stream_free(s);
    assert_int_equal(gas_window_rows(5000, GAS_WINDOW_MEAN, 2, x, 7, NULL, out, err, sizeof err),
                     CANARY_EINVAL);
}

/* The slope: a series' least-squares slope per reading over its window, from features.c,
 * the same in a table and live; NaN readings stay out of the window. */
static void test_window_slope(void **state)
{
    (void)state;
    /* One channel: 1, 3, 5, 7 (slope 2), then 7 (window 3 holds 5, 7, 7: slope 1), a NaN
     * (the window is unchanged, the row's mean and slope NaN), then 10 (7, 7, 10: 1.5). The
     * other channel is constant (slope 0). */
    const double x[] = {1, 9, 3, 9, 5, 9, 7, 9, 7, 9, NAN, 9, 10, 9};
    const double want[] = {0, 2, 2, 2, 1, NAN, 1.5};
    enum { R = 7, L = 6 };
    double out[R * L];
    char err[128];
    assert_int_equal(gas_window_rows(3, GAS_WINDOW_ALL, 2, x, R, NULL, out, err, sizeof err), 0);
    for (int r = 0; r < R; r++) {
        double slope = out[r * L + 4];
        if (isnan(want[r]) ? !isnan(slope) : fabs(slope - want[r]) > 1e-12)
            fail_msg("row %d: slope %g, expected %g", r, slope, want[r]);
        if (r != 5)
            assert_true(out[r * L + 5] == 0);
    }
    assert_true(fabs(out[6 * L + 2] - 8) < 1e-12); /* the mean of 7, 7, 10 */
    struct gas_stream *s = gas_stream_new(2, 3, GAS_WINDOW_ALL);
    assert_non_null(s);
    double row[L];
    for (int r = 0; r < R; r++) {
        gas_stream_push(s, x + r * 2, row);
        for (int i = 0; i < L; i++)
            if (!(row[i] == out[r * L + i] || (isnan(row[i]) && isnan(out[r * L + i]))))
                fail_msg("row %d value %d: stream %g, table %g", r, i, row[i], out[r * L + i]);
    }
    gas_stream_free(s);
    /* Far from zero (a baseline of 1e9): the slope keeps its digits. */
    struct feature_series *fs = malloc(feature_series_size(16));
    feature_series_init(fs, 16);
    double f[FEATURES_PER_SERIES];
    for (int i = 0; i < 40; i++)
        feature_series_push(fs, 0, 1e9 + 0.25 * i, f);
    assert_true(fabs(feature_series_slope(fs) - 0.25) < 1e-9);
    free(fs);
    /* The parameters: a slope needs a window of 2 or more; no features with a window is
     * refused, unknown bits too. */
    assert_true(gas_window_stats_parse("slope,mean", &(uint32_t){0}));
    assert_false(gas_window_stats_parse("median", &(uint32_t){0}));
    assert_false(gas_window_stats_parse("", &(uint32_t){0}));
    assert_string_equal(gas_window_stats_name(GAS_WINDOW_ALL), "mean,slope");
}

/* A model with a window reads rows of readings and means. */
static void test_window_model(void **state)
{
    enum { N = 240 };
    double x[N * N_IN], rows[N * 2 * N_IN];
    int y[N];
    uint32_t series[N];
    make_data(N, 8, false, x, y);
    for (int r = 0; r < N; r++)
        series[r] = (uint32_t)y[r];
    char err[128];
    assert_int_equal(gas_window_rows(8, GAS_WINDOW_MEAN, N_IN, x, N, series, rows, err, sizeof err),
                     0);
    struct gas_params p;
    small_params(&p);
    p.window = 8;
    p.window_stats = GAS_WINDOW_MEAN;
    struct gas_model *m = train_or_fail(rows, N, y, &p, NULL);
    assert_int_equal(gas_row_len(m), 2 * N_IN);
    assert_true(accuracy(m, GAS_STACK, rows, N, y) > 0.95);
    void *buf;
    size_t len;
    assert_int_equal(gas_save_buffer(m, &buf, &len, err, sizeof err), 0);
    struct gas_model *m2;
    assert_int_equal(gas_load_buffer(buf, len, &m2, err, sizeof err), 0);
    assert_int_equal(gas_model_params(m2)->window, 8);
    assert_int_equal(gas_model_params(m2)->window_stats, GAS_WINDOW_MEAN);
    assert_int_equal(gas_row_len(m2), 2 * N_IN);
    gas_free(m2);

    /* A version-1 bundle (before the window features were recorded: no u32 after the window,
     * at byte 44) still loads, as a window with the mean. */
    uint8_t *v1 = malloc(len - 4);
    memcpy(v1, buf, 44);
    memcpy(v1 + 44, (uint8_t *)buf + 48, len - 48);
    size_t v1_len = len - 4;
    v1[8] = 1; /* version */
    for (int i = 0; i < 8; i++)
        v1[16 + i] = (uint8_t)((uint64_t)v1_len >> (8 * i));
    uint32_t crc = (uint32_t)crc32(0, v1, (uInt)(v1_len - 4));
    for (int i = 0; i < 4; i++)
        v1[v1_len - 4 + i] = (uint8_t)(crc >> (8 * i));
    assert_int_equal(gas_load_buffer(v1, v1_len, &m2, err, sizeof err), 0);
    assert_int_equal(gas_model_params(m2)->window_stats, GAS_WINDOW_MEAN);
    double pa[4], pb[4];
    for (int r = 0; r < N; r += 17) {
        gas_predict_row(m, GAS_STACK, rows + r * 2 * N_IN, pa);
        gas_predict_row(m2, GAS_STACK, rows + r * 2 * N_IN, pb);
        assert_memory_equal(pa, pb, gas_n_classes(m) * sizeof *pa);
    }
    gas_free(m2);
    free(v1);
    free(buf);
    gas_free(m);

    /* The slope: rows of readings, means and slopes; trained, saved, loaded alike. */
    double *rows3 = malloc(N * 3 * N_IN * sizeof *rows3);
    assert_int_equal(gas_window_rows(8, GAS_WINDOW_ALL, N_IN, x, N, series, rows3, err, sizeof err),
                     0);
    for (uint32_t stats = GAS_WINDOW_SLOPE; stats <= GAS_WINDOW_ALL; stats++) {
        p.window_stats = stats;
        m = train_or_fail(rows3, N, y, &p, NULL);
        assert_int_equal(gas_row_len(m), 3 * N_IN);
        assert_int_equal(m->n_features, (stats == GAS_WINDOW_ALL ? 3 : 2) * N_IN);
        assert_int_equal(gas_save_buffer(m, &buf, &len, err, sizeof err), 0);
        assert_int_equal(gas_load_buffer(buf, len, &m2, err, sizeof err), 0);
        assert_int_equal(gas_model_params(m2)->window_stats, stats);
        for (int r = 0; r < N; r += 13) {
            gas_predict_row(m, GAS_STACK, rows3 + r * 3 * N_IN, pa);
            gas_predict_row(m2, GAS_STACK, rows3 + r * 3 * N_IN, pb);
            assert_memory_equal(pa, pb, gas_n_classes(m) * sizeof *pa);
        }
        free(buf);
        gas_free(m2);
        gas_free(m);
    }
    /* Refused: no window feature, an unknown one, a slope over a window of 1. */
    struct gas_model *bad = NULL;
    const uint32_t refused[][2] = {{8, 0}, {8, 4}, {1, GAS_WINDOW_SLOPE}};
    for (size_t i = 0; i < 3; i++) {
        p.window = refused[i][0];
        p.window_stats = refused[i][1];
        assert_int_equal(gas_train(rows3, N, N_IN, y, N_CLS, in_names, cls_names, &p, NULL, &bad,
                                   NULL, err, sizeof err),
                         CANARY_EINVAL);
        assert_null(bad);
        assert_non_null(strstr(err, "window features"));
    }
    free(rows3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_predict),       cmocka_unit_test(test_matches_xgboost),
        cmocka_unit_test(test_stacking_no_leakage), cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_bad_inputs),          cmocka_unit_test(test_splits),
        cmocka_unit_test(test_window_rows),         cmocka_unit_test(test_window_model),
        cmocka_unit_test(test_window_slope),
    };
    const struct CMUnitTest bundle_tests[] = {
        cmocka_unit_test(test_bundle_roundtrip),
        cmocka_unit_test(test_bundle_truncated),
        cmocka_unit_test(test_bundle_every_byte_flipped),
        cmocka_unit_test(test_bundle_flipped_with_valid_crc),
        cmocka_unit_test(test_bundle_bad_headers),
    };
    int failed = cmocka_run_group_tests_name("gas", tests, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("gas bundle", bundle_tests, bundle_setup, bundle_teardown);
    return failed;
}
