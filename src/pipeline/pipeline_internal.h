/* pipeline_internal.h — what the pipeline's files share: the pipeline, its workers, the
 * messages between them, and a worker's per-device state. Not for use outside
 * src/pipeline/. */
#ifndef CANARY_PIPELINE_INTERNAL_H
#define CANARY_PIPELINE_INTERNAL_H

#include "core/seq_window.h"
#include "core/strmap.h"
#include "core/time_ring.h"
#include "decide/decide.h"
#include "detect/detect.h"
#include "pipeline/pipeline.h"
#include "pipeline/queue.h"
#include "store/store.h"

#include <pthread.h>

enum msg_kind {
    MSG_READINGS, /* a job's readings for one worker, then their results for the writer */
    MSG_ACTION,   /* an operator action on an alert */
    MSG_ALERTS,   /* alert transitions a worker produced on its own (offline, expiry) */
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
    size_t n;       /* MSG_READINGS: number of indices */
    uint32_t idx[]; /* MSG_READINGS: this worker's readings of job->batch */
};

enum device_status { DEVICE_NEVER = 0, DEVICE_ONLINE, DEVICE_STALE, DEVICE_OFFLINE };

/* What a worker keeps about one of its devices. */
struct worker_device {
    char id[READING_ID_BUF];
    struct seq_window window; /* seqs seen */
    int64_t max_ts_ms;        /* newest accepted ts (dedupe of readings without seq) */
    int64_t last_recv_ms;     /* wall time of the newest accepted reading, 0 = never */
    enum device_status status;
    struct gap_state gap;
    struct device_series *series; /* heap array */
    uint32_t n_series, cap_series;
    struct decide_device decide;
};

struct worker {
    struct pipeline *p;
    unsigned index;
    pthread_t thread;
    struct queue inbox;
    struct strmap devices; /* id -> struct worker_device * */
    struct store *reader;  /* read-only handle: looks up devices created through the API */
    struct shard_msg *out; /* where decide's transitions go while processing */
    struct decide_ctx decide;
};

struct pipeline {
    struct canary_config cfg; /* copy: owns its override list */
    struct detect_params detect;
    struct decide_params decide;
    struct store *store; /* the writer's */
    struct worker *workers;
    unsigned n_workers;
    pthread_t writer;
    struct queue writer_q;
    _Atomic bool stopping;
    _Atomic uint64_t inflight;
    _Atomic uint64_t next_alert_id;
    _Atomic uint64_t n_devices;
    _Atomic uint64_t counters[PC_COUNT];
    _Atomic bool store_ok;
    _Atomic int64_t last_commit_ms;
    _Atomic uint64_t commit_us_avg;
    struct time_ring accepted_per_s;
    struct time_ring anomalies_per_min;
};

/* Thread bodies (worker.c, writer.c). */
void *worker_main(void *arg);
void *writer_main(void *arg);

/* Worker setup before the threads start (worker.c): a device and its stored state, and a
 * live alert to keep deciding about. */
int worker_adopt_device(struct worker *w, const struct store_device *d, int64_t now_ms);
int worker_adopt_alert(struct worker *w, const struct alert *a, int64_t now_ms);
void worker_free_devices(struct worker *w);

/* The worker that owns a device. */
struct worker *pipeline_owner(struct pipeline *p, const char *device);

/* Appends an alert record and/or event to a message (NULL event: record only). Returns 0
 * or CANARY_ENOMEM. */
int shard_msg_add_alert(struct shard_msg *m, const struct alert *a, const struct alert_event *ev);
void shard_msg_free(struct shard_msg *m);

/* Marks one part of a job finished; runs done() after the last. */
void pipeline_part_done(struct pipeline *p, struct job *job);

#endif
