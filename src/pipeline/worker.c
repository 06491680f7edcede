/* worker.c — a detection worker: owns a share of the devices and runs, per reading,
 * duplicate check -> detect -> decide, then hands the results to the writer.
 *
 * Everything a worker touches per reading is its own (the device table, detector state,
 * alert machines), so the hot path takes no lock. Once a second the worker also looks at
 * its devices' timing: stale/offline status, offline alerts, and expiry of alert machines
 * that have nothing left to do. */
#include "pipeline/pipeline_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metric.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 1000

static uint64_t next_alert_id(void *arg)
{
    struct pipeline *p = arg;
    return atomic_fetch_add(&p->next_alert_id, 1);
}

/* decide's transitions go into the message being processed. */
static void on_transition(void *arg, const struct alert *a, const struct alert_event *ev)
{
    struct worker *w = arg;
    if (w->out == NULL || shard_msg_add_alert(w->out, a, ev) != 0) {
        log_error("pipeline.alert_dropped", "device=%s alert=%llu reason=out_of_memory", a->device,
                  (unsigned long long)a->id);
        return;
    }
    if (ev != NULL && ev->action == ALERT_ACTION_OPENED)
        log_info("alert.opened", "id=%llu device=%s metric=%s kind=%s severity=%s",
                 (unsigned long long)a->id, a->device, a->metric, alert_kind_name(a->kind),
                 alert_severity_name(a->severity));
}

static void init_decide_ctx(struct worker *w)
{
    w->decide.params = &w->p->decide;
    w->decide.next_alert_id = next_alert_id;
    w->decide.id_arg = w->p;
    w->decide.emit = on_transition;
    w->decide.emit_arg = w;
}

static enum device_status status_at(const struct pipeline *p, int64_t last_recv_ms, int64_t now_ms)
{
    if (last_recv_ms == 0)
        return DEVICE_NEVER;
    int64_t age = now_ms - last_recv_ms;
    if (age >= (int64_t)p->cfg.devices.offline_after_s * 1000)
        return DEVICE_OFFLINE;
    if (age >= (int64_t)p->cfg.devices.stale_after_s * 1000)
        return DEVICE_STALE;
    return DEVICE_ONLINE;
}

static struct worker_device *new_device(struct worker *w, const char *id)
{
    struct pipeline *p = w->p;
    if (atomic_fetch_add(&p->n_devices, 1) >= p->cfg.devices.max_devices) {
        atomic_fetch_sub(&p->n_devices, 1);
        return NULL;
    }
    struct worker_device *d = calloc(1, sizeof *d);
    if (d == NULL || strmap_put(&w->devices, id, d) != 0) {
        free(d);
        atomic_fetch_sub(&p->n_devices, 1);
        return NULL;
    }
    snprintf(d->id, sizeof d->id, "%s", id);
    return d;
}

int worker_adopt_device(struct worker *w, const struct store_device *sd, int64_t now_ms)
{
    if (w->decide.params == NULL)
        init_decide_ctx(w);
    struct worker_device *d = strmap_get(&w->devices, sd->id);
    if (d == NULL)
        d = new_device(w, sd->id);
    if (d == NULL)
        return CANARY_ENOMEM;
    d->window = sd->window;
    d->max_ts_ms = sd->max_ts_ms;
    d->last_recv_ms = sd->last_seen_ms;
    d->status = status_at(w->p, d->last_recv_ms, now_ms);
    return CANARY_OK;
}

int worker_adopt_alert(struct worker *w, const struct alert *a, int64_t now_ms)
{
    if (w->decide.params == NULL)
        init_decide_ctx(w);
    struct worker_device *d = strmap_get(&w->devices, a->device);
    if (d == NULL)
        d = new_device(w, a->device);
    if (d == NULL)
        return CANARY_ENOMEM;
    return decide_restore(&d->decide, a, now_ms);
}

static void free_device(void *arg, const char *key, void *value)
{
    (void)arg;
    (void)key;
    struct worker_device *d = value;
    decide_device_free(&d->decide);
    free(d->series);
    free(d);
}

void worker_free_devices(struct worker *w)
{
    strmap_each(&w->devices, free_device, NULL);
    strmap_free(&w->devices);
}

/* The device of a reading: known, or created when auto-registration allows it (or the
 * store knows it: created through the API). NULL: refused, with the reason in the batch. */
static struct worker_device *device_for(struct worker *w, struct ingest_batch *b, size_t i)
{
    const char *id = b->readings[i].device;
    struct worker_device *d = strmap_get(&w->devices, id);
    if (d != NULL)
        return d;
    struct pipeline *p = w->p;
    if (!p->cfg.ingest.auto_register) {
        struct store_device sd;
        char err[256];
        int rc = store_device_get(w->reader, id, &sd, err, sizeof err);
        if (rc != 0) {
            if (rc != CANARY_ENOTFOUND)
                log_error("pipeline.device_lookup_failed", "device=%s error=\"%s\"", id, err);
            b->status[i] = READING_UNKNOWN_DEVICE;
            b->errors[i].field = "device";
            b->errors[i].reason = "unknown device: register it first (ingest.auto_register is "
                                  "off)";
            return NULL;
        }
    }
    d = new_device(w, id);
    if (d == NULL) {
        b->status[i] = READING_UNKNOWN_DEVICE;
        b->errors[i].field = "device";
        b->errors[i].reason = "canaryd tracks as many devices as devices.max_devices allows";
    }
    return d;
}

static struct device_series *series_for(struct worker *w, struct worker_device *d,
                                        const char *metric)
{
    for (uint32_t i = 0; i < d->n_series; i++) {
        if (strcmp(d->series[i].metric, metric) == 0)
            return &d->series[i];
    }
    if (d->n_series == d->cap_series) {
        uint32_t cap = d->cap_series ? d->cap_series * 2 : 4;
        struct device_series *grown = realloc(d->series, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        d->series = grown;
        d->cap_series = cap;
    }
    struct device_series *s = &d->series[d->n_series++];
    snprintf(s->metric, sizeof s->metric, "%s", metric);
    struct metric_limits limits;
    config_metric_limits(&w->p->cfg, d->id, metric, &limits);
    series_init(&s->state, metric_info_or_generic(metric), &limits);
    return s;
}

/* How many of the reading's metrics the device has not reported before. */
static uint32_t new_metrics(const struct worker_device *d, const struct reading *r)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < r->n_values; k++) {
        bool known = false;
        for (uint32_t i = 0; i < d->n_series && !known; i++)
            known = strcmp(d->series[i].metric, r->values[k].name) == 0;
        n += !known;
    }
    return n;
}

/* Duplicate check; on a fresh reading records it as seen. Returns false for a duplicate. */
static bool fresh(struct worker *w, struct worker_device *d, struct ingest_batch *b, size_t i)
{
    const struct reading *r = &b->readings[i];
    char reason[200];
    if (r->has_seq) {
        unsigned window = w->p->cfg.ingest.seq_window;
        if (!seq_window_fresh(&d->window, r->seq, window)) {
            bool too_old = d->window.started && r->seq < d->window.high &&
                           d->window.high - r->seq >= (window ? window : 1);
            if (too_old)
                snprintf(reason, sizeof reason,
                         "seq %llu is older than the replay window (newest %llu, window %u)",
                         (unsigned long long)r->seq, (unsigned long long)d->window.high, window);
            else
                snprintf(reason, sizeof reason, "seq %llu was already received from this device",
                         (unsigned long long)r->seq);
            ingest_batch_reject(b, i, "seq", "%s", reason);
            b->status[i] = READING_DUPLICATE;
            return false;
        }
        seq_window_mark(&d->window, r->seq);
    } else if (r->ts_ms <= d->max_ts_ms) {
        ingest_batch_reject(b, i, "ts",
                            "a reading without seq must be newer than the device's newest "
                            "(%lld ms): already received?",
                            (long long)d->max_ts_ms);
        b->status[i] = READING_DUPLICATE;
        return false;
    }
    return true;
}

static void process_reading(struct worker *w, struct ingest_batch *b, size_t i, uint64_t *anomalies)
{
    struct pipeline *p = w->p;
    struct reading *r = &b->readings[i];
    struct worker_device *d = device_for(w, b, i);
    if (d == NULL)
        return;
    if (d->n_series + new_metrics(d, r) > p->cfg.devices.max_metrics) {
        ingest_batch_reject(b, i, "values",
                            "the device would report more than %u distinct metrics (limit "
                            "devices.max_metrics)",
                            p->cfg.devices.max_metrics);
        return;
    }
    if (!fresh(w, d, b, i))
        return;
    if (r->ts_ms > d->max_ts_ms)
        d->max_ts_ms = r->ts_ms;
    d->last_recv_ms = r->recv_ms;
    d->status = DEVICE_ONLINE;
    uint32_t gap = gap_update(&d->gap, &p->detect, r->ts_ms);
    for (uint32_t k = 0; k < r->n_values; k++) {
        struct device_series *s = series_for(w, d, r->values[k].name);
        if (s == NULL) {
            ingest_batch_reject(b, i, "values", "out of memory");
            return;
        }
        detect_value(&s->state, &p->detect, &r->values[k], r->ts_ms);
        r->values[k].flags |= gap;
        if (r->values[k].flags & FLAG_ANOMALY)
            (*anomalies)++;
    }
    if (decide_reading(&w->decide, &d->decide, d->id, r, d->series, d->n_series) != 0)
        log_error("pipeline.decide_failed", "device=%s reason=out_of_memory", d->id);
}

static void process_readings(struct worker *w, struct shard_msg *m)
{
    struct pipeline *p = w->p;
    struct ingest_batch *b = &m->job->batch;
    int64_t now = clock_wall_ms();
    uint64_t anomalies = 0, duplicates = 0, unknown = 0, invalid = 0;
    w->out = m;
    for (size_t k = 0; k < m->n; k++) {
        size_t i = m->idx[k];
        process_reading(w, b, i, &anomalies);
        duplicates += b->status[i] == READING_DUPLICATE;
        unknown += b->status[i] == READING_UNKNOWN_DEVICE;
        invalid += b->status[i] == READING_INVALID;
    }
    w->out = NULL;
    if (anomalies) {
        pipeline_count(p, PC_ANOMALIES, anomalies);
        time_ring_add(&p->anomalies_per_min, now, anomalies);
    }
    if (duplicates)
        pipeline_count(p, PC_READINGS_DUPLICATE, duplicates);
    if (unknown)
        pipeline_count(p, PC_READINGS_UNKNOWN_DEVICE, unknown);
    if (invalid)
        pipeline_count(p, PC_READINGS_INVALID, invalid);
}

static void process_action(struct worker *w, struct shard_msg *m)
{
    struct job *job = m->job;
    struct worker_device *d = strmap_get(&w->devices, job->device);
    int64_t now = clock_wall_ms();
    w->out = m;
    if (d == NULL)
        job->result = CANARY_ENOTFOUND;
    else if (job->kind == JOB_ACKNOWLEDGE)
        job->result = decide_acknowledge(&w->decide, &d->decide, job->alert_id, job->actor,
                                         job->comment, now);
    else
        job->result =
            decide_resolve(&w->decide, &d->decide, job->alert_id, job->actor, job->comment, now);
    w->out = NULL;
    if (job->result == 0 && m->n_alerts > 0)
        job->alert = m->alerts[m->n_alerts - 1];
}

struct tick_ctx {
    struct worker *w;
    int64_t now_ms;
};

static void tick_device(void *arg, const char *key, void *value)
{
    (void)key;
    struct tick_ctx *t = arg;
    struct worker_device *d = value;
    enum device_status st = status_at(t->w->p, d->last_recv_ms, t->now_ms);
    if (st != d->status) {
        if (st == DEVICE_OFFLINE &&
            decide_offline(&t->w->decide, &d->decide, d->id, true, d->last_recv_ms, t->now_ms) != 0)
            log_error("pipeline.decide_failed", "device=%s reason=out_of_memory", d->id);
        d->status = st;
    }
    decide_expire(&t->w->decide, &d->decide, t->now_ms);
}

/* Once a second: device status from timing, offline alerts, expiry of old machines. */
static void tick(struct worker *w, int64_t now_ms)
{
    struct shard_msg *m = calloc(1, sizeof *m);
    if (m == NULL)
        return;
    m->kind = MSG_ALERTS;
    w->out = m;
    struct tick_ctx t = {w, now_ms};
    strmap_each(&w->devices, tick_device, &t);
    w->out = NULL;
    if (m->n_alerts > 0)
        queue_push(&w->p->writer_q, &m->node);
    else
        shard_msg_free(m);
}

void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pipeline *p = w->p;
    if (w->decide.params == NULL)
        init_decide_ctx(w);
    int64_t next_tick = clock_mono_ms() + TICK_MS;
    for (;;) {
        int64_t wait = next_tick - clock_mono_ms();
        bool closed = false;
        struct queue_node *n = queue_take_all(&w->inbox, wait > 0 ? wait : 0, &closed);
        while (n != NULL) {
            struct shard_msg *m = (struct shard_msg *)n;
            n = n->next;
            if (m->kind == MSG_READINGS)
                process_readings(w, m);
            else
                process_action(w, m);
            if (m->kind == MSG_ACTION && m->job->result != 0) {
                struct job *job = m->job;
                shard_msg_free(m);
                pipeline_part_done(p, job);
            } else {
                queue_push(&p->writer_q, &m->node);
            }
        }
        if (clock_mono_ms() >= next_tick) {
            tick(w, clock_wall_ms());
            next_tick += TICK_MS;
            if (next_tick < clock_mono_ms())
                next_tick = clock_mono_ms() + TICK_MS; /* fell behind: do not catch up */
        }
        if (closed)
            break;
    }
    return NULL;
}
