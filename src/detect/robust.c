/* robust.c — robust streaming level and scale, an hour-of-day profile, the anomaly
 * likelihood, and a slow view with a likelihood of its own (see detect.h).
 *
 * Two stages per value, and a third beside them.
 *
 * 1. The raw score. level: EWMA of the value; scale: EWMA of the absolute residual, which for
 *    Gaussian noise is sigma * sqrt(2/pi), hence sigma ~ 1.2533 * scale. Residuals are
 *    clipped at CLIP_SIGMAS before they update level and scale (a Huber-style update), so
 *    one spike moves neither much; outliers (raw score >= OUTLIER_RAW) do not update them at
 *    all. During warm-up the weights are 1/n (a running mean), so the first values converge
 *    fast instead of starting from a guess. raw = 1 - 2^(-(z / z_half)^2) of the robust z;
 *    a value beyond the range the series has shown by more than SPATIAL_TOLERANCE of that
 *    range and one sigma scores raw 1 and is an onset by itself, whatever the likelihood
 *    says (the "spatial anomaly" of Numenta's NAB detector, which sets its final score to 1),
 *    once the range is learned: it spans SPATIAL_AFTER values, or a whole day past the
 *    warm-up and SPATIAL_DAY_MIN values, whichever comes first (before, Gaussian noise sets
 *    new records often enough to raise false alarms). SPATIAL_TOLERANCE is Numenta's.
 *    Values beyond a limit (learn false) teach
 *    nothing: not the level, scale and range, not the likelihood (below). A run of
 *    warmup_readings outliers in one direction is a new normal: the level jumps to its mean, and
 *    the level and scale it leaves are kept as a second regime; each value is judged against
 *    whichever regime gives it the smaller z, and the two swap when that is the other one —
 *    a signal switching between two levels (on/off, a square wave) has two normals.
 *    With timestamps, each hour of the day keeps its own level and scale (hour_context()),
 *    and after two weeks a value is also judged against its hour where that is the narrower
 *    view: its raw score is then the larger of the two. In the second week the profile is
 *    young (each hour rests on a few days): its view of x is a third raw score, with a
 *    likelihood of its own (stage 2) that learns how noisy the young profile is.
 *
 * 2. The anomaly likelihood (Ahmad, Lavin, Purdy & Agha 2017, "Unsupervised real-time
 *    anomaly detection for streaming data", Neurocomputing 262, section 4.3; nupic's
 *    anomaly_likelihood.py). The raw score alone is noisy: on a noisy series high raw scores
 *    are routine, on a quiet one rare. So the mean of the last LIK_SHORT raw scores is
 *    compared with the long-run distribution of that mean (its EWMA mean and variance over
 *    about LIK_LONG values, floored at LIK_MIN_MEAN and LIK_MIN_VAR as nupic does), and the
 *    score is its Gaussian upper-tail probability, log-scaled: q = -log10(tail),
 *    score = q / (q + LIK_Q_HALF) — 0.5 at a tail of 1e-5, and never 1 in a float, so
 *    every level of surprise ranks. A sustained change moves the short mean far beyond its
 *    usual spread; a noisy series' routine spikes do not.
 *
 * 3. The slow view: a second raw score with its own likelihood, for shifts that hide in the
 *    noise of single values (a mean that rises by one sigma for hours: no value is unusual,
 *    their average is). smooth is an EWMA of the values over about LIK_SHORT of them, its
 *    distance from the level is measured in its own spread (an EWMA of that distance: on an
 *    autocorrelated series an average's spread is not sigma / sqrt(LIK_SHORT)), raw =
 *    1 - 2^(-z / z_half), and its likelihood is at most the significance of z itself (an
 *    average is nearly Gaussian; the likelihood alone, averaging averages, would take a
 *    white-noise wander for a tail event). The score is the largest of the likelihoods:
 *    the value's catches spikes and bursts, the slow view's sustained drifts and shifts, the
 *    young profile's departures from a daily rhythm before two weeks of history.
 *
 * The long-run distribution starts from a prior of LIK_PRIOR values at the floors, so the
 * likelihood scores from the first value after warm-up and learns fast (weights
 * 1 / (values + LIK_PRIOR) until they reach 1 / LIK_LONG); the short window starts as
 * LIK_SHORT zeros. An anomaly is an episode, not a storm: once the likelihood reaches the anomaly
 * threshold (its onset), the reported score is capped at EPISODE_CAP x threshold while it stays
 * there and for EPISODE_READINGS readings after the onset (nupic's _filterLikelihoods), and
 * the episode lasts until the likelihood no longer calls the short-term mean unusual (a tail
 * above 10^-EPISODE_END_Q): a burst that dips under the threshold and comes back is the same
 * excursion, not a new one. So the score marks each episode once. `likely` keeps the uncapped
 * value, and `anomalous` (FLAG_ANOMALY) marks every reading of an episode whose own raw score is
 * above the usual: a sustained change is flagged on each reading (so alert hold-off opens an
 * alert), a lone spike on one (so it opens none). A series that opens episodes more often than once
 * per 1 / ONSET_NOMINAL values (onset_rate) has its tail probabilities multiplied by the excess
 * before the threshold is applied (calibrated_to_onset_rate()): a chatty series' likelihood
 * is overconfident, and its next alarms need that much more evidence.
 *
 * 4. The onset's strength (onset_strength()). Every onset crosses the same threshold, so a
 *    true and a false episode would report the same score and a higher threshold on the
 *    score could only drop onsets at random. The onset reports instead how rarely the series
 *    has been where its last LIK_SHORT values went: a histogram of the values over eighths of
 *    the range seen so far (CAD OSE's 3-bit view of a value, Smirnov 2016), re-binned as the
 *    range grows; the least visited eighth among the recent values' has a share f of them,
 *    and the onset reports threshold + (1 - threshold) x q / (q + 1), q = -log10 f. A burst
 *    into a part of the range the series has never or rarely visited reports high; the
 *    series' routine bursts report just above the threshold. With timestamps, each eighth
 *    also remembers the UTC hours it was visited on each of the last COARSE_DAYS days, and
 *    once more whole days than that are behind, f is judged at this hour: (days visited at
 *    this hour + f) / (COARSE_DAYS + 1), the overall share a prior worth one day — a rare part
 *    of the range visited at this hour every day (a nightly job) is a daily routine, a common
 *    one never visited at this hour (a day at the night's level) is news. Which values are
 *    onsets, and flagged, does not change. */
#include "detect/detect.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SIGMA_PER_MAD     1.2533141373155003  /* sqrt(pi/2) */
#define M_LOG10_2         0.30102999566398120 /* log10(2) */
#define CLIP_SIGMAS       3.0
#define OUTLIER_RAW       0.9        /* raw score of an outlier: z ~ 1.8 z_half */
#define SPATIAL_TOLERANCE 0.05       /* beyond the range by this fraction of it: novel */
#define SPATIAL_AFTER     1000       /* ... once the range spans this many values */
#define SPATIAL_DAY_MS    86400000LL /* ... or a whole day of them past the warm-up */
#define SPATIAL_DAY_MIN   100        /* ... and at least this many (hourly values: days) */
#define LIK_LONG          4000       /* values in the long-run distribution (EWMA memory) */
#define LIK_PRIOR         10         /* pseudo-values of the prior (the floors) */
#define LIK_MIN_MEAN      0.03       /* nupic's floors of the long-run mean ... */
#define LIK_MIN_VAR       0.0003     /* ... and variance */
#define LIK_Q_HALF        5.0        /* -log10(tail) that scores 0.5 */
#define EPISODE_READINGS  20         /* readings after an onset that belong to its episode */
#define EPISODE_CAP       0.75       /* in an episode the score is at most this x threshold */
#define EPISODE_END_Q     1.0        /* an episode ends once the likelihood's tail > 10^-this */
#define ONSET_NOMINAL     0.001      /* onsets per value of a calibrated series, at most */
#define SMOOTH_ALPHA      (1.0 / LIK_SHORT) /* the slow view averages about LIK_SHORT values */

#define HOUR_MS       3600000LL
#define HOUR_AFTER_MS (14 * 24 * HOUR_MS) /* two weeks of history before the profile */
#define HOUR_YOUNG_MS (7 * 24 * HOUR_MS)  /* one week: the young profile's own likelihood */
#define HOUR_ALPHA    0.05 /* an hour's profile remembers its last ~20 values, or a day */

_Static_assert(sizeof(((struct likelihood_state *)0)->recent) / sizeof(float) == LIK_SHORT,
               "the ring holds LIK_SHORT raw scores");

/* The scale as a standard deviation, never below the resolution or the relative floor. */
static double sigma_of(const struct robust_state *s, const struct detect_params *p, double floor)
{
    double sigma = SIGMA_PER_MAD * s->scale;
    double rel = p->min_relative_scale * fabs(s->level);
    return fmax(sigma, fmax(floor, rel));
}

static double raw_of(double z, const struct detect_params *p)
{
    return 1 - exp2(-(z / p->z_half) * (z / p->z_half));
}

/* x - level, saturated at +/-DBL_MAX: two finite values can differ by more than a double holds,
 * and an infinite residual would turn the level into inf - inf = NaN for good. */
static double residual(double x, double level)
{
    double r = x - level;
    return isinf(r) ? copysign(DBL_MAX, r) : r;
}

/* The raw score of x in its hour-of-day context, or raw itself when there is none: a series
 * with two weeks of timestamps behind it is judged against the profile of its hour of the
 * day (UTC) when that hour's spread is narrower than the overall one (sigma) — a daily
 * rhythm then is normal, and a departure from it unusual even within the overall range.
 * Between one and two weeks the profile is young: x's robust z against its hour (whatever
 * the hour's spread) is left in *young_z, for a likelihood of its own that learns how
 * surprising the young profile routinely is; *young_z is -1 at any other time.
 * Then the profile learns x: each hour keeps an EWMA of its values and of their absolute
 * deviations (clipped at CLIP_SIGMAS), weighted so that it remembers the longer of its last
 * 1 / HOUR_ALPHA values and one day of them (at one value a second, 3600 values make an
 * hour: the weight is then 1 / values per hour, estimated from the series' own rate; 1/n at
 * first). */
static double hour_context(struct robust_state *s, const struct detect_params *p, double floor,
                           double sigma, double x, int64_t ts_ms, double raw, double *young_z)
{
    *young_z = -1;
    if (ts_ms <= 0)
        return raw;
    if (s->first_ts_ms == 0)
        s->first_ts_ms = ts_ms;
    int h = (int)((ts_ms / HOUR_MS) % 24);
    if (h < 0)
        h += 24;
    double hs =
        fmax(SIGMA_PER_MAD * s->hour_scale[h], fmax(floor, p->min_relative_scale * fabs(s->level)));
    if (s->hour_n[h] == 0) {
        s->hour_level[h] = (float)x;
        s->hour_n[h] = 1;
        return raw;
    }
    int64_t span_ms = ts_ms - s->first_ts_ms;
    if (span_ms >= HOUR_AFTER_MS && hs < sigma)
        raw = raw_of(fabs(residual(x, s->hour_level[h])) / hs, p);
    else if (span_ms >= HOUR_YOUNG_MS && span_ms < HOUR_AFTER_MS)
        *young_z = fabs(residual(x, s->hour_level[h])) / hs;

    double per_hour = span_ms > 0 ? (double)s->n * (double)HOUR_MS / (double)span_ms : 0;
    double a = HOUR_ALPHA;
    if (per_hour * HOUR_ALPHA > 1)
        a = 1 / per_hour;
    if (1.0 / s->hour_n[h] > a)
        a = 1.0 / s->hour_n[h];
    double d = residual(x, s->hour_level[h]), lim = CLIP_SIGMAS * hs;
    double dc = d > lim ? lim : (d < -lim ? -lim : d);
    s->hour_level[h] += (float)(a * dc);
    s->hour_scale[h] += (float)(a * (fabs(dc) - s->hour_scale[h]));
    if (s->hour_n[h] < UINT16_MAX)
        s->hour_n[h]++;
    return raw;
}

/* The robust z of x against the other regime (the one before the last re-baseline), its
 * sigma in *alt_sigma when that is not NULL; INFINITY while there is none. */
static double alt_z_of(const struct robust_state *s, const struct detect_params *p, double floor,
                       double x, double *alt_sigma)
{
    if (s->alt_scale < 0)
        return INFINITY;
    double sigma =
        fmax(SIGMA_PER_MAD * s->alt_scale, fmax(floor, p->min_relative_scale * fabs(s->alt_level)));
    if (alt_sigma)
        *alt_sigma = sigma;
    return fabs(residual(x, s->alt_level)) / sigma;
}

/* -log10 of the Gaussian upper tail beyond zl >= 0; past zl = 8 the asymptotic form, as
 * erfc underflows further out. */
static double neglog10_tail(double zl)
{
    if (zl < 8)
        return -log10(0.5 * erfc(zl / M_SQRT2));
    return (zl * zl / 2 + log(zl * sqrt(2 * M_PI))) / M_LN10;
}

/* Feeds one raw score to one likelihood and returns its score, uncapped; *usual (when usual
 * is not NULL) is the long-run mean of the short-term mean: a raw score above it is above the
 * usual. Only when learn is true does the raw score join the short-term window and the
 * long-run distribution: an alarm is scored as if it were the newest value, but it is not the
 * new normal (the return from it is no anomaly). */
static double likelihood_of(struct likelihood_state *l, double raw, bool learn, double *usual)
{
    if (l->scored == 0) { /* the prior: LIK_PRIOR values at the floors */
        l->lt_mean = LIK_MIN_MEAN;
        l->lt_var = LIK_MIN_VAR;
    }
    double sum = l->recent_sum + raw - l->recent[l->head];
    if (learn) {
        l->recent[l->head] = (float)raw;
        l->head = (l->head + 1) % LIK_SHORT;
        if (l->head == 0) { /* re-sum now and then: no rounding drift over millions of values */
            sum = 0;
            for (int i = 0; i < LIK_SHORT; i++)
                sum += l->recent[i];
        }
        l->recent_sum = sum;
        l->scored++;
    }
    double avg = sum / LIK_SHORT; /* the window starts as LIK_SHORT zeros */

    double score = 0, mean = fmax(l->lt_mean, LIK_MIN_MEAN);
    if (usual)
        *usual = mean;
    double zl = (avg - mean) / sqrt(fmax(l->lt_var, LIK_MIN_VAR));
    if (zl > 0) {
        double q = neglog10_tail(zl);
        score = q / (q + LIK_Q_HALF);
    }
    if (learn) {
        double a =
            l->scored + LIK_PRIOR < LIK_LONG ? 1.0 / (l->scored + LIK_PRIOR) : 1.0 / LIK_LONG;
        double d = avg - l->lt_mean;
        l->lt_mean += a * d;
        l->lt_var = (1 - a) * (l->lt_var + a * d * d);
    }
    return score;
}

/* The score of a Gaussian statistic z standard deviations from its mean, either way: the
 * likelihood's q / (q + LIK_Q_HALF) of its two-sided tail. */
static double significance(double z)
{
    double q = fmax(neglog10_tail(z) - M_LOG10_2, 0);
    return q / (q + LIK_Q_HALF);
}

/* The eighth of the range lo..hi that x falls in (halves: no overflow at the double range). */
static int coarse_bin(double x, double lo, double hi)
{
    double t = (x * 0.5 - lo * 0.5) / (hi * 0.5 - lo * 0.5);
    if (!(t > 0)) /* also NaN, and a range of one point */
        return 0;
    if (!(t < 1))
        return COARSE_BINS - 1;
    return (int)(COARSE_BINS * t);
}

/* The coarse range grows from s->lo..s->hi to lo..hi: each eighth's count is spread over the
 * new eighths it overlaps, in proportion, and the recent values' eighths follow their
 * centres — the histogram always describes the range as it is now (the first values, learned
 * while the range was a few noise steps wide, do not stay in its outer eighths). */
static void coarse_rebin(struct robust_state *s, double lo, double hi)
{
    float c[COARSE_BINS] = {0};
    double old = s->hi * 0.5 - s->lo * 0.5, span = hi * 0.5 - lo * 0.5;
    if (!(old > 0)) { /* all the values so far at one point */
        float total = 0;
        for (int i = 0; i < COARSE_BINS; i++)
            total += s->coarse_n[i];
        int b = coarse_bin(s->lo, lo, hi);
        c[b] = total;
        for (int k = 0; k < LIK_SHORT; k++)
            s->coarse_recent[k] = (uint8_t)b;
    } else {
        double w = old / COARSE_BINS, nw = span / COARSE_BINS; /* in halves */
        for (int i = 0; i < COARSE_BINS; i++) {
            double a = s->lo * 0.5 - lo * 0.5 + i * w, b = a + w; /* from lo, in halves */
            int j0 = coarse_bin(s->lo + 2 * i * w, lo, hi);
            for (int j = j0; j < COARSE_BINS && j * nw < b; j++) {
                double ov = fmin(b, (j + 1) * nw) - fmax(a, j * nw);
                if (ov > 0)
                    c[j] += (float)(s->coarse_n[i] * (ov / w));
            }
        }
        for (int k = 0; k < LIK_SHORT; k++)
            s->coarse_recent[k] =
                (uint8_t)coarse_bin(s->lo + 2 * (s->coarse_recent[k] + 0.5) * w, lo, hi);
    }
    for (int i = 0; i < COARSE_BINS; i++)
        s->coarse_n[i] = c[i];
    /* The hours each eighth was visited go with its centre. */
    uint8_t hours[COARSE_BINS][12] = {{0}};
    double w = old / COARSE_BINS;
    for (int i = 0; i < COARSE_BINS; i++) {
        int j = old > 0 ? coarse_bin(s->lo + 2 * (i + 0.5) * w, lo, hi) : coarse_bin(s->lo, lo, hi);
        for (int k = 0; k < 12; k++)
            hours[j][k] |= s->coarse_hours[i][k];
    }
    memcpy(s->coarse_hours, hours, sizeof hours);
}

/* The 4 bits of eighth b at UTC hour h (coarse_hours). */
static unsigned coarse_hour_bits(const struct robust_state *s, int b, int h)
{
    uint8_t v = s->coarse_hours[b][h / 2];
    return h % 2 ? (unsigned)v >> 4 : v & 15u;
}

/* The hours of the coarse range move on to day (UTC, days since 1970): each eighth's bits
 * shift by the days passed, so bit 0 is today again and days older than COARSE_DAYS leave. */
static void coarse_new_day(struct robust_state *s, int32_t day)
{
    int32_t d = day - s->coarse_day;
    s->coarse_day = day;
    for (int b = 0; b < COARSE_BINS; b++)
        for (int k = 0; k < 12; k++) {
            unsigned v = s->coarse_hours[b][k];
            unsigned lo = d > COARSE_DAYS ? 0 : ((v & 15u) << d) & 15u;
            unsigned hi = d > COARSE_DAYS ? 0 : ((v >> 4) << d) & 15u;
            s->coarse_hours[b][k] = (uint8_t)(lo | hi << 4);
        }
}

/* x, already within s->lo..s->hi, is counted in its eighth and remembered among the last
 * LIK_SHORT values'. The counts are halved together once they hold 2^20 values: a float
 * still counts single values exactly there, and the proportions stay. */
static void coarse_learn(struct robust_state *s, double x, int64_t ts_ms)
{
    int b = coarse_bin(x, s->lo, s->hi);
    if (ts_ms > 0) {
        int32_t day = (int32_t)(ts_ms / (24 * HOUR_MS));
        int h = (int)((ts_ms / HOUR_MS) % 24);
        if (s->coarse_day == 0)
            s->coarse_day = day;
        if (day > s->coarse_day)
            coarse_new_day(s, day);
        if (day == s->coarse_day) { /* (a value from an earlier day marks nothing) */
            s->coarse_hours[b][h / 2] |= (uint8_t)(h % 2 ? 16 : 1);
            s->coarse_hour = (uint8_t)h;
        }
    }
    float total = 0;
    for (int i = 0; i < COARSE_BINS; i++)
        total += s->coarse_n[i];
    if (total >= (float)(1 << 20))
        for (int i = 0; i < COARSE_BINS; i++)
            s->coarse_n[i] *= 0.5f;
    s->coarse_n[b] += 1;
    s->coarse_recent[s->n % LIK_SHORT] = (uint8_t)b;
}

/* The strength of an episode's onset, reported as its score in [threshold, 1): how rarely the
 * series has been where its last LIK_SHORT values went (in the spirit of CAD OSE's contextual
 * detector, Smirnov 2016, which judges a value by the coarse part of the range it falls in).
 * f is the share of the learned values that fell in the least visited eighth of the range
 * among the recent values' — judged at the current UTC hour when the timestamps allow (see
 * below) — and the onset reports threshold + (1 - threshold) x q / (q + 1) with
 * q = -log10 f: a burst into a part of the range the series has rarely or never visited
 * reports high, one into the range its routine bursts reach just above the threshold. Every
 * onset still reports at least the threshold (FLAG_ANOMALY and alerts are unchanged); what
 * changes is that a higher threshold on the score keeps the onsets that go somewhere new. */
static double onset_strength(const struct robust_state *s, const struct detect_params *p)
{
    double total = 0, least = INFINITY;
    int rarest = 0;
    for (int i = 0; i < COARSE_BINS; i++)
        total += s->coarse_n[i];
    uint32_t recent = s->n < LIK_SHORT ? s->n : LIK_SHORT;
    for (uint32_t i = 0; i < recent; i++)
        if (s->coarse_n[s->coarse_recent[i]] < least) {
            rarest = s->coarse_recent[i];
            least = s->coarse_n[rarest];
        }
    if (!(total >= 1) || !(least < INFINITY))
        return p->anomaly_threshold;
    double share = fmax(least, 1) / total;
    if (s->coarse_day != 0) {
        /* On how many of the last COARSE_DAYS days was that eighth visited at this hour? With
         * more whole days than that behind, its share is that fraction, with the overall share
         * as a prior worth one day; with fewer, a visit at this hour can only make it more
         * usual. */
        unsigned days = coarse_hour_bits(s, rarest, s->coarse_hour) >> 1;
        int seen = 0;
        for (int d = 0; d < COARSE_DAYS; d++)
            seen += (int)(days >> d & 1);
        int32_t first_day = (int32_t)(s->first_ts_ms / (24 * HOUR_MS));
        if (s->first_ts_ms > 0 && s->coarse_day - first_day > COARSE_DAYS)
            share = (seen + share) / (COARSE_DAYS + 1);
        else
            share = fmax(share, (double)seen / COARSE_DAYS);
    }
    double q = -log10(fmin(share, 1));
    return p->anomaly_threshold + (1 - p->anomaly_threshold) * q / (q + 1);
}

/* Alarm-rate calibration: a likelihood that is calibrated opens an episode (a tail of 1e-5 or
 * less in one of its views) rarely — at most about once per 1 / ONSET_NOMINAL values. A
 * series that has opened them more often lately (onset_rate: an EWMA of onsets per value over
 * the likelihood's memory) has shown that its likelihood is overconfident by that factor, so
 * every tail probability of the series is multiplied by it (-log10 of the excess subtracted
 * from q): a chatty series' next alarms need that much more evidence, a quiet one keeps its
 * sensitivity. onset_rate starts at the nominal rate (the prior of a new series). */
static double calibrated_to_onset_rate(const struct robust_state *s, double score)
{
    double excess = s->onset_rate / ONSET_NOMINAL;
    if (!(excess > 1) || !(score < 1))
        return score;
    double q = LIK_Q_HALF * score / (1 - score) - log10(excess);
    return q > 0 ? q / (q + LIK_Q_HALF) : 0;
}

/* Feeds the raw scores of the value, of the slow view (z_slow: the slow view's distance
 * from the level in its own spread) and of the young hour profile (young_z: the value's z
 * against its hour, < 0: none) to their likelihoods; returns the reported (episode-capped)
 * score, the largest of them, and leaves the uncapped one in s->likely. Each likelihood is
 * calibrated by its own history, so any can speak: the value's for what one value or a
 * burst shows, the slow view's for a sustained shift hiding in the noise of single values,
 * the young profile's for a departure from the daily rhythm before two weeks have made the
 * profile part of the value's raw score. The slow view's is at most the significance of
 * z_slow itself: an average of ~LIK_SHORT values is nearly Gaussian, and its likelihood
 * (whose short-term mean then averages averages) would otherwise mistake a white-noise
 * wander for a tail event. The young profile's is at most the significance of young_z: its
 * likelihood starts on day 7 from the prior's tight floors, and until it has learned the
 * young profile's real spread it must not call a value a tail event that is not one even
 * against its hour alone. A novel value (beyond the learned range, stage 1) reaches the
 * threshold whatever the likelihoods say: a new record by a margin is news however noisy
 * the series has been. */
static double likelihood(struct robust_state *s, const struct detect_params *p, double raw,
                         double slow_raw, double z_slow, double young_z, bool learn, bool novel)
{
    double usual, young_usual = 1;
    double young_raw = young_z >= 0 ? raw_of(young_z, p) : -1;
    double score = likelihood_of(&s->lik, raw, learn, &usual);
    double slow = likelihood_of(&s->slow_lik, slow_raw, learn, NULL);
    score = fmax(score, fmin(slow, significance(z_slow)));
    if (young_raw >= 0)
        score = fmax(score, fmin(likelihood_of(&s->hour_lik, young_raw, learn, &young_usual),
                                 significance(young_z)));
    score = calibrated_to_onset_rate(s, score);
    if (novel)
        score = fmax(score, p->anomaly_threshold);
    if (learn) /* the onset rate's memory is the likelihood's */
        s->onset_rate -= s->onset_rate / LIK_LONG;
    if (s->since_onset < UINT32_MAX)
        s->since_onset++;

    bool was = s->likely >= p->anomaly_threshold;
    s->likely = (float)score;
    /* An episode lasts until the evidence is gone: while the likelihood still calls the
     * short-term mean unusual (a tail below 10^-EPISODE_END_Q), a new crossing of the threshold
     * is the same excursion coming back, not a new one. */
    if (score < fmin(EPISODE_END_Q / (EPISODE_END_Q + LIK_Q_HALF), p->anomaly_threshold))
        s->in_episode = false;
    /* The flag marks the readings of an episode that feed it (unusual for their regime, or
     * for their hour while the profile is young), not the usual ones after a lone spike that
     * keep the short-term mean up until the spike leaves it. */
    s->anomalous = score >= p->anomaly_threshold &&
                   (raw > usual || (young_raw >= 0 && young_raw > young_usual));
    if (score >= p->anomaly_threshold) {
        if (was || s->in_episode || s->since_onset < EPISODE_READINGS)
            score = fmin(score, EPISODE_CAP * p->anomaly_threshold);
        else {
            s->since_onset = 0;
            s->in_episode = true;
            score = onset_strength(s, p);
            if (learn)
                s->onset_rate += (float)(1.0 / LIK_LONG);
        }
    }
    return score;
}

/* The slow view of x: the EWMA of the values up to x (weight SMOOTH_ALPHA, 1/n at first),
 * returned in *smooth, and its distance from the level in its own spread, *z (measured, not
 * assumed: on an autocorrelated series the spread of an average of ~LIK_SHORT values is
 * not the single values' spread over sqrt(LIK_SHORT)). Returns its raw score,
 * 1 - 2^(-z / z_half): linear in z near 0, as a Gaussian average's distance is best kept
 * (squared, its short-term mean would be skewed like a chi-square). */
static double slow_raw_of(const struct robust_state *s, const struct detect_params *p, double floor,
                          double x, double *smooth, double *z)
{
    double a = 1.0 / s->n > SMOOTH_ALPHA ? 1.0 / s->n : SMOOTH_ALPHA;
    *smooth = s->smooth + a * residual(x, s->smooth);
    double sigma =
        fmax(SIGMA_PER_MAD * s->smooth_scale, fmax(floor, p->min_relative_scale * fabs(s->level)));
    *z = fabs(residual(*smooth, s->level)) / sigma;
    return 1 - exp2(-*z / p->z_half);
}

double robust_update(struct robust_state *s, const struct detect_params *p, double floor, double x,
                     int64_t ts_ms, bool learn, bool *warm)
{
    if (!learn) {
        *warm = s->n <= p->warmup_readings; /* nothing (or too little) learned to judge by */
        if (*warm)
            return 0;
        double z = fabs(residual(x, s->level)) / sigma_of(s, p, floor);
        double smooth, z_slow;
        double slow_raw = slow_raw_of(s, p, floor, x, &smooth, &z_slow);
        return likelihood(s, p, raw_of(fmin(z, alt_z_of(s, p, floor, x, NULL)), p), slow_raw,
                          z_slow, -1, false, false);
    }
    s->n++;
    if (s->n == 1) {
        s->level = x;
        s->lo = s->hi = x;
        s->smooth = x;
        s->smooth_scale = 0;
        s->scale = 0;
        s->alt_scale = -1; /* no other regime yet */
        s->run = 0;
        s->since_onset = UINT32_MAX;
        s->onset_rate = (float)ONSET_NOMINAL;
        coarse_learn(s, x, ts_ms);
        *warm = true;
        return 0;
    }
    double sigma = sigma_of(s, p, floor);
    double r = residual(x, s->level);
    double z = fabs(r) / sigma;
    *warm = s->n <= p->warmup_readings;
    if (!*warm && s->alt_scale >= 0) {
        /* A value the regime before the last shift explains better than the current one:
         * the series has switched back (a square wave, a machine on and off), which is no
         * anomaly. The regimes swap, so each keeps its own level and scale. */
        double alt_sigma = sigma;
        double alt_z = alt_z_of(s, p, floor, x, &alt_sigma);
        if (alt_z < z) {
            double l = s->level, sc = s->scale;
            s->level = s->alt_level;
            s->scale = s->alt_scale;
            s->alt_level = l;
            s->alt_scale = sc;
            s->run = 0;
            sigma = alt_sigma;
            r = residual(x, s->level);
            z = alt_z;
        }
    }
    double raw = 0, score = 0, young_z = -1;
    bool novel = false;
    if (!*warm) {
        /* The spread a single level would see: with two regimes, theirs and their distance.
         * Where the hour is the narrower view, a value is usual only if it is usual both for
         * its regime and for its hour (the larger raw score counts): each context catches
         * what the other lets through. */
        double overall = s->alt_scale >= 0 ? hypot(sigma, (s->level - s->alt_level) / 2) : sigma;
        raw = raw_of(z, p);
        raw = fmax(raw, hour_context(s, p, floor, overall, x, ts_ms, raw, &young_z));
        double tol = fmax(SPATIAL_TOLERANCE * (s->hi - s->lo), sigma);
        bool whole_day = s->first_ts_ms > 0 && ts_ms - s->first_ts_ms >= SPATIAL_DAY_MS &&
                         s->n > SPATIAL_DAY_MIN;
        if ((s->n > SPATIAL_AFTER || whole_day) && (x > s->hi + tol || x < s->lo - tol))
            raw = 1, novel = true;
    }
    if (x < s->lo || x > s->hi)
        coarse_rebin(s, fmin(s->lo, x), fmax(s->hi, x));
    s->lo = fmin(s->lo, x);
    s->hi = fmax(s->hi, x);
    coarse_learn(s, x, ts_ms);

    /* The slow view learns every value, outliers too: a shift is what it is there to see. */
    double smooth, z_slow;
    double slow_raw = slow_raw_of(s, p, floor, x, &smooth, &z_slow);
    double slow_r = fabs(residual(smooth, s->level));
    if (s->n > p->warmup_readings) {
        double lim = CLIP_SIGMAS * fmax(SIGMA_PER_MAD * s->smooth_scale,
                                        fmax(floor, p->min_relative_scale * fabs(s->level)));
        slow_r = fmin(slow_r, lim);
    }
    s->smooth = smooth;
    s->smooth_scale +=
        (1.0 / s->n > p->scale_alpha ? 1.0 / s->n : p->scale_alpha) * (slow_r - s->smooth_scale);
    if (!*warm)
        score = likelihood(s, p, raw, slow_raw, z_slow, young_z, true, novel);

    if (raw >= OUTLIER_RAW) {
        /* An outlier teaches level and scale nothing: learning from it (even clipped) grows
         * the scale ~14% per value, so a shift would be absorbed by an inflated scale after a
         * handful of values and leave the detector blind. Only a run of warmup_readings
         * outliers in one direction is a new normal: the level jumps to the run's mean, the
         * scale stays. */
        int32_t dir = r > 0 ? 1 : -1;
        s->run = (s->run * dir > 0) ? s->run + dir : dir;
        /* The run's mean, as a convex combination: it cannot overflow at the double range. */
        double w = 1.0 / abs(s->run);
        s->run_mean = s->run_mean * (1 - w) + x * w;
        if ((uint32_t)abs(s->run) >= p->warmup_readings) {
            s->alt_level = s->level; /* the regime left behind, should the series return */
            s->alt_scale = s->scale;
            s->level = s->run_mean; /* the run's mean: the new level, less noisy than one value */
            s->run = 0;
        }
        return score;
    }
    s->run = 0;

    double a_level = 1.0 / s->n > p->level_alpha ? 1.0 / s->n : p->level_alpha;
    double a_scale = 1.0 / s->n > p->scale_alpha ? 1.0 / s->n : p->scale_alpha;
    double rc = r;
    if (s->n > p->warmup_readings) {
        double lim = CLIP_SIGMAS * sigma;
        rc = r > lim ? lim : (r < -lim ? -lim : r);
    }
    s->level += a_level * rc;
    s->scale += a_scale * (fabs(rc) - s->scale);
    return score;
}
