/* tamper.c — the per-series and per-device tamper checks and the trust score (tamper.h,
 * docs/TAMPER.md). */
#include "tamper/tamper.h"

#include "core/metric.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Metric classes: which value checks apply. */
enum {
    CLS_BINARY = 0, /* 0/1 signals: no value checks */
    CLS_REGIME,     /* switches between levels: resolution, frozen, replay */
    CLS_SMOOTH,     /* physical quantities that move gradually: every check, both ways */
    CLS_DANGER_UP,  /* smooth, but a fast rise is what alarms are for: no upward jump/drift */
};

/* Candidate grids a series' values may lie on (the sensor's resolution). */
static const double grids[] = {1, 0.5, 0.1, 0.05, 0.01, 0.001};
#define N_GRIDS (sizeof grids / sizeof grids[0])

#define SLOW_ALPHA         0.02  /* EWMA weight of the usual step and repeat rate */
#define FAST_ALPHA         0.3   /* neighbours: EWMA weight of a member's fast level */
#define FAST_K             7.0   /* ... how many of its usual wanders from the level it must move */
#define NEIGHBOUR_GRACE_MS 15000 /* neighbours: how long gas may rise alone before doubt */
#define BASE_ALPHA         0.01  /* neighbours: EWMA weight of a member's base */
#define LONG_ALPHA         (1.0 / 512) /* EWMA weight of the long-run repeat rate */
#define LEVEL_ALPHA        0.05        /* EWMA weight of the slow level */
#define SPREAD_ALPHA       0.005       /* EWMA weight of the usual distance from the level */
#define NOISE_K            1.8         /* noise CUSUM allowance, in usual steps (mean step is 1) */
#define NOISE_CLIP         10.0        /* one step counts at most this many usual steps */
#define DRIFT_K            3.0         /* drift CUSUM allowance, in sigmas */
#define DRIFT_CLIP         20.0        /* one value counts at most this many sigmas */
#define JUMP_MEMORY        3           /* a jump back within this many readings makes a spike */
#define FLAME_ON           0.5
#define FLAME_READINGS     3
#define FLAME_MIN_MS       15000 /* ... and seconds: a fire heats its room's sensor by a degree */
#define FAST_READINGS      5
#define HOT_C              50.0
#define GAUSS_ENTROPY_K                                                                            \
    4.13 /* sqrt(2 pi e): entropy of N(0, s^2) quantised at q is                                   \
            log2(4.13 s / q) bits */

const char *trust_state_name(enum trust_state s)
{
    switch (s) {
    case TRUST_TRUSTED:
        return "trusted";
    case TRUST_SUSPECT:
        return "suspect";
    case TRUST_QUARANTINED:
        return "quarantined";
    }
    return "?";
}

int trust_state_parse(const char *s, enum trust_state *out)
{
    for (int i = 0; i <= TRUST_QUARANTINED; i++) {
        if (strcmp(s, trust_state_name((enum trust_state)i)) == 0) {
            *out = (enum trust_state)i;
            return 0;
        }
    }
    return -1;
}

static const char *const check_names[TAMPER_CHECK_COUNT] = {
    "slew",  "resolution", "frozen",       "replayed_window", "noise_change",
    "drift", "timing",     "cross_sensor", "neighbours",
};

const char *tamper_check_name(enum tamper_check c)
{
    return (unsigned)c < TAMPER_CHECK_COUNT ? check_names[c] : "?";
}

static uint8_t metric_class(const char *metric)
{
    const struct metric_info *m = metric_lookup(metric);
    /* A metric the catalogue does not know (a raw ADC channel such as "mq2", a user's own
     * name) has unknown physics: how fast it may step, drift or change its noise is not ours
     * to judge — a real MQ sensor warming up drifts for hours. Only the checks that need no
     * physics apply to it: resolution, frozen values, replayed windows. */
    if (m == NULL)
        return CLS_REGIME;
    if (m->binary)
        return CLS_BINARY;
    static const char *const regime[] = {"light_lux", "vibration_mm_s", "noise_db"};
    static const char *const danger[] = {"gas_ppm", "co_ppm", "co2_ppm", "smoke_ppm",
                                         "temperature_c"};
    for (size_t i = 0; i < sizeof regime / sizeof regime[0]; i++) {
        if (strcmp(metric, regime[i]) == 0)
            return CLS_REGIME;
    }
    for (size_t i = 0; i < sizeof danger / sizeof danger[0]; i++) {
        if (strcmp(metric, danger[i]) == 0)
            return CLS_DANGER_UP;
    }
    return CLS_SMOOTH;
}

void tamper_series_init(struct tamper_series *s, const char *metric)
{
    memset(s, 0, sizeof *s);
    s->cls = metric_class(metric);
    /* Only grids at least as fine as 1 and no finer than the catalogue's resolution are
     * candidates (an unknown metric: all). */
    double res = metric_info_or_generic(metric)->resolution;
    for (size_t i = 0; i < N_GRIDS; i++) {
        if (!(res > 0) || (grids[i] >= res * (1 - 1e-9)))
            s->grid_ok |= (uint8_t)(1u << i);
    }
}

void tamper_device_init(struct tamper_device *d)
{
    memset(d, 0, sizeof *d);
    d->state = TRUST_TRUSTED;
    d->temp_c = NAN;
    d->temp_level_c = NAN;
    d->flame_start_temp_c = NAN;
}

double tamper_score(const struct tamper_device *d)
{
    return exp(-d->doubt);
}

/* ---------------------------------------------------------------- series checks */

static bool on_grid(double x, double g)
{
    double k = x / g;
    return fabs(k - nearbyint(k)) <= 1e-6 * (fabs(k) > 1 ? fabs(k) : 1);
}

/* The coarsest grid every learned value lies on, or 0 (none established yet). */
static double series_grid(const struct tamper_series *s)
{
    if (s->distinct < 2)
        return 0; /* a constant lies on every grid: no evidence of the sensor's step yet */
    for (size_t i = 0; i < N_GRIDS; i++) {
        if (s->grid_ok & (1u << i))
            return grids[i];
    }
    return 0;
}

/* The quantum for fingerprints and the floor of the usual step: the series' grid, else the
 * catalogue resolution, else a millionth of the value. */
static double series_quantum(const struct tamper_series *s, const char *metric, double x)
{
    double g = series_grid(s);
    if (g > 0)
        return g;
    double res = metric_info_or_generic(metric)->resolution;
    if (res > 0)
        return res;
    double q = 1e-6 * fabs(x);
    return q > 1e-9 ? q : 1e-9;
}

/* A window's fingerprint: 48 bits (the low 32 in hashes, the high 16 in hashes_hi). A window
 * is compared with 512 remembered ones at every reading: with 32 bits, a fleet of a thousand
 * series meets a chance match every day or two (512 x 17,280 readings a day / 2^32 per
 * series), each one a quarantine; with 48 bits, once in thousands of years. */
static uint64_t window_hash(const struct tamper_series *s, unsigned k)
{
    /* FNV-1a over the quantised values, oldest first, then a final mix. */
    uint64_t h = 1469598103934665603ULL;
    for (unsigned i = 0; i < k; i++) {
        uint64_t v =
            (uint64_t)s->win[(s->win_head + TAMPER_WINDOW_MAX - k + i) % TAMPER_WINDOW_MAX];
        for (int b = 0; b < 8; b++) {
            h ^= (v >> (8 * b)) & 0xff;
            h *= 1099511628211ULL;
        }
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (h & 0xffffffffffffULL) | 1u; /* 0 never occurs: it could match nothing by accident */
}

/* Distinct values among the last k of the window. */
static unsigned window_distinct(const struct tamper_series *s, unsigned k)
{
    unsigned distinct = 0;
    for (unsigned i = 0; i < k; i++) {
        int64_t v = s->win[(s->win_head + TAMPER_WINDOW_MAX - 1 - i) % TAMPER_WINDOW_MAX];
        bool seen = false;
        for (unsigned j = 0; j < i && !seen; j++)
            seen = s->win[(s->win_head + TAMPER_WINDOW_MAX - 1 - j) % TAMPER_WINDOW_MAX] == v;
        distinct += !seen;
    }
    return distinct;
}

/* A finding of one series on this reading, collected before the evidence is added. */
struct finding {
    enum tamper_check check;
    double weight;
    char detail[TAMPER_DETAIL_LEN];
};

#define MAX_FINDINGS 4

struct findings {
    struct finding f[MAX_FINDINGS];
    unsigned n;
};

static void add_finding(struct findings *fs, enum tamper_check check, double weight,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void add_finding(struct findings *fs, enum tamper_check check, double weight,
                        const char *fmt, ...)
{
    if (fs->n == MAX_FINDINGS || weight <= 0)
        return;
    struct finding *f = &fs->f[fs->n++];
    f->check = check;
    f->weight = weight;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
}

/* The chance, per reading, that an honest sensor repeats the value of a run it is in: an
 * honest run of n repeats has a chance of about rate^n.
 *
 * Repeats are not independent: a run is most likely on the sensor's most likely value (the
 * step its level sits in), so a run goes on with the chance of that value, P_mode, not with
 * the average repeat rate p (the chance that two readings are equal, the sum of the squared
 * chances of the values). For noise that is roughly Gaussian, P_mode <= sqrt(2) p at every
 * noise-to-step ratio (equal when the noise spans several steps; a DHT22 at 0.1 °C noise
 * repeats 27 % of the time, stays on its level's value 38 %): the rate is sqrt(2) p.
 *
 * p is the rate learned BEFORE the run began: a run teaches the statistics nothing while it
 * lasts (a frozen sensor would teach them that it repeats itself, and its run would never
 * look unlikely), only once it ends. It is the long-run rate (about the last 1,000
 * comparisons; a running mean before that, with one repeat and one change as a prior),
 * raised by two of its standard errors, so that a rate that came out low by chance does not
 * make the honest runs of a sensor look unlikely. tamper.frozen_probability then bounds the
 * false findings per run (a series at 5 s starts at most 720 runs an hour).
 *
 * A sensor whose usual step is below its resolution (a DHT11 whose level sits in the middle
 * of a degree) repeats itself more or less depending on where its level sits between two
 * steps, which moves with the day: the highest short-run rate seen lately counts there, and
 * at least 0.9.
 *
 * A switching signal (light, vibration, sound level, a metric canary does not know) changes
 * its noise with its regime: a machine switched off reads 0.05-0.07 mm/s and repeats 0.06
 * half the time, where it repeated 7 % while it ran; a lamp-lit room at night reads the
 * lamp. The rate before a run says little about the regime the run is in: there a run is
 * judged like one of a coarse sensor (the highest short-run rate lately, at least 0.9: about
 * 110 readings), so a frozen switching signal is found, but late. */
static double frozen_rate(const struct tamper_series *s)
{
    if (s->cls == CLS_REGIME) {
        double rate = s->p_same_max > s->p_same ? s->p_same_max : s->p_same;
        return rate < 0.9 ? 0.9 : (rate > 0.99 ? 0.99 : rate);
    }
    double n = s->n > 1 ? (double)(s->n - 1) : 1; /* comparisons learned */
    double n_eff = n < 1 / LONG_ALPHA ? n : (2 - LONG_ALPHA) / LONG_ALPHA;
    double p = (s->p_same_long * n_eff + 1) / (n_eff + 2);
    double rate = M_SQRT2 * (p + 2 * sqrt(p * (1 - p) / n_eff));
    double grid = series_grid(s);
    if (grid > 0 && s->step < grid) {
        if (rate < s->p_same_max)
            rate = s->p_same_max;
        if (rate < 0.9)
            rate = 0.9;
    }
    return rate < 0.01 ? 0.01 : (rate > 0.99 ? 0.99 : rate);
}

/* Runs the value checks of one series on x; learns x when nothing was found. Device context:
 * fire is true while flame is seen (the air heats and dries: its temperature and humidity
 * moving is physics then, not a drift). */
static void series_check(const struct config_tamper *p, struct tamper_series *s, const char *metric,
                         double x, bool fire, struct findings *fs)
{
    if (s->cls == CLS_BINARY)
        return;
    bool warm = s->n >= p->warmup_readings;
    double q = series_quantum(s, metric, x);
    double d = s->n > 0 ? x - s->last : 0;
    double step = s->step > q ? s->step : q;
    /* Gas sensors' noise grows with the reading (a few % of it): while raised above its base,
     * the usual step grows in proportion, so the noise of a leak is not a jump. */
    if (s->cls == CLS_DANGER_UP && s->n > 0 && s->base > 0 && s->last > s->base)
        step *= s->last / s->base;
    /* E|d| = 1.128 sigma; floored at half the quantum (a DHT11's 1 °C steps flip around a
     * level between two degrees) */
    double sigma = s->step / 1.128 > q / 2 ? s->step / 1.128 : q / 2;
    double rel = 0.002 * fabs(s->level);
    if (sigma < rel)
        sigma = rel;
    /* ... and at least what the distance from the level has usually been (E|x| = 0.8 sigma),
     * less its rounding (a quarter of the resolution on average, which the floor above
     * already allows for): a sensor that wanders on its own (a DHT22's humidity drifts by a
     * few % within half an hour, several times its noise from one reading to the next) is
     * judged by its own wandering, not by its steps alone. */
    double wander_sigma = (s->spread - q / 4) / 0.8;
    if (s->n >= p->warmup_readings && sigma < wander_sigma)
        sigma = wander_sigma;
    bool same = s->n > 0 && x == s->last;
    uint32_t run = same ? s->same_run + 1 : 1;
    /* the repeats of a run this value ends that were not learned yet (a warm series defers
     * them) */
    uint32_t ended_repeats = !same && s->n > 0 ? s->deferred : 0;
    const struct metric_info *m = metric_info_or_generic(metric);
    const char *unit = m->unit;

    /* resolution */
    double grid = series_grid(s);
    if (warm && grid > 0 && !on_grid(x, grid))
        add_finding(fs, TAMPER_RESOLUTION, p->weight_resolution,
                    "%g%s%s is not a multiple of %g, the step this sensor has reported for %u "
                    "values",
                    x, unit[0] ? " " : "", unit, grid, s->n);

    /* frozen */
    bool floor_state = s->cls == CLS_REGIME && x <= metric_info_or_generic(metric)->min;
    /* A switching signal holds a value exactly when its varying part is gone: a lamp-lit room
     * after dusk reads the lamp (daylight faded to nothing: the run sits at the bottom of
     * where the signal had just been), a lamp switched on in the dark reads the lamp (the run
     * began with a jump). Such a run is a state, like dark or off; a frozen switching signal
     * is found when its run begins anywhere else (in the middle of its noise). */
    bool entered_state = false;
    if (s->cls == CLS_REGIME && !same && s->n > 0) {
        int64_t xq = (int64_t)llround(x / q);
        bool at_bottom = s->win_fill > 0;
        for (unsigned i = 0; i < s->win_fill && at_bottom; i++)
            at_bottom = xq <= s->win[i];
        double sw_step = s->step > q ? s->step : q;
        entered_state = at_bottom || fabs(d) > p->slew_factor * sw_step;
    }
    bool regime_state = floor_state || (same ? s->run_state : entered_state);
    double p_rate = frozen_rate(s);
    /* Dark, silent, switched off: the bottom of a switching signal's range is a state. */
    bool frozen =
        warm && same && !regime_state && pow(p_rate, (double)(run - 1)) < p->frozen_probability;
    if (frozen)
        add_finding(fs, TAMPER_FROZEN, p->weight_frozen,
                    "exactly %g for %u readings in a row, where this sensor repeated a value "
                    "%.0f%% of the time before (judged at %.0f%%)",
                    x, run, 100 * s->p_same_long, 100 * p_rate);

    /* slew: jumps and spikes */
    bool smooth = s->cls == CLS_SMOOTH || s->cls == CLS_DANGER_UP;
    int8_t dir = 0;
    if (smooth && s->n > 0 && fabs(d) > p->slew_factor * step)
        dir = d > 0 ? 1 : -1;
    /* A fire heats the air and its relative humidity falls (by about a factor e every 40 °C):
     * while it burns, the air's temperature and humidity moving, however fast, is physics, and
     * builds no drift that would be called one the moment the flame is gone. (Once it is out,
     * the cooling and the humidity's return are judged against the spread the fire taught.) */
    bool fire_air =
        fire && (strcmp(metric, "temperature_c") == 0 || strcmp(metric, "humidity_pct") == 0);
    if (warm && dir != 0 && !fire_air) {
        bool spike = s->jump_dir == -dir && s->jump_age <= JUMP_MEMORY;
        bool counts = s->cls == CLS_SMOOTH || dir < 0;
        if (counts || spike)
            add_finding(fs, TAMPER_SLEW, spike ? 2 * p->weight_slew : p->weight_slew,
                        "%s from %g to %g in one reading, %.0f times its usual step",
                        spike ? "a spike: back" : (dir > 0 ? "jumped up" : "jumped down"), s->last,
                        x, fabs(d) / step);
    }
    /* Gas or heat that jumps up and then stays where it landed is an offset, not a leak or a
     * fire: those keep rising for several readings. */
    bool raised = s->n > 0 && (x - s->base) / sigma > DRIFT_K;
    bool offset_on = s->offset_on && raised;
    if (warm && dir == 0 && s->cls == CLS_DANGER_UP && s->jump_dir > 0 && s->jump_age <= 1 &&
        s->jump_from_base && !s->offset_on && raised && fabs(d) <= 3 * step) {
        add_finding(fs, TAMPER_SLEW, p->weight_slew,
                    "jumped up to %g in one reading and stayed there: an offset, not a rise",
                    s->last);
        offset_on = true;
    } else if (warm && offset_on) {
        add_finding(fs, TAMPER_DRIFT, p->weight_drift,
                    "still %g above its usual %g since it jumped there", x - s->base, s->base);
    }

    /* noise_change: CUSUM of steps against the usual step */
    double z = s->n > 0 ? (x - s->level) / sigma : 0;
    /* A sensor whose usual step is well below its resolution (a DHT11 flipping between two
     * degrees now and then: a usual step of 0.2-0.5 °C) steps by one resolution at a time and
     * by two almost never, so noise of a few of its steps would hide under a floor of one
     * resolution: its steps are measured against 1.3 usual steps, at least half a
     * resolution (a flip then stays under the allowance, two degrees at once do not). */
    double noise_step = s->step < q ? fmin(step, fmax(1.3 * s->step, q / 2)) : step;
    double u = s->n > 0 ? fabs(d) / noise_step : 1;
    /* Rising gas or heat moves in big steps (a leak, a fire): not a change of noise. */
    if (s->cls == CLS_DANGER_UP && s->n > 0 && (x - s->base) / sigma > DRIFT_K &&
        (s->last - s->base) / sigma > DRIFT_K)
        u = 1; /* raised twice in a row */
    if (u > NOISE_CLIP)
        u = NOISE_CLIP;
    double noise_cusum = s->noise_cusum + u - NOISE_K;
    if (noise_cusum < 0)
        noise_cusum = 0;
    if (warm && smooth && noise_cusum > p->noise_cusum)
        add_finding(fs, TAMPER_NOISE_CHANGE, p->weight_noise,
                    "its steps have grown beyond the usual %.3g per reading (CUSUM %.1f)", step,
                    noise_cusum);

    /* drift: one-sided CUSUMs of the distance from the slow level */
    if (z > DRIFT_CLIP)
        z = DRIFT_CLIP;
    if (z < -DRIFT_CLIP)
        z = -DRIFT_CLIP;
    double up = s->drift_up + z - DRIFT_K;
    /* Gas falls back to its base after a leak: its downward drift is measured from the base
     * (the level learned while it was not raised), so only a fall below normal counts. */
    bool gas = s->cls == CLS_DANGER_UP && strcmp(metric, "temperature_c") != 0;
    double zd = gas && s->n > 0 ? (x - s->base) / sigma : z;
    if (zd < -DRIFT_CLIP)
        zd = -DRIFT_CLIP;
    double down = s->drift_down - zd - DRIFT_K;
    up = up > 0 && !fire_air ? up : 0; /* (the fire's air accumulates no drift) */
    down = down > 0 && !fire_air ? down : 0;
    /* Rising gas is never a drift (a leak is a ramp). */
    bool up_counts = s->cls == CLS_SMOOTH || !gas;
    if (warm && smooth && ((up > p->drift_cusum && up_counts) || down > p->drift_cusum))
        add_finding(fs, TAMPER_DRIFT, p->weight_drift,
                    "moving %s away from its level %g, %.0f sigma now, faster than it ever "
                    "drifted",
                    up > p->drift_cusum && up_counts ? "up" : "down", s->level, fabs(z));

    /* replayed_window: fingerprint of the last k quantised values */
    unsigned k = p->replay_window;
    s->win[s->win_head] = (int64_t)llround(x / q);
    s->win_head = (uint8_t)((s->win_head + 1) % TAMPER_WINDOW_MAX);
    if (s->win_fill < TAMPER_WINDOW_MAX)
        s->win_fill++;
    double per_value = log2(GAUSS_ENTROPY_K * (s->step / 1.128) / q);
    if (per_value > 8)
        per_value = 8;
    /* ... and the window itself must vary: at least half its values distinct (a signal
     * toggling between two values carries far less than its steps suggest). */
    bool informative = s->win_fill >= k && per_value * k >= p->replay_min_bits && s->n > 0 &&
                       window_distinct(s, k) * 2 >= k;
    uint64_t h = informative ? window_hash(s, k) : 0;
    uint32_t h_lo = (uint32_t)h;
    uint16_t h_hi = (uint16_t)(h >> 32);
    if (warm && informative) {
        for (uint32_t i = 0; i < s->hash_n; i++) {
            if (s->hashes[i] == h_lo && s->hashes_hi[i] == h_hi) {
                add_finding(fs, TAMPER_REPLAYED_WINDOW, p->weight_replay,
                            "the last %u values (%.0f bits of sensor noise) repeat a window "
                            "this sensor sent before",
                            k, per_value * k);
                break;
            }
        }
    }

    bool found = fs->n > 0;
    /* A change of noise or a drift alone does not stop the usual step from learning: an
     * honest change then ends its own alarm, while an attack is long quarantined by the
     * time the step has caught up (alpha 0.02). */
    bool hard = false;
    for (unsigned i = 0; i < fs->n; i++)
        hard |= fs->f[i].check != TAMPER_NOISE_CHANGE && fs->f[i].check != TAMPER_DRIFT;
    /* The state moves on whatever was found (the run, the previous value, the window)... */
    s->same_run = run;
    s->offset_on = offset_on;
    /* While learning, the CUSUMs do not accumulate: a settling sensor is not a drift. */
    s->noise_cusum = warm ? noise_cusum : 0;
    s->drift_up = warm ? up : 0;
    s->drift_down = warm ? down : 0;
    if (dir != 0) {
        s->jump_dir = dir;
        s->jump_age = 0;
        s->jump_from_base = (s->last - s->base) / sigma <= DRIFT_K;
    } else if (s->jump_age < 255) {
        s->jump_age++;
    }
    if (informative && ++s->since_store >= p->replay_stride && !found) {
        s->since_store = 0;
        s->hashes[s->hash_head] = h_lo;
        s->hashes_hi[s->hash_head] = h_hi;
        s->hash_head = (s->hash_head + 1) % TAMPER_REPLAY_HISTORY;
        if (s->hash_n < TAMPER_REPLAY_HISTORY)
            s->hash_n++;
    }
    /* a running mean of the first 1/alpha steps (n values learned = n steps with this
     * one), then the EWMA */
    double a = s->n < 1 / SLOW_ALPHA ? 1.0 / (s->n > 0 ? s->n : 1) : SLOW_ALPHA;
    double a_long = s->n < 1 / LONG_ALPHA ? 1.0 / (s->n > 0 ? s->n : 1) : LONG_ALPHA;
    /* Once warm, a run of identical values teaches the usual step and the repeat rate
     * nothing while it lasts (frozen_rate): its repeats are learned when it ends, the
     * step's zeros only if the run was not doubted. */
    bool defer = warm && same;
    if (frozen)
        s->run_doubted = true;
    if (s->n > 0 && !same && ended_repeats > 0) {
        double keep = pow(1 - a, (double)ended_repeats);
        s->p_same = 1 - (1 - s->p_same) * keep;
        s->p_same_long = 1 - (1 - s->p_same_long) * pow(1 - a_long, (double)ended_repeats);
        if (!s->run_doubted)
            s->step *= keep;
    }
    if (defer && s->deferred < UINT32_MAX)
        s->deferred++;
    if (!same) {
        s->run_doubted = false;
        s->deferred = 0;
        s->run_state = entered_state;
    }
    /* The usual step does not learn while the noise CUSUM builds up (an attack would teach
     * it its own noise); clipped, a burst moves it by a bounded amount. */
    if (!defer && !hard && s->n > 0 && noise_cusum < p->noise_cusum)
        s->step += (fmin(fabs(d), 3 * step) - s->step) * a;
    /* The repeat rate learns from values only the frozen check doubts: a sensor that really
     * is steadier than it was stops being doubted once its run ends. */
    bool frozen_only = fs->n == 1 && fs->f[0].check == TAMPER_FROZEN;
    if (!defer && (!found || frozen_only) && s->n > 0) {
        s->p_same += ((same ? 1.0 : 0.0) - s->p_same) * a;
        s->p_same_long += ((same ? 1.0 : 0.0) - s->p_same_long) * a_long;
        s->p_same_max = s->p_same > s->p_same_max * 0.998 ? s->p_same : s->p_same_max * 0.998;
    }
    /* ... but only a value nothing doubted teaches the other statistics. */
    if (!found) {
        double la = s->n == 0 ? 1 : LEVEL_ALPHA;
        if (s->n > 0)
            s->spread += (fabs(x - s->level) - s->spread) *
                         (s->n < 1 / SPREAD_ALPHA ? 1.0 / (double)s->n : SPREAD_ALPHA);
        s->level += (x - s->level) * la;
        /* The base comes down quickly (a sensor settling after its warm-up) and goes up
         * slowly, and not at all while the value is raised. */
        if (s->n == 0 || x < s->base)
            s->base += (x - s->base) * (s->n == 0 ? 1 : 4 * LEVEL_ALPHA);
        else if ((x - s->base) / sigma <= DRIFT_K)
            s->base += (x - s->base) * la;
        for (size_t i = 0; i < N_GRIDS; i++) {
            if ((s->grid_ok & (1u << i)) && !on_grid(x, grids[i]))
                s->grid_ok &= (uint8_t) ~(1u << i);
        }
        if (s->n == 0) {
            s->first = x;
            s->distinct = 1;
        } else if (s->distinct == 1 && x != s->first) {
            s->second = x;
            s->distinct = 2;
        } else if (s->distinct == 2 && x != s->first && x != s->second) {
            s->distinct = 3;
        }
        if (s->n < UINT32_MAX)
            s->n++;
    } else {
        /* A doubted value is not learned, but the level follows slowly, so an honest change
         * of regime is not doubted forever. */
        s->level += (x - s->level) * LEVEL_ALPHA * 0.1;
    }
    s->last = x;
}

/* ---------------------------------------------------------------- trust */

static void add_reason(struct tamper_device *d, enum tamper_check check, const char *metric,
                       const char *detail, int64_t ts_ms)
{
    /* The same check on the same metric updates its entry and moves it to the front. */
    uint32_t at = d->n_reasons < TAMPER_REASONS ? d->n_reasons : TAMPER_REASONS - 1;
    for (uint32_t i = 0; i < d->n_reasons; i++) {
        if (d->reasons[i].check == check && strcmp(d->reasons[i].metric, metric) == 0) {
            at = i;
            break;
        }
    }
    if (at == d->n_reasons)
        d->n_reasons++;
    memmove(&d->reasons[1], &d->reasons[0], at * sizeof d->reasons[0]);
    struct tamper_reason *r = &d->reasons[0];
    r->check = check;
    snprintf(r->metric, sizeof r->metric, "%s", metric);
    snprintf(r->detail, sizeof r->detail, "%s", detail);
    r->ts_ms = ts_ms;
}

/* Moves the state after the doubt changed. */
static void settle(const struct config_tamper *p, struct tamper_device *d, int64_t ts_ms)
{
    double score = tamper_score(d);
    enum trust_state next = d->state;
    if (d->state != TRUST_QUARANTINED) {
        if (score < p->quarantine_below)
            next = TRUST_QUARANTINED;
        else if (score < p->suspect_below)
            next = TRUST_SUSPECT;
        else if (d->state == TRUST_SUSPECT && score >= p->trusted_above)
            next = TRUST_TRUSTED;
    }
    if (next != d->state) {
        d->state = next;
        d->since_ms = ts_ms;
    }
}

static void fade(const struct config_tamper *p, struct tamper_device *d)
{
    d->doubt *= exp(-1.0 / (double)p->recovery_readings);
    if (d->doubt < 1e-9)
        d->doubt = 0;
}

/* ---------------------------------------------------------------- device checks */

static void timing_check(const struct config_tamper *p, struct tamper_device *d,
                         const struct reading *r, struct findings *fs)
{
    bool warm = d->n >= p->warmup_readings;
    double offset = (double)(r->recv_ms - r->ts_ms);
    if (r->has_ts) {
        /* The offset may drift steadily (a device clock running fast or slow, a simulator's
         * accelerated clock): a jump is a change beyond the usual drift per reading. */
        double expected = d->clock_offset_ms + d->clock_drift_ms;
        if (d->n == 0) {
            d->clock_offset_ms = offset;
        } else if (warm && fabs(offset - expected) > 1000.0 * p->clock_jump_s) {
            add_finding(fs, TAMPER_TIMING, p->weight_timing,
                        "the device clock jumped by %.0f s against canaryd's",
                        (expected - offset) / 1000);
            d->clock_offset_ms = offset; /* one jump is one finding */
        } else {
            double a = d->n < 20 ? 1.0 / d->n : 0.05;
            d->clock_drift_ms += (offset - d->clock_offset_ms - d->clock_drift_ms) * a;
            d->clock_offset_ms = offset;
        }
    }
    if (r->has_seq) {
        if (warm && d->last_seq > 0 && r->seq > d->last_seq + 1 + (uint64_t)p->seq_gap_max)
            add_finding(fs, TAMPER_TIMING, p->weight_timing,
                        "seq jumped from %llu to %llu: %llu messages missing",
                        (unsigned long long)d->last_seq, (unsigned long long)r->seq,
                        (unsigned long long)(r->seq - d->last_seq - 1));
        if (r->seq > d->last_seq)
            d->last_seq = r->seq;
    }
    if (d->n > 0 && r->ts_ms > d->last_ts_ms) {
        double iv = (double)(r->ts_ms - d->last_ts_ms);
        bool fast = d->n >= 3 && iv * p->rate_factor < d->interval_ms;
        d->fast_run = fast ? d->fast_run + 1 : 0;
        if (warm && d->fast_run == FAST_READINGS)
            add_finding(fs, TAMPER_TIMING, p->weight_timing,
                        "%u readings %.0f ms apart where %.0f ms is usual", FAST_READINGS, iv,
                        d->interval_ms);
        if (!fast) {
            double a = d->n < 20 ? 1.0 / d->n : 0.05;
            d->interval_ms += (iv - d->interval_ms) * a;
        }
    }
    if (r->ts_ms > d->last_ts_ms)
        d->last_ts_ms = r->ts_ms;
    if (d->n < UINT32_MAX)
        d->n++;
}

/* Flame seen for FLAME_READINGS readings and FLAME_MIN_MS while the temperature has not risen:
 * fire without heat. A fire heating its room by 10-20 °C a minute (UL 521's rate-of-rise
 * detectors alarm at 8.3) takes a few seconds for a degree, so a device sending every second
 * is judged over as long as one sending every 5 s, not over 3 s. flame is the reading's flame
 * value (NAN: none), temp its temperature (NAN: none), ts_ms the reading's time. */
static void cross_sensor_check(const struct config_tamper *p, struct tamper_device *d, double flame,
                               double temp, double temp_level, int64_t ts_ms, struct findings *fs)
{
    if (!isnan(temp)) {
        d->temp_c = temp;
        d->temp_level_c = temp_level;
    }
    if (isnan(flame))
        return;
    if (flame < FLAME_ON) {
        d->flame_run = 0;
        return;
    }
    if (d->flame_run == 0) {
        d->flame_start_temp_c = d->temp_level_c;
        d->flame_start_ms = ts_ms;
    }
    d->flame_run++;
    int64_t flame_ms = ts_ms - d->flame_start_ms;
    if (d->flame_run >= FLAME_READINGS && flame_ms >= FLAME_MIN_MS && !isnan(d->temp_c) &&
        !isnan(d->flame_start_temp_c) && d->temp_c - d->flame_start_temp_c < p->cross_heat_c &&
        d->temp_c < HOT_C)
        add_finding(fs, TAMPER_CROSS_SENSOR, p->weight_cross_sensor,
                    "flame for %u readings (%.0f s) while the temperature stays at %.1f °C (%.1f "
                    "before): fire without heat",
                    d->flame_run, (double)flame_ms / 1000, d->temp_c, d->flame_start_temp_c);
}

static void apply(const struct config_tamper *p, struct tamper_device *d, const char *metric,
                  const struct findings *fs, int64_t ts_ms)
{
    for (unsigned i = 0; i < fs->n; i++) {
        d->doubt += fs->f[i].weight;
        add_reason(d, fs->f[i].check, metric, fs->f[i].detail, ts_ms);
    }
}

void tamper_reading(const struct config_tamper *p, struct tamper_device *d,
                    struct tamper_series *const *series, struct reading *r,
                    struct tamper_outcome *out)
{
    out->before = out->after = d->state;
    out->findings = 0;
    if (!p->enabled)
        return;
    fade(p, d);
    struct findings fs = {.n = 0};
    timing_check(p, d, r, &fs);
    apply(p, d, "", &fs, r->ts_ms);
    out->findings += fs.n;

    double flame = NAN, temp = NAN, temp_level = NAN;
    for (uint32_t k = 0; k < r->n_values; k++) {
        const char *name = r->values[k].name;
        if (name[0] == 'f' && strcmp(name, "flame") == 0)
            flame = r->values[k].value;
        else if (name[0] == 't' && strcmp(name, "temperature_c") == 0 && series[k] != NULL) {
            temp = r->values[k].value;
            temp_level = series[k]->n > 0 ? series[k]->level : temp;
        }
    }
    bool fire = (!isnan(flame) && flame >= FLAME_ON) || d->flame_run > 0;
    for (uint32_t k = 0; k < r->n_values; k++) {
        struct metric_value *v = &r->values[k];
        if (series[k] == NULL)
            continue;
        fs.n = 0;
        series_check(p, series[k], v->name, v->value, fire, &fs);
        if (v->name[0] == 'f' && strcmp(v->name, "flame") == 0)
            cross_sensor_check(p, d, flame, temp, temp_level, r->ts_ms, &fs);
        if (fs.n > 0) {
            v->flags |= FLAG_TAMPER;
            apply(p, d, v->name, &fs, r->ts_ms);
            out->findings++;
        }
    }
    if (isnan(flame) && !isnan(temp))
        cross_sensor_check(p, d, NAN, temp, temp_level, r->ts_ms, &fs);
    settle(p, d, r->ts_ms);
    if (d->state == TRUST_QUARANTINED) {
        for (uint32_t k = 0; k < r->n_values; k++)
            r->values[k].flags |= FLAG_QUARANTINED;
    }
    out->after = d->state;
}

void tamper_add_evidence(const struct config_tamper *p, struct tamper_device *d,
                         enum tamper_check check, const char *metric, double weight,
                         const char *detail, int64_t ts_ms, struct tamper_outcome *out)
{
    out->before = d->state;
    out->findings = 0;
    if (p->enabled && weight > 0) {
        d->doubt += weight;
        add_reason(d, check, metric, detail, ts_ms);
        out->findings = 1;
        settle(p, d, ts_ms);
    }
    out->after = d->state;
}

enum trust_state tamper_release(struct tamper_device *d, int64_t now_ms)
{
    enum trust_state was = d->state;
    d->state = TRUST_TRUSTED;
    d->doubt = 0;
    d->since_ms = now_ms;
    d->n_reasons = 0;
    return was;
}

void tamper_restore(struct tamper_device *d, enum trust_state state, double score, int64_t since_ms)
{
    d->state = state;
    d->doubt = score > 0 && score <= 1 ? -log(score) : 0;
    d->since_ms = since_ms;
}

/* Appends s JSON-escaped. Returns false when it does not fit. */
static bool put_json_string(char *buf, size_t len, size_t *at, const char *s)
{
    if (*at + 1 >= len)
        return false;
    buf[(*at)++] = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        size_t n;
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            n = 2;
        } else if (*c < 0x20) {
            n = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *c);
        } else {
            esc[0] = (char)*c;
            n = 1;
        }
        if (*at + n + 1 >= len)
            return false;
        memcpy(buf + *at, esc, n);
        *at += n;
    }
    if (*at + 1 >= len)
        return false;
    buf[(*at)++] = '"';
    buf[*at] = '\0';
    return true;
}

static bool put_raw(char *buf, size_t len, size_t *at, const char *s)
{
    size_t n = strlen(s);
    if (*at + n + 1 > len)
        return false;
    memcpy(buf + *at, s, n + 1);
    *at += n;
    return true;
}

size_t tamper_reasons_json(const struct tamper_device *d, char *buf, size_t len)
{
    size_t at = 0;
    bool ok = put_raw(buf, len, &at, "[");
    for (uint32_t i = 0; ok && i < d->n_reasons; i++) {
        const struct tamper_reason *r = &d->reasons[i];
        char ts[48];
        snprintf(ts, sizeof ts, ",\"ts_ms\":%lld}", (long long)r->ts_ms);
        ok = put_raw(buf, len, &at, i ? ",{\"check\":" : "{\"check\":") &&
             put_json_string(buf, len, &at, tamper_check_name(r->check)) &&
             put_raw(buf, len, &at, ",\"metric\":") && put_json_string(buf, len, &at, r->metric) &&
             put_raw(buf, len, &at, ",\"detail\":") && put_json_string(buf, len, &at, r->detail) &&
             put_raw(buf, len, &at, ts);
    }
    ok = ok && put_raw(buf, len, &at, "]");
    if (!ok) {
        if (len >= 3)
            snprintf(buf, len, "[]");
        return 0;
    }
    return at;
}

void tamper_explain(const struct tamper_device *d, char *buf, size_t len)
{
    size_t at = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (uint32_t i = 0; i < d->n_reasons && at + 1 < len; i++) {
        const struct tamper_reason *r = &d->reasons[i];
        int w =
            snprintf(buf + at, len - at, "%s%s%s%s: %s", i ? "; " : "", tamper_check_name(r->check),
                     r->metric[0] ? " on " : "", r->metric, r->detail);
        if (w < 0)
            break;
        at += (size_t)w;
    }
    if (at >= len)
        buf[len - 1] = '\0';
}

/* ---------------------------------------------------------------- neighbours */

bool tamper_neighbours_compare(const char *metric)
{
    uint8_t c = metric_class(metric);
    return c == CLS_SMOOTH || c == CLS_DANGER_UP;
}

bool tamper_room_observe(const struct config_tamper *p, struct tamper_room *room,
                         const char *device, double value, int64_t ts_ms, char *detail,
                         size_t detail_len)
{
    const int64_t max_age_ms = 15 * 60 * 1000;
    /* A room member's level and step settle faster than a series' statistics. */
    uint32_t warm = p->warmup_readings / 2 > 10 ? p->warmup_readings / 2 : 10;
    struct tamper_neighbour *me = NULL;
    for (uint32_t i = 0; i < room->n_members && me == NULL; i++) {
        if (strcmp(room->members[i].device, device) == 0)
            me = &room->members[i];
    }
    if (me == NULL) {
        if (room->n_members == TAMPER_NEIGHBOURS_MAX)
            return false; /* a crowded room: the first TAMPER_NEIGHBOURS_MAX are compared */
        me = &room->members[room->n_members++];
        memset(me, 0, sizeof *me);
        snprintf(me->device, sizeof me->device, "%s", device);
    }
    bool doubted = false;
    double floor = me->quantum > 1e-9 ? me->quantum : 1e-9; /* a DHT11 steps by 1 °C */
    double step = me->step > floor ? me->step : floor;
    double moved = fabs(value - me->level) / step;
    /* Where its recent readings are heading (a fast level), against how far that usually
     * wanders from the slow level (the member's own noise and drift, learned): a ramp moves
     * it many times its usual wander within a few readings, the room's other members do
     * not follow. */
    double fast = me->n > 0 ? me->fast + (value - me->fast) * FAST_ALPHA : value;
    double wfloor = 0.1 * floor;
    double wander = me->wander > wfloor ? me->wander : wfloor;
    double moved_fast = fabs(fast - me->level) / wander;
    bool by_value = moved > p->neighbour_factor;
    bool by_fast = me->n >= 3 * warm && moved_fast > FAST_K;
    /* A leak raises gas in the whole room: a member still raised above its base is in it. */
    bool gas_like =
        metric_class(room->metric) == CLS_DANGER_UP && strcmp(room->metric, "temperature_c") != 0;
    /* Since when its value has been moving: beyond a third of neighbour_factor usual steps from
     * its level (alone or not: one neighbour's noisy reading does not restart the grace). A
     * leak's onset gets there and past neighbour_factor in one reading; a slow ramp got there
     * long before it moved that far, so the grace has run out by then. */
    if (moved <= p->neighbour_factor / 3)
        me->moving_since_ms = 0;
    else if (me->moving_since_ms == 0)
        me->moving_since_ms = ts_ms > 0 ? ts_ms : 1;
    if (me->n >= warm && (by_value || by_fast)) {
        uint32_t others = 0, flat_value = 0, flat_fast = 0;
        for (uint32_t i = 0; i < room->n_members; i++) {
            const struct tamper_neighbour *o = &room->members[i];
            if (o == me || o->n < warm || ts_ms - o->ts_ms > max_age_ms)
                continue;
            others++;
            double ofloor = o->quantum > 1e-9 ? o->quantum : 1e-9;
            double ostep = o->step > ofloor ? o->step : ofloor;
            double ow = o->wander > 0.1 * ofloor ? o->wander : 0.1 * ofloor;
            bool raised = gas_like && (o->last - o->base) / ostep >= p->neighbour_factor;
            /* flat as the mover moved: its value, or where its readings are heading */
            flat_value += !raised && fabs(o->last - o->level) / ostep < p->neighbour_factor / 3;
            flat_fast += !raised && fabs(o->fast - o->level) / ow < FAST_K / 3;
        }
        /* Gas that rose is doubted once it has been rising for NEIGHBOUR_GRACE_MS: a real leak
         * reaches the room's other sensors within seconds (and its first readings move the fast
         * level too, so the value's test decides). A slow ramp whose value has not moved that
         * far, found by where its readings are heading, has taken its time already. */
        bool leak_like = gas_like && value > me->level;
        bool value_alone = by_value && others > 0 && flat_value == others &&
                           (!leak_like || ts_ms - me->moving_since_ms >= NEIGHBOUR_GRACE_MS);
        bool fast_alone = !by_value && by_fast && others > 0 && flat_fast == others;
        if (value_alone) {
            doubted = true;
            snprintf(detail, detail_len,
                     "moved %.0f usual steps from its level %g while %u neighbour%s at the same "
                     "location stayed flat",
                     moved, me->level, others, others == 1 ? "" : "s");
        } else if (fast_alone) {
            doubted = true;
            snprintf(detail, detail_len,
                     "its recent readings (%g) moved %.0f times their usual wander from its "
                     "level %g while %u neighbour%s at the same location stayed flat",
                     fast, moved_fast, me->level, others, others == 1 ? "" : "s");
        }
    }
    /* The base: a level slower than the slow one (hundreds of readings), so a leak or a fire,
     * minutes long, leaves it behind, and a room that has really changed (a heater) is
     * followed. */
    if (me->n == 0)
        me->base = value;
    else if (!doubted)
        me->base += (value - me->base) * (me->n < 20 ? 1.0 / (me->n + 1) : BASE_ALPHA);
    double a = me->n < 20 ? 1.0 / (me->n + 1) : 0.02;
    if (me->n > 0 && !doubted)
        me->step += (fabs(value - me->last) - me->step) * a;
    double change = fabs(value - me->last);
    if (me->n > 0 && change > 0 && (me->quantum == 0 || change < me->quantum))
        me->quantum = change;
    if (!doubted || me->n == 0)
        me->level += (value - me->level) * (me->n < 20 ? 1.0 / (me->n + 1) : LEVEL_ALPHA);
    if (!doubted || me->n == 0) {
        me->fast = fast;
        if (me->n > 0)
            me->wander +=
                (fabs(fast - me->level) - me->wander) * (me->n < 100 ? 1.0 / me->n : 0.01);
    }
    me->last = value;
    me->ts_ms = ts_ms;
    if (!doubted && me->n < UINT32_MAX)
        me->n++;
    return doubted;
}
