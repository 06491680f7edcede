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

#include "core/config.h"
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
    job_done_fn done;
    void *user; /* the submitter's */
    /* The pipeline's: */
    _Atomic int pending_parts;
    size_t admitted;
};

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
    PC_ANOMALIES, /* values flagged anomalous */
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
};

void pipeline_stats(struct pipeline *p, struct pipeline_stats *out);

/* True while the store accepts commits (for /readyz). */
bool pipeline_ready(struct pipeline *p);

#endif
