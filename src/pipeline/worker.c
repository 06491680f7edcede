/* worker.c — a detection worker thread: owns a shard (shard.h) of the devices, processes
 * the messages for them, and hands the results to the writer.
 *
 * Everything a worker touches per reading is its own, so the hot path takes no lock. Once
 * a second it also runs the shard's tick (stale/offline status, offline alerts, expiry of
 * alert machines); the transitions that produces go to the writer on their own. */
#include "pipeline/pipeline_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

#include <stdlib.h>

#define TICK_MS 1000

static uint64_t next_alert_id(void *arg)
{
    struct pipeline *p = arg;
    return atomic_fetch_add(&p->next_alert_id, 1);
}

/* The shard's alert transitions go into the message being processed. */
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

/* The shard's trust updates go into the message being processed, like its alerts. */
static void on_trust(void *arg, const struct shard_trust_update *u)
{
    struct worker *w = arg;
    if (w->out == NULL || shard_msg_add_trust(w->out, u) != 0)
        log_error("pipeline.trust_dropped", "device=%s reason=out_of_memory", u->row.device);
}

void worker_init(struct worker *w, struct pipeline *p, unsigned index, struct store *reader)
{
    w->p = p;
    w->index = index;
    queue_init(&w->inbox);
    struct shard_params sp = {&p->cfg, &p->detect, &p->decide, &p->n_devices, reader, p->models};
    shard_init(&w->shard, &sp, next_alert_id, p, on_transition, w);
    shard_set_trust_listener(&w->shard, on_trust, w);
}

void worker_free(struct worker *w)
{
    /* The writer's last findings may arrive after the thread's last look (shutdown). */
    struct queue_node *left = queue_take_all(&w->inbox, 0, NULL);
    while (left != NULL) {
        struct shard_msg *m = (struct shard_msg *)left;
        left = left->next;
        shard_msg_free(m);
    }
    shard_free(&w->shard);
    store_close(w->shard.params.reader);
    queue_destroy(&w->inbox);
}

static void process_readings(struct worker *w, struct shard_msg *m)
{
    struct pipeline *p = w->p;
    struct shard_counts c = {0};
    w->out = m;
    arena_init(&m->derived, 4096);
    w->shard.derived = &m->derived;
    shard_process(&w->shard, &m->job->batch, m->idx, m->n, &c);
    w->shard.derived = NULL;
    w->out = NULL;
    if (c.anomalies) {
        pipeline_count(p, PC_ANOMALIES, c.anomalies);
        time_ring_add(&p->anomalies_per_min, clock_wall_ms(), c.anomalies);
    }
    if (c.duplicates)
        pipeline_count(p, PC_READINGS_DUPLICATE, c.duplicates);
    if (c.unknown)
        pipeline_count(p, PC_READINGS_UNKNOWN_DEVICE, c.unknown);
    if (c.invalid)
        pipeline_count(p, PC_READINGS_INVALID, c.invalid);
    if (c.model_scored)
        pipeline_count(p, PC_MODEL_SCORED, c.model_scored);
    if (c.model_above)
        pipeline_count(p, PC_MODEL_ANOMALIES, c.model_above);
}

static void process_action(struct worker *w, struct shard_msg *m)
{
    struct job *job = m->job;
    w->out = m;
    if (job->kind == JOB_DEVICE_LINK) {
        shard_device_link(&w->shard, job->device, job->link, job->link_ms);
        w->out = NULL;
        return;
    }
    if (job->kind == JOB_RELEASE) {
        job->result =
            shard_device_release(&w->shard, job->device, job->actor, job->comment, clock_wall_ms());
        w->out = NULL;
        return;
    }
    job->result =
        shard_alert_action(&w->shard, job->device, job->alert_id, job->kind == JOB_ACKNOWLEDGE,
                           job->actor, job->comment, clock_wall_ms());
    w->out = NULL;
    if (job->result == 0 && m->n_alerts > 0)
        job->alert = m->alerts[m->n_alerts - 1];
}

/* The writer's neighbours check doubts some of this worker's devices. */
static void process_evidence(struct worker *w, struct shard_msg *m)
{
    w->out = m;
    for (size_t i = 0; i < m->n_evidence; i++) {
        const struct shard_evidence *e = &m->evidence[i];
        shard_device_evidence(&w->shard, e->device, e->metric, e->detail, e->ts_ms);
    }
    w->out = NULL;
}

static void tick(struct worker *w)
{
    struct shard_msg *m = calloc(1, sizeof *m);
    if (m == NULL)
        return;
    m->kind = MSG_ALERTS;
    w->out = m;
    shard_tick(&w->shard, clock_wall_ms());
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
            else if (m->kind == MSG_EVIDENCE)
                process_evidence(w, m);
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
            tick(w);
            next_tick += TICK_MS;
            if (next_tick < clock_mono_ms())
                next_tick = clock_mono_ms() + TICK_MS; /* fell behind: do not catch up */
        }
        if (closed)
            break;
    }
    return NULL;
}
