/* bench_gas.c — canary's gas classifier on the gas-sensor data: accuracy and speed.
 *
 * The canary half of bench/gas.sh (bench/gas_sklearn.py is the scikit-learn half, on the
 * very same rows: this program writes the splits it uses to --splits FILE and the script
 * reads them). The CSV (../shared/data/gas/gas_train.csv: Serial Number, MQ2..MQ135, Gas)
 * is loaded with dataset_load_csv (not timed). Two splits, test share --test-frac (0.2):
 *   time    the latest 20% of each class's series (by Serial Number) held out: the honest
 *           one, later readings are what a deployed model meets;
 *   random  stratified random 20%, seed --seed: neighbours of each test row are in the
 *           training set, so this flatters every model.
 * For each split: gas_train (defaults, --seed, --features) timed; then every learner
 * (random forest, logistic regression, gradient boosting, stack) predicts the test rows
 * one at a time (gas_predict_row, the path canaryd takes): accuracy and macro F1
 * (metrics_multiclass_eval, as scikit-learn's), and the mean ns per row over --reps passes.
 * It checks that a second training with the same seed gives the same boosters, and times
 * XGBoost's own one-row prediction of each base learner on the same rows (a comment line),
 * the reason canary walks the trees itself.
 *
 * Output, one line per measurement ('#' lines are comments):
 *   run canary SPLIT LEARNER ACCURACY MACRO_F1 FIT_MS PREDICT_NS_PER_ROW
 * FIT_MS of a base learner is its final fit on the training rows; the stack's is the whole
 * gas_train (k-fold out-of-fold fits of all three, the meta-learner, the refits).
 * Rows carry each channel's mean (and with --window-features slope or mean,slope its slope)
 * over the last --window readings (default: gas.h's, 24) of its class's recording
 * (gas_window_rows; the file holds each class's series in time order). The cost of the
 * window itself (gas_stream_push per reading, what canaryd adds to each prediction) is
 * printed as a comment. --quick skips the determinism retraining and XGBoost's timings.
 * Usage: bench_gas [--seed S] [--test-frac F] [--features raw|logratio|both] [--window N]
 *                  [--window-features mean|slope|mean,slope] [--rf-trees N] [--rf-depth D]
 *                  [--gbt-depth D] [--lr-rounds N] [--reps N] [--quick] [--splits FILE] CSV */
#include "core/clock.h"
#include "ml/dataset.h"
#include "ml/gas.h"
#include "ml/gas_internal.h" /* the scaled features, to feed XGBoost the same */
#include "ml/metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

static const char *const inputs[] = {"MQ2", "MQ3", "MQ5", "MQ6", "MQ7", "MQ8", "MQ135"};
#define N_IN 7
static size_t L = N_IN; /* values per row: with a window, the readings, means (and slopes) */
static bool quick;      /* --quick */

/* XGBoost's own single-row prediction of base learner l (XGBoosterPredictFromDense, the
 * in-place path, one row per call) on the n test rows: mean ns per row, the measurement that
 * decides whether canary walks the trees itself. -1 when XGBoost fails. */
static double xgboost_row_ns(const struct gas_model *m, enum gas_learner l, const double *x,
                             size_t n)
{
    const char *json;
    size_t len;
    gas_booster_json(m, l, &json, &len);
    BoosterHandle b;
    if (XGBoosterCreate(NULL, 0, &b) || XGBoosterLoadModelFromBuffer(b, json, len))
        return -1;
    XGBoosterSetParam(b, "nthread", "1");
    const size_t F = m->n_features, row_len = gas_row_len(m);
    float *zf = malloc(n * F * sizeof *zf);
    double z[6 * GAS_MAX_INPUTS];
    for (size_t r = 0; r < n; r++) {
        gas__features(m->params.features, m->n_inputs, m->params.window, m->params.window_stats,
                      x + r * row_len, z);
        for (size_t j = 0; j < F; j++)
            zf[r * F + j] = gas__to_float((z[j] - m->mean[j]) * m->inv_sd[j]);
    }
    const char *config =
        "{\"type\":0,\"training\":false,\"iteration_begin\":0,"
        "\"iteration_end\":0,\"strict_shape\":true,\"cache_id\":0,\"missing\":NaN}";
    double ns = -1;
    int64_t t0 = clock_mono_ns();
    size_t r = 0;
    for (; r < n; r++) {
        char iface[256];
        snprintf(iface, sizeof iface,
                 "{\"data\":[%llu,true],\"shape\":[1,%zu],\"typestr\":\"<f4\",\"version\":3}",
                 (unsigned long long)(uintptr_t)(zf + r * F), F);
        const bst_ulong *shape;
        bst_ulong dim;
        const float *res;
        if (XGBoosterPredictFromDense(b, iface, config, NULL, &shape, &dim, &res))
            break;
    }
    if (r == n)
        ns = (double)(clock_mono_ns() - t0) / (double)n;
    else
        fprintf(stderr, "bench_gas: XGBoost: %s\n", XGBGetLastError());
    XGBoosterFree(b);
    free(zf);
    return ns;
}

static int run_split(const char *name, const struct dataset *d, const double *x, const int *y,
                     const uint8_t *is_test, const struct gas_params *p, unsigned reps,
                     const char *source)
{
    char err[512];
    size_t n_tr = 0, n_te = 0;
    for (size_t r = 0; r < d->n_rows; r++)
        is_test[r] ? n_te++ : n_tr++;
    double *xtr = malloc(n_tr * L * sizeof *xtr), *xte = malloc(n_te * L * sizeof *xte);
    int *ytr = malloc(n_tr * sizeof *ytr), *yte = malloc(n_te * sizeof *yte);
    int *pred = malloc(n_te * sizeof *pred);
    double *proba = malloc(d->n_classes * sizeof *proba);
    if (!xtr || !xte || !ytr || !yte || !pred || !proba)
        return 1;
    size_t a = 0, b = 0;
    for (size_t r = 0; r < d->n_rows; r++) {
        if (is_test[r]) {
            memcpy(xte + b * L, x + r * L, L * sizeof *x);
            yte[b++] = y[r];
        } else {
            memcpy(xtr + a * L, x + r * L, L * sizeof *x);
            ytr[a++] = y[r];
        }
    }
    struct gas_model *m = NULL, *m2 = NULL;
    int64_t t0 = clock_mono_ns();
    int rc = gas_train(xtr, n_tr, N_IN, ytr, d->n_classes, inputs,
                       (const char *const *)d->class_names, p, source, &m, NULL, err, sizeof err);
    double fit_ms = (double)(clock_mono_ns() - t0) / 1e6;
    if (rc) {
        fprintf(stderr, "bench_gas: %s\n", err);
        return 1;
    }
    /* Determinism: the same rows and seed give the same bundle (creation time aside). */
    rc = quick ? 1
               : gas_train(xtr, n_tr, N_IN, ytr, d->n_classes, inputs,
                           (const char *const *)d->class_names, p, source, &m2, NULL, err,
                           sizeof err);
    if (!rc) {
        void *b1, *b2;
        size_t l1, l2;
        const char *j1, *j2;
        size_t jl1, jl2;
        bool same = true;
        for (int l = 0; l < GAS_N_BASE; l++) {
            gas_booster_json(m, (enum gas_learner)l, &j1, &jl1);
            gas_booster_json(m2, (enum gas_learner)l, &j2, &jl2);
            same = same && jl1 == jl2 && !memcmp(j1, j2, jl1);
        }
        if (!gas_save_buffer(m, &b1, &l1, err, sizeof err) &&
            !gas_save_buffer(m2, &b2, &l2, err, sizeof err)) {
            printf("# %s: bundle %zu bytes; same seed, same boosters: %s\n", name, l1,
                   same ? "yes" : "NO");
            free(b1);
            free(b2);
        }
        gas_free(m2);
    }
    const struct gas_meta *meta = gas_model_meta(m);
    for (int l = 0; l < GAS_N_LEARNERS; l++) {
        for (size_t i = 0; i < n_te; i++)
            pred[i] = gas_predict_row(m, (enum gas_learner)l, xte + i * L, proba);
        volatile int sink = 0;
        int64_t s0 = clock_mono_ns();
        for (unsigned rep = 0; rep < reps; rep++)
            for (size_t i = 0; i < n_te; i++)
                sink += gas_predict_row(m, (enum gas_learner)l, xte + i * L, proba);
        double ns = (double)(clock_mono_ns() - s0) / ((double)reps * (double)n_te);
        (void)sink;
        struct metrics_multiclass mc;
        if (metrics_multiclass_eval(yte, pred, n_te, d->n_classes, &mc, err, sizeof err)) {
            fprintf(stderr, "bench_gas: %s\n", err);
            return 1;
        }
        double fms = l == GAS_STACK ? fit_ms : meta->learner_fit_s[l] * 1e3;
        printf("run canary %s %s %.6f %.6f %.1f %.0f\n", name,
               gas_learner_name((enum gas_learner)l), mc.accuracy, mc.macro_f1, fms, ns);
        metrics_multiclass_free(&mc);
    }
    /* gblinear has no in-place prediction in XGBoost 1.7: the trees only. */
    if (!quick)
        printf("# %s: XGBoost's own one-row prediction (XGBoosterPredictFromDense, one thread): "
               "rf %.0f ns, gbt %.0f ns per row\n",
               name, xgboost_row_ns(m, GAS_RF, xte, n_te), xgboost_row_ns(m, GAS_GBT, xte, n_te));
    printf("# %s: out-of-fold accuracy rf %.4f lr %.4f gbt %.4f stack %.4f\n", name,
           meta->oof_accuracy[0], meta->oof_accuracy[1], meta->oof_accuracy[2],
           meta->oof_accuracy[3]);
    fflush(stdout);
    gas_free(m);
    free(xtr), free(xte), free(ytr), free(yte), free(pred), free(proba);
    return 0;
}

int main(int argc, char **argv)
{
    struct gas_params p;
    gas_params_default(&p);
    double test_frac = 0.2;
    unsigned reps = 20;
    const char *splits_path = NULL, *csv = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--seed") && v)
            p.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--test-frac") && v)
            test_frac = atof(argv[++i]);
        else if (!strcmp(argv[i], "--window") && v)
            p.window = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--window-features") && v) {
            if (!gas_window_stats_parse(argv[++i], &p.window_stats)) {
                fprintf(stderr, "bench_gas: --window-features is mean, slope or mean,slope\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--rf-trees") && v)
            p.rf_trees = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rf-depth") && v)
            p.rf_depth = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lr-rounds") && v)
            p.lr_rounds = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gbt-depth") && v)
            p.gbt_depth = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && v)
            reps = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--splits") && v)
            splits_path = argv[++i];
        else if (!strcmp(argv[i], "--features") && v) {
            i++;
            p.features = !strcmp(argv[i], "raw")    ? GAS_FEATURES_RAW
                         : !strcmp(argv[i], "both") ? GAS_FEATURES_BOTH
                                                    : GAS_FEATURES_LOGRATIO;
        } else if (argv[i][0] != '-' && !csv)
            csv = argv[i];
        else {
            fprintf(stderr, "usage: bench_gas [--seed S] [--test-frac F] [--features "
                            "raw|logratio|both] [--reps N] [--splits FILE] CSV\n");
            return 2;
        }
    }
    if (!csv) {
        fprintf(stderr, "bench_gas: no CSV given\n");
        return 2;
    }
    const char *cols[] = {"Serial Number", "MQ2", "MQ3", "MQ5", "MQ6", "MQ7", "MQ8", "MQ135"};
    struct dataset_options o = {
        .label_column = "Gas", .value_columns = cols, .n_value_columns = 8, .label_classes = true};
    struct dataset d;
    char err[512];
    if (dataset_load_csv(&d, csv, &o, err, sizeof err)) {
        fprintf(stderr, "bench_gas: %s\n", err);
        return 1;
    }
    const size_t n = d.n_rows;
    double *t = malloc(n * sizeof *t), *x = malloc(n * L * sizeof *x);
    int *y = malloc(n * sizeof *y);
    uint8_t *time_test = malloc(n), *rand_test = malloc(n);
    if (!t || !x || !y || !time_test || !rand_test)
        return 1;
    double *raw = malloc(n * N_IN * sizeof *raw);
    uint32_t *series = malloc(n * sizeof *series);
    if (!raw || !series)
        return 1;
    for (size_t r = 0; r < n; r++) {
        t[r] = d.x[r * 8];
        memcpy(raw + r * N_IN, d.x + r * 8 + 1, N_IN * sizeof *raw);
        y[r] = (int)d.labels[r];
        series[r] = (uint32_t)y[r]; /* each class is one recording, in time order */
    }
    L = gas_row_len_for(N_IN, p.window, p.window_stats);
    free(x);
    x = malloc(n * L * sizeof *x);
    if (!x || gas_window_rows(p.window, p.window_stats, N_IN, raw, n, series, x, err, sizeof err)) {
        fprintf(stderr, "bench_gas: window rows: %s\n", err);
        return 1;
    }
    /* The window's own cost per reading: every row pushed through one live stream, reps
     * times (what canaryd's worker adds to gas_predict_row for each reading). */
    if (p.window) {
        struct gas_stream *st = gas_stream_new(N_IN, p.window, p.window_stats);
        double row[3 * N_IN];
        volatile double sink = 0;
        int64_t s0 = clock_mono_ns();
        for (unsigned rep = 0; st && rep < reps; rep++)
            for (size_t r = 0; r < n; r++) {
                gas_stream_push(st, raw + r * N_IN, row);
                sink += row[L - 1];
            }
        (void)sink;
        printf("# window: gas_stream_push %.0f ns per reading (%s over %u readings)\n",
               (double)(clock_mono_ns() - s0) / ((double)reps * (double)n),
               gas_window_stats_name(p.window_stats), p.window);
        gas_stream_free(st);
    }
    free(raw);
    free(series);
    if (gas_split_time(t, y, n, d.n_classes, test_frac, time_test, err, sizeof err) ||
        gas_split_random(y, n, d.n_classes, test_frac, p.seed, rand_test, err, sizeof err)) {
        fprintf(stderr, "bench_gas: %s\n", err);
        return 1;
    }
    if (splits_path) {
        FILE *f = fopen(splits_path, "w");
        if (!f) {
            perror(splits_path);
            return 1;
        }
        fprintf(f, "time ");
        for (size_t r = 0; r < n; r++)
            fputc('0' + time_test[r], f);
        fprintf(f, "\nrandom ");
        for (size_t r = 0; r < n; r++)
            fputc('0' + rand_test[r], f);
        fprintf(f, "\n");
        fclose(f);
    }
    printf("# gas: %zu rows, %zu classes, features %s, window %u (%s), seed %llu, %u folds\n", n,
           d.n_classes, gas_features_name(p.features), p.window,
           p.window ? gas_window_stats_name(p.window_stats) : "none", (unsigned long long)p.seed,
           p.folds);
    int rc = run_split("time", &d, x, y, time_test, &p, reps, "gas_train.csv") ||
             run_split("random", &d, x, y, rand_test, &p, reps, "gas_train.csv");
    dataset_free(&d);
    free(t), free(x), free(y), free(time_test), free(rand_test);
    return rc;
}
