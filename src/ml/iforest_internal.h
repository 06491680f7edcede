/* iforest_internal.h — what iforest.c (training), iforest_score.c (scoring) and iforest_io.c
 * (the model file) share: the forest's in-memory representation. Not for other modules; they
 * use iforest.h. The unit tests and bench/bench_iforest.c use it too, to force a scoring
 * kernel (iforest__set_kernel).
 *
 * A forest holds every tree twice:
 *   - canonically, as a pre-order list of nodes (a node, then its left subtree, then its right
 *     subtree), which is what training produces and what the model file stores;
 *   - compiled for scoring (iforest__compile), in one of two layouts:
 *       IFO_LAYOUT_COMPLETE (height limit D <= IFO_COMPLETE_MAX_DEPTH): each tree is a complete
 *       binary tree of height D, 1-based in breadth-first order (node i has children 2i and
 *       2i + 1, slot 0 unused; level k is the contiguous run [2^k, 2^(k+1))), so a traversal is
 *       exactly D steps of i = 2i + !(x[feature] <= threshold) with no branch on the node kind.
 *       An external node above depth D becomes a pass-through: every leaf under it holds its
 *       path length, so the way a row goes below it does not matter. Three arrays of
 *       n_trees x 2^D (struct of arrays, so that a level of a tree is a lookup table for the
 *       AVX-512 and AVX2 scorers): thresholds, features times IFO_LANES (the offset of the
 *       feature's column in a scoring block), and the 2^D leaves' path lengths. 12 * 2^D
 *       bytes per tree (3 KiB at the default D = 8).
 *       IFO_LAYOUT_DEEP (larger height limits, where 2^D would waste memory): the pre-order
 *       list itself with the right child's index beside each node (the left child is next),
 *       walked until an external node; at most 2 psi - 1 nodes per tree, 12 bytes each.
 * Both layouts give the same path length for every row: they are the same tree. */
#ifndef CANARY_ML_IFOREST_INTERNAL_H
#define CANARY_ML_IFOREST_INTERNAL_H

#include "ml/iforest.h"

#include <stdint.h>

#define IFO_LEAF               UINT32_MAX /* the feature of an external node */
#define IFO_COMPLETE_MAX_DEPTH 10         /* deeper trees use IFO_LAYOUT_DEEP */
#define IFO_LANES              16         /* rows per vector in a scoring block */

/* One node of a tree in pre-order: what training makes and the file stores. */
struct ifo_node {
    uint32_t feature; /* IFO_LEAF for an external node, else the split feature (< n_cols) */
    float value;      /* internal: threshold, x <= value goes left (NaN goes right);
                         external: path length, depth + c(size) */
};

/* A node of the deep layout. */
struct ifo_deep {
    float value;      /* threshold, or path length when feature == IFO_LEAF */
    uint32_t feature; /* IFO_LEAF for an external node */
    uint32_t right;   /* index of the right child in the tree; the left child is this + 1 */
};

/* The batch scorers (iforest_score.c); all give the same bits for the same row. */
enum ifo_kernel {
    IFO_KERNEL_SCALAR, /* complete layout, portable C */
    IFO_KERNEL_AVX512, /* complete layout of height <= 8 on a CPU with AVX-512F */
    IFO_KERNEL_DEEP,   /* deep layout */
    IFO_KERNEL_AVX2,   /* complete layout on a CPU with AVX2 */
};

enum ifo_layout {
    IFO_LAYOUT_COMPLETE,
    IFO_LAYOUT_DEEP,
};

struct iforest {
    struct iforest_params params; /* effective: subsample = psi, max_depth = D */
    struct iforest_meta meta;
    uint32_t n_cols;
    double c_psi;                    /* c(psi), the score's normaliser */
    double threshold;                /* score above which a row is anomalous */
    char (*names)[IFOREST_NAME_MAX]; /* n_cols NUL-terminated names */

    /* Canonical trees: tree t is nodes[tree_start[t] .. tree_start[t + 1]). */
    uint32_t *tree_start; /* n_trees + 1 offsets */
    struct ifo_node *nodes;

    /* Compiled trees (iforest__compile). */
    enum ifo_layout layout;
    uint32_t width;         /* complete: 2^D, the stride of each array per tree */
    float *thr;             /* complete: n_trees x width thresholds, slot 0 unused */
    uint32_t *fx;           /* complete: n_trees x width, feature * IFO_LANES (0 when
                               pass-through) */
    float *leaves;          /* complete: n_trees x width path lengths */
    struct ifo_deep *deep;  /* deep: indexed like nodes */
    enum ifo_kernel kernel; /* the batch scorer iforest__compile chose */
};

/* Allocates a forest with room for n_cols names and n_trees tree offsets, everything zero
 * but the meta's NaN evaluation fields. Returns NULL when out of memory. */
struct iforest *iforest__alloc(uint32_t n_cols, uint32_t n_trees);

/* Builds the scoring layout from the canonical trees, which must be valid (every tree a full
 * binary tree no deeper than params.max_depth, features < n_cols). Returns 0 or
 * CANARY_ENOMEM. */
int iforest__compile(struct iforest *f);

/* Checks one canonical tree: a full binary tree in pre-order of exactly n nodes, no deeper
 * than max_depth, features < n_cols, thresholds finite, path lengths finite and within
 * [0, max_path]. Returns true, or false with the reason in why. */
bool iforest__tree_valid(const struct ifo_node *nodes, uint32_t n, uint32_t n_cols,
                         uint32_t max_depth, double max_path, char *why, size_t whylen);

/* The height limit the paper uses for psi rows: ceil(log2 psi). */
uint32_t iforest__default_depth(uint32_t psi);

/* The threads to use for `units` work units: asked (0 = one per online CPU), at most one per
 * unit, at least one. */
unsigned iforest__threads(unsigned asked, size_t units);

/* Makes f's batch scorer `kernel` instead of the one iforest__compile chose (the fastest this
 * CPU runs for the layout), so that tests and benchmarks can run each kernel on the same
 * forest. Returns 0, or CANARY_EINVAL when the kernel cannot score this forest here (the
 * CPU lacks the instructions, or the layout or height does not fit it); f is then unchanged.
 * Not thread-safe against scoring with f at the same time. */
int iforest__set_kernel(struct iforest *f, enum ifo_kernel kernel);

/* The kernel's name as iforest__kernel_parse reads it: "scalar", "avx2", "avx512", "deep". */
const char *iforest__kernel_name(enum ifo_kernel kernel);

/* The kernel named `name`; false when there is none of that name. */
bool iforest__kernel_parse(const char *name, enum ifo_kernel *kernel);

#endif
