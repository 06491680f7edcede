/* attack_transform.h — what a compromised device does to its own readings, for
 * `canary attack device` (attack_device.c): the attack kinds, their parameters, and the
 * transform that corrupts one device's stream of simulated readings in a time window.
 *
 * The device holds its key, so every corrupted reading is validly signed, fresh (rising seq,
 * current ts) and well-formed; only the values lie. The kinds:
 *   spike      single large outliers: value + magnitude on every `every`-th reading of the
 *              window, the first one included; the readings between stay untouched
 *   ramp       slow drift away: value + magnitude * (ts - start) / duration
 *   bias       constant offset: value + magnitude
 *   scale      value * magnitude
 *   freeze     the last value sent before the window, repeated
 *   noise      the signal replaced by noise: last value before the window + magnitude * N(0,1)
 *   replay     the device sends, reading by reading, the values it sent in an earlier window
 *              (`replay_from_s` before the start; it loops when the window is longer than
 *              that), every metric unless one is named: what it would do to hide a leak;
 *              with real_leak_ppm the room really has one (attack_device.c gives the room's
 *              other gas sensors a fake-leak-shaped rise to that level in the same window)
 *   fake-leak  gas_ppm rises like a real leak towards `magnitude` ppm (time constant
 *              20 s, 3 % noise on the excess), which the room's other devices do not see
 *
 * Promises:
 *  - a reading outside [start, end) of its device's window is returned exactly as given;
 *  - inside it only the attacked metric changes (every metric for a replay without one);
 *    spikes change only their readings;
 *  - a changed value is a whole multiple of the metric's resolution as sent (10^-decimals)
 *    and within the catalogue's plausible range (metric.h), as a real sensor's would be;
 *  - deterministic: the same spec, seed and readings give the same output;
 *  - no allocation after attack_state_init(); nothing here does I/O. */
#ifndef CANARY_CLI_ATTACK_TRANSFORM_H
#define CANARY_CLI_ATTACK_TRANSFORM_H

#include "cli/sim_fleet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ATTACK_DEVICE_MAX   64    /* bytes of a device id */
#define ATTACK_METRIC_MAX   64    /* bytes of a metric name */
#define ATTACK_HISTORY_MAX  20000 /* readings a replay can reach back */
#define ATTACK_SPIKE_EVERY  5     /* default: one spike every 5 readings */
#define ATTACK_LEAK_TAU_S   20.0  /* fake leak: time constant of the rise */
#define ATTACK_LEAK_NOISE   0.03  /* fake leak: relative noise on the excess */
#define ATTACK_MAX_DURATION (10.0 * 365 * 86400)

enum attack_kind {
    ATTACK_SPIKE = 0,
    ATTACK_RAMP,
    ATTACK_BIAS,
    ATTACK_SCALE,
    ATTACK_FREEZE,
    ATTACK_NOISE,
    ATTACK_REPLAY,
    ATTACK_FAKE_LEAK,
    ATTACK_KIND_COUNT,
};

/* Parses "spike", "ramp", "bias", "scale", "freeze", "noise", "replay", "fake-leak".
 * Returns 0 or CANARY_EINVAL. */
int attack_kind_parse(const char *name, enum attack_kind *out);

/* The command-line name of a kind ("fake-leak"). Never NULL. */
const char *attack_kind_name(enum attack_kind k);

/* One attack on one device, as the command line or a plan line gives it. */
struct attack_spec {
    enum attack_kind kind;
    bool kind_set;                      /* --kind given */
    char device[ATTACK_DEVICE_MAX + 1]; /* --device */
    char metric[ATTACK_METRIC_MAX + 1]; /* --metric; "" = the kind's default */
    double start_s;                     /* --start: seconds after the clock's start */
    double duration_s;                  /* --duration; 0 = until the run ends */
    double magnitude;                   /* --magnitude; NAN = the default for kind and metric */
    unsigned every;                     /* --every (spike); 0 = ATTACK_SPIKE_EVERY */
    double replay_from_s;               /* --replay-from (replay); 0 = duration_s */
    double real_leak_ppm; /* --real-leak (replay): a real leak in the room; 0 = none */
    uint64_t seed;        /* --seed of the noise (noise, fake-leak) */
};

/* A spec with the defaults: no kind, no device, start 60 s, duration 300 s, default
 * magnitude, seed 1. */
void attack_spec_defaults(struct attack_spec *spec);

/* True when name is one of the options attack_spec_set() takes ("--kind", "--device",
 * "--metric", "--start", "--duration", "--magnitude", "--every", "--replay-from",
 * "--attack-seed", "--real-leak"). */
bool attack_spec_has_option(const char *name);

/* Applies one option with its value. Returns 0, or CANARY_EINVAL with a message naming the
 * option and the value in err. */
int attack_spec_set(struct attack_spec *spec, const char *name, const char *value, char *err,
                    size_t errlen);

/* Checks a complete spec: kind and device given, parameters consistent with the kind
 * (scale's factor > 0 and not 1, a replay's source window after the clock's start, a
 * fake leak on gas_ppm, ...). Returns 0 or CANARY_EINVAL with a message. */
int attack_spec_check(const struct attack_spec *spec, char *err, size_t errlen);

/* The metric a spec attacks: its --metric, or the kind's default — gas_ppm for a fake leak;
 * "" (every metric) for a replay; else gas_ppm when has_gas, temperature_c otherwise. */
const char *attack_spec_metric(const struct attack_spec *spec, bool has_gas);

/* The magnitude used for metric: --magnitude, or the kind's default for that metric
 * (spike: a large jump, bias: a few times the noise, scale: 1.5, fake-leak: 8000 ppm, ...). */
double attack_default_magnitude(enum attack_kind kind, const char *metric);

/* Ground truth of one attack so far. */
struct attack_truth {
    bool any;           /* at least one reading was attacked */
    uint64_t first_seq; /* the first attacked reading */
    uint64_t last_seq;  /* the last so far */
    int64_t first_ts_ms;
    int64_t last_ts_ms;
    uint64_t readings;        /* attacked readings (for spike: the spikes only) */
    uint64_t window_readings; /* readings in the window (spike: spikes and the ones between) */
    /* The first attacked reading in which some value differs from the one the device would
     * have sent by MORE than its sensor's resolution (a frozen DHT11 that sends 22 °C where
     * it would have sent 23 differs by one step: no more than its own noise could). Attacks
     * whose first readings change nothing a reading can show (a slow ramp, a freeze on the
     * value the sensor was reporting anyway) are scored from here too, beside the strict
     * figure from first_seq (bench_security_device). */
    bool observable;               /* such a reading was seen */
    uint64_t first_observable_seq; /* its seq */
    int64_t first_observable_ts_ms;
};

/* The running state of one attack on one device. */
struct attack_state {
    struct attack_spec spec;
    char metric[ATTACK_METRIC_MAX + 1]; /* resolved; "" = every metric (replay) */
    double magnitude;                   /* resolved */
    int64_t start_ms, end_ms;           /* absolute window [start, end); end INT64_MAX = open */
    uint64_t rng;                       /* xorshift64 state */
    bool have_last;                     /* last clean value(s) seen before the window */
    struct sim_reading last;            /* the last reading before the window, as sent */
    struct sim_reading *history;        /* replay: readings from the source window on */
    size_t history_len, history_cap;
    struct attack_truth truth;
};

/* Resolves the spec for a device whose readings carry gas_ppm or not (has_gas), with the
 * simulated clock starting at clock_start_ms. Checks the spec (attack_spec_check()).
 * Returns 0, CANARY_EINVAL with a message, or CANARY_ENOMEM (replay's history). */
int attack_state_init(struct attack_state *st, const struct attack_spec *spec, bool has_gas,
                      int64_t clock_start_ms, char *err, size_t errlen);

/* Frees the replay history. Safe on a zeroed state and twice. */
void attack_state_free(struct attack_state *st);

/* Passes one reading of the attacked device (with its seq), in ts order, through the
 * attack: changes it in place when it is attacked and records the ground truth. Returns
 * true when the reading counts as attacked (see the kinds above). */
bool attack_apply(struct attack_state *st, struct sim_reading *r, uint64_t seq);

#endif
