/* iforest_score.c — Isolation Forest scoring: the trees compiled for scoring, the batch
 * kernels that walk them, iforest_score and iforest_score_row (the contract is in iforest.h,
 * the layouts in iforest_internal.h; training is iforest.c, the model file iforest_io.c).
 *
 * Layout. Trees of height limit D <= IFO_COMPLETE_MAX_DEPTH (10; the paper's default psi 256
 * gives 8) are compiled to complete binary trees (iforest_internal.h): a row takes exactly D
 * steps i = 2i + !(x[feature] <= threshold) from i = 1, with no branch on the node kind, and
 * ends at leaf i - 2^D. Deeper trees keep a compact node array walked until an external node.
 *
 * Batches. iforest_score cuts the rows into one contiguous range per thread; each thread
 * converts blocks of IFO_BLOCK (64) rows to float once, column-major in vectors of 16 rows
 * (feature c of lane l at c * 16 + l), and runs every tree over the block before the next
 * block, so the forest (3 KiB per tree at D = 8, 300 KiB for 100 trees) stays in the core's
 * cache and a lane's value of feature c is at a fixed place in its vector.
 *
 * Kernels, fastest first; iforest__compile takes the first this CPU runs for the layout
 * (x86 ones are compiled with target attributes and chosen with __builtin_cpu_supports, so
 * the build needs no -march), iforest__set_kernel forces one for tests and benchmarks:
 *   avx512  D <= 8, AVX-512F: 16 rows per vector, node data from in-register table lookups
 *           (vpermps / vpermt2ps on the row's position within a level);
 *   avx2    AVX2: 8 rows per vector; the top three levels node-major (7 comparisons of
 *           whole columns), in-register lookups for levels 3-6 (vpermps and blends), gathers
 *           below; a lane's feature value by blends for up to 8 features;
 *   scalar  portable C, what ARM and older x86 run: the top three levels of a vector of 16
 *           rows as 7 comparisons per row that the compiler vectorises (SSE2, NEON), then 16
 *           independent walks in flight so that their dependent loads overlap;
 *   deep    the node-array walk, one row at a time.
 * http.csv (567,498 rows x 3, 100 trees of height 8), one thread, this machine (AMD EPYC, a
 * shared VM): 1.2-1.5, 2.5-2.9 and 3.5-4.3 ns per row and tree for avx512, avx2 and scalar
 * (docs/BENCHMARKS.md); avx2 gains less with more than 8 features, where it gathers.
 *
 * Same bits everywhere. Every kernel compares exactly as `x <= threshold` does (false for NaN,
 * so NaN goes right), and adds a row's path lengths in double, tree after tree from tree 0,
 * starting from 0.0; iforest_score_row (one row, eight trees at a time) does too. So every
 * kernel and the single-row path give the same bits for the same row, whatever the thread
 * count; test_iforest.c checks it for every kernel this CPU runs. */
#include "ml/iforest.h"

#include "core/error.h"
#include "ml/iforest_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define IFO_ROWS_PER_TASK 4096 /* fewer rows than this per thread are not worth a thread */

/* ---- compiling the trees, choosing a kernel ---- */

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

/* Whether this CPU (and its operating system) runs the kernel's instructions. */
static bool cpu_runs(enum ifo_kernel kernel)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (kernel == IFO_KERNEL_AVX512)
        return __builtin_cpu_supports("avx512f");
    if (kernel == IFO_KERNEL_AVX2)
        return __builtin_cpu_supports("avx2");
#endif
    return kernel == IFO_KERNEL_SCALAR || kernel == IFO_KERNEL_DEEP;
}

/* Whether `kernel` can score f on this CPU. */
static bool kernel_fits(const struct iforest *f, enum ifo_kernel kernel)
{
    if (kernel == IFO_KERNEL_DEEP)
        return f->layout == IFO_LAYOUT_DEEP;
    if (f->layout != IFO_LAYOUT_COMPLETE)
        return false;
    if (kernel == IFO_KERNEL_AVX512 && f->params.max_depth > 8)
        return false;
    return cpu_runs(kernel);
}

int iforest__set_kernel(struct iforest *f, enum ifo_kernel kernel)
{
    if (!kernel_fits(f, kernel))
        return CANARY_EINVAL;
    f->kernel = kernel;
    return CANARY_OK;
}

static const char *const kernel_names[] = {
    [IFO_KERNEL_SCALAR] = "scalar",
    [IFO_KERNEL_AVX512] = "avx512",
    [IFO_KERNEL_DEEP] = "deep",
    [IFO_KERNEL_AVX2] = "avx2",
};

const char *iforest__kernel_name(enum ifo_kernel kernel)
{
    if ((unsigned)kernel < sizeof kernel_names / sizeof *kernel_names)
        return kernel_names[kernel];
    return "?";
}

bool iforest__kernel_parse(const char *name, enum ifo_kernel *kernel)
{
    for (unsigned k = 0; k < sizeof kernel_names / sizeof *kernel_names; k++) {
        if (strcmp(name, kernel_names[k]) == 0) {
            *kernel = (enum ifo_kernel)k;
            return true;
        }
    }
    return false;
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
    /* The fastest kernel that fits, in that order. */
    static const enum ifo_kernel fastest[] = {IFO_KERNEL_AVX512, IFO_KERNEL_AVX2, IFO_KERNEL_SCALAR,
                                              IFO_KERNEL_DEEP};
    for (size_t k = sizeof fastest / sizeof *fastest; k-- > 0;)
        if (kernel_fits(f, fastest[k]))
            f->kernel = fastest[k];
    return CANARY_OK;
}

/* ---- blocks ----
 *
 * A batch is scored in blocks of IFO_BLOCK rows: IFO_VECS vectors of IFO_LANES rows, each
 * vector's values column-major (feature c of lane l at c * IFO_LANES + l), with the feature
 * count padded to a power of two up to 16, so that for narrow data a vector's values form one
 * lookup table of 2^lgx floats indexed by feature * IFO_LANES + lane (fx | lane). */

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

/* ---- the portable kernels ---- */

/* One step down a complete tree for lane r of the block vector x: x <= threshold goes to 2i,
 * anything else (NaN too) to 2i + 1. */
#define STEP(i, x, r) ((i) = 2 * (i) + !((x)[fx[i] + (r)] <= th[i]))

/* Portable scorer: adds every tree's path length to acc[0 .. IFO_BLOCK), one vector of 16
 * rows at a time. The tree's top three levels (nodes 1-7) are the same for all rows, so a
 * row's way through them is 7 comparisons and a few selects, in a loop over the 16 rows that
 * the compiler vectorises (no loads that depend on the row's position); below, 16 walks are
 * in flight so that their chains of dependent loads overlap. Indices are size_t so that x86
 * needs no zero-extension per step. Measured on http.csv here, ns per row and tree: 5.6-6.8
 * with 8 walks in flight and every level walked, 3.7-3.9 with 16 (though x86-64's 16
 * registers spill; 32 were no faster), 3.5-3.6 with the top three levels vectorised (four
 * levels: 4.2). Prefetching the next tree and storing threshold and feature side by side
 * gained nothing. */
static void block_scalar(const struct iforest *f, const float *xc, size_t vstride, double *acc)
{
    const uint32_t D = f->params.max_depth, W = f->width;
    for (uint32_t t = 0; t < f->params.n_trees; t++) {
        const float *th = f->thr + (size_t)t * W, *leaf = f->leaves + (size_t)t * W;
        const uint32_t *fx = f->fx + (size_t)t * W;
        for (size_t v = 0; v < IFO_VECS; v++) {
            const float *x = xc + v * vstride;
            size_t i[IFO_LANES];
            uint32_t d = 0;
            if (D >= 3) {
                const float *c1 = x + fx[1], *c2 = x + fx[2], *c3 = x + fx[3], *c4 = x + fx[4],
                            *c5 = x + fx[5], *c6 = x + fx[6], *c7 = x + fx[7];
                const float t1 = th[1], t2 = th[2], t3 = th[3], t4 = th[4], t5 = th[5], t6 = th[6],
                            t7 = th[7];
                uint32_t top[IFO_LANES];
                for (int r = 0; r < IFO_LANES; r++) {
                    /* bn: the row goes right at node n. Selects as masks, not ?:, so that
                     * the loop has no control flow and vectorises. */
                    uint32_t b1 = !(c1[r] <= t1), b2 = !(c2[r] <= t2), b3 = !(c3[r] <= t3);
                    uint32_t b4 = !(c4[r] <= t4), b5 = !(c5[r] <= t5), b6 = !(c6[r] <= t6);
                    uint32_t b7 = !(c7[r] <= t7);
                    uint32_t m1 = 0u - b1;
                    uint32_t l1 = (b3 & m1) | (b2 & ~m1), m2 = 0u - l1; /* level 1: node 2 + b1 */
                    uint32_t right = (b7 & m2) | (b6 & ~m2), left = (b5 & m2) | (b4 & ~m2);
                    uint32_t l2 = (right & m1) | (left & ~m1); /* level 2: node 4 + 2 b1 + l1 */
                    top[r] = 8 + 4 * b1 + 2 * l1 + l2;
                }
                for (int r = 0; r < IFO_LANES; r++)
                    i[r] = top[r];
                d = 3;
            } else {
                for (int r = 0; r < IFO_LANES; r++)
                    i[r] = 1;
            }
            for (; d < D; d++) {
#pragma GCC unroll 16
                for (int r = 0; r < IFO_LANES; r++)
                    STEP(i[r], x, r);
            }
            double *a = acc + v * IFO_LANES;
#pragma GCC unroll 16
            for (int r = 0; r < IFO_LANES; r++)
                a[r] += leaf[i[r] - W];
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

/* ---- the x86 kernels (compiled for their instruction sets whatever -march says) ---- */

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

static void block_avx512_any(const struct iforest *f, const float *xc, size_t vstride, double *acc)
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

/* The AVX2 scorer: eight rows per __m256 (half a block vector), all eight vectors of the
 * block moving down a tree together so that their latencies overlap. The top three levels
 * are node-major (avx2_top3: 7 comparisons of whole columns, then blends). Below, AVX2 has no
 * two-table permute and gathers are slow, so node data comes from in-register lookups as in
 * the AVX-512 scorer where that is cheaper: level k = 3 .. 6 takes a vpermps per 8 of its 2^k
 * entries and a blend tree on the position's bits 3 .. k - 1; level 7 and below, and the
 * leaves, are gathered. A lane's value of its node's feature is a blend among the block's
 * columns for up to 8 features (a lane's values are at its own place in every column, so no
 * permute is needed), else a gather.
 *
 * Measured here, ns per row and tree, one thread (scalar for comparison: http 3.6, pima 3.4,
 * shuttle 3.5, cardio 3.5): http (3 features) 2.5, pima (8) 3.1, shuttle (9) 3.5, cardio (21)
 * 3.6: a clear gain only while the feature values come from blends. On http, with levels 0-2
 * looked up rather than node-major: the same; lookups down to level 5, 4 or 2 and gathers
 * below: 2.6, 2.9 and 3.5; four vectors in flight instead of eight: 2.7; node-major down to
 * level 3: 2.6-3.0; feature values gathered instead of blended: 4.2. On shuttle, blending
 * 16 columns instead of gathering: 1.3x slower. */
#define AVX2_INLINE static inline __attribute__((target("avx2"), always_inline))

#define AVX2_VECS 8 /* vectors of 8 rows: the whole block */
_Static_assert(AVX2_VECS * 8 == IFO_BLOCK, "the AVX2 scorer holds one block");

/* A blend mask from bit b of each lane of v (blendv reads the sign bit). */
AVX2_INLINE __m256 avx2_bit(__m256i v, int b)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 31 - b));
}

/* level[pos mod 2^k] per lane for a table of 2^k floats, 3 <= k <= 6 (a constant once
 * inlined). */
AVX2_INLINE __m256 avx2_lut(const float *level, int k, __m256i pos)
{
    __m256 r[8];
    const int pieces = 1 << (k - 3);
#pragma GCC unroll 8
    for (int j = 0; j < pieces; j++)
        r[j] = _mm256_permutevar8x32_ps(_mm256_loadu_ps(level + 8 * j), pos);
#pragma GCC unroll 4
    for (int b = 3; b < k; b++) {
        const __m256 high = avx2_bit(pos, b);
        const int step = 1 << (b - 3);
#pragma GCC unroll 8
        for (int j = 0; j < pieces; j += 2 * step)
            r[j] = _mm256_blendv_ps(r[j], r[j + step], high);
    }
    return r[0];
}

/* Each lane's value of feature fx / IFO_LANES from its half block vector xh: a blend among
 * the block's first xcols columns (1, 2, 4 or 8), or a gather (xcols 0). */
AVX2_INLINE __m256 avx2_value(const float *xh, int xcols, __m256i fx, __m256i lane)
{
    if (xcols == 0)
        return _mm256_i32gather_ps(xh, _mm256_add_epi32(fx, lane), 4);
    /* A blend tree on the feature's bits; fx is feature * 16, so feature bit b is fx bit 4 + b.
     * Every loop must be unrolled (v in registers): 3x slower otherwise. */
    __m256 v[8];
#pragma GCC unroll 8
    for (int c = 0; c < xcols; c++)
        v[c] = _mm256_loadu_ps(xh + c * IFO_LANES);
    if (xcols >= 2) {
        const __m256 high = avx2_bit(fx, 4);
#pragma GCC unroll 4
        for (int c = 0; c < xcols; c += 2)
            v[c] = _mm256_blendv_ps(v[c], v[c + 1], high);
    }
    if (xcols >= 4) {
        const __m256 high = avx2_bit(fx, 5);
#pragma GCC unroll 2
        for (int c = 0; c < xcols; c += 4)
            v[c] = _mm256_blendv_ps(v[c], v[c + 2], high);
    }
    if (xcols >= 8)
        v[0] = _mm256_blendv_ps(v[0], v[4], avx2_bit(fx, 6));
    return v[0];
}

/* pos = 2 pos + !(x <= t): NLE_UQ is all ones (-1) for x > t and for NaN. */
AVX2_INLINE __m256i avx2_descend(__m256i pos, __m256 x, __m256 t)
{
    __m256i right = _mm256_castps_si256(_mm256_cmp_ps(x, t, _CMP_NLE_UQ));
    return _mm256_sub_epi32(_mm256_add_epi32(pos, pos), right);
}

/* The position after the top three levels (nodes 1-7, the same for every row) of the rows of
 * xh: each node's comparison for all 8 rows at once, its feature's column loaded whole, then
 * blends pick each row's way; no lookup depends on a row's position. */
AVX2_INLINE __m256i avx2_top3(const float *xh, const float *th, const uint32_t *fx)
{
    __m256 right[8]; /* right[n]: the rows that go right at node n */
#pragma GCC unroll 7
    for (int n = 1; n < 8; n++)
        right[n] = _mm256_cmp_ps(_mm256_loadu_ps(xh + fx[n]), _mm256_set1_ps(th[n]), _CMP_NLE_UQ);
    __m256 b1 = right[1];
    __m256 b2 = _mm256_blendv_ps(right[2], right[3], b1); /* at level 1, node 2 + b1 */
    __m256 b3 = _mm256_blendv_ps(_mm256_blendv_ps(right[4], right[5], b2),
                                 _mm256_blendv_ps(right[6], right[7], b2), b1);
    /* 8 + 4 b1 + 2 b2 + b3, the b's being 0 or -1. */
    __m256i pos = _mm256_and_si256(_mm256_castps_si256(b1), _mm256_set1_epi32(4));
    pos = _mm256_add_epi32(pos, _mm256_and_si256(_mm256_castps_si256(b2), _mm256_set1_epi32(2)));
    pos = _mm256_sub_epi32(pos, _mm256_castps_si256(b3));
    return _mm256_add_epi32(pos, _mm256_set1_epi32(8));
}

/* Level k, 3 <= k <= 6, by lookups, for every vector. */
#define AVX2_LEVEL(k)                                                                              \
    do {                                                                                           \
        _Pragma("GCC unroll 8") for (int v = 0; v < AVX2_VECS; v++)                                \
        {                                                                                          \
            __m256 t = avx2_lut(th + (1 << (k)), (k), pos[v]);                                     \
            __m256 ft = avx2_lut((const float *)fx + (1 << (k)), (k), pos[v]);                     \
            pos[v] =                                                                               \
                avx2_descend(pos[v], avx2_value(xh[v], xcols, _mm256_castps_si256(ft), lane), t);  \
        }                                                                                          \
    } while (0)

AVX2_INLINE void block_avx2(const struct iforest *f, const float *xc, size_t vstride, int xcols,
                            double *acc)
{
    const uint32_t D = f->params.max_depth, W = f->width;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const float *xh[AVX2_VECS];
#pragma GCC unroll 8
    for (int v = 0; v < AVX2_VECS; v++)
        xh[v] = xc + (size_t)(v / 2) * vstride + (size_t)(v % 2) * 8;
    for (uint32_t tree = 0; tree < f->params.n_trees; tree++) {
        const float *th = f->thr + (size_t)tree * W, *leaf = f->leaves + (size_t)tree * W;
        const uint32_t *fx = f->fx + (size_t)tree * W;
        __m256i pos[AVX2_VECS];
#pragma GCC unroll 8
        for (int v = 0; v < AVX2_VECS; v++)
            pos[v] = _mm256_set1_epi32(1);
        if (D >= 3) {
#pragma GCC unroll 8
            for (int v = 0; v < AVX2_VECS; v++)
                pos[v] = avx2_top3(xh[v], th, fx);
        } else {
            /* Heights 1 and 2: slots 1-3, indexed by the position (slot 0 is unused). */
            const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)W), lane);
            const __m256 th0 = _mm256_maskload_ps(th, live);
            const __m256i fx0 = _mm256_maskload_epi32((const int *)fx, live);
            for (uint32_t k = 0; k < D; k++) {
#pragma GCC unroll 8
                for (int v = 0; v < AVX2_VECS; v++) {
                    __m256 t = _mm256_permutevar8x32_ps(th0, pos[v]);
                    __m256i ft = _mm256_permutevar8x32_epi32(fx0, pos[v]);
                    pos[v] = avx2_descend(pos[v], avx2_value(xh[v], xcols, ft, lane), t);
                }
            }
        }
        if (D > 3)
            AVX2_LEVEL(3);
        if (D > 4)
            AVX2_LEVEL(4);
        if (D > 5)
            AVX2_LEVEL(5);
        if (D > 6)
            AVX2_LEVEL(6);
        for (uint32_t k = 7; k < D; k++) {
#pragma GCC unroll 8
            for (int v = 0; v < AVX2_VECS; v++) {
                __m256 t = _mm256_i32gather_ps(th, pos[v], 4);
                __m256i ft = _mm256_i32gather_epi32((const int *)fx, pos[v], 4);
                pos[v] = avx2_descend(pos[v], avx2_value(xh[v], xcols, ft, lane), t);
            }
        }
        /* The leaves, leaf[pos - W], added in double. */
        const __m256i w = _mm256_set1_epi32((int)W);
#pragma GCC unroll 8
        for (int v = 0; v < AVX2_VECS; v++) {
            __m256 len = _mm256_i32gather_ps(leaf, _mm256_sub_epi32(pos[v], w), 4);
            double *a = acc + v * 8;
            __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(len));
            __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(len, 1));
            _mm256_storeu_pd(a, _mm256_add_pd(_mm256_loadu_pd(a), lo));
            _mm256_storeu_pd(a + 4, _mm256_add_pd(_mm256_loadu_pd(a + 4), hi));
        }
    }
}

/* One instance per way of reading a lane's value, so that the blends are unrolled. */
#define BLOCK_AVX2(xcols)                                                                          \
    __attribute__((target("avx2"))) static void block_avx2_##xcols(                                \
        const struct iforest *f, const float *xc, size_t vstride, double *acc)                     \
    {                                                                                              \
        block_avx2(f, xc, vstride, xcols, acc);                                                    \
    }
BLOCK_AVX2(0)
BLOCK_AVX2(1)
BLOCK_AVX2(2)
BLOCK_AVX2(4)
BLOCK_AVX2(8)

static void block_avx2_any(const struct iforest *f, const float *xc, size_t vstride, double *acc)
{
    switch (f->n_cols > 8 ? 0 : block_cols(f->n_cols)) {
    case 1:
        block_avx2_1(f, xc, vstride, acc);
        break;
    case 2:
        block_avx2_2(f, xc, vstride, acc);
        break;
    case 4:
        block_avx2_4(f, xc, vstride, acc);
        break;
    case 8:
        block_avx2_8(f, xc, vstride, acc);
        break;
    default:
        block_avx2_0(f, xc, vstride, acc);
        break;
    }
}
#endif

/* ---- scoring a batch, scoring a row ---- */

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
    for (size_t r = 0; r < IFO_BLOCK; r++)
        acc[r] = 0.0;
    switch (f->kernel) {
#if defined(__x86_64__) && defined(__GNUC__)
    case IFO_KERNEL_AVX512:
        block_avx512_any(f, xc, vstride, acc);
        break;
    case IFO_KERNEL_AVX2:
        block_avx2_any(f, xc, vstride, acc);
        break;
#endif
    case IFO_KERNEL_DEEP:
        block_deep(f, xc, vstride, n, acc);
        break;
    default:
        block_scalar(f, xc, vstride, acc);
        break;
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
        iforest__threads(threads, (n_rows + IFO_ROWS_PER_TASK - 1) / IFO_ROWS_PER_TASK);
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
