/* gas_csv.c — labelled gas-sensor readings from a CSV file, as rows the gas classifier
 * trains on or is evaluated with (gas_table_load, contract in gas.h).
 *
 * One path for `canary train --model gas`, `canary eval` on a gas model and the benchmark,
 * so all three build the same rows: the input columns (dataset.h reads the file), the class
 * names of the label column, each row's series (the device column, or — for a file that
 * holds one recording per class, as the public gas dataset does — the label itself), and,
 * with a window, each channel's mean over the series' recent readings (gas_window_rows), in
 * the order of an optional order column (e.g. "Serial Number"), else of the file. */
#include "ml/gas.h"

#include "core/error.h"
#include "ml/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gas_table_free(struct gas_table *t)
{
    if (!t)
        return;
    free(t->rows);
    free(t->y);
    free(t->order);
    for (size_t k = 0; k < t->n_classes; k++)
        free(t->class_names[k]);
    free(t->class_names);
    memset(t, 0, sizeof *t);
}

struct keyed {
    uint32_t series;
    double order;
    size_t r;
};

static int by_series_order(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if (x->series != y->series)
        return x->series < y->series ? -1 : 1;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

int gas_table_load(const char *path, const struct gas_csv_spec *s, struct gas_table *t, char *err,
                   size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (!s->label_column || !s->n_inputs || s->n_inputs > GAS_MAX_INPUTS) {
        canary_errf(err, errlen, "a label column and 1 to %d input columns are needed",
                    GAS_MAX_INPUTS);
        return CANARY_EINVAL;
    }
    const bool by_label = !s->series_column || !strcmp(s->series_column, s->label_column);
    const char **cols = calloc(s->n_inputs + 1, sizeof *cols);
    if (!cols)
        return CANARY_ENOMEM;
    memcpy(cols, s->inputs, s->n_inputs * sizeof *cols);
    size_t n_cols = s->n_inputs;
    if (s->order_column)
        cols[n_cols++] = s->order_column;
    struct dataset_options o = {.label_column = s->label_column,
                                .device_column = by_label ? NULL : s->series_column,
                                .value_columns = cols,
                                .n_value_columns = n_cols,
                                .label_classes = true};
    struct dataset d;
    int rc = dataset_load_csv(&d, path, &o, err, errlen);
    free(cols);
    if (rc)
        return rc;
    const size_t n = d.n_rows, I = s->n_inputs, L = gas_row_len_for(I, s->window, s->window_stats);
    double *raw = malloc(n * I * sizeof *raw), *sorted_rows = malloc(n * L * sizeof *raw);
    uint32_t *series = malloc(n * sizeof *series);
    struct keyed *k = malloc(n * sizeof *k);
    t->rows = malloc(n * L * sizeof *t->rows);
    t->y = malloc(n * sizeof *t->y);
    t->order = malloc(n * sizeof *t->order);
    t->class_names = calloc(d.n_classes, sizeof *t->class_names);
    if (!raw || !sorted_rows || !series || !k || !t->rows || !t->y || !t->order ||
        !t->class_names) {
        rc = CANARY_ENOMEM;
        goto out;
    }
    t->n_rows = n;
    t->n_inputs = I;
    t->row_len = L;
    t->n_classes = d.n_classes;
    for (size_t c = 0; c < d.n_classes; c++)
        if (!(t->class_names[c] = strdup(d.class_names[c]))) {
            rc = CANARY_ENOMEM;
            goto out;
        }
    for (size_t r = 0; r < n; r++) {
        t->y[r] = (int)d.labels[r];
        t->order[r] = s->order_column ? d.x[r * d.n_cols + I] : (double)r;
        if (isnan(t->order[r])) {
            canary_errf(err, errlen, "%s: data row %zu: no value in the order column '%s'", path,
                        r + 1, s->order_column);
            rc = CANARY_EINVAL;
            goto out;
        }
        k[r] = (struct keyed){by_label ? (uint32_t)t->y[r] : d.device_id[r], t->order[r], r};
    }
    /* Push each series' readings in time order, then put the rows back in file order. */
    qsort(k, n, sizeof *k, by_series_order);
    for (size_t i = 0; i < n; i++) {
        memcpy(raw + i * I, d.x + k[i].r * d.n_cols, I * sizeof *raw);
        series[i] = k[i].series;
    }
    rc = gas_window_rows(s->window, s->window_stats ? s->window_stats : GAS_WINDOW_MEAN, I, raw, n,
                         series, sorted_rows, err, errlen);
    if (rc)
        goto out;
    for (size_t i = 0; i < n; i++)
        memcpy(t->rows + k[i].r * L, sorted_rows + i * L, L * sizeof *raw);
out:
    if (rc)
        gas_table_free(t);
    free(raw);
    free(sorted_rows);
    free(series);
    free(k);
    dataset_free(&d);
    return rc;
}
