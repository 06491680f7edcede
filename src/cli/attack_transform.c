/* attack_transform.c — the compromised-device attacks of `canary attack device`: parsing
 * their parameters and corrupting one device's readings in a window (attack_transform.h).
 *
 * Everything here is a pure function of the spec and the readings it is given, in order:
 * the noise comes from the spec's own seed, so a run is reproducible and the unit tests can
 * say exactly which readings change. */
#include "cli/attack_transform.h"

#include "core/error.h"
#include "core/metric.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

static const char *const kind_names[ATTACK_KIND_COUNT] = {
    [ATTACK_SPIKE] = "spike",   [ATTACK_RAMP] = "ramp",           [ATTACK_BIAS] = "bias",
    [ATTACK_SCALE] = "scale",   [ATTACK_FREEZE] = "freeze",       [ATTACK_NOISE] = "noise",
    [ATTACK_REPLAY] = "replay", [ATTACK_FAKE_LEAK] = "fake-leak",
};

int attack_kind_parse(const char *name, enum attack_kind *out)
{
    for (int k = 0; k < ATTACK_KIND_COUNT; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (enum attack_kind)k;
            return 0;
        }
    }
    return CANARY_EINVAL;
}

const char *attack_kind_name(enum attack_kind k)
{
    return (unsigned)k < ATTACK_KIND_COUNT ? kind_names[k] : "?";
}

void attack_spec_defaults(struct attack_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->start_s = 60;
    spec->duration_s = 300;
    spec->magnitude = NAN;
    spec->seed = 1;
}

static const char *const spec_options[] = {
    "--kind",      "--device", "--metric",      "--start",       "--duration",
    "--magnitude", "--every",  "--replay-from", "--attack-seed", "--real-leak"};

bool attack_spec_has_option(const char *name)
{
    for (size_t i = 0; i < sizeof spec_options / sizeof spec_options[0]; i++) {
        if (strcmp(name, spec_options[i]) == 0)
            return true;
    }
    return false;
}

static int parse_number(const char *name, const char *value, double lo, double hi, double *out,
                        char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (*value == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi) {
        canary_errf(err, errlen, "%s must be a number from %g to %g, got '%s'", name, lo, hi,
                    value);
        return CANARY_EINVAL;
    }
    *out = v;
    return 0;
}

/* A bounded copy of an identifier-like value: 1..max printable bytes without spaces. */
static int set_name(const char *name, const char *value, char *dst, size_t max, char *err,
                    size_t errlen)
{
    size_t n = strlen(value);
    bool ok = n > 0 && n <= max;
    for (const char *p = value; ok && *p != '\0'; p++)
        ok = (unsigned char)*p > ' ' && (unsigned char)*p < 0x7f;
    if (!ok) {
        canary_errf(err, errlen,
                    "%s must be 1 to %zu printable characters without spaces, got '%s'", name, max,
                    value);
        return CANARY_EINVAL;
    }
    memcpy(dst, value, n + 1);
    return 0;
}

int attack_spec_set(struct attack_spec *spec, const char *name, const char *value, char *err,
                    size_t errlen)
{
    if (strcmp(name, "--kind") == 0) {
        if (attack_kind_parse(value, &spec->kind) != 0) {
            canary_errf(err, errlen,
                        "--kind must be spike, ramp, bias, scale, freeze, noise, replay or "
                        "fake-leak, got '%s'",
                        value);
            return CANARY_EINVAL;
        }
        spec->kind_set = true;
        return 0;
    }
    if (strcmp(name, "--device") == 0)
        return set_name(name, value, spec->device, ATTACK_DEVICE_MAX, err, errlen);
    if (strcmp(name, "--metric") == 0) {
        int rc = set_name(name, value, spec->metric, ATTACK_METRIC_MAX, err, errlen);
        if (rc == 0 && !metric_name_valid(value, strlen(value), ATTACK_METRIC_MAX)) {
            canary_errf(err, errlen, "--metric '%s' is not a valid metric name", value);
            return CANARY_EINVAL;
        }
        return rc;
    }
    if (strcmp(name, "--start") == 0)
        return parse_number(name, value, 0, ATTACK_MAX_DURATION, &spec->start_s, err, errlen);
    if (strcmp(name, "--duration") == 0)
        return parse_number(name, value, 0, ATTACK_MAX_DURATION, &spec->duration_s, err, errlen);
    if (strcmp(name, "--magnitude") == 0)
        return parse_number(name, value, -1e9, 1e9, &spec->magnitude, err, errlen);
    if (strcmp(name, "--real-leak") == 0) {
        if (parse_number(name, value, 0, 1e6, &spec->real_leak_ppm, err, errlen) != 0)
            return CANARY_EINVAL;
        if (spec->real_leak_ppm <= 0) {
            canary_errf(err, errlen,
                        "--real-leak is the ppm the room's gas rises to, above 0, got "
                        "'%s'",
                        value);
            return CANARY_EINVAL;
        }
        return 0;
    }
    if (strcmp(name, "--replay-from") == 0)
        return parse_number(name, value, 0, ATTACK_MAX_DURATION, &spec->replay_from_s, err, errlen);
    if (strcmp(name, "--every") == 0 || strcmp(name, "--attack-seed") == 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        bool every = strcmp(name, "--every") == 0;
        if (*value < '0' || *value > '9' || *end != '\0' || errno != 0 ||
            (every && (v < 1 || v > 100000))) {
            canary_errf(err, errlen, "%s must be a whole number%s, got '%s'", name,
                        every ? " from 1 to 100000" : "", value);
            return CANARY_EINVAL;
        }
        if (every)
            spec->every = (unsigned)v;
        else
            spec->seed = v;
        return 0;
    }
    canary_errf(err, errlen, "unknown attack option '%s'", name);
    return CANARY_EINVAL;
}

int attack_spec_check(const struct attack_spec *spec, char *err, size_t errlen)
{
    if (!spec->kind_set) {
        canary_errf(err, errlen,
                    "--kind is required (spike, ramp, bias, scale, freeze, noise, "
                    "replay or fake-leak)");
        return CANARY_EINVAL;
    }
    const char *kind = attack_kind_name(spec->kind);
    if (spec->device[0] == '\0') {
        canary_errf(err, errlen, "--device is required: the id of the compromised device");
        return CANARY_EINVAL;
    }
    if (spec->every != 0 && spec->kind != ATTACK_SPIKE) {
        canary_errf(err, errlen, "--every is for --kind spike only, not %s", kind);
        return CANARY_EINVAL;
    }
    if (spec->real_leak_ppm != 0 && spec->kind != ATTACK_REPLAY) {
        canary_errf(err, errlen, "--real-leak is for --kind replay only, not %s", kind);
        return CANARY_EINVAL;
    }
    if (spec->replay_from_s != 0 && spec->kind != ATTACK_REPLAY) {
        canary_errf(err, errlen, "--replay-from is for --kind replay only, not %s", kind);
        return CANARY_EINVAL;
    }
    bool has_magnitude = !isnan(spec->magnitude);
    if (has_magnitude && (spec->kind == ATTACK_FREEZE || spec->kind == ATTACK_REPLAY)) {
        canary_errf(err, errlen, "--magnitude means nothing for --kind %s", kind);
        return CANARY_EINVAL;
    }
    if (has_magnitude && spec->kind == ATTACK_SCALE &&
        (spec->magnitude <= 0 || spec->magnitude == 1)) {
        canary_errf(err, errlen,
                    "--magnitude of --kind scale is a factor above 0 and not 1, got %g",
                    spec->magnitude);
        return CANARY_EINVAL;
    }
    if (has_magnitude && spec->magnitude == 0 && spec->kind != ATTACK_SCALE) {
        canary_errf(err, errlen, "--magnitude 0 would leave --kind %s's readings unchanged", kind);
        return CANARY_EINVAL;
    }
    if (has_magnitude && spec->kind == ATTACK_FAKE_LEAK && spec->magnitude <= 0) {
        canary_errf(err, errlen,
                    "--magnitude of --kind fake-leak is the ppm the fake gas rises "
                    "to, above 0, got %g",
                    spec->magnitude);
        return CANARY_EINVAL;
    }
    if (spec->kind == ATTACK_FAKE_LEAK && spec->metric[0] != '\0' &&
        strcmp(spec->metric, "gas_ppm") != 0) {
        canary_errf(err, errlen, "--kind fake-leak fakes gas_ppm, not --metric %s", spec->metric);
        return CANARY_EINVAL;
    }
    if (spec->kind == ATTACK_RAMP && spec->duration_s <= 0) {
        canary_errf(err, errlen,
                    "--kind ramp needs a --duration above 0 (it reaches "
                    "--magnitude at the end)");
        return CANARY_EINVAL;
    }
    const struct metric_info *mi = spec->metric[0] ? metric_lookup(spec->metric) : NULL;
    if (mi != NULL && mi->binary && spec->kind != ATTACK_FREEZE && spec->kind != ATTACK_REPLAY) {
        canary_errf(err, errlen, "%s is a 0/1 metric: only freeze and replay apply to it",
                    spec->metric);
        return CANARY_EINVAL;
    }
    if (spec->kind == ATTACK_REPLAY) {
        double back = spec->replay_from_s > 0 ? spec->replay_from_s : spec->duration_s;
        if (back <= 0) {
            canary_errf(err, errlen,
                        "--kind replay needs --replay-from S (or a --duration) to "
                        "know which earlier window to replay");
            return CANARY_EINVAL;
        }
        if (back > spec->start_s) {
            canary_errf(err, errlen,
                        "--kind replay replays the window %g s before --start %g: it must not "
                        "begin before the run (use --start %g or more, or a shorter "
                        "--replay-from)",
                        back, spec->start_s, back);
            return CANARY_EINVAL;
        }
    }
    return 0;
}

const char *attack_spec_metric(const struct attack_spec *spec, bool has_gas)
{
    if (spec->metric[0] != '\0')
        return spec->metric;
    if (spec->kind == ATTACK_FAKE_LEAK)
        return "gas_ppm";
    if (spec->kind == ATTACK_REPLAY)
        return "";
    return has_gas ? "gas_ppm" : "temperature_c";
}

/* Default sizes per metric: a spike, a bias, a ramp's total drift, the noise's sigma.
 * Chosen against the simulator's clean signals (sim_fleet.c): a bias of a few noise sigmas,
 * a spike far outside the day's range but inside the sensor's plausible range. */
static const struct {
    const char *metric;
    double spike, bias, ramp, noise;
} default_sizes[] = {
    {"gas_ppm", 3000, 300, 1500, 150},  {"co_ppm", 150, 20, 40, 10},
    {"temperature_c", 25, 5, 10, 3},    {"humidity_pct", 30, 10, 20, 8},
    {"light_lux", 2000, 300, 500, 200}, {"noise_db", 30, 10, 15, 8},
    {"vibration_mm_s", 10, 2, 4, 1},
};

double attack_default_magnitude(enum attack_kind kind, const char *metric)
{
    if (kind == ATTACK_SCALE)
        return 1.5;
    if (kind == ATTACK_FAKE_LEAK)
        return 8000;
    double spike = 100, bias = 10, ramp = 20, noise = 5;
    for (size_t i = 0; i < sizeof default_sizes / sizeof default_sizes[0]; i++) {
        if (strcmp(default_sizes[i].metric, metric) == 0) {
            spike = default_sizes[i].spike;
            bias = default_sizes[i].bias;
            ramp = default_sizes[i].ramp;
            noise = default_sizes[i].noise;
        }
    }
    switch (kind) {
    case ATTACK_SPIKE:
        return spike;
    case ATTACK_RAMP:
        return ramp;
    case ATTACK_BIAS:
        return bias;
    case ATTACK_NOISE:
        return noise;
    default:
        return 0;
    }
}

int attack_state_init(struct attack_state *st, const struct attack_spec *spec, bool has_gas,
                      int64_t clock_start_ms, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    int rc = attack_spec_check(spec, err, errlen);
    if (rc != 0)
        return rc;
    st->spec = *spec;
    if (st->spec.every == 0)
        st->spec.every = ATTACK_SPIKE_EVERY;
    snprintf(st->metric, sizeof st->metric, "%s", attack_spec_metric(spec, has_gas));
    if (spec->kind == ATTACK_FAKE_LEAK && !has_gas) {
        canary_errf(err, errlen,
                    "--kind fake-leak needs a device with a gas sensor (gas_ppm); "
                    "%s has none",
                    spec->device);
        return CANARY_EINVAL;
    }
    st->magnitude =
        isnan(spec->magnitude) ? attack_default_magnitude(spec->kind, st->metric) : spec->magnitude;
    st->start_ms = clock_start_ms + (int64_t)llround(spec->start_s * 1000);
    st->end_ms =
        spec->duration_s > 0 ? st->start_ms + (int64_t)llround(spec->duration_s * 1000) : INT64_MAX;
    st->rng = (spec->seed * 0x9e3779b97f4a7c15ull) ^ 0x5bd1e995ull;
    if (st->rng == 0)
        st->rng = 1;
    if (spec->kind == ATTACK_REPLAY) {
        st->history_cap = ATTACK_HISTORY_MAX;
        st->history = malloc(st->history_cap * sizeof *st->history);
        if (st->history == NULL) {
            canary_errf(err, errlen, "out of memory");
            return CANARY_ENOMEM;
        }
    }
    return 0;
}

void attack_state_free(struct attack_state *st)
{
    free(st->history);
    st->history = NULL;
    st->history_len = st->history_cap = 0;
}

/* ---- the transforms ------------------------------------------------------------------ */

static double rng_uniform(struct attack_state *st)
{
    st->rng ^= st->rng << 13;
    st->rng ^= st->rng >> 7;
    st->rng ^= st->rng << 17;
    return ((double)(st->rng >> 11) + 0.5) * 0x1.0p-53;
}

static double rng_normal(struct attack_state *st)
{
    double u1 = rng_uniform(st), u2 = rng_uniform(st);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * PI * u2);
}

/* What a real sensor could send: rounded to its resolution, inside the plausible range. */
static double as_sensor(const struct sim_value *v, double x)
{
    double step = pow(10.0, -(double)v->decimals);
    const struct metric_info *mi = metric_info_or_generic(v->metric);
    x = round(x / step) * step;
    if (x < mi->min)
        x = ceil(mi->min / step) * step;
    if (x > mi->max)
        x = floor(mi->max / step) * step;
    return x + 0.0;
}

static struct sim_value *find_value(struct sim_reading *r, const char *metric)
{
    for (unsigned i = 0; i < r->n_values; i++) {
        if (strcmp(r->values[i].metric, metric) == 0)
            return &r->values[i];
    }
    return NULL;
}

/* The value of the attacked metric just before the window (else the first one in it). */
static double base_value(struct attack_state *st, const struct sim_value *now)
{
    const struct sim_value *v = st->have_last ? find_value(&st->last, st->metric) : NULL;
    return v != NULL ? v->value : now->value;
}

/* Replay: the earlier reading to send now, or NULL when none was recorded. */
static const struct sim_reading *replay_source(const struct attack_state *st, uint64_t index)
{
    if (st->history_len == 0)
        return NULL;
    return &st->history[index % st->history_len];
}

static bool apply_replay(struct attack_state *st, struct sim_reading *r, uint64_t index)
{
    const struct sim_reading *src = replay_source(st, index);
    if (src == NULL)
        return false;
    for (unsigned i = 0; i < r->n_values; i++) {
        struct sim_value *v = &r->values[i];
        if (st->metric[0] != '\0' && strcmp(v->metric, st->metric) != 0)
            continue;
        for (unsigned j = 0; j < src->n_values; j++) {
            if (strcmp(src->values[j].metric, v->metric) == 0)
                v->value = src->values[j].value;
        }
    }
    return true;
}

/* Changes the attacked metric of reading index (0 = the window's first). Returns whether
 * the reading counts as attacked. */
static bool apply_value(struct attack_state *st, struct sim_reading *r, uint64_t index)
{
    struct sim_value *v = find_value(r, st->metric);
    if (v == NULL)
        return false;
    double x = v->value, m = st->magnitude;
    double t_s = (double)(r->ts_ms - st->start_ms) / 1000.0;
    switch (st->spec.kind) {
    case ATTACK_SPIKE: {
        if (index % st->spec.every != 0)
            return false;
        double up = as_sensor(v, x + m);
        x = up != v->value ? up : x - m; /* pinned at the range's end: jump the other way */
        break;
    }
    case ATTACK_RAMP:
        x += m * t_s / st->spec.duration_s;
        break;
    case ATTACK_BIAS:
        x += m;
        break;
    case ATTACK_SCALE:
        x *= m;
        break;
    case ATTACK_FREEZE:
        x = base_value(st, v);
        break;
    case ATTACK_NOISE:
        x = base_value(st, v) + m * rng_normal(st);
        break;
    case ATTACK_FAKE_LEAK: {
        double excess = fmax(0.0, m - base_value(st, v));
        double rise = 1.0 - exp(-(t_s + 1.0) / ATTACK_LEAK_TAU_S);
        x += excess * rise * (1.0 + ATTACK_LEAK_NOISE * rng_normal(st));
        break;
    }
    default:
        return false;
    }
    v->value = as_sensor(v, x);
    return true;
}

/* True when a value of r differs from before[] (what the device would have sent) by more
 * than its sensor's resolution: a change no honest reading of that sensor could show as one
 * step of its own noise. */
static bool observable_change(const struct sim_reading *r, const double *before)
{
    for (unsigned i = 0; i < r->n_values; i++) {
        double step = pow(10.0, -(double)r->values[i].decimals);
        if (fabs(r->values[i].value - before[i]) > step * (1 + 1e-6))
            return true;
    }
    return false;
}

bool attack_apply(struct attack_state *st, struct sim_reading *r, uint64_t seq)
{
    if (r->ts_ms < st->start_ms) {
        st->last = *r;
        st->have_last = true;
        if (st->history != NULL && st->history_len < st->history_cap) {
            double back = st->spec.replay_from_s > 0 ? st->spec.replay_from_s : st->spec.duration_s;
            int64_t from_ms = st->start_ms - (int64_t)llround(back * 1000);
            if (r->ts_ms >= from_ms)
                st->history[st->history_len++] = *r;
        }
        return false;
    }
    if (r->ts_ms >= st->end_ms)
        return false;
    uint64_t index = st->truth.window_readings++;
    double before[SIM_MAX_VALUES + SIM_MAX_ACTUATORS];
    for (unsigned i = 0; i < r->n_values; i++)
        before[i] = r->values[i].value;
    bool attacked =
        st->spec.kind == ATTACK_REPLAY ? apply_replay(st, r, index) : apply_value(st, r, index);
    if (!attacked)
        return false;
    struct attack_truth *t = &st->truth;
    if (!t->any) {
        t->any = true;
        t->first_seq = seq;
        t->first_ts_ms = r->ts_ms;
    }
    if (!t->observable && observable_change(r, before)) {
        t->observable = true;
        t->first_observable_seq = seq;
        t->first_observable_ts_ms = r->ts_ms;
    }
    t->last_seq = seq;
    t->last_ts_ms = r->ts_ms;
    t->readings++;
    return true;
}
