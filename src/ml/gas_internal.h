/* gas_internal.h — the gas classifier's insides, shared by its files (gas_train.c,
 * gas_compile.c, gas_predict.c, gas_io.c) and by nothing else.
 *
 * A model owns: its names, the feature scaling, the three boosters as XGBoost JSON (the
 * bundle stores these), their compiled forms (what prediction walks) and the meta-learner's
 * weights. Invariants: json[l] compiles into the compiled form of learner l; every array is
 * sized by n_features / n_classes as below. */
#ifndef CANARY_ML_GAS_INTERNAL_H
#define CANARY_ML_GAS_INTERNAL_H

#include "ml/gas.h"

#include <float.h>
#include <stddef.h>
#include <stdint.h>

#define GAS_DEFAULT_LEFT 0x80000000u /* in gas_node.feature: a NaN goes left */
#define GAS_LEAF         (-1)

/* One node of a compiled tree: an inner node sends x to `left` when x[feature] < value (as
 * float, as XGBoost compares), to `right` otherwise, NaN as GAS_DEFAULT_LEFT says; a leaf
 * (left == GAS_LEAF) adds value to its tree's class margin. */
struct gas_node {
    float value;
    uint32_t feature;    /* feature index | GAS_DEFAULT_LEFT */
    int32_t left, right; /* node indexes within the tree's nodes */
};

/* A compiled gbtree booster: n_trees trees, tree t's nodes at nodes[start[t] ..
 * start[t + 1]), adding to class group[t]. */
struct gas_forest {
    uint32_t n_trees;
    uint32_t *start; /* n_trees + 1 */
    uint32_t *group; /* n_trees */
    struct gas_node *nodes;
};

struct gas_model {
    struct gas_params params; /* as trained (progress callback cleared) */
    struct gas_meta meta;
    size_t n_inputs, n_classes, n_features;
    char (*input_names)[GAS_NAME_MAX]; /* n_inputs */
    char (*class_names)[GAS_NAME_MAX]; /* n_classes */
    double *mean, *inv_sd;             /* n_features: standardising */
    double *meta_w;                    /* n_classes x (GAS_N_BASE * n_classes + 1), bias last */
    char *json[GAS_N_BASE];            /* NUL-terminated XGBoost JSON of each base learner */
    size_t json_len[GAS_N_BASE];
    struct gas_forest forest[GAS_N_BASE]; /* RF and GBT (LR's unused) */
    double *lin_w; /* LR: (n_features + 1) x n_classes, w[f * K + k], bias at f = n_features */
};

/* v as a float, saturated at +-FLT_MAX (a double beyond float's range would be undefined
 * behaviour to convert; it compares the same way with every split). NaN stays NaN. */
static inline float gas__to_float(double v)
{
    return v > FLT_MAX ? FLT_MAX : v < -FLT_MAX ? -FLT_MAX : (float)v;
}

/* Features for n_inputs channels, a transform, a window (0 or not) and its GAS_WINDOW_*
 * features: the readings' transform, then the means' (GAS_WINDOW_MEAN), then the slopes'
 * (GAS_WINDOW_SLOPE: slope / mean for log-ratios, the slope for raw, both for both). */
size_t gas__n_features(enum gas_features f, size_t n_inputs, uint32_t window, uint32_t stats);

/* The unscaled features of one row x (gas_row_len_for values) into out. */
void gas__features(enum gas_features f, size_t n_inputs, uint32_t window, uint32_t stats,
                   const double *x, double *out);

/* Compiles json (len bytes) of base learner l into m (forest[l] or lin_w), checking every
 * index against n_features and n_classes. Returns 0 or CANARY_EINVAL / CANARY_ENOMEM. */
int gas__compile(struct gas_model *m, enum gas_learner l, const char *json, size_t len, char *err,
                 size_t errlen);

/* Base learner l's probabilities for one standardised feature vector z (float copy zf for
 * the trees) into proba (n_classes). */
void gas__base_proba(const struct gas_model *m, enum gas_learner l, const double *z,
                     const float *zf, double *proba);

/* The meta-learner's probabilities from stacked base probabilities s (GAS_N_BASE * K). */
void gas__meta_proba(const double *w, size_t n_classes, const double *s, double *proba);

/* In-place softmax of v[0..n). */
void gas__softmax(double *v, size_t n);

/* An empty model for n_inputs inputs and n_classes classes (arrays allocated, zeroed). */
struct gas_model *gas__alloc(size_t n_inputs, size_t n_classes, enum gas_features f,
                             uint32_t window, uint32_t stats);

#endif
