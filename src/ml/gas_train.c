/* gas_train.c — training of the gas classifier (contract in gas.h): the base learners with
 * XGBoost's C API, the k-fold out-of-fold predictions and the stacking meta-learner.
 *
 * The order of work, for k folds (stratified: each class's rows shuffled with the seed and
 * dealt round-robin, so every fold holds each class in proportion):
 *   1. features of every row, and their mean and standard deviation (the scaling kept in
 *      the model; NaN values are skipped);
 *   2. for each fold f: the three base learners fitted on the rows outside f, then asked
 *      for the rows of f — the out-of-fold (OOF) probabilities, GAS_N_BASE x K per row;
 *   3. the meta-learner fitted on the OOF probabilities only (never on a prediction a base
 *      model made for a row it was trained on: that is the leak that makes a stack trust
 *      its most overfitted member);
 *   4. the three base learners refitted on every row: the models prediction uses.
 * Prediction inside training goes through the same compiled predictor (gas_predict.c) as
 * prediction afterwards. */
#include "ml/gas_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/rng.h"
#include "ml/features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

/* ---- XGBoost ---- */

#define XGB_TRY(call, what)                                                                        \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            canary_errf(err, errlen, "XGBoost: %s: %s", what, XGBGetLastError());                  \
            rc = CANARY_EIO;                                                                       \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static int set_param(BoosterHandle b, const char *k, const char *fmt, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    return XGBoosterSetParam(b, k, buf);
}

/* Fits base learner l on dm and returns its JSON in *json (malloc'd, NUL-terminated). */
static int fit_booster(enum gas_learner l, const struct gas_params *p, DMatrixHandle dm,
                       size_t n_classes, char **json, size_t *json_len, char *err, size_t errlen)
{
    int rc = 0;
    BoosterHandle b = NULL;
    XGB_TRY(XGBoosterCreate(&dm, 1, &b), "create booster");
    int bad = 0;
    bad |= XGBoosterSetParam(b, "verbosity", "0");
    bad |= XGBoosterSetParam(b, "objective", "multi:softprob");
    bad |= set_param(b, "num_class", "%.0f", (double)n_classes);
    bad |= set_param(b, "nthread", "%.0f", p->threads ? (double)p->threads : 1.0);
    bad |= set_param(b, "seed", "%.0f", (double)(p->seed % 2147483647u));
    uint32_t rounds = 1;
    switch (l) {
    case GAS_RF:
        bad |= XGBoosterSetParam(b, "booster", "gbtree");
        bad |= XGBoosterSetParam(b, "tree_method", "hist");
        bad |= set_param(b, "num_parallel_tree", "%.0f", p->rf_trees);
        bad |= set_param(b, "max_depth", "%.0f", p->rf_depth);
        bad |= set_param(b, "subsample", "%.17g", p->rf_subsample);
        bad |= set_param(b, "colsample_bynode", "%.17g", p->rf_colsample);
        bad |= XGBoosterSetParam(b, "eta", "1");
        bad |= XGBoosterSetParam(b, "lambda", "1e-5"); /* as XGBRFClassifier */
        break;
    case GAS_GBT:
        bad |= XGBoosterSetParam(b, "booster", "gbtree");
        bad |= XGBoosterSetParam(b, "tree_method", "hist");
        bad |= set_param(b, "max_depth", "%.0f", p->gbt_depth);
        bad |= set_param(b, "eta", "%.17g", p->gbt_eta);
        rounds = p->gbt_rounds;
        break;
    default:
        bad |= XGBoosterSetParam(b, "booster", "gblinear");
        /* coord_descent, not the default shotgun: shotgun's threads race, the result would
         * depend on the thread count and the scheduler. */
        bad |= XGBoosterSetParam(b, "updater", "coord_descent");
        bad |= set_param(b, "lambda", "%.17g", p->lr_lambda);
        bad |= XGBoosterSetParam(b, "alpha", "0");
        rounds = p->lr_rounds;
        break;
    }
    XGB_TRY(bad, "set parameters");
    for (uint32_t i = 0; i < rounds; i++)
        XGB_TRY(XGBoosterUpdateOneIter(b, (int)i, dm), "training");
    bst_ulong len = 0;
    const char *buf = NULL;
    XGB_TRY(XGBoosterSaveModelToBuffer(b, "{\"format\":\"json\"}", &len, &buf), "save model");
    /* The buffer belongs to the booster and dies with its next call: copy it now. */
    *json = malloc((size_t)len + 1);
    if (!*json) {
        rc = CANARY_ENOMEM;
        goto out;
    }
    memcpy(*json, buf, (size_t)len);
    (*json)[len] = '\0';
    *json_len = (size_t)len;
out:
    if (b)
        XGBoosterFree(b);
    return rc;
}

/* A DMatrix of the rows r with use[r] (all when use is NULL). */
static int make_dmatrix(const float *z, const int *y, size_t n_rows, size_t F, const uint32_t *fold,
                        uint32_t skip_fold, DMatrixHandle *dm, char *err, size_t errlen)
{
    int rc = 0;
    size_t n = 0;
    for (size_t r = 0; r < n_rows; r++)
        n += !fold || fold[r] != skip_fold;
    float *xs = malloc((n ? n : 1) * F * sizeof *xs);
    float *ys = malloc((n ? n : 1) * sizeof *ys);
    if (!xs || !ys) {
        rc = CANARY_ENOMEM;
        goto out;
    }
    n = 0;
    for (size_t r = 0; r < n_rows; r++) {
        if (fold && fold[r] == skip_fold)
            continue;
        memcpy(xs + n * F, z + r * F, F * sizeof *xs);
        ys[n++] = (float)y[r];
    }
    XGB_TRY(XGDMatrixCreateFromMat(xs, (bst_ulong)n, (bst_ulong)F, NAN, dm), "matrix");
    XGB_TRY(XGDMatrixSetFloatInfo(*dm, "label", ys, (bst_ulong)n), "labels");
out:
    free(xs);
    free(ys);
    return rc;
}

/* ---- the meta-learner: multinomial logistic regression ---- */

/* Minimises the mean cross-entropy of softmax(W [s; 1]) plus ||W without bias||^2 / (2 C n)
 * (scikit-learn's LogisticRegression(C) objective divided by n) by Nesterov's accelerated
 * gradient with step 1/L, L = max ||[s; 1]||^2 / 2 + lambda bounding the Hessian. Full
 * batch, fixed order: deterministic. w: K x (D + 1). */
static int fit_meta(const double *s, const int *y, size_t n, size_t K, double c, double *w)
{
    const size_t D = GAS_N_BASE * K, W = K * (D + 1);
    const double lambda = 1.0 / (c * (double)n);
    double maxsq = 0;
    for (size_t r = 0; r < n; r++) {
        double sq = 1;
        for (size_t j = 0; j < D; j++)
            sq += s[r * D + j] * s[r * D + j];
        maxsq = sq > maxsq ? sq : maxsq;
    }
    const double step = 1.0 / (0.5 * maxsq + lambda);
    double *v = calloc(W, sizeof *v), *prev = calloc(W, sizeof *prev);
    double *grad = calloc(W, sizeof *grad);
    if (!v || !prev || !grad) {
        free(v), free(prev), free(grad);
        return CANARY_ENOMEM;
    }
    memset(w, 0, W * sizeof *w);
    double p[GAS_MAX_CLASSES];
    for (int it = 0; it < 2000; it++) {
        /* v = w + (it - 1)/(it + 2) (w - prev): the look-ahead point. */
        double mom = it ? (double)(it - 1) / (it + 2) : 0;
        for (size_t i = 0; i < W; i++)
            v[i] = w[i] + mom * (w[i] - prev[i]);
        memset(grad, 0, W * sizeof *grad);
        for (size_t r = 0; r < n; r++) {
            const double *sr = s + r * D;
            gas__meta_proba(v, K, sr, p);
            for (size_t k = 0; k < K; k++) {
                double g = (p[k] - (y[r] == (int)k)) / (double)n;
                double *gk = grad + k * (D + 1);
                for (size_t j = 0; j < D; j++)
                    gk[j] += g * sr[j];
                gk[D] += g;
            }
        }
        double norm = 0;
        for (size_t k = 0; k < K; k++)
            for (size_t j = 0; j < D; j++)
                grad[k * (D + 1) + j] += lambda * v[k * (D + 1) + j];
        for (size_t i = 0; i < W; i++)
            norm += grad[i] * grad[i];
        memcpy(prev, w, W * sizeof *w);
        for (size_t i = 0; i < W; i++)
            w[i] = v[i] - step * grad[i];
        if (norm < 1e-14)
            break;
    }
    free(v), free(prev), free(grad);
    return 0;
}

/* ---- training ---- */

void gas_report_free(struct gas_report *r)
{
    if (!r)
        return;
    free(r->fold);
    free(r->oof);
    memset(r, 0, sizeof *r);
}

static int check_args(size_t n_rows, size_t n_inputs, const int *y, size_t n_classes,
                      const char *const *input_names, const char *const *class_names,
                      const struct gas_params *p, size_t *count, char *err, size_t errlen)
{
    if (n_inputs < 1 || n_inputs > GAS_MAX_INPUTS) {
        canary_errf(err, errlen, "%zu inputs: need 1 to %d", n_inputs, GAS_MAX_INPUTS);
        return CANARY_EINVAL;
    }
    if (n_classes < 2 || n_classes > GAS_MAX_CLASSES) {
        canary_errf(err, errlen, "%zu classes: need 2 to %d", n_classes, GAS_MAX_CLASSES);
        return CANARY_EINVAL;
    }
    if (p->folds < 2 || p->folds > GAS_MAX_FOLDS || p->rf_trees < 1 || p->rf_trees > 10000 ||
        p->gbt_rounds < 1 || p->gbt_rounds > 10000 || p->lr_rounds < 1 || p->lr_rounds > 100000 ||
        p->rf_depth < 1 || p->rf_depth > 30 || p->gbt_depth < 1 || p->gbt_depth > 30 ||
        !(p->rf_subsample > 0 && p->rf_subsample <= 1) ||
        !(p->rf_colsample > 0 && p->rf_colsample <= 1) || !(p->gbt_eta > 0 && p->gbt_eta <= 1) ||
        !(p->lr_lambda >= 0 && p->lr_lambda < 1e6) || !(p->meta_c > 0 && p->meta_c < 1e12) ||
        (unsigned)p->features > GAS_FEATURES_BOTH || p->threads > 1024 ||
        p->window > FEATURE_WINDOW_MAX) {
        canary_errf(err, errlen, "a training parameter is out of range");
        return CANARY_EINVAL;
    }
    if (p->window && ((p->window_stats & ~(uint32_t)GAS_WINDOW_ALL) || !p->window_stats ||
                      ((p->window_stats & GAS_WINDOW_SLOPE) && p->window < 2))) {
        canary_errf(err, errlen,
                    "window features: mean, slope or both (the slope needs a window of 2 or "
                    "more)");
        return CANARY_EINVAL;
    }
    for (size_t i = 0; i < n_inputs; i++) {
        if (!input_names || !input_names[i] || !*input_names[i] ||
            strlen(input_names[i]) >= GAS_NAME_MAX) {
            canary_errf(err, errlen, "input %zu: a name of 1 to %d bytes is needed", i,
                        GAS_NAME_MAX - 1);
            return CANARY_EINVAL;
        }
    }
    for (size_t k = 0; k < n_classes; k++) {
        if (!class_names || !class_names[k] || !*class_names[k] ||
            strlen(class_names[k]) >= GAS_NAME_MAX) {
            canary_errf(err, errlen, "class %zu: a name of 1 to %d bytes is needed", k,
                        GAS_NAME_MAX - 1);
            return CANARY_EINVAL;
        }
    }
    for (size_t r = 0; r < n_rows; r++) {
        if (y[r] < 0 || (size_t)y[r] >= n_classes) {
            canary_errf(err, errlen, "row %zu: class %d is not in 0..%zu", r, y[r], n_classes - 1);
            return CANARY_EINVAL;
        }
        count[y[r]]++;
    }
    for (size_t k = 0; k < n_classes; k++) {
        if (count[k] < p->folds) {
            canary_errf(err, errlen,
                        "class '%s' has %zu training rows: at least %u (the folds) are needed",
                        class_names[k], count[k], p->folds);
            return CANARY_EINVAL;
        }
    }
    return 0;
}

/* Deals each class's rows, shuffled, round-robin into the folds. */
static void assign_folds(const int *y, size_t n_rows, size_t n_classes, uint32_t folds,
                         uint64_t seed, size_t *idx, uint32_t *fold)
{
    struct rng g;
    rng_seed_state(&g, seed ^ 0x6761735f666f6c64ull); /* "gas_fold" */
    for (size_t k = 0; k < n_classes; k++) {
        size_t n = 0;
        for (size_t r = 0; r < n_rows; r++)
            if (y[r] == (int)k)
                idx[n++] = r;
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)(rng_next(&g) % i);
            size_t t = idx[i - 1];
            idx[i - 1] = idx[j];
            idx[j] = t;
        }
        for (size_t i = 0; i < n; i++)
            fold[idx[i]] = (uint32_t)(i % folds);
    }
}

static void progress(const struct gas_params *p, size_t done, size_t total)
{
    if (p->progress)
        p->progress(p->progress_arg, done, total);
}

/* Fits the three base learners on the rows outside skip_fold (all rows when fold is NULL)
 * and compiles them into m. */
static int fit_bases(struct gas_model *m, const struct gas_params *p, const float *zf, const int *y,
                     size_t n_rows, const uint32_t *fold, uint32_t skip_fold, size_t *done,
                     size_t total, char *err, size_t errlen)
{
    DMatrixHandle dm = NULL;
    int rc = make_dmatrix(zf, y, n_rows, m->n_features, fold, skip_fold, &dm, err, errlen);
    for (int l = 0; l < GAS_N_BASE && !rc; l++) {
        int64_t t0 = clock_mono_ns();
        free(m->json[l]);
        m->json[l] = NULL;
        rc = fit_booster((enum gas_learner)l, p, dm, m->n_classes, &m->json[l], &m->json_len[l],
                         err, errlen);
        if (!rc) {
            free(m->forest[l].start), free(m->forest[l].group), free(m->forest[l].nodes);
            memset(&m->forest[l], 0, sizeof m->forest[l]);
            if (l == GAS_LR) {
                free(m->lin_w);
                m->lin_w = NULL;
            }
            rc = gas__compile(m, (enum gas_learner)l, m->json[l], m->json_len[l], err, errlen);
        }
        m->meta.learner_fit_s[l] = (double)(clock_mono_ns() - t0) / 1e9;
        progress(p, ++*done, total);
    }
    if (dm)
        XGDMatrixFree(dm);
    return rc;
}

int gas_train(const double *x, size_t n_rows, size_t n_inputs, const int *y, size_t n_classes,
              const char *const *input_names, const char *const *class_names,
              const struct gas_params *params, const char *source, struct gas_model **out,
              struct gas_report *report, char *err, size_t errlen)
{
    *out = NULL;
    if (report)
        memset(report, 0, sizeof *report);
    struct gas_params p;
    if (params)
        p = *params;
    else
        gas_params_default(&p);
    size_t count[GAS_MAX_CLASSES] = {0};
    int rc = check_args(n_rows, n_inputs, y, n_classes, input_names, class_names, &p, count, err,
                        errlen);
    if (rc)
        return rc;
    const int64_t t0 = clock_mono_ns();
    if (!p.window)
        p.window_stats = 0; /* no window, no window features: one form per model */
    struct gas_model *m = gas__alloc(n_inputs, n_classes, p.features, p.window, p.window_stats);
    const size_t row_len = gas_row_len_for(n_inputs, p.window, p.window_stats);
    const size_t F = m ? m->n_features : 0, K = n_classes, D = GAS_N_BASE * K;
    double *z = m ? malloc(n_rows * F * sizeof *z) : NULL;
    float *zf = m ? malloc(n_rows * F * sizeof *zf) : NULL;
    size_t *idx = malloc(n_rows * sizeof *idx);
    uint32_t *fold = malloc(n_rows * sizeof *fold);
    double *oof = malloc(n_rows * D * sizeof *oof);
    if (!m || !z || !zf || !idx || !fold || !oof) {
        rc = CANARY_ENOMEM;
        goto out;
    }
    m->params = p;
    m->params.progress = NULL;
    m->params.progress_arg = NULL;
    for (size_t i = 0; i < n_inputs; i++)
        snprintf(m->input_names[i], GAS_NAME_MAX, "%s", input_names[i]);
    for (size_t k = 0; k < K; k++)
        snprintf(m->class_names[k], GAS_NAME_MAX, "%s", class_names[k]);
    snprintf(m->meta.source, sizeof m->meta.source, "%s", source ? source : "");
    m->meta.n_rows = n_rows;
    m->meta.created_ms = clock_wall_ms();

    /* 1. Features and their scaling. */
    for (size_t r = 0; r < n_rows; r++) {
        for (size_t i = 0; i < row_len; i++) {
            if (isinf(x[r * row_len + i])) {
                canary_errf(err, errlen, "row %zu, input '%s'%s: infinite value", r,
                            input_names[i % n_inputs],
                            i >= 2 * n_inputs ? " (slope)"
                            : i >= n_inputs   ? " (mean)"
                                              : "");
                rc = CANARY_EINVAL;
                goto out;
            }
        }
        gas__features(p.features, n_inputs, p.window, p.window_stats, x + r * row_len, z + r * F);
    }
    for (size_t j = 0; j < F; j++) {
        double sum = 0, sq = 0;
        size_t n = 0;
        for (size_t r = 0; r < n_rows; r++) {
            double v = z[r * F + j];
            if (!isnan(v))
                sum += v, n++;
        }
        double mean = n ? sum / (double)n : 0;
        for (size_t r = 0; r < n_rows; r++) {
            double v = z[r * F + j];
            if (!isnan(v))
                sq += (v - mean) * (v - mean);
        }
        double sd = n ? sqrt(sq / (double)n) : 0;
        m->mean[j] = mean;
        m->inv_sd[j] = sd > 1e-12 ? 1 / sd : 1; /* a constant feature stays 0 */
        for (size_t r = 0; r < n_rows; r++) {
            z[r * F + j] = (z[r * F + j] - mean) * m->inv_sd[j];
            zf[r * F + j] = gas__to_float(z[r * F + j]);
        }
    }

    /* 2. Out-of-fold probabilities. */
    assign_folds(y, n_rows, K, p.folds, p.seed, idx, fold);
    size_t done = 0, total = (size_t)(p.folds + 1) * GAS_N_BASE;
    progress(&p, 0, total);
    for (uint32_t f = 0; f < p.folds; f++) {
        rc = fit_bases(m, &p, zf, y, n_rows, fold, f, &done, total, err, errlen);
        if (rc)
            goto out;
        for (size_t r = 0; r < n_rows; r++) {
            if (fold[r] != f)
                continue;
            for (int l = 0; l < GAS_N_BASE; l++)
                gas__base_proba(m, (enum gas_learner)l, z + r * F, zf + r * F,
                                oof + r * D + (size_t)l * K);
        }
    }

    /* 3. The meta-learner, on out-of-fold probabilities only. */
    rc = fit_meta(oof, y, n_rows, K, p.meta_c, m->meta_w);
    if (rc)
        goto out;

    /* 4. The base learners on every row. */
    rc = fit_bases(m, &p, zf, y, n_rows, NULL, 0, &done, total, err, errlen);
    if (rc)
        goto out;

    size_t right[GAS_N_LEARNERS] = {0};
    for (size_t r = 0; r < n_rows; r++) {
        double pr[GAS_MAX_CLASSES];
        for (int l = 0; l <= GAS_N_BASE; l++) {
            const double *q = oof + r * D + (size_t)l * K;
            if (l == GAS_STACK) {
                gas__meta_proba(m->meta_w, K, oof + r * D, pr);
                q = pr;
            }
            size_t best = 0;
            for (size_t k = 1; k < K; k++)
                best = q[k] > q[best] ? k : best;
            right[l] += (int)best == y[r];
        }
    }
    for (int l = 0; l < GAS_N_LEARNERS; l++)
        m->meta.oof_accuracy[l] = (double)right[l] / (double)n_rows;
    m->meta.fit_s = (double)(clock_mono_ns() - t0) / 1e9;

    if (report) {
        report->n_rows = n_rows;
        report->n_classes = K;
        report->fold = fold;
        report->oof = oof;
        fold = NULL;
        oof = NULL;
    }
    *out = m;
    m = NULL;
out:
    gas_free(m);
    free(z);
    free(zf);
    free(idx);
    free(fold);
    free(oof);
    return rc;
}
