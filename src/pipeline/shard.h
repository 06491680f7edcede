/* shard.h — the devices one worker owns, and what happens to each of their readings:
 * duplicate check -> detect -> decide.
 *
 * A shard is single-threaded: its owner (a worker thread in canaryd, or the in-process
 * benchmark) is the only one to touch it, so nothing here takes a lock. Per device it
 * keeps the seq window (duplicates and replays), the newest timestamp (duplicates of
 * readings without seq), the stream timing (gaps, stale/offline status), the detectors'
 * state of every metric, and the alert machines. Alert transitions go to the emit callback
 * given at init; the caller stores them. */
#ifndef CANARY_PIPELINE_SHARD_H
#define CANARY_PIPELINE_SHARD_H

#include "core/config.h"
#include "core/seq_window.h"
#include "core/strmap.h"
#include "decide/decide.h"
#include "detect/detect.h"
#include "ingest/ingest.h"
#include "models/model_live.h"
#include "pipeline/pipeline.h"
#include "store/store.h"
#include "tamper/tamper.h"

#include <stdatomic.h>
#include <stdint.h>

struct shard_params {
    const struct canary_config *cfg; /* ingest.*, devices.*, per-device limits */
    const struct detect_params *detect;
    const struct decide_params *decide;
    _Atomic uint64_t *n_devices; /* devices tracked by all shards, against devices.max_devices */
    struct store *reader;  /* read-only: finds devices registered through the API; may be NULL */
    struct models *models; /* the live models; may be NULL */
};

enum device_status { DEVICE_NEVER = 0, DEVICE_ONLINE, DEVICE_STALE, DEVICE_OFFLINE };

/* What a shard keeps about one device. */
struct shard_device {
    char id[READING_ID_BUF];
    struct seq_window window; /* seqs seen */
    int64_t max_ts_ms;        /* newest accepted ts (dedupe of readings without seq) */
    int64_t last_recv_ms;     /* wall time of the newest accepted reading, 0 = never */
    enum device_status status;
    struct gap_state gap;
    struct device_series *series; /* heap array */
    uint32_t n_series, cap_series;
    struct decide_device decide;
    enum device_link link;               /* what the device last said on its MQTT status topic */
    struct device_models models;         /* the models scoring this device, and their state */
    struct tamper_device tamper;         /* trust (tamper/tamper.h) */
    struct tamper_series *tamper_series; /* heap array parallel to series (same index) */
    double trust_written;                /* score of the last trust row handed on (-1: none) */
    int64_t trust_written_ms;            /* ... and its reading's receive time */
};

/* A device's trust to store (the device_trust row) and, when its state changed, the
 * security event that says so ("tamper_suspect", "quarantined", "released"). */
struct shard_trust_update {
    struct store_trust row;
    bool keep_reasons; /* the row's stored reasons stay (these are not newer) */
    bool has_event;
    struct event_record event;
};

/* Receives each trust update while the shard works (the worker forwards it to the writer). */
typedef void (*shard_trust_fn)(void *arg, const struct shard_trust_update *u);

struct shard {
    struct shard_params params;
    struct decide_ctx decide;
    struct strmap devices; /* id -> struct shard_device * */
    struct model_set *set; /* the model set devices are bound to (a reference), or NULL */
    /* Where a reading's derived values (a gas classifier's class and probability) are
     * allocated while shard_process runs: memory that lives until the readings are stored
     * (the worker's message), set by the caller; NULL: none are added. */
    struct arena *derived;
    shard_trust_fn trust_emit; /* trust updates (shard_set_trust_listener); NULL: none */
    void *trust_arg;
    decide_emit_fn alert_emit; /* the caller's emit: the shard's own wraps it */
    void *alert_arg;
    const struct shard_device *deciding; /* the device whose reading decide is judging */
};

/* What shard_process() did, for the counters. */
struct shard_counts {
    uint64_t anomalies;    /* values flagged anomalous */
    uint64_t duplicates;   /* readings refused as duplicates */
    uint64_t unknown;      /* readings of unknown devices (registration off, or device limit) */
    uint64_t invalid;      /* readings refused here (too many distinct metrics, out of memory) */
    uint64_t model_scored; /* readings scored by a model */
    uint64_t model_above;  /* of which at or above the model's threshold */
};

/* Prepares an empty shard. next_alert_id gives unique ids for new alerts; emit receives
 * every alert transition (see decide.h). */
void shard_init(struct shard *s, const struct shard_params *params,
                uint64_t (*next_alert_id)(void *arg), void *id_arg, decide_emit_fn emit,
                void *emit_arg);

/* Frees every device. */
void shard_free(struct shard *s);

/* Installs the receiver of trust updates (tamper/). */
void shard_set_trust_listener(struct shard *s, shard_trust_fn fn, void *arg);

/* Start-up: a device's stored trust (store_trust_each). Returns 0, CANARY_ELIMIT or
 * CANARY_ENOMEM. */
int shard_adopt_trust(struct shard *s, const struct store_trust *t);

/* A person releases a quarantined or suspect device: trusted again, its tamper alert
 * resolved as actor, the event "released". Returns 0, CANARY_ENOTFOUND (no such device) or
 * CANARY_ECONFLICT (it is trusted). */
int shard_device_release(struct shard *s, const char *device, const char *actor,
                         const char *comment, int64_t now_ms);

/* Outside evidence against a device (the writer's neighbours check): as if one of its checks
 * had found it. Unknown devices are ignored. */
void shard_device_evidence(struct shard *s, const char *device, const char *metric,
                           const char *detail, int64_t ts_ms);

/* Start-up: a stored device with its seq window and timing, and a live alert to keep
 * deciding about. Return 0 or CANARY_ENOMEM (or CANARY_ELIMIT beyond devices.max_devices). */
int shard_adopt_device(struct shard *s, const struct store_device *d, int64_t now_ms);
int shard_adopt_alert(struct shard *s, const struct alert *a, int64_t now_ms);

/* Processes readings idx[0..n) of b (all READING_PENDING, all of this shard's devices):
 * each is refused (status DUPLICATE, UNKNOWN_DEVICE or INVALID, with its error) or scored
 * and left PENDING for the store. Adds to *counts. */
void shard_process(struct shard *s, struct ingest_batch *b, const uint32_t *idx, size_t n,
                   struct shard_counts *counts);

/* A person acknowledges (acknowledge = true) or resolves alert `id` of `device`. Returns
 * 0, CANARY_ENOTFOUND or CANARY_ECONFLICT. */
int shard_alert_action(struct shard *s, const char *device, uint64_t id, bool acknowledge,
                       const char *actor, const char *comment, int64_t now_ms);

/* The device's MQTT status changed (pipeline.h, enum device_link). An unexpected offline
 * (its last will) of a device with a gas sensor opens its offline alert at once
 * (decide_link_lost); an unknown device is ignored. */
void shard_device_link(struct shard *s, const char *device, enum device_link link, int64_t now_ms);

/* Once a second: device status from timing (offline alerts) and expiry of alert machines. */
void shard_tick(struct shard *s, int64_t now_ms);

#endif
