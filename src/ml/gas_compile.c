/* gas_compile.c — turns an XGBoost model (its JSON, as XGBoosterSaveModelToBuffer writes it
 * with {"format":"json"}; schema: doc/model.schema in XGBoost 1.7) into the flat arrays the
 * gas classifier predicts with (gas_internal.h).
 *
 * Trusts nothing: the JSON may come from a damaged or forged file. Every tree must be a tree
 * (each node reached once from the root, children in range, leaves with no children), every
 * split feature below the model's feature count, every value finite and every class group
 * below its class count; the linear model must hold exactly (features + 1) x classes
 * weights. A model that passes cannot make prediction read out of bounds or loop. */
#include "ml/gas_internal.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *path_get(const cJSON *j, const char *const *keys)
{
    for (; *keys && j; keys++)
        j = cJSON_GetObjectItemCaseSensitive(j, *keys);
    return j;
}

/* The integer in a JSON number or in a string holding one ("6", as XGBoost writes its
 * params), or -1. */
static long json_long(const cJSON *j)
{
    if (cJSON_IsNumber(j))
        return j->valuedouble >= 0 && j->valuedouble < 1e9 ? (long)j->valuedouble : -1;
    if (cJSON_IsString(j)) {
        char *end;
        long v = strtol(j->valuestring, &end, 10);
        return end != j->valuestring && *end == '\0' && v >= 0 ? v : -1;
    }
    return -1;
}

/* Checks that array a holds n numbers; returns it or NULL. */
static const cJSON *num_array(const cJSON *tree, const char *key, long n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(tree, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return NULL;
    }
    return a;
}

/* Copies a JSON array of n numbers into out. */
static void copy_doubles(const cJSON *a, double *out)
{
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) out[i++] = e->valuedouble;
}

/* Each node reached exactly once from node 0 walking child links. */
static bool is_tree(const struct gas_node *nodes, long n)
{
    bool ok = true;
    uint8_t *seen = calloc((size_t)n, 1);
    int32_t *stack = malloc((size_t)n * sizeof *stack);
    if (!seen || !stack) {
        free(seen);
        free(stack);
        return false;
    }
    long top = 0, visited = 0;
    stack[top++] = 0;
    while (top > 0 && ok) {
        int32_t i = stack[--top];
        if (seen[i]) {
            ok = false;
            break;
        }
        seen[i] = 1;
        visited++;
        if (nodes[i].left != GAS_LEAF) {
            if (top + 2 > n) {
                ok = false;
                break;
            }
            stack[top++] = nodes[i].left;
            stack[top++] = nodes[i].right;
        }
    }
    free(seen);
    free(stack);
    return ok && visited == n;
}

static int compile_trees(struct gas_model *m, enum gas_learner l, const cJSON *model, char *err,
                         size_t errlen)
{
    const char *what = gas_learner_name(l);
    const cJSON *trees = cJSON_GetObjectItemCaseSensitive(model, "trees");
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(model, "tree_info");
    if (!cJSON_IsArray(trees) || !cJSON_IsArray(info) ||
        cJSON_GetArraySize(trees) != cJSON_GetArraySize(info)) {
        canary_errf(err, errlen, "%s: the booster has no trees or no tree_info", what);
        return CANARY_EINVAL;
    }
    struct gas_forest *f = &m->forest[l];
    const long T = cJSON_GetArraySize(trees);
    f->n_trees = (uint32_t)T;
    f->start = calloc((size_t)T + 1, sizeof *f->start);
    f->group = calloc((size_t)T + 1, sizeof *f->group);
    if (!f->start || !f->group)
        return CANARY_ENOMEM;
    /* First pass: sizes. */
    uint64_t total = 0;
    long t = 0;
    const cJSON *tree;
    cJSON_ArrayForEach(tree, trees)
    {
        const char *k_np[] = {"tree_param", "num_nodes", NULL};
        long n = json_long(path_get(tree, k_np));
        if (n < 1 || n > 1000000) {
            canary_errf(err, errlen, "%s: tree %ld has a bad node count", what, t);
            return CANARY_EINVAL;
        }
        f->start[t++] = (uint32_t)total;
        total += (uint64_t)n;
        if (total > 100000000u) {
            canary_errf(err, errlen, "%s: too many nodes", what);
            return CANARY_EINVAL;
        }
    }
    f->start[T] = (uint32_t)total;
    t = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, info)
    {
        long v = json_long(g);
        if (!cJSON_IsNumber(g) || v < 0 || (size_t)v >= m->n_classes) {
            canary_errf(err, errlen, "%s: tree %ld belongs to no class (tree_info)", what, t);
            return CANARY_EINVAL;
        }
        f->group[t++] = (uint32_t)v;
    }
    f->nodes = calloc(total ? total : 1, sizeof *f->nodes);
    if (!f->nodes)
        return CANARY_ENOMEM;
    t = 0;
    cJSON_ArrayForEach(tree, trees)
    {
        const long n = (long)(f->start[t + 1] - f->start[t]);
        const cJSON *lc = num_array(tree, "left_children", n);
        const cJSON *rc = num_array(tree, "right_children", n);
        const cJSON *si = num_array(tree, "split_indices", n);
        const cJSON *sc = num_array(tree, "split_conditions", n);
        const cJSON *dl = num_array(tree, "default_left", n);
        if (!lc || !rc || !si || !sc || !dl) {
            canary_errf(err, errlen, "%s: tree %ld lacks an array of %ld numbers", what, t, n);
            return CANARY_EINVAL;
        }
        struct gas_node *nodes = f->nodes + f->start[t];
        const cJSON *a = lc->child, *b = rc->child, *c = si->child, *d = sc->child, *e = dl->child;
        for (long i = 0; i < n; i++) {
            double left = a->valuedouble, right = b->valuedouble, feat = c->valuedouble;
            struct gas_node *nd = &nodes[i];
            if (fabs(d->valuedouble) > FLT_MAX) {
                canary_errf(err, errlen, "%s: tree %ld node %ld: value out of float range", what, t,
                            i);
                return CANARY_EINVAL;
            }
            nd->value = (float)d->valuedouble;
            if (left == -1 && right == -1) {
                nd->left = nd->right = GAS_LEAF;
                nd->feature = 0;
            } else if (left >= 1 && left < n && right >= 1 && right < n && feat >= 0 &&
                       feat < (double)m->n_features && left == floor(left) &&
                       right == floor(right) && feat == floor(feat)) {
                nd->left = (int32_t)left;
                nd->right = (int32_t)right;
                nd->feature = (uint32_t)feat | (e->valuedouble != 0 ? GAS_DEFAULT_LEFT : 0);
            } else {
                canary_errf(err, errlen, "%s: tree %ld node %ld: bad children or feature", what, t,
                            i);
                return CANARY_EINVAL;
            }
            if (!isfinite(nd->value)) {
                canary_errf(err, errlen, "%s: tree %ld node %ld: value out of float range", what, t,
                            i);
                return CANARY_EINVAL;
            }
            a = a->next, b = b->next, c = c->next, d = d->next, e = e->next;
        }
        if (!is_tree(nodes, n)) {
            canary_errf(err, errlen, "%s: tree %ld is not a tree", what, t);
            return CANARY_EINVAL;
        }
        t++;
    }
    return 0;
}

static int compile_linear(struct gas_model *m, const cJSON *model, char *err, size_t errlen)
{
    const long n = (long)((m->n_features + 1) * m->n_classes);
    const cJSON *w = num_array(model, "weights", n);
    if (!w) {
        canary_errf(err, errlen, "%s: the booster does not hold %ld finite weights",
                    gas_learner_name(GAS_LR), n);
        return CANARY_EINVAL;
    }
    m->lin_w = malloc((size_t)n * sizeof *m->lin_w);
    if (!m->lin_w)
        return CANARY_ENOMEM;
    copy_doubles(w, m->lin_w);
    return 0;
}

int gas__compile(struct gas_model *m, enum gas_learner l, const char *json, size_t len, char *err,
                 size_t errlen)
{
    const char *what = gas_learner_name(l);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        canary_errf(err, errlen, "%s: the booster is not valid JSON", what);
        return CANARY_EINVAL;
    }
    int rc = CANARY_EINVAL;
    const char *k_name[] = {"learner", "gradient_booster", "name", NULL};
    const char *k_model[] = {"learner", "gradient_booster", "model", NULL};
    const char *k_nf[] = {"learner", "learner_model_param", "num_feature", NULL};
    const char *k_nc[] = {"learner", "learner_model_param", "num_class", NULL};
    const cJSON *name = path_get(root, k_name);
    const cJSON *model = path_get(root, k_model);
    long nf = json_long(path_get(root, k_nf)), nc = json_long(path_get(root, k_nc));
    const char *want = l == GAS_LR ? "gblinear" : "gbtree";
    if (!cJSON_IsString(name) || strcmp(name->valuestring, want) || !cJSON_IsObject(model)) {
        canary_errf(err, errlen, "%s: the booster is not a %s model", what, want);
    } else if (nf != (long)m->n_features || nc != (long)m->n_classes) {
        canary_errf(err, errlen,
                    "%s: the booster has %ld features and %ld classes, the model %zu and %zu", what,
                    nf, nc, m->n_features, m->n_classes);
    } else {
        rc = l == GAS_LR ? compile_linear(m, model, err, errlen)
                         : compile_trees(m, l, model, err, errlen);
    }
    cJSON_Delete(root);
    return rc;
}
