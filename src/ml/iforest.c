/* iforest.c — Isolation Forest training, and the forest object (the contract is in
 * iforest.h; scoring is iforest_score.c, the model file iforest_io.c).
 *
 * The algorithm is the paper's (Liu, Ting & Zhou, "Isolation Forest", ICDM 2008, algorithms
 * 1-3), with scikit-learn's conventions where the paper leaves a choice, so that the two rank
 * rows alike: psi = min(subsample, rows), height limit ceil(log2 psi), c(2) = 1, c(1) = 0,
 * a split x <= p going left with p drawn uniformly in [min, max).
 *
 * Training. Each tree draws its psi rows without replacement (Floyd's algorithm over a small
 * hash set: O(psi) per tree whatever the number of rows), copies them to a column-major float
 * block, and grows depth-first by partitioning an index array. At every node it finds which
 * candidate features vary over the node's rows (ignoring NaN), stopping at each one's first
 * differing value; the candidates are the features not constant in the parent, since a
 * feature constant in a node is constant in its children. One draw picks a feature among the
 * varying ones, whose minimum and maximum are then taken, and one draws the threshold. A
 * feature constant in the node is therefore never drawn, and the draws do not depend on how
 * many constant features there are: adding constant columns gives the same trees, bit for
 * bit. The threshold is drawn in double and rounded to float, then kept inside [min, max)
 * (rounding could reach max), so both children are never empty.
 *
 * Missing values and infinities. Inputs are rounded to float once, in training and scoring
 * alike (a double beyond float range becomes an infinity). A NaN is skipped when a node's
 * minimum and maximum are taken and fails every `x <= threshold`, so it goes right, in
 * training and in scoring; thresholds are always finite, so NaN and +inf go the same way.
 *
 * Determinism. Tree t draws from its own xoshiro256** stream seeded through splitmix64 from
 * (seed, t), so a tree does not depend on which thread grows it or when: threads take trees
 * from a shared counter (the calling thread too, which also reports progress), and the forest
 * is the same for any thread count. Scores do not depend on the thread count or the scorer.
 *
 * Scoring (iforest_score.c) uses its own layout of the same trees, compiled by
 * iforest__compile when a forest is trained or loaded. */
#include "ml/iforest.h"

#include "core/error.h"
#include "core/rng.h"
#include "ml/iforest_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EULER_GAMMA     0.57721566490153286061
#define IFO_MAX_THREADS 256

/* ---- c(n) and parameters ---- */

double iforest_c(double n)
{
    if (!(n > 1.0))
        return 0.0;
    if (n <= 2.0)
        return 1.0;
    return 2.0 * (log(n - 1.0) + EULER_GAMMA) - 2.0 * (n - 1.0) / n;
}

void iforest_params_default(struct iforest_params *p)
{
    *p = (struct iforest_params){.n_trees = 100,
                                 .subsample = 256,
                                 .max_depth = 0,
                                 .seed = 1,
                                 .threads = 0,
                                 .contamination = 0.0};
}

uint32_t iforest__default_depth(uint32_t psi)
{
    uint32_t d = 0;
    while (d < 32 && (1ull << d) < psi)
        d++;
    return d;
}

/* The threads to use: asked (0 = one per online CPU), at most one per work unit. */
unsigned iforest__threads(unsigned asked, size_t units)
{
    size_t n = asked;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (size_t)cpus : 1;
    }
    if (n > IFO_MAX_THREADS)
        n = IFO_MAX_THREADS;
    if (n > units)
        n = units;
    return n > 0 ? (unsigned)n : 1;
}

/* ---- random numbers: core/rng.h (xoshiro256** seeded through splitmix64) ---- */

/* Stream `stream` of `seed`: distinct streams start from well-separated states. */
static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t k = stream;
    rng_seed_state(r, seed ^ rng_splitmix64(&k));
}

/* Uniform in [0, n), n > 0, without bias (Lemire, "Fast random integer generation in an
 * interval", 2019). */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    unsigned __int128 m = (unsigned __int128)rng_next(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t floor = -n % n;
        while (low < floor) {
            m = (unsigned __int128)rng_next(r) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* ---- growing one tree ---- */

/* What a thread needs to grow trees; reused from tree to tree. */
struct grower {
    /* inputs */
    const double *x;
    uint64_t n_rows;
    uint32_t n_cols;
    uint32_t psi;
    uint32_t depth_limit;
    /* scratch */
    struct rng rng;
    uint64_t *sample; /* psi row numbers */
    uint64_t *set;    /* Floyd's hash set: set_mask + 1 slots */
    uint64_t set_mask;
    float *cols;          /* n_cols x psi, column-major: the sample as float */
    uint32_t *idx;        /* psi positions in the sample, partitioned node by node */
    uint32_t *cand;       /* (depth_limit + 1) x n_cols candidate features per depth */
    double *c_of;         /* psi + 1: c(size) for every node size */
    struct ifo_node *out; /* 2 psi - 1: the tree being grown, in pre-order */
    uint32_t n_out;
};

static void grower_free(struct grower *g)
{
    free(g->sample);
    free(g->set);
    free(g->cols);
    free(g->idx);
    free(g->cand);
    free(g->c_of);
    free(g->out);
}

static int grower_init(struct grower *g, const double *x, uint64_t n_rows, uint32_t n_cols,
                       uint32_t psi, uint32_t depth_limit)
{
    memset(g, 0, sizeof *g);
    g->x = x;
    g->n_rows = n_rows;
    g->n_cols = n_cols;
    g->psi = psi;
    g->depth_limit = depth_limit;
    uint64_t slots = 1;
    while (slots < 2ull * psi)
        slots <<= 1;
    g->set_mask = slots - 1;
    g->sample = malloc(psi * sizeof *g->sample);
    g->set = malloc(slots * sizeof *g->set);
    g->cols = malloc((size_t)n_cols * psi * sizeof *g->cols);
    g->idx = malloc(psi * sizeof *g->idx);
    g->cand = malloc((size_t)(depth_limit + 1) * n_cols * sizeof *g->cand);
    g->c_of = malloc(((size_t)psi + 1) * sizeof *g->c_of);
    g->out = malloc((2 * (size_t)psi - 1) * sizeof *g->out);
    if (!g->sample || !g->set || !g->cols || !g->idx || !g->cand || !g->c_of || !g->out) {
        grower_free(g);
        return CANARY_ENOMEM;
    }
    for (uint32_t n = 0; n <= psi; n++)
        g->c_of[n] = iforest_c(n);
    return CANARY_OK;
}

/* Adds v to the set; false if it was there already. */
static bool set_add(struct grower *g, uint64_t v)
{
    uint64_t h = (v * 0x9E3779B97F4A7C15ull) >> 17;
    for (;; h++) {
        uint64_t *slot = &g->set[h & g->set_mask];
        if (*slot == v)
            return false;
        if (*slot == UINT64_MAX) {
            *slot = v;
            return true;
        }
    }
}

/* Draws psi distinct rows of n_rows uniformly (Floyd's algorithm: Bentley, "Programming
 * Pearls", column 12) and copies them to cols as float. */
static void draw_sample(struct grower *g)
{
    memset(g->set, 0xff, (g->set_mask + 1) * sizeof *g->set);
    uint32_t k = 0;
    for (uint64_t j = g->n_rows - g->psi; j < g->n_rows; j++) {
        uint64_t t = rng_below(&g->rng, j + 1);
        if (!set_add(g, t)) {
            t = j;
            set_add(g, t);
        }
        g->sample[k++] = t;
    }
    const uint32_t nc = g->n_cols, psi = g->psi;
    for (uint32_t i = 0; i < psi; i++) {
        if (i + 8 < psi)
            __builtin_prefetch(g->x + g->sample[i + 8] * nc);
        const double *row = g->x + g->sample[i] * nc;
        for (uint32_t c = 0; c < nc; c++)
            g->cols[(size_t)c * psi + i] = (float)row[c];
        g->idx[i] = i;
    }
}

static void emit(struct grower *g, uint32_t feature, float value)
{
    g->out[g->n_out++] = (struct ifo_node){.feature = feature, .value = value};
}

/* The threshold for a split between lo < hi: uniform in [lo, hi), drawn in double and
 * rounded to float; rounding (or infinite bounds) could leave [lo, hi), so it is put back. */
static float draw_threshold(struct rng *r, float lo, float hi)
{
    double u = rng_uniform(r);
    float t = (float)((double)lo + u * ((double)hi - (double)lo));
    if (!(t < hi)) /* also NaN, from an infinite bound */
        t = nextafterf(hi, -INFINITY);
    if (t < lo)
        t = lo;
    return t;
}

/* Whether the column takes two different values (NaN aside) at the rows idx[begin, end):
 * exactly when its minimum is below its maximum, but it stops at the first number that
 * differs from the first one, which for a feature that varies is nearly always within the
 * node's first few rows. (+0 and -0 are equal here as they are to the minimum and maximum.) */
static bool varies(const float *col, const uint32_t *idx, uint32_t begin, uint32_t end)
{
    uint32_t i = begin;
    while (i < end && isnan(col[idx[i]]))
        i++;
    if (i == end)
        return false;
    const float first = col[idx[i]];
    for (i++; i < end; i++) {
        float v = col[idx[i]];
        if (v < first || v > first) /* NaN is neither */
            return true;
    }
    return false;
}

/* Grows the subtree of the rows idx[begin, end) at `depth`, choosing among the n_cand
 * features cand (those not constant in the parent), and appends it in pre-order.
 *
 * The draws must see the features that are not constant in the node, in cand's order (so
 * that constant columns change nothing, and a seed keeps giving the trees it always gave):
 * one draw among them picks the feature, one draws the threshold between its minimum and
 * maximum. Finding them does not need every candidate's minimum and maximum, only whether
 * it varies, which is usually settled by the first two rows; only the picked feature is
 * scanned whole. (Taking every candidate's minimum and maximum made training cost grow with
 * the number of features: 63 % of the time on pima's 8.) */
static void grow(struct grower *g, uint32_t begin, uint32_t end, uint32_t depth,
                 const uint32_t *cand, uint32_t n_cand)
{
    const uint32_t size = end - begin;
    if (depth >= g->depth_limit || size <= 1) {
        emit(g, IFO_LEAF, (float)(depth + g->c_of[size]));
        return;
    }
    const uint32_t psi = g->psi;
    const uint32_t *idx = g->idx;
    uint32_t *mine = g->cand + (size_t)(depth + 1) * g->n_cols;
    uint32_t n_mine = 0;
    for (uint32_t k = 0; k < n_cand; k++) {
        if (varies(g->cols + (size_t)cand[k] * psi, idx, begin, end))
            mine[n_mine++] = cand[k];
    }
    if (n_mine == 0) { /* every feature constant (or NaN) in the node */
        emit(g, IFO_LEAF, (float)(depth + g->c_of[size]));
        return;
    }
    uint32_t feature = mine[rng_below(&g->rng, n_mine)];
    const float *col = g->cols + (size_t)feature * psi;
    float lo = INFINITY, hi = -INFINITY;
    for (uint32_t i = begin; i < end; i++) {
        float v = col[idx[i]];
        lo = v < lo ? v : lo; /* NaN compares false: ignored */
        hi = v > hi ? v : hi;
    }
    float t = draw_threshold(&g->rng, lo, hi);

    /* Partition: x <= t to the front; NaN fails the test and goes right. Lomuto's scheme
     * without a branch (the test is a coin toss the predictor would miss half the time):
     * [begin, i) went left, [i, k) right; each row is swapped to i, which moves on if it
     * goes left. The trees depend only on which rows go where, not on their order. */
    uint32_t *ix = g->idx;
    uint32_t i = begin;
    for (uint32_t k = begin; k < end; k++) {
        uint32_t row = ix[k];
        uint32_t left = col[row] <= t;
        ix[k] = ix[i];
        ix[i] = row;
        i += left;
    }
    /* Both sides hold a row: the minimum goes left, the maximum right. */
    emit(g, feature, t);
    grow(g, begin, i, depth + 1, mine, n_mine);
    grow(g, i, end, depth + 1, mine, n_mine);
}

/* Grows tree `tree` into g->out (g->n_out nodes). */
static void grow_tree(struct grower *g, uint64_t seed, uint32_t tree)
{
    rng_seed(&g->rng, seed, tree);
    draw_sample(g);
    uint32_t *all = g->cand; /* depth 0's candidates: every feature */
    for (uint32_t c = 0; c < g->n_cols; c++)
        all[c] = c;
    g->n_out = 0;
    grow(g, 0, g->psi, 0, all, g->n_cols);
}

/* ---- training threads ---- */

struct train_job {
    const double *x;
    uint64_t n_rows;
    uint32_t n_cols, psi, depth_limit, n_trees;
    uint64_t seed;
    struct ifo_node **trees; /* n_trees: each tree's nodes, malloc'ed */
    uint32_t *counts;        /* n_trees: its node count */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t next;   /* the next tree to grow */
    uint32_t done;   /* trees finished */
    unsigned active; /* helper threads still running */
    int rc;          /* first failure */
};

/* Grows trees from the shared counter until none is left or a failure stops everyone.
 * Returns after each tree when `one` is set (so the caller can report progress). */
static void train_work(struct train_job *j, struct grower *g, bool one)
{
    for (;;) {
        pthread_mutex_lock(&j->mu);
        uint32_t t = j->rc == 0 && j->next < j->n_trees ? j->next++ : UINT32_MAX;
        pthread_mutex_unlock(&j->mu);
        if (t == UINT32_MAX)
            return;
        grow_tree(g, j->seed, t);
        struct ifo_node *copy = malloc(g->n_out * sizeof *copy);
        if (copy != NULL)
            memcpy(copy, g->out, g->n_out * sizeof *copy);
        pthread_mutex_lock(&j->mu);
        if (copy == NULL) {
            j->rc = CANARY_ENOMEM;
        } else {
            j->trees[t] = copy;
            j->counts[t] = g->n_out;
            j->done++;
        }
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        if (one)
            return;
    }
}

static void *train_main(void *arg)
{
    struct train_job *j = arg;
    struct grower g;
    if (grower_init(&g, j->x, j->n_rows, j->n_cols, j->psi, j->depth_limit) == CANARY_OK) {
        train_work(j, &g, false);
        grower_free(&g);
    } else {
        pthread_mutex_lock(&j->mu);
        j->rc = CANARY_ENOMEM;
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_lock(&j->mu);
    j->active--;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Grows every tree on `threads` threads (the caller's included), reporting progress from the
 * calling thread. Fills j->trees and j->counts; returns 0 or CANARY_ENOMEM. */
static int train_trees(struct train_job *j, unsigned threads,
                       void (*progress)(void *arg, size_t done, size_t total), void *progress_arg)
{
    struct grower g;
    if (grower_init(&g, j->x, j->n_rows, j->n_cols, j->psi, j->depth_limit) != CANARY_OK)
        return CANARY_ENOMEM;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    pthread_t tids[IFO_MAX_THREADS];
    unsigned started = 0;
    for (unsigned i = 1; i < threads; i++) {
        pthread_mutex_lock(&j->mu);
        j->active++;
        pthread_mutex_unlock(&j->mu);
        if (pthread_create(&tids[started], NULL, train_main, j) != 0) {
            pthread_mutex_lock(&j->mu);
            j->active--; /* fewer helpers; the caller grows what they would have */
            pthread_mutex_unlock(&j->mu);
            break;
        }
        started++;
    }

    uint32_t reported = 0;
    for (;;) {
        train_work(j, &g, true);
        pthread_mutex_lock(&j->mu);
        bool more = j->rc == 0 && j->next < j->n_trees;
        while (!more && j->active > 0 && j->done == reported)
            pthread_cond_wait(&j->cv, &j->mu);
        uint32_t done = j->done;
        bool finished = !more && j->active == 0;
        pthread_mutex_unlock(&j->mu);
        if (progress != NULL && done != reported)
            progress(progress_arg, done, j->n_trees);
        reported = done;
        if (finished)
            break;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    grower_free(&g);
    return j->rc;
}

/* ---- the forest object ---- */

struct iforest *iforest__alloc(uint32_t n_cols, uint32_t n_trees)
{
    struct iforest *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->n_cols = n_cols;
    f->params.n_trees = n_trees;
    f->names = calloc(n_cols, sizeof *f->names);
    f->tree_start = calloc((size_t)n_trees + 1, sizeof *f->tree_start);
    if (f->names == NULL || f->tree_start == NULL) {
        iforest_free(f);
        return NULL;
    }
    f->meta.eval_roc_auc = NAN;
    f->meta.eval_pr_auc = NAN;
    return f;
}

void iforest_free(struct iforest *f)
{
    if (f == NULL)
        return;
    free(f->names);
    free(f->tree_start);
    free(f->nodes);
    free(f->thr);
    free(f->fx);
    free(f->leaves);
    free(f->deep);
    free(f);
}

bool iforest__tree_valid(const struct ifo_node *nodes, uint32_t n, uint32_t n_cols,
                         uint32_t max_depth, double max_path, char *why, size_t whylen)
{
    /* Depths of the subtrees still to come; an internal node replaces its own entry with
     * its two children's, so at most max_depth + 1 entries are pending. */
    uint8_t pending[IFOREST_MAX_DEPTH + 2];
    uint32_t top = 0;
    pending[top++] = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (top == 0) {
            canary_errf(why, whylen, "the tree ends at node %u of %u", k, n);
            return false;
        }
        uint32_t depth = pending[--top];
        const struct ifo_node *nd = &nodes[k];
        if (nd->feature == IFO_LEAF) {
            float v = nd->value;
            if (!(v >= 0.0f && v <= max_path)) {
                canary_errf(why, whylen, "node %u: path length %g outside [0, %g]", k, (double)v,
                            max_path);
                return false;
            }
            continue;
        }
        if (depth >= max_depth) {
            canary_errf(why, whylen, "node %u: a split below the height limit %u", k, max_depth);
            return false;
        }
        if (nd->feature >= n_cols) {
            canary_errf(why, whylen, "node %u: feature %u of %u", k, nd->feature, n_cols);
            return false;
        }
        if (!isfinite(nd->value)) { /* training never makes one; NaN == +inf relies on it */
            canary_errf(why, whylen, "node %u: threshold %g is not a finite number", k,
                        (double)nd->value);
            return false;
        }
        pending[top++] = (uint8_t)(depth + 1);
        pending[top++] = (uint8_t)(depth + 1);
    }
    if (top != 0) {
        canary_errf(why, whylen, "%u nodes end before the tree is complete", n);
        return false;
    }
    return true;
}

/* ---- the threshold from the contamination ---- */

static void swap_double(double *a, double *b)
{
    double t = *a;
    *a = *b;
    *b = t;
}

/* Rearranges v[0 .. n) (no NaN) so that v[k] holds the k-th smallest value, with nothing
 * larger before it and nothing smaller after it. Quickselect (Hoare's FIND) with a
 * pseudo-random pivot and a three-way partition, so that the many equal scores of data with
 * duplicate rows cost nothing: expected O(n) whatever the order of v. */
static void select_kth(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    uint64_t state = 0x2545F4914F6CDD1Dull;
    while (hi - lo > 1) {
        double pivot = v[lo + (size_t)(rng_splitmix64(&state) % (hi - lo))];
        size_t lt = lo, i = lo, gt = hi; /* [lo, lt) < pivot, [lt, i) == pivot, [gt, hi) > */
        while (i < gt) {
            if (v[i] < pivot)
                swap_double(&v[lt++], &v[i++]);
            else if (v[i] > pivot)
                swap_double(&v[i], &v[--gt]);
            else
                i++;
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return; /* v[k] == pivot, in its final place */
    }
}

/* The q-quantile of v[0 .. n), linear between order statistics as numpy.percentile (and so
 * scikit-learn's offset_) computes it. Reorders v. */
static double quantile(double *v, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo >= n - 1)
        lo = n - 1;
    select_kth(v, n, lo);
    if (lo == n - 1)
        return v[lo];
    double frac = pos - (double)lo, a = v[lo], b = v[lo + 1];
    for (size_t i = lo + 2; i < n; i++) /* the next order statistic: the least after lo */
        b = v[i] < b ? v[i] : b;
    /* numpy's _lerp: exact at both ends. */
    return frac < 0.5 ? a + (b - a) * frac : b - (b - a) * (1.0 - frac);
}

/* ---- training ---- */

static int check_train_args(const struct iforest_params *p, const double *x, size_t n_rows,
                            size_t n_cols, const char *const *names, char *err, size_t errlen)
{
    if (p->n_trees < 1 || p->n_trees > IFOREST_MAX_TREES) {
        canary_errf(err, errlen, "n_trees must be 1 to %d, got %u", IFOREST_MAX_TREES, p->n_trees);
        return CANARY_EINVAL;
    }
    if (p->subsample < 2 || p->subsample > IFOREST_MAX_SUBSAMPLE) {
        canary_errf(err, errlen, "subsample must be 2 to %d, got %u", IFOREST_MAX_SUBSAMPLE,
                    p->subsample);
        return CANARY_EINVAL;
    }
    if (p->max_depth > IFOREST_MAX_DEPTH) {
        canary_errf(err, errlen, "max_depth must be 0 (ceil(log2 subsample)) or 1 to %d, got %u",
                    IFOREST_MAX_DEPTH, p->max_depth);
        return CANARY_EINVAL;
    }
    if (!(p->contamination >= 0.0 && p->contamination <= 0.5)) {
        canary_errf(err, errlen, "contamination must be 0 (auto) or in (0, 0.5], got %g",
                    p->contamination);
        return CANARY_EINVAL;
    }
    if (n_cols < 1 || n_cols > IFOREST_MAX_FEATURES) {
        canary_errf(err, errlen, "the data must have 1 to %d columns, got %zu",
                    IFOREST_MAX_FEATURES, n_cols);
        return CANARY_EINVAL;
    }
    if (n_rows < 2) {
        canary_errf(err, errlen, "training needs at least 2 rows, got %zu", n_rows);
        return CANARY_EINVAL;
    }
    if (n_rows > SIZE_MAX / sizeof(double) / n_cols) {
        canary_errf(err, errlen, "%zu rows of %zu columns do not fit in memory", n_rows, n_cols);
        return CANARY_EINVAL;
    }
    if (x == NULL) {
        canary_errf(err, errlen, "no training data (x is NULL)");
        return CANARY_EINVAL;
    }
    if (names == NULL)
        return CANARY_OK;
    for (size_t c = 0; c < n_cols; c++) {
        if (names[c] == NULL || names[c][0] == '\0') {
            canary_errf(err, errlen, "feature name %zu is missing or empty", c);
            return CANARY_EINVAL;
        }
        size_t len = strnlen(names[c], IFOREST_NAME_MAX);
        if (len >= IFOREST_NAME_MAX) {
            canary_errf(err, errlen, "feature name %zu ('%.20s...') is longer than %d bytes", c,
                        names[c], IFOREST_NAME_MAX - 1);
            return CANARY_EINVAL;
        }
        for (size_t k = 0; k < c; k++) {
            if (strcmp(names[k], names[c]) == 0) {
                canary_errf(err, errlen, "features %zu and %zu are both named '%s'", k, c,
                            names[c]);
                return CANARY_EINVAL;
            }
        }
    }
    return CANARY_OK;
}

/* Copies at most size - 1 bytes of src and terminates. */
static void copy_str(char *dst, const char *src, size_t size)
{
    size_t len = strnlen(src, size - 1);
    memcpy(dst, src, len);
    memset(dst + len, 0, size - len);
}

int iforest_train(struct iforest **out, const struct iforest_params *p, const double *x,
                  size_t n_rows, size_t n_cols, const char *const *names,
                  const struct iforest_meta *meta,
                  void (*progress)(void *arg, size_t done, size_t total), void *progress_arg,
                  char *err, size_t errlen)
{
    struct iforest_params defaults;
    if (p == NULL) {
        iforest_params_default(&defaults);
        p = &defaults;
    }
    if (out == NULL) {
        canary_errf(err, errlen, "no place for the forest (out is NULL)");
        return CANARY_EINVAL;
    }
    *out = NULL;
    int rc = check_train_args(p, x, n_rows, n_cols, names, err, errlen);
    if (rc != CANARY_OK)
        return rc;

    const uint32_t psi = n_rows < p->subsample ? (uint32_t)n_rows : p->subsample;
    const uint32_t depth = p->max_depth != 0 ? p->max_depth : iforest__default_depth(psi);
    struct iforest *f = iforest__alloc((uint32_t)n_cols, p->n_trees);
    if (f == NULL)
        goto nomem;
    f->params = *p;
    f->params.subsample = psi;
    f->params.max_depth = depth;
    f->c_psi = iforest_c(psi);
    f->threshold = 0.5;
    for (size_t c = 0; c < n_cols; c++) {
        if (names != NULL)
            copy_str(f->names[c], names[c], IFOREST_NAME_MAX);
        else
            snprintf(f->names[c], IFOREST_NAME_MAX, "f%zu", c);
    }
    if (meta != NULL) {
        f->meta = *meta;
        copy_str(f->meta.source, meta->source, sizeof f->meta.source);
        copy_str(f->meta.features_kind, meta->features_kind, sizeof f->meta.features_kind);
        copy_str(f->meta.eval_source, meta->eval_source, sizeof f->meta.eval_source);
    } else {
        copy_str(f->meta.features_kind, "raw", sizeof f->meta.features_kind);
    }
    if (f->meta.train_rows == 0)
        f->meta.train_rows = n_rows;

    struct train_job job = {.x = x,
                            .n_rows = n_rows,
                            .n_cols = (uint32_t)n_cols,
                            .psi = psi,
                            .depth_limit = depth,
                            .n_trees = p->n_trees,
                            .seed = p->seed};
    job.trees = calloc(p->n_trees, sizeof *job.trees);
    job.counts = calloc(p->n_trees, sizeof *job.counts);
    if (job.trees == NULL || job.counts == NULL)
        rc = CANARY_ENOMEM;
    else
        rc = train_trees(&job, iforest__threads(p->threads, p->n_trees), progress, progress_arg);
    if (rc == CANARY_OK) {
        size_t total = 0;
        for (uint32_t t = 0; t < p->n_trees; t++) {
            f->tree_start[t] = (uint32_t)total;
            total += job.counts[t];
        }
        f->tree_start[p->n_trees] = (uint32_t)total;
        f->nodes = malloc(total * sizeof *f->nodes);
        if (f->nodes == NULL)
            rc = CANARY_ENOMEM;
        for (uint32_t t = 0; rc == CANARY_OK && t < p->n_trees; t++)
            memcpy(f->nodes + f->tree_start[t], job.trees[t], job.counts[t] * sizeof *f->nodes);
    }
    for (uint32_t t = 0; job.trees != NULL && t < p->n_trees; t++)
        free(job.trees[t]);
    free(job.trees);
    free(job.counts);
    if (rc == CANARY_OK)
        rc = iforest__compile(f);
    if (rc != CANARY_OK)
        goto nomem;

    if (p->contamination > 0.0) {
        double *s = malloc(n_rows * sizeof *s);
        if (s == NULL || iforest_score(f, x, n_rows, p->threads, s) != CANARY_OK) {
            free(s);
            goto nomem;
        }
        f->threshold = quantile(s, n_rows, 1.0 - p->contamination);
        free(s);
    }
    *out = f;
    return CANARY_OK;

nomem:
    iforest_free(f);
    canary_errf(err, errlen, "out of memory training %u trees of %u rows x %zu features",
                p->n_trees, psi, n_cols);
    return CANARY_ENOMEM;
}

/* ---- accessors ---- */

size_t iforest_n_features(const struct iforest *f)
{
    return f->n_cols;
}

const char *iforest_feature_name(const struct iforest *f, size_t i)
{
    return i < f->n_cols ? f->names[i] : NULL;
}

double iforest_threshold(const struct iforest *f)
{
    return f->threshold;
}

void iforest_set_threshold(struct iforest *f, double threshold)
{
    f->threshold = threshold;
}

const struct iforest_params *iforest_params_of(const struct iforest *f)
{
    return &f->params;
}

const struct iforest_meta *iforest_meta_of(const struct iforest *f)
{
    return &f->meta;
}

struct iforest_meta *iforest_meta_mut(struct iforest *f)
{
    return &f->meta;
}
