/* config_tamper.h — the [tamper] section of the configuration: the parameters of the tamper
 * checks and of the per-device trust score (src/tamper/, docs/TAMPER.md).
 *
 *   [tamper]
 *   enabled = true
 *   warmup_readings = 60
 *   quarantine_below = 0.25
 *   ...
 *
 * Every key is parsed and range-checked when set (errors name the key); relations
 * (quarantine_below < suspect_below < trusted_above) are checked by
 * config_validate_tamper(). Defaults keep the simulated clean fleet quiet. */
#ifndef CANARY_CORE_CONFIG_TAMPER_H
#define CANARY_CORE_CONFIG_TAMPER_H

#include <stdbool.h>
#include <stdio.h>

struct canary_config;

struct config_tamper {
    bool enabled;               /* run the tamper checks at all */
    unsigned warmup_readings;   /* values a series learns before its checks give verdicts */
    double suspect_below;       /* trust score below this: suspect */
    double quarantine_below;    /* trust score below this: quarantined */
    double trusted_above;       /* a suspect device is trusted again at or above this */
    unsigned recovery_readings; /* readings over which doubt fades by a factor e */
    double slew_factor;         /* a step of more than this many usual steps is a jump */
    double frozen_probability;  /* a run of identical values this unlikely is frozen */
    unsigned replay_window;     /* values in one fingerprinted window */
    unsigned replay_stride;     /* one window of every this many is remembered */
    double replay_min_bits;     /* windows with less information than this are not compared */
    double noise_cusum;         /* CUSUM level at which the noise level has changed */
    double drift_cusum;         /* CUSUM level at which a one-sided shift is a ramp */
    unsigned clock_jump_s;      /* change of (receive time - ts) that is a clock jump */
    unsigned seq_gap_max;       /* messages missing between two seqs that count as a gap */
    double rate_factor;         /* intervals this many times shorter than usual: a flood */
    double cross_heat_c;        /* flame without this much temperature rise is suspect */
    double neighbour_factor;    /* a shift this many usual steps beyond the neighbours' */
    double weight_slew;         /* evidence each check adds to the device's doubt */
    double weight_resolution;
    double weight_frozen;
    double weight_replay;
    double weight_noise;
    double weight_drift;
    double weight_timing;
    double weight_cross_sensor;
    double weight_neighbours;
    char alert_severity[16]; /* severity of the tamper alert a quarantine opens */
};

/* Fills t with the defaults (config_init calls it). */
void config_tamper_defaults(struct config_tamper *t);

/* Sets "tamper.<key>". Returns 0, or CANARY_EINVAL with a message naming the key. */
int config_set_tamper(struct canary_config *cfg, const char *key, const char *value, char *err,
                      size_t errlen);

/* Relations between the keys. Returns 0 or CANARY_EINVAL with a message. */
int config_validate_tamper(const struct canary_config *cfg, char *err, size_t errlen);

/* Writes the [tamper] section in file syntax (with annotate, each key's help first). */
void config_write_tamper(const struct canary_config *cfg, FILE *out, bool annotate);

/* Appends the section's rows to the Markdown key table (config_write_markdown). */
void config_tamper_markdown(FILE *out);

#endif
