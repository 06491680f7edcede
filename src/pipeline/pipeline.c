/* pipeline.c — starting, feeding and stopping the pipeline (see pipeline.h): admission,
 * sharding of a job's readings to the workers that own their devices, counters. */
#include "pipeline/pipeline_internal.h"

#include "models/models.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "detect/detect_config.h"
#include "verify/device_limit.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const counter_names[PC_COUNT] = {
    "readings_accepted",
    "readings_invalid",
    "readings_duplicate",
    "readings_unknown_device",
    "bodies_malformed",
    "bodies_too_large",
    "requests_overloaded",
    "connections_timed_out",
    "commits",
    "commit_failures",
    "compacted_rows",
    "alerts_opened",
    "anomalies",
    "events",
    "model_scored",
    "model_anomalies",
    "notifications_queued",
    "notifications_delivered",
    "notification_retries",
    "notifications_failed",
    "notifications_cancelled",
    "notifications_rate_limited",
    "escalations",
    "llm_fallbacks",
};

const char *pipeline_counter_name(enum pipeline_counter c)
{
    return (unsigned)c < PC_COUNT ? counter_names[c] : "?";
}

void pipeline_count(struct pipeline *p, enum pipeline_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&p->counters[c], n, memory_order_relaxed);
}

struct worker *pipeline_owner(struct pipeline *p, const char *device)
{
    return &p->workers[strmap_hash(device) % p->n_workers];
}

int shard_msg_add_alert(struct shard_msg *m, const struct alert *a, const struct alert_event *ev)
{
    if (m->n_alerts == m->cap_alerts) {
        size_t cap = m->cap_alerts ? m->cap_alerts * 2 : 4;
        struct alert *grown = realloc(m->alerts, cap * sizeof *grown);
        if (grown == NULL)
            return CANARY_ENOMEM;
        m->alerts = grown;
        m->cap_alerts = cap;
    }
    m->alerts[m->n_alerts++] = *a;
    if (ev == NULL)
        return CANARY_OK;
    if (m->n_events == m->cap_events) {
        size_t cap = m->cap_events ? m->cap_events * 2 : 4;
        struct alert_event *grown = realloc(m->events, cap * sizeof *grown);
        if (grown == NULL)
            return CANARY_ENOMEM;
        m->events = grown;
        m->cap_events = cap;
    }
    m->events[m->n_events++] = *ev;
    return CANARY_OK;
}

int shard_msg_add_trust(struct shard_msg *m, const struct shard_trust_update *u)
{
    if (m->n_trust == m->cap_trust) {
        size_t cap = m->cap_trust ? m->cap_trust * 2 : 2;
        struct shard_trust_update *grown = realloc(m->trust, cap * sizeof *grown);
        if (grown == NULL)
            return CANARY_ENOMEM;
        m->trust = grown;
        m->cap_trust = cap;
    }
    m->trust[m->n_trust++] = *u;
    return CANARY_OK;
}

void shard_msg_free(struct shard_msg *m)
{
    if (m == NULL)
        return;
    free(m->trust);
    free(m->evidence);
    free(m->alerts);
    free(m->events);
    arena_free(&m->derived);
    free(m);
}

void pipeline_part_done(struct pipeline *p, struct job *job)
{
    if (atomic_fetch_sub(&job->pending_parts, 1) == 1) {
        atomic_fetch_sub(&p->inflight, job->admitted);
        job->done(job);
    }
}

/* Creates the store's directory (and parents) if missing. */
static int make_dirs(const char *path, char *err, size_t errlen)
{
    char dir[CONFIG_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *d = dirname(dir);
    char partial[CONFIG_PATH_MAX] = "";
    for (char *p = d; *p; p++) {
        if (*p == '/' && p != d) {
            snprintf(partial, sizeof partial, "%.*s", (int)(p - d), d);
            if (mkdir(partial, 0750) != 0 && errno != EEXIST)
                goto fail;
        }
    }
    if (mkdir(d, 0750) != 0 && errno != EEXIST)
        goto fail;
    return CANARY_OK;
fail:
    snprintf(err, errlen, "cannot create the directory of %s: %s", path, strerror(errno));
    return CANARY_EIO;
}

static unsigned cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static void fill_params(struct pipeline *p)
{
    const struct canary_config *c = &p->cfg;
    detect_params_from_config(c, &p->detect); /* as `canary replay` does */

    struct decide_params *k = &p->decide;
    k->fsm.open_after = c->alerts.open_after;
    k->fsm.resolve_after_ms = (int64_t)c->alerts.resolve_after_s * 1000;
    k->fsm.reopen_window_ms = (int64_t)c->alerts.reopen_window_s * 1000;
    k->anomaly_severity = SEVERITY_LOW;
    alert_severity_parse(c->alerts.anomaly_severity, &k->anomaly_severity);
    k->offline_alerts = strcmp(c->alerts.offline_severity, "off") != 0;
    k->offline_severity = SEVERITY_MEDIUM;
    if (k->offline_alerts)
        alert_severity_parse(c->alerts.offline_severity, &k->offline_severity);
    k->link_lost_alerts = strcmp(c->alerts.gas_offline_severity, "off") != 0;
    k->link_lost_severity = SEVERITY_HIGH;
    if (k->link_lost_alerts)
        alert_severity_parse(c->alerts.gas_offline_severity, &k->link_lost_severity);
}

static struct store_options store_opts(const struct canary_config *c, bool read_only)
{
    struct store_options o = {.path = c->store.path,
                              .read_only = read_only,
                              .synchronous_full = strcmp(c->store.synchronous, "full") == 0,
                              .busy_timeout_ms = c->store.busy_timeout_ms,
                              .chunk_max_readings = c->store.chunk_max_readings,
                              .chunk_max_span_ms = (int64_t)c->store.chunk_max_span_s * 1000,
                              .manual_checkpoints = true};
    return o;
}

struct load_ctx {
    struct pipeline *p;
    int64_t now_ms;
    int rc;
};

static void load_device(void *arg, const struct store_device *d)
{
    struct load_ctx *ctx = arg;
    if (ctx->rc == 0)
        ctx->rc = shard_adopt_device(&pipeline_owner(ctx->p, d->id)->shard, d, ctx->now_ms);
}

static void load_alert(void *arg, const struct alert *a)
{
    struct load_ctx *ctx = arg;
    if (ctx->rc == 0)
        ctx->rc = shard_adopt_alert(&pipeline_owner(ctx->p, a->device)->shard, a, ctx->now_ms);
}

static void load_trust(void *arg, const struct store_trust *t)
{
    struct load_ctx *ctx = arg;
    if (ctx->rc == 0)
        ctx->rc = shard_adopt_trust(&pipeline_owner(ctx->p, t->device)->shard, t);
}

static void stop_checkpointer(struct pipeline *p)
{
    pthread_mutex_lock(&p->checkpoint_lock);
    p->checkpoint_stop = true;
    pthread_cond_signal(&p->checkpoint_wake);
    pthread_mutex_unlock(&p->checkpoint_lock);
    pthread_join(p->checkpointer, NULL);
}

static void free_workers(struct pipeline *p, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        worker_free(&p->workers[i]);
    free(p->workers);
    p->workers = NULL;
}

int pipeline_start(struct pipeline **out, const struct canary_config *cfg, char *err, size_t errlen)
{
    struct pipeline *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    if (config_copy(&p->cfg, cfg) != 0) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    fill_params(p);
    int rc = models_create(&p->models, cfg, err, errlen);
    if (rc != 0) {
        config_free(&p->cfg);
        free(p);
        return rc;
    }
    p->neighbours = cfg->tamper.enabled ? neighbours_new() : NULL;
    time_ring_init(&p->accepted_per_s, 1000);
    time_ring_init(&p->anomalies_per_min, 60000);
    atomic_store(&p->store_ok, true);
    queue_init(&p->writer_q);
    rc = make_dirs(cfg->store.path, err, errlen);
    struct store_options wopt = store_opts(cfg, false);
    if (rc == 0)
        rc = store_open(&p->store, &wopt, err, errlen);
    if (rc != 0) {
        queue_destroy(&p->writer_q);
        models_free(p->models);
        config_free(&p->cfg);
        free(p);
        return rc;
    }
    p->n_workers = cfg->pipeline.workers ? cfg->pipeline.workers : cores();
    if (p->n_workers > 256)
        p->n_workers = 256; /* pipeline_submit() shards with 8-bit worker indices */
    p->workers = calloc(p->n_workers, sizeof *p->workers);
    struct store_options ropt = store_opts(cfg, true);
    unsigned made = 0;
    while (p->workers != NULL && made < p->n_workers && rc == 0) {
        struct store *reader = NULL;
        rc = store_open(&reader, &ropt, err, errlen);
        if (rc == 0) {
            worker_init(&p->workers[made], p, made, reader);
            made++;
        }
    }

    if (p->workers == NULL)
        rc = CANARY_ENOMEM;
    int64_t now = clock_wall_ms();
    struct load_ctx ctx = {p, now, 0};
    if (rc == 0)
        rc = store_devices_load(p->store, load_device, &ctx, err, errlen);
    if (rc == 0)
        rc = store_alerts_live(p->store, now - p->decide.fsm.reopen_window_ms, load_alert, &ctx,
                               err, errlen);
    if (rc == 0) /* quarantines survive a restart (tamper/) */
        rc = store_trust_each(p->store, load_trust, &ctx, err, errlen);
    if (rc == 0 && ctx.rc != 0) {
        rc = ctx.rc;
        snprintf(err, errlen, "cannot load the stored devices: %s",
                 ctx.rc == CANARY_ELIMIT ? "more than devices.max_devices" : "out of memory");
    }
    uint64_t max_id = 0;
    if (rc == 0)
        rc = store_alert_max_id(p->store, &max_id, err, errlen);
    atomic_store(&p->next_alert_id, max_id + 1);
    if (rc == 0)
        rc = store_open(&p->checkpoint_store, &wopt, err, errlen);
    pthread_mutex_init(&p->checkpoint_lock, NULL);
    pthread_mutex_init(&p->listener_lock, NULL);
    pthread_cond_init(&p->checkpoint_wake, NULL);
    if (rc == 0 && pthread_create(&p->checkpointer, NULL, checkpointer_main, p) != 0) {
        snprintf(err, errlen, "cannot start the checkpoint thread");
        rc = CANARY_ENOMEM;
    }
    bool checkpointing = rc == 0;
    if (rc == 0 && pthread_create(&p->writer, NULL, writer_main, p) != 0) {
        snprintf(err, errlen, "cannot start the writer thread");
        rc = CANARY_ENOMEM;
    }
    if (rc != 0) {
        if (checkpointing)
            stop_checkpointer(p);
        store_close(p->checkpoint_store);
        pthread_mutex_destroy(&p->checkpoint_lock);
        pthread_mutex_destroy(&p->listener_lock);
        pthread_cond_destroy(&p->checkpoint_wake);
        if (p->workers != NULL)
            free_workers(p, made);
        store_close(p->store);
        queue_destroy(&p->writer_q);
        models_free(p->models);
        config_free(&p->cfg);
        free(p);
        return rc;
    }
    for (unsigned i = 0; i < p->n_workers; i++) {
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            /* Cannot happen short of resource exhaustion; run with fewer and say so. */
            log_error("pipeline.worker_start_failed", "worker=%u", i);
            p->n_workers = i;
            break;
        }
    }
    log_info("pipeline.started", "workers=%u devices=%llu path=%s", p->n_workers,
             (unsigned long long)atomic_load(&p->n_devices), cfg->store.path);
    if (device_limit_create(&p->device_limit, cfg) != 0) {
        pipeline_free(p);
        snprintf(err, errlen, "out of memory for the per-device rate limit (limits.device_table)");
        return CANARY_ENOMEM;
    }
    *out = p;
    return CANARY_OK;
}

void pipeline_set_outbox_hook(struct pipeline *p, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&p->listener_lock);
    p->outbox_hook = fn;
    p->outbox_hook_arg = arg;
    pthread_mutex_unlock(&p->listener_lock);
}

/* The listener fan-out. The writer calls the one (listener, listener_arg) pair it always
 * called; once a second listener is added, that pair becomes fan_out() with a struct fan_out
 * as its argument, which calls the set_listener one and the added ones in turn. It stays
 * installed until pipeline_free(). fan_out() holds the struct's lock while it calls them, so
 * removing a listener waits for a call in progress (listeners must not block, so that wait is
 * short). Lock order: listener_lock, then fan_out.lock. */
struct fan_out {
    pthread_mutex_t lock;
    commit_listener_fn primary; /* pipeline_set_listener's */
    void *primary_arg;
    commit_listener_fn fn[PIPELINE_MAX_LISTENERS];
    void *arg[PIPELINE_MAX_LISTENERS];
    size_t n;
};

static void fan_out(void *arg, const struct commit_view *c)
{
    struct fan_out *f = arg;
    pthread_mutex_lock(&f->lock);
    if (f->primary != NULL)
        f->primary(f->primary_arg, c);
    for (size_t i = 0; i < f->n; i++)
        f->fn[i](f->arg[i], c);
    pthread_mutex_unlock(&f->lock);
}

void pipeline_set_listener(struct pipeline *p, commit_listener_fn fn, void *arg)
{
    pthread_mutex_lock(&p->listener_lock);
    if (p->listener == fan_out) {
        struct fan_out *f = p->listener_arg;
        pthread_mutex_lock(&f->lock);
        f->primary = fn;
        f->primary_arg = arg;
        pthread_mutex_unlock(&f->lock);
    } else {
        p->listener = fn;
        p->listener_arg = arg;
    }
    pthread_mutex_unlock(&p->listener_lock);
}

int pipeline_add_listener(struct pipeline *p, commit_listener_fn fn, void *arg)
{
    int rc = CANARY_OK;
    pthread_mutex_lock(&p->listener_lock);
    if (p->listener != fan_out) {
        struct fan_out *f = calloc(1, sizeof *f);
        if (f == NULL) {
            pthread_mutex_unlock(&p->listener_lock);
            return CANARY_ENOMEM;
        }
        pthread_mutex_init(&f->lock, NULL);
        f->primary = p->listener;
        f->primary_arg = p->listener_arg;
        p->listener_arg = f;
        p->listener = fan_out;
    }
    struct fan_out *f = p->listener_arg;
    pthread_mutex_lock(&f->lock);
    if (f->n == PIPELINE_MAX_LISTENERS) {
        rc = CANARY_ELIMIT;
    } else {
        f->fn[f->n] = fn;
        f->arg[f->n] = arg;
        f->n++;
    }
    pthread_mutex_unlock(&f->lock);
    pthread_mutex_unlock(&p->listener_lock);
    return rc;
}

void pipeline_remove_listener(struct pipeline *p, commit_listener_fn fn, void *arg)
{
    pthread_mutex_lock(&p->listener_lock);
    if (p->listener == fan_out) {
        struct fan_out *f = p->listener_arg;
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < f->n; i++) {
            if (f->fn[i] == fn && f->arg[i] == arg) {
                memmove(f->fn + i, f->fn + i + 1, (f->n - i - 1) * sizeof *f->fn);
                memmove(f->arg + i, f->arg + i + 1, (f->n - i - 1) * sizeof *f->arg);
                f->n--;
                break;
            }
        }
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&p->listener_lock);
}

/* The message that carries a job's records to the writer, or NULL if it has none. */
static struct shard_msg *records_msg(struct job *job, bool *failed)
{
    *failed = false;
    if (job->n_records == 0 && job->n_commands == 0)
        return NULL;
    struct shard_msg *m = calloc(1, sizeof *m);
    if (m == NULL) {
        *failed = true;
        return NULL;
    }
    m->kind = MSG_RECORDS;
    m->job = job;
    return m;
}

int pipeline_submit(struct pipeline *p, struct job *job)
{
    if (atomic_load(&p->stopping))
        return CANARY_ESTOPPED;
    job->result = 0;
    bool failed;
    struct shard_msg *rec = records_msg(job, &failed);
    if (failed)
        return CANARY_EBUSY;
    if (job->kind == JOB_RECORDS) {
        job->admitted = 0;
        if (rec == NULL) {
            job->done(job);
            return CANARY_OK;
        }
        atomic_store(&job->pending_parts, 1);
        queue_push(&p->writer_q, &rec->node);
        return CANARY_OK;
    }
    if (job->kind != JOB_INGEST) {
        struct shard_msg *m = calloc(1, sizeof *m);
        if (m == NULL) {
            free(rec);
            return CANARY_EBUSY;
        }
        m->kind = MSG_ACTION;
        m->job = job;
        job->admitted = 0;
        atomic_store(&job->pending_parts, rec != NULL ? 2 : 1);
        if (rec != NULL)
            queue_push(&p->writer_q, &rec->node);
        queue_push(&pipeline_owner(p, job->device)->inbox, &m->node);
        return CANARY_OK;
    }
    struct ingest_batch *b = &job->batch;
    size_t pending = 0;
    for (size_t i = 0; i < b->n; i++)
        pending += b->status[i] == READING_PENDING;
    if (pending == 0) {
        job->admitted = 0;
        if (rec == NULL) {
            job->done(job);
        } else {
            atomic_store(&job->pending_parts, 1);
            queue_push(&p->writer_q, &rec->node);
        }
        return CANARY_OK;
    }
    uint64_t before = atomic_fetch_add(&p->inflight, pending);
    if (before + pending > p->cfg.ingest.max_inflight) {
        atomic_fetch_sub(&p->inflight, pending);
        pipeline_count(p, PC_REQUESTS_OVERLOADED, 1);
        free(rec);
        return CANARY_EBUSY;
    }
    job->admitted = pending;
    /* Count per worker, then build one message per worker that has readings. */
    unsigned W = p->n_workers;
    size_t counts[256] = {0};
    uint8_t *owner = malloc(b->n);
    if (owner == NULL) {
        atomic_fetch_sub(&p->inflight, pending);
        free(rec);
        return CANARY_EBUSY;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (b->status[i] != READING_PENDING)
            continue;
        owner[i] = (uint8_t)(strmap_hash(b->readings[i].device) % W);
        counts[owner[i]]++;
    }
    struct shard_msg *msgs[256] = {0};
    int parts = 0;
    for (unsigned w = 0; w < W; w++) {
        if (counts[w] == 0)
            continue;
        msgs[w] = calloc(1, sizeof *msgs[w] + counts[w] * sizeof(uint32_t));
        if (msgs[w] == NULL) {
            for (unsigned k = 0; k < w; k++)
                free(msgs[k]);
            free(owner);
            free(rec);
            atomic_fetch_sub(&p->inflight, pending);
            return CANARY_EBUSY;
        }
        msgs[w]->kind = MSG_READINGS;
        msgs[w]->job = job;
        parts++;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (b->status[i] == READING_PENDING) {
            struct shard_msg *m = msgs[owner[i]];
            m->idx[m->n++] = (uint32_t)i;
        }
    }
    free(owner);
    atomic_store(&job->pending_parts, parts + (rec != NULL));
    if (rec != NULL)
        queue_push(&p->writer_q, &rec->node);
    for (unsigned w = 0; w < W; w++) {
        if (msgs[w] != NULL)
            queue_push(&p->workers[w].inbox, &msgs[w]->node);
    }
    return CANARY_OK;
}

void pipeline_stop(struct pipeline *p)
{
    if (p == NULL || atomic_exchange(&p->stopping, true))
        return;
    for (unsigned i = 0; i < p->n_workers; i++)
        queue_close(&p->workers[i].inbox);
    for (unsigned i = 0; i < p->n_workers; i++)
        pthread_join(p->workers[i].thread, NULL);
    queue_close(&p->writer_q);
    pthread_join(p->writer, NULL);
    stop_checkpointer(p);
    log_info("pipeline.stopped", "readings_accepted=%llu",
             (unsigned long long)atomic_load(&p->counters[PC_READINGS_ACCEPTED]));
}

void pipeline_free(struct pipeline *p)
{
    if (p == NULL)
        return;
    pipeline_stop(p);
    device_limit_free(p->device_limit); /* HTTP and MQTT, its users, have stopped */
    if (p->listener == fan_out) {
        struct fan_out *f = p->listener_arg;
        pthread_mutex_destroy(&f->lock);
        free(f);
    }
    free_workers(p, p->n_workers);
    store_close(p->checkpoint_store);
    pthread_mutex_destroy(&p->checkpoint_lock);
    pthread_mutex_destroy(&p->listener_lock);
    pthread_cond_destroy(&p->checkpoint_wake);
    store_close(p->store);
    queue_destroy(&p->writer_q);
    neighbours_free(p->neighbours);
    models_free(p->models); /* after the workers: their shards held references to sets */
    config_free(&p->cfg);
    free(p);
}

struct models *pipeline_models(struct pipeline *p)
{
    return p->models;
}

void pipeline_set_auth(struct pipeline *p, struct auth *a)
{
    atomic_store(&p->auth, a);
}

struct auth *pipeline_auth(struct pipeline *p)
{
    return atomic_load(&p->auth);
}

struct device_limit *pipeline_device_limit(struct pipeline *p)
{
    return p->device_limit;
}

unsigned lag_bucket(int64_t ms)
{
    if (ms < 1)
        return 0;
    unsigned b = (unsigned)(4.0 * log2((double)ms + 1.0));
    return b < LAG_BUCKETS ? b : LAG_BUCKETS - 1;
}

double lag_bucket_edge_ms(unsigned b)
{
    return exp2((double)(b + 1) / 4.0) - 1.0;
}

static double lag_quantile(const uint64_t *buckets, uint64_t total, double q)
{
    uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;
    for (unsigned b = 0; b < LAG_BUCKETS; b++) {
        seen += buckets[b];
        if (seen >= want && seen > 0)
            return round(lag_bucket_edge_ms(b) * 10) / 10;
    }
    return 0;
}

void pipeline_stats(struct pipeline *p, struct pipeline_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < PC_COUNT; i++)
        out->counters[i] = atomic_load_explicit(&p->counters[i], memory_order_relaxed);
    int64_t now = clock_wall_ms();
    out->inflight = atomic_load(&p->inflight);
    out->max_inflight = p->cfg.ingest.max_inflight;
    out->ingest_per_s = (double)time_ring_sum(&p->accepted_per_s, now, 10000, 1) / 10.0;
    out->anomalies_last_hour = time_ring_sum(&p->anomalies_per_min, now, 3600000, 0);
    out->store_ok = atomic_load(&p->store_ok);
    out->last_commit_ms = atomic_load(&p->last_commit_ms);
    out->commit_ms_avg = (double)atomic_load(&p->commit_us_avg) / 1000.0;
    out->workers = p->n_workers;
    uint64_t buckets[LAG_BUCKETS];
    for (unsigned b = 0; b < LAG_BUCKETS; b++) {
        buckets[b] = atomic_load_explicit(&p->lag_buckets[b], memory_order_relaxed);
        out->lag_count += buckets[b];
    }
    out->lag_p50_ms = lag_quantile(buckets, out->lag_count, 0.50);
    out->lag_p90_ms = lag_quantile(buckets, out->lag_count, 0.90);
    out->lag_p99_ms = lag_quantile(buckets, out->lag_count, 0.99);
    out->lag_max_ms = (double)atomic_load(&p->lag_max_ms);
}

bool pipeline_ready(struct pipeline *p)
{
    return atomic_load(&p->store_ok) && !atomic_load(&p->stopping);
}
