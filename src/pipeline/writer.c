/* writer.c — the writer thread: group commits, compaction and retention.
 *
 * Group commit: the writer takes every message the workers have produced and commits them
 * in one transaction (up to store.commit_max_readings readings), then completes their
 * jobs. Under light load a commit holds one request; under heavy load thousands, so the
 * cost of a commit (and its fsync) is shared. A failed commit is retried with exponential
 * backoff (100 ms .. 5 s) until it succeeds; only when canaryd is stopping and the store
 * has refused writes for STOP_GIVE_UP_MS are the remaining readings answered
 * "unavailable" (the client retries; nothing was acknowledged).
 *
 * Between commits the writer compacts the store's log every store.compact_interval_ms and
 * applies retention every PURGE_INTERVAL_MS. Compaction works in short steps (one log
 * partition each, a sixteenth of the devices, at most COMPACT_STEP readings) for at most
 * COMPACT_BUDGET_MS, yielding between steps to waiting commits and to shutdown: a commit
 * waits for one step at most. */
#include "pipeline/pipeline_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "notify/plan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMPACT_STEP      200000
#define COMPACT_BUDGET_MS 100
#define BACKLOG_YIELD_MAX 1000000

#define PURGE_INTERVAL_MS 600000
#define PURGE_STEP        10000
#define STOP_GIVE_UP_MS   10000
#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    5000

/* The commit being assembled: arrays reused from commit to commit. */
struct commit {
    const struct reading **readings;
    size_t n_readings, cap_readings;
    struct alert *alerts;
    size_t n_alerts, cap_alerts;
    struct alert_event *events;
    size_t n_events, cap_events;
    struct event_record *records;
    size_t n_records, cap_records;
    struct device_command *commands;
    size_t n_commands, cap_commands;
    struct device_link_change *links; /* for listeners only: the store keeps none */
    size_t n_links, cap_links;
    struct store_trust *trust; /* devices' trust rows, stored in the commit (tamper/) */
    bool *trust_keep;          /* ... and whether each keeps its stored reasons */
    size_t n_trust, cap_trust, cap_trust_keep;
    struct shard_evidence *evidence; /* the neighbours check's findings for the workers */
    size_t n_evidence, cap_evidence;
    /* Notifications planned for the commit's alert transitions (notify/plan.h). */
    struct store_notification *notes;
    size_t n_notes, cap_notes;
    struct store_notification *earlier; /* an alert's earlier rows (all-clear), NOTES_LOOKUP */
    struct notify_plan plan;
};

#define NOTES_LOOKUP 256 /* earlier rows of one alert examined for its all-clear */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return CANARY_OK;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *g = realloc(*arr, c * elem);
    if (g == NULL)
        return CANARY_ENOMEM;
    *arr = g;
    *cap = c;
    return CANARY_OK;
}

static size_t msg_readings(const struct shard_msg *m)
{
    return m->kind == MSG_READINGS ? m->n : 0;
}

/* Adds a message's output to the commit. */
static int commit_add(struct commit *c, const struct shard_msg *m)
{
    if (grow((void **)&c->readings, &c->cap_readings, c->n_readings + msg_readings(m),
             sizeof *c->readings) != 0 ||
        grow((void **)&c->alerts, &c->cap_alerts, c->n_alerts + m->n_alerts, sizeof *c->alerts) ||
        grow((void **)&c->events, &c->cap_events, c->n_events + m->n_events, sizeof *c->events))
        return CANARY_ENOMEM;
    if (m->kind == MSG_RECORDS) {
        const struct job *job = m->job;
        if (grow((void **)&c->records, &c->cap_records, c->n_records + job->n_records,
                 sizeof *c->records) != 0 ||
            grow((void **)&c->commands, &c->cap_commands, c->n_commands + job->n_commands,
                 sizeof *c->commands) != 0)
            return CANARY_ENOMEM;
        if (job->n_records > 0)
            memcpy(c->records + c->n_records, job->records, job->n_records * sizeof *c->records);
        c->n_records += job->n_records;
        if (job->n_commands > 0)
            memcpy(c->commands + c->n_commands, job->commands,
                   job->n_commands * sizeof *c->commands);
        c->n_commands += job->n_commands;
    }
    if (m->kind == MSG_ACTION && m->job->kind == JOB_DEVICE_LINK) {
        if (grow((void **)&c->links, &c->cap_links, c->n_links + 1, sizeof *c->links) != 0)
            return CANARY_ENOMEM;
        struct device_link_change *l = &c->links[c->n_links++];
        snprintf(l->device, sizeof l->device, "%s", m->job->device);
        l->link = m->job->link;
        l->link_ms = m->job->link_ms;
    }
    if (m->kind == MSG_READINGS) {
        const struct ingest_batch *b = &m->job->batch;
        for (size_t k = 0; k < m->n; k++) {
            if (b->status[m->idx[k]] == READING_PENDING)
                c->readings[c->n_readings++] = &b->readings[m->idx[k]];
        }
    }
    if (m->n_trust > 0) {
        size_t events = 0;
        for (size_t i = 0; i < m->n_trust; i++)
            events += m->trust[i].has_event;
        if (grow((void **)&c->trust, &c->cap_trust, c->n_trust + m->n_trust, sizeof *c->trust) ||
            grow((void **)&c->trust_keep, &c->cap_trust_keep, c->n_trust + m->n_trust,
                 sizeof *c->trust_keep) ||
            grow((void **)&c->records, &c->cap_records, c->n_records + events, sizeof *c->records))
            return CANARY_ENOMEM;
        for (size_t i = 0; i < m->n_trust; i++) {
            c->trust_keep[c->n_trust] = m->trust[i].keep_reasons;
            c->trust[c->n_trust++] = m->trust[i].row;
            if (m->trust[i].has_event)
                c->records[c->n_records++] = m->trust[i].event;
        }
    }
    if (m->n_alerts > 0) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(c->alerts + c->n_alerts, m->alerts, m->n_alerts * sizeof *m->alerts);
    c->n_alerts += m->n_alerts;
    if (m->n_events > 0)
        memcpy(c->events + c->n_events, m->events, m->n_events * sizeof *m->events);
    c->n_events += m->n_events;

    return CANARY_OK;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void notify_listener(struct pipeline *p, const struct commit *c)
{
    pthread_mutex_lock(&p->listener_lock);
    commit_listener_fn fn = p->listener;
    void *arg = p->listener_arg;
    pthread_mutex_unlock(&p->listener_lock);
    if (fn == NULL)
        return;
    struct commit_view v = {.readings = c->readings,
                            .n_readings = c->n_readings,
                            .alerts = c->alerts,
                            .n_alerts = c->n_alerts,
                            .events = c->events,
                            .n_events = c->n_events,
                            .links = c->links,
                            .n_links = c->n_links};
    fn(arg, &v);
}

/* The alert record a transition left in the commit (the last one with that id). */
static const struct alert *commit_alert(const struct commit *c, uint64_t id)
{
    for (size_t i = c->n_alerts; i-- > 0;) {
        if (c->alerts[i].id == id)
            return &c->alerts[i];
    }
    return NULL;
}

/* Room for `more` rows after the planned ones. */
static int notes_room(struct commit *c, size_t more)
{
    return grow((void **)&c->notes, &c->cap_notes, c->n_notes + more, sizeof *c->notes);
}

/* The all-clear of a resolved alert goes to whoever was told about it: its earlier rows in
 * the store, and rows planned earlier in this same commit (an alert that opened and
 * resolved between two commits). */
static void plan_all_clear(struct pipeline *p, struct commit *c, const struct alert *a, int64_t now)
{
    if (c->earlier == NULL) {
        c->earlier = malloc(NOTES_LOOKUP * sizeof *c->earlier);
        if (c->earlier == NULL)
            return;
    }
    char err[256];
    struct store_outbox_filter f = {.alert_id = a->id, .limit = NOTES_LOOKUP};
    int n = store_outbox_list(p->store, &f, c->earlier, err, sizeof err);
    if (n < 0) {
        log_warn("notify.all_clear_lookup_failed", "alert=%llu error=\"%s\"",
                 (unsigned long long)a->id, err);
        n = 0;
    }
    for (size_t i = 0; i < c->n_notes && (size_t)n < NOTES_LOOKUP; i++) {
        if (c->notes[i].alert_id == a->id) {
            c->earlier[n] = c->notes[i];
            snprintf(c->earlier[n].status, sizeof c->earlier[n].status, "pending");
            n++;
        }
    }
    if (n == 0 || notes_room(c, (size_t)n) != 0)
        return;
    c->n_notes += notify_plan_all_clear(&p->cfg, a, c->earlier, (size_t)n, now,
                                        c->notes + c->n_notes, (size_t)n);
}

/* Plans the outbox rows of the commit's alert transitions: step 0 of a new notification
 * cycle, the all-clear of a resolved alert. They are committed with the transitions, so an
 * alert is never stored without its notifications, nor notified without being stored. */
static void plan_notifications(struct pipeline *p, struct commit *c)
{
    c->n_notes = 0;
    if (p->cfg.n_routes == 0)
        return;
    int64_t now = clock_wall_ms();
    for (size_t e = 0; e < c->n_events; e++) {
        const struct alert_event *ev = &c->events[e];
        const struct alert *a = commit_alert(c, ev->alert_id);
        if (a == NULL)
            continue;
        if (notify_event_starts_cycle(ev->action)) {
            if (notes_room(c, NOTIFY_PLAN_MAX) != 0)
                return;
            c->n_notes += notify_plan_step(&p->cfg, a, ev->action, 0, ev->ts_ms, now, &c->plan,
                                           c->notes + c->n_notes, NOTIFY_PLAN_MAX, NULL);
        } else if (ev->action == ALERT_ACTION_RESOLVED) {
            plan_all_clear(p, c, a, now);
        }
    }
}

static void outbox_hook(struct pipeline *p)
{
    pthread_mutex_lock(&p->listener_lock);
    void (*fn)(void *) = p->outbox_hook;
    void *arg = p->outbox_hook_arg;
    pthread_mutex_unlock(&p->listener_lock);
    if (fn != NULL)
        fn(arg);
}

/* Commits until it succeeds. Returns false only when stopping and the store keeps
 * refusing. */
static bool commit_durably(struct pipeline *p, struct commit *c)
{
    struct store_batch batch = {.readings = c->readings,
                                .n_readings = c->n_readings,
                                .alerts = c->alerts,
                                .n_alerts = c->n_alerts,
                                .events = c->events,
                                .n_events = c->n_events,
                                .records = c->records,
                                .n_records = c->n_records,
                                .commands = c->commands,
                                .n_commands = c->n_commands,
                                .notifications = c->notes,
                                .n_notifications = c->n_notes,
                                .trust = c->trust, /* in the same transaction: a quarantine */
                                .trust_keep = c->trust_keep, /* and its event are one */
                                .n_trust = c->n_trust};
    int64_t backoff = BACKOFF_MIN_MS;
    int64_t failing_since = 0;
    for (;;) {
        char err[512];
        int64_t t0 = clock_mono_ns();
        int rc = store_write(p->store, &batch, err, sizeof err);
        if (rc == 0) {
            int64_t us = (clock_mono_ns() - t0) / 1000;
            uint64_t avg = atomic_load(&p->commit_us_avg);
            atomic_store(&p->commit_us_avg, avg == 0 ? (uint64_t)us : (avg * 7 + (uint64_t)us) / 8);
            atomic_store(&p->last_commit_ms, clock_wall_ms());
            pipeline_count(p, PC_COMMITS, 1);
            if (c->n_records > 0)
                pipeline_count(p, PC_EVENTS, c->n_records);
            notify_listener(p, c);
            if (c->n_notes > 0) {
                pipeline_count(p, PC_NOTIFY_QUEUED, c->n_notes);
                outbox_hook(p);
            }
            if (!atomic_load(&p->store_ok)) {
                atomic_store(&p->store_ok, true);
                log_info("store.recovered", "readings=%zu", c->n_readings);
            }
            return true;
        }
        pipeline_count(p, PC_COMMIT_FAILURES, 1);
        if (atomic_load(&p->store_ok)) {
            atomic_store(&p->store_ok, false);
            log_error("store.commit_failed", "readings=%zu error=\"%s\" retry=backoff",
                      c->n_readings, err);
        }
        int64_t now = clock_mono_ms();
        if (failing_since == 0)
            failing_since = now;
        if (atomic_load(&p->stopping) && now - failing_since > STOP_GIVE_UP_MS) {
            log_error("store.gave_up", "readings=%zu reason=stopping", c->n_readings);
            return false;
        }
        sleep_ms(backoff + rand() % (backoff / 2 + 1)); /* jitter */
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Completes the messages of a commit (stored, or given up on). */
static void complete(struct pipeline *p, struct shard_msg *list, bool stored)
{
    uint64_t accepted = 0, opened = 0;
    int64_t now_ms = clock_wall_ms();
    uint64_t lag_counts[LAG_BUCKETS] = {0}; /* added to the shared histogram once */
    int64_t lag_max = INT64_MIN;
    while (list != NULL) {
        struct shard_msg *m = list;
        list = (struct shard_msg *)m->node.next;
        for (size_t e = 0; stored && e < m->n_events; e++)
            opened += m->events[e].action == ALERT_ACTION_OPENED;
        struct job *job = m->job;
        if (m->kind == MSG_READINGS) {
            struct ingest_batch *b = &job->batch;
            for (size_t k = 0; k < m->n; k++) {
                size_t i = m->idx[k];
                if (b->status[i] != READING_PENDING)
                    continue;
                b->status[i] = stored ? READING_ACCEPTED : READING_UNAVAILABLE;
                if (stored) {
                    int64_t lag = now_ms - b->readings[i].ts_ms;
                    lag_counts[lag_bucket(lag)]++;
                    lag_max = lag > lag_max ? lag : lag_max;
                }
                if (!stored) {
                    b->errors[i].field = "";
                    b->errors[i].reason = "canaryd is stopping and the store refuses writes";
                }
                accepted += stored;
            }
        } else if ((m->kind == MSG_ACTION || m->kind == MSG_RECORDS) && !stored) {
            job->result = CANARY_EIO;
        }
        shard_msg_free(m);
        if (job != NULL)
            pipeline_part_done(p, job);
    }
    for (unsigned k = 0; k < LAG_BUCKETS && accepted; k++) {
        if (lag_counts[k])
            atomic_fetch_add_explicit(&p->lag_buckets[k], lag_counts[k], memory_order_relaxed);
    }
    if (lag_max > atomic_load_explicit(&p->lag_max_ms, memory_order_relaxed))
        atomic_store_explicit(&p->lag_max_ms, lag_max, memory_order_relaxed);
    if (accepted) {
        pipeline_count(p, PC_READINGS_ACCEPTED, accepted);
        time_ring_add(&p->accepted_per_s, clock_wall_ms(), accepted);
    }
    if (opened)
        pipeline_count(p, PC_ALERTS_OPENED, opened);
}

/* The cross-device tamper check (neighbours.c) on the commit's readings, before they are
 * stored (a doubted value is stored with FLAG_TAMPER). The readings are the jobs', which no
 * other thread touches until the commit completes them. */
static void check_neighbours(struct pipeline *p, struct commit *c)
{
    c->n_evidence = 0;
    if (p->neighbours == NULL)
        return;
    int64_t now = clock_wall_ms();
    for (size_t i = 0; i < c->n_readings; i++) {
        struct shard_evidence found[4];
        size_t n = neighbours_observe(p->neighbours, &p->cfg.tamper, p->store,
                                      (struct reading *)c->readings[i], now, found, 4);
        if (n == 0 || grow((void **)&c->evidence, &c->cap_evidence, c->n_evidence + n,
                           sizeof *c->evidence) != 0)
            continue;
        memcpy(c->evidence + c->n_evidence, found, n * sizeof *found);
        c->n_evidence += n;
    }
}

/* Hands the neighbours check's findings to the devices' owner workers (MSG_EVIDENCE). */
static void send_evidence(struct pipeline *p, struct commit *c)
{
    for (size_t i = 0; i < c->n_evidence && !atomic_load(&p->stopping); i++) {
        struct shard_msg *m = calloc(1, sizeof *m);
        struct shard_evidence *e = m ? malloc(sizeof *e) : NULL;
        if (e == NULL) {
            free(m);
            log_error("pipeline.evidence_dropped", "device=%s reason=out_of_memory",
                      c->evidence[i].device);
            continue;
        }
        *e = c->evidence[i];
        m->kind = MSG_EVIDENCE;
        m->evidence = e;
        m->n_evidence = 1;
        queue_push(&pipeline_owner(p, e->device)->inbox, &m->node);
    }
}

/* Commits the pending messages in groups of at most commit_max_readings readings. */
static void commit_pending(struct pipeline *p, struct commit *c, struct shard_msg **pending)
{
    size_t max = p->cfg.store.commit_max_readings;
    while (*pending != NULL) {
        c->n_readings = c->n_alerts = c->n_events = c->n_records = c->n_commands = 0;
        c->n_links = 0;
        c->n_trust = 0;
        struct shard_msg *group = *pending, *last = NULL, *m = *pending;
        size_t readings = 0;
        while (m != NULL && (last == NULL || readings + msg_readings(m) <= max)) {
            if (commit_add(c, m) != 0)
                break; /* out of memory: commit what fits, the rest next round */
            readings += msg_readings(m);
            last = m;
            m = (struct shard_msg *)m->node.next;
        }
        if (last == NULL) {
            sleep_ms(BACKOFF_MIN_MS); /* not even one message fits in memory: wait */
            continue;
        }
        *pending = m;
        last->node.next = NULL;
        plan_notifications(p, c);
        check_neighbours(p, c);
        bool stored = commit_durably(p, c);
        if (stored)
            send_evidence(p, c);
        complete(p, group, stored);
    }
}

/* A compaction round: the readings that were in the log when it began, folded in steps. */
struct compaction {
    bool active;
    uint64_t backlog; /* readings of the round not folded yet */
    bool catching_up; /* the backlog passed BACKLOG_YIELD_MAX: commits wait */
};

/* Takes compaction steps until the round is done, the time budget is spent, or canaryd is
 * stopping (the log is durable as it is, so a backlog never holds up a shutdown). A round
 * covers what the log held when it began (measured once: the sum is a scan of the log);
 * readings committed since wait for the next round. While the backlog is small, waiting
 * commits go first; once it passes BACKLOG_YIELD_MAX readings, compaction keeps the writer
 * until it is back under half of that — commits then wait, admission fills up, and ingest
 * answers 503: a sustained overload becomes back-pressure instead of a log that grows
 * without end. Returns true when the round goes on: the writer then takes the next step
 * as soon as it has no commit to do. */
static bool compact(struct pipeline *p, struct compaction *k)
{
    int64_t deadline = clock_mono_ms() + COMPACT_BUDGET_MS;
    char err[512];
    if (!k->active) {
        if (store_log_backlog(p->store, &k->backlog, err, sizeof err) != 0)
            k->backlog = UINT64_MAX; /* unknown: compact until a step finds the log empty */
        k->catching_up = k->backlog > BACKLOG_YIELD_MAX;
        k->active = true;
    }
    for (;;) {
        size_t moved = 0;
        int rc = store_compact(p->store, COMPACT_STEP, &moved, err, sizeof err);
        if (rc != 0) {
            log_warn("store.compact_failed", "error=\"%s\"", err);
            k->active = false;
            return false;
        }
        pipeline_count(p, PC_COMPACTED_ROWS, moved);
        if (moved == 0 || moved >= k->backlog) {
            k->active = false;
            return false;
        }
        k->backlog -= moved;
        if (k->catching_up && k->backlog < BACKLOG_YIELD_MAX / 2)
            k->catching_up = false;
        if ((!k->catching_up && queue_length(&p->writer_q) > 0) || clock_mono_ms() >= deadline ||
            atomic_load(&p->stopping))
            return true;
    }
}

/* Days of retention as a cut-off time (0: keep forever). */
static int64_t cutoff(int64_t now, unsigned days)
{
    return days ? now - (int64_t)days * 86400000 : 0;
}

static void purge(struct pipeline *p)
{
    int64_t now = clock_wall_ms();
    const struct canary_config *c = &p->cfg;
    int64_t readings_before = cutoff(now, c->store.retention_readings_days);
    int64_t alerts_before = cutoff(now, c->store.retention_alerts_days);
    /* The audit log has its own retention; sessions past their lifetime go too (one is also
     * deleted when its user next logs in; a user who never returns would leave it). */
    int64_t audit_before = cutoff(now, c->store.retention_audit_days);
    size_t total = 0;
    for (;;) {
        size_t data = 0, access = 0;
        char err[512];
        bool data_on = readings_before != 0 || alerts_before != 0;
        if ((data_on && store_purge(p->store, readings_before, alerts_before, PURGE_STEP, &data,
                                    err, sizeof err) != 0) ||
            store_purge_access(p->store, audit_before, now, PURGE_STEP, &access, err, sizeof err) !=
                0) {
            log_warn("store.purge_failed", "error=\"%s\"", err);
            break;
        }
        total += data + access;
        if ((data < PURGE_STEP && access < PURGE_STEP) || queue_length(&p->writer_q) > 0)
            break;
    }
    if (total > 0)
        log_info("store.purged", "rows=%zu", total);
}

void *writer_main(void *arg)
{
    struct pipeline *p = arg;
    struct commit c;
    memset(&c, 0, sizeof c);
    struct compaction round = {0};
    int64_t interval = p->cfg.store.compact_interval_ms;
    int64_t next_compact = clock_mono_ms() + interval;
    int64_t next_purge = clock_mono_ms() + 60000;
    for (;;) {
        int64_t wait = next_compact - clock_mono_ms();
        bool closed = false;
        struct shard_msg *pending =
            (struct shard_msg *)queue_take_all(&p->writer_q, wait > 0 ? wait : 0, &closed);
        commit_pending(p, &c, &pending);
        int64_t now = clock_mono_ms();
        if (now >= next_compact) {
            bool more = compact(p, &round);
            next_compact = clock_mono_ms() + (more ? 0 : interval);
        }
        if (now >= next_purge) {
            purge(p);
            next_purge = clock_mono_ms() + PURGE_INTERVAL_MS;
        }
        if (closed)
            break;
    }
    free(c.readings);
    free(c.alerts);
    free(c.events);
    free(c.records);
    free(c.commands);
    free(c.links);
    free(c.trust);
    free(c.trust_keep);
    free(c.evidence);
    free(c.notes);
    free(c.earlier);
    return NULL;
}

/* The checkpointer: copies the write-ahead log into the database file every
 * CHECKPOINT_INTERVAL_MS on its own handle. SQLite would otherwise checkpoint inside a
 * commit every few thousand pages, and every request waiting on that commit would wait for
 * the copy too; a PASSIVE checkpoint from another connection runs beside the writer. When
 * the log passes RESTART_PAGES (the passive ones never quite catch up with a steady stream
 * of commits), a RESTART checkpoint lets the log start over: it holds commits only while it
 * copies the last few pages. */
#define CHECKPOINT_INTERVAL_MS 250
#define RESTART_PAGES          16384 /* 64 MB of 4 KB pages */

void *checkpointer_main(void *arg)
{
    struct pipeline *p = arg;
    bool warned = false;
    int wal_pages = 0;
    pthread_mutex_lock(&p->checkpoint_lock);
    while (!p->checkpoint_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += CHECKPOINT_INTERVAL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&p->checkpoint_wake, &p->checkpoint_lock, &ts);
        pthread_mutex_unlock(&p->checkpoint_lock);
        char err[512];
        int rc = store_checkpoint(p->checkpoint_store, false, &wal_pages, err, sizeof err);
        if (rc == 0 && wal_pages > RESTART_PAGES)
            rc = store_checkpoint(p->checkpoint_store, true, &wal_pages, err, sizeof err);
        if (rc != 0 && !warned)
            log_warn("store.checkpoint_failed", "error=\"%s\"", err);
        warned = rc != 0;
        pthread_mutex_lock(&p->checkpoint_lock);
    }
    pthread_mutex_unlock(&p->checkpoint_lock);
    char err[512];
    store_checkpoint(p->checkpoint_store, false, &wal_pages, err, sizeof err);
    return NULL;
}
