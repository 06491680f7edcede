/* gas_split.c — the two evaluation splits of the gas classifier (contract in gas.h): the
 * time split (the latest rows of each class's series held out) and the stratified random
 * split. Both are pure functions of their inputs (and the seed). */
#include "ml/gas.h"

#include "core/error.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check(const int *y, size_t n_rows, size_t n_classes, double test_frac, char *err,
                 size_t errlen)
{
    if (!(test_frac > 0 && test_frac < 1)) {
        canary_errf(err, errlen, "the test share must be above 0 and below 1");
        return CANARY_EINVAL;
    }
    for (size_t r = 0; r < n_rows; r++) {
        if (y[r] < 0 || (size_t)y[r] >= n_classes) {
            canary_errf(err, errlen, "row %zu: class %d is not in 0..%zu", r, y[r], n_classes - 1);
            return CANARY_EINVAL;
        }
    }
    return 0;
}

struct keyed {
    double t;
    size_t r;
};

static int by_time(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

int gas_split_time(const double *t, const int *y, size_t n_rows, size_t n_classes, double test_frac,
                   uint8_t *is_test, char *err, size_t errlen)
{
    int rc = check(y, n_rows, n_classes, test_frac, err, errlen);
    if (rc)
        return rc;
    struct keyed *k = malloc((n_rows ? n_rows : 1) * sizeof *k);
    if (!k)
        return CANARY_ENOMEM;
    memset(is_test, 0, n_rows);
    for (size_t c = 0; c < n_classes; c++) {
        size_t n = 0;
        for (size_t r = 0; r < n_rows; r++) {
            if (y[r] != (int)c)
                continue;
            if (t && isnan(t[r])) {
                canary_errf(err, errlen, "row %zu: no time", r);
                free(k);
                return CANARY_EINVAL;
            }
            k[n].t = t ? t[r] : (double)r;
            k[n++].r = r;
        }
        qsort(k, n, sizeof *k, by_time);
        size_t n_test = (size_t)llround(test_frac * (double)n);
        for (size_t i = n - n_test; i < n; i++)
            is_test[k[i].r] = 1;
    }
    free(k);
    return 0;
}

int gas_split_random(const int *y, size_t n_rows, size_t n_classes, double test_frac, uint64_t seed,
                     uint8_t *is_test, char *err, size_t errlen)
{
    int rc = check(y, n_rows, n_classes, test_frac, err, errlen);
    if (rc)
        return rc;
    size_t *idx = malloc((n_rows ? n_rows : 1) * sizeof *idx);
    if (!idx)
        return CANARY_ENOMEM;
    struct rng g;
    rng_seed_state(&g, seed ^ 0x6761735f73706c74ull); /* "gas_splt" */
    memset(is_test, 0, n_rows);
    for (size_t c = 0; c < n_classes; c++) {
        size_t n = 0;
        for (size_t r = 0; r < n_rows; r++)
            if (y[r] == (int)c)
                idx[n++] = r;
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)(rng_next(&g) % i);
            size_t tmp = idx[i - 1];
            idx[i - 1] = idx[j];
            idx[j] = tmp;
        }
        size_t n_test = (size_t)llround(test_frac * (double)n);
        for (size_t i = 0; i < n_test; i++)
            is_test[idx[i]] = 1;
    }
    free(idx);
    return 0;
}
