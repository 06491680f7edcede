/* gas.h — the gas classifier: which gas (or none) a reading of several gas sensors shows,
 * with class probabilities, from a stacking ensemble trained on the user's labelled data.
 *
 * Three base learners, trained with XGBoost's C API (libxgboost, Debian libxgboost-dev):
 *   - a random forest (XGBoost's random-forest mode: one round of num_parallel_tree trees,
 *     rows subsampled, columns sampled per node, eta 1);
 *   - a multinomial logistic regression (gblinear, coordinate descent, on standardised
 *     features);
 *   - gradient-boosted trees (gbtree, tree_method hist, multi:softprob).
 * The meta-learner, a multinomial logistic regression on the base learners' class
 * probabilities, is trained on k-fold OUT-OF-FOLD predictions (as scikit-learn's
 * StackingClassifier with cv=k): each row's meta input comes from base models that never
 * saw that row, so the meta-learner learns how far to trust each learner on unseen data,
 * not on data it memorised. The base models kept in the model are then refitted on every
 * training row.
 *
 * Rows. The inputs are the sensors' raw values (n_inputs channels, e.g. MQ2..MQ135). With
 * a window (params.window > 0, default 24) a row also carries each channel's mean over the
 * series' last `window` readings (the current one included) and, with GAS_WINDOW_SLOPE in
 * params.window_stats, the least-squares slope of those readings (per reading), both
 * computed by ml/features.h — the code the Isolation Forest's window features use — through
 * gas_window_rows (a table in time order) or struct gas_stream (live, one reading at a
 * time), so training and canaryd get the same numbers. A row is the readings, then the
 * means, then (with the slope) the slopes: gas_row_len_for. A single reading of these
 * sensors is noisy; the recent mean is not; the slope says where the air is going.
 * params.window_stats chooses which of the mean and the slope become features (the row
 * carries the means whenever there is a window: the slope's features are relative to them).
 *
 * Features. The model turns a row into its features itself, in training and in prediction
 * alike, so the two cannot drift apart: GAS_FEATURES_RAW keeps the values; GAS_FEATURES_LOGRATIO
 * uses the centred log-ratios log(x_i) - mean_j log(x_j) (Aitchison's clr), i.e. the SHAPE of the
 * sensors' response, which survives a slow drift of every sensor's baseline that moves raw values
 * out of the training range (docs/GAS.md has the measurements); GAS_FEATURES_BOTH keeps both. The
 * transform applies to the readings and to the means alike. Values <= 0 are clamped to 1e-6 before
 * the log. A slope becomes slope / mean (the relative change per reading, level-free like the
 * log-ratios) with GAS_FEATURES_LOGRATIO, the slope itself with GAS_FEATURES_RAW, both with
 * GAS_FEATURES_BOTH. The features are standardised with the training rows' mean and standard
 * deviation. A missing input (NaN) makes the features that use it NaN: trees take XGBoost's learnt
 * default branch, the linear models treat it as the training mean (0 after standardising).
 *
 * Prediction does not call XGBoost: the boosters' JSON is compiled into flat node arrays
 * (trees, float comparisons as XGBoost's) and weight matrices, so one reading costs a few
 * microseconds with no allocation and the model is read-only, safe to share between
 * threads. The compiled predictor matches XGBoost's own predictions (tests/unit/test_gas.c).
 *
 * Determinism: the same rows, parameters and seed give the same model, byte for byte,
 * whatever the thread count.
 *
 * Every function that can fail returns 0 or a negative CANARY_E* code with a message in err
 * (errlen may be 0). */
#ifndef CANARY_ML_GAS_H
#define CANARY_ML_GAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GAS_MAX_CLASSES 64
#define GAS_MAX_INPUTS  256
#define GAS_MAX_FOLDS   20
#define GAS_NAME_MAX    128 /* bytes of an input or class name, NUL included */

/* The learners; GAS_STACK is the ensemble (the default prediction). */
enum gas_learner { GAS_RF, GAS_LR, GAS_GBT, GAS_N_BASE, GAS_STACK = GAS_N_BASE, GAS_N_LEARNERS };

enum gas_features { GAS_FEATURES_RAW, GAS_FEATURES_LOGRATIO, GAS_FEATURES_BOTH };

/* Window features (params.window_stats, a set of these bits). */
enum gas_window_stat { GAS_WINDOW_MEAN = 1u << 0, GAS_WINDOW_SLOPE = 1u << 1 };
#define GAS_WINDOW_ALL (GAS_WINDOW_MEAN | GAS_WINDOW_SLOPE)

struct gas_params {
    enum gas_features features; /* default GAS_FEATURES_LOGRATIO */
    uint32_t window;            /* readings in the recent mean, 0 = none (default 24, the best
                                   of 8..64 on a time split inside the training rows; at most
                                   FEATURE_WINDOW_MAX) */
    uint32_t window_stats;      /* with a window: the GAS_WINDOW_* features (default
                                   GAS_WINDOW_MEAN; the slope needs a window of 2 or more) */
    uint64_t seed;              /* default 1 */
    uint32_t folds;             /* out-of-fold folds for the meta-learner, 2..20 (default 5) */
    uint32_t rf_trees;          /* random forest trees (default 50: the stack's held-out
                                   accuracy of 100, at half the prediction time) */
    uint32_t rf_depth;          /* their depth limit (default 6) */
    double rf_subsample;        /* rows per tree (default 0.63) */
    double rf_colsample;        /* columns per node (default 0.6) */
    uint32_t gbt_rounds;        /* boosting rounds (default 100) */
    uint32_t gbt_depth;         /* tree depth (default 6) */
    double gbt_eta;             /* learning rate (default 0.3) */
    uint32_t lr_rounds;         /* gblinear rounds (default 200) */
    double lr_lambda;           /* gblinear L2 (default 0.01, per row as XGBoost scales it) */
    double meta_c;              /* the meta-learner's inverse L2 strength (default 1, as
                                   scikit-learn's LogisticRegression C) */
    uint32_t threads;           /* XGBoost threads; 0 = 1 (determinism is kept either way) */
    /* Called after each step (a base learner fitted); may be NULL. */
    void (*progress)(void *arg, size_t done, size_t total);
    void *progress_arg;
};

/* Fills p with the defaults above. */
void gas_params_default(struct gas_params *p);

/* What a model records about its training, for `canary eval` and GET /api/v1/models. */
struct gas_meta {
    char source[256];                 /* e.g. "gas_train.csv" */
    uint64_t n_rows;                  /* training rows */
    int64_t created_ms;               /* Unix ms */
    double fit_s;                     /* training time, all of it (folds, meta, refits) */
    double learner_fit_s[GAS_N_BASE]; /* the final fit of each base learner on every row */
    /* Out-of-fold accuracy of each learner (the stack's is that of the meta-learner on the
     * out-of-fold predictions, itself in-sample: an estimate, not a test result). */
    double oof_accuracy[GAS_N_LEARNERS];
    /* Set by the caller (gas_model_meta_edit), kept in the bundle: where the rows came from,
     * so `canary eval` reads a file the same way... */
    char label_column[GAS_NAME_MAX];
    char series_column[GAS_NAME_MAX]; /* "" = the label column */
    char order_column[GAS_NAME_MAX];  /* "" = file order */
    /* ...and the held-out evaluation made at training time (eval_rows 0 = none). */
    char eval_split[16]; /* "time" or "random" */
    uint64_t eval_rows;
    double eval_accuracy, eval_macro_f1;
};

struct gas_model;

/* Out-of-fold details of a training run, for tests and reports (gas_train's report may be
 * NULL). The caller frees with gas_report_free. */
struct gas_report {
    size_t n_rows, n_classes;
    uint32_t *fold; /* n_rows: the fold each row was held out in */
    double *oof;    /* n_rows x (GAS_N_BASE * n_classes): each row's base-learner
                       probabilities from models trained without its fold */
};

void gas_report_free(struct gas_report *r);

/* Values per row for n_inputs channels, a window (0 or not) and its GAS_WINDOW_* features:
 * the readings, then with a window their means, then with the slope their slopes. */
static inline size_t gas_row_len_for(size_t n_inputs, uint32_t window, uint32_t window_stats)
{
    return window ? n_inputs * (2 + ((window_stats & GAS_WINDOW_SLOPE) ? 1 : 0)) : n_inputs;
}

/* Trains a model on x (n_rows x gas_row_len_for(n_inputs, p->window, p->window_stats), row-major)
 * with classes y (n_rows, each in 0..n_classes-1; every class needs at least `folds` rows).
 * input_names and class_names name the columns and classes (copied; at most GAS_NAME_MAX - 1 bytes
 * each). source (may be NULL) goes into the meta. *out receives the model (free with gas_free).
 * Errors: CANARY_EINVAL (sizes, a class out of range or too rare, a non-finite value when
 * the features cannot hold it, bad params), CANARY_ENOMEM, CANARY_EIO (XGBoost failed:
 * its message is in err). */
int gas_train(const double *x, size_t n_rows, size_t n_inputs, const int *y, size_t n_classes,
              const char *const *input_names, const char *const *class_names,
              const struct gas_params *p, const char *source, struct gas_model **out,
              struct gas_report *report, char *err, size_t errlen);

void gas_free(struct gas_model *m);

size_t gas_n_inputs(const struct gas_model *m);
size_t gas_row_len(const struct gas_model *m); /* values gas_predict_row reads */
const char *gas_input_name(const struct gas_model *m, size_t i);
size_t gas_n_classes(const struct gas_model *m);
const char *gas_class_name(const struct gas_model *m, size_t k);
const struct gas_meta *gas_model_meta(const struct gas_model *m);
struct gas_meta *gas_model_meta_edit(struct gas_model *m); /* to record columns and eval */
const struct gas_params *gas_model_params(const struct gas_model *m); /* as trained */
const char *gas_learner_name(enum gas_learner l);   /* "random_forest", ..., "stack" */
const char *gas_features_name(enum gas_features f); /* "raw", "logratio", "raw+logratio" */

/* Parses "mean", "slope" or "mean,slope" (either order) into GAS_WINDOW_* bits; false when
 * it is none of those. gas_window_stats_name writes the canonical form ("mean,slope"). */
bool gas_window_stats_parse(const char *s, uint32_t *out);
const char *gas_window_stats_name(uint32_t stats);

/* Class probabilities of one row x (gas_row_len values: readings in the model's input order,
 * then, with a window, their recent means) by
 * learner `which`, into proba (n_classes, summing to 1). No allocation, no error path:
 * thread-safe on a shared model. Returns the most probable class. */
int gas_predict_row(const struct gas_model *m, enum gas_learner which, const double *x,
                    double *proba);

/* The same for n_rows rows (row-major), proba n_rows x n_classes. */
void gas_predict(const struct gas_model *m, enum gas_learner which, const double *x, size_t n_rows,
                 double *proba);

/* The model's booster of base learner `which` as XGBoost JSON (XGBoosterLoadModelFromBuffer
 * reads it): *json points into the model, *len its length. For checks and export. */
void gas_booster_json(const struct gas_model *m, enum gas_learner which, const char **json,
                      size_t *len);

/* ---- window rows (gas_window.c) ---- */

/* Builds rows for a model with this window and these GAS_WINDOW_* features from readings x
 * (n_rows x n_inputs): out (n_rows x gas_row_len_for(n_inputs, window, stats)) gets each
 * reading, then its channels' means over the last `window` readings of its series, then
 * (GAS_WINDOW_SLOPE) their slopes. series (may be NULL: one series) gives each row's series
 * (a device; in a labelled file each class's recording); rows of a series must be in time
 * order. window 0 copies x. Returns 0, CANARY_EINVAL or CANARY_ENOMEM. */
int gas_window_rows(uint32_t window, uint32_t stats, size_t n_inputs, const double *x,
                    size_t n_rows, const uint32_t *series, double *out, char *err, size_t errlen);

/* The live form: one device's recent readings. gas_stream_new returns NULL when out of
 * memory; gas_stream_push adds reading x (n_inputs values) and writes the model's row (as
 * gas_window_rows) to row. Free with gas_stream_free. */
struct gas_stream;
struct gas_stream *gas_stream_new(size_t n_inputs, uint32_t window, uint32_t stats);
void gas_stream_push(struct gas_stream *s, const double *x, double *row);
void gas_stream_free(struct gas_stream *s);

/* ---- labelled CSV files (gas_csv.c) ---- */

/* What to read: the label column (class names, e.g. "Gas"), the input columns in order,
 * the series column (NULL or the label column: each class's rows are one recording, as in
 * the public gas dataset; else e.g. "device"), an order column (NULL: file order) and the
 * window of the rows (0: readings only) with its GAS_WINDOW_* features. */
struct gas_csv_spec {
    const char *label_column;
    const char *const *inputs;
    size_t n_inputs;
    const char *series_column;
    const char *order_column;
    uint32_t window;
    uint32_t window_stats; /* GAS_WINDOW_*; 0 is read as GAS_WINDOW_MEAN */
};

/* Rows ready for gas_train / gas_predict, in file order. */
struct gas_table {
    size_t n_rows, n_inputs, row_len;
    double *rows;       /* n_rows x row_len */
    int *y;             /* n_rows classes, indexes into class_names */
    double *order;      /* n_rows: the order column's value, or the row index */
    char **class_names; /* n_classes, sorted (strcmp) */
    size_t n_classes;
};

/* Loads path (dataset.h's CSV rules; messages name file, line and column) into t (free with
 * gas_table_free, also safe after a failure). */
int gas_table_load(const char *path, const struct gas_csv_spec *spec, struct gas_table *t,
                   char *err, size_t errlen);
void gas_table_free(struct gas_table *t);

/* ---- model bundle (gas_io.c; format in docs/GAS.md) ---- */

/* Serialises m into a malloc'd buffer (*out, *len; caller frees). */
int gas_save_buffer(const struct gas_model *m, void **out, size_t *len, char *err, size_t errlen);

/* Writes m to path atomically (temporary file, fsync, rename): a crash leaves the old file
 * or the new one. */
int gas_save(const struct gas_model *m, const char *path, char *err, size_t errlen);

/* Reads a model from len bytes at buf (not kept). Every byte is checked: a bad magic, an
 * unknown version, a wrong size, a CRC mismatch or any inconsistent field gives
 * CANARY_EINVAL with a message saying what is wrong; never a crash. */
int gas_load_buffer(const void *buf, size_t len, struct gas_model **out, char *err, size_t errlen);

/* Reads the model file at path (CANARY_EIO when it cannot be read). Messages name path. */
int gas_load(const char *path, struct gas_model **out, char *err, size_t errlen);

/* ---- evaluation splits (gas_split.c) ---- */

/* The time split: within each class's series, the latest test_frac of its rows (by t, or
 * by row order when t is NULL; ties by row order) are the test rows (is_test[r] = 1), the
 * rest training rows. A neighbouring sample of a sensor series is nearly a copy of its
 * neighbour, so only this split measures how a model does on readings that come later. */
int gas_split_time(const double *t, const int *y, size_t n_rows, size_t n_classes, double test_frac,
                   uint8_t *is_test, char *err, size_t errlen);

/* A stratified random split: round(test_frac * class rows) of each class drawn with seed. */
int gas_split_random(const int *y, size_t n_rows, size_t n_classes, double test_frac, uint64_t seed,
                     uint8_t *is_test, char *err, size_t errlen);

#endif
