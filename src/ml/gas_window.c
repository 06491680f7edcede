/* gas_window.c — the gas classifier's window rows (contract in gas.h): each reading with its
 * channels' means (and, with GAS_WINDOW_SLOPE, slopes) over the series' recent readings,
 * from ml/features.h, for a table (gas_window_rows) and for a live device (struct
 * gas_stream). Both push the same values through the same feature_series, so a model meets
 * in canaryd the numbers it was trained on. Timestamps enter neither the mean nor the slope
 * (per reading), so none are needed. */
#include "ml/gas.h"

#include "core/error.h"
#include "ml/features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gas_stream {
    size_t n_inputs;
    uint32_t window;
    bool slope;
    size_t series_size;
    unsigned char *series; /* n_inputs feature_series of series_size bytes each */
};

static struct feature_series *series_at(struct gas_stream *s, size_t i)
{
    return (struct feature_series *)(void *)(s->series + i * s->series_size);
}

struct gas_stream *gas_stream_new(size_t n_inputs, uint32_t window, uint32_t stats)
{
    struct gas_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n_inputs = n_inputs;
    s->window = window;
    s->slope = window && (stats & GAS_WINDOW_SLOPE);
    /* Keep each series aligned for its doubles. */
    s->series_size = (feature_series_size(window ? window : 1) + 15) & ~(size_t)15;
    s->series = window ? aligned_alloc(16, n_inputs * s->series_size) : NULL;
    if (window && !s->series) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; window && i < n_inputs; i++)
        feature_series_init(series_at(s, i), window);
    return s;
}

void gas_stream_push(struct gas_stream *s, const double *x, double *row)
{
    memcpy(row, x, s->n_inputs * sizeof *x);
    if (!s->window)
        return;
    double f[FEATURES_PER_SERIES];
    for (size_t i = 0; i < s->n_inputs; i++) {
        /* The mean only: no timestamp needed (0 leaves rate_per_min at 0). */
        struct feature_series *fs = series_at(s, i);
        feature_series_push(fs, 0, x[i], f);
        row[s->n_inputs + i] = f[FEATURE_MEAN];
        if (s->slope) /* NaN with the mean: the reading was not a number */
            row[2 * s->n_inputs + i] = isnan(f[FEATURE_MEAN]) ? NAN : feature_series_slope(fs);
    }
}

void gas_stream_free(struct gas_stream *s)
{
    if (!s)
        return;
    free(s->series);
    free(s);
}

int gas_window_rows(uint32_t window, uint32_t stats, size_t n_inputs, const double *x,
                    size_t n_rows, const uint32_t *series, double *out, char *err, size_t errlen)
{
    if (window > FEATURE_WINDOW_MAX || n_inputs == 0) {
        canary_errf(err, errlen, "window %u: at most %d", window, FEATURE_WINDOW_MAX);
        return CANARY_EINVAL;
    }
    const size_t L = gas_row_len_for(n_inputs, window, stats);
    if (!window) {
        memcpy(out, x, n_rows * n_inputs * sizeof *x);
        return 0;
    }
    uint32_t n_series = 0;
    for (size_t r = 0; series && r < n_rows; r++)
        n_series = series[r] + 1 > n_series ? series[r] + 1 : n_series;
    if (!series || !n_rows)
        n_series = 1;
    if (n_series > 1000000) {
        canary_errf(err, errlen, "series id %u: too large", n_series - 1);
        return CANARY_EINVAL;
    }
    struct gas_stream **st = calloc(n_series, sizeof *st);
    if (!st)
        return CANARY_ENOMEM;
    int rc = 0;
    for (size_t r = 0; r < n_rows; r++) {
        uint32_t id = series ? series[r] : 0;
        if (!st[id] && !(st[id] = gas_stream_new(n_inputs, window, stats))) {
            rc = CANARY_ENOMEM;
            break;
        }
        gas_stream_push(st[id], x + r * n_inputs, out + r * L);
    }
    for (uint32_t i = 0; i < n_series; i++)
        gas_stream_free(st[i]);
    free(st);
    return rc;
}
