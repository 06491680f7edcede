/* models.h — the models canaryd scores live: loading them, choosing them per device, and
 * reloading them while readings flow.
 *
 * A model set is what the configuration's [model.<name>] sections name (config.h), each
 * model file loaded and checked (ml/iforest.h). A set is immutable once built and counted
 * by references: workers hold the set they score with, a reload builds a new set and swaps
 * it in, and the old one is freed when its last holder lets go — no lock on the scoring
 * path, no reading scored by half a reload. A reload that fails (a file missing, corrupt,
 * or not usable live) changes nothing and says which model and why.
 *
 * What a model sees. A model trained on window features (features kind "window", feature
 * names "<metric>.<feature>" then the time of day: ml/features.h) gets, per device, a
 * feature series per metric it names, fed with each reading's value of that metric; a
 * model trained on raw features (names are metric names) gets the latest value of each.
 * A device is scored once it has reported every metric the model uses (and, for window
 * features, each series is warm); before that its readings carry no model score.
 *
 * A gas classifier (a gas bundle, ml/gas.h) sees, per device, a gas_stream fed with the
 * reading's values of its inputs (metric = the input name lower-cased; a channel missing
 * from a reading keeps its last value); it classifies every reading that carries one of
 * its inputs once all have been seen (docs/GAS.md "In canaryd"). */
#ifndef CANARY_MODELS_MODELS_H
#define CANARY_MODELS_MODELS_H

#include "core/config.h"
#include "core/reading.h"
#include "ml/gas.h"
#include "ml/iforest.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_METRICS 32

struct model_latest;

/* What a model file holds (told apart by the file's magic). */
enum model_type {
    MODEL_IFOREST, /* an Isolation Forest (ml/iforest.h): an anomaly score */
    MODEL_GAS,     /* a gas classifier bundle (ml/gas.h): a class and its probability */
};

#define MODEL_GAS_DEFAULT_PROBABILITY 0.9

struct model_entry {
    char name[CONFIG_MODEL_NAME_MAX];
    struct config_model def; /* as configured */
    enum model_type type;
    struct iforest *forest; /* owned (MODEL_IFOREST), else NULL */
    struct gas_model *gas;  /* owned (MODEL_GAS), else NULL */
    /* MODEL_GAS: metrics[] are the model's inputs in its order, lower-cased (MQ2 -> mq2);
     * a class index is dangerous when dangerous[k], and its alert is of kind class_kind[k]
     * ("dangerous = Smoke:fire, Mixture": a class's own kind, else alert_kind); above = the
     * most probable dangerous class reaches `probability`. Each scored reading gets the
     * derived values class_metric (the most probable class's index in the model's class
     * list), prob_metric (its probability) and, when all_probabilities, class_prob_metric[k]
     * (every class's probability). */
    bool dangerous[GAS_MAX_CLASSES];
    int class_kind[GAS_MAX_CLASSES]; /* enum alert_kind, for the dangerous classes */
    double probability;
    int alert_kind; /* enum alert_kind: ALERT_KIND_GAS_LEAK or ALERT_KIND_FIRE */
    bool all_probabilities;
    char class_metric[READING_METRIC_BUF];         /* "gas_class_<name>" */
    char prob_metric[READING_METRIC_BUF];          /* "gas_prob_<name>" */
    char (*class_prob_metric)[READING_METRIC_BUF]; /* "gas_p_<name>_<class>", one per class
                                                      (owned; NULL unless MODEL_GAS) */
    struct model_latest *latest; /* MODEL_GAS: each device's newest class probabilities, for
                                    the API (model_latest.h; owned, empty after a reload) */
    bool window;                 /* window features (else raw) */
    uint32_t window_len;         /* readings per window */
    size_t n_metrics;
    char metrics[MODEL_MAX_METRICS][READING_METRIC_BUF];
    size_t n_features;
    double threshold;     /* in effect: configured, else the model's own (MODEL_GAS: the
                             probability) */
    unsigned consecutive; /* in effect */
    int64_t file_mtime_ms;
    uint64_t file_bytes;
    /* Live counters (relaxed atomics; the set is otherwise immutable). */
    _Atomic uint64_t scored;  /* readings scored */
    _Atomic uint64_t above;   /* of which at or above the threshold (a dangerous class) */
    _Atomic uint64_t devices; /* devices bound to the model */
};

struct model_set {
    _Atomic int refs;
    uint64_t generation; /* 1 for the set at start, +1 per successful reload */
    int64_t loaded_ms;
    size_t n;
    struct model_entry *entries; /* heap array of n */
};

/* Builds a set from the configuration's model definitions: every file loaded and checked.
 * Returns 0 and *out (one reference), or an error naming the model and the problem. */
int model_set_load(struct model_set **out, const struct canary_config *cfg, uint64_t generation,
                   char *err, size_t errlen);

void model_set_retain(struct model_set *s);
void model_set_release(struct model_set *s); /* frees the set with its last reference */

/* Does the model apply to this device (an id matching one of its device globs, or a kind
 * equal to its kind)? kind may be NULL or "" (unknown). */
bool model_entry_applies(const struct model_entry *m, const char *device, const char *kind);

/* The holder: the current set, swapped whole on reload. */
struct models;

/* Loads the configured models (an error when one cannot be loaded: canaryd refuses to start
 * with a model it was told to use and cannot). Returns 0 and *out. */
int models_create(struct models **out, const struct canary_config *cfg, char *err, size_t errlen);
void models_free(struct models *m);

/* The current set, with a reference the caller releases (model_set_release). */
struct model_set *models_acquire(struct models *m);

/* The current set's generation, for a cheap "has it changed?" check per batch. */
uint64_t models_generation(struct models *m);

/* Where a reload gets its model definitions: canaryd re-reads its configuration (file,
 * environment, flags) into *fresh (config_init'ed by the caller, freed by it after). */
typedef int (*models_config_fn)(void *arg, struct canary_config *fresh, char *err, size_t errlen);
void models_set_config_source(struct models *m, models_config_fn fn, void *arg);

/* Re-reads the configuration (when a source is set; else the start's definitions) and every
 * model file, and swaps the new set in. On failure the current set stays, and err says why.
 * Serialised: concurrent reloads run one after the other. Returns 0 or an error. */
int models_reload(struct models *m, char *err, size_t errlen);

/* What the last reload did, for GET /api/v1/models. */
struct models_status {
    uint64_t reloads, reload_failures;
    int64_t last_reload_ms;
    char last_error[512]; /* "" after a success */
};
void models_status(struct models *m, struct models_status *out);

#endif
