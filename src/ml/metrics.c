/* metrics.c — evaluation of scores and class predictions (contract in metrics.h).
 *
 * Everything ranking-based starts the same way: the (score, label) pairs sorted by score,
 * highest first, and walked in groups of equal scores. A group is one threshold: its
 * positives and negatives enter the counts together, which is what "ties handled by average
 * ranks" means for the ROC AUC and "ties grouped" for the average precision. The ROC AUC is
 * then the trapezoidal area, summed exactly in integers as twice the Mann-Whitney U
 * (U = sum over groups of negatives * (positives above + positives in the group / 2)), and
 * divided once at the end, so it is exact to the last bit of that one division. */
#include "ml/metrics.h"

#include "core/error.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Binary: validation and the sorted groups ---- */

/* Checks n, the labels and the scores; counts the positives. */
static int check_binary(const double *scores, const double *labels, size_t n, uint64_t *pos,
                        char *err, size_t errlen)
{
    if (n == 0) {
        canary_errf(err, errlen, "no rows to evaluate");
        return CANARY_EINVAL;
    }
    uint64_t p = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] != 0.0 && labels[i] != 1.0) {
            canary_errf(err, errlen, "row %zu: label %g is not 0 or 1", i, labels[i]);
            return CANARY_EINVAL;
        }
        if (isnan(scores[i])) {
            canary_errf(err, errlen, "row %zu: the score is NaN", i);
            return CANARY_EINVAL;
        }
        p += labels[i] == 1.0;
    }
    *pos = p;
    return 0;
}

/* The figure is undefined when one class is missing: say which. */
static int check_both_classes(const char *what, size_t n, uint64_t pos, char *err, size_t errlen)
{
    if (pos > 0 && pos < n)
        return 0;
    canary_errf(err, errlen, "%s is undefined: all %zu labels are %d", what, n, pos ? 1 : 0);
    return CANARY_EINVAL;
}

struct pair {
    double score;
    double label;
};

static int by_score_desc(const void *a, const void *b)
{
    double x = ((const struct pair *)a)->score, y = ((const struct pair *)b)->score;
    return (x < y) - (x > y);
}

/* The pairs sorted by score, highest first; NULL when out of memory. */
static struct pair *sorted_pairs(const double *scores, const double *labels, size_t n)
{
    struct pair *p = malloc(n * sizeof *p);
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = (struct pair){scores[i], labels[i]};
    qsort(p, n, sizeof *p, by_score_desc);
    return p;
}

/* One group of equal scores: its score and what it adds. Returns the index after it. */
static size_t next_group(const struct pair *p, size_t n, size_t i, uint64_t *tp_g, uint64_t *fp_g)
{
    double s = p[i].score;
    uint64_t tp = 0, fp = 0;
    for (; i < n && p[i].score == s; i++) {
        if (p[i].label == 1.0)
            tp++;
        else
            fp++;
    }
    *tp_g = tp;
    *fp_g = fp;
    return i;
}

/* ROC AUC of sorted pairs with pos positives (both classes present). */
static double auc_sorted(const struct pair *p, size_t n, uint64_t pos)
{
    /* 2U in integers: fp_g * (2 tp_above + tp_g) summed; at most 2 P N, which fits in 128
     * bits for any n. The one division is in long double (exact operands below 2^64). */
    unsigned __int128 twice_u = 0;
    uint64_t tp = 0;
    for (size_t i = 0; i < n;) {
        uint64_t tp_g, fp_g;
        i = next_group(p, n, i, &tp_g, &fp_g);
        twice_u += (unsigned __int128)fp_g * (2 * tp + tp_g);
        tp += tp_g;
    }
    uint64_t neg = n - pos;
    return (double)((long double)twice_u / 2.0L / ((long double)pos * (long double)neg));
}

int metrics_roc_auc(const double *scores, const double *labels, size_t n, double *auc, char *err,
                    size_t errlen)
{
    uint64_t pos;
    int rc = check_binary(scores, labels, n, &pos, err, errlen);
    if (rc == 0)
        rc = check_both_classes("ROC AUC", n, pos, err, errlen);
    if (rc != 0)
        return rc;
    struct pair *p = sorted_pairs(scores, labels, n);
    if (p == NULL) {
        canary_errf(err, errlen, "out of memory sorting %zu scores", n);
        return CANARY_ENOMEM;
    }
    *auc = auc_sorted(p, n, pos);
    free(p);
    return 0;
}

int metrics_average_precision(const double *scores, const double *labels, size_t n, double *ap,
                              char *err, size_t errlen)
{
    uint64_t pos;
    int rc = check_binary(scores, labels, n, &pos, err, errlen);
    if (rc == 0)
        rc = check_both_classes("average precision", n, pos, err, errlen);
    if (rc != 0)
        return rc;
    struct pair *p = sorted_pairs(scores, labels, n);
    if (p == NULL) {
        canary_errf(err, errlen, "out of memory sorting %zu scores", n);
        return CANARY_ENOMEM;
    }
    /* AP = sum over thresholds of (R_n - R_{n-1}) P_n; R only moves when tp_g > 0. */
    double sum = 0;
    uint64_t tp = 0, fp = 0;
    for (size_t i = 0; i < n;) {
        uint64_t tp_g, fp_g;
        i = next_group(p, n, i, &tp_g, &fp_g);
        tp += tp_g;
        fp += fp_g;
        if (tp_g > 0)
            sum += ((double)tp_g / (double)pos) * ((double)tp / (double)(tp + fp));
    }
    free(p);
    *ap = sum;
    return 0;
}

/* ---- The ROC curve ---- */

void metrics_curve_free(struct metrics_curve *c)
{
    free(c->fpr);
    free(c->tpr);
    free(c->thresholds);
    memset(c, 0, sizeof *c);
}

/* Visvalingam-Whyatt simplification (M. Visvalingam and J. D. Whyatt, "Line generalisation
 * by repeated elimination of points", The Cartographic Journal 30(1), 1993): the interior
 * point whose triangle with its neighbours has the least area goes first, until `keep`
 * points are left. A lazy binary heap (stale entries skipped by a stamp) makes it
 * O(n log n). Sets alive[i] for the points kept. */
struct vw_entry {
    double area;
    uint32_t stamp;
    size_t i;
};

static double tri_area(const double *x, const double *y, size_t a, size_t b, size_t c)
{
    return fabs((x[b] - x[a]) * (y[c] - y[a]) - (x[c] - x[a]) * (y[b] - y[a])) / 2;
}

static bool vw_less(const struct vw_entry *a, const struct vw_entry *b)
{
    return a->area < b->area || (a->area == b->area && a->i < b->i);
}

static void heap_push(struct vw_entry *h, size_t *n, struct vw_entry e)
{
    size_t i = (*n)++;
    while (i > 0 && vw_less(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

static struct vw_entry heap_pop(struct vw_entry *h, size_t *n)
{
    struct vw_entry top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && vw_less(&h[c + 1], &h[c]))
            c++;
        if (!vw_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static int simplify(const double *x, const double *y, size_t n, size_t keep, bool *alive)
{
    size_t *prev = malloc(n * sizeof *prev), *next = malloc(n * sizeof *next);
    uint32_t *stamp = calloc(n, sizeof *stamp);
    struct vw_entry *heap = malloc(3 * n * sizeof *heap);
    int rc = CANARY_ENOMEM;
    if (prev == NULL || next == NULL || stamp == NULL || heap == NULL)
        goto out;
    size_t hn = 0, left = n;
    for (size_t i = 0; i < n; i++) {
        alive[i] = true;
        prev[i] = i - 1;
        next[i] = i + 1;
        if (i > 0 && i + 1 < n)
            heap_push(heap, &hn, (struct vw_entry){tri_area(x, y, i - 1, i, i + 1), 0, i});
    }
    while (left > keep && hn > 0) {
        struct vw_entry e = heap_pop(heap, &hn);
        if (!alive[e.i] || e.stamp != stamp[e.i])
            continue;
        alive[e.i] = false;
        left--;
        size_t a = prev[e.i], b = next[e.i];
        next[a] = b;
        prev[b] = a;
        /* A neighbour's area is at least the removed one's, so that nothing flat is left
         * behind a removed corner (Visvalingam's rule). */
        if (a > 0) {
            double ar = fmax(tri_area(x, y, prev[a], a, b), e.area);
            heap_push(heap, &hn, (struct vw_entry){ar, ++stamp[a], a});
        }
        if (b + 1 < n) {
            double ar = fmax(tri_area(x, y, a, b, next[b]), e.area);
            heap_push(heap, &hn, (struct vw_entry){ar, ++stamp[b], b});
        }
    }
    rc = 0;
out:
    free(prev);
    free(next);
    free(stamp);
    free(heap);
    return rc;
}

int metrics_roc_curve(const double *scores, const double *labels, size_t n, size_t max_points,
                      struct metrics_curve *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    uint64_t pos;
    int rc = check_binary(scores, labels, n, &pos, err, errlen);
    if (rc == 0)
        rc = check_both_classes("the ROC curve", n, pos, err, errlen);
    if (rc == 0 && max_points == 1) {
        canary_errf(err, errlen, "an ROC curve needs at least 2 points, not 1");
        rc = CANARY_EINVAL;
    }
    if (rc != 0)
        return rc;
    struct pair *p = sorted_pairs(scores, labels, n);
    uint64_t *tps = malloc((n + 1) * sizeof *tps), *fps = malloc((n + 1) * sizeof *fps);
    c->fpr = malloc((n + 1) * sizeof *c->fpr);
    c->tpr = malloc((n + 1) * sizeof *c->tpr);
    c->thresholds = malloc((n + 1) * sizeof *c->thresholds);
    bool *alive = NULL;
    if (p == NULL || tps == NULL || fps == NULL || c->fpr == NULL || c->tpr == NULL ||
        c->thresholds == NULL)
        goto oom;

    /* Every tie-grouped point, from (0, 0) at +inf. */
    size_t m = 0;
    tps[0] = fps[0] = 0;
    c->thresholds[m++] = INFINITY;
    for (size_t i = 0; i < n;) {
        uint64_t tp_g, fp_g;
        double s = p[i].score;
        i = next_group(p, n, i, &tp_g, &fp_g);
        tps[m] = tps[m - 1] + tp_g;
        fps[m] = fps[m - 1] + fp_g;
        c->thresholds[m++] = s;
    }

    if (max_points > 0) {
        /* Drop interior points on the straight line between the last kept point and the
         * next one (exact, in integer counts). */
        size_t k = 1;
        for (size_t i = 1; i < m; i++) {
            if (i + 1 < m) {
                unsigned __int128 a = (unsigned __int128)(fps[i] - fps[k - 1]) *
                                      (tps[i + 1] - tps[i]),
                                  b = (unsigned __int128)(tps[i] - tps[k - 1]) *
                                      (fps[i + 1] - fps[i]);
                if (a == b)
                    continue;
            }
            tps[k] = tps[i];
            fps[k] = fps[i];
            c->thresholds[k++] = c->thresholds[i];
        }
        m = k;
    }
    uint64_t neg = n - pos;
    for (size_t i = 0; i < m; i++) {
        c->fpr[i] = (double)fps[i] / (double)neg;
        c->tpr[i] = (double)tps[i] / (double)pos;
    }
    if (max_points > 0 && m > max_points) {
        alive = malloc(m * sizeof *alive);
        if (alive == NULL || simplify(c->fpr, c->tpr, m, max_points, alive) != 0)
            goto oom;
        size_t k = 0;
        for (size_t i = 0; i < m; i++) {
            if (!alive[i])
                continue;
            c->fpr[k] = c->fpr[i];
            c->tpr[k] = c->tpr[i];
            c->thresholds[k++] = c->thresholds[i];
        }
        m = k;
    }
    c->n_points = m;
    free(p);
    free(tps);
    free(fps);
    free(alive);
    return 0;
oom:
    free(p);
    free(tps);
    free(fps);
    free(alive);
    metrics_curve_free(c);
    canary_errf(err, errlen, "out of memory for an ROC curve of %zu scores", n);
    return CANARY_ENOMEM;
}

/* ---- At one threshold ---- */

/* a / b, 0 when b is 0 (scikit-learn's zero_division=0). */
static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

int metrics_at_threshold(const double *scores, const double *labels, size_t n, double threshold,
                         struct metrics_binary *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    uint64_t pos;
    int rc = check_binary(scores, labels, n, &pos, err, errlen);
    if (rc != 0)
        return rc;
    if (isnan(threshold)) {
        canary_errf(err, errlen, "the threshold is NaN");
        return CANARY_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        bool predicted = scores[i] >= threshold, actual = labels[i] == 1.0;
        m->tp += predicted && actual;
        m->fp += predicted && !actual;
        m->fn += !predicted && actual;
        m->tn += !predicted && !actual;
    }
    m->precision = ratio(m->tp, m->tp + m->fp);
    m->recall = ratio(m->tp, m->tp + m->fn);
    m->f1 = ratio(2 * m->tp, 2 * m->tp + m->fp + m->fn); /* = 2pr/(p+r), as scikit-learn */
    m->fpr = ratio(m->fp, m->fp + m->tn);
    return 0;
}

/* ---- Quantiles ---- */

static int by_value_asc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy's linear interpolation between a and b at t in [0, 1] (numpy/lib/function_base.py
 * _lerp: from b backwards when t >= 0.5, so that t == 1 gives b exactly). */
static double lerp(double a, double b, double t)
{
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

int metrics_quantiles(const double *x, size_t n, const double *q, size_t n_q, double *out,
                      char *err, size_t errlen)
{
    if (n == 0) {
        canary_errf(err, errlen, "no values to take a quantile of");
        return CANARY_EINVAL;
    }
    for (size_t k = 0; k < n_q; k++) {
        if (!(q[k] >= 0 && q[k] <= 1)) {
            canary_errf(err, errlen, "quantile %g is not between 0 and 1", q[k]);
            return CANARY_EINVAL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            canary_errf(err, errlen, "value %zu is NaN", i);
            return CANARY_EINVAL;
        }
    }
    double *s = malloc(n * sizeof *s);
    if (s == NULL) {
        canary_errf(err, errlen, "out of memory sorting %zu values", n);
        return CANARY_ENOMEM;
    }
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, by_value_asc);
    for (size_t k = 0; k < n_q; k++) {
        double h = (double)(n - 1) * q[k];
        double lo = floor(h);
        size_t i = (size_t)lo, j = i + 1 < n ? i + 1 : n - 1;
        out[k] = lerp(s[i], s[j], h - lo);
    }
    free(s);
    return 0;
}

int metrics_quantile(const double *x, size_t n, double q, double *out, char *err, size_t errlen)
{
    return metrics_quantiles(x, n, &q, 1, out, err, errlen);
}

/* ---- Multi-class ---- */

void metrics_multiclass_free(struct metrics_multiclass *m)
{
    free(m->confusion);
    free(m->support);
    free(m->precision);
    free(m->recall);
    free(m->f1);
    memset(m, 0, sizeof *m);
}

static int check_classes(const int *v, const char *what, size_t n, size_t n_classes, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] < 0 || (size_t)v[i] >= n_classes) {
            canary_errf(err, errlen, "row %zu: %s class %d is not in 0..%zu", i, what, v[i],
                        n_classes - 1);
            return CANARY_EINVAL;
        }
    }
    return 0;
}

int metrics_multiclass_eval(const int *truth, const int *pred, size_t n, size_t n_classes,
                            struct metrics_multiclass *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (n == 0 || n_classes == 0) {
        canary_errf(err, errlen, n == 0 ? "no rows to evaluate" : "no classes");
        return CANARY_EINVAL;
    }
    int rc = check_classes(truth, "true", n, n_classes, err, errlen);
    if (rc == 0)
        rc = check_classes(pred, "predicted", n, n_classes, err, errlen);
    if (rc != 0)
        return rc;
    if (n_classes > SIZE_MAX / sizeof(uint64_t) / n_classes) {
        canary_errf(err, errlen, "%zu classes is too many", n_classes);
        return CANARY_EINVAL;
    }
    m->n_classes = n_classes;
    m->n = n;
    m->confusion = calloc(n_classes * n_classes, sizeof *m->confusion);
    m->support = calloc(n_classes, sizeof *m->support);
    m->precision = calloc(n_classes, sizeof *m->precision);
    m->recall = calloc(n_classes, sizeof *m->recall);
    m->f1 = calloc(n_classes, sizeof *m->f1);
    uint64_t *predicted = calloc(n_classes, sizeof *predicted);
    if (m->confusion == NULL || m->support == NULL || m->precision == NULL || m->recall == NULL ||
        m->f1 == NULL || predicted == NULL) {
        free(predicted);
        metrics_multiclass_free(m);
        canary_errf(err, errlen, "out of memory for %zu classes", n_classes);
        return CANARY_ENOMEM;
    }
    uint64_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        m->confusion[(size_t)truth[i] * n_classes + (size_t)pred[i]]++;
        m->support[truth[i]]++;
        predicted[pred[i]]++;
        correct += truth[i] == pred[i];
    }
    m->accuracy = (double)correct / (double)n;
    size_t present = 0;
    double sp = 0, sr = 0, sf = 0;
    for (size_t k = 0; k < n_classes; k++) {
        uint64_t tp = m->confusion[k * n_classes + k];
        m->precision[k] = ratio(tp, predicted[k]);
        m->recall[k] = ratio(tp, m->support[k]);
        m->f1[k] = ratio(2 * tp, m->support[k] + predicted[k]);
        if (m->support[k] == 0 && predicted[k] == 0)
            continue; /* absent from both: not in the macro means */
        present++;
        sp += m->precision[k];
        sr += m->recall[k];
        sf += m->f1[k];
    }
    m->macro_precision = sp / (double)present;
    m->macro_recall = sr / (double)present;
    m->macro_f1 = sf / (double)present;
    free(predicted);
    return 0;
}

int metrics_ovr_roc_auc(const double *scores, const int *truth, size_t n, size_t n_classes,
                        double *per_class, double *macro, char *err, size_t errlen)
{
    if (n == 0 || n_classes == 0) {
        canary_errf(err, errlen, n == 0 ? "no rows to evaluate" : "no classes");
        return CANARY_EINVAL;
    }
    if (n_classes < 2) {
        canary_errf(err, errlen, "one-vs-rest ROC AUC needs at least 2 classes");
        return CANARY_EINVAL;
    }
    int rc = check_classes(truth, "true", n, n_classes, err, errlen);
    if (rc != 0)
        return rc;
    uint64_t *count = calloc(n_classes, sizeof *count);
    struct pair *p = malloc(n * sizeof *p);
    if (count == NULL || p == NULL) {
        free(count);
        free(p);
        canary_errf(err, errlen, "out of memory for %zu rows", n);
        return CANARY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        count[truth[i]]++;
        for (size_t k = 0; k < n_classes; k++) {
            if (isnan(scores[i * n_classes + k])) {
                canary_errf(err, errlen, "row %zu: the score of class %zu is NaN", i, k);
                rc = CANARY_EINVAL;
                goto out;
            }
        }
    }
    for (size_t k = 0; k < n_classes; k++) {
        if (count[k] == 0 || count[k] == n) {
            canary_errf(err, errlen, "one-vs-rest ROC AUC is undefined: %s rows are class %zu",
                        count[k] ? "all" : "no", k);
            rc = CANARY_EINVAL;
            goto out;
        }
    }
    double sum = 0;
    for (size_t k = 0; k < n_classes; k++) {
        for (size_t i = 0; i < n; i++)
            p[i] = (struct pair){scores[i * n_classes + k], (size_t)truth[i] == k ? 1.0 : 0.0};
        qsort(p, n, sizeof *p, by_score_desc);
        double auc = auc_sorted(p, n, count[k]);
        if (per_class != NULL)
            per_class[k] = auc;
        sum += auc;
    }
    if (macro != NULL)
        *macro = sum / (double)n_classes;
out:
    free(count);
    free(p);
    return rc;
}

int metrics_class_ids(const double *labels, size_t n, int *out, size_t *n_classes, char *err,
                      size_t errlen)
{
    if (n == 0) {
        canary_errf(err, errlen, "no labels");
        return CANARY_EINVAL;
    }
    int max = 0;
    for (size_t i = 0; i < n; i++) {
        double v = labels[i];
        if (!(v >= 0 && v < (double)INT_MAX) || v != floor(v)) {
            canary_errf(err, errlen, "row %zu: label %g is not a class (an integer from 0)", i, v);
            return CANARY_EINVAL;
        }
        out[i] = (int)v;
        if (out[i] > max)
            max = out[i];
    }
    *n_classes = (size_t)max + 1;
    return 0;
}
