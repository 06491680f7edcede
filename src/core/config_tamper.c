/* config_tamper.c — the [tamper] section of the configuration (config_tamper.h,
 * docs/TAMPER.md). One table below gives every key its type, default, bounds and help;
 * defaults, parsing, the example file and the docs rows all follow from it. */
#include "core/config.h"

#include "core/error.h"
#include "decide/alert.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tkey_type { TK_BOOL, TK_UINT, TK_DOUBLE, TK_SEVERITY };

struct tkey {
    const char *name;
    enum tkey_type type;
    size_t offset;
    const char *def;
    double min, max;
    const char *help;
};

#define TF(f) offsetof(struct config_tamper, f)

static const struct tkey tkeys[] = {
    {"enabled", TK_BOOL, TF(enabled), "true", 0, 0,
     "Run the tamper checks (docs/TAMPER.md): doubted values carry the flag tamper, each "
     "device keeps a trust score, and a device below tamper.quarantine_below is quarantined."},
    {"warmup_readings", TK_UINT, TF(warmup_readings), "60", 5, 100000,
     "Values a series learns before its checks give verdicts (and a device's timing)."},
    {"suspect_below", TK_DOUBLE, TF(suspect_below), "0.6", 0.01, 0.99,
     "Trust score below which a device is suspect (a security event tamper_suspect)."},
    {"quarantine_below", TK_DOUBLE, TF(quarantine_below), "0.25", 0.001, 0.98,
     "Trust score below which a device is quarantined: its readings are flagged quarantined, "
     "left out of training and all-clear summaries, and a tamper alert opens. Only a person "
     "releases it (POST /api/v1/devices/<id>/release)."},
    {"trusted_above", TK_DOUBLE, TF(trusted_above), "0.9", 0.02, 1,
     "A suspect device becomes trusted again once its score is back at or above this."},
    {"recovery_readings", TK_UINT, TF(recovery_readings), "300", 1, 10000000,
     "Readings over which a device's doubt fades by a factor e when no check finds anything."},
    {"slew_factor", TK_DOUBLE, TF(slew_factor), "10", 2, 1000,
     "A step between two values larger than this many times the series' usual step is a jump "
     "(downwards only for gas and temperature, whose rises are what alarms are for)."},
    {"frozen_probability", TK_DOUBLE, TF(frozen_probability), "1e-5", 1e-12, 0.1,
     "A run of identical values whose chance, judged by the repeat rate the series had before "
     "the run began, is below this is a frozen value (the false findings per run; "
     "docs/TAMPER.md)."},
    {"replay_window", TK_UINT, TF(replay_window), "8", 4, 16,
     "Values in one fingerprinted window: a window of values seen before that comes back is a "
     "replay."},
    {"replay_stride", TK_UINT, TF(replay_stride), "2", 1, 8,
     "One window of every this many is remembered (512 are kept per series): the history "
     "covers 512 x stride readings; detection takes up to window + stride - 1 readings."},
    {"replay_min_bits", TK_DOUBLE, TF(replay_min_bits), "32", 8, 256,
     "Windows carrying less information than this (estimated from the series' noise and "
     "resolution) are not compared: a quiet sensor repeats itself by chance."},
    {"noise_cusum", TK_DOUBLE, TF(noise_cusum), "12", 1, 1000,
     "CUSUM level at which the series' step size (its noise) has grown: random noise, "
     "scaling."},
    {"drift_cusum", TK_DOUBLE, TF(drift_cusum), "40", 1, 10000,
     "CUSUM level at which values keep moving one way away from the series' level faster than "
     "it ever drifted: a ramp (not for rising gas: a leak is a ramp)."},
    {"clock_jump_s", TK_UINT, TF(clock_jump_s), "120", 1, 86400,
     "A change of the gap between a device's ts and canaryd's receive time larger than this "
     "is a clock jump."},
    {"seq_gap_max", TK_UINT, TF(seq_gap_max), "1000", 1, 4000000000u,
     "More messages than this missing between two seqs of a device count as a timing "
     "anomaly."},
    {"rate_factor", TK_DOUBLE, TF(rate_factor), "10", 2, 10000,
     "Readings arriving this many times faster than the device's usual interval (by ts), "
     "five in a row, are a timing anomaly."},
    {"cross_heat_c", TK_DOUBLE, TF(cross_heat_c), "1", 0.1, 100,
     "Flame reported for three readings while the temperature has risen less than this: fire "
     "without heat."},
    {"neighbour_factor", TK_DOUBLE, TF(neighbour_factor), "6", 2, 1000,
     "A device's value shifting from its level by this many usual steps while every "
     "neighbour at the same location stays within a third of that (its own steps): the "
     "neighbours check."},
    {"weight_slew", TK_DOUBLE, TF(weight_slew), "0.3", 0, 100,
     "Doubt a jump adds (a jump that comes back at once, a spike, adds it twice)."},
    {"weight_resolution", TK_DOUBLE, TF(weight_resolution), "0.6", 0, 100,
     "Doubt a value off the sensor's resolution adds (a DHT11 reports whole degrees)."},
    {"weight_frozen", TK_DOUBLE, TF(weight_frozen), "0.35", 0, 100,
     "Doubt each reading of a frozen value adds."},
    {"weight_replay", TK_DOUBLE, TF(weight_replay), "2", 0, 100,
     "Doubt a replayed window adds (the default quarantines at once)."},
    {"weight_noise", TK_DOUBLE, TF(weight_noise), "0.55", 0, 100,
     "Doubt each reading adds while the noise level is changed."},
    {"weight_drift", TK_DOUBLE, TF(weight_drift), "0.35", 0, 100,
     "Doubt each reading adds while a ramp goes on."},
    {"weight_timing", TK_DOUBLE, TF(weight_timing), "0.2", 0, 100,
     "Doubt a timing anomaly adds (seq gap, clock jump, flood)."},
    {"weight_cross_sensor", TK_DOUBLE, TF(weight_cross_sensor), "0.4", 0, 100,
     "Doubt each reading of flame without heat adds."},
    {"weight_neighbours", TK_DOUBLE, TF(weight_neighbours), "0.3", 0, 100,
     "Doubt each reading adds that shifts while the neighbours stay flat."},
    {"alert_severity", TK_SEVERITY, TF(alert_severity), "high", 0, 0,
     "Severity of the tamper alert a quarantine opens. One of: info, low, medium, high, "
     "critical."},
};

#define N_TKEYS (sizeof tkeys / sizeof tkeys[0])

static int set_key(struct config_tamper *t, const struct tkey *k, const char *value, char *err,
                   size_t errlen)
{
    char *p = (char *)t + k->offset;
    switch (k->type) {
    case TK_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0)
            *(bool *)p = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0)
            *(bool *)p = false;
        else
            goto bad;
        return CANARY_OK;
    case TK_UINT: {
        char *end;
        errno = 0;
        if (value[0] == '-' || value[0] == '\0')
            goto bad;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno != 0 || *end != '\0' || (double)v < k->min || (double)v > k->max)
            goto bad;
        *(unsigned *)p = (unsigned)v;
        return CANARY_OK;
    }
    case TK_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0' || !isfinite(v) || v < k->min || v > k->max)
            goto bad;
        *(double *)p = v;
        return CANARY_OK;
    }
    case TK_SEVERITY: {
        enum alert_severity s;
        if (alert_severity_parse(value, &s) != 0)
            goto bad;
        snprintf(p, sizeof t->alert_severity, "%s", value);
        return CANARY_OK;
    }
    }
bad:
    switch (k->type) {
    case TK_BOOL:
        canary_errf(err, errlen, "tamper.%s: expected true or false, got \"%.64s\"", k->name,
                    value);
        break;
    case TK_SEVERITY:
        canary_errf(err, errlen,
                    "tamper.%s: expected info, low, medium, high or critical, got \"%.64s\"",
                    k->name, value);
        break;
    default:
        canary_errf(err, errlen, "tamper.%s: expected a %s from %g to %g, got \"%.64s\"", k->name,
                    k->type == TK_UINT ? "whole number" : "number", k->min, k->max, value);
    }
    return CANARY_EINVAL;
}

void config_tamper_defaults(struct config_tamper *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < N_TKEYS; i++) {
        int rc = set_key(t, &tkeys[i], tkeys[i].def, NULL, 0);
        (void)rc;
    }
}

int config_set_tamper(struct canary_config *cfg, const char *key, const char *value, char *err,
                      size_t errlen)
{
    const char *name = key + strlen("tamper.");
    for (size_t i = 0; i < N_TKEYS; i++) {
        if (strcmp(tkeys[i].name, name) == 0)
            return set_key(&cfg->tamper, &tkeys[i], value, err, errlen);
    }
    canary_errf(err, errlen, "unknown key '%.96s' (canaryd --help-config lists every key)", key);
    return CANARY_EINVAL;
}

int config_validate_tamper(const struct canary_config *cfg, char *err, size_t errlen)
{
    const struct config_tamper *t = &cfg->tamper;
    if (!(t->quarantine_below < t->suspect_below && t->suspect_below < t->trusted_above)) {
        canary_errf(err, errlen,
                    "tamper: expected quarantine_below (%g) < suspect_below (%g) < "
                    "trusted_above (%g)",
                    t->quarantine_below, t->suspect_below, t->trusted_above);
        return CANARY_EINVAL;
    }
    return CANARY_OK;
}

static void format_value(const struct config_tamper *t, const struct tkey *k, char *buf, size_t len)
{
    const char *p = (const char *)t + k->offset;
    switch (k->type) {
    case TK_BOOL:
        snprintf(buf, len, "%s", *(const bool *)p ? "true" : "false");
        break;
    case TK_UINT:
        snprintf(buf, len, "%u", *(const unsigned *)p);
        break;
    case TK_DOUBLE:
        if (*(const double *)p == floor(*(const double *)p) && fabs(*(const double *)p) < 1e15) {
            snprintf(buf, len, "%.0f", *(const double *)p); /* 10, not 1e+01 */
            break;
        }
        snprintf(buf, len, "%.17g", *(const double *)p);
        /* The shortest text that reads back the same. */
        for (int prec = 1; prec <= 17; prec++) {
            char shorter[64];
            snprintf(shorter, sizeof shorter, "%.*g", prec, *(const double *)p);
            if (strtod(shorter, NULL) == *(const double *)p) {
                snprintf(buf, len, "%s", shorter);
                break;
            }
        }
        break;
    case TK_SEVERITY:
        snprintf(buf, len, "%s", p);
        break;
    }
}

/* The help as comment lines of at most 96 columns (as config.c writes its keys' help). */
static void write_comment(FILE *out, const char *text)
{
    const char *p = text;
    while (*p) {
        size_t take = strlen(p);
        if (take > 94) {
            take = 94;
            while (take > 0 && p[take] != ' ')
                take--;
            if (take == 0)
                take = 94;
        }
        fprintf(out, "# %.*s\n", (int)take, p);
        p += take;
        while (*p == ' ')
            p++;
    }
}

void config_write_tamper(const struct canary_config *cfg, FILE *out, bool annotate)
{
    struct config_tamper defaults;
    config_tamper_defaults(&defaults);
    fprintf(out, "\n[tamper]\n");
    for (size_t i = 0; i < N_TKEYS; i++) {
        char v[64], d[64];
        format_value(&cfg->tamper, &tkeys[i], v, sizeof v);
        if (annotate) {
            format_value(&defaults, &tkeys[i], d, sizeof d);
            char help[640];
            snprintf(help, sizeof help, "%s (default %s)", tkeys[i].help, d);
            write_comment(out, help);
        }
        fprintf(out, "%s = %s\n", tkeys[i].name, v);
    }
}

void config_tamper_markdown(FILE *out)
{
    struct config_tamper defaults;
    config_tamper_defaults(&defaults);
    for (size_t i = 0; i < N_TKEYS; i++) {
        char v[64];
        format_value(&defaults, &tkeys[i], v, sizeof v);
        /* No environment variables for this section: the file or --set. */
        fprintf(out, "| `tamper.%s` | `%s` | — | %s |\n", tkeys[i].name, v, tkeys[i].help);
    }
}
