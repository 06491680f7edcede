/* notifier.c — delivery threads and the escalation scheduler over the outbox; see
 * notifier.h for the contract. */
#include "notify/notifier.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "notify/channels.h"
#include "notify/compose.h"
#include "notify/llm.h"
#include "notify/plan.h"
#include "store/store.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_POLL_MS      1000 /* an idle thread looks at the outbox at least this often */
#define STORE_RETRY_MS    5000 /* the store failed: try the row again this much later */
#define SCHEDULER_TICK_MS 1000
#define OPEN_ALERTS_MAX   512 /* open alerts examined per scheduler tick */
#define LATEST_ROWS       16  /* an alert's newest rows examined for its latest step */
#define RATE_WINDOW_MS    3600000LL
#define EXPL_CACHE                                                                                 \
    32 /* explanations kept, so every recipient of a step reads the                                \
          same text and an LLM is asked once per step */

/* The channel classes a thread can serve: one provider each. */
static const unsigned channel_classes[] = {
    STORE_CHANNEL_SMS | STORE_CHANNEL_WHATSAPP | STORE_CHANNEL_VOICE,
    STORE_CHANNEL_WEBHOOK,
    STORE_CHANNEL_EMAIL,
};
#define N_CLASSES (sizeof channel_classes / sizeof channel_classes[0])

struct expl_entry {
    char key[STORE_NOTIFY_KEY_LEN]; /* the row's dedupe key without recipient and channel */
    struct explanation expl;
    bool ready; /* false: another thread is writing it */
};

struct delivery_thread {
    struct notifier *n;
    unsigned index;
    pthread_t thread;
    bool started;
    unsigned channel_mask;
    struct store *store;
    struct notify_client *client;
    struct llm_writer *llm;        /* NULL: templates only (llm.provider = off) */
    struct notify_config channels; /* own copy: the webhook URL is set per row */
    struct rng rng;
    struct store_notification row;
    struct composed comp;
};

struct notifier {
    struct canary_config cfg;
    struct pipeline *p;
    struct delivery_thread *threads;
    unsigned n_threads;
    pthread_t scheduler;
    bool scheduler_started;
    struct store *sched_store;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    uint64_t kicks; /* under lock */
    bool stopping;  /* under lock */
    pthread_mutex_t cache_lock;
    pthread_cond_t cache_filled;
    struct expl_entry cache[EXPL_CACHE];
    unsigned cache_next;
};

void notifier_kick(struct notifier *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->lock);
    n->kicks++;
    pthread_cond_broadcast(&n->wake);
    pthread_mutex_unlock(&n->lock);
}

static void kick_hook(void *arg)
{
    notifier_kick(arg);
}

/* Waits until kicked, stopping, or wait_ms passed. Returns false when stopping. */
static bool wait_for_work(struct notifier *n, uint64_t *seen, int64_t wait_ms)
{
    pthread_mutex_lock(&n->lock);
    if (!n->stopping && n->kicks == *seen && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&n->wake, &n->lock, &ts);
    }
    *seen = n->kicks;
    bool go_on = !n->stopping;
    pthread_mutex_unlock(&n->lock);
    return go_on;
}

static bool stopping(struct notifier *n)
{
    pthread_mutex_lock(&n->lock);
    bool s = n->stopping;
    pthread_mutex_unlock(&n->lock);
    return s;
}

/* ---------------------------------------------------------------- explanations */

/* The part of a dedupe key shared by every target of one step ("a42/c1763.../alert/s0"). */
static void step_key(const struct store_notification *row, char *out, size_t len)
{
    snprintf(out, len, "%s", row->dedupe_key);
    for (int cut = 0; cut < 2; cut++) {
        char *slash = strrchr(out, '/');
        if (slash != NULL)
            *slash = '\0';
    }
}

/* The explanation of a step, when another thread has written it. On a miss the key is
 * claimed (the caller writes it and calls cache_put); a thread that finds it claimed waits
 * for it, at most wait_ms, so one step's recipients read one text and an LLM is asked once. */
static bool cache_get(struct notifier *n, const char *key, struct explanation *out, int64_t wait_ms)
{
    int64_t deadline = clock_mono_ms() + wait_ms;
    pthread_mutex_lock(&n->cache_lock);
    for (;;) {
        struct expl_entry *e = NULL;
        for (unsigned i = 0; i < EXPL_CACHE && e == NULL; i++) {
            if (strcmp(n->cache[i].key, key) == 0)
                e = &n->cache[i];
        }
        if (e != NULL && e->ready) {
            *out = e->expl;
            pthread_mutex_unlock(&n->cache_lock);
            return true;
        }
        int64_t left = deadline - clock_mono_ms();
        if (e == NULL || left <= 0) {
            if (e == NULL) { /* claim it */
                e = &n->cache[n->cache_next++ % EXPL_CACHE];
                snprintf(e->key, sizeof e->key, "%s", key);
                e->ready = false;
            }
            pthread_mutex_unlock(&n->cache_lock);
            return false;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&n->cache_filled, &n->cache_lock, &ts);
    }
}

static void cache_put(struct notifier *n, const char *key, const struct explanation *e)
{
    pthread_mutex_lock(&n->cache_lock);
    struct expl_entry *slot = NULL;
    for (unsigned i = 0; i < EXPL_CACHE && slot == NULL; i++) {
        if (strcmp(n->cache[i].key, key) == 0)
            slot = &n->cache[i];
    }
    if (slot == NULL) {
        slot = &n->cache[n->cache_next++ % EXPL_CACHE];
        snprintf(slot->key, sizeof slot->key, "%s", key);
    }
    slot->expl = *e;
    slot->ready = true;
    pthread_cond_broadcast(&n->cache_filled);
    pthread_mutex_unlock(&n->cache_lock);
}

static void explain_row(struct delivery_thread *t, const struct store_notification *row)
{
    struct composed *c = &t->comp;
    char key[STORE_NOTIFY_KEY_LEN];
    step_key(row, key, sizeof key);
    int64_t wait = t->llm != NULL ? (int64_t)t->n->cfg.llm.timeout_ms + 1000 : 0;
    if (key[0] != '\0' && cache_get(t->n, key, &c->expl, wait))
        return;
    bool all_clear = strcmp(row->kind, "all_clear") == 0;
    explain_with(&c->ctx, all_clear, t->llm ? llm_write : NULL, t->llm, 0, &c->expl);
    if (t->llm != NULL && c->expl.source != EXPLAIN_SOURCE_WRITER) {
        pipeline_count(t->n->p, PC_NOTIFY_LLM_FALLBACKS, 1);
        log_warn("notify.llm_fallback", "id=%llu alert=%llu error=\"%s\" text=template",
                 (unsigned long long)row->id, (unsigned long long)row->alert_id,
                 llm_writer_last_error(t->llm));
    }
    if (key[0] != '\0')
        cache_put(t->n, key, &c->expl);
}

/* ---------------------------------------------------------------- delivery */

/* Exponential backoff with jitter: retry_min_s * 2^(attempt-1), capped at retry_max_s, then
 * a random point in its upper half (so a burst of failures does not retry in lock step). */
static int64_t backoff_ms(struct delivery_thread *t, unsigned attempts)
{
    const struct canary_config *cfg = &t->n->cfg;
    double d = cfg->notify.retry_min_s * 1000.0;
    for (unsigned i = 1; i < attempts && d < cfg->notify.retry_max_s * 1000.0; i++)
        d *= 2;
    if (d > cfg->notify.retry_max_s * 1000.0)
        d = cfg->notify.retry_max_s * 1000.0;
    return (int64_t)(d / 2 + rng_uniform(&t->rng) * d / 2);
}

static void finish(struct delivery_thread *t, const struct store_notification *row,
                   enum store_outbox_outcome outcome, int64_t next_ms, const char *provider_id,
                   const char *error)
{
    char err[256];
    int rc = store_outbox_finish(t->store, row->id, outcome, next_ms, provider_id, error,
                                 clock_wall_ms(), err, sizeof err);
    if (rc == CANARY_ECONFLICT)
        log_info("notify.finish_skipped", "id=%llu reason=\"%s\"", (unsigned long long)row->id,
                 err);
    else if (rc != 0)
        log_error("notify.finish_failed", "id=%llu error=\"%s\"", (unsigned long long)row->id, err);
}

/* Why an escalation must not go out any more, or NULL. */
static const char *escalation_moot(const struct alert *a, char *why, size_t len)
{
    if (a->state == ALERT_STATE_ACKNOWLEDGED) {
        snprintf(why, len, "acknowledged by %s before this step",
                 a->acknowledged_by[0] ? a->acknowledged_by : "someone");
        return why;
    }
    if (a->state == ALERT_STATE_RESOLVED) {
        snprintf(why, len, "resolved before this step");
        return why;
    }
    return NULL;
}

/* Whether the recipient is past their hourly limit (critical alerts and all-clears are
 * never held back by it). */
static bool rate_limited(struct delivery_thread *t, const struct store_notification *row,
                         const struct notify_payload *pl, char *why, size_t len)
{
    if (strcmp(row->kind, "all_clear") == 0 || pl->severity >= SEVERITY_CRITICAL)
        return false;
    const struct config_recipient *r = config_recipient_find(&t->n->cfg, row->recipient);
    if (r == NULL || r->rate_limit_per_hour == 0)
        return false;
    uint64_t sent = 0;
    char err[256];
    if (store_outbox_delivered_since(t->store, row->recipient, clock_wall_ms() - RATE_WINDOW_MS,
                                     &sent, err, sizeof err) != 0)
        return false; /* cannot tell: rather one message too many than a lost one */
    if (sent < r->rate_limit_per_hour)
        return false;
    snprintf(why, len, "rate limit: %s already got %llu notifications in the last hour (limit %u)",
             row->recipient, (unsigned long long)sent, r->rate_limit_per_hour);
    return true;
}

static void deliver(struct delivery_thread *t, struct store_notification *row)
{
    struct notifier *n = t->n;
    int64_t now = clock_wall_ms();
    char why[NOTIFY_ERROR_MAX + 64], err[256];
    struct notify_payload pl;
    if (notify_payload_parse(row->payload, &pl) != 0) {
        finish(t, row, STORE_OUTBOX_FAILED, 0, NULL, "payload unreadable");
        pipeline_count(n->p, PC_NOTIFY_FAILED, 1);
        return;
    }
    struct alert a;
    int rc = store_alert_get(t->store, row->alert_id, &a, err, sizeof err);
    if (rc == CANARY_ENOTFOUND) {
        snprintf(why, sizeof why, "alert %llu no longer exists", (unsigned long long)row->alert_id);
        finish(t, row, STORE_OUTBOX_FAILED, 0, NULL, why);
        pipeline_count(n->p, PC_NOTIFY_FAILED, 1);
        return;
    }
    if (rc != 0) {
        log_warn("notify.store_failed", "id=%llu error=\"%s\"", (unsigned long long)row->id, err);
        finish(t, row, STORE_OUTBOX_RETRY, now + STORE_RETRY_MS, NULL, "store unavailable");
        return;
    }
    if (strcmp(row->kind, "escalation") == 0 && escalation_moot(&a, why, sizeof why) != NULL) {
        finish(t, row, STORE_OUTBOX_CANCELLED, 0, NULL, why);
        pipeline_count(n->p, PC_NOTIFY_CANCELLED, 1);
        log_info("notify.cancelled", "id=%llu alert=%llu recipient=%s channel=%s reason=\"%s\"",
                 (unsigned long long)row->id, (unsigned long long)row->alert_id, row->recipient,
                 row->channel, why);
        return;
    }
    if (rate_limited(t, row, &pl, why, sizeof why)) {
        finish(t, row, STORE_OUTBOX_CANCELLED, 0, NULL, why);
        pipeline_count(n->p, PC_NOTIFY_RATE_LIMITED, 1);
        log_warn("notify.rate_limited", "id=%llu alert=%llu recipient=%s channel=%s",
                 (unsigned long long)row->id, (unsigned long long)row->alert_id, row->recipient,
                 row->channel);
        return;
    }
    struct composed *c = &t->comp;
    compose_context(c, t->store, &n->cfg, row, &a, &pl, now);
    explain_row(t, row);
    if (compose_message(c, row, now) != 0) {
        compose_free(c);
        finish(t, row, STORE_OUTBOX_RETRY, now + STORE_RETRY_MS, NULL, "out of memory");
        return;
    }
    if (c->msg.channel == NOTIFY_CHANNEL_WEBHOOK)
        snprintf(t->channels.webhook.url, sizeof t->channels.webhook.url, "%s", row->address);
    struct notify_result res;
    enum notify_outcome out = notify_send(t->client, &t->channels, &c->msg, 0, &res);
    compose_free(c);
    const char *error = res.error[0] ? res.error : NULL;
    switch (out) {
    case NOTIFY_DELIVERED:
        finish(t, row, STORE_OUTBOX_DELIVERED, 0, res.provider_id, error);
        pipeline_count(n->p, PC_NOTIFY_DELIVERED, 1);
        log_info("notify.delivered",
                 "id=%llu alert=%llu kind=%s step=%u recipient=%s channel=%s attempt=%u "
                 "provider_id=%s ms=%lld",
                 (unsigned long long)row->id, (unsigned long long)row->alert_id, row->kind,
                 row->step, row->recipient, row->channel, row->attempts, res.provider_id,
                 (long long)res.elapsed_ms);
        return;
    case NOTIFY_RETRY:
        if (row->attempts < n->cfg.notify.max_attempts) {
            int64_t delay = backoff_ms(t, row->attempts);
            if (res.retry_after_ms > delay)
                delay = res.retry_after_ms;
            finish(t, row, STORE_OUTBOX_RETRY, now + delay, NULL, res.error);
            pipeline_count(n->p, PC_NOTIFY_RETRIES, 1);
            log_warn("notify.retry",
                     "id=%llu alert=%llu recipient=%s channel=%s attempt=%u next_in_ms=%lld "
                     "error=\"%s\"",
                     (unsigned long long)row->id, (unsigned long long)row->alert_id, row->recipient,
                     row->channel, row->attempts, (long long)delay, res.error);
            return;
        }
        snprintf(why, sizeof why, "gave up after %u attempts: %s", row->attempts, res.error);
        break;
    case NOTIFY_PERMANENT_FAILURE:
        snprintf(why, sizeof why, "%s", res.error);
        break;
    }
    finish(t, row, STORE_OUTBOX_FAILED, 0, NULL, why);
    pipeline_count(n->p, PC_NOTIFY_FAILED, 1);
    log_error("notify.failed", "id=%llu alert=%llu recipient=%s channel=%s attempt=%u error=\"%s\"",
              (unsigned long long)row->id, (unsigned long long)row->alert_id, row->recipient,
              row->channel, row->attempts, why);
}

static void *delivery_main(void *arg)
{
    struct delivery_thread *t = arg;
    struct notifier *n = t->n;
    uint64_t seen = 0;
    bool warned = false;
    for (;;) {
        char err[256];
        int64_t now = clock_wall_ms(), due = INT64_MAX;
        int rc = store_outbox_next_due(t->store, t->channel_mask, &due, err, sizeof err);
        int claimed = 0;
        if (rc == 0 && due <= now) {
            claimed =
                store_outbox_claim_due(t->store, now, t->channel_mask, &t->row, 1, err, sizeof err);
            rc = claimed < 0 ? claimed : 0;
        }
        if (rc < 0 && !warned)
            log_warn("notify.claim_failed", "thread=%u error=\"%s\"", t->index, err);
        warned = rc < 0;
        if (claimed == 1) {
            deliver(t, &t->row);
            if (stopping(n))
                break;
            continue;
        }
        int64_t wait = due == INT64_MAX || rc < 0 ? IDLE_POLL_MS : due - clock_wall_ms();
        if (wait > IDLE_POLL_MS)
            wait = IDLE_POLL_MS;
        if (!wait_for_work(n, &seen, wait < 1 ? 1 : wait))
            break;
    }
    return NULL;
}

/* ---------------------------------------------------------------- escalation */

/* The alert's latest step (its newest alert or escalation row); false when it has none. */
static bool latest_step(struct notifier *n, uint64_t alert_id, struct store_notification *rows,
                        struct store_notification **latest)
{
    char err[256];
    struct store_outbox_filter f = {.alert_id = alert_id, .limit = LATEST_ROWS};
    int got = store_outbox_list(n->sched_store, &f, rows, err, sizeof err);
    for (int i = 0; i < got; i++) {
        if (strcmp(rows[i].kind, "alert") == 0 || strcmp(rows[i].kind, "escalation") == 0) {
            *latest = &rows[i];
            return true;
        }
    }
    return false;
}

static void escalate(struct notifier *n, const struct alert *a, struct store_notification *scratch,
                     struct store_notification *rows, struct notify_plan *plan)
{
    struct store_notification *latest = NULL;
    if (!latest_step(n, a->id, scratch, &latest))
        return;
    int64_t now = clock_wall_ms();
    int64_t after = (int64_t)(n->cfg.notify.escalate_after_min * 60000.0);
    if (now - latest->created_ms < after)
        return;
    struct notify_payload pl;
    if (notify_payload_parse(latest->payload, &pl) != 0)
        return;
    unsigned step = latest->step + 1;
    size_t k = notify_plan_step(&n->cfg, a, pl.event, step, pl.cycle_ms, now, plan, rows,
                                NOTIFY_PLAN_MAX, NULL);
    if (k == 0)
        return; /* no further step: the last one stands */
    struct store_batch b = {.notifications = rows, .n_notifications = k};
    char err[256];
    if (store_write(n->sched_store, &b, err, sizeof err) != 0) {
        log_warn("notify.escalation_failed", "alert=%llu step=%u error=\"%s\"",
                 (unsigned long long)a->id, step, err);
        return;
    }
    pipeline_count(n->p, PC_NOTIFY_ESCALATIONS, 1);
    pipeline_count(n->p, PC_NOTIFY_QUEUED, k);
    log_warn("notify.escalated", "alert=%llu device=%s kind=%s severity=%s step=%u targets=%zu",
             (unsigned long long)a->id, a->device, alert_kind_name(a->kind),
             alert_severity_name(a->severity), step, k);
    notifier_kick(n);
}

static void *scheduler_main(void *arg)
{
    struct notifier *n = arg;
    struct alert *open = malloc(OPEN_ALERTS_MAX * sizeof *open);
    struct store_notification *scratch = malloc(LATEST_ROWS * sizeof *scratch);
    struct store_notification *rows = malloc(NOTIFY_PLAN_MAX * sizeof *rows);
    struct notify_plan *plan = malloc(sizeof *plan);
    enum alert_severity min = SEVERITY_CRITICAL;
    alert_severity_parse(n->cfg.notify.escalate_severity, &min);
    uint64_t seen = 0;
    int64_t tick = SCHEDULER_TICK_MS;
    int64_t after = (int64_t)(n->cfg.notify.escalate_after_min * 60000.0);
    if (after / 4 < tick)
        tick = after / 4 > 50 ? after / 4 : 50;
    while (open != NULL && scratch != NULL && rows != NULL && plan != NULL) {
        if (n->cfg.n_routes > 0) {
            char err[256];
            struct store_alert_filter f = {.state = ALERT_STATE_OPEN,
                                           .severity = (int)min,
                                           .kind = -1,
                                           .limit = OPEN_ALERTS_MAX};
            int got = store_alerts_list(n->sched_store, &f, open, err, sizeof err);
            for (int i = 0; i < got && !stopping(n); i++)
                escalate(n, &open[i], scratch, rows, plan);
        }
        if (!wait_for_work(n, &seen, tick))
            break;
    }
    free(open);
    free(scratch);
    free(rows);
    free(plan);
    return NULL;
}

/* ---------------------------------------------------------------- start, stop */

static int open_store(const struct canary_config *cfg, struct store **out, char *err, size_t errlen)
{
    struct store_options o = {.path = cfg->store.path,
                              .busy_timeout_ms = cfg->store.busy_timeout_ms,
                              .chunk_max_readings = cfg->store.chunk_max_readings,
                              .manual_checkpoints = true,
                              .synchronous_full = strcmp(cfg->store.synchronous, "full") == 0};
    return store_open(out, &o, err, errlen);
}

void notifier_stop(struct notifier *n)
{
    if (n == NULL)
        return;
    pipeline_set_outbox_hook(n->p, NULL, NULL);
    pthread_mutex_lock(&n->lock);
    n->stopping = true;
    pthread_cond_broadcast(&n->wake);
    pthread_mutex_unlock(&n->lock);
    if (n->scheduler_started)
        pthread_join(n->scheduler, NULL);
    for (unsigned i = 0; i < n->n_threads; i++) {
        struct delivery_thread *t = &n->threads[i];
        if (t->started)
            pthread_join(t->thread, NULL);
        notify_client_free(t->client);
        llm_writer_free(t->llm);
        store_close(t->store);
    }
    free(n->threads);
    store_close(n->sched_store);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->wake);
    pthread_mutex_destroy(&n->cache_lock);
    pthread_cond_destroy(&n->cache_filled);
    config_free(&n->cfg);
    free(n);
}

int notifier_start(struct notifier **out, const struct canary_config *cfg, struct pipeline *p,
                   char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->notify.workers == 0)
        return CANARY_OK;
    if (notify_global_init() != 0) {
        canary_errf(err, errlen, "libcurl could not be initialised");
        return CANARY_EIO;
    }
    struct notifier *n = calloc(1, sizeof *n);
    if (n == NULL || config_copy(&n->cfg, cfg) != 0) {
        free(n);
        canary_errf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    n->p = p;
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->wake, NULL);
    pthread_mutex_init(&n->cache_lock, NULL);
    pthread_cond_init(&n->cache_filled, NULL);
    int rc = open_store(cfg, &n->sched_store, err, errlen);
    size_t recovered = 0;
    if (rc == 0)
        rc = store_outbox_recover(n->sched_store, clock_wall_ms(), &recovered, err, errlen);
    if (rc == 0 && recovered > 0)
        log_warn("notify.recovered", "rows=%zu note=\"sent again: a crash left them unconfirmed\"",
                 recovered);
    n->n_threads = cfg->notify.workers;
    n->threads = rc == 0 ? calloc(n->n_threads, sizeof *n->threads) : NULL;
    if (rc == 0 && n->threads == NULL) {
        canary_errf(err, errlen, "out of memory");
        rc = CANARY_ENOMEM;
    }
    struct notify_config channels;
    notify_config_from(&channels, cfg);
    for (unsigned i = 0; rc == 0 && i < n->n_threads; i++) {
        struct delivery_thread *t = &n->threads[i];
        t->n = n;
        t->index = i;
        /* Every class has a thread: with fewer threads than classes, they share; with
         * more, classes get several. */
        for (unsigned k = 0; k < N_CLASSES; k++) {
            bool mine = n->n_threads >= N_CLASSES ? k == i % N_CLASSES : k % n->n_threads == i;
            if (mine)
                t->channel_mask |= channel_classes[k];
        }
        t->channels = channels;
        rng_seed_state(&t->rng, (uint64_t)clock_mono_ns() ^ ((uint64_t)i << 32));
        rc = open_store(cfg, &t->store, err, errlen);
        if (rc == 0 && (t->client = notify_client_new()) == NULL) {
            canary_errf(err, errlen, "notify client: out of memory");
            rc = CANARY_ENOMEM;
        }
        if (rc == 0)
            rc = llm_writer_new(&t->llm, cfg, err, errlen);
    }
    for (unsigned i = 0; rc == 0 && i < n->n_threads; i++) {
        struct delivery_thread *t = &n->threads[i];
        if (pthread_create(&t->thread, NULL, delivery_main, t) != 0) {
            canary_errf(err, errlen, "cannot start delivery thread %u", i);
            rc = CANARY_EIO;
        }
        t->started = rc == 0;
    }
    if (rc == 0) {
        if (pthread_create(&n->scheduler, NULL, scheduler_main, n) != 0) {
            canary_errf(err, errlen, "cannot start the escalation scheduler");
            rc = CANARY_EIO;
        }
        n->scheduler_started = rc == 0;
    }
    if (rc != 0) {
        notifier_stop(n);
        return rc;
    }
    explicit_bzero(&channels, sizeof channels);
    pipeline_set_outbox_hook(p, kick_hook, n);
    log_info("notify.started", "threads=%u routes=%zu recipients=%zu escalate_after_min=%g llm=%s",
             n->n_threads, cfg->n_routes, cfg->n_recipients, cfg->notify.escalate_after_min,
             cfg->llm.provider);
    *out = n;
    return CANARY_OK;
}
