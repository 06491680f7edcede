/* features.c — sliding-window features of one sensor series (the contract is in features.h).
 *
 * Every push is O(1) amortised: the mean and variance come from running sums, the minimum
 * and maximum from monotonic deques (each push counter enters and leaves each deque once).
 *
 * Precision. The running sums are of y = value - origin, and kept as double-doubles (a
 * double and its rounding error, Dekker/Knuth TwoSum and an fma-exact product), so that
 * removing a value that is huge next to the others (a spike of 1e9 among readings near 1)
 * cancels exactly instead of leaving a residue of ~1e2 in the sum of squares. The variance
 * E[y^2] - E[y]^2 is formed in double-double as well, so a window far from the origin (a
 * step from 0 to 1e9 + noise) keeps the noise's digits. Every `window` pushes the sums are
 * recomputed exactly from the ring and the origin moves to the newest value, so neither
 * rounding drift nor a stale origin can build up. The newest value rather than the mean:
 * after a step it is already on the new level, while the mean of a window that straddles
 * the step is far from both levels. What remains is an error of a few ulps of
 * |value - origin|, the origin being a value of the last two windows: on a constant window
 * right after a spike of 1e9 the standard deviation can read 1e-7 instead of 0 until the
 * next recomputation. */
#include "ml/features.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- Double-double arithmetic (hi + lo, |lo| <= ulp(hi) / 2) ---- */

struct dd {
    double hi, lo;
};

/* a + b exactly, as s + e (Knuth's TwoSum: no precondition on the magnitudes). */
static struct dd two_sum(double a, double b)
{
    double s = a + b;
    double bb = s - a;
    double e = (a - (s - bb)) + (b - bb);
    return (struct dd){s, e};
}

/* a + b exactly when |a| >= |b| or a == 0 (Dekker's FastTwoSum). */
static struct dd fast_two_sum(double a, double b)
{
    double s = a + b;
    return (struct dd){s, b - (s - a)};
}

static struct dd dd_add(struct dd a, struct dd b)
{
    struct dd s = two_sum(a.hi, b.hi);
    return fast_two_sum(s.hi, s.lo + a.lo + b.lo);
}

static struct dd dd_neg(struct dd a)
{
    return (struct dd){-a.hi, -a.lo};
}

/* a * a for a double-double a, to double-double precision. */
static struct dd dd_sq(struct dd a)
{
    double p = a.hi * a.hi;
    double e = fma(a.hi, a.hi, -p);
    return fast_two_sum(p, e + 2.0 * a.hi * a.lo);
}

/* a / n for a small positive integer n. */
static struct dd dd_div(struct dd a, double n)
{
    double q1 = a.hi / n;
    /* a - q1 * n, exactly enough: the product q1 * n is split with fma. */
    double p = q1 * n;
    double pe = fma(q1, n, -p);
    double r = ((a.hi - p) - pe) + a.lo;
    return fast_two_sum(q1, r / n);
}

/* ---- The ring and the deques ---- */

static double *ring_values(struct feature_series *s)
{
    return (double *)(void *)s->storage;
}

static const double *ring_values_c(const struct feature_series *s)
{
    return (const double *)(const void *)s->storage;
}

static uint64_t *min_deque(struct feature_series *s)
{
    return s->storage + s->window;
}

static uint64_t *max_deque(struct feature_series *s)
{
    return s->storage + 2 * (size_t)s->window;
}

static uint32_t clamp_window(uint32_t window)
{
    if (window < 1)
        return 1;
    if (window > FEATURE_WINDOW_MAX)
        return FEATURE_WINDOW_MAX;
    return window;
}

size_t feature_series_size(uint32_t window)
{
    return sizeof(struct feature_series) + 3 * sizeof(uint64_t) * clamp_window(window);
}

void feature_series_init(struct feature_series *s, uint32_t window)
{
    window = clamp_window(window);
    memset(s, 0, feature_series_size(window));
    s->window = window;
}

bool feature_series_warm(const struct feature_series *s)
{
    return s->count >= s->window;
}

/* The value pushed as push counter p (which must still be in the window). */
static double value_at(const struct feature_series *s, uint64_t p)
{
    return ring_values_c(s)[p % s->window];
}

/* y = value - origin, exactly, as a double-double. */
static struct dd relative(const struct feature_series *s, double value)
{
    return two_sum(value, -s->origin);
}

static void sums_add(struct feature_series *s, double value, bool remove)
{
    struct dd y = relative(s, value);
    struct dd y2 = dd_sq(y);
    if (remove) {
        y = dd_neg(y);
        y2 = dd_neg(y2);
    }
    struct dd sum = dd_add((struct dd){s->sum, s->sum_lo}, y);
    struct dd sq = dd_add((struct dd){s->sum_sq, s->sum_sq_lo}, y2);
    s->sum = sum.hi;
    s->sum_lo = sum.lo;
    s->sum_sq = sq.hi;
    s->sum_sq_lo = sq.lo;
}

/* Moves the origin to the newest value and recomputes the sums from the ring. O(window). */
static void resum(struct feature_series *s)
{
    const double *v = ring_values_c(s);
    s->origin = v[(s->head + s->count - 1) % s->window];
    s->sum = s->sum_lo = s->sum_sq = s->sum_sq_lo = 0;
    for (uint32_t i = 0; i < s->count; i++)
        sums_add(s, v[(s->head + i) % s->window], false);
    s->since_resum = 0;
}

/* Pushes counter p (value v) on a monotonic deque. Entries that left the window go from the
 * front; entries `dominated` by v (>= v for the minimum, <= v for the maximum) go from the
 * back, as they can never be the extreme again. The front is then the window's extreme. */
static void deque_push(const struct feature_series *s, uint64_t *q, uint32_t *head, uint32_t *len,
                       uint64_t p, double v, bool is_min)
{
    uint32_t w = s->window;
    uint64_t oldest = p + 1 - s->count; /* the window holds counters [oldest, p] */
    while (*len > 0 && q[*head] < oldest) {
        *head = (*head + 1) % w;
        (*len)--;
    }
    while (*len > 0) {
        double back = value_at(s, q[(*head + *len - 1) % w]);
        if (is_min ? back >= v : back <= v)
            (*len)--;
        else
            break;
    }
    assert(*len < w); /* at most count - 1 older counters are left */
    q[(*head + *len) % w] = p;
    (*len)++;
}

void feature_series_push(struct feature_series *s, int64_t ts_ms, double value, double *out)
{
    if (!isfinite(value)) {
        for (int k = 0; k < FEATURES_PER_SERIES; k++)
            out[k] = NAN;
        return;
    }
    double *v = ring_values(s);
    uint32_t w = s->window;
    if (s->pushes == 0)
        s->origin = value;

    if (s->count == w) { /* evict the oldest */
        sums_add(s, v[s->head], true);
        s->head = (s->head + 1) % w;
        s->count--;
    }
    uint64_t p = s->pushes;
    v[p % w] = value;
    s->count++;
    assert((s->head + s->count - 1) % w == p % w);
    sums_add(s, value, false);
    deque_push(s, min_deque(s), &s->min_head, &s->min_len, p, value, true);
    deque_push(s, max_deque(s), &s->max_head, &s->max_len, p, value, false);
    s->pushes++;
    if (++s->since_resum >= w)
        resum(s);

    double n = (double)s->count;
    struct dd mean = dd_div((struct dd){s->sum, s->sum_lo}, n);
    struct dd var = dd_add(dd_div((struct dd){s->sum_sq, s->sum_sq_lo}, n), dd_neg(dd_sq(mean)));
    double variance = var.hi + var.lo;
    struct dd dev = dd_add(relative(s, value), dd_neg(mean));

    out[FEATURE_VALUE] = value;
    struct dd mean_abs = dd_add((struct dd){s->origin, 0}, mean);
    out[FEATURE_MEAN] = mean_abs.hi + mean_abs.lo;
    out[FEATURE_STD] = variance > 0 ? sqrt(variance) : 0.0;
    out[FEATURE_MIN] = value_at(s, min_deque(s)[s->min_head]);
    out[FEATURE_MAX] = value_at(s, max_deque(s)[s->max_head]);
    out[FEATURE_DEVIATION] = dev.hi + dev.lo;
    out[FEATURE_RATE_PER_MIN] = 0.0;
    if (s->has_last && ts_ms > s->last_ts_ms)
        out[FEATURE_RATE_PER_MIN] =
            (value - s->last_value) / ((double)(ts_ms - s->last_ts_ms) / 60000.0);
    s->has_last = true;
    s->last_ts_ms = ts_ms;
    s->last_value = value;
}

double feature_series_slope(const struct feature_series *s)
{
    uint32_t n = s->count;
    if (n < 2)
        return 0.0;
    /* slope = sum (i - c)(v_i - o) / sum (i - c)^2 with c = (n - 1) / 2: the sum of (i - c)
     * is 0, so subtracting the origin o changes nothing but keeps the products small. */
    const double *v = ring_values_c(s);
    double c = (n - 1) / 2.0, num = 0;
    for (uint32_t i = 0; i < n; i++)
        num += (i - c) * (v[(s->head + i) % s->window] - s->origin);
    double den = (double)n * ((double)n * n - 1) / 12.0;
    return num / den;
}

void feature_time_of_day(int64_t ts_ms, double *out)
{
    const int64_t day_ms = 86400000;
    int64_t ms = ts_ms % day_ms;
    if (ms < 0)
        ms += day_ms; /* before 1970: still the time of that UTC day */
    double angle = 2.0 * M_PI * ((double)ms / (double)day_ms);
    out[0] = sin(angle);
    out[1] = cos(angle);
}

static const char *const kind_names[FEATURES_PER_SERIES] = {
    [FEATURE_VALUE] = "value",
    [FEATURE_MEAN] = "mean",
    [FEATURE_STD] = "std",
    [FEATURE_MIN] = "min",
    [FEATURE_MAX] = "max",
    [FEATURE_DEVIATION] = "deviation",
    [FEATURE_RATE_PER_MIN] = "rate_per_min",
};

const char *feature_kind_name(enum feature_kind k)
{
    if ((unsigned)k >= FEATURES_PER_SERIES)
        return NULL;
    return kind_names[k];
}

bool feature_column_name(const char *const *metrics, size_t n_metrics, size_t i, char *buf,
                         size_t buflen)
{
    int n;
    if (i < n_metrics * FEATURES_PER_SERIES)
        n = snprintf(buf, buflen, "%s.%s", metrics[i / FEATURES_PER_SERIES],
                     kind_names[i % FEATURES_PER_SERIES]);
    else if (i == n_metrics * FEATURES_PER_SERIES)
        n = snprintf(buf, buflen, "time_of_day_sin");
    else if (i == n_metrics * FEATURES_PER_SERIES + 1)
        n = snprintf(buf, buflen, "time_of_day_cos");
    else
        return false;
    return n >= 0 && (size_t)n < buflen;
}
