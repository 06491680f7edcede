/* iforest.c — Isolation Forest training and scoring (the contract is in iforest.h; the model
 * file is iforest_io.c).
 *
 * The algorithm is the paper's (Liu, Ting & Zhou, "Isolation Forest", ICDM 2008, algorithms
 * 1-3), with scikit-learn's conventions where the paper leaves a choice, so that the two rank
 * rows alike: psi = min(subsample, rows), height limit ceil(log2 psi), c(2) = 1, c(1) = 0,
 * a split x <= p going left with p drawn uniformly in [min, max).
 *
 * Training. Each tree draws its psi rows without replacement (Floyd's algorithm over a small
 * hash set: O(psi) per tree whatever the number of rows), copies them to a column-major float
 * block, and grows depth-first by partitioning an index array. At every node it takes the
 * minimum and maximum of each candidate feature over the node's rows (ignoring NaN); the
 * candidates are the features not constant in the parent, since a feature constant in a
 * node is constant in its children. One draw picks a feature among the non-constant ones and
 * one draws the threshold. A feature constant in the node is therefore never drawn, and the
 * draws do not depend on how many constant features there are: adding constant columns gives
 * the same trees, bit for bit. The threshold is drawn in double and rounded to float, then
 * kept inside [min, max) (rounding could reach max), so both children are never empty.
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
 * Scoring. Trees are compiled to a layout described in iforest_internal.h: for height limits
 * up to IFO_COMPLETE_MAX_DEPTH (10), a complete binary tree where a row takes exactly D
 * branch-free steps; deeper trees a compact node array. A batch is cut into one contiguous
 * range of rows per thread; each thread converts blocks of 64 rows to float once, column-major,
 * and runs every tree over the block before the next block, so the forest (3 KiB per tree at
 * D = 8, 300 KiB for 100 trees) stays in the core's cache. On a CPU with AVX-512F and D <= 8
 * the scorer moves 16 rows per vector down a tree with in-register table lookups (see
 * block_avx512); otherwise a portable scorer walks eight rows at a time so their loads
 * overlap. Every scorer compares exactly as `x <= threshold` does and sums path lengths in
 * double in tree order, so the batch scorers and iforest_score_row (eight trees at a time for
 * one row) give the same bits for the same row. */
#include "ml/iforest.h"

#include "core/error.h"
#include "ml/iforest_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EULER_GAMMA       0.57721566490153286061
#define IFO_MAX_THREADS   256
#define IFO_ROWS_PER_TASK 4096 /* fewer rows than this per thread are not worth a thread */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

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
static unsigned resolve_threads(unsigned asked, size_t units)
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

/* ---- random numbers: splitmix64 to seed, xoshiro256** to draw (Blackman & Vigna) ---- */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Stream `stream` of `seed`: distinct streams start from well-separated states. */
static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t k = stream;
    uint64_t state = seed ^ splitmix64(&k);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&state);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
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

/* Uniform in [0, 1) with 53 random bits. */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
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
    float *lo, *hi;       /* n_cols: minimum and maximum of the node's candidates */
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
    free(g->lo);
    free(g->hi);
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
    g->lo = malloc(n_cols * sizeof *g->lo);
    g->hi = malloc(n_cols * sizeof *g->hi);
    g->out = malloc((2 * (size_t)psi - 1) * sizeof *g->out);
    if (!g->sample || !g->set || !g->cols || !g->idx || !g->cand || !g->lo || !g->hi || !g->out) {
        grower_free(g);
        return CANARY_ENOMEM;
    }
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
    double u = rng_unit(r);
    float t = (float)((double)lo + u * ((double)hi - (double)lo));
    if (!(t < hi)) /* also NaN, from an infinite bound */
        t = nextafterf(hi, -INFINITY);
    if (t < lo)
        t = lo;
    return t;
}

/* Grows the subtree of the rows idx[begin, end) at `depth`, choosing among the n_cand
 * features cand (those not constant in the parent), and appends it in pre-order. */
static void grow(struct grower *g, uint32_t begin, uint32_t end, uint32_t depth,
                 const uint32_t *cand, uint32_t n_cand)
{
    const uint32_t size = end - begin;
    if (depth >= g->depth_limit || size <= 1) {
        emit(g, IFO_LEAF, (float)(depth + iforest_c(size)));
        return;
    }
    const uint32_t psi = g->psi;
    const uint32_t *idx = g->idx;
    uint32_t *mine = g->cand + (size_t)(depth + 1) * g->n_cols;
    uint32_t n_mine = 0;
    for (uint32_t k = 0; k < n_cand; k++) {
        const float *col = g->cols + (size_t)cand[k] * psi;
        float lo = INFINITY, hi = -INFINITY;
        for (uint32_t i = begin; i < end; i++) {
            float v = col[idx[i]];
            lo = v < lo ? v : lo; /* NaN compares false: ignored */
            hi = v > hi ? v : hi;
        }
        if (lo < hi) {
            g->lo[n_mine] = lo;
            g->hi[n_mine] = hi;
            mine[n_mine++] = cand[k];
        }
    }
    if (n_mine == 0) { /* every feature constant (or NaN) in the node */
        emit(g, IFO_LEAF, (float)(depth + iforest_c(size)));
        return;
    }
    uint32_t pick = (uint32_t)rng_below(&g->rng, n_mine);
    uint32_t feature = mine[pick];
    float t = draw_threshold(&g->rng, g->lo[pick], g->hi[pick]);

    /* Partition: x <= t to the front; NaN fails the test and goes right. */
    const float *col = g->cols + (size_t)feature * psi;
    uint32_t *ix = g->idx;
    uint32_t i = begin, j = end;
    while (i < j) {
        if (col[ix[i]] <= t) {
            i++;
        } else {
            j--;
            uint32_t tmp = ix[i];
            ix[i] = ix[j];
            ix[j] = tmp;
        }
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
            set_err(why, whylen, "the tree ends at node %u of %u", k, n);
            return false;
        }
        uint32_t depth = pending[--top];
        const struct ifo_node *nd = &nodes[k];
        if (nd->feature == IFO_LEAF) {
            float v = nd->value;
            if (!(v >= 0.0f && v <= max_path)) {
                set_err(why, whylen, "node %u: path length %g outside [0, %g]", k, (double)v,
                        max_path);
                return false;
            }
            continue;
        }
        if (depth >= max_depth) {
            set_err(why, whylen, "node %u: a split below the height limit %u", k, max_depth);
            return false;
        }
        if (nd->feature >= n_cols) {
            set_err(why, whylen, "node %u: feature %u of %u", k, nd->feature, n_cols);
            return false;
        }
        if (!isfinite(nd->value)) { /* training never makes one; NaN == +inf relies on it */
            set_err(why, whylen, "node %u: threshold %g is not a finite number", k,
                    (double)nd->value);
            return false;
        }
        pending[top++] = (uint8_t)(depth + 1);
        pending[top++] = (uint8_t)(depth + 1);
    }
    if (top != 0) {
        set_err(why, whylen, "%u nodes end before the tree is complete", n);
        return false;
    }
    return true;
}

/* Copies tree node pos (pre-order) and its subtree into tree t's complete layout at heap
 * index i, depth `depth`; returns the position after the subtree. */
static uint32_t fill_complete(struct iforest *f, size_t at, uint32_t pos, uint32_t i,
                              uint32_t depth)
{
    const struct ifo_node *nd = &f->nodes[pos];
    const uint32_t limit = f->params.max_depth;
    if (nd->feature == IFO_LEAF) {
        /* A pass-through: every leaf below holds this node's path length. */
        uint32_t below = limit - depth;
        uint32_t first = (i << below) - f->width, count = 1u << below;
        for (uint32_t k = 0; k < count; k++)
            f->leaves[at + first + k] = nd->value;
        return pos + 1;
    }
    f->thr[at + i] = nd->value;
    f->fx[at + i] = nd->feature * IFO_LANES;
    pos = fill_complete(f, at, pos + 1, 2 * i, depth + 1);
    return fill_complete(f, at, pos, 2 * i + 1, depth + 1);
}

/* Copies the subtree at pos into the deep layout; returns the position after it. */
static uint32_t fill_deep(struct iforest *f, uint32_t base, uint32_t pos)
{
    const struct ifo_node *nd = &f->nodes[pos];
    struct ifo_deep *d = &f->deep[pos];
    d->value = nd->value;
    d->feature = nd->feature;
    d->right = 0;
    if (nd->feature == IFO_LEAF)
        return pos + 1;
    uint32_t right = fill_deep(f, base, pos + 1);
    d->right = right - base;
    return fill_deep(f, base, right);
}

static bool have_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

int iforest__compile(struct iforest *f)
{
    const uint32_t T = f->params.n_trees, D = f->params.max_depth;
    free(f->thr);
    free(f->fx);
    free(f->leaves);
    free(f->deep);
    f->thr = NULL;
    f->fx = NULL;
    f->leaves = NULL;
    f->deep = NULL;
    if (D <= IFO_COMPLETE_MAX_DEPTH) {
        f->layout = IFO_LAYOUT_COMPLETE;
        f->kernel = D <= 8 && have_avx512() ? IFO_KERNEL_AVX512 : IFO_KERNEL_SCALAR;
        f->width = 1u << D;
        size_t cells = (size_t)T * f->width;
        f->thr = calloc(cells, sizeof *f->thr);
        f->fx = calloc(cells, sizeof *f->fx);
        f->leaves = malloc(cells * sizeof *f->leaves);
        if (f->thr == NULL || f->fx == NULL || f->leaves == NULL)
            return CANARY_ENOMEM;
        for (uint32_t t = 0; t < T; t++)
            fill_complete(f, (size_t)t * f->width, f->tree_start[t], 1, 0);
    } else {
        f->layout = IFO_LAYOUT_DEEP;
        f->kernel = IFO_KERNEL_DEEP;
        f->width = 0;
        f->deep = malloc((size_t)f->tree_start[T] * sizeof *f->deep);
        if (f->deep == NULL)
            return CANARY_ENOMEM;
        for (uint32_t t = 0; t < T; t++)
            fill_deep(f, f->tree_start[t], f->tree_start[t]);
    }
    return CANARY_OK;
}

/* ---- scoring ----
 *
 * A batch is scored in blocks of IFO_BLOCK rows: IFO_VECS vectors of IFO_LANES rows, each
 * vector's values column-major (feature c of lane l at c * IFO_LANES + l), with the feature
 * count padded to a power of two up to 16, so that for narrow data a vector's values form one
 * lookup table of 2^lgx floats indexed by feature * IFO_LANES + lane (fx | lane).
 *
 * Every scorer adds a row's path lengths in double, tree after tree from tree 0, starting
 * from 0.0, and compares exactly as `x <= threshold` does (false for NaN): so all of them,
 * and iforest_score_row, give the same bits for the same row. */

#define IFO_VECS  4
#define IFO_BLOCK (IFO_VECS * IFO_LANES)

/* The padded feature count of a block vector, and log2 of its table size (0: no table, the
 * AVX-512 scorer gathers instead). */
static uint32_t block_cols(uint32_t nc)
{
    if (nc > 16)
        return nc;
    uint32_t p = 1;
    while (p < nc)
        p <<= 1;
    return p;
}

static unsigned block_lgx(uint32_t nc)
{
    if (nc > 16)
        return 0;
    unsigned lg = 4;
    while ((1u << (lg - 4)) < nc)
        lg++;
    return lg;
}

/* Converts rows x[0 .. n) (n <= IFO_BLOCK) into block layout; vstride = IFO_LANES x
 * block_cols. Lanes past n keep what they held (their results are not used). */
static void fill_block(const double *x, size_t n, uint32_t nc, size_t vstride, float *xc)
{
    for (size_t r = 0; r < n; r++) {
        float *dst = xc + (r / IFO_LANES) * vstride + r % IFO_LANES;
        const double *row = x + r * nc;
        for (uint32_t c = 0; c < nc; c++)
            dst[(size_t)c * IFO_LANES] = (float)row[c];
    }
}

/* One step down a complete tree for the row at x (a block lane): x <= threshold goes to 2i,
 * anything else (NaN too) to 2i + 1. */
#define STEP(i, x, r) ((i) = 2 * (i) + !((x)[fx[i] + (r)] <= th[i]))

/* Portable scorer: adds every tree's path length to acc[0 .. IFO_BLOCK), eight lanes at a
 * time so that their loads overlap. */
static void block_scalar(const struct iforest *f, const float *xc, size_t vstride, double *acc)
{
    const uint32_t D = f->params.max_depth, W = f->width;
    for (uint32_t t = 0; t < f->params.n_trees; t++) {
        const float *th = f->thr + (size_t)t * W, *leaf = f->leaves + (size_t)t * W;
        const uint32_t *fx = f->fx + (size_t)t * W;
        for (size_t g = 0; g < IFO_BLOCK / 8; g++) {
            const float *x = xc + (g / 2) * vstride + (g % 2) * 8;
            uint32_t i0 = 1, i1 = 1, i2 = 1, i3 = 1, i4 = 1, i5 = 1, i6 = 1, i7 = 1;
            for (uint32_t d = 0; d < D; d++) {
                STEP(i0, x, 0);
                STEP(i1, x, 1);
                STEP(i2, x, 2);
                STEP(i3, x, 3);
                STEP(i4, x, 4);
                STEP(i5, x, 5);
                STEP(i6, x, 6);
                STEP(i7, x, 7);
            }
            double *a = acc + g * 8;
            a[0] += leaf[i0 - W];
            a[1] += leaf[i1 - W];
            a[2] += leaf[i2 - W];
            a[3] += leaf[i3 - W];
            a[4] += leaf[i4 - W];
            a[5] += leaf[i5 - W];
            a[6] += leaf[i6 - W];
            a[7] += leaf[i7 - W];
        }
    }
}

/* Deep layout: a walk per row and tree. */
static void block_deep(const struct iforest *f, const float *xc, size_t vstride, size_t n,
                       double *acc)
{
    for (uint32_t t = 0; t < f->params.n_trees; t++) {
        const struct ifo_deep *tree = f->deep + f->tree_start[t];
        for (size_t r = 0; r < n; r++) {
            const float *x = xc + (r / IFO_LANES) * vstride + r % IFO_LANES;
            uint32_t i = 0;
            while (tree[i].feature != IFO_LEAF)
                i = x[(size_t)tree[i].feature * IFO_LANES] <= tree[i].value ? i + 1 : tree[i].right;
            acc[r] += tree[i].value;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The AVX-512 scorer. Sixteen rows move down a tree together, one per lane. Gathers are slow
 * (about one element per cycle), so node data comes from in-register table lookups instead:
 * a tree level k is the contiguous run of 2^k thresholds (and features) at [2^k, 2^(k+1)),
 * and a lane's position within its level indexes it. Up to 16 entries take one vpermps,
 * 32 one vpermt2ps, more a vpermt2ps per 32 and a blend tree on the position's higher bits;
 * the same lookup picks a lane's value of its node's feature out of the block's columns.
 * Four vectors are in flight so that the lookups' latencies overlap. */
#define AVX512_INLINE static inline __attribute__((target("avx512f"), always_inline))

/* tab[idx] per lane for a table of 2^lg floats, lg <= 4 (any value of lg at run time). */
AVX512_INLINE __m512 lut_small(const float *tab, unsigned lg, __m512i idx)
{
    __mmask16 live = (__mmask16)((1u << (1u << lg)) - 1);
    return _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(live, tab));
}

/* tab[idx] per lane for a table of 2^lg floats, 5 <= lg <= 8 (a constant once inlined). */
AVX512_INLINE __m512 lut_big(const float *tab, unsigned lg, __m512i idx)
{
    __m512 r[8];
    const unsigned pieces = 1u << (lg - 5);
#pragma GCC unroll 8
    for (unsigned j = 0; j < pieces; j++)
        r[j] = _mm512_permutex2var_ps(_mm512_loadu_ps(tab + 32 * j), idx,
                                      _mm512_loadu_ps(tab + 32 * j + 16));
#pragma GCC unroll 4
    for (unsigned b = 5; b < lg; b++) {
        __mmask16 high = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(1 << b));
        const unsigned step = 1u << (b - 4);
#pragma GCC unroll 8
        for (unsigned j = 0; j < pieces; j += step)
            r[j] = _mm512_mask_blend_ps(high, r[j], r[j + step / 2]);
    }
    return r[0];
}

AVX512_INLINE __m512i lut_big_u32(const uint32_t *tab, unsigned lg, __m512i idx)
{
    return _mm512_castps_si512(lut_big((const float *)tab, lg, idx));
}

/* Each lane's value of feature fx / IFO_LANES from its block vector xv. */
AVX512_INLINE __m512 block_value(const float *xv, unsigned lgx, __m512i fx, __m512i lane)
{
    if (lgx == 0)
        return _mm512_i32gather_ps(_mm512_add_epi32(fx, lane), xv, 4);
    if (lgx == 4)
        return _mm512_loadu_ps(xv); /* one feature */
    return lut_big(xv, lgx, _mm512_or_si512(fx, lane));
}

/* pos = 2 pos + !(x <= t): NLE_UQ is true for x > t and for NaN. */
AVX512_INLINE __m512i descend(__m512i pos, __m512 x, __m512 t)
{
    __mmask16 right = _mm512_cmp_ps_mask(x, t, _CMP_NLE_UQ);
    __m512i twice = _mm512_add_epi32(pos, pos);
    return _mm512_mask_add_epi32(twice, right, twice, _mm512_set1_epi32(1));
}

/* A level of 2^k nodes, 5 <= k <= 7, for all vectors. */
#define LEVEL_BIG(k)                                                                               \
    do {                                                                                           \
        _Pragma("GCC unroll 4") for (int v = 0; v < IFO_VECS; v++)                                 \
        {                                                                                          \
            __m512 t = lut_big(th + (1u << (k)), (k), pos[v]);                                     \
            __m512i ft = lut_big_u32(fx + (1u << (k)), (k), pos[v]);                               \
            pos[v] = descend(pos[v], block_value(xc + v * vstride, lgx, ft, lane), t);             \
        }                                                                                          \
    } while (0)

AVX512_INLINE void block_avx512(const struct iforest *f, const float *xc, size_t vstride,
                                unsigned lgx, double *acc)
{
    const uint32_t D = f->params.max_depth, W = f->width;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512d lo[IFO_VECS], hi[IFO_VECS];
#pragma GCC unroll 4
    for (int v = 0; v < IFO_VECS; v++) {
        lo[v] = _mm512_setzero_pd();
        hi[v] = _mm512_setzero_pd();
    }
    for (uint32_t tree = 0; tree < f->params.n_trees; tree++) {
        const float *th = f->thr + (size_t)tree * W, *leaf = f->leaves + (size_t)tree * W;
        const uint32_t *fx = f->fx + (size_t)tree * W;
        __m512i pos[IFO_VECS];
#pragma GCC unroll 4
        for (int v = 0; v < IFO_VECS; v++)
            pos[v] = _mm512_setzero_si512();
        for (unsigned k = 0; k < D && k < 5; k++) {
            __mmask16 live = (__mmask16)((1u << (1u << k)) - 1);
            __m512 tt = _mm512_maskz_loadu_ps(live, th + (1u << k));
            __m512i ft = _mm512_maskz_loadu_epi32(live, fx + (1u << k));
#pragma GCC unroll 4
            for (int v = 0; v < IFO_VECS; v++) {
                __m512 t = _mm512_permutexvar_ps(pos[v], tt);
                __m512i fv = _mm512_permutexvar_epi32(pos[v], ft);
                pos[v] = descend(pos[v], block_value(xc + v * vstride, lgx, fv, lane), t);
            }
        }
        if (D > 5)
            LEVEL_BIG(5);
        if (D > 6)
            LEVEL_BIG(6);
        if (D > 7)
            LEVEL_BIG(7);
#pragma GCC unroll 4
        for (int v = 0; v < IFO_VECS; v++) {
            __m512 len;
            switch (D) {
            case 8:
                len = lut_big(leaf, 8, pos[v]);
                break;
            case 7:
                len = lut_big(leaf, 7, pos[v]);
                break;
            case 6:
                len = lut_big(leaf, 6, pos[v]);
                break;
            case 5:
                len = lut_big(leaf, 5, pos[v]);
                break;
            default:
                len = lut_small(leaf, D, pos[v]);
                break;
            }
            __m256 len_lo = _mm512_castps512_ps256(len);
            __m256 len_hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(len), 1));
            lo[v] = _mm512_add_pd(lo[v], _mm512_cvtps_pd(len_lo));
            hi[v] = _mm512_add_pd(hi[v], _mm512_cvtps_pd(len_hi));
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < IFO_VECS; v++) {
        _mm512_storeu_pd(acc + v * IFO_LANES, lo[v]);
        _mm512_storeu_pd(acc + v * IFO_LANES + 8, hi[v]);
    }
}

/* One instance per block table size, so that every lookup is unrolled. */
#define BLOCK_AVX512(lgx)                                                                          \
    __attribute__((target("avx512f"))) static void block_avx512_##lgx(                             \
        const struct iforest *f, const float *xc, size_t vstride, double *acc)                     \
    {                                                                                              \
        block_avx512(f, xc, vstride, lgx, acc);                                                    \
    }
BLOCK_AVX512(0)
BLOCK_AVX512(4)
BLOCK_AVX512(5)
BLOCK_AVX512(6)
BLOCK_AVX512(7)
BLOCK_AVX512(8)

static void block_simd(const struct iforest *f, const float *xc, size_t vstride, double *acc)
{
    switch (block_lgx(f->n_cols)) {
    case 4:
        block_avx512_4(f, xc, vstride, acc);
        break;
    case 5:
        block_avx512_5(f, xc, vstride, acc);
        break;
    case 6:
        block_avx512_6(f, xc, vstride, acc);
        break;
    case 7:
        block_avx512_7(f, xc, vstride, acc);
        break;
    case 8:
        block_avx512_8(f, xc, vstride, acc);
        break;
    default:
        block_avx512_0(f, xc, vstride, acc);
        break;
    }
}
#else
static void block_simd(const struct iforest *f, const float *xc, size_t vstride, double *acc)
{
    for (size_t r = 0; r < IFO_BLOCK; r++)
        acc[r] = 0.0;
    block_scalar(f, xc, vstride, acc);
}
#endif

static double to_score(const struct iforest *f, double path_sum)
{
    return exp2(-(path_sum / f->params.n_trees) / f->c_psi);
}

/* Scores n <= IFO_BLOCK rows of x into out, with xc (IFO_VECS x vstride floats) as the
 * block and acc (IFO_BLOCK doubles) as scratch. */
static void score_block(const struct iforest *f, const double *x, size_t n, float *xc,
                        size_t vstride, double *acc, double *out)
{
    fill_block(x, n, f->n_cols, vstride, xc);
    if (f->kernel == IFO_KERNEL_AVX512) {
        block_simd(f, xc, vstride, acc);
    } else {
        for (size_t r = 0; r < IFO_BLOCK; r++)
            acc[r] = 0.0;
        if (f->kernel == IFO_KERNEL_DEEP)
            block_deep(f, xc, vstride, n, acc);
        else
            block_scalar(f, xc, vstride, acc);
    }
    for (size_t r = 0; r < n; r++)
        out[r] = to_score(f, acc[r]);
}

/* One step of one row (row-major floats) down a complete tree. */
#define ROW_STEP(i, th, fx) ((i) = 2 * (i) + !(x[(fx)[i] / IFO_LANES] <= (th)[i]))

double iforest_score_row(const struct iforest *f, const double *row)
{
    float x[IFOREST_MAX_FEATURES];
    for (uint32_t c = 0; c < f->n_cols; c++)
        x[c] = (float)row[c];
    const uint32_t T = f->params.n_trees;
    double sum = 0.0;
    if (f->layout == IFO_LAYOUT_DEEP) {
        for (uint32_t t = 0; t < T; t++) {
            const struct ifo_deep *tree = f->deep + f->tree_start[t];
            uint32_t i = 0;
            while (tree[i].feature != IFO_LEAF)
                i = x[tree[i].feature] <= tree[i].value ? i + 1 : tree[i].right;
            sum += tree[i].value;
        }
        return to_score(f, sum);
    }
    /* Eight trees at a time, so that their walks overlap (a walk is a chain of dependent
     * loads); summed in tree order. */
    const uint32_t D = f->params.max_depth, W = f->width;
    uint32_t t = 0;
    for (; t + 8 <= T; t += 8) {
        const float *th = f->thr + (size_t)t * W, *leaf = f->leaves + (size_t)t * W;
        const uint32_t *fx = f->fx + (size_t)t * W;
        uint32_t i[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            i[j] = 1;
        for (uint32_t k = 0; k < D; k++) {
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                ROW_STEP(i[j], th + j * W, fx + j * W);
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            sum += leaf[j * W + i[j] - W];
    }
    for (; t < T; t++) {
        const size_t a = (size_t)t * W;
        const float *tha = f->thr + a;
        const uint32_t *fa = f->fx + a;
        uint32_t ia = 1;
        for (uint32_t k = 0; k < D; k++)
            ROW_STEP(ia, tha, fa);
        sum += f->leaves[a + ia - W];
    }
    return to_score(f, sum);
}

struct score_task {
    const struct iforest *f;
    const double *x;
    size_t begin, end;
    float *xc;
    double *acc;
    double *scores;
    pthread_t tid;
};

static void *score_main(void *arg)
{
    struct score_task *t = arg;
    const size_t nc = t->f->n_cols, vstride = (size_t)IFO_LANES * block_cols(t->f->n_cols);
    for (size_t r = t->begin; r < t->end; r += IFO_BLOCK) {
        size_t n = t->end - r < IFO_BLOCK ? t->end - r : IFO_BLOCK;
        score_block(t->f, t->x + r * nc, n, t->xc, vstride, t->acc, t->scores + r);
    }
    return NULL;
}

int iforest_score(const struct iforest *f, const double *x, size_t n_rows, unsigned threads,
                  double *scores)
{
    if (n_rows == 0)
        return CANARY_OK;
    if (f == NULL || x == NULL || scores == NULL)
        return CANARY_EINVAL;
    unsigned n_tasks =
        resolve_threads(threads, (n_rows + IFO_ROWS_PER_TASK - 1) / IFO_ROWS_PER_TASK);
    /* Per task: the block (zeroed, so padding lanes and features are numbers) and acc. */
    const size_t block_floats = (size_t)IFO_VECS * IFO_LANES * block_cols(f->n_cols);
    struct score_task *tasks = calloc(n_tasks, sizeof *tasks);
    float *xc = calloc(n_tasks * block_floats, sizeof *xc);
    double *acc = malloc(n_tasks * IFO_BLOCK * sizeof *acc);
    if (tasks == NULL || xc == NULL || acc == NULL) {
        free(tasks);
        free(xc);
        free(acc);
        return CANARY_ENOMEM;
    }
    /* Contiguous ranges of whole blocks, as even as can be. */
    size_t blocks = (n_rows + IFO_BLOCK - 1) / IFO_BLOCK;
    for (unsigned i = 0; i < n_tasks; i++) {
        struct score_task *t = &tasks[i];
        t->f = f;
        t->x = x;
        t->scores = scores;
        t->xc = xc + i * block_floats;
        t->acc = acc + (size_t)i * IFO_BLOCK;
        t->begin = blocks * i / n_tasks * IFO_BLOCK;
        t->end = blocks * (i + 1) / n_tasks * IFO_BLOCK;
        if (t->end > n_rows)
            t->end = n_rows;
    }
    bool *started = calloc(n_tasks, sizeof *started);
    for (unsigned i = 1; started != NULL && i < n_tasks; i++)
        started[i] = pthread_create(&tasks[i].tid, NULL, score_main, &tasks[i]) == 0;
    score_main(&tasks[0]);
    for (unsigned i = 1; i < n_tasks; i++) {
        if (started != NULL && started[i])
            pthread_join(tasks[i].tid, NULL);
        else
            score_main(&tasks[i]); /* no thread: the caller does its share */
    }
    free(started);
    free(tasks);
    free(xc);
    free(acc);
    return CANARY_OK;
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
        double pivot = v[lo + (size_t)(splitmix64(&state) % (hi - lo))];
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
        set_err(err, errlen, "n_trees must be 1 to %d, got %u", IFOREST_MAX_TREES, p->n_trees);
        return CANARY_EINVAL;
    }
    if (p->subsample < 2 || p->subsample > IFOREST_MAX_SUBSAMPLE) {
        set_err(err, errlen, "subsample must be 2 to %d, got %u", IFOREST_MAX_SUBSAMPLE,
                p->subsample);
        return CANARY_EINVAL;
    }
    if (p->max_depth > IFOREST_MAX_DEPTH) {
        set_err(err, errlen, "max_depth must be 0 (ceil(log2 subsample)) or 1 to %d, got %u",
                IFOREST_MAX_DEPTH, p->max_depth);
        return CANARY_EINVAL;
    }
    if (!(p->contamination >= 0.0 && p->contamination <= 0.5)) {
        set_err(err, errlen, "contamination must be 0 (auto) or in (0, 0.5], got %g",
                p->contamination);
        return CANARY_EINVAL;
    }
    if (n_cols < 1 || n_cols > IFOREST_MAX_FEATURES) {
        set_err(err, errlen, "the data must have 1 to %d columns, got %zu", IFOREST_MAX_FEATURES,
                n_cols);
        return CANARY_EINVAL;
    }
    if (n_rows < 2) {
        set_err(err, errlen, "training needs at least 2 rows, got %zu", n_rows);
        return CANARY_EINVAL;
    }
    if (n_rows > SIZE_MAX / sizeof(double) / n_cols) {
        set_err(err, errlen, "%zu rows of %zu columns do not fit in memory", n_rows, n_cols);
        return CANARY_EINVAL;
    }
    if (x == NULL) {
        set_err(err, errlen, "no training data (x is NULL)");
        return CANARY_EINVAL;
    }
    if (names == NULL)
        return CANARY_OK;
    for (size_t c = 0; c < n_cols; c++) {
        if (names[c] == NULL || names[c][0] == '\0') {
            set_err(err, errlen, "feature name %zu is missing or empty", c);
            return CANARY_EINVAL;
        }
        size_t len = strnlen(names[c], IFOREST_NAME_MAX);
        if (len >= IFOREST_NAME_MAX) {
            set_err(err, errlen, "feature name %zu ('%.20s...') is longer than %d bytes", c,
                    names[c], IFOREST_NAME_MAX - 1);
            return CANARY_EINVAL;
        }
        for (size_t k = 0; k < c; k++) {
            if (strcmp(names[k], names[c]) == 0) {
                set_err(err, errlen, "features %zu and %zu are both named '%s'", k, c, names[c]);
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
        set_err(err, errlen, "no place for the forest (out is NULL)");
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
        rc = train_trees(&job, resolve_threads(p->threads, p->n_trees), progress, progress_arg);
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
    set_err(err, errlen, "out of memory training %u trees of %u rows x %zu features", p->n_trees,
            psi, n_cols);
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
