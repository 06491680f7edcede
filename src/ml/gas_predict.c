/* gas_predict.c — the gas classifier's prediction: features of a reading, the base learners'
 * class probabilities from their compiled forms, and the stack's (contract in gas.h).
 *
 * Promises: no allocation and no lock (the model is read-only here), so canaryd's workers
 * may share one model; the trees compare the float value of a feature with the float split
 * value, as XGBoost does, so the probabilities match XGBoost's own predictions to float
 * rounding (tests/unit/test_gas.c checks it). */
#include "ml/gas_internal.h"

#include <math.h>
#include <string.h>

size_t gas__n_features(enum gas_features f, size_t n_inputs, uint32_t window, uint32_t stats)
{
    size_t per = f == GAS_FEATURES_BOTH ? 2 * n_inputs : n_inputs;
    if (!window)
        return per;
    return per * (1 + ((stats & GAS_WINDOW_MEAN) ? 1 : 0) + ((stats & GAS_WINDOW_SLOPE) ? 1 : 0));
}

/* Centred log-ratio (Aitchison 1986): log x_i minus the mean log over the inputs. It keeps
 * the ratios between sensors and drops their common level. */
static void logratio(size_t n, const double *x, double *out)
{
    /* A missing input leaves its own feature NaN; the others are centred on the mean of
     * what is there (the best guess of the common level). */
    double sum = 0;
    size_t have = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]))
            continue;
        out[i] = log(x[i] > 1e-6 ? x[i] : 1e-6);
        sum += out[i];
        have++;
    }
    double mean = have ? sum / (double)have : 0;
    for (size_t i = 0; i < n; i++)
        out[i] = isnan(x[i]) ? NAN : out[i] - mean;
}

static void transform(enum gas_features f, size_t n_inputs, const double *x, double *out)
{
    switch (f) {
    case GAS_FEATURES_RAW:
        memcpy(out, x, n_inputs * sizeof *x);
        break;
    case GAS_FEATURES_LOGRATIO:
        logratio(n_inputs, x, out);
        break;
    case GAS_FEATURES_BOTH:
        memcpy(out, x, n_inputs * sizeof *x);
        logratio(n_inputs, x, out + n_inputs);
        break;
    }
}

/* The slopes' features: slope / mean (the relative change per reading; the mean clamped to
 * 1e-6 as the log-ratios clamp values) for the log-ratio transform, the slope for raw. */
static void slopes(enum gas_features f, size_t n, const double *mean, const double *slope,
                   double *out)
{
    if (f != GAS_FEATURES_LOGRATIO) {
        memcpy(out, slope, n * sizeof *slope);
        out += n;
    }
    if (f == GAS_FEATURES_RAW)
        return;
    for (size_t i = 0; i < n; i++)
        out[i] = slope[i] / (mean[i] > 1e-6 ? mean[i] : 1e-6);
}

void gas__features(enum gas_features f, size_t n_inputs, uint32_t window, uint32_t stats,
                   const double *x, double *out)
{
    const size_t per = gas__n_features(f, n_inputs, 0, 0);
    transform(f, n_inputs, x, out);
    if (!window)
        return;
    out += per;
    if (stats & GAS_WINDOW_MEAN) {
        transform(f, n_inputs, x + n_inputs, out);
        out += per;
    }
    if (stats & GAS_WINDOW_SLOPE)
        slopes(f, n_inputs, x + n_inputs, x + 2 * n_inputs, out);
}

void gas__softmax(double *v, size_t n)
{
    double mx = v[0];
    for (size_t i = 1; i < n; i++)
        mx = v[i] > mx ? v[i] : mx;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = exp(v[i] - mx);
        sum += v[i];
    }
    for (size_t i = 0; i < n; i++)
        v[i] /= sum;
}

/* Sums each tree's leaf into its class's margin. Rows without a missing value (the usual
 * case) take the loop without the NaN test. */
static void forest_margins(const struct gas_forest *f, const float *zf, size_t n_features,
                           double *margin)
{
    bool any_nan = false;
    for (size_t j = 0; j < n_features; j++)
        any_nan |= isnan(zf[j]);
    for (uint32_t t = 0; t < f->n_trees; t++) {
        const struct gas_node *nodes = f->nodes + f->start[t];
        int32_t i = 0;
        if (!any_nan) {
            while (nodes[i].left != GAS_LEAF) {
                const struct gas_node *nd = &nodes[i];
                i = zf[nd->feature & ~GAS_DEFAULT_LEFT] < nd->value ? nd->left : nd->right;
            }
        } else {
            while (nodes[i].left != GAS_LEAF) {
                const struct gas_node *nd = &nodes[i];
                float v = zf[nd->feature & ~GAS_DEFAULT_LEFT];
                if (isnan(v))
                    i = (nd->feature & GAS_DEFAULT_LEFT) ? nd->left : nd->right;
                else
                    i = v < nd->value ? nd->left : nd->right;
            }
        }
        margin[f->group[t]] += nodes[i].value;
    }
}

void gas__base_proba(const struct gas_model *m, enum gas_learner l, const double *z,
                     const float *zf, double *proba)
{
    const size_t K = m->n_classes, F = m->n_features;
    for (size_t k = 0; k < K; k++)
        proba[k] = 0;
    if (l == GAS_LR) {
        for (size_t k = 0; k < K; k++)
            proba[k] = m->lin_w[F * K + k];
        for (size_t j = 0; j < F; j++) {
            if (isnan(z[j]))
                continue; /* the training mean: 0 after standardising */
            for (size_t k = 0; k < K; k++)
                proba[k] += z[j] * m->lin_w[j * K + k];
        }
    } else {
        forest_margins(&m->forest[l], zf, F, proba);
    }
    gas__softmax(proba, K);
}

void gas__meta_proba(const double *w, size_t n_classes, const double *s, double *proba)
{
    const size_t D = GAS_N_BASE * n_classes;
    for (size_t k = 0; k < n_classes; k++) {
        const double *wk = w + k * (D + 1);
        double a = wk[D];
        for (size_t j = 0; j < D; j++)
            a += wk[j] * s[j];
        proba[k] = a;
    }
    gas__softmax(proba, n_classes);
}

static int argmax(const double *p, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (p[i] > p[best])
            best = i;
    return (int)best;
}

int gas_predict_row(const struct gas_model *m, enum gas_learner which, const double *x,
                    double *proba)
{
    double z[6 * GAS_MAX_INPUTS];
    float zf[6 * GAS_MAX_INPUTS];
    const size_t F = m->n_features, K = m->n_classes;
    gas__features(m->params.features, m->n_inputs, m->params.window, m->params.window_stats, x, z);
    for (size_t j = 0; j < F; j++) {
        z[j] = (z[j] - m->mean[j]) * m->inv_sd[j];
        zf[j] = gas__to_float(z[j]);
    }
    if (which != GAS_STACK) {
        gas__base_proba(m, which, z, zf, proba);
        return argmax(proba, K);
    }
    double s[GAS_N_BASE * GAS_MAX_CLASSES];
    for (int l = 0; l < GAS_N_BASE; l++)
        gas__base_proba(m, (enum gas_learner)l, z, zf, s + (size_t)l * K);
    gas__meta_proba(m->meta_w, K, s, proba);
    return argmax(proba, K);
}

void gas_predict(const struct gas_model *m, enum gas_learner which, const double *x, size_t n_rows,
                 double *proba)
{
    for (size_t r = 0; r < n_rows; r++)
        gas_predict_row(m, which, x + r * gas_row_len(m), proba + r * m->n_classes);
}
