/* tamper.h — tamper checks: does a validly signed device send false data?
 *
 * A device (or its sensor) can be compromised while its messages stay authentic: the key is
 * on the device. What is left is to judge the data itself. Per series (one metric of one
 * device) and per device, a set of cheap streaming checks looks for what a sensor does not
 * do on its own (docs/TAMPER.md has each check, its parameters, cost and blind spots):
 *  - resolution: a value off the step the sensor has always reported (a DHT11 reports whole
 *    degrees; a scaled, offset or noised value lands between the steps);
 *  - slew: a jump of many usual steps (downwards only for gas and temperature, whose rises
 *    are what alarms exist for); a jump that comes straight back is a spike, worth double;
 *  - frozen: a run of identical values whose chance, judged by how often the series repeated
 *    a value BEFORE the run began (a run is learned only once it ends), is below
 *    tamper.frozen_probability;
 *  - replayed_window: a window of tamper.replay_window quantised values that was seen
 *    before comes back (fingerprints of remembered windows; only windows carrying at least
 *    tamper.replay_min_bits of information are compared, so a quiet sensor is not accused of
 *    repeating itself);
 *  - noise_change: a CUSUM of each step against the usual step: random noise, scaling;
 *  - drift: CUSUMs of the distance from the series' slow level: a ramp or an offset (not for
 *    rising gas — a leak is a ramp — nor for the air's temperature and humidity while flame
 *    is seen: a fire heats and dries it);
 *  - timing (per device): seq gaps, a jump of the device clock against canaryd's receive
 *    time, readings arriving far faster than the device's usual interval;
 *  - cross_sensor (per device): flame for three readings while the temperature stays flat;
 *  - neighbours (across devices, tamper_neighbours_*): one device's value, or where its
 *    recent readings are heading, moving while every other device at the same location
 *    stays flat.
 * Metric classes decide which checks apply: binary signals (flame, motion, actuators) get
 * none of the value checks; signals with regimes (light, vibration, noise level: a lamp or a
 * machine switches) only resolution, frozen and replay.
 *
 * Trust. Each finding adds evidence (a weight per check, tamper.weight_*) to the device's
 * doubt D, which fades by a factor e every tamper.recovery_readings readings; the trust score
 * is exp(-D) in (0,1]. Below tamper.suspect_below the device is suspect; below
 * tamper.quarantine_below it is quarantined; a suspect device is trusted again at or above
 * tamper.trusted_above (hysteresis); a quarantine lasts until a person releases it
 * (tamper_release). The four most recent findings are kept as the explanation.
 *
 * Warm-up: a series gives no verdict before it has learned tamper.warmup_readings values,
 * and the device's timing none before as many readings; a doubted value is not learned.
 *
 * Pure library code: no I/O, no threads, no allocation, no clock reads; all state is in the
 * caller's structs (in canaryd the worker that owns the device). Cost per reading and bytes
 * per series are measured in tests/unit/test_tamper.c and written in docs/TAMPER.md. */
#ifndef CANARY_TAMPER_TAMPER_H
#define CANARY_TAMPER_TAMPER_H

#include "core/config_tamper.h"
#include "core/reading.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum trust_state { TRUST_TRUSTED = 0, TRUST_SUSPECT, TRUST_QUARANTINED };

/* "trusted", "suspect", "quarantined"; parse returns 0 or -1. */
const char *trust_state_name(enum trust_state s);
int trust_state_parse(const char *s, enum trust_state *out);

enum tamper_check {
    TAMPER_SLEW = 0,
    TAMPER_RESOLUTION,
    TAMPER_FROZEN,
    TAMPER_REPLAYED_WINDOW,
    TAMPER_NOISE_CHANGE,
    TAMPER_DRIFT,
    TAMPER_TIMING,
    TAMPER_CROSS_SENSOR,
    TAMPER_NEIGHBOURS,
};
#define TAMPER_CHECK_COUNT 9

/* "slew", "resolution", "frozen", "replayed_window", "noise_change", "drift", "timing",
 * "cross_sensor", "neighbours". */
const char *tamper_check_name(enum tamper_check c);

#define TAMPER_REPLAY_HISTORY 512 /* remembered window fingerprints per series */
#define TAMPER_WINDOW_MAX     16  /* largest tamper.replay_window */
#define TAMPER_REASONS        4   /* findings kept as a device's explanation */
#define TAMPER_DETAIL_LEN     160

/* What the tamper checks keep about one series. */
struct tamper_series {
    uint8_t cls;                    /* metric class (binary, regime, smooth, danger-up) */
    uint8_t grid_ok;                /* bit i: every learned value lies on candidate grid i */
    uint8_t distinct;               /* distinct values learned (saturates at 3) */
    uint8_t win_fill;               /* values in win */
    uint8_t win_head;               /* next slot of win */
    int8_t jump_dir;                /* direction of the last jump (0: none recent) */
    uint8_t jump_age;               /* readings since that jump */
    bool offset_on;                 /* jumped up and stayed there (an offset), still raised */
    bool jump_from_base;            /* the last jump started at the series' base */
    bool run_doubted;               /* the current run of identical values was doubted */
    bool run_state;                 /* switching signal: the run began at a switch or at the
                                       bottom of where the signal had been (a state) */
    uint32_t n;                     /* values learned */
    uint32_t same_run;              /* identical values in a row, this one included */
    uint32_t deferred;              /* repeats of that run not learned yet (frozen_rate) */
    uint32_t since_store;           /* windows since one was remembered */
    uint32_t hash_head;             /* next slot of hashes */
    uint32_t hash_n;                /* fingerprints remembered */
    double first, second;           /* the first two distinct values learned (distinct count) */
    double last;                    /* the previous value */
    double level;                   /* slow EWMA level */
    double base;                    /* the level learned while the value was not raised (gas) */
    double step;                    /* EWMA of |x - previous| (the usual step) */
    double spread;                  /* EWMA of |x - level| (noise and the sensor's own drift) */
    double p_same;                  /* EWMA of (x == previous), alpha 0.02 */
    double p_same_max;              /* its highest value lately (fades by 0.2 % a reading) */
    double p_same_long;             /* EWMA of (x == previous), alpha 1/512 (long run) */
    double noise_cusum;             /* CUSUM of step / usual step */
    double drift_up;                /* CUSUMs of the distance from the level, upwards ... */
    double drift_down;              /* ... and downwards */
    int64_t win[TAMPER_WINDOW_MAX]; /* the last values, quantised (a ring) */
    uint32_t hashes[TAMPER_REPLAY_HISTORY];    /* fingerprints of remembered windows (a ring): low
                                                  32 bits ... */
    uint16_t hashes_hi[TAMPER_REPLAY_HISTORY]; /* ... and high 16 (48 bits in all) */
};

/* One finding, as a device's explanation shows it. */
struct tamper_reason {
    enum tamper_check check;
    char metric[READING_METRIC_BUF]; /* "" for device-level findings (timing) */
    char detail[TAMPER_DETAIL_LEN];  /* a sentence */
    int64_t ts_ms;                   /* the reading's ts */
};

/* What the tamper checks keep about one device. */
struct tamper_device {
    enum trust_state state;
    double doubt;     /* D: the trust score is exp(-D) */
    int64_t since_ms; /* when the state was entered (reading ts or release time) */
    struct tamper_reason reasons[TAMPER_REASONS]; /* most recent first */
    uint32_t n_reasons;
    /* timing */
    uint32_t n;             /* readings seen */
    int64_t last_ts_ms;     /* newest reading's ts */
    uint64_t last_seq;      /* newest seq (0: none) */
    double interval_ms;     /* EWMA of the interval between readings (by ts) */
    double clock_offset_ms; /* recv_ms - ts_ms of the newest reading */
    double clock_drift_ms;  /* EWMA of its change per reading */
    uint32_t fast_run;      /* intervals in a row far below the usual */
    /* cross-sensor */
    uint32_t flame_run;        /* readings in a row with flame */
    int64_t flame_start_ms;    /* ts of the run's first reading */
    double flame_start_temp_c; /* temperature level when the flame began */
    double temp_c;             /* the last temperature value (NAN: none) */
    double temp_level_c;       /* the temperature series' level (NAN: none) */
};

/* Prepares a series for a metric / a device (trusted, score 1). */
void tamper_series_init(struct tamper_series *s, const char *metric);
void tamper_device_init(struct tamper_device *d);

/* What tamper_reading() found. */
struct tamper_outcome {
    enum trust_state before, after; /* the device's state before and after the reading */
    uint32_t findings;              /* values doubted (and device-level findings) */
};

/* Judges one reading of a device: series[k] is the tamper series of r->values[k] (NULL: no
 * series, the value is skipped). Sets FLAG_TAMPER on every doubted value and, when the
 * device is quarantined after the reading, FLAG_QUARANTINED on every value. Updates the
 * device's doubt, state and reasons. With p->enabled false it does nothing (outcome: no
 * change). */
void tamper_reading(const struct config_tamper *p, struct tamper_device *d,
                    struct tamper_series *const *series, struct reading *r,
                    struct tamper_outcome *out);

/* Adds outside evidence (the neighbours check, run where all devices of a location are
 * seen) to the device, with its finding. Returns the outcome as tamper_reading does. */
void tamper_add_evidence(const struct config_tamper *p, struct tamper_device *d,
                         enum tamper_check check, const char *metric, double weight,
                         const char *detail, int64_t ts_ms, struct tamper_outcome *out);

/* A person releases the device: trusted, doubt 0, reasons cleared, since now_ms. The
 * series keep what they learned. Returns the state it had. */
enum trust_state tamper_release(struct tamper_device *d, int64_t now_ms);

/* Restores a stored state (after a restart): state, score (0 < score <= 1) and since. */
void tamper_restore(struct tamper_device *d, enum trust_state state, double score,
                    int64_t since_ms);

/* The trust score in (0,1]. */
double tamper_score(const struct tamper_device *d);

/* The reasons as a JSON array ([{"check","metric","detail","ts_ms"}, ...]) into buf.
 * Returns the length, or 0 when buf is too small ("[]" is written if it fits). */
size_t tamper_reasons_json(const struct tamper_device *d, char *buf, size_t len);

/* One sentence for people: "replayed_window on gas_ppm: ...; frozen on ..." (the most
 * recent findings first), truncated to len. */
void tamper_explain(const struct tamper_device *d, char *buf, size_t len);

/* ---------------------------------------------------------------- neighbours
 *
 * The cross-device check: devices at the same location (the store's devices.location)
 * should see the same room. For each (location, metric) the table keeps each member's
 * latest value, slow level and usual step; when one member's value moves from its level by
 * more than tamper.neighbour_factor of its usual steps while every other member (at least
 * one, seen within the last 15 minutes) stays within a third of that many of its
 * own, the mover is doubted. So is a member whose fast level (where its recent readings are
 * heading) moves 7 times its usual distance from the slow level (learned per member) while
 * every other member's stays within a third of that: a slow ramp. A real leak spreads to the
 * other sensors of the room within seconds; a forged one does not. So gas (and CO) that rose
 * is doubted only once it has been rising for NEIGHBOUR_GRACE_MS (the leak's time to reach
 * the room's other sensors; counted from when it began to move, so a slow ramp, long under
 * way when it has moved far enough, is not held back), and a member still raised above its
 * base (its level before the event) is not a flat neighbour: a room in which one sensor has
 * risen and another rises more slowly, or has stopped rising, is one leak.
 * Single-threaded: canaryd runs it on the writer thread, which sees every committed reading. */

#define TAMPER_NEIGHBOURS_MAX 32 /* members per (location, metric) tracked */

struct tamper_neighbour {
    char device[READING_ID_BUF];
    double last, level, step;
    double fast;    /* fast EWMA of the value (alpha 0.3): where it is heading, with less noise */
    double wander;  /* EWMA of |fast - level|: how far it usually wanders from its level */
    double quantum; /* smallest change seen: the sensor's step */
    double base;    /* a level slower than level (EWMA 0.01): where gas and CO were before a
                       leak raised them */
    int64_t moving_since_ms; /* ts since which its value has been moving (0: not) */
    uint32_t n;
    int64_t ts_ms;
};

struct tamper_room {
    char location[128];
    char metric[READING_METRIC_BUF];
    struct tamper_neighbour members[TAMPER_NEIGHBOURS_MAX];
    uint32_t n_members;
};

/* True for the metrics the neighbours check compares (smooth physical quantities, not
 * binary signals or switching ones such as light). */
bool tamper_neighbours_compare(const char *metric);

/* Feeds one value of a device at a location into its room (the caller finds or creates the
 * room by (location, metric)). Returns true when the value is doubted, with a sentence in
 * detail. */
bool tamper_room_observe(const struct config_tamper *p, struct tamper_room *room,
                         const char *device, double value, int64_t ts_ms, char *detail,
                         size_t detail_len);

#endif
