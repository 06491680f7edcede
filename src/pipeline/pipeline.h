/* pipeline.h — canaryd's runtime: shard by device -> detect -> decide -> store.
 *
 *   submitter (HTTP thread) --job--> worker[hash(device) % W] --> writer --> done(job)
 *
 * Workers (one per core by default) each own a share of the devices: their duplicate
 * windows, detector state and alert machines. Nothing on that path takes a lock; threads
 * hand each other messages (queue.h). One writer thread owns the read-write store handle:
 * it gathers what the workers produced into group commits (one transaction for many
 * requests), compacts the store's log, and applies retention. A job completes — its
 * done() callback runs, on the writer thread — only after everything it produced is
 * committed: an ingest answered 2xx is durable.
 *
 * Back-pressure: at most ingest.max_inflight readings may be admitted and not yet
 * committed; beyond that pipeline_submit() refuses with CANARY_EBUSY (ingest answers 503
 * with Retry-After) instead of queueing without limit.
 *
 * Store outages: a failed commit is retried with backoff until it succeeds; meanwhile
 * pipeline_ready() is false and jobs wait (and admission fills up, so ingest turns to
 * 503). Nothing admitted is dropped. Shutdown (pipeline_stop) stops admission, drains
 * every queue, commits, and joins the threads. */
#ifndef CANARY_PIPELINE_PIPELINE_H
#define CANARY_PIPELINE_PIPELINE_H

#include "core/command.h"
#include "core/config.h"
#include "core/event.h"
#include "decide/alert.h"
#include "ingest/ingest.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pipeline;

enum job_kind {
    JOB_INGEST,      /* store the pending readings of a batch */
    JOB_ACKNOWLEDGE, /* a person acknowledges an alert */
    JOB_RESOLVE,     /* a person resolves an alert */
    JOB_RECORDS,     /* store only the job's event records and commands */
    JOB_DEVICE_LINK, /* a device's MQTT status changed (online, offline, sleeping) */
    JOB_RELEASE,     /* a person releases a quarantined or suspect device (tamper/):
                        device, actor, comment; result 0, CANARY_ENOTFOUND or
                        CANARY_ECONFLICT (it is trusted) */
};

/* What a device says about its connection on <prefix>/<device>/status. */
enum device_link {
    LINK_UNKNOWN = 0,
    LINK_ONLINE,   /* "online": connected */
    LINK_OFFLINE,  /* "offline": its last will, published by the broker: an unexpected drop */
    LINK_SLEEPING, /* "sleeping": it said goodbye (planned stop, deep sleep): no alert */
};

struct job;
typedef void (*job_done_fn)(struct job *job);

/* A unit of work. The submitter allocates and fills it, and may free it once done() has
 * run. */
struct job {
    enum job_kind kind;
    struct ingest_batch batch; /* JOB_INGEST: statuses are final when done() runs */
    /* JOB_ACKNOWLEDGE / JOB_RESOLVE: */
    uint64_t alert_id;
    char device[READING_ID_BUF]; /* the alert's device (routes the job to its owner) */
    char actor[ALERT_ACTOR_LEN];
    char comment[ALERT_MESSAGE_LEN];
    int result;         /* actions: 0, CANARY_ENOTFOUND or CANARY_ECONFLICT */
    struct alert alert; /* actions: the alert after the change (when result == 0) */
    /* Any kind: security/ingest events and command records stored with the job (the
     * submitter's memory, untouched by the pipeline). */
    const struct event_record *records;
    size_t n_records;
    const struct device_command *commands;
    size_t n_commands;
    /* JOB_DEVICE_LINK: the new state of `device`, at link_ms (wall time). */
    enum device_link link;
    int64_t link_ms;
    job_done_fn done;
    void *user; /* the submitter's */
    /* The pipeline's: */
    _Atomic int pending_parts;
    size_t admitted;
};

/* A device's MQTT link change that went through the pipeline (JOB_DEVICE_LINK). */
struct device_link_change {
    char device[READING_ID_BUF];
    enum device_link link;
    int64_t link_ms; /* wall time the status arrived */
};

/* What one commit stored, for listeners (pipeline_set_listener). Pointers are valid only
 * during the call. */
struct commit_view {
    const struct reading *const *readings; /* scored: values carry score and flags */
    size_t n_readings;
    const struct alert *alerts; /* alert records after their transitions, in order */
    size_t n_alerts;
    const struct alert_event *events;
    size_t n_events;
    const struct device_link_change *links; /* MQTT link changes of the commit, in order */
    size_t n_links;
};

/* Called on the writer thread after every successful commit. Must not block: hand work to
 * another thread. */
typedef void (*commit_listener_fn)(void *arg, const struct commit_view *c);

/* Installs the commit listener (one; NULL removes it). Thread-safe. */
void pipeline_set_listener(struct pipeline *p, commit_listener_fn fn, void *arg);

/* More listeners beside that one (the MQTT module holds pipeline_set_listener's slot; the
 * dashboard's live stream adds itself here). Every listener runs after every commit, the
 * set_listener one first, then these in the order added, under the same contract.
 * pipeline_add_listener returns 0, CANARY_ELIMIT when PIPELINE_MAX_LISTENERS are installed, or
 * CANARY_ENOMEM. Once pipeline_remove_listener (same fn and arg) returns, that listener is not
 * running and is never called again. Thread-safe; not callable from inside a listener. */
#define PIPELINE_MAX_LISTENERS 4
int pipeline_add_listener(struct pipeline *p, commit_listener_fn fn, void *arg);
void pipeline_remove_listener(struct pipeline *p, commit_listener_fn fn, void *arg);

/* Called on the writer thread after a commit that added notifications to the outbox (the
 * delivery threads' wake-up). Must not block. One hook; NULL removes it. Thread-safe. */
void pipeline_set_outbox_hook(struct pipeline *p, void (*fn)(void *arg), void *arg);

/* Counters reported by /api/v1/stats. */
enum pipeline_counter {
    PC_READINGS_ACCEPTED,
    PC_READINGS_INVALID, /* parse or verify rejected the reading */
    PC_READINGS_DUPLICATE,
    PC_READINGS_UNKNOWN_DEVICE,
    PC_BODIES_MALFORMED,      /* a whole body rejected (400) */
    PC_BODIES_TOO_LARGE,      /* 413 */
    PC_REQUESTS_OVERLOADED,   /* 503 by back-pressure */
    PC_CONNECTIONS_TIMED_OUT, /* slow clients cut off */
    PC_COMMITS,
    PC_COMMIT_FAILURES,
    PC_COMPACTED_ROWS,
    PC_ALERTS_OPENED,
    PC_ANOMALIES,            /* values flagged anomalous */
    PC_EVENTS,               /* security and ingest events stored */
    PC_MODEL_SCORED,         /* readings scored by a model (once per model) */
    PC_MODEL_ANOMALIES,      /* of which at or above the model's threshold */
    PC_NOTIFY_QUEUED,        /* notifications written to the outbox (with their alerts) */
    PC_NOTIFY_DELIVERED,     /* accepted by the provider */
    PC_NOTIFY_RETRIES,       /* attempts that failed temporarily (retried later) */
    PC_NOTIFY_FAILED,        /* given up: a permanent failure, or too many attempts */
    PC_NOTIFY_CANCELLED,     /* not sent: acknowledged or resolved before an escalation */
    PC_NOTIFY_RATE_LIMITED,  /* not sent: the recipient's hourly limit was reached */
    PC_NOTIFY_ESCALATIONS,   /* escalation steps started */
    PC_NOTIFY_LLM_FALLBACKS, /* the LLM failed or timed out: the template text went out */
    PC_COUNT
};

/* Names of the counters, for the stats JSON ("readings_accepted"). */
const char *pipeline_counter_name(enum pipeline_counter c);

/* Opens the writer's store, loads devices and live alerts, and starts the threads.
 * Returns 0, or an error with a message. */
int pipeline_start(struct pipeline **out, const struct canary_config *cfg, char *err,
                   size_t errlen);

/* Submits a job. Returns 0 (done() will run exactly once, possibly before this returns),
 * CANARY_EBUSY (over the in-flight limit: nothing was taken, try later) or
 * CANARY_ESTOPPED (shutting down). */
int pipeline_submit(struct pipeline *p, struct job *job);

/* Stops admission, drains and commits everything admitted, and joins the threads. The
 * pipeline stays valid (pipeline_submit() answers CANARY_ESTOPPED, stats still work) until
 * pipeline_free(). */
void pipeline_stop(struct pipeline *p);

/* Frees a stopped pipeline (stopping it first if needed). */
void pipeline_free(struct pipeline *p);

/* The live models (loaded at start from the configuration's [model.<name>] sections). */
struct models;
struct models *pipeline_models(struct pipeline *p);

/* The authenticity checker ingest uses (verify/auth.h): installed by canaryd before MQTT and
 * HTTP start, not owned by the pipeline. NULL until set (ingest then treats every device as
 * having no credentials). */
struct auth;
void pipeline_set_auth(struct pipeline *p, struct auth *a);
struct auth *pipeline_auth(struct pipeline *p);

/* The per-device ingest rate limit (verify/device_limit.h) HTTP and MQTT ingest charge,
 * made from limits.device_* at start and owned by the pipeline; NULL when switched off. */
struct device_limit;
struct device_limit *pipeline_device_limit(struct pipeline *p);

/* Adds n to a counter (thread-safe). */
void pipeline_count(struct pipeline *p, enum pipeline_counter c, uint64_t n);

struct pipeline_stats {
    uint64_t counters[PC_COUNT];
    uint64_t inflight; /* readings admitted, not yet committed */
    uint64_t max_inflight;
    double ingest_per_s;          /* accepted readings per second, last 10 s */
    uint64_t anomalies_last_hour; /* values flagged anomalous in the last 60 min */
    bool store_ok;                /* the last commit succeeded */
    int64_t last_commit_ms;       /* wall time of the last successful commit */
    double commit_ms_avg;         /* average duration of recent commits */
    unsigned workers;
    /* Ingest lag: commit time minus the reading's own timestamp, over every reading stored
     * since start (device clocks count: on one machine it is publish-to-stored latency). */
    uint64_t lag_count;
    double lag_p50_ms, lag_p90_ms, lag_p99_ms, lag_max_ms;
};

void pipeline_stats(struct pipeline *p, struct pipeline_stats *out);

/* True while the store accepts commits (for /readyz). */
bool pipeline_ready(struct pipeline *p);

#endif
