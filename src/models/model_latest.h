/* model_latest.h — the latest prediction of a gas classifier per device: every class's
 * probability, kept in memory for GET /api/v1/devices/<id>/latest (docs/GAS.md "In
 * canaryd").
 *
 * Why in memory: each classified reading stores only the winning class and its probability
 * (two derived values, gas_class_<model> / gas_prob_<model>: storage stays lean); the full
 * vector is only ever wanted for the newest reading, so the worker that classified it puts
 * it here, replacing the device's previous one. It belongs to one model of one model set:
 * a reload starts a new, empty table (as the live windows start over), and so does a
 * restart; until a device's next reading is classified there is nothing to show for it.
 *
 * Thread safety: workers put and API threads get concurrently; the table is split into
 * stripes by the device id's hash, each behind its own mutex, held for a copy of K doubles.
 * Memory: one entry per device the model classified (ts + K doubles), freed with the table. */
#ifndef CANARY_MODELS_MODEL_LATEST_H
#define CANARY_MODELS_MODEL_LATEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct model_latest;

/* A table for a model of n_classes classes; NULL when out of memory. */
struct model_latest *model_latest_new(size_t n_classes);
void model_latest_free(struct model_latest *t);

/* Records the device's newest prediction: the reading's time and its class probabilities
 * (n_classes). Returns 0 or CANARY_ENOMEM (the table then keeps the previous one, if any). */
int model_latest_put(struct model_latest *t, const char *device, int64_t ts_ms,
                     const double *proba);

/* Copies the device's newest prediction into *ts_ms and proba (n_classes); false when the
 * model has classified no reading of the device since it was loaded. */
bool model_latest_get(struct model_latest *t, const char *device, int64_t *ts_ms, double *proba);

#endif
