/* pipeline_internal.h — what the pipeline's files share: the pipeline, its workers, the
 * messages between them, and a worker's per-device state. Not for use outside
 * src/pipeline/. */
#ifndef CANARY_PIPELINE_INTERNAL_H
#define CANARY_PIPELINE_INTERNAL_H

#include "core/time_ring.h"
#include "decide/decide.h"
#include "detect/detect.h"
#include "pipeline/pipeline.h"
#include "pipeline/queue.h"
#include "pipeline/shard.h"
#include "store/store.h"

#include <pthread.h>

#define LAG_BUCKETS 96

/* The ingest-lag bucket of a lag in ms, and a bucket's upper edge. */
unsigned lag_bucket(int64_t ms);
double lag_bucket_edge_ms(unsigned b);

enum msg_kind {
    MSG_READINGS, /* a job's readings for one worker, then their results for the writer */
    MSG_ACTION,   /* an operator action on an alert */
    MSG_ALERTS,   /* alert transitions a worker produced on its own (offline, expiry) */
    MSG_RECORDS,  /* a job's event records and commands, straight to the writer */
    MSG_EVIDENCE, /* the writer's neighbours check doubts some of a worker's devices */
};

/* One finding of the neighbours check (neighbours.c) for the device's owner. */
struct shard_evidence {
    char device[READING_ID_BUF];
    char metric[READING_METRIC_BUF];
    char detail[TAMPER_DETAIL_LEN];
    int64_t ts_ms;
};

/* A message from submitter to worker to writer. The same message travels on: the worker
 * adds the alert transitions it produced and forwards it to the writer. */
struct shard_msg {
    struct queue_node node; /* first: a queue node is the message */
    enum msg_kind kind;
    struct job *job;      /* NULL for MSG_ALERTS */
    struct alert *alerts; /* records to store (heap, grown as needed) */
    size_t n_alerts, cap_alerts;
    struct alert_event *events;
    size_t n_events, cap_events;
    struct arena derived; /* MSG_READINGS: derived values added to the readings (shard.h),
                             alive until the readings are stored */
    struct shard_trust_update *trust; /* devices' trust rows and events to store (heap) */
    size_t n_trust, cap_trust;
    struct shard_evidence *evidence; /* MSG_EVIDENCE: findings for this worker (heap) */
    size_t n_evidence;
    size_t n;       /* MSG_READINGS: number of indices */
    uint32_t idx[]; /* MSG_READINGS: this worker's readings of job->batch */
};

struct worker {
    struct pipeline *p;
    unsigned index;
    pthread_t thread;
    struct queue inbox;
    struct shard shard;    /* the devices this worker owns */
    struct shard_msg *out; /* where the shard's alert transitions go while processing */
};

struct pipeline {
    struct canary_config cfg; /* copy: owns its override list */
    struct detect_params detect;
    struct decide_params decide;
    struct models *models;     /* the live models (models/models.h) */
    struct auth *_Atomic auth; /* ingest's authenticity checker (pipeline_set_auth), not owned */
    struct device_limit *device_limit; /* per-device ingest rate limit, owned; NULL: none */
    struct store *store;               /* the writer's */
    struct worker *workers;
    unsigned n_workers;
    pthread_t writer;
    struct queue writer_q;
    pthread_t checkpointer;
    struct store *checkpoint_store; /* the checkpointer's own handle */
    pthread_mutex_t checkpoint_lock;
    pthread_cond_t checkpoint_wake;
    bool checkpoint_stop;

    _Atomic bool stopping;
    _Atomic uint64_t inflight;
    _Atomic uint64_t next_alert_id;
    _Atomic uint64_t n_devices;
    _Atomic uint64_t counters[PC_COUNT];
    _Atomic bool store_ok;
    _Atomic int64_t last_commit_ms;
    _Atomic uint64_t commit_us_avg;
    pthread_mutex_t listener_lock;
    commit_listener_fn listener;
    void *listener_arg;
    void (*outbox_hook)(void *arg); /* under listener_lock */
    void *outbox_hook_arg;
    _Atomic uint64_t lag_buckets[LAG_BUCKETS]; /* bucket i: lag < 2^((i+1)/4) - 1 ms */
    _Atomic int64_t lag_max_ms;
    struct time_ring accepted_per_s;
    struct time_ring anomalies_per_min;
    struct neighbours *neighbours; /* the writer's cross-device tamper check, or NULL */
};

/* The cross-device tamper check (neighbours.c), owned by the writer thread. */
struct neighbours;
struct neighbours *neighbours_new(void);
void neighbours_free(struct neighbours *n);

/* Feeds a reading about to be committed into its location's rooms: a value that moves while
 * its neighbours stay flat gets FLAG_TAMPER, and its finding goes to out (at most cap).
 * Returns the number of findings. */
size_t neighbours_observe(struct neighbours *n, const struct config_tamper *p, struct store *s,
                          struct reading *r, int64_t now_ms, struct shard_evidence *out,
                          size_t cap);

/* Thread bodies (worker.c, writer.c). */
void *worker_main(void *arg);
void *writer_main(void *arg);
void *checkpointer_main(void *arg);

/* Prepares a worker (its shard reads registered devices through reader, which it then
 * owns), and frees one. */
void worker_init(struct worker *w, struct pipeline *p, unsigned index, struct store *reader);
void worker_free(struct worker *w);

/* The worker that owns a device. */
struct worker *pipeline_owner(struct pipeline *p, const char *device);

/* Appends an alert record and/or event to a message (NULL event: record only). Returns 0
 * or CANARY_ENOMEM. */
int shard_msg_add_alert(struct shard_msg *m, const struct alert *a, const struct alert_event *ev);

/* Appends a trust update to a message. Returns 0 or CANARY_ENOMEM. */
int shard_msg_add_trust(struct shard_msg *m, const struct shard_trust_update *u);
void shard_msg_free(struct shard_msg *m);

/* Marks one part of a job finished; runs done() after the last. */
void pipeline_part_done(struct pipeline *p, struct job *job);

#endif
