/* iforest.h — Isolation Forest (Liu, Ting & Zhou, "Isolation Forest", ICDM 2008): train,
 * score a matrix or one row, save and load.
 *
 * Pure library code: no I/O but iforest_save/iforest_load, no globals; threads only inside
 * iforest_train and iforest_score, which join them before returning. A trained forest is
 * immutable, so any number of threads may score with it at once.
 *
 * The algorithm as in the paper: t trees, each grown on a subsample of ψ rows drawn without
 * replacement, to a height limit of ceil(log2 ψ); a node splits on a feature chosen at
 * random among those not constant in the node, at a value drawn uniformly between that
 * feature's minimum and maximum in the node. The path length of x in a tree is the depth of
 * the external node it reaches plus c(size), size being the training rows that reached that
 * node (the paper's adjustment for the unbuilt subtree); the score is
 * s(x) = 2^(-E(h(x)) / c(ψ)) in (0, 1]: near 1 is anomalous, well below 0.5 normal.
 *
 * Values are float32 inside the forest (inputs are rounded to float once, in training and
 * scoring alike, so both see the same numbers). Missing values: a NaN never wins a
 * comparison, so a row with NaN in a node's feature goes right, in training and scoring
 * alike; NaNs are ignored when a node's minimum and maximum are taken. A feature that is
 * constant (or all NaN) in a node is never chosen to split it; a node whose features are all
 * constant is external. Constant columns therefore cost nothing and change nothing.
 *
 * Determinism: the same data, parameters and seed give a bit-for-bit identical forest
 * and identical scores, whatever the number of threads (each tree has its own random
 * stream derived from the seed and the tree's index).
 *
 * The model file format is documented in docs/MODEL_FORMAT.md; iforest_load checks its magic,
 * version, sizes and CRC-32 and never trusts it. */
#ifndef CANARY_ML_IFOREST_H
#define CANARY_ML_IFOREST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IFOREST_MAX_FEATURES  1024
#define IFOREST_MAX_TREES     10000
#define IFOREST_MAX_SUBSAMPLE 65536
#define IFOREST_NAME_MAX      64 /* a feature name, with its NUL */
#define IFOREST_MAX_DEPTH     32 /* the largest height limit max_depth may ask for */

struct iforest_params {
    uint32_t n_trees;     /* t (default 100) */
    uint32_t subsample;   /* ψ (default 256); capped at the training rows */
    uint32_t max_depth;   /* height limit; 0 = ceil(log2 ψ) as in the paper */
    uint64_t seed;        /* random seed */
    uint32_t threads;     /* 0 = one per online CPU; 1 = the calling thread only */
    double contamination; /* expected share of anomalies in the training data, (0, 0.5];
                             0 = "auto": threshold 0.5, as scikit-learn's offset -0.5 */
};

/* Fills p with the defaults: 100 trees, ψ 256, depth from ψ, seed 1, all CPUs, auto. */
void iforest_params_default(struct iforest_params *p);

/* What a model records about itself (shown by `GET /api/v1/models` and `canary eval`). */
struct iforest_meta {
    char source[256];       /* what it was trained on: "file.csv", "db device=x metric=y" */
    char features_kind[16]; /* "raw" (the columns as given) or "window" (ml/features.h) */
    uint64_t train_rows;
    int64_t data_from_ms; /* time range of the training data (0 = unknown) */
    int64_t data_to_ms;
    int64_t created_ms; /* wall clock at training */
    uint32_t window;    /* features_kind "window": the window length in readings */
    /* Evaluation figures recorded by `canary eval --record` (NaN = not evaluated). */
    double eval_roc_auc;
    double eval_pr_auc;
    uint64_t eval_rows;
    char eval_source[256];
};

struct iforest;

/* Trains a forest on n_rows x n_cols values, row-major (x[r * n_cols + c]). names are the
 * n_cols feature names (NULL = "f0", "f1", ...; each shorter than IFOREST_NAME_MAX).
 * progress, when not NULL, is called from the calling thread as trees are finished
 * (done of total). The threshold is set from the training scores when contamination > 0
 * (the score above which that share of the training rows lies), else 0.5. meta may be NULL.
 * Returns 0 and *out (free with iforest_free), or CANARY_EINVAL (bad parameters or shape,
 * message in err) or CANARY_ENOMEM. */
int iforest_train(struct iforest **out, const struct iforest_params *p, const double *x,
                  size_t n_rows, size_t n_cols, const char *const *names,
                  const struct iforest_meta *meta,
                  void (*progress)(void *arg, size_t done, size_t total), void *progress_arg,
                  char *err, size_t errlen);

/* Scores n_rows rows of the model's n_cols features (row-major) into scores[n_rows], on
 * `threads` threads (0 = one per online CPU). Returns 0, or CANARY_ENOMEM. */
int iforest_score(const struct iforest *f, const double *x, size_t n_rows, unsigned threads,
                  double *scores);

/* Scores one row of the model's n_cols features: the streaming path (no allocation, no
 * locks; safe from any number of threads at once). */
double iforest_score_row(const struct iforest *f, const double *row);

/* c(n): the average path length of an unsuccessful search in a binary search tree of n
 * nodes, 2 H(n-1) - 2 (n-1) / n with H(i) = ln(i) + Euler's constant; c(2) = 1 and
 * c(n <= 1) = 0 (the paper, section 2; scikit-learn uses the same values). */
double iforest_c(double n);

/* Accessors. */
size_t iforest_n_features(const struct iforest *f);
const char *iforest_feature_name(const struct iforest *f, size_t i);
double iforest_threshold(const struct iforest *f);
void iforest_set_threshold(struct iforest *f, double threshold);
const struct iforest_params *iforest_params_of(const struct iforest *f); /* as trained */
const struct iforest_meta *iforest_meta_of(const struct iforest *f);
struct iforest_meta *iforest_meta_mut(struct iforest *f); /* e.g. to record evaluation */
/* iforest_params_of gives the effective values: subsample is the ψ used (capped at the
 * training rows) and max_depth the height limit used, so training again with them on the
 * same rows gives the same forest. The meta is the one given to iforest_train (strings cut
 * to fit), with train_rows set to n_rows when it was 0; without one, features_kind "raw",
 * train_rows n_rows, evaluation figures NaN and everything else 0. */

/* Writes the model to path atomically (a temporary file in the same directory, fsync,
 * rename). Returns 0 or CANARY_EIO with a message naming the path. */
int iforest_save(const struct iforest *f, const char *path, char *err, size_t errlen);

/* The bytes iforest_save writes, in a malloc'ed buffer the caller frees: *out and *len.
 * Returns 0 or CANARY_ENOMEM. The same forest always gives the same bytes. */
int iforest_save_buffer(const struct iforest *f, void **out, size_t *len, char *err, size_t errlen);

/* Reads a model written by iforest_save. Returns 0 and *out, or CANARY_EINVAL with a
 * message that says what is wrong ("model.cif: truncated: 1200 of 5400 bytes", "not a
 * canary model", "checksum mismatch", "version 3 is newer than this canary (1)", ...),
 * CANARY_EIO when the file cannot be read, or CANARY_ENOMEM. Never crashes on any input. */
int iforest_load(struct iforest **out, const char *path, char *err, size_t errlen);

/* The same from a buffer (what iforest_load does after reading the file; for fuzzing). */
int iforest_load_buffer(struct iforest **out, const void *buf, size_t len, char *err,
                        size_t errlen);

void iforest_free(struct iforest *f);

#endif
