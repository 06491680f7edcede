/* metrics.h — evaluation of anomaly scores and class predictions against ground truth.
 *
 * The figures match scikit-learn's, so numbers in our reports compare with published ones:
 *   - ROC AUC as roc_auc_score: the Mann-Whitney U statistic with average ranks for ties,
 *     i.e. the trapezoidal area under the tie-grouped ROC curve;
 *   - PR AUC as average_precision_score: AP = sum_n (R_n - R_{n-1}) P_n over the distinct
 *     score thresholds, highest first (ties form one threshold; no interpolation);
 *   - precision, recall and F1 with zero_division=0 (a ratio whose denominator is 0 is 0);
 *   - quantiles as numpy.quantile's default method "linear".
 * Higher scores mean "more anomalous" (positive). A binary label is 0 (normal) or 1
 * (anomaly), as double so that struct dataset's labels can be passed as they are.
 *
 * Every function is O(n log n) or better and returns 0, or CANARY_EINVAL with a message in
 * err (errlen may be 0): n == 0, a label other than 0/1, a NaN score, or — for AUC and AP —
 * only one class present ("ROC AUC is undefined: all 120 labels are 0"); CANARY_ENOMEM when
 * scratch memory cannot be had. Inputs are never modified; no state, thread-safe. */
#ifndef CANARY_ML_METRICS_H
#define CANARY_ML_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* ---- Binary: scores against 0/1 labels ---- */

/* Area under the ROC curve of scores (n) against labels (n, each 0 or 1) in *auc. */
int metrics_roc_auc(const double *scores, const double *labels, size_t n, double *auc, char *err,
                    size_t errlen);

/* Average precision (area under the precision-recall curve, step-wise) in *ap. */
int metrics_average_precision(const double *scores, const double *labels, size_t n, double *ap,
                              char *err, size_t errlen);

/* An ROC curve: n_points points, from (0, 0) at threshold +inf to (1, 1) at the lowest score,
 * one per distinct score (tie-grouped), fpr and tpr non-decreasing. thresholds[i] is the
 * score at or above which rows count as positive to give point i. */
struct metrics_curve {
    size_t n_points;
    double *fpr;        /* false positive rate, n_points */
    double *tpr;        /* true positive rate (recall), n_points */
    double *thresholds; /* n_points, decreasing; thresholds[0] = +inf */
};

/* Computes the ROC curve into c (free with metrics_curve_free). max_points == 0 keeps every
 * tie-grouped point. Otherwise collinear interior points are dropped first (they do not
 * change the curve, as scikit-learn's drop_intermediate), and if more than max_points
 * (>= 2) remain, points are kept evenly spaced along the curve's length (fpr + tpr), always
 * keeping the first and the last; the area under the decimated curve stays close to the AUC
 * for a plot's purposes. */
int metrics_roc_curve(const double *scores, const double *labels, size_t n, size_t max_points,
                      struct metrics_curve *c, char *err, size_t errlen);

/* Frees the arrays of c and zeroes it; safe on a zeroed curve. */
void metrics_curve_free(struct metrics_curve *c);

/* Counts and ratios at one threshold: score >= threshold is predicted positive. */
struct metrics_binary {
    uint64_t tp, fp, tn, fn;
    double precision; /* tp / (tp + fp), 0 when nothing is predicted positive */
    double recall;    /* tp / (tp + fn), 0 when there are no positives */
    double f1;        /* 2 p r / (p + r), 0 when p + r == 0 */
    double fpr;       /* fp / (fp + tn), 0 when there are no negatives */
};

/* Fills m for scores at threshold. A single class is allowed here (only n == 0, bad labels
 * and NaN scores are errors). O(n). */
int metrics_at_threshold(const double *scores, const double *labels, size_t n, double threshold,
                         struct metrics_binary *m, char *err, size_t errlen);

/* ---- Quantiles ---- */

/* The q-quantile (0 <= q <= 1) of x (n values, none NaN) in *out, linear interpolation
 * between order statistics as numpy.quantile(x, q): h = (n - 1) q,
 * out = x(floor h) + (h - floor h) (x(floor h + 1) - x(floor h)). */
int metrics_quantile(const double *x, size_t n, double q, double *out, char *err, size_t errlen);

/* The same for n_q quantiles q[0..n_q) at once (one sort), into out[0..n_q). */
int metrics_quantiles(const double *x, size_t n, const double *q, size_t n_q, double *out,
                      char *err, size_t errlen);

/* ---- Multi-class: predicted classes against true classes, 0..n_classes-1 ---- */

struct metrics_multiclass {
    size_t n_classes;
    uint64_t n;          /* rows evaluated */
    double accuracy;     /* share of rows with pred == truth */
    uint64_t *confusion; /* n_classes x n_classes, row-major: [truth * n_classes + pred] */
    uint64_t *support;   /* per class: rows whose truth is that class */
    double *precision;   /* per class, zero_division=0 */
    double *recall;      /* per class */
    double *f1;          /* per class */
    /* Unweighted means over the classes present in truth or pred (as scikit-learn's
     * average="macro" without an explicit label list); macro_f1 is the mean of per-class
     * F1, not the F1 of the means. */
    double macro_precision, macro_recall, macro_f1;
};

/* Evaluates pred against truth (n each, values in 0..n_classes-1) into m (free with
 * metrics_multiclass_free). Errors: n == 0, n_classes == 0, a class out of range. */
int metrics_multiclass_eval(const int *truth, const int *pred, size_t n, size_t n_classes,
                            struct metrics_multiclass *m, char *err, size_t errlen);

/* Frees the arrays of m and zeroes it; safe on a zeroed struct. */
void metrics_multiclass_free(struct metrics_multiclass *m);

/* One-vs-rest ROC AUC: for each class k, the ROC AUC of column k of scores (n x n_classes,
 * row-major; e.g. class probabilities) against "truth == k". per_class (n_classes, may be
 * NULL) receives each; *macro (may be NULL) their unweighted mean, as scikit-learn's
 * roc_auc_score(multi_class="ovr", average="macro"). Error when a class has no rows or all
 * rows (its AUC is undefined). */
int metrics_ovr_roc_auc(const double *scores, const int *truth, size_t n, size_t n_classes,
                        double *per_class, double *macro, char *err, size_t errlen);

/* Converts labels (n doubles, as in struct dataset) to class indexes in out (n ints):
 * each label must be an integer in 0..INT_MAX-1. *n_classes receives max + 1. */
int metrics_class_ids(const double *labels, size_t n, int *out, size_t *n_classes, char *err,
                      size_t errlen);

#endif
