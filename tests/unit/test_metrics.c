/* test_metrics.c — unit tests of the evaluation metrics (src/ml/metrics.c).
 *
 * Hand-computed cases (with ties), scikit-learn's documented outputs (roc_auc_score,
 * average_precision_score and roc_curve on scores [0.1, 0.4, 0.35, 0.8], labels
 * [0, 0, 1, 1]: 0.75, 0.8333..., and the curve fpr [0, 0, .5, .5, 1], tpr [0, .5, .5, 1, 1]),
 * numpy.quantile's, and brute-force O(n^2) definitions on random data full of ties. */
#include "core/error.h"
#include "ml/metrics.h"
#include "unit_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define assert_near(a, b, tol) assert_near_at((a), (b), (tol), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double tol, const char *file, int line)
{
    if (!(fabs(a - b) <= tol)) {
        fprintf(stderr, "%s:%d: %.17g is not %.17g (tolerance %g)\n", file, line, a, b, tol);
        fail();
    }
}

static const double doc_scores[] = {0.1, 0.4, 0.35, 0.8};
static const double doc_labels[] = {0, 0, 1, 1};

static void test_sklearn_doc_example(void **state)
{
    double auc, ap;
    char err[128];
    assert_int_equal(metrics_roc_auc(doc_scores, doc_labels, 4, &auc, err, sizeof err), 0);
    assert_near(auc, 0.75, 1e-15);
    assert_int_equal(metrics_average_precision(doc_scores, doc_labels, 4, &ap, err, sizeof err), 0);
    assert_near(ap, 0.83333333333333326, 1e-15); /* sklearn prints 0.8333333333333333 */

    struct metrics_curve c;
    assert_int_equal(metrics_roc_curve(doc_scores, doc_labels, 4, 0, &c, err, sizeof err), 0);
    const double fpr[] = {0, 0, 0.5, 0.5, 1}, tpr[] = {0, 0.5, 0.5, 1, 1};
    const double thr[] = {INFINITY, 0.8, 0.4, 0.35, 0.1};
    assert_int_equal(c.n_points, 5);
    for (int i = 0; i < 5; i++) {
        assert_near(c.fpr[i], fpr[i], 0);
        assert_near(c.tpr[i], tpr[i], 0);
        assert_true(c.thresholds[i] == thr[i]);
    }
    metrics_curve_free(&c);
    metrics_curve_free(&c); /* idempotent */
}

static void test_ties_by_hand(void **state)
{
    double auc, ap;
    /* All tied: a coin. */
    const double s1[] = {0.5, 0.5, 0.5, 0.5}, l1[] = {0, 1, 0, 1};
    assert_int_equal(metrics_roc_auc(s1, l1, 4, &auc, NULL, 0), 0);
    assert_near(auc, 0.5, 0);
    assert_int_equal(metrics_average_precision(s1, l1, 4, &ap, NULL, 0), 0);
    assert_near(ap, 0.5, 0);

    /* A positive tied with a negative counts half: (2 + 1 + 0.5) / 4. AP: threshold 3 gives
     * P 1 at R .5, threshold 2 gives P 2/3 at R 1: .5 + .5 * 2/3. */
    const double s2[] = {1, 2, 2, 3}, l2[] = {0, 0, 1, 1};
    assert_int_equal(metrics_roc_auc(s2, l2, 4, &auc, NULL, 0), 0);
    assert_near(auc, 0.875, 0);
    assert_int_equal(metrics_average_precision(s2, l2, 4, &ap, NULL, 0), 0);
    assert_near(ap, 0.5 + 0.5 * 2.0 / 3.0, 1e-15);

    /* Perfect, and perfectly wrong. */
    const double s3[] = {0.9, 0.1, 0.8, 0.2}, l3[] = {1, 0, 1, 0};
    assert_int_equal(metrics_roc_auc(s3, l3, 4, &auc, NULL, 0), 0);
    assert_near(auc, 1, 0);
    assert_int_equal(metrics_average_precision(s3, l3, 4, &ap, NULL, 0), 0);
    assert_near(ap, 1, 0);
    const double l4[] = {0, 1, 0, 1};
    assert_int_equal(metrics_roc_auc(s3, l4, 4, &auc, NULL, 0), 0);
    assert_near(auc, 0, 0);
    assert_int_equal(metrics_average_precision(s3, l4, 4, &ap, NULL, 0), 0);
    assert_near(ap, 0.5 * 1.0 / 3.0 + 0.5 * 2.0 / 4.0, 1e-15); /* P 1/3 at R .5, 2/4 at R 1 */

    /* Infinite scores are scores. */
    const double s5[] = {-INFINITY, INFINITY, 0}, l5[] = {0, 1, 0};
    assert_int_equal(metrics_roc_auc(s5, l5, 3, &auc, NULL, 0), 0);
    assert_near(auc, 1, 0);
}

static void test_errors(void **state)
{
    double v;
    char err[128];
    assert_int_equal(metrics_roc_auc(doc_scores, doc_labels, 0, &v, err, sizeof err),
                     CANARY_EINVAL);
    assert_string_equal(err, "no rows to evaluate");
    const double bad_labels[] = {0, 0.5, 1, 1};
    assert_int_equal(metrics_roc_auc(doc_scores, bad_labels, 4, &v, err, sizeof err),
                     CANARY_EINVAL);
    assert_string_equal(err, "row 1: label 0.5 is not 0 or 1");
    const double zeros[] = {0, 0, 0, 0}, ones[] = {1, 1, 1, 1};
    assert_int_equal(metrics_roc_auc(doc_scores, zeros, 4, &v, err, sizeof err), CANARY_EINVAL);
    assert_string_equal(err, "ROC AUC is undefined: all 4 labels are 0");
    assert_int_equal(metrics_average_precision(doc_scores, ones, 4, &v, err, sizeof err),
                     CANARY_EINVAL);
    assert_string_equal(err, "average precision is undefined: all 4 labels are 1");
    struct metrics_curve c;
    assert_int_equal(metrics_roc_curve(doc_scores, ones, 4, 0, &c, err, sizeof err), CANARY_EINVAL);
    assert_string_equal(err, "the ROC curve is undefined: all 4 labels are 1");
    assert_null(c.fpr);
    assert_int_equal(metrics_roc_curve(doc_scores, doc_labels, 4, 1, &c, err, sizeof err),
                     CANARY_EINVAL);
    const double nan_scores[] = {0.1, NAN, 0.2, 0.3};
    assert_int_equal(metrics_average_precision(nan_scores, doc_labels, 4, &v, err, sizeof err),
                     CANARY_EINVAL);
    assert_string_equal(err, "row 1: the score is NaN");
    const double nan_labels[] = {0, NAN, 1, 1};
    assert_int_equal(metrics_roc_auc(doc_scores, nan_labels, 4, &v, NULL, 0), CANARY_EINVAL);

    struct metrics_binary m;
    assert_int_equal(metrics_at_threshold(doc_scores, doc_labels, 0, 0.5, &m, err, sizeof err),
                     CANARY_EINVAL);
    assert_int_equal(metrics_at_threshold(doc_scores, doc_labels, 4, NAN, &m, err, sizeof err),
                     CANARY_EINVAL);
    assert_string_equal(err, "the threshold is NaN");
    assert_int_equal(metrics_at_threshold(doc_scores, bad_labels, 4, 0.5, &m, err, sizeof err),
                     CANARY_EINVAL);
}

static void test_at_threshold(void **state)
{
    struct metrics_binary m;
    char err[128];
    /* >= 0.35: 0.4 (neg), 0.35 (pos), 0.8 (pos). */
    assert_int_equal(metrics_at_threshold(doc_scores, doc_labels, 4, 0.35, &m, err, sizeof err), 0);
    assert_int_equal(m.tp, 2);
    assert_int_equal(m.fp, 1);
    assert_int_equal(m.tn, 1);
    assert_int_equal(m.fn, 0);
    assert_near(m.precision, 2.0 / 3.0, 1e-15);
    assert_near(m.recall, 1, 0);
    assert_near(m.f1, 0.8, 1e-15);
    assert_near(m.fpr, 0.5, 0);
    /* Nothing predicted positive: zero_division = 0. */
    assert_int_equal(metrics_at_threshold(doc_scores, doc_labels, 4, 0.9, &m, err, sizeof err), 0);
    assert_int_equal(m.fn, 2);
    assert_near(m.precision, 0, 0);
    assert_near(m.recall, 0, 0);
    assert_near(m.f1, 0, 0);
    /* One class is allowed here. */
    const double zeros[] = {0, 0, 0, 0};
    assert_int_equal(metrics_at_threshold(doc_scores, zeros, 4, 0.3, &m, err, sizeof err), 0);
    assert_int_equal(m.fp, 3);
    assert_near(m.recall, 0, 0);
    assert_near(m.fpr, 0.75, 0);
}

/* Brute force: U by comparing every pair, AP over every distinct score as a threshold. */
static double brute_auc(const double *s, const double *l, size_t n)
{
    double u = 0, p = 0, q = 0;
    for (size_t i = 0; i < n; i++) {
        p += l[i];
        q += 1 - l[i];
        for (size_t j = 0; j < n; j++)
            if (l[i] == 1 && l[j] == 0)
                u += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
    }
    return u / (p * q);
}

static double brute_ap(const double *s, const double *l, size_t n)
{
    double pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += l[i];
    /* Distinct thresholds, highest first, by repeated search for the next lower score. */
    double ap = 0, prev_recall = 0, t = INFINITY;
    for (;;) {
        double next = -INFINITY;
        bool found = false;
        for (size_t i = 0; i < n; i++)
            if (s[i] < t && (!found || s[i] > next)) {
                next = s[i];
                found = true;
            }
        if (!found)
            break;
        t = next;
        double tp = 0, fp = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] >= t) {
                tp += l[i];
                fp += 1 - l[i];
            }
        double recall = tp / pos;
        ap += (recall - prev_recall) * (tp / (tp + fp));
        prev_recall = recall;
    }
    return ap;
}

static void test_random_vs_brute_force(void **state)
{
    struct test_rng rng = {42};
    enum { N = 400 };
    double s[N], l[N];
    for (int round = 0; round < 50; round++) {
        size_t n = 2 + test_rng_below(&rng, N - 1);
        size_t levels = 1 + test_rng_below(&rng, round % 2 ? 5 : 1000); /* ties, or few */
        for (size_t i = 0; i < n; i++) {
            l[i] = test_rng_below(&rng, 4) == 0;
            s[i] = (double)test_rng_below(&rng, levels) + 0.3 * l[i] * (round % 3);
        }
        l[0] = 0;
        l[1] = 1;
        double auc, ap;
        assert_int_equal(metrics_roc_auc(s, l, n, &auc, NULL, 0), 0);
        assert_near(auc, brute_auc(s, l, n), 1e-12);
        assert_int_equal(metrics_average_precision(s, l, n, &ap, NULL, 0), 0);
        assert_near(ap, brute_ap(s, l, n), 1e-12);

        /* The full curve's trapezoidal area is the AUC. */
        struct metrics_curve c;
        assert_int_equal(metrics_roc_curve(s, l, n, 0, &c, NULL, 0), 0);
        double area = 0;
        for (size_t i = 1; i < c.n_points; i++)
            area += (c.fpr[i] - c.fpr[i - 1]) * (c.tpr[i] + c.tpr[i - 1]) / 2;
        assert_near(area, auc, 1e-12);
        metrics_curve_free(&c);
    }
}

/* A decimated curve: at most max_points, from (0,0) to (1,1), monotone, same shape. */
static void test_curve_decimation(void **state)
{
    enum { N = 20000 };
    double *s = malloc(N * sizeof *s), *l = malloc(N * sizeof *l);
    assert_non_null(s);
    assert_non_null(l);
    struct test_rng rng = {7};
    for (size_t i = 0; i < N; i++) {
        l[i] = test_rng_below(&rng, 10) == 0;
        s[i] = test_rng_gauss(&rng) + 1.5 * l[i];
    }
    double auc;
    assert_int_equal(metrics_roc_auc(s, l, N, &auc, NULL, 0), 0);
    struct metrics_curve full;
    assert_int_equal(metrics_roc_curve(s, l, N, 0, &full, NULL, 0), 0);
    assert_int_equal(full.n_points, N + 1); /* no ties: every score is a point */
    const size_t maxes[] = {2, 3, 10, 50, 200, 100000};
    for (size_t k = 0; k < sizeof maxes / sizeof maxes[0]; k++) {
        struct metrics_curve c;
        assert_int_equal(metrics_roc_curve(s, l, N, maxes[k], &c, NULL, 0), 0);
        assert_true(c.n_points >= 2 && c.n_points <= maxes[k]);
        assert_near(c.fpr[0], 0, 0);
        assert_near(c.tpr[0], 0, 0);
        assert_true(isinf(c.thresholds[0]));
        assert_near(c.fpr[c.n_points - 1], 1, 0);
        assert_near(c.tpr[c.n_points - 1], 1, 0);
        double area = 0;
        for (size_t i = 1; i < c.n_points; i++) {
            assert_true(c.fpr[i] >= c.fpr[i - 1] && c.tpr[i] >= c.tpr[i - 1]);
            assert_true(c.thresholds[i] < c.thresholds[i - 1]);
            area += (c.fpr[i] - c.fpr[i - 1]) * (c.tpr[i] + c.tpr[i - 1]) / 2;
        }
        /* Every kept point is a point of the full curve with its threshold. */
        for (size_t i = 0, j = 0; i < c.n_points; i++) {
            while (j < full.n_points && full.thresholds[j] != c.thresholds[i])
                j++;
            assert_true(j < full.n_points);
            assert_near(c.fpr[i], full.fpr[j], 0);
            assert_near(c.tpr[i], full.tpr[j], 0);
        }
        if (maxes[k] >= 50)
            assert_near(area, auc, 0.005);
        if (maxes[k] == 100000) /* only collinear points dropped: the same area */
            assert_near(area, auc, 1e-12);
        metrics_curve_free(&c);
    }
    metrics_curve_free(&full);

    /* Collinear points go even without a limit problem: a staircase of ties in one run. */
    const double s2[] = {5, 4, 3, 2, 1, 0}, l2[] = {1, 1, 1, 0, 0, 0};
    struct metrics_curve c;
    assert_int_equal(metrics_roc_curve(s2, l2, 6, 10, &c, NULL, 0), 0);
    assert_int_equal(c.n_points, 3); /* (0,0) -> (0,1) -> (1,1) */
    assert_near(c.fpr[1], 0, 0);
    assert_near(c.tpr[1], 1, 0);
    assert_near(c.thresholds[1], 3, 0);
    metrics_curve_free(&c);
    free(s);
    free(l);
}

static void test_quantiles(void **state)
{
    double v;
    char err[128];
    const double a[] = {4, 1, 3, 2}; /* numpy.quantile([1, 2, 3, 4], q) */
    assert_int_equal(metrics_quantile(a, 4, 0.5, &v, err, sizeof err), 0);
    assert_near(v, 2.5, 0);
    assert_int_equal(metrics_quantile(a, 4, 0.25, &v, err, sizeof err), 0);
    assert_near(v, 1.75, 0);
    assert_int_equal(metrics_quantile(a, 4, 0, &v, err, sizeof err), 0);
    assert_near(v, 1, 0);
    assert_int_equal(metrics_quantile(a, 4, 1, &v, err, sizeof err), 0);
    assert_near(v, 4, 0);
    const double b[] = {10, 1, 5}; /* numpy.quantile([10, 1, 5], 0.9) == 9.0 */
    assert_int_equal(metrics_quantile(b, 3, 0.9, &v, err, sizeof err), 0);
    assert_near(v, 9.0, 1e-15);
    const double one[] = {7};
    assert_int_equal(metrics_quantile(one, 1, 0.3, &v, err, sizeof err), 0);
    assert_near(v, 7, 0);
    const double q[] = {0.1, 0.99, 0.5};
    double out[3];
    const double c[] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    assert_int_equal(metrics_quantiles(c, 11, q, 3, out, err, sizeof err), 0);
    assert_near(out[0], 10, 1e-12);
    assert_near(out[1], 99, 1e-12);
    assert_near(out[2], 50, 0);
    /* The input is not modified. */
    assert_near(a[0], 4, 0);

    assert_int_equal(metrics_quantile(a, 0, 0.5, &v, err, sizeof err), CANARY_EINVAL);
    assert_string_equal(err, "no values to take a quantile of");
    assert_int_equal(metrics_quantile(a, 4, 1.5, &v, err, sizeof err), CANARY_EINVAL);
    assert_string_equal(err, "quantile 1.5 is not between 0 and 1");
    assert_int_equal(metrics_quantile(a, 4, NAN, &v, err, sizeof err), CANARY_EINVAL);
    const double with_nan[] = {1, NAN};
    assert_int_equal(metrics_quantile(with_nan, 2, 0.5, &v, err, sizeof err), CANARY_EINVAL);
    assert_string_equal(err, "value 1 is NaN");
}

static void test_multiclass(void **state)
{
    const int truth[] = {0, 1, 2, 2, 1, 0}, pred[] = {0, 2, 2, 2, 1, 1};
    struct metrics_multiclass m;
    char err[128];
    assert_int_equal(metrics_multiclass_eval(truth, pred, 6, 3, &m, err, sizeof err), 0);
    const uint64_t conf[] = {1, 1, 0, 0, 1, 1, 0, 0, 2};
    for (int i = 0; i < 9; i++)
        assert_int_equal(m.confusion[i], conf[i]);
    assert_near(m.accuracy, 4.0 / 6.0, 1e-15);
    const double p[] = {1, 0.5, 2.0 / 3.0}, r[] = {0.5, 0.5, 1}, f[] = {2.0 / 3.0, 0.5, 0.8};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(m.support[k], 2);
        assert_near(m.precision[k], p[k], 1e-15);
        assert_near(m.recall[k], r[k], 1e-15);
        assert_near(m.f1[k], f[k], 1e-15);
    }
    /* sklearn: precision_score(..., average="macro") etc. */
    assert_near(m.macro_precision, (1 + 0.5 + 2.0 / 3.0) / 3, 1e-15);
    assert_near(m.macro_recall, 2.0 / 3.0, 1e-15);
    assert_near(m.macro_f1, (2.0 / 3.0 + 0.5 + 0.8) / 3, 1e-15);
    metrics_multiclass_free(&m);

    /* A fourth class seen nowhere is not in the means; one only predicted is, with 0s. */
    assert_int_equal(metrics_multiclass_eval(truth, pred, 6, 4, &m, err, sizeof err), 0);
    assert_near(m.macro_f1, (2.0 / 3.0 + 0.5 + 0.8) / 3, 1e-15);
    metrics_multiclass_free(&m);
    const int pred3[] = {0, 2, 2, 3, 1, 1};
    assert_int_equal(metrics_multiclass_eval(truth, pred3, 6, 4, &m, err, sizeof err), 0);
    assert_near(m.precision[3], 0, 0);
    assert_near(m.recall[3], 0, 0);
    assert_near(m.macro_recall, (0.5 + 0.5 + 0.5 + 0) / 4, 1e-15);
    metrics_multiclass_free(&m);

    const int out_of_range[] = {0, 1, 3};
    assert_int_equal(metrics_multiclass_eval(out_of_range, pred, 3, 3, &m, err, sizeof err),
                     CANARY_EINVAL);
    assert_string_equal(err, "row 2: true class 3 is not in 0..2");
    assert_null(m.confusion);
    assert_int_equal(metrics_multiclass_eval(truth, pred, 0, 3, &m, err, sizeof err),
                     CANARY_EINVAL);
    assert_string_equal(err, "no rows to evaluate");
    metrics_multiclass_free(&m);
}

static void test_ovr_auc(void **state)
{
    const int truth[] = {0, 1, 2, 0, 1, 2};
    const double prob[] = {.8, .1, .1, .2, .7, .1, .1, .3, .6, .3, .4, .3, .5, .3, .2, .2, .2, .6};
    double per[3], macro;
    char err[128];
    assert_int_equal(metrics_ovr_roc_auc(prob, truth, 6, 3, per, &macro, err, sizeof err), 0);
    assert_near(per[0], 7.0 / 8.0, 0);
    assert_near(per[1], 6.5 / 8.0, 0);
    assert_near(per[2], 1, 0);
    assert_near(macro, (7.0 / 8.0 + 6.5 / 8.0 + 1) / 3, 1e-15);
    assert_int_equal(metrics_ovr_roc_auc(prob, truth, 6, 3, NULL, NULL, err, sizeof err), 0);

    const int missing[] = {0, 1, 0, 0, 1, 1};
    assert_int_equal(metrics_ovr_roc_auc(prob, missing, 6, 3, per, &macro, err, sizeof err),
                     CANARY_EINVAL);
    assert_string_equal(err, "one-vs-rest ROC AUC is undefined: no rows are class 2");
    assert_int_equal(metrics_ovr_roc_auc(prob, truth, 6, 1, per, &macro, err, sizeof err),
                     CANARY_EINVAL);

    /* Binary as two classes: class 1's AUC is the binary AUC. */
    double two[8], auc;
    int t2[4];
    for (int i = 0; i < 4; i++) {
        two[2 * i] = 1 - doc_scores[i];
        two[2 * i + 1] = doc_scores[i];
        t2[i] = (int)doc_labels[i];
    }
    assert_int_equal(metrics_ovr_roc_auc(two, t2, 4, 2, per, &macro, err, sizeof err), 0);
    assert_int_equal(metrics_roc_auc(doc_scores, doc_labels, 4, &auc, err, sizeof err), 0);
    assert_near(per[1], auc, 0);
    assert_near(per[0], auc, 1e-15);
}

static void test_class_ids(void **state)
{
    const double labels[] = {0, 2, 1, 2};
    int ids[4];
    size_t k;
    char err[128];
    assert_int_equal(metrics_class_ids(labels, 4, ids, &k, err, sizeof err), 0);
    assert_int_equal(k, 3);
    assert_int_equal(ids[1], 2);
    const double bad[] = {0, 1.5};
    assert_int_equal(metrics_class_ids(bad, 2, ids, &k, err, sizeof err), CANARY_EINVAL);
    assert_string_equal(err, "row 1: label 1.5 is not a class (an integer from 0)");
    const double neg[] = {-1};
    assert_int_equal(metrics_class_ids(neg, 1, ids, &k, err, sizeof err), CANARY_EINVAL);
    const double nan[] = {NAN};
    assert_int_equal(metrics_class_ids(nan, 1, ids, &k, err, sizeof err), CANARY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sklearn_doc_example),
        cmocka_unit_test(test_ties_by_hand),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_at_threshold),
        cmocka_unit_test(test_random_vs_brute_force),
        cmocka_unit_test(test_curve_decimation),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_multiclass),
        cmocka_unit_test(test_ovr_auc),
        cmocka_unit_test(test_class_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
