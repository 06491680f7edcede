/* nab_score.h — the Numenta Anomaly Benchmark's scoring, as canary's own code.
 *
 * NAB (Lavin & Ahmad 2015, "Evaluating Real-time Anomaly Detection Algorithms — the Numenta
 * Anomaly Benchmark") scores a detector that gave every row of every data file an anomaly
 * score in [0,1], each having seen only the rows before it. This follows NAB v1.1's own
 * scorer, numenta/NAB nab/sweeper.py (Sweeper.calcSweepScore, calcScoreByThreshold), as
 * nab/optimizer.py and nab/runner.py (normalize) use it, so our figure is the figure NAB's
 * scorer gives for the same results files:
 *
 *  - Probationary period: the first min(floor(0.15 n), 750) rows of a file of n rows
 *    (nab/util.py getProbationPeriod: 15 %, capped at 15 % of 5,000 rows) are not scored
 *    at all: no detection there counts, for or against.
 *  - Windows (labels/combined_windows.json) are located by row, in row order, as the
 *    sweeper enters and leaves them: a window starts at the first row after the previous
 *    window whose timestamp is its start, and ends at the first row from there whose
 *    timestamp is its end. (NAB's windows start and end on rows. Should one not, the first
 *    row past the start, and the last row before the time passes the end, stand in.) Rows
 *    need not be in time order: machine_temperature_system_failure.csv repeats an hour.
 *  - Scaled sigmoid: S(y) = 2 / (1 + e^(5y)) - 1, and -1 for y >= 3.
 *  - A detection is a row whose score is at or above the threshold. In a window of w rows
 *    whose last row is at index R, a detection at row i sits at y = -(R - i + 1) / w and is
 *    worth A_TP x S(y) / S(-1): exactly A_TP on the window's first row, ~0 on its last. Only
 *    the best (that is, the first) detection of a window counts; a window without one costs
 *    -A_FN.
 *  - A detection outside every window costs A_FP x S(y) (S is negative there) with
 *    y = (i - R) / (w - 1) measured from the end R of the closest preceding window of w
 *    rows: right after a window it costs almost nothing, three window lengths later the
 *    full A_FP. Before the first window y = 3: the full A_FP.
 *  - Profiles (config/profiles.json): A_TP, A_FP, A_FN per profile.
 *  - Threshold: one for the whole corpus per profile, the one that maximises the total raw
 *    score. NAB's optimiser sweeps every distinct score: detections are "score >= t" for t
 *    = 1.1 (none), then each distinct score from the highest down; we evaluate all of them
 *    exactly (one sort, then O(1) amortised per row) and keep the first best, as NAB's
 *    stable sort does.
 *  - Normalisation: 100 x (S - S_null) / (S_perfect - S_null), with S_perfect = A_TP x (all
 *    windows of the labels file) and S_null the score of NAB's null detector (a constant
 *    0.5 for every row) through the same optimisation — in practice -A_FN per window.
 *
 * Pure code apart from the two JSON loaders: no globals, no threads. Functions that can fail
 * return 0 or a negative CANARY_E* code with a message in err. */
#ifndef CANARY_BENCH_NAB_SCORE_H
#define CANARY_BENCH_NAB_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAB_PROFILES_MAX 8

/* An application profile: the weights of the cost matrix. */
struct nab_profile {
    char name[64]; /* "standard", "reward_low_FP_rate", "reward_low_FN_rate" */
    double tp_weight, fp_weight, fn_weight;
};

/* A labelled anomaly window, inclusive at both ends. */
struct nab_window {
    int64_t start_ms, end_ms;
};

/* The windows of one data file ("realKnownCause/nyc_taxi.csv"). */
struct nab_file_windows {
    char *name;
    struct nab_window *windows; /* sorted by start */
    size_t n;
};

/* Every file's windows (labels/combined_windows.json). */
struct nab_labels {
    struct nab_file_windows *files;
    size_t n_files;
    size_t n_windows; /* over all files: what S_perfect counts */
};

/* Reads config/profiles.json into out[0..*n) (at most cap profiles, in file order). */
int nab_profiles_load(const char *path, struct nab_profile *out, size_t cap, size_t *n, char *err,
                      size_t errlen);

/* Reads labels/combined_windows.json ({"cat/file.csv": [["start", "end"], ...], ...}; times
 * "2014-04-10 07:15:00.000000", UTC). The caller frees l with nab_labels_free. */
int nab_labels_load(const char *path, struct nab_labels *l, char *err, size_t errlen);

/* The windows of a file by its name relative to the data directory, or NULL. */
const struct nab_file_windows *nab_labels_find(const struct nab_labels *l, const char *name);

void nab_labels_free(struct nab_labels *l);

/* S(y) above. */
double nab_scaled_sigmoid(double y);

/* Rows of a file of n_rows rows that are not scored: min(floor(0.15 n), 750). */
size_t nab_probation_rows(size_t n_rows);

/* One scored row (a file's rows after its probationary period). */
struct nab_point {
    double score;   /* the detector's anomaly score */
    double unit;    /* in a window: S(y) / S(-1), times A_TP; outside: S(y) < 0, times A_FP */
    int32_t window; /* index among the corpus's windows, or -1 outside every window */
    uint32_t file;  /* index of the file, in the order added */
};

/* Every file of a detector's run, ready to be scored under any profile. */
struct nab_corpus {
    struct nab_point *points; /* scored rows of every file, in file order (sorted by score
                                 descending once a threshold has been optimised) */
    size_t n_points, cap_points;
    size_t n_files;
    size_t n_windows;        /* windows of the files added */
    size_t n_windows_scored; /* of which with at least one row after the probationary period */
    bool by_score;           /* points are sorted by score, descending */
};

/* The first and last row of each window (lo[w], hi[w]; arrays of n_windows), located as
 * above in the file's n_rows timestamps (Unix ms, in file order). Returns 0, or
 * CANARY_EINVAL ("window 2 holds no row of the file", windows out of order or overlapping). */
int nab_window_rows(const int64_t *ts_ms, size_t n_rows, const struct nab_window *windows,
                    size_t n_windows, size_t *lo, size_t *hi, char *err, size_t errlen);

/* Adds one file: n_rows timestamps (Unix ms, in file order) and the detector's scores
 * (finite), with the file's windows (sorted, not overlapping; NULL/0 for none). Returns 0,
 * CANARY_EINVAL (a window that holds no row, windows out of order or overlapping, a
 * non-finite score) or CANARY_ENOMEM. */
int nab_corpus_add(struct nab_corpus *c, const char *name, const int64_t *ts_ms,
                   const double *scores, size_t n_rows, const struct nab_window *windows,
                   size_t n_windows, char *err, size_t errlen);

void nab_corpus_free(struct nab_corpus *c);

/* What a threshold gives, over the corpus or one file. Row counts exclude the
 * probationary period, as NAB's tp/tn/fp/fn do. */
struct nab_result {
    double threshold; /* detections are scores >= threshold (1.1: none) */
    double raw;       /* the summed weighted score */
    size_t windows_detected, windows_missed;
    size_t tp, fp, fn, tn; /* rows: detected in a window, detected outside, not detected in a
                              window, not detected outside */
};

/* The score at a given threshold. per_file, when not NULL, receives c->n_files results
 * (each file's part; their raws sum to out->raw). Returns 0 or CANARY_ENOMEM. */
int nab_score_at(const struct nab_corpus *c, const struct nab_profile *p, double threshold,
                 struct nab_result *out, struct nab_result *per_file);

/* The threshold NAB's optimiser picks for the profile and its score (with counts). Sorts
 * c's points on first use. Returns 0 or CANARY_ENOMEM. */
int nab_optimise(struct nab_corpus *c, const struct nab_profile *p, struct nab_result *out);

/* S_null: the score of NAB's null detector (every row 0.5) on the same files, optimised
 * as any detector: the better of "no detection" and "every row a detection". */
double nab_null_raw(const struct nab_corpus *c, const struct nab_profile *p);

/* S_perfect for a labels file of n_windows windows: A_TP per window. */
double nab_perfect_raw(const struct nab_profile *p, size_t n_windows);

/* 100 x (raw - null) / (perfect - null): 0 for the null detector, 100 for the perfect one. */
double nab_normalised(double raw, double null_raw, double perfect_raw);

#endif
