/* model_live.h — a device's live models: the feature state each model needs, and the
 * score (Isolation Forest) or class (gas classifier) of each reading (models.h says what a
 * model sees).
 *
 * Owned by the worker that owns the device (like the detectors' state): single-threaded,
 * no locks. Bindings refer to a model set's entries, so the owner keeps a reference to
 * that set while any device is bound to it, and rebinds a device when the set changes
 * (the feature windows start over: a new model may need other metrics or windows). */
#ifndef CANARY_MODELS_MODEL_LIVE_H
#define CANARY_MODELS_MODEL_LIVE_H

#include "core/reading.h"
#include "models/models.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct feature_series;
struct gas_stream;

struct device_model {
    const struct model_entry *entry;
    struct feature_series **series; /* window models: one per metric; NULL for raw */
    double *vec;                    /* the feature vector (n_features), NaN until seen */
    bool *seen;                     /* per metric: a value has arrived */
    double last_score;              /* NaN until the first score */
    /* MODEL_GAS: the device's recent readings, the latest value of each input (n_metrics),
     * and the class probabilities (n_classes); vec is the model's row. */
    struct gas_stream *stream;
    double *inputs;
    double *proba;
};

struct device_models {
    uint64_t generation; /* of the set bound from; 0 = not bound yet */
    uint32_t n;
    struct device_model *models; /* heap array of n */
};

/* One model's verdict on one reading. */
struct model_result {
    const struct model_entry *entry;
    double score; /* the model's score s(x) in (0,1]; NaN: not scored (the model's metrics
                     have not all arrived, or its windows are not full yet). MODEL_GAS: the
                     probability of danger_class */
    bool above;   /* score >= the model's threshold (MODEL_GAS: its probability level) */
    /* MODEL_GAS only: */
    int gas_class;       /* the most probable class */
    double gas_prob;     /* its probability */
    int danger_class;    /* the most probable of the dangerous classes */
    const double *proba; /* every class's probability (the model's class order), valid until
                            the device's next reading is scored */
};

/* Binds the device to every model of set that applies to it (device id, kind: NULL if
 * unknown), dropping earlier bindings. Returns 0 or CANARY_ENOMEM (then nothing is bound). */
int device_models_bind(struct device_models *dm, const struct model_set *set, const char *device,
                       const char *kind);

void device_models_free(struct device_models *dm);

/* Feeds the reading's values to each bound model and scores it. Writes one result per bound
 * model to out (at most cap) and returns their number. */
size_t device_models_score(struct device_models *dm, const struct reading *r,
                           struct model_result *out, size_t cap);

/* Maps a model score onto canary's common anomaly scale, where `anomaly_threshold` is where
 * the streaming detectors call a value anomalous: 0.5 and below (the paper: "no distinct
 * anomaly") is 0, the model's threshold maps to anomaly_threshold, 1 to 1, linear in
 * between. So one score column reads the same whichever detector spoke. */
double model_score_unit(double score, double threshold, double anomaly_threshold);

#endif
